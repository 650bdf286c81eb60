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
//!
//! The same entry holds the thread's own copy of the limit's name for the answers
//! ([`super::LimitOutcome::name`] is an `Arc<str>`): cloning and dropping the spec's own
//! `Arc` on every check would make every core write the same reference count, one cache line
//! bouncing between cores on each decision; a per-thread copy keeps those writes local.

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

/// A (limit, key) resolved: its state hash, the limit's fingerprint and its name.
pub(crate) struct Resolved {
    /// SipHash-1-3 under the hash key of `fingerprint (u64 LE) | key bytes` (may be 0).
    pub hash: u64,
    pub fingerprint: u64,
    /// The limit's name to answer with (this thread's copy).
    pub name: Arc<str>,
}

/// The state hash of `key` under `spec` (SipHash-1-3 under `hash_key` of
/// `fingerprint(spec) (u64 LE) | key bytes`), the limit's fingerprint and its name.
pub(crate) fn resolve(hash_key: &[u8; 16], spec: &LimitSpec, key: &str) -> Resolved {
    let lookup = |cache: &mut SpecCache| {
        let i = match cache.entries.iter().position(|c| {
            c.as_ref().is_some_and(|c| {
                Arc::ptr_eq(&c.name, &spec.name)
                    && c.limit == spec.limit
                    && c.window == spec.window
                    && c.algorithm == spec.algorithm
                    && c.hash_key == *hash_key
            })
        }) {
            Some(i) => i,
            None => {
                let i = cache.next % CACHED;
                cache.next = cache.next.wrapping_add(1);
                cache.entries[i] = Some(Cached {
                    name: spec.name.clone(),
                    local_name: Arc::from(&*spec.name),
                    limit: spec.limit,
                    window: spec.window,
                    algorithm: spec.algorithm,
                    hash_key: *hash_key,
                    fingerprint: fingerprint(spec),
                    prefix: prefix(hash_key, fingerprint(spec)),
                });
                i
            }
        };
        match &cache.entries[i] {
            Some(c) => Resolved {
                hash: c.prefix.hash(key.as_bytes()),
                fingerprint: c.fingerprint,
                name: c.local_name.clone(),
            },
            None => uncached(hash_key, spec, key),
        }
    };
    // During thread teardown the cache may be gone: compute without it.
    SPECS
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut cache) => lookup(&mut cache),
            Err(_) => uncached(hash_key, spec, key),
        })
        .unwrap_or_else(|_| uncached(hash_key, spec, key))
}

fn uncached(hash_key: &[u8; 16], spec: &LimitSpec, key: &str) -> Resolved {
    Resolved {
        hash: state_hash_uncached(hash_key, spec, key),
        fingerprint: fingerprint(spec),
        name: spec.name.clone(),
    }
}

/// The state hash computed from scratch (also the reference the cache is tested against).
pub(crate) fn state_hash_uncached(hash_key: &[u8; 16], spec: &LimitSpec, key: &str) -> u64 {
    let mut h = prefix(hash_key, fingerprint(spec));
    h.write(key.as_bytes());
    h.finish()
}

/// Entries of the per-thread cache: more than the limits one request names.
const CACHED: usize = 8;

struct Cached {
    /// The spec's own name. Holding a clone keeps the allocation alive, so its address
    /// cannot be reused by another name while it is cached.
    name: Arc<str>,
    /// This thread's copy of the name, handed out in answers.
    local_name: Arc<str>,
    limit: u64,
    window: Duration,
    algorithm: Algorithm,
    hash_key: [u8; 16],
    fingerprint: u64,
    prefix: SipHasher13,
}

#[derive(Default)]
struct SpecCache {
    entries: [Option<Cached>; CACHED],
    next: usize,
}

thread_local! {
    static SPECS: RefCell<SpecCache> = RefCell::default();
}
