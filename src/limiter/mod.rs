//! The rate-limiting engine: sliding-window counters (and exact sliding logs) per
//! (limit, key), held in a sharded, capped map.
//!
//! OWNER NOTE (remove when implemented): this file fixes the public API that the rest of
//! tollgate is written against. The types below are the contract; the bodies are the
//! limiter's to implement (in submodules of this folder).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use smallvec::SmallVec;

use crate::clock::Clock;

/// How a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Two fixed windows, the previous weighted by its remaining overlap. O(1) memory.
    #[default]
    SlidingWindow,
    /// Exact: keeps every admitted timestamp. Limits of at most [`SLIDING_LOG_MAX`].
    SlidingLog,
}

/// The largest limit a `sliding_log` may have: it stores one timestamp per admitted hit.
pub const SLIDING_LOG_MAX: u64 = 1_000;

/// One configured limit: at most `limit` hits per `window`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LimitSpec {
    /// Name shown in answers, headers and metrics (`basic`, `login`…).
    pub name: Arc<str>,
    /// Hits admitted per window.
    pub limit: u64,
    /// Window length, 1 s to several days.
    pub window: Duration,
    /// Counting algorithm.
    pub algorithm: Algorithm,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct LimiterOptions {
    /// Hard cap on tracked (limit, key) states.
    pub max_states: usize,
    /// Number of shards; 0 picks a power of two ≥ 4 × available cores.
    pub shards: usize,
    /// Key for the keyed key hash. Same key on every node ⇒ same hashes.
    pub hash_key: [u8; 16],
}

/// One (limit, key) pair a request must pass.
#[derive(Debug, Clone, Copy)]
pub struct LimitCheck<'a> {
    pub limit: &'a LimitSpec,
    pub key: &'a str,
}

/// What one limit said about a request.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitOutcome {
    pub name: Arc<str>,
    /// The limit (quota) per window.
    pub limit: u64,
    /// Window length in whole seconds.
    pub window_secs: u64,
    /// Hits still available after this request.
    pub remaining: u64,
    /// Seconds until the quota is fully available again.
    pub reset_secs: u64,
    /// When this limit denied: seconds until a request of the same size would be admitted.
    pub retry_after_secs: Option<u64>,
    /// This denial is the first in this window for a key that has now asked for more than
    /// twice its limit (the abuse signal): report it once.
    pub abuse: bool,
}

/// The engine's answer for a request that named one or more limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// Index into `outcomes` of the deciding limit: the first denying one, or when allowed
    /// the one with the least remaining.
    pub deciding: usize,
    /// One outcome per [`LimitCheck`], in the order given.
    pub outcomes: SmallVec<[LimitOutcome; 2]>,
}

impl Decision {
    /// The outcome of the deciding limit.
    pub fn deciding(&self) -> &LimitOutcome {
        &self.outcomes[self.deciding]
    }
}

/// The sharded engine.
pub struct Limiter {
    #[allow(dead_code)]
    clock: Arc<dyn Clock>,
    #[allow(dead_code)]
    options: LimiterOptions,
}

impl Limiter {
    pub fn new(options: LimiterOptions, clock: Arc<dyn Clock>) -> Self {
        Self { clock, options }
    }

    /// Checks every limit together: admitted only if all admit; a denial consumes nothing.
    /// `hits == 0` peeks without counting.
    pub fn check(&self, _checks: &[LimitCheck<'_>], _hits: u64) -> Decision {
        unimplemented!("limiter not implemented yet")
    }

    /// Number of (limit, key) states currently tracked.
    pub fn tracked_states(&self) -> usize {
        0
    }

    /// States evicted because the cap was reached, since start.
    pub fn evictions(&self) -> u64 {
        0
    }

    /// Drops idle states (both windows passed). Called periodically by the server.
    pub fn sweep(&self) {}
}
