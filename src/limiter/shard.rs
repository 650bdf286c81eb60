//! One shard of the engine's map: the states whose hash falls in it, the idle drop and the
//! least-active-first eviction the engine runs on it when the global cap is reached.

use hashbrown::HashTable;

use super::cell::ChangedStates;
use super::log::LogState;
use super::remote::RemoteCells;
use super::table::WindowTable;

/// Number of buckets of the expiry histogram used to find the oldest states.
const HISTOGRAM_BUCKETS: usize = 64;

/// A shard: sliding-window and sliding-log states, the counts other nodes reported for
/// them, and (once tracking is on) which of its states changed since they were published.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    pub windows: WindowTable,
    pub logs: HashTable<LogState>,
    /// Empty unless counts were merged from other nodes: decisions consult it only then.
    pub remote: RemoteCells,
    /// `None` until [`super::Limiter::track_changes`]: a node alone notes nothing.
    pub changed: Option<Box<ChangedStates>>,
}

impl Shard {
    pub fn len(&self) -> usize {
        self.windows.len() + self.logs.len()
    }

    /// Drops every state whose windows have all passed (`expiry ≤ now`), except `protect`ed
    /// ones. Returns how many were dropped. Idle states hold no count, so dropping them
    /// changes no decision.
    pub fn drop_idle(&mut self, now_secs: u64, protect: &[u64]) -> usize {
        let before = self.len();
        self.windows
            .retain(|e| u64::from(e.expiry) > now_secs || protect.contains(&e.hash));
        self.logs
            .retain(|e| u64::from(e.expiry) > now_secs || protect.contains(&e.hash));
        before - self.len()
    }

    /// Gives memory back after a sweep emptied most of the shard.
    pub fn shrink_if_sparse(&mut self) {
        self.windows.shrink_if_sparse();
        if self.logs.capacity() > 64 && self.logs.len() * 4 < self.logs.capacity() {
            self.logs.shrink_to_fit(|e| e.hash);
        }
    }

    /// Removes about `batch` states, never a protected one: the least active first — a
    /// flood of one-hit keys goes before a key that was denied or is in steady use, so
    /// minting keys cannot reset another key's count while keys with less history remain —
    /// and, among states as active, those with the smallest expiry (the oldest, whose counts
    /// stop mattering soonest). Idle states (no count left) are dropped before any eviction
    /// (`drop_idle`). Returns how many were removed.
    ///
    /// Activity, not age, comes first because expiries are not comparable across states: a
    /// sliding-window counter keeps its previous window (expiry = window start + 2·W), a log
    /// only its last window (expiry = newest record + W), and every key active in the current
    /// window has the same expiry, the flood's as much as the denied key's.
    ///
    /// Finding them exactly would need a sort or a heap per shard; instead passes build a
    /// histogram of activity (powers of two), then one of expiries (64 buckets) within the
    /// activity bucket to be cut, and a last pass removes the lowest buckets.
    pub fn evict_oldest(&mut self, batch: usize, protect: &[u64]) -> usize {
        let candidates = self
            .windows
            .iter()
            .filter(|e| !protect.contains(&e.hash))
            .map(|e| (activity_bucket(window_activity(&e)), e.expiry))
            .chain(
                self.logs
                    .iter()
                    .filter(|e| !protect.contains(&e.hash))
                    .map(|e| (activity_bucket(log_activity(e)), e.expiry)),
            );
        // Activity: everything in buckets below `cut` goes; from bucket `cut`, the oldest
        // of it, up to what completes the batch.
        let mut by_activity = [0usize; ACTIVITY_BUCKETS];
        for (a, _) in candidates.clone() {
            by_activity[a] += 1;
        }
        let (mut cut, mut below_cut) = (ACTIVITY_BUCKETS - 1, 0usize);
        for (b, &count) in by_activity.iter().enumerate() {
            if below_cut + count >= batch {
                cut = b;
                break;
            }
            below_cut += count;
        }
        let quota_cut = batch.saturating_sub(below_cut);
        // Expiry within bucket `cut`.
        let (mut min, mut max, mut n) = (u32::MAX, 0u32, 0usize);
        for (_, x) in candidates.clone().filter(|(a, _)| *a == cut) {
            min = min.min(x);
            max = max.max(x);
            n += 1;
        }
        if n == 0 && below_cut == 0 {
            return 0;
        }
        let span = u64::from(max.saturating_sub(min)) + 1;
        let bucket = |x: u32| {
            let b = u64::from(x.saturating_sub(min)) * HISTOGRAM_BUCKETS as u64 / span;
            (b as usize).min(HISTOGRAM_BUCKETS - 1)
        };
        let mut histogram = [0usize; HISTOGRAM_BUCKETS];
        for (_, x) in candidates.filter(|(a, _)| *a == cut) {
            histogram[bucket(x)] += 1;
        }
        let (mut last, mut below) = (HISTOGRAM_BUCKETS - 1, 0usize);
        for (b, &count) in histogram.iter().enumerate() {
            if below + count >= quota_cut {
                last = b;
                break;
            }
            below += count;
        }
        let mut quota_last = quota_cut.saturating_sub(below);
        let mut removed = 0usize;
        let mut evict = |hash: u64, activity: u32, expiry: u32| -> bool {
            if protect.contains(&hash) {
                return false;
            }
            let goes = match activity_bucket(activity).cmp(&cut) {
                std::cmp::Ordering::Less => true,
                std::cmp::Ordering::Greater => false,
                std::cmp::Ordering::Equal => match bucket(expiry).cmp(&last) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal if quota_last > 0 => {
                        quota_last -= 1;
                        true
                    }
                    std::cmp::Ordering::Equal => false,
                },
            };
            removed += usize::from(goes);
            goes
        };
        self.windows
            .retain(|e| !evict(e.hash, window_activity(e), e.expiry));
        self.logs
            .retain(|e| !evict(e.hash, log_activity(e), e.expiry));
        removed
    }
}

/// Buckets of the activity histogram: ⌊log2(activity)⌋ + 1, 0 for none.
const ACTIVITY_BUCKETS: usize = 33;

fn activity_bucket(activity: u32) -> usize {
    (u32::BITS - activity.leading_zeros()) as usize
}

/// How much a window state has seen: hits admitted in both windows and attempts (admitted or
/// denied) in the current one. A key that was denied has attempted more than it was admitted.
fn window_activity(e: &super::window::WindowState) -> u32 {
    let attempts = e.attempts & !super::window::ABUSE_REPORTED;
    e.current
        .saturating_add(e.previous)
        .saturating_add(attempts)
}

/// How much a sliding log has seen: its records and its attempts in the current window.
fn log_activity(e: &LogState) -> u32 {
    let attempts = e.attempts & !super::window::ABUSE_REPORTED;
    (e.records.len() as u32).saturating_add(attempts)
}
