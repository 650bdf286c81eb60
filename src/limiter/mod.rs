//! The rate-limiting engine: sliding-window counters (and exact sliding logs) per
//! (limit, key), held in a sharded, capped map.
//!
//! - `window`: the sliding-window counter state (32 bytes) and its arithmetic.
//! - `log`: the exact sliding log for small limits.
//! - `shard`: one shard of the map: its tables, idle drop and least-active-first eviction.
//! - `cell`: the counts a node can share ([`CellId`], [`NodeSlot`]): this node's own count
//!   of a cell ([`Limiter::export_cell`]) and the cells changed since they were last
//!   published ([`Limiter::drain_changed_cells`]).
//! - `remote`: counts of other node slots merged by max ([`Limiter::merge_cell`]), bounded,
//!   and added to the node's own counts when deciding.
//! - `snapshot`: this node's own states as lines of text with a checksum each
//!   ([`Limiter::write_snapshot`]) and back ([`Limiter::restore_snapshot`]), so that a restart
//!   keeps the counts; the file I/O is the server's.
//! - this file: the public API, the keyed state hash, and [`Limiter::check`], which locks
//!   the shards a request touches (sorted, so concurrent multi-limit checks cannot
//!   deadlock), decides every limit, and only then writes — all or nothing.
//!
//! How the algorithms, the hash, the eviction policy and the memory layout work, and the
//! measured error of the counter against an exact log: docs/algorithms.md.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};

use serde::Deserialize;
use smallvec::SmallVec;

use crate::clock::Clock;

mod cell;
mod hash;
mod log;
mod remote;
mod shard;
mod snapshot;
mod table;
#[cfg(test)]
mod tests;
mod window;

pub use cell::{CellId, NodeSlot};
pub use remote::{MergeOutcome, MAX_SLOTS_PER_CELL};
pub use snapshot::{RestoreReport, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};

use cell::ChangedState;
use log::{LogState, LogView};
use shard::Shard;
use window::{abuse_due, WindowParams, WindowView, ABUSE_REPORTED};

/// How a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Two fixed windows, the previous weighted by its remaining overlap until its latest
    /// hit has left the sliding window. O(1) memory.
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
    /// The outcome of the deciding limit. A decision on no limit at all (an empty check
    /// list) is "allowed" and answers with an unlimited outcome rather than panicking.
    pub fn deciding(&self) -> &LimitOutcome {
        self.outcomes
            .get(self.deciding)
            .unwrap_or_else(|| unlimited_outcome())
    }
}

fn unlimited_outcome() -> &'static LimitOutcome {
    static UNLIMITED: OnceLock<LimitOutcome> = OnceLock::new();
    UNLIMITED.get_or_init(|| LimitOutcome {
        name: Arc::from("unlimited"),
        limit: u64::MAX,
        window_secs: 0,
        remaining: u64::MAX,
        reset_secs: 0,
        retry_after_secs: None,
        abuse: false,
    })
}

/// Largest limit the engine counts exactly: counts are stored in 32 bits. A larger
/// configured limit is treated as this one.
pub const MAX_LIMIT: u64 = u32::MAX as u64;

/// Longest window: 2^27 s (about 4.25 years). Longer windows are treated as this one.
pub const MAX_WINDOW_SECS: u64 = 1 << 27;

/// The sharded engine.
pub struct Limiter {
    clock: Arc<dyn Clock>,
    options: LimiterOptions,
    shards: Box<[ShardSlot]>,
    hints: Box<[TableHint]>,
    shard_mask: usize,
    /// `options.max_states`, at least 1.
    max_states: usize,
    /// States tracked, all shards together. A slot is reserved here before a state is
    /// inserted, so the total never passes `max_states` even while shards insert at once.
    states: AtomicUsize,
    evictions: AtomicU64,
    /// Counts of other node slots held (one per cell and slot), at most `max_states`.
    remote_counts: AtomicUsize,
    /// Remote counts evicted or refused at the caps.
    remote_dropped: AtomicU64,
    /// Most changed states a shard notes between two drains.
    changed_cap: usize,
    /// Changed states not noted because a shard's set was full.
    changes_dropped: AtomicU64,
    /// The shard the next drain of changed cells starts at (so that a bounded drain does
    /// not always serve the first shards).
    drain_cursor: AtomicUsize,
    /// Counts restored from a snapshot that this node holds back from what it publishes
    /// (`snapshot.rs`): peers still hold them in its previous generation's slot.
    held_back: snapshot::HeldBack,
}

