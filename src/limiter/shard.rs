//! One shard of the engine's map: the states whose hash falls in it, the idle drop and the
//! oldest-first eviction the engine runs on it when the global cap is reached.

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

    /// Removes about `batch` states with the smallest expiry — the oldest, whose counts will
    /// stop mattering soonest — never a protected one. Returns how many were removed.
    ///
    /// Finding them exactly would need a sort or a heap per shard; instead two passes build
    /// a 64-bucket histogram of expiries and a third removes the lowest buckets.
    pub fn evict_oldest(&mut self, batch: usize, protect: &[u64]) -> usize {
        let candidates = self
            .windows
            .iter()
            .filter(|e| !protect.contains(&e.hash))
            .map(|e| e.expiry)
            .chain(
                self.logs
                    .iter()
                    .filter(|e| !protect.contains(&e.hash))
                    .map(|e| e.expiry),
            );
        let (mut min, mut max, mut n) = (u32::MAX, 0u32, 0usize);
        for x in candidates.clone() {
            min = min.min(x);
            max = max.max(x);
            n += 1;
        }
        if n == 0 {
            return 0;
        }
        let span = u64::from(max - min) + 1;
        let bucket = |x: u32| (u64::from(x - min) * HISTOGRAM_BUCKETS as u64 / span) as usize;
        let mut histogram = [0usize; HISTOGRAM_BUCKETS];
        for x in candidates {
            histogram[bucket(x)] += 1;
        }
        // Everything in buckets below `last` goes; from bucket `last`, only what completes
        // the batch.
        let mut below = 0usize;
        let mut last = HISTOGRAM_BUCKETS - 1;
        for (b, &count) in histogram.iter().enumerate() {
            if below + count >= batch {
                last = b;
                break;
            }
            below += count;
        }
        let mut quota_last = batch.saturating_sub(below);
        let mut removed = 0usize;
        let mut evict = |hash: u64, expiry: u32| -> bool {
            if protect.contains(&hash) {
                return false;
            }
            let b = bucket(expiry);
            if b < last || (b == last && quota_last > 0) {
                if b == last {
                    quota_last -= 1;
                }
                removed += 1;
                true
            } else {
                false
            }
        };
        self.windows.retain(|e| !evict(e.hash, e.expiry));
        self.logs.retain(|e| !evict(e.hash, e.expiry));
        removed
    }
}
