//! Workloads shared by the engine benchmarks: the same precomputed `String` keys and the
//! same key sequences (uniform or Zipf-skewed) are fed to tollgate's engine and to
//! `governor`'s keyed limiter, so both do the same work per operation.

#![allow(dead_code)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use tollgate::clock::SystemClock;
use tollgate::limiter::{Algorithm, LimitCheck, LimitSpec, Limiter, LimiterOptions};

/// The limit both engines enforce: 1,000 per hour per key.
pub const PER_HOUR: u32 = 1_000;

/// Zipf exponent of the skewed workload.
pub const ZIPF_EXPONENT: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    Uniform,
    Zipf,
}

impl Skew {
    pub fn name(self) -> &'static str {
        match self {
            Skew::Uniform => "uniform",
            Skew::Zipf => "zipf",
        }
    }
}

/// `n` distinct keys shaped like real ones (a user id).
pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user:{i:08}")).collect()
}

/// A sequence of `len` key indexes in `0..n_keys`.
pub fn stream(n_keys: usize, len: usize, skew: Skew, seed: u64) -> Vec<u32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    match skew {
        Skew::Uniform => (0..len)
            .map(|_| rng.random_range(0..n_keys as u32))
            .collect(),
        Skew::Zipf => {
            let zipf = Zipf::new(n_keys as f64, ZIPF_EXPONENT).expect("valid Zipf parameters");
            // Rank r (1 = hottest) → key index; a fixed odd multiplier scatters the hot keys
            // over the index space so that they are not neighbours in memory.
            (0..len)
                .map(|_| {
                    let rank = zipf.sample(&mut rng) as u64 - 1;
                    (rank.wrapping_mul(2_654_435_761) % n_keys as u64) as u32
                })
                .collect()
        }
    }
}

pub fn tollgate_spec() -> LimitSpec {
    LimitSpec {
        name: Arc::from("basic"),
        limit: u64::from(PER_HOUR),
        window: Duration::from_secs(3600),
        algorithm: Algorithm::SlidingWindow,
    }
}

pub fn tollgate_limiter(max_states: usize) -> Limiter {
    Limiter::new(
        LimiterOptions {
            max_states,
            shards: std::env::var("TOLLGATE_SHARDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            hash_key: *b"bench-hash-key-0",
        },
        Arc::new(SystemClock),
    )
}

pub fn governor_limiter() -> DefaultKeyedRateLimiter<String> {
    RateLimiter::keyed(Quota::per_hour(
        NonZeroU32::new(PER_HOUR).expect("non-zero quota"),
    ))
}

/// One tollgate check of one hit; returns whether it was admitted.
#[inline]
pub fn tollgate_op(limiter: &Limiter, spec: &LimitSpec, key: &str) -> bool {
    limiter.check(&[LimitCheck { limit: spec, key }], 1).allowed
}

/// One governor check; returns whether it was admitted.
#[inline]
pub fn governor_op(limiter: &DefaultKeyedRateLimiter<String>, key: &String) -> bool {
    limiter.check_key(key).is_ok()
}

/// Resident set size of this process, in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
