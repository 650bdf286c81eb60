//! Counts from other nodes: what each other node slot reported for a cell, merged by max,
//! and added to this node's own counts when deciding.
//!
//! - **Merge.** [`Limiter::merge_cell`] records that `slot` counted `count` hits in `cell`.
//!   A slot's count of a window only grows, so the merge keeps the larger of what it holds
//!   and what it is told and never lowers a count: merging is commutative, associative and
//!   idempotent, and lost, repeated or reordered reports change nothing once a later one
//!   arrives.
//! - **Decide.** A sliding-window counter decides on `own + Σ slots` for the current window
//!   and for the previous one. Other nodes publish counts, not the time of their latest
//!   hit, so a window holding remote hits weighs as spread over its whole length
//!   (`window.rs`), never less than its real weight. A sliding log adds the remote hits as an estimate in the same way (hits
//!   of other nodes spread evenly over their windows, rounded up) to its own exact count:
//!   other nodes publish counts, not timestamps. Its `retry_after` is then approximate:
//!   never earlier than its own records or the remote counts alone require.
//! - **Which windows.** Only the window a decision can still use: the current and the
//!   previous window of the limiter's clock, and one window ahead for a node whose clock
//!   runs a little ahead (held until this clock reaches it). Older or later cells, and
//!   malformed ones, are ignored.
//! - **Bounds.** At most `max_states` remote counts (one per cell and slot) in all, and at
//!   most [`MAX_SLOTS_PER_CELL`] slots per cell. At the cap a shard first drops its cells
//!   whose windows have passed, then evicts the cells farthest from their limit: those whose
//!   weight in a decision now (the whole count in its own window, the share the sliding
//!   window still gives it in the next) is the smallest fraction of the limit's quota
//!   ([`Limiter::merge_cell_with_quota`]; a cell merged without one ranks as if its quota
//!   were [`super::MAX_LIMIT`]). A new count that would itself rank farthest is refused
//!   instead, and a count that still finds no room is not recorded. Every count so lost is
//!   counted
//!   ([`Limiter::remote_counts_dropped`]); losing one only makes decisions count fewer hits
//!   of other nodes, so the caps can only err towards admitting. The idle sweep drops
//!   cells whose windows have passed.
//! - **Cost.** A shard that holds no remote count decides exactly as before: the remote map
//!   is consulted only when it is not empty.
//!
//! The node's own counts are not touched by a merge, so [`Limiter::export_cell`] keeps
//! reporting only what this node admitted (what its peers must merge).

use std::sync::atomic::Ordering;

use hashbrown::HashMap;
use smallvec::SmallVec;

use super::cell::{CellId, NodeSlot};
use super::Limiter;

/// Most node slots one cell keeps counts for.
pub const MAX_SLOTS_PER_CELL: usize = 64;

/// What [`Limiter::merge_cell`] did with a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The slot's count of the cell went up (or was new).
    Raised,
    /// The cell already held that count or more for the slot (or the count was 0).
    Unchanged,
    /// Not recorded: the cell is malformed or its window is neither the current, the
    /// previous nor the next one.
    Ignored,
    /// Not recorded: no room under the caps (counted in
    /// [`Limiter::remote_counts_dropped`]).
    Dropped,
}

/// What one cell holds: each slot's count and their sum.
#[derive(Debug, Clone)]
struct RemoteCell {
    limit: u64,
    window_secs: u64,
    /// The limit's quota, for ranking cells at the cap (0: not known).
    quota: u64,
    /// Sum of `slots`' counts (saturating), read by every decision on the state.
    total: u64,
    slots: SmallVec<[(NodeSlot, u64); 2]>,
}

impl RemoteCell {
    /// Unix second at which the window no longer weighs in any decision.
    fn expiry(&self, start: u64) -> u64 {
        start.saturating_add(2 * self.window_secs)
    }

