//! The configuration hash a node publishes in membership: peers whose hashes differ count
//! different things under the same names, so they do not merge each other's counts.

use std::sync::Arc;
use std::time::Duration;

use crate::limiter::{LimitSpec, Limiter};

/// The limit whose state hash probes the hash key: never configured, never counted.
fn probe() -> LimitSpec {
    LimitSpec {
        name: Arc::from("tollgate cluster configuration probe"),
        limit: 1,
        window: Duration::from_secs(1),
        algorithm: Default::default(),
    }
}

/// The hash of the limits a node counts and of the key it hashes keys with: SHA-256 of a
/// label, every limit's fingerprint ([`Limiter::limit_fingerprint`]: name, quota, window,
/// algorithm) sorted, and the state hash of a fixed probe (limit, key) under the limiter's
/// hash key; its first 8 bytes.
///
/// Two nodes get the same hash exactly when they count the same limits (in any order) and
/// hash keys alike, the two conditions for a cell to name the same count on both. The
/// probe's state hash is a keyed hash (SipHash) of a public input, and only a digest of it is
/// published, so the hash says whether two keys are equal without revealing either.
pub fn config_hash(limits: &[LimitSpec], limiter: &Limiter) -> u64 {
    let mut fingerprints: Vec<u64> = limits.iter().map(Limiter::limit_fingerprint).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"tollgate counter plane configuration v1");
    ctx.update(&(fingerprints.len() as u64).to_be_bytes());
    for f in &fingerprints {
        ctx.update(&f.to_be_bytes());
    }
    ctx.update(&limiter.state_hash(&probe(), "probe").to_be_bytes());
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}
