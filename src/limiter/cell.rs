//! Cells: the counts a node can share with other nodes, and the set of this node's states
//! that changed since they were last published.
//!
//! A *cell* is one (limit, key) state's admitted hits in one aligned window. Windows are
//! aligned to the Unix epoch, so every node names the same window the same way, and the
//! state hash is the same on every node that shares the hash key: a cell names the same
//! count everywhere. Within a window a node's own count only grows, so a cell's count per
//! node is a grow-only counter, and merging two reports of it is taking their maximum.
//!
//! Nothing here sends anything anywhere: a later cluster layer drains the changed cells
//! ([`super::Limiter::drain_changed_cells`]) to publish them, and hands what peers publish
//! to [`super::Limiter::merge_cell`] (`remote.rs`).

use std::sync::atomic::Ordering;

use hashbrown::HashMap;

use super::shard::Shard;
use super::{hash, params_of, LimitSpec, Limiter};

/// One node generation's slot in the counts of a cell. Assigned by whoever runs the
/// cluster (one per node and start, so that a restarted node, whose counts began again at
/// 0, does not report lower counts in the slot of its previous life). The limiter only
/// keeps the slots apart; it gives no slot a meaning of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeSlot(pub u32);

/// The name of one shareable count: the hits a (limit, key) state admitted in one aligned
/// window `[window_start_secs, window_start_secs + window_secs)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellId {
    /// The limit's fingerprint ([`super::Limiter::limit_fingerprint`]): which limit, by its
    /// name, quota, window and algorithm.
    pub limit: u64,
    /// The keyed hash of (limit, key) ([`super::Limiter::state_hash`]): which state.
    pub state_hash: u64,
    /// The limit's window in whole seconds, as the limiter counts it (rounded up, clamped
    /// to 1 s … [`super::MAX_WINDOW_SECS`]).
    pub window_secs: u64,
    /// Start of the window, Unix seconds: a multiple of `window_secs`.
    pub window_start_secs: u64,
}

impl CellId {
    /// Whether the fields are consistent: a non-zero state hash and a window the limiter
    /// can count (aligned, of an accepted length).
    pub fn is_well_formed(&self) -> bool {
        self.state_hash != 0
            && (1..=super::MAX_WINDOW_SECS).contains(&self.window_secs)
            && self.window_start_secs % self.window_secs == 0
    }
}

/// What a changed state needs to be named as cells again when it is published: the parts
/// of its limit the 32-byte state does not store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChangedState {
    pub limit: u64,
    pub window_secs: u64,
    /// A sliding log (counts read from its records) rather than a sliding-window counter.
    pub log: bool,
}

/// The states of one shard whose counts changed since they were last drained, bounded.
#[derive(Debug, Default)]
pub(crate) struct ChangedStates {
    states: HashMap<u64, ChangedState>,
}

impl ChangedStates {
    /// Notes that the state `hash` changed. Returns false when the set is full and `hash`
    /// was not in it: the change is then not published (peers under-count it until the
    /// state changes again after a drain, which errs towards admitting).
    pub fn note(&mut self, hash: u64, state: ChangedState, cap: usize) -> bool {
        if self.states.len() >= cap && !self.states.contains_key(&hash) {
            return false;
        }
        self.states.insert(hash, state);
        true
    }

    /// Takes up to `budget` changed states out of the set.
    pub fn take(&mut self, budget: usize, out: &mut Vec<(u64, ChangedState)>) {
        let mut taken = 0;
        self.states.retain(|&hash, &mut state| {
            if taken < budget {
                out.push((hash, state));
                taken += 1;
                false
            } else {
                true
            }
        });
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }
}

impl Limiter {
    /// The fingerprint of a limit: SipHash-1-3 under the all-zero key of its name, quota,
    /// window and algorithm (encoding: `src/limiter/hash.rs`). Not secret; the same on
    /// every node. [`CellId::limit`].
    pub fn limit_fingerprint(limit: &LimitSpec) -> u64 {
        hash::fingerprint(limit)
    }

    /// The cell of (`limit`, `key`) for the window that holds `at_ms` (Unix milliseconds).
    pub fn cell_at(&self, limit: &LimitSpec, key: &str, at_ms: u64) -> CellId {
        let window_secs = params_of(limit).window_secs;
        CellId {
            limit: hash::fingerprint(limit),
            state_hash: self.state_hash(limit, key),
            window_secs,
            window_start_secs: at_ms / 1000 / window_secs * window_secs,
        }
    }