    /// How close the cell is to its limit at `now_secs`: the hits it adds to a decision now
    /// as a fraction of the quota. In its own window (or one ahead) all its hits count; in
    /// the next one the sliding window weighs them by the part of the window still to run.
    fn closeness(&self, start: u64, now_secs: u64) -> f64 {
        let w = self.window_secs.max(1);
        let weight = if now_secs < start.saturating_add(w) {
            1.0
        } else {
            self.expiry(start).saturating_sub(now_secs) as f64 / w as f64
        };
        let quota = if self.quota == 0 {
            super::MAX_LIMIT
        } else {
            self.quota
        };
        self.total as f64 * weight / quota as f64
    }
}

/// How raising a slot's count in place went.
pub(crate) enum Raise {
    Raised,
    Unchanged,
    /// The slot has no count in the cell yet: one must be reserved under the global cap.
    NewCount,
    /// The cell already holds [`MAX_SLOTS_PER_CELL`] slots.
    CellFull,
}

/// One shard's counts from other nodes: nothing but a null pointer in the shard until the
/// first one arrives, and again once its cells have all gone, so that a shard without them
/// stays as small as it was.
#[derive(Debug, Default)]
pub(crate) struct RemoteCells(Option<Box<Cells>>);

impl RemoteCells {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    pub fn total(&self, hash: u64, start: u64) -> u64 {
        self.0.as_ref().map_or(0, |c| c.total(hash, start))
    }

    pub fn window_totals(&self, hash: u64, start: u64, window_secs: u64) -> (u64, u64) {
        self.0
            .as_ref()
            .map_or((0, 0), |c| c.window_totals(hash, start, window_secs))
    }

    pub fn raise(&mut self, cell: &CellId, slot: NodeSlot, count: u64) -> Raise {
        self.0
            .as_mut()
            .map_or(Raise::NewCount, |c| c.raise(cell, slot, count))
    }

    pub fn insert(&mut self, cell: &CellId, slot: NodeSlot, count: u64, quota: u64) {
        self.0
            .get_or_insert_with(Default::default)
            .insert(cell, slot, count, quota);
    }

    pub fn slot_count(&self, cell: &CellId, slot: NodeSlot) -> Option<u64> {
        self.0.as_ref()?.slot_count(cell, slot)
    }

    pub fn for_each(&self, f: impl FnMut(CellId, NodeSlot, u64)) {
        if let Some(c) = &self.0 {
            c.for_each(f);
        }
    }

    /// Slot counts held.
    pub fn counts(&self) -> usize {
        self.0.as_ref().map_or(0, |c| c.counts)
    }

    pub fn drop_passed(&mut self, now_secs: u64) -> usize {
        self.remove(|c| c.drop_passed(now_secs))
    }

    /// Makes room for `count` more hits of `cell` (quota `quota`) by evicting at least
    /// `batch` slot counts of the cells farthest from their limit, never `cell`'s own. `None`
    /// when `cell`, with the new count, would itself be the farthest: it is the one to lose.
    pub fn evict_farthest(
        &mut self,
        batch: usize,
        now_secs: u64,
        incoming: (&CellId, u64, u64),
    ) -> Option<usize> {
        let mut refused = false;
        let evicted = self.remove(|c| match c.evict_farthest(batch, now_secs, incoming) {
            Some(n) => n,
            None => {
                refused = true;
                0
            }
        });
        (!refused).then_some(evicted)
    }

    fn remove(&mut self, f: impl FnOnce(&mut Cells) -> usize) -> usize {
        let Some(c) = self.0.as_mut() else {
            return 0;
        };
        let removed = f(c);
        if c.cells.is_empty() {
            self.0 = None;
        }
        removed
    }
}

/// The counts themselves, keyed by (state hash, window start).
#[derive(Debug, Default)]
struct Cells {
    cells: HashMap<(u64, u64), RemoteCell>,
    /// Slot counts held, all cells together.
    counts: usize,
}

impl Cells {
    /// Sum of the slots' counts of the state `hash` in the window starting at `start`.
    pub fn total(&self, hash: u64, start: u64) -> u64 {
        self.cells.get(&(hash, start)).map_or(0, |c| c.total)
    }

    /// The remote hits of the window starting at `start` and of the one before it.
    pub fn window_totals(&self, hash: u64, start: u64, window_secs: u64) -> (u64, u64) {
        let previous = start
            .checked_sub(window_secs)
            .map_or(0, |p| self.total(hash, p));
        (self.total(hash, start), previous)
    }

