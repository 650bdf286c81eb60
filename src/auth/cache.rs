//! The verified-token cache: a token verified once is answered from memory until it expires.
//!
//! - Key: HMAC-SHA256 of the whole token under a random per-process key (ring). Another token
//!   cannot produce the same key without breaking HMAC, and nobody outside the process can
//!   predict keys to aim collisions at one shard. The token itself is not kept.
//! - Only successes are inserted; a failed verification leaves no trace here.
//! - Each entry carries `exp + leeway`; a hit past that is removed and reported as expired.
//!   Revocation is the caller's check on every hit ([`super::Authenticator`] does it).
//! - Capacity is bounded: sharded maps, each at most `capacity / shards` entries. A full shard
//!   first drops expired entries (at most once a second, so a full cache of live tokens does
//!   not scan on every insert), then evicts an arbitrary entry: with keyed-hash buckets that
//!   is a random entry, which an attacker cannot steer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::identity::Identity;

/// A token's cache key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl std::hash::Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniformly random: its first 8 bytes are the hash.
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(b));
    }
}

/// Passes the fingerprint's own bits through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only write_u64 is used by Fingerprint; fold anything else in for safety.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type FastMap = HashMap<Fingerprint, Entry, BuildHasherDefault<PassThrough>>;

struct Entry {
    valid_until_ms: i64,
    identity: Arc<Identity>,
    /// The caller's note about what the verification depended on (the authenticator
    /// stores the issuer and its key-set generation).
    tag: u64,
}

struct Shard {
    map: FastMap,
    last_sweep_ms: i64,
}

/// Cache counters, exported by the metrics module.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Live entries dropped to make room.
    pub evictions: AtomicU64,
    /// Entries dropped because their token expired.
    pub expirations: AtomicU64,
    pub inserts: AtomicU64,
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Verified earlier and not expired; with the tag given at insertion.
    Hit(Arc<Identity>, u64),
    /// Verified earlier but now past `exp` + leeway (entry removed).
    Expired,
    Miss,
}

/// The verified-token cache.
pub struct TokenCache {
    key: hmac::Key,
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    /// Shared with the caches that replace this one on a reload ([`TokenCache::fresh`]), so
    /// the counters run on across reloads.
    pub stats: Arc<CacheStats>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("shards", &self.shards.len())
            .field("per_shard", &self.per_shard)
            .finish()
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens (0 disables it) with a fresh random key.
    pub fn new(capacity: usize) -> Self {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .expect("the operating system's random source failed");
        Self::with_key(capacity, &k)
    }