    /// This node's own count in `cell`: the hits it admitted for that state in that window
    /// (counts merged from other nodes are not included). `None` when this node holds no
    /// state for it, or no longer knows that window (it precedes the state's previous
    /// window). A sliding log's window is counted from its records, which leave the log a
    /// window after they were made: a past window may then read lower than it was, which
    /// merging by maximum ignores.
    pub fn export_cell(&self, cell: &CellId) -> Option<u64> {
        if !cell.is_well_formed() {
            return None;
        }
        let now_ms = self.clock.now_millis();
        let shard = self.shards[self.shard_of(cell.state_hash)].0.lock();
        let (w, start) = (cell.window_secs, cell.window_start_secs);
        if let Some(i) = shard.windows.find(cell.state_hash) {
            let s = shard.windows.get(i);
            let state_start = u64::from(s.expiry).saturating_sub(2 * w);
            let own = if start == state_start {
                Some(u64::from(s.current))
            } else if start.checked_add(w) == Some(state_start) {
                Some(u64::from(s.previous))
            } else if start > state_start {
                Some(0)
            } else {
                None
            };
            drop(shard);
            return own.map(|n| n.saturating_sub(self.held_back.window(cell)));
        }
        let log = shard
            .logs
            .find(cell.state_hash, |e| e.hash == cell.state_hash)?;
        let current = now_ms / 1000 / w * w;
        let own = (start.saturating_add(w) >= current)
            .then(|| log.hits_between(start * 1000, (start + w) * 1000));
        let held = own.map_or(0, |_| self.held_back.log(cell, log));
        own.map(|n| n.saturating_sub(held))
    }

    /// Starts noting which states change, for [`Limiter::drain_changed_cells`]. Until it
    /// is called nothing is noted (a node alone pays nothing for it). Idempotent.
    pub fn track_changes(&self) {
        for s in self.shards.iter() {
            s.0.lock().changed.get_or_insert_with(Default::default);
        }
    }

    /// Calls `f` with this node's own count of every cell that changed since it was last
    /// drained (both windows of each changed state, non-zero counts only), taking at most
    /// `budget` changed states, and forgets them. Returns how many states it took; less
    /// than `budget` means nothing else is pending. Nothing is noted before
    /// [`Limiter::track_changes`]. `f` runs with no lock held.
    pub fn drain_changed_cells(&self, budget: usize, mut f: impl FnMut(CellId, u64)) -> usize {
        let now_ms = self.clock.now_millis();
        let mut taken = Vec::new();
        let mut cells: Vec<(CellId, u64)> = Vec::new();
        let n = self.shards.len();
        let first = self.drain_cursor.fetch_add(1, Ordering::Relaxed);
        let mut total = 0;
        for k in 0..n {
            if total >= budget {
                break;
            }
            let index = (first + k) & self.shard_mask;
            let mut shard = self.shards[index].0.lock();
            taken.clear();
            match shard.changed.as_mut() {
                Some(changed) if changed.len() > 0 => changed.take(budget - total, &mut taken),
                _ => continue,
            }
            total += taken.len();
            for &(hash, c) in &taken {
                own_cells(&shard, hash, c, now_ms, &mut cells);
            }
            drop(shard);
            let holding = self.held_back.is_holding();
            for (cell, count) in cells.drain(..) {
                if holding {
                    // Counts restored from a snapshot are this node's previous life's, which
                    // peers still hold: publish only what was counted since.
                    match self.export_cell(&cell) {
                        Some(n) if n > 0 => f(cell, n),
                        _ => {}
                    }
                } else {
                    f(cell, count);
                }
            }
        }
        total
    }

    /// Changed states not noted because a shard's set of them was full, since start.
    pub fn changes_dropped(&self) -> u64 {
        self.changes_dropped.load(Ordering::Relaxed)
    }
}