    /// Raises `slot`'s count of `cell` to `count` if it is there.
    pub fn raise(&mut self, cell: &CellId, slot: NodeSlot, count: u64) -> Raise {
        let Some(c) = self
            .cells
            .get_mut(&(cell.state_hash, cell.window_start_secs))
        else {
            return Raise::NewCount;
        };
        let full = c.slots.len() >= MAX_SLOTS_PER_CELL;
        match c.slots.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, held)) if *held >= count => Raise::Unchanged,
            Some((_, held)) => {
                c.total = c.total.saturating_add(count - *held);
                *held = count;
                Raise::Raised
            }
            None if full => Raise::CellFull,
            None => Raise::NewCount,
        }
    }

    /// Adds `slot`'s first count of `cell` (after [`RemoteCells::raise`] said `NewCount`
    /// and room was reserved).
    pub fn insert(&mut self, cell: &CellId, slot: NodeSlot, count: u64, quota: u64) {
        let c = self
            .cells
            .entry((cell.state_hash, cell.window_start_secs))
            .or_insert_with(|| RemoteCell {
                limit: cell.limit,
                window_secs: cell.window_secs,
                quota,
                total: 0,
                slots: SmallVec::new(),
            });
        if c.quota == 0 {
            c.quota = quota;
        }
        c.slots.push((slot, count));
        c.total = c.total.saturating_add(count);
        self.counts += 1;
    }

    /// `slot`'s count of `cell`, if held.
    pub fn slot_count(&self, cell: &CellId, slot: NodeSlot) -> Option<u64> {
        let c = self.cells.get(&(cell.state_hash, cell.window_start_secs))?;
        c.slots.iter().find(|(s, _)| *s == slot).map(|&(_, n)| n)
    }

    /// Calls `f` with every held count.
    pub fn for_each(&self, mut f: impl FnMut(CellId, NodeSlot, u64)) {
        for (&(state_hash, window_start_secs), c) in &self.cells {
            let id = CellId {
                limit: c.limit,
                state_hash,
                window_secs: c.window_secs,
                window_start_secs,
            };
            for &(slot, n) in &c.slots {
                f(id, slot, n);
            }
        }
    }

    /// Drops the cells whose windows no longer weigh in any decision at `now_secs`.
    /// Returns how many slot counts went.
    pub fn drop_passed(&mut self, now_secs: u64) -> usize {
        self.remove_where(|&(_, start), c| c.expiry(start) <= now_secs)
    }

    /// Evicts whole cells, those farthest from their limit first ([`RemoteCell::closeness`],
    /// ties to the older window), until at least `batch` slot counts have gone or none but
    /// `incoming`'s cell is left. `incoming` is the cell a count is being made room for, the
    /// count and the quota: never evicted; and when, with that count, it would be farther
    /// from its limit than every other cell, nothing is evicted and `None` says so.
    pub fn evict_farthest(
        &mut self,
        batch: usize,
        now_secs: u64,
        (cell, count, quota): (&CellId, u64, u64),
    ) -> Option<usize> {
        let keep = (cell.state_hash, cell.window_start_secs);
        let mut ranked: Vec<(f64, u64, (u64, u64))> = self
            .cells
            .iter()
            .filter(|(k, _)| **k != keep)
            .map(|(&k, c)| (c.closeness(k.1, now_secs), c.expiry(k.1), k))
            .collect();
        let incoming = match self.cells.get(&keep) {
            Some(c) => RemoteCell {
                total: c.total.saturating_add(count),
                ..c.clone()
            },
            None => RemoteCell {
                limit: cell.limit,
                window_secs: cell.window_secs,
                quota,
                total: count,
                slots: SmallVec::new(),
            },
        };
        let incoming = incoming.closeness(keep.1, now_secs);
        let order = |a: &(f64, u64, (u64, u64)), b: &(f64, u64, (u64, u64))| {
            a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
        };
        let farthest = ranked.iter().min_by(|a, b| order(a, b))?;
        if incoming <= farthest.0 {
            return None;
        }
        // The fewest farthest cells that together hold `batch` slot counts.
        ranked.sort_unstable_by(order);
        let mut go = hashbrown::HashSet::new();
        let mut held = 0;
        for (_, _, k) in ranked {
            if held >= batch {
                break;
            }
            held += self.cells.get(&k).map_or(0, |c| c.slots.len());
            go.insert(k);
        }
        Some(self.remove_where(|k, _| go.contains(k)))
    }

    fn remove_where(&mut self, mut remove: impl FnMut(&(u64, u64), &RemoteCell) -> bool) -> usize {
        if self.cells.is_empty() {
            return 0;
        }
        let mut removed = 0;
        self.cells.retain(|k, c| {
            if remove(k, c) {
                removed += c.slots.len();
                false
            } else {
                true
            }
        });
        self.counts -= removed;
        if self.cells.capacity() > 64 && self.cells.len() * 4 < self.cells.capacity() {
            self.cells.shrink_to_fit();
        }
        removed
    }
}

