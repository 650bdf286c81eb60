//! The identity of a (limit, key) state: a 64-bit keyed hash that every node computes alike.
//!
//! - A limit's *fingerprint* is SipHash-1-3 under the all-zero key of its encoding
//!   `name length (u64 LE) | name | limit (u64 LE) | window in ms (u64 LE) | algorithm (u8:
//!   0 sliding_window, 1 sliding_log)`. It is not secret (limits come from the operator's
//!   configuration, not from clients); it only names the limit, so that a reload which keeps
//!   a limit unchanged keeps its counters and a changed limit starts fresh.
//! - A state's hash is SipHash-1-3 under the engine's 16-byte hash key of
//!   `fingerprint (u64 LE) | key bytes`. Keyed, so that clients, who choose keys, cannot aim
//!   collisions without the key; SipHash's output is specified, so it is the same on every
//!   CPU, build and version (unlike `ahash`, whose output may differ between machines).
//!
//! Each thread caches, per recently used (hash key, spec), the SipHash state after the
//! fingerprint has been absorbed, keyed by the identity of the spec's name allocation: specs
//! live as long as a configuration does, and re-hashing the spec on every check would cost
//! as much as hashing the key. A check then only hashes the key bytes, in one call.

use std::cell::RefCell;
use std::hash::Hasher;
use std::sync::Arc;
use std::time::Duration;

use siphasher::sip::SipHasher13;

use super::{Algorithm, LimitSpec};

/// The fingerprint of a limit (see the module doc for the encoding).
pub(crate) fn fingerprint(spec: &LimitSpec) -> u64 {
    let mut h = SipHasher13::new_with_key(&[0; 16]);
    h.write(&(spec.name.len() as u64).to_le_bytes());
    h.write(spec.name.as_bytes());
    h.write(&spec.limit.to_le_bytes());
    let window_ms = u64::try_from(spec.window.as_millis()).unwrap_or(u64::MAX);
    h.write(&window_ms.to_le_bytes());
    h.write(&[match spec.algorithm {
        Algorithm::SlidingWindow => 0,
        Algorithm::SlidingLog => 1,
    }]);
    h.finish()
}

/// The SipHash state under `hash_key` after absorbing a limit's fingerprint: the prefix
/// every state hash of that limit starts with. (8 bytes fill exactly one SipHash block, so
/// the state has no pending tail and the key can be hashed in one call.)
fn prefix(hash_key: &[u8; 16], fingerprint: u64) -> SipHasher13 {
    let mut h = SipHasher13::new_with_key(hash_key);
    h.write(&fingerprint.to_le_bytes());
    h
}

/// The state hash of `key` under `spec`: SipHash-1-3 under `hash_key` of
/// `fingerprint(spec) (u64 LE) | key bytes`.
pub(crate) fn state_hash(hash_key: &[u8; 16], spec: &LimitSpec, key: &str) -> u64 {
    cached_prefix(hash_key, spec).hash(key.as_bytes())
}

/// The same hash without the cache (the reference the cache is tested against).
#[cfg(test)]
pub(crate) fn state_hash_uncached(hash_key: &[u8; 16], spec: &LimitSpec, key: &str) -> u64 {
    let mut h = prefix(hash_key, fingerprint(spec));
    h.write(key.as_bytes());
    h.finish()
}

/// Entries of the per-thread cache: more than the limits one request names.
const CACHED: usize = 8;

struct Cached {
    /// Holding a clone keeps the allocation alive, so its address cannot be reused by
    /// another name while it is cached.
    name: Arc<str>,
    limit: u64,
    window: Duration,
    algorithm: Algorithm,
    hash_key: [u8; 16],
    prefix: SipHasher13,
}

#[derive(Default)]
struct PrefixCache {
    entries: [Option<Cached>; CACHED],
    next: usize,
}

thread_local! {
    static PREFIXES: RefCell<PrefixCache> = RefCell::default();
}

/// [`prefix`] of `spec`, from the thread's cache when this very spec was seen recently.
fn cached_prefix(hash_key: &[u8; 16], spec: &LimitSpec) -> SipHasher13 {
    let lookup = |cache: &mut PrefixCache| {
        let hit = cache.entries.iter().flatten().find(|c| {
            Arc::ptr_eq(&c.name, &spec.name)
                && c.limit == spec.limit
                && c.window == spec.window
                && c.algorithm == spec.algorithm
                && c.hash_key == *hash_key
        });
        if let Some(c) = hit {
            return c.prefix;
        }
        let prefix = prefix(hash_key, fingerprint(spec));
        let slot = cache.next % CACHED;
        cache.next = cache.next.wrapping_add(1);
        cache.entries[slot] = Some(Cached {
            name: spec.name.clone(),
            limit: spec.limit,
            window: spec.window,
            algorithm: spec.algorithm,
            hash_key: *hash_key,
            prefix,
        });
        prefix
    };
    // During thread teardown the cache may be gone: compute without it.
    PREFIXES
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut cache) => lookup(&mut cache),
            Err(_) => prefix(hash_key, fingerprint(spec)),
        })
        .unwrap_or_else(|_| prefix(hash_key, fingerprint(spec)))
}
