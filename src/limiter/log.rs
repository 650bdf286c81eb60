//! The exact sliding log: every admitted request's timestamp, for limits of at most
//! [`super::SLIDING_LOG_MAX`] hits per window.
//!
//! A request of `h` hits is admitted when the hits admitted in the last `W` milliseconds plus
//! `h` do not exceed the limit, so no window of length `W` (aligned or not) ever holds more
//! than the limit. It costs one 8-byte record per admitted request (not per hit), so a state
//! holds at most `limit` records.

use std::collections::VecDeque;

use super::window::{add_attempts, ceil_secs, clamp_u32, WindowParams, WindowView, ABUSE_REPORTED};

/// Bits of a record that hold the hit count; the rest hold the timestamp in milliseconds.
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// Largest timestamp a record can hold (2^44 ms: the year 2527).
const MAX_TS_MS: u64 = (1 << (64 - COUNT_BITS)) - 1;

/// The stored state of one (limit, key) sliding log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogState {
    /// Keyed hash of (limit fingerprint, key).
    pub hash: u64,
    /// Unix second after which every record has left the window (idle).
    pub expiry: u32,
    /// Start (Unix seconds) of the aligned window the attempts are counted in.
    pub attempts_window: u32,
    /// Attempted hits in that aligned window; top bit: abuse already reported.
    pub attempts: u32,
    /// Admitted requests, oldest first: `timestamp_ms << 20 | hits`. Timestamps never
    /// decrease (a clock that steps back records at the newest timestamp instead).
    pub records: VecDeque<u64>,
}

pub(super) fn record_ts(r: u64) -> u64 {
    r >> COUNT_BITS
}

pub(super) fn record_hits(r: u64) -> u64 {
    r & COUNT_MASK
}

/// A record of `hits` admitted at `ts_ms`, or `None` when either does not fit its field.
pub(super) fn record(ts_ms: u64, hits: u64) -> Option<u64> {
    (ts_ms <= MAX_TS_MS && hits <= COUNT_MASK).then_some(ts_ms << COUNT_BITS | hits)
}

/// A log as seen at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogView {
    /// Hits admitted in the last `W` ms.
    pub in_window: u64,
    /// Timestamp of the newest live record, if any.
    pub newest_ms: Option<u64>,
    /// Attempts in the current aligned window (with flag bit).
    pub attempts: u32,
    /// Start of the current aligned window (Unix seconds).
    pub window_start: u32,
}

impl LogView {
    pub fn at(state: Option<&LogState>, p: &WindowParams, now_ms: u64) -> LogView {
        let window_start = clamp_u32(now_ms / 1000 / p.window_secs * p.window_secs);
        let Some(s) = state else {
            return LogView {
                in_window: 0,
                newest_ms: None,
                attempts: 0,
                window_start,
            };
        };
        let mut in_window = 0u64;
        let mut newest_ms = None;
        for &r in s.records.iter().rev() {
            let ts = record_ts(r);
            if !is_live(ts, p, now_ms) {
                break;
            }
            in_window += record_hits(r);
            newest_ms.get_or_insert(ts);
        }
        let attempts = if s.attempts_window == window_start {
            s.attempts
        } else {
            0
        };
        LogView {
            in_window,
            newest_ms,
            attempts,
            window_start,
        }
    }

    /// This view with the hits of other nodes added: their counts spread evenly over their
    /// windows (the sliding-window estimate), rounded up.
    pub fn with_remote(&self, remote: &WindowView, p: &WindowParams) -> LogView {
        LogView {
            in_window: self.in_window.saturating_add(remote.estimate_rounded_up(p)),
            ..*self
        }
    }

    pub fn admits(&self, p: &WindowParams, hits: u64) -> bool {
        hits <= p.limit && self.in_window + hits <= p.limit
    }

    pub fn remaining(&self, p: &WindowParams) -> u64 {
        p.limit.saturating_sub(self.in_window)
    }