impl Limiter {
    /// Records that node slot `slot` counted `count` hits in `cell`, keeping the larger of
    /// that and what was held for the slot (see the module doc of `remote.rs` for the
    /// windows accepted, the caps and what decisions then count). Never lowers a count,
    /// never touches this node's own counts. Without the limit's quota, a cell ranks at the
    /// cap as if its quota were [`super::MAX_LIMIT`]: prefer
    /// [`Limiter::merge_cell_with_quota`].
    pub fn merge_cell(&self, cell: &CellId, slot: NodeSlot, count: u64) -> MergeOutcome {
        self.merge_cell_with_quota(cell, slot, count, 0)
    }

    /// [`Limiter::merge_cell`] for a cell whose limit admits `quota` hits per window (0: not
    /// known): at the memory cap, cells farthest from their limit are evicted first, so an
    /// eviction forgets the counts that weigh least in a decision.
    pub fn merge_cell_with_quota(
        &self,
        cell: &CellId,
        slot: NodeSlot,
        count: u64,
        quota: u64,
    ) -> MergeOutcome {
        if !cell.is_well_formed() {
            return MergeOutcome::Ignored;
        }
        let now_secs = self.clock.now_millis() / 1000;
        let w = cell.window_secs;
        let current = now_secs / w * w;
        let start = cell.window_start_secs;
        if start.saturating_add(w) < current || start > current.saturating_add(w) {
            return MergeOutcome::Ignored;
        }
        if count == 0 {
            // 0 never raises a maximum.
            return MergeOutcome::Unchanged;
        }
        let mut shard = self.shards[self.shard_of(cell.state_hash)].0.lock();
        match shard.remote.raise(cell, slot, count) {
            Raise::Raised => MergeOutcome::Raised,
            Raise::Unchanged => MergeOutcome::Unchanged,
            Raise::CellFull => {
                self.remote_dropped.fetch_add(1, Ordering::Relaxed);
                MergeOutcome::Dropped
            }
            Raise::NewCount => {
                if !self.reserve_remote(&mut shard.remote, now_secs, (cell, count, quota)) {
                    self.remote_dropped.fetch_add(1, Ordering::Relaxed);
                    return MergeOutcome::Dropped;
                }
                shard.remote.insert(cell, slot, count, quota);
                MergeOutcome::Raised
            }
        }
    }