/// A shard on its own cache lines, so that threads working on neighbouring shards do not
/// invalidate each other's lock word.
#[repr(align(128))]
struct ShardSlot(Mutex<Shard>);

/// Where a shard's window table lives, published for prefetching: a check computes the
/// address of the slot its state starts at and asks the CPU to fetch that cache line
/// *before* waiting for the shard's lock, so the two misses overlap. Written under the
/// shard's lock whenever the table moves (growth, shrink); read without it, so a reader may
/// see a stale pair — harmless, since the address is only a hint and never dereferenced.
/// Kept apart from the locks so that these lines stay shared in every core's cache.
#[derive(Debug, Default)]
struct TableHint {
    base: AtomicPtr<u8>,
    mask: AtomicUsize,
}

/// One check, resolved: its state hash, shard and parameters.
#[derive(Debug, Clone)]
struct Prepared {
    hash: u64,
    /// The limit's fingerprint (for naming the state's cells when it changes).
    fingerprint: u64,
    /// The limit's name for the answer (this thread's copy, see `hash.rs`).
    name: Arc<str>,
    shard: usize,
    params: WindowParams,
    log: bool,
    /// Index of the first check naming the same state (itself if none before it): a state
    /// named twice in one request is counted once.
    first: usize,
}

#[derive(Debug, Clone, Copy)]
enum View {
    Window(WindowView),
    Log(LogView),
}

impl View {
    fn remaining(&self, p: &WindowParams) -> u64 {
        match self {
            View::Window(v) => v.remaining(p),
            View::Log(v) => v.remaining(p),
        }
    }

    fn reset_secs(&self, p: &WindowParams, now_ms: u64) -> u64 {
        match self {
            View::Window(v) => v.reset_secs(p, now_ms),
            View::Log(v) => v.reset_secs(p, now_ms),
        }
    }

    /// The view after `hits` were admitted.
    fn after_admitting(&self, hits: u64, now_ms: u64) -> View {
        match *self {
            View::Window(v) => View::Window(v.after_admitting(hits)),
            View::Log(v) => View::Log(LogView {
                in_window: v.in_window.saturating_add(hits),
                newest_ms: Some(v.newest_ms.map_or(now_ms, |n| n.max(now_ms))),
                ..v
            }),
        }
    }
}

impl Limiter {
    pub fn new(options: LimiterOptions, clock: Arc<dyn Clock>) -> Self {
        let max_states = options.max_states.max(1);
        let wanted = if options.shards == 0 {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            cores.saturating_mul(4)
        } else {
            options.shards
        };
        // A power of two (the shard is picked by masking hash bits), at most 2^16.
        let shards = wanted.clamp(1, 1 << 16).next_power_of_two();
        let slots = (0..shards)
            .map(|_| ShardSlot(Mutex::new(Shard::default())))
            .collect();
        Self {
            clock,
            options,
            shards: slots,
            hints: (0..shards).map(|_| TableHint::default()).collect(),
            shard_mask: shards - 1,
            max_states,
            states: AtomicUsize::new(0),
            evictions: AtomicU64::new(0),
            remote_counts: AtomicUsize::new(0),
            remote_dropped: AtomicU64::new(0),
            // Twice a shard's share of the cap: the states one shard can change between
            // two drains, with room for an uneven spread.
            changed_cap: (max_states / shards).saturating_mul(2).max(64),
            changes_dropped: AtomicU64::new(0),
            drain_cursor: AtomicUsize::new(0),
            held_back: snapshot::HeldBack::default(),
        }
    }

    /// The options the engine was built with.
    pub fn options(&self) -> &LimiterOptions {
        &self.options
    }