/// The non-zero own counts of the state `hash` (changed as `c` says), as cells: the two
/// windows it holds (a counter) or the window of `now` and the one before (a log).
fn own_cells(shard: &Shard, hash: u64, c: ChangedState, now_ms: u64, out: &mut Vec<(CellId, u64)>) {
    let w = c.window_secs;
    let cell = |start: u64| CellId {
        limit: c.limit,
        state_hash: hash,
        window_secs: w,
        window_start_secs: start,
    };
    let mut push = |start: Option<u64>, count: u64| {
        if let (Some(start), true) = (start, count > 0) {
            out.push((cell(start), count));
        }
    };
    if c.log {
        if let Some(log) = shard.logs.find(hash, |e| e.hash == hash) {
            let current = now_ms / 1000 / w * w;
            for start in [current.checked_sub(w), Some(current)] {
                let count = start.map_or(0, |s| log.hits_between(s * 1000, (s + w) * 1000));
                push(start, count);
            }
        }
    } else if let Some(i) = shard.windows.find(hash) {
        let s = shard.windows.get(i);
        let start = u64::from(s.expiry).saturating_sub(2 * w);
        push(start.checked_sub(w), u64::from(s.previous));
        push(Some(start), u64::from(s.current));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{limiter, one, spec, T0};
    use super::super::Algorithm;
    use super::*;

    fn drain_all(l: &Limiter) -> Vec<(CellId, u64)> {
        let mut out = Vec::new();
        while l.drain_changed_cells(3, |c, n| out.push((c, n))) == 3 {}
        out.sort();
        out
    }

    #[test]
    fn a_cell_exports_the_nodes_own_count_of_each_window() {
        let (l, c) = limiter(1000);
        let s = spec("w", 100, 60, Algorithm::SlidingWindow);
        let now = l.cell_at(&s, "k", T0);
        assert_eq!(now.limit, super::super::Limiter::limit_fingerprint(&s));
        assert_eq!(now.state_hash, l.state_hash(&s, "k"));
        assert_eq!((now.window_secs, now.window_start_secs), (60, T0 / 1000));
        assert_eq!(l.export_cell(&now), None, "no state yet");
        assert!(one(&l, &s, "k", 7).allowed);
        assert!(!one(&l, &s, "k", 200).allowed, "a denial counts nothing");
        assert_eq!(l.export_cell(&now), Some(7));
        c.set_millis(T0 + 61_000);
        assert!(one(&l, &s, "k", 2).allowed);
        let next = l.cell_at(&s, "k", T0 + 61_000);
        assert_eq!(l.export_cell(&next), Some(2));
        assert_eq!(l.export_cell(&now), Some(7), "the previous window");
        let later = l.cell_at(&s, "k", T0 + 121_000);
        assert_eq!(l.export_cell(&later), Some(0));
        let before = l.cell_at(&s, "k", T0 - 60_000);
        assert_eq!(l.export_cell(&before), None, "no longer known");

        // A sliding log counts its records of the window.
        let log = spec("login", 5, 60, Algorithm::SlidingLog);
        assert!(one(&l, &log, "u", 2).allowed);
        c.set_millis(T0 + 62_000);
        assert!(one(&l, &log, "u", 1).allowed);
        assert_eq!(l.export_cell(&l.cell_at(&log, "u", T0 + 62_000)), Some(3));
    }

    #[test]
    fn changed_states_are_drained_once_each_as_their_cells() {
        let (l, c) = limiter(1000);
        let s = spec("w", 100, 60, Algorithm::SlidingWindow);
        let log = spec("login", 5, 60, Algorithm::SlidingLog);
        assert!(one(&l, &s, "early", 1).allowed);
        assert_eq!(
            drain_all(&l),
            vec![],
            "nothing is noted before tracking starts"
        );
        l.track_changes();
        l.track_changes();
        for k in ["a", "b", "c", "d"] {
            assert!(one(&l, &s, k, 2).allowed);
            assert!(one(&l, &s, k, 1).allowed);
        }
        assert!(one(&l, &log, "u", 1).allowed);
        let drained = drain_all(&l);
        let mut want: Vec<(CellId, u64)> = ["a", "b", "c", "d"]
            .iter()
            .map(|k| (l.cell_at(&s, k, T0), 3))
            .chain([(l.cell_at(&log, "u", T0), 1)])
            .collect();
        want.sort();
        assert_eq!(drained, want);
        for (cell, n) in &drained {
            assert_eq!(l.export_cell(cell), Some(*n));
        }
        assert_eq!(drain_all(&l), vec![], "drained once");
        // A denial changes no count and is not noted; merges are not own changes either.
        assert!(!one(&l, &s, "a", 1000).allowed);
        l.merge_cell(&l.cell_at(&s, "e", T0), NodeSlot(9), 4);
        assert_eq!(drain_all(&l), vec![]);
        // After a rollover, a changed state publishes both its windows.
        c.set_millis(T0 + 60_000);
        assert!(one(&l, &s, "a", 1).allowed);
        let mut want = vec![
            (l.cell_at(&s, "a", T0), 3),
            (l.cell_at(&s, "a", T0 + 60_000), 1),
        ];
        want.sort();
        assert_eq!(drain_all(&l), want);
        assert_eq!(l.changes_dropped(), 0);
    }
}