    /// Reserves room for one more remote count, `incoming` (cell, count, quota), to be
    /// inserted into `remote` (the locked shard's): at the cap, drops the shard's passed
    /// cells, then evicts the ones farthest from their limit (unless `incoming` would be
    /// the farthest: then it is refused).
    fn reserve_remote(
        &self,
        remote: &mut RemoteCells,
        now_secs: u64,
        incoming: (&CellId, u64, u64),
    ) -> bool {
        let reserve = || {
            self.remote_counts
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < self.max_states).then_some(n + 1)
                })
                .is_ok()
        };
        if reserve() {
            return true;
        }
        let passed = remote.drop_passed(now_secs);
        self.remote_counts.fetch_sub(passed, Ordering::Relaxed);
        if reserve() {
            return true;
        }
        let batch = (remote.counts() / 64).max(1);
        let Some(evicted) = remote.evict_farthest(batch, now_secs, incoming) else {
            return false;
        };
        self.remote_counts.fetch_sub(evicted, Ordering::Relaxed);
        self.remote_dropped
            .fetch_add(evicted as u64, Ordering::Relaxed);
        reserve()
    }

    /// The count slot `slot` has in `cell`, as merged here, if any.
    pub fn remote_count(&self, cell: &CellId, slot: NodeSlot) -> Option<u64> {
        let shard = self.shards[self.shard_of(cell.state_hash)].0.lock();
        shard.remote.slot_count(cell, slot)
    }

    /// The hits of every other slot in `cell` together, as a decision counts them.
    pub fn remote_total(&self, cell: &CellId) -> u64 {
        let shard = self.shards[self.shard_of(cell.state_hash)].0.lock();
        shard.remote.total(cell.state_hash, cell.window_start_secs)
    }

    /// Calls `f` with every remote count held (cell, slot, count), shard by shard (`f` runs
    /// while a shard is locked: it must not call back into the limiter).
    pub fn for_each_remote_count(&self, mut f: impl FnMut(CellId, NodeSlot, u64)) {
        for s in self.shards.iter() {
            s.0.lock().remote.for_each(&mut f);
        }
    }

    /// Remote counts held (one per cell and slot), all shards together.
    pub fn remote_counts_held(&self) -> usize {
        self.remote_counts.load(Ordering::Relaxed)
    }

    /// Remote counts lost to the caps since start: evicted, or refused for want of room.
    pub fn remote_counts_dropped(&self) -> u64 {
        self.remote_dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{limiter, limiter_with_shards, one, spec, T0};
    use super::super::{Algorithm, LimitCheck, LimitSpec};
    use super::*;

    const A: NodeSlot = NodeSlot(1);
    const B: NodeSlot = NodeSlot(2);

    #[test]
    fn merging_keeps_the_maximum_and_never_lowers() {
        let (l, _c) = limiter(1000);
        let s = spec("m", 100, 60, Algorithm::SlidingWindow);
        let cell = l.cell_at(&s, "k", T0);
        assert_eq!(l.merge_cell(&cell, A, 5), MergeOutcome::Raised);
        assert_eq!(l.merge_cell(&cell, A, 3), MergeOutcome::Unchanged);
        assert_eq!(l.merge_cell(&cell, A, 5), MergeOutcome::Unchanged);
        assert_eq!(l.merge_cell(&cell, A, 0), MergeOutcome::Unchanged);
        assert_eq!(l.remote_count(&cell, A), Some(5));
        assert_eq!(l.merge_cell(&cell, A, 7), MergeOutcome::Raised);
        assert_eq!(l.merge_cell(&cell, B, 2), MergeOutcome::Raised);
        assert_eq!(l.remote_count(&cell, A), Some(7));
        assert_eq!(l.remote_total(&cell), 9);
        assert_eq!(l.remote_counts_held(), 2);
        // The node's own count is untouched by merges.
        assert_eq!(l.export_cell(&cell), None);
    }

    #[test]
    fn a_merged_count_turns_an_admission_into_a_denial() {
        let (l, _c) = limiter(1000);
        let s = spec("m", 10, 60, Algorithm::SlidingWindow);
        assert!(one(&l, &s, "k", 4).allowed);
        assert_eq!(one(&l, &s, "k", 0).deciding().remaining, 6);
        assert!(one(&l, &s, "k", 0).allowed, "one more hit would pass");
        l.merge_cell(&l.cell_at(&s, "k", T0), A, 4);
        l.merge_cell(&l.cell_at(&s, "k", T0), B, 2);
        let d = one(&l, &s, "k", 1);
        assert!(!d.allowed, "4 own + 6 remote = the limit");
        assert_eq!(d.deciding().remaining, 0);
        assert!(d.deciding().retry_after_secs.is_some());
        // Another key, and the same key under another limit, are not affected.
        assert!(one(&l, &s, "other", 1).allowed);
        let t = spec("t", 10, 60, Algorithm::SlidingWindow);
        assert!(one(&l, &t, "k", 1).allowed);
        // The multi-limit path sees the remote counts too, and denies all or nothing.
        let d = l.check(
            &[
                LimitCheck {
                    limit: &t,
                    key: "k",
                },
                LimitCheck {
                    limit: &s,
                    key: "k",
                },
            ],
            1,
        );
        assert!(!d.allowed);
        assert_eq!(d.deciding, 1);
        assert_eq!(
            one(&l, &t, "k", 0).deciding().remaining,
            9,
            "nothing consumed"
        );
    }

    #[test]
    fn remote_counts_of_the_previous_window_weigh_like_own_ones_at_the_window_end() {
        // A remote count's phase is not shared: it weighs as own hits admitted in the last
        // moment of its window would (spread over the whole window), never less.
        let s = spec("w", 10, 60, Algorithm::SlidingWindow);
        let (own, own_clock) = limiter(1000);
        let (merged, merged_clock) = limiter(1000);
        own_clock.set_millis(T0 + 59_999);
        assert!(one(&own, &s, "k", 8).allowed);
        merged.merge_cell(&merged.cell_at(&s, "k", T0), A, 8);
        // (In their own window they differ in `reset` only: the own hits leave by now + W,
        // the remote ones, of unknown time, by the end of the next window.)
        for at in [60_000, 75_000, 90_000, 105_000] {
            own_clock.set_millis(T0 + at);
            merged_clock.set_millis(T0 + at);
            assert_eq!(
                one(&merged, &s, "k", 0).deciding(),
                one(&own, &s, "k", 0).deciding(),
                "at +{at} ms"
            );
        }
        // The own hits leave one window after they were admitted; the remote ones, whose
        // time is not known, still weigh 8/60000 of themselves until the window ends.
        own_clock.set_millis(T0 + 119_999);
        merged_clock.set_millis(T0 + 119_999);
        assert_eq!(one(&own, &s, "k", 0).deciding().remaining, 10);
        assert_eq!(one(&merged, &s, "k", 0).deciding().remaining, 9);
        merged_clock.set_millis(T0 + 120_000);
        assert_eq!(one(&merged, &s, "k", 0).deciding().remaining, 10);
        // And both together add up: half-way through the next window 8 own hits weigh 4 and
        // 8 remote ones weigh 4 more.
        merged_clock.set_millis(T0 + 90_000);
        assert!(one(&merged, &s, "k", 0).allowed);
        let (both, both_clock) = limiter(1000);
        assert!(one(&both, &s, "k", 8).allowed);
        both.merge_cell(&both.cell_at(&s, "k", T0), A, 8);
        both_clock.set_millis(T0 + 90_000);
        assert_eq!(one(&both, &s, "k", 0).deciding().remaining, 2);
    }

    #[test]
    fn cells_outside_the_windows_a_decision_uses_are_ignored() {
        let (l, c) = limiter(1000);
        let s = spec("w", 10, 60, Algorithm::SlidingWindow);
        c.set_millis(T0 + 180_000);
        let at = |ms: u64| l.cell_at(&s, "k", ms);
        // Two windows back, and two ahead: ignored.
        assert_eq!(l.merge_cell(&at(T0 + 60_000), A, 10), MergeOutcome::Ignored);
        assert_eq!(
            l.merge_cell(&at(T0 + 300_000), A, 10),
            MergeOutcome::Ignored
        );
        // Malformed: an unaligned start, a zero hash, a zero window.
        let mut bad = at(T0 + 180_000);
        bad.window_start_secs += 1;
        assert_eq!(l.merge_cell(&bad, A, 10), MergeOutcome::Ignored);
        let mut bad = at(T0 + 180_000);
        bad.state_hash = 0;
        assert_eq!(l.merge_cell(&bad, A, 10), MergeOutcome::Ignored);
        let mut bad = at(T0 + 180_000);
        bad.window_secs = 0;
        assert_eq!(l.merge_cell(&bad, A, 10), MergeOutcome::Ignored);
        assert_eq!(l.remote_counts_held(), 0);
        assert_eq!(one(&l, &s, "k", 0).deciding().remaining, 10);
        // One window ahead (a peer whose clock runs ahead): held, and counted once this
        // clock reaches it.
        assert_eq!(l.merge_cell(&at(T0 + 240_000), A, 10), MergeOutcome::Raised);
        assert_eq!(one(&l, &s, "k", 0).deciding().remaining, 10);
        c.set_millis(T0 + 240_000);
        assert_eq!(one(&l, &s, "k", 0).deciding().remaining, 0);
    }

    #[test]
    fn the_caps_hold_and_count_what_they_drop() {
        let (l, _c) = limiter_with_shards(16, 1);
        let s = spec("w", 10, 60, Algorithm::SlidingWindow);
        for i in 0..100 {
            let cell = l.cell_at(&s, &format!("k{i}"), T0);
            let r = l.merge_cell(&cell, A, 3);
            assert!(matches!(r, MergeOutcome::Raised | MergeOutcome::Dropped));
            assert!(l.remote_counts_held() <= 16);
        }
        assert_eq!(l.remote_counts_held(), 16);
        let mut held = 0;
        l.for_each_remote_count(|_, _, _| held += 1);
        assert_eq!(held, 16);
        assert_eq!(l.remote_counts_dropped(), 100 - 16);

        // Slots per cell.
        let (l, _c) = limiter(10_000);
        let cell = l.cell_at(&s, "k", T0);
        for slot in 0..MAX_SLOTS_PER_CELL as u32 {
            assert_eq!(l.merge_cell(&cell, NodeSlot(slot), 1), MergeOutcome::Raised);
        }
        let extra = NodeSlot(MAX_SLOTS_PER_CELL as u32);
        assert_eq!(l.merge_cell(&cell, extra, 1), MergeOutcome::Dropped);
        assert_eq!(l.remote_counts_dropped(), 1);
        // A slot already held can still be raised in a full cell.
        assert_eq!(l.merge_cell(&cell, NodeSlot(0), 2), MergeOutcome::Raised);
    }

    #[test]
    fn at_the_cap_passed_cells_go_first() {
        // One shard: room is only ever made in the shard the new count goes to.
        let (l, c) = limiter_with_shards(4, 1);
        let s = spec("w", 10, 60, Algorithm::SlidingWindow);
        for i in 0..4 {
            l.merge_cell(&l.cell_at(&s, &format!("old{i}"), T0), A, 1);
        }
        // Two windows later the old cells weigh in no decision: they make room without
        // counting as dropped.
        c.set_millis(T0 + 120_000);
        let fresh = l.cell_at(&s, "fresh", T0 + 120_000);
        assert_eq!(l.merge_cell(&fresh, A, 1), MergeOutcome::Raised);
        assert_eq!(l.remote_counts_dropped(), 0);
    }

    #[test]
    fn at_the_cap_the_cells_farthest_from_their_limit_go_first() {
        // One shard, room for four counts.
        let (l, c) = limiter_with_shards(4, 1);
        let s = spec("w", 10, 60, Algorithm::SlidingWindow);
        let big = spec("big", 1000, 60, Algorithm::SlidingWindow);
        let at = |spec: &LimitSpec, k: &str| l.cell_at(spec, k, T0);
        let merge = |spec: &LimitSpec, k: &str, n: u64| {
            l.merge_cell_with_quota(&at(spec, k), A, n, spec.limit)
        };
        assert_eq!(merge(&s, "near", 9), MergeOutcome::Raised);
        assert_eq!(merge(&s, "mid", 5), MergeOutcome::Raised);
        assert_eq!(merge(&s, "low", 2), MergeOutcome::Raised);
        // 9 of 1,000 is farther from its limit than 2 of 10.
        assert_eq!(merge(&big, "far", 9), MergeOutcome::Raised);
        // A count nearer its limit than the farthest held evicts that one, and only it.
        assert_eq!(merge(&s, "new", 8), MergeOutcome::Raised);
        assert_eq!(l.remote_count(&at(&big, "far"), A), None);
        for k in ["near", "mid", "low", "new"] {
            assert!(l.remote_count(&at(&s, k), A).is_some(), "{k}");
        }
        assert_eq!(l.remote_counts_dropped(), 1);
        // A count that would itself be the farthest is refused, evicting nothing.
        assert_eq!(merge(&s, "tiny", 1), MergeOutcome::Dropped);
        assert_eq!(l.remote_counts_dropped(), 2);
        assert_eq!(l.remote_counts_held(), 4);
        // A new slot in a held cell adds to that cell's weight, and the cell is never evicted
        // to make room for its own count: "low" with B's 4 (6 of 10) evicts "mid" (5).
        assert_eq!(
            l.merge_cell_with_quota(&at(&s, "low"), B, 4, 10),
            MergeOutcome::Raised
        );
        assert_eq!(l.remote_count(&at(&s, "mid"), A), None);
        assert_eq!(l.remote_total(&at(&s, "low")), 6);
        assert_eq!(l.remote_counts_dropped(), 3);
        // In the next window a cell weighs by the part of its window still to run: three
        // quarters of the way through, "low" weighs 6 × 1/4 = 1.5, "new" 2, "near" 2.25,
        // all less than the 3 of a count of the current window, which evicts "low".
        c.set_millis(T0 + 105_000);
        let now = |k: &str| l.cell_at(&s, k, T0 + 105_000);
        assert_eq!(
            l.merge_cell_with_quota(&now("fresh"), A, 3, 10),
            MergeOutcome::Raised
        );
        assert_eq!(l.remote_total(&at(&s, "low")), 0);
        assert_eq!(l.remote_count(&at(&s, "new"), A), Some(8));
        assert_eq!(l.remote_count(&at(&s, "near"), A), Some(9));
        assert_eq!(l.remote_counts_dropped(), 5, "both of low's slots");
        // Room for one more; then a count of the past window that would weigh least (5 ×
        // 1/4) is refused.
        assert_eq!(
            l.merge_cell_with_quota(&now("more"), A, 3, 10),
            MergeOutcome::Raised
        );
        assert_eq!(
            l.merge_cell_with_quota(&at(&s, "old"), A, 5, 10),
            MergeOutcome::Dropped
        );
        assert_eq!(l.remote_counts_held(), 4);
    }

    #[test]
    fn the_sweep_drops_remote_cells_whose_windows_passed() {
        let (l, c) = limiter(1000);
        let s = spec("w", 10, 60, Algorithm::SlidingWindow);
        l.merge_cell(&l.cell_at(&s, "k", T0), A, 3);
        l.merge_cell(&l.cell_at(&s, "k", T0), B, 3);
        c.set_millis(T0 + 119_999);
        l.sweep();
        assert_eq!(l.remote_counts_held(), 2, "still weighs in the next window");
        c.set_millis(T0 + 120_000);
        l.sweep();
        assert_eq!(l.remote_counts_held(), 0);
        let mut left = 0;
        l.for_each_remote_count(|_, _, _| left += 1);
        assert_eq!(left, 0);
    }

    #[test]
    fn a_sliding_log_counts_remote_hits_spread_over_their_windows() {
        let (l, c) = limiter(1000);
        let s = spec("login", 5, 60, Algorithm::SlidingLog);
        assert!(one(&l, &s, "u", 2).allowed);
        l.merge_cell(&l.cell_at(&s, "u", T0), A, 3);
        let d = one(&l, &s, "u", 1);
        assert!(!d.allowed, "2 own + 3 remote");
        assert!(d.deciding().retry_after_secs.unwrap() >= 1);
        // Half-way through the next window the remote 3 weigh 1.5, rounded up to 2, and the
        // own records have left the log: 3 more fit, not 4.
        c.set_millis(T0 + 90_000);
        assert_eq!(one(&l, &s, "u", 0).deciding().remaining, 3);
        // Retry-after is never earlier than the remote hits alone allow.
        c.set_millis(T0 + 1_000);
        let (l2, _c2) = limiter(1000);
        l2.merge_cell(&l2.cell_at(&s, "u", T0), A, 5);
        let d = one(&l2, &s, "u", 1);
        assert!(!d.allowed);
        assert!(d.deciding().retry_after_secs.unwrap() >= 60);
    }
}