    /// The keyed 64-bit identity of a (limit, key) state: SipHash-1-3 under
    /// [`LimiterOptions::hash_key`] of the limit's fingerprint (name, limit, window,
    /// algorithm) followed by the key (encoding: `src/limiter/hash.rs`), never 0. The same on every
    /// node sharing the hash key, on every CPU and build; a limit that changes gets new
    /// identities (fresh counters), an unchanged one keeps them across a configuration
    /// reload.
    pub fn state_hash(&self, limit: &LimitSpec, key: &str) -> u64 {
        hash::resolve(&self.options.hash_key, limit, key)
            .hash
            .max(1)
    }

    /// The shard that holds the state `hash`. Middle bits: hashbrown uses the low bits for
    /// the bucket and the top 7 for its tag, so taking either for the shard would skew the
    /// tables.
    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        (hash >> 32) as usize & self.shard_mask
    }

    fn prepare_one(&self, c: &LimitCheck<'_>, first: usize) -> Prepared {
        let resolved = hash::resolve(&self.options.hash_key, c.limit, c.key);
        // 0 marks an empty slot in the tables; the one hash in 2^64 that is 0 shares the
        // identity of the one that is 1.
        let hash = resolved.hash.max(1);
        Prepared {
            hash,
            fingerprint: resolved.fingerprint,
            name: resolved.name,
            shard: self.shard_of(hash),
            params: params_of(c.limit),
            log: c.limit.algorithm == Algorithm::SlidingLog && c.limit.limit <= SLIDING_LOG_MAX,
            first,
        }
    }

    fn prepare(&self, checks: &[LimitCheck<'_>]) -> SmallVec<[Prepared; 4]> {
        let mut out: SmallVec<[Prepared; 4]> = SmallVec::with_capacity(checks.len());
        for (i, c) in checks.iter().enumerate() {
            let mut p = self.prepare_one(c, i);
            p.first = out.iter().position(|q| q.hash == p.hash).unwrap_or(i);
            out.push(p);
        }
        out
    }

    /// Checks every limit together: admitted only if all admit; a denial consumes nothing.
    /// `hits == 0` peeks without counting: it answers as a request of one hit would be
    /// answered (denied when nothing is left) and changes no state.
    pub fn check(&self, checks: &[LimitCheck<'_>], hits: u64) -> Decision {
        if let [one] = checks {
            return self.check_one(one, hits);
        }
        let now_ms = self.clock.now_millis();
        let prepared = self.prepare(checks);

        // Lock every shard involved, in ascending order, each once.
        let mut order: SmallVec<[usize; 4]> = prepared.iter().map(|p| p.shard).collect();
        order.sort_unstable();
        order.dedup();
        prepared.iter().for_each(|p| self.prefetch(p));
        let mut guards: SmallVec<[MutexGuard<'_, Shard>; 4]> =
            order.iter().map(|&s| self.shards[s].0.lock()).collect();
        let slot = |shard: usize| order.iter().position(|&s| s == shard).unwrap_or(0);

        // Phase 1: decide every limit without writing anything.
        let probe = hits.max(1);
        let mut views: SmallVec<[View; 4]> = SmallVec::with_capacity(prepared.len());
        let mut seen: SmallVec<[View; 4]> = SmallVec::with_capacity(prepared.len());
        let mut admits: SmallVec<[bool; 4]> = SmallVec::with_capacity(prepared.len());
        let mut retry: SmallVec<[Option<u64>; 4]> = SmallVec::with_capacity(prepared.len());
        for p in &prepared {
            let e = evaluate(&guards[slot(p.shard)], p, probe, now_ms);
            views.push(e.own);
            seen.push(e.seen);
            admits.push(e.admits);
            retry.push(e.retry_after);
        }
        let allowed = admits.iter().all(|&a| a);

        // Phase 2: write. Admitted: count the hits in every limit. Denied: count nothing;
        // only the attempts (abuse bookkeeping) move.
        let mut abuse: SmallVec<[bool; 4]> = SmallVec::from_elem(false, prepared.len());
        if hits > 0 {
            let protect: SmallVec<[u64; 4]> = prepared.iter().map(|p| p.hash).collect();
            for (i, p) in prepared.iter().enumerate() {
                if p.first != i {
                    continue;
                }
                let shard = &mut guards[slot(p.shard)];
                if allowed {
                    self.write_admitted(shard, p, &views[i], hits, now_ms, &protect);
                } else {
                    abuse[i] =
                        self.write_attempt(shard, p, &views[i], hits, now_ms, !admits[i], &protect);
                }
            }
        }
        drop(guards);

        let mut outcomes: SmallVec<[LimitOutcome; 2]> = SmallVec::with_capacity(checks.len());
        for (i, p) in prepared.iter().enumerate() {
            let f = p.first;
            let view = if allowed && hits > 0 {
                seen[f].after_admitting(hits, now_ms)
            } else {
                seen[f]
            };
            outcomes.push(outcome(
                p.name.clone(),
                &p.params,
                &view,
                now_ms,
                if allowed { None } else { retry[f] },
                i == f && abuse[i],
            ));
        }
        let deciding = if allowed {
            let mut best = 0;
            for (i, o) in outcomes.iter().enumerate() {
                if o.remaining < outcomes[best].remaining {
                    best = i;
                }
            }
            best
        } else {
            admits.iter().position(|&a| !a).unwrap_or(0)
        };
        Decision {
            allowed,
            deciding,
            outcomes,
        }
    }

    /// [`Limiter::check`] for the common request that names a single limit: the same steps
    /// without the bookkeeping of several shards and outcomes.
    fn check_one(&self, check: &LimitCheck<'_>, hits: u64) -> Decision {
        let p = self.prepare_one(check, 0);
        // Prefetch first: reading the clock and taking the lock overlap the slot's miss.
        self.prefetch(&p);
        let now_ms = self.clock.now_millis();
        let probe = hits.max(1);
        let mut shard = self.shards[p.shard].0.lock();
        let Evaluated {
            own,
            seen,
            admits: allowed,
            retry_after,
        } = evaluate(&shard, &p, probe, now_ms);
        let mut abuse = false;
        if hits > 0 {
            let protect = [p.hash];
            if allowed {
                self.write_admitted(&mut shard, &p, &own, hits, now_ms, &protect);
            } else {
                abuse = self.write_attempt(&mut shard, &p, &own, hits, now_ms, true, &protect);
            }
        }
        drop(shard);
        let view = if allowed && hits > 0 {
            seen.after_admitting(hits, now_ms)
        } else {
            seen
        };
        let mut outcomes = SmallVec::new();
        outcomes.push(outcome(
            p.name,
            &p.params,
            &view,
            now_ms,
            retry_after,
            abuse,
        ));
        Decision {
            allowed,
            deciding: 0,
            outcomes,
        }
    }

    fn write_admitted(
        &self,
        shard: &mut Shard,
        p: &Prepared,
        view: &View,
        hits: u64,
        now_ms: u64,
        protect: &[u64],
    ) {
        if let Some(changed) = shard.changed.as_mut() {
            let noted = changed.note(
                p.hash,
                ChangedState {
                    limit: p.fingerprint,
                    window_secs: p.params.window_secs,
                    log: p.log,
                },
                self.changed_cap,
            );
            if !noted {
                self.changes_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        match view {
            View::Window(v) => {
                let new = v.admitted(p.hash, &p.params, hits);
                if let Some(i) = shard.windows.find(p.hash) {
                    shard.windows.set(i, &new);
                } else if self.make_room(shard, now_ms, protect) {
                    shard.windows.insert_new(&new);
                    self.publish_hint(p.shard, shard);
                }
            }
            View::Log(v) => {
                if let Some(e) = shard.logs.find_mut(p.hash, |e| e.hash == p.hash) {
                    e.admit(v, &p.params, hits, now_ms);
                } else if self.make_room(shard, now_ms, protect) {
                    let mut e = LogState::new(p.hash);
                    e.admit(v, &p.params, hits, now_ms);
                    shard.logs.insert_unique(p.hash, e, |e| e.hash);
                }
            }
        }
    }

    /// Records a denied request's attempted hits in a limit's state (creating the state only
    /// for a limit that itself denied). Returns whether abuse is to be reported now.
    #[allow(clippy::too_many_arguments)]
    fn write_attempt(
        &self,
        shard: &mut Shard,
        p: &Prepared,
        view: &View,
        hits: u64,
        now_ms: u64,
        denied_here: bool,
        protect: &[u64],
    ) -> bool {
        let limit = p.params.limit;
        match view {
            View::Window(v) => {
                let mut new = v.attempted(p.hash, &p.params, hits);
                let report = denied_here && abuse_due(new.attempts, limit);
                if report {
                    new.attempts |= ABUSE_REPORTED;
                }
                if let Some(i) = shard.windows.find(p.hash) {
                    shard.windows.set(i, &new);
                } else if denied_here && self.make_room(shard, now_ms, protect) {
                    shard.windows.insert_new(&new);
                    self.publish_hint(p.shard, shard);
                }
                report
            }
            View::Log(v) => {
                let exists = shard.logs.find(p.hash, |e| e.hash == p.hash).is_some();
                if !exists {
                    if !(denied_here && self.make_room(shard, now_ms, protect)) {
                        return false;
                    }
                    shard
                        .logs
                        .insert_unique(p.hash, LogState::new(p.hash), |e| e.hash);
                }
                let Some(e) = shard.logs.find_mut(p.hash, |e| e.hash == p.hash) else {
                    return false;
                };
                e.attempt(v, &p.params, hits, now_ms);
                let report = denied_here && abuse_due(e.attempts, limit);
                if report {
                    e.mark_abuse_reported();
                }
                report
            }
        }
    }

    /// Asks the CPU to start loading the table slot where `p`'s state would be.
    #[inline]
    fn prefetch(&self, p: &Prepared) {
        if p.log {
            return;
        }
        let hint = &self.hints[p.shard];
        let base = hint.base.load(Ordering::Relaxed);
        if base.is_null() {
            return;
        }
        let mask = hint.mask.load(Ordering::Relaxed);
        let at = table::WindowTable::slot_ptr(base, mask, p.hash);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it never faults and reads nothing into the program,
        // whatever the address (a stale base after the table moved included).
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(at.cast());
            // A 32-byte slot may straddle two lines.
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(31).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    /// Publishes where shard `index`'s window table now lives (after it may have moved).
    fn publish_hint(&self, index: usize, shard: &Shard) {
        let (base, mask) = shard.windows.probe_base();
        let hint = &self.hints[index];
        if hint.base.load(Ordering::Relaxed).cast_const() != base {
            hint.base.store(base.cast_mut(), Ordering::Relaxed);
            hint.mask.store(mask, Ordering::Relaxed);
        }
    }

    /// Reserves a slot for one more state, to be inserted into `shard`. At the cap it first
    /// drops `shard`'s idle states, then evicts its oldest ones (a batch of 1/64 of the
    /// shard, so that a flood of new keys pays for the scan once per batch, not per key).
    /// Only the shard already locked is touched: locking another here could deadlock with a
    /// request holding it. Returns false, and the state is not stored, in the rare case
    /// that nothing in `shard` can go (every state in it belongs to this request, or other
    /// threads took the freed slots first).
    fn make_room(&self, shard: &mut Shard, now_ms: u64, protect: &[u64]) -> bool {
        if self.reserve_slot() {
            return true;
        }
        let dropped = shard.drop_idle(now_ms / 1000, protect);
        self.states.fetch_sub(dropped, Ordering::Relaxed);
        if self.reserve_slot() {
            return true;
        }
        let batch = (shard.len() / 64).max(1);
        let evicted = shard.evict_oldest(batch, protect);
        self.states.fetch_sub(evicted, Ordering::Relaxed);
        self.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
        self.reserve_slot()
    }

    fn reserve_slot(&self) -> bool {
        self.states
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_states).then_some(n + 1)
            })
            .is_ok()
    }

    /// Number of (limit, key) states currently tracked.
    pub fn tracked_states(&self) -> usize {
        self.states.load(Ordering::Relaxed)
    }

    /// States evicted because the cap was reached, since start.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Drops idle states (both windows passed). Called periodically by the server.
    pub fn sweep(&self) {
        let now_secs = self.clock.now_millis() / 1000;
        for (i, s) in self.shards.iter().enumerate() {
            let mut shard = s.0.lock();
            let dropped = shard.drop_idle(now_secs, &[]);
            if dropped > 0 {
                self.states.fetch_sub(dropped, Ordering::Relaxed);
                shard.shrink_if_sparse();
                self.publish_hint(i, &shard);
            }
            let passed = shard.remote.drop_passed(now_secs);
            self.remote_counts.fetch_sub(passed, Ordering::Relaxed);
        }
        self.held_back.drop_passed(now_secs);
    }
}

/// One limit decided against its shard, before anything is written.
struct Evaluated {
    /// This node's own state now: what an admission or an attempt writes to.
    own: View,
    /// What the decision sees: the own state plus the counts merged from other nodes
    /// (the same as `own` when the shard holds none).
    seen: View,
    /// Whether `probe` hits would pass.
    admits: bool,
    /// If not, when they would (seconds).
    retry_after: Option<u64>,
}

/// Decides one limit against its shard without writing.
#[inline]
fn evaluate(shard: &Shard, p: &Prepared, probe: u64, now_ms: u64) -> Evaluated {
    let w = p.params.window_secs;
    if p.log {
        let state = shard.logs.find(p.hash, |e| e.hash == p.hash);
        let own = LogView::at(state, &p.params, now_ms);
        let (seen, remote) = if shard.remote.is_empty() {
            (own, None)
        } else {
            let start = u64::from(own.window_start);
            let (current, previous) = shard.remote.window_totals(p.hash, start, w);
            let remote = WindowView::of_counts(start, current, previous, &p.params, now_ms);
            (own.with_remote(&remote, &p.params), Some(remote))
        };
        let admits = seen.admits(&p.params, probe);
        let retry_after = (!admits).then(|| {
            let r = seen.retry_after_secs(state, &p.params, probe, now_ms);
            // Other nodes' hits are not records here: never earlier than they alone allow.
            remote.map_or(r, |v| r.max(v.retry_after_secs(&p.params, probe, now_ms)))
        });
        Evaluated {
            own: View::Log(own),
            seen: View::Log(seen),
            admits,
            retry_after,
        }
    } else {
        let state = shard.windows.find(p.hash).map(|i| shard.windows.get(i));
        let own = WindowView::at(state.as_ref(), &p.params, now_ms);
        let seen = if shard.remote.is_empty() {
            own
        } else {
            let (current, previous) = shard.remote.window_totals(p.hash, own.start_secs, w);
            own.with_remote(current, previous, &p.params)
        };
        let admits = seen.admits(&p.params, probe);
        let retry_after = (!admits).then(|| seen.retry_after_secs(&p.params, probe, now_ms));
        Evaluated {
            own: View::Window(own),
            seen: View::Window(seen),
            admits,
            retry_after,
        }
    }
}

/// One limit's part of the answer.
fn outcome(
    name: Arc<str>,
    params: &WindowParams,
    view: &View,
    now_ms: u64,
    retry_after_secs: Option<u64>,
    abuse: bool,
) -> LimitOutcome {
    LimitOutcome {
        name,
        limit: params.limit,
        window_secs: params.window_secs,
        remaining: view.remaining(params),
        reset_secs: view.reset_secs(params, now_ms),
        retry_after_secs,
        abuse,
    }
}

/// The arithmetic's view of a limit: the limit clamped to [`MAX_LIMIT`], the window in whole
/// seconds (rounded up) between 1 s and [`MAX_WINDOW_SECS`].
fn params_of(spec: &LimitSpec) -> WindowParams {
    // Whole seconds, rounded up (no 128-bit division: this runs on every check).
    let secs = spec
        .window
        .as_secs()
        .saturating_add(u64::from(spec.window.subsec_nanos() > 0))
        .clamp(1, MAX_WINDOW_SECS);
    WindowParams {
        limit: spec.limit.min(MAX_LIMIT),
        window_secs: secs,
    }
}