    /// A cache keyed with `key` (tests that need reproducible fingerprints).
    pub fn with_key(capacity: usize, key: &[u8]) -> Self {
        // A power of two (the shard is picked by masking), ≥ 4 per core, never more
        // shards than entries.
        let n = if capacity == 0 {
            0
        } else {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let mut n = (cores * 8).next_power_of_two().min(256);
            while n > capacity {
                n /= 2;
            }
            n
        };
        let per_shard = if n == 0 { 0 } else { capacity.div_ceil(n) };
        let shards = (0..n)
            .map(|_| {
                RwLock::new(Shard {
                    map: FastMap::default(),
                    last_sweep_ms: i64::MIN,
                })
            })
            .collect();
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            shards,
            per_shard,
            stats: Arc::default(),
        }
    }

    /// An empty cache of `capacity` with a fresh random key, counting into this cache's
    /// counters: what a reload that changes what a verified token means starts with.
    pub fn fresh(&self, capacity: usize) -> Self {
        let mut c = Self::new(capacity);
        c.stats = Arc::clone(&self.stats);
        c
    }

    /// Most entries held.
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache key of a token.
    pub fn fingerprint(&self, token: &[u8]) -> Fingerprint {
        let tag = hmac::sign(&self.key, token);
        let mut f = [0u8; 32];
        f.copy_from_slice(tag.as_ref());
        Fingerprint(f)
    }

    fn shard(&self, f: &Fingerprint) -> &RwLock<Shard> {
        // Bytes 8.. pick the shard; bytes ..8 are the in-shard hash.
        let i = u64::from_le_bytes(f.0[8..16].try_into().expect("8 bytes"));
        &self.shards[(i as usize) & (self.shards.len() - 1)]
    }

    /// Looks a token up at time `now_ms`.
    pub fn get(&self, f: &Fingerprint, now_ms: i64) -> Lookup {
        if self.shards.is_empty() {
            return Lookup::Miss;
        }
        let shard = self.shard(f);
        let found = {
            let s = shard.read();
            s.map
                .get(f)
                .map(|e| (e.valid_until_ms, Arc::clone(&e.identity), e.tag))
        };
        match found {
            Some((until, id, tag)) if now_ms < until => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(id, tag)
            }
            Some(_) => {
                // Past exp + leeway: drop it (if nobody replaced it meanwhile).
                let mut s = shard.write();
                if s.map.get(f).is_some_and(|e| now_ms >= e.valid_until_ms) {
                    s.map.remove(f);
                    self.stats.expirations.fetch_add(1, Ordering::Relaxed);
                }
                Lookup::Expired
            }
            None => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
        }
    }

    /// Stores a verified token's identity until `valid_until_ms` (`exp` + leeway), with a
    /// `tag` returned on every hit.
    pub fn insert(
        &self,
        f: Fingerprint,
        identity: Arc<Identity>,
        valid_until_ms: i64,
        now_ms: i64,
        tag: u64,
    ) {
        if self.shards.is_empty() || now_ms >= valid_until_ms {
            return;
        }
        let mut s = self.shard(&f).write();
        if !s.map.contains_key(&f) && s.map.len() >= self.per_shard {
            if now_ms.saturating_sub(s.last_sweep_ms) >= 1000 {
                s.last_sweep_ms = now_ms;
                let before = s.map.len();
                s.map.retain(|_, e| now_ms < e.valid_until_ms);
                self.stats
                    .expirations
                    .fetch_add((before - s.map.len()) as u64, Ordering::Relaxed);
            }
            if s.map.len() >= self.per_shard {
                if let Some(victim) = s.map.keys().next().copied() {
                    s.map.remove(&victim);
                    self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        s.map.insert(
            f,
            Entry {
                valid_until_ms,
                identity,
                tag,
            },
        );
        self.stats.inserts.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops one entry.
    pub fn remove(&self, f: &Fingerprint) {
        if !self.shards.is_empty() {
            self.shard(f).write().map.remove(f);
        }
    }

    /// Drops every entry (e.g. after a configuration reload).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.write().map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(u: &str) -> Arc<Identity> {
        let mut i = Identity::anonymous("basic");
        i.user_id = Some(u.into());
        Arc::new(i)
    }

    #[test]
    fn hit_until_expiry_then_expired() {
        let c = TokenCache::new(100);
        let f = c.fingerprint(b"token-a");
        assert_eq!(c.get(&f, 0), Lookup::Miss);
        c.insert(f, id("a"), 1000, 0, 0);
        assert_eq!(c.get(&f, 999), Lookup::Hit(id("a"), 0));
        assert_eq!(c.get(&f, 1000), Lookup::Expired);
        assert_eq!(c.get(&f, 1000), Lookup::Miss);
        assert_eq!(c.stats.hits.load(Ordering::Relaxed), 1);
        assert_eq!(c.stats.expirations.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn fingerprints_are_keyed_and_distinct() {
        let a = TokenCache::with_key(10, b"k1");
        let b = TokenCache::with_key(10, b"k2");
        assert!(a.fingerprint(b"t") == a.fingerprint(b"t"));
        assert!(a.fingerprint(b"t") != b.fingerprint(b"t"));
        assert!(a.fingerprint(b"t") != a.fingerprint(b"t "));
        // A different token never hits another's entry.
        a.insert(a.fingerprint(b"t"), id("x"), 10, 0, 0);
        assert_eq!(a.get(&a.fingerprint(b"u"), 0), Lookup::Miss);
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let c = TokenCache::new(64);
        for i in 0..10_000u32 {
            c.insert(c.fingerprint(&i.to_le_bytes()), id("u"), i64::MAX, 0, 0);
        }
        assert!(c.len() <= c.capacity(), "{} > {}", c.len(), c.capacity());
        assert!(c.capacity() >= 64 && c.capacity() < 128);
        assert!(c.stats.evictions.load(Ordering::Relaxed) >= 10_000 - c.capacity() as u64);
    }

    #[test]
    fn full_shards_drop_expired_entries_before_live_ones() {
        let c = TokenCache::with_key(1, b"k");
        let a = c.fingerprint(b"a");
        c.insert(a, id("a"), 100, 0, 0);
        c.insert(c.fingerprint(b"b"), id("b"), 1000, 200, 0);
        assert_eq!(c.stats.evictions.load(Ordering::Relaxed), 0);
        assert_eq!(c.stats.expirations.load(Ordering::Relaxed), 1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn disabled_cache_holds_nothing() {
        let c = TokenCache::new(0);
        let f = c.fingerprint(b"t");
        c.insert(f, id("a"), 100, 0, 0);
        assert_eq!(c.get(&f, 0), Lookup::Miss);
        assert_eq!(c.capacity(), 0);
    }
}