    /// Seconds until every live record has left the window.
    pub fn reset_secs(&self, p: &WindowParams, now_ms: u64) -> u64 {
        match self.newest_ms {
            Some(ts) => ceil_secs(ts.saturating_add(p.window_ms()).saturating_sub(now_ms)),
            None => 0,
        }
    }

    /// Seconds (≥ 1) until a request of `hits` would be admitted: when enough of the oldest
    /// records have left the window.
    pub fn retry_after_secs(
        &self,
        state: Option<&LogState>,
        p: &WindowParams,
        hits: u64,
        now_ms: u64,
    ) -> u64 {
        if hits > p.limit {
            return p.window_secs.max(1);
        }
        let must_free = (self.in_window + hits).saturating_sub(p.limit);
        let mut freed = 0u64;
        if let Some(s) = state {
            for &r in s.records.iter() {
                let ts = record_ts(r);
                if !is_live(ts, p, now_ms) {
                    continue;
                }
                freed += record_hits(r);
                if freed >= must_free {
                    return ceil_secs(ts.saturating_add(p.window_ms()).saturating_sub(now_ms))
                        .max(1);
                }
            }
        }
        1
    }
}

/// A record at `ts` still counts at `now` when `now − W < ts` (also when the clock has gone
/// back below `ts`).
fn is_live(ts: u64, p: &WindowParams, now_ms: u64) -> bool {
    ts.saturating_add(p.window_ms()) > now_ms
}

impl LogState {
    pub fn new(hash: u64) -> LogState {
        LogState {
            hash,
            expiry: 0,
            attempts_window: 0,
            attempts: 0,
            records: VecDeque::new(),
        }
    }

    /// Hits of the records made in `[from_ms, to_ms)`.
    pub fn hits_between(&self, from_ms: u64, to_ms: u64) -> u64 {
        self.records
            .iter()
            .filter(|&&r| (from_ms..to_ms).contains(&record_ts(r)))
            .map(|&r| record_hits(r))
            .sum()
    }

    /// Drops records that have left the window.
    fn prune(&mut self, p: &WindowParams, now_ms: u64) {
        while let Some(&r) = self.records.front() {
            if is_live(record_ts(r), p, now_ms) {
                break;
            }
            self.records.pop_front();
        }
        // Give memory back once a burst has drained.
        if self.records.capacity() > 16 && self.records.len() * 4 < self.records.capacity() {
            self.records.shrink_to(self.records.len() * 2);
        }
    }

    fn roll_attempts(&mut self, view: &LogView) {
        if self.attempts_window != view.window_start {
            self.attempts_window = view.window_start;
            self.attempts = 0;
        }
    }

    /// Records an admitted request of `hits` (≤ limit ≤ SLIDING_LOG_MAX).
    pub fn admit(&mut self, view: &LogView, p: &WindowParams, hits: u64, now_ms: u64) {
        self.prune(p, now_ms);
        self.roll_attempts(view);
        self.attempts = add_attempts(self.attempts, hits);
        let newest = self.records.back().map_or(0, |&r| record_ts(r));
        let ts = now_ms.max(newest).min(MAX_TS_MS);
        self.records
            .push_back(ts << COUNT_BITS | hits.min(COUNT_MASK));
        self.expiry = clamp_u32(ceil_secs(ts.saturating_add(p.window_ms())));
    }

    /// Records a denied attempt of `hits`: counts nothing, only the attempts.
    pub fn attempt(&mut self, view: &LogView, p: &WindowParams, hits: u64, now_ms: u64) {
        self.prune(p, now_ms);
        self.roll_attempts(view);
        self.attempts = add_attempts(self.attempts, hits);
        // Keep the bookkeeping (and its reported flag) at least until its aligned window ends.
        let window_end = clamp_u32(u64::from(view.window_start) + p.window_secs);
        self.expiry = self.expiry.max(window_end);
    }

    pub fn mark_abuse_reported(&mut self) {
        self.attempts |= ABUSE_REPORTED;
    }
}
