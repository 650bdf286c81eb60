//! The sliding-window counter: one compact state per (limit, key) and the arithmetic that
//! turns it into decisions.
//!
//! # The algorithm
//!
//! Time is cut into fixed windows of the limit's length `W`, aligned to the Unix epoch (so
//! every node agrees on them). A state holds the hits admitted in the current window and in
//! the previous one, and for each the *phase* of its latest admitted hit (`q`, the time
//! into its window). The hits "in the last window", the sliding window `(now − W, now]`,
//! are estimated as
//!
//! ```text
//! estimate = previous × (W − e) / W + current    while e < q
//! estimate = current                             once e ≥ q
//!            (e: time elapsed in the current window, q: phase of the previous window's latest hit)
//! ```
//!
//! - While `e < q` this is the classic sliding-window counter: the previous window's hits
//!   are taken as spread evenly over the whole window, so the part of them still inside the
//!   sliding window is `(W − e) / W`.
//! - From `e = q` on the estimate is exact: every hit of the previous window was admitted
//!   at a phase of at most `q`, so it has left the sliding window, and the previous window
//!   weighs nothing.
//!
//! The weight is never below the classic one except where the previous window's hits have
//! provably left, so the counter is never more permissive than the classic counter but
//! there; and every hit is out of the estimate one window after it was admitted, never
//! later (the classic weight kept a hit at the start of a window weighing until the end of
//! the next one). So `reset` and `retry_after` are at most the window, and a client that
//! waits `retry_after` with nothing else on its key is admitted.
//!
//! A request of `h` hits is admitted when `estimate + h ≤ limit`. All comparisons are done
//! exactly in integers (multiplied through by `W`, in `u128`), so no rounding ever admits a
//! hit the formula would refuse. In any window of length `W`, aligned or not, the counter
//! admits at most `2·L − ⌈2·L / W_ms⌉`, the classic counter's bound (docs/algorithms.md,
//! "The worst case").
//!
//! Counts merged from other nodes carry no phase: a window holding any weighs as the
//! classic counter weighs it (`q = W`), never less than its real weight.
//!
//! The state is 32 bytes, so a hash table of them costs 40 to 80 bytes per tracked key (see
//! docs/algorithms.md, "Memory layout").

/// Bit of [`WindowState::attempts`] that records "abuse already reported in this window".
pub(crate) const ABUSE_REPORTED: u32 = 1 << 31;
/// Attempted hits saturate below the flag bit.
pub(crate) const ATTEMPTS_MAX: u32 = ABUSE_REPORTED - 1;

/// The stored state of one (limit, key) sliding-window counter. 32 bytes.
///
/// The window start is not stored: it is `expiry − 2·W`, because the limit (and so `W`) is
/// known whenever the state is read for a decision, while the sweeper, which does not know
/// `W`, only needs the expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowState {
    /// Keyed hash of (limit fingerprint, key): the state's identity.
    pub hash: u64,
    /// Unix second at which both windows have passed and the state is idle
    /// (current window start + 2·W).
    pub expiry: u32,
    /// Hits admitted in the current window.
    pub current: u32,
    /// Hits admitted in the previous window.
    pub previous: u32,
    /// Hits attempted (admitted or not) in the current window, saturating at
    /// [`ATTEMPTS_MAX`]; the top bit is [`ABUSE_REPORTED`].
    pub attempts: u32,
    /// Phase of the latest hit admitted in the current window, in
    /// [`WindowParams::phase_unit_ms`] (rounded down).
    pub last_current: u32,
    /// Phase of the latest hit admitted in the previous window, in the same unit.
    pub last_previous: u32,
}

/// A limit's parameters as the window arithmetic uses them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowParams {
    /// Effective limit (clamped to [`super::MAX_LIMIT`]).
    pub limit: u64,
    /// Window length in whole seconds, ≥ 1.
    pub window_secs: u64,
}

impl WindowParams {
    pub fn window_ms(&self) -> u64 {
        self.window_secs * 1000
    }

    /// The unit a stored phase counts in: milliseconds, or whole seconds for a window too
    /// long for 32 bits of milliseconds (over 49.7 days). Phases are rounded down, so a hit
    /// leaves the estimate at most one unit before it leaves the sliding window.
    #[inline]
    pub fn phase_unit_ms(&self) -> u64 {
        if self.window_ms() <= u64::from(u32::MAX) {
            1
        } else {
            1000
        }
    }

    #[inline]
    fn store_phase(&self, phase_ms: u64) -> u32 {
        clamp_u32(phase_ms / self.phase_unit_ms())
    }

    #[inline]
    fn load_phase(&self, stored: u32) -> u64 {
        (u64::from(stored) * self.phase_unit_ms()).min(self.window_ms())
    }
}

/// A state as seen at one instant: rolled forward to the window containing `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowView {
    /// Start of the current window, Unix seconds.
    pub start_secs: u64,
    /// Milliseconds elapsed in the current window, 0..=W.
    pub elapsed_ms: u64,
    pub current: u64,
    pub previous: u64,
    /// Phase (ms) of the latest hit counted in `current`: its hits leave the estimate by
    /// this phase of the next window.
    pub last_current_ms: u64,
    /// Phase (ms) of the latest hit counted in `previous`: they weigh `(W − e) / W`
    /// while `e < q` and nothing from `e = q` on, when all of them have left the sliding
    /// window.
    pub last_previous_ms: u64,
    /// Attempts in the current window, including the flag bit.
    pub attempts: u32,
}

impl WindowView {
    /// The view of a state (or of no state) at `now_ms`. Pure: the state is not modified.
    pub fn at(state: Option<&WindowState>, p: &WindowParams, now_ms: u64) -> WindowView {
        let w = p.window_secs;
        let now_secs = now_ms / 1000;
        if let Some(s) = state {
            let start_state = u64::from(s.expiry).saturating_sub(2 * w);
            if now_secs < start_state {
                // The clock went backwards (or the state came from a clock that ran ahead):
                // keep the stored counts and treat now as the very start of the stored
                // window, which gives the previous window its full weight. Conservative: it
                // never admits more.
                return WindowView {
                    start_secs: start_state,
                    elapsed_ms: 0,
                    current: u64::from(s.current),
                    previous: u64::from(s.previous),
                    last_current_ms: p.load_phase(s.last_current),
                    last_previous_ms: p.load_phase(s.last_previous),
                    attempts: s.attempts,
                };
            }
            // Windows are aligned to the epoch, so the stored window and the one holding
            // `now` are a whole number of windows apart; the usual cases (the same window,
            // the next one) need no division.
            let since = now_secs - start_state;
            if since < w {
                return WindowView {
                    start_secs: start_state,
                    elapsed_ms: (now_ms - start_state * 1000).min(p.window_ms()),
                    current: u64::from(s.current),
                    previous: u64::from(s.previous),
                    last_current_ms: p.load_phase(s.last_current),
                    last_previous_ms: p.load_phase(s.last_previous),
                    attempts: s.attempts,
                };
            }
            if since < 2 * w {
                let start = start_state + w;
                return WindowView {
                    start_secs: start,
                    elapsed_ms: (now_ms - start * 1000).min(p.window_ms()),
                    current: 0,
                    previous: u64::from(s.current),
                    last_current_ms: 0,
                    last_previous_ms: p.load_phase(s.last_current),
                    attempts: 0,
                };
            }
        }
        // No state, or both its windows have passed.
        let start = now_secs / w * w;
        WindowView {
            start_secs: start,
            elapsed_ms: now_ms - start * 1000,
            current: 0,
            previous: 0,
            last_current_ms: 0,
            last_previous_ms: 0,
            attempts: 0,
        }
    }

    /// Remote counts alone as a view: `current` hits in the window starting at `start_secs`
    /// and `previous` in the one before, seen at `now_ms`. Their phases are not known: both
    /// weigh as spread over their whole window.
    pub fn of_counts(
        start_secs: u64,
        current: u64,
        previous: u64,
        p: &WindowParams,
        now_ms: u64,
    ) -> WindowView {
        WindowView {
            start_secs,
            elapsed_ms: now_ms
                .saturating_sub(start_secs.saturating_mul(1000))
                .min(p.window_ms()),
            current,
            previous,
            last_current_ms: p.window_ms(),
            last_previous_ms: p.window_ms(),
            attempts: 0,
        }
    }

    /// This view with hits of other nodes added to both windows. Their phases are not
    /// known, so a window holding any weighs as spread over its whole length (`q = W`),
    /// never less than its real weight.
    #[inline]
    pub fn with_remote(&self, current: u64, previous: u64, p: &WindowParams) -> WindowView {
        let w = p.window_ms();
        WindowView {
            current: self.current.saturating_add(current),
            previous: self.previous.saturating_add(previous),
            last_current_ms: if current > 0 { w } else { self.last_current_ms },
            last_previous_ms: if previous > 0 {
                w
            } else {
                self.last_previous_ms
            },
            ..*self
        }
    }

    /// This view after `hits` more were admitted now.
    #[inline]
    pub fn after_admitting(&self, hits: u64) -> WindowView {
        WindowView {
            current: self.current.saturating_add(hits),
            last_current_ms: if hits > 0 {
                self.last_current_ms.max(self.elapsed_ms)
            } else {
                self.last_current_ms
            },
            ..*self
        }
    }

    /// How much of `previous` still weighs: `(left, scale)` with weight `left / scale`.
    /// The classic `(W − e, W)` while `e < q`; `(0, 1)` from `q` on, when every hit of the
    /// previous window has left the sliding window.
    #[inline]
    fn decay(&self, p: &WindowParams) -> (u64, u64) {
        let w = p.window_ms();
        if self.previous == 0 || self.elapsed_ms >= self.last_previous_ms {
            (0, 1)
        } else {
            // `elapsed_ms < last_previous_ms ≤ W`, so `left` is at least 1.
            (w - self.elapsed_ms, w)
        }
    }

    /// `previous × left + current × scale`: the estimate, multiplied by `scale`.
    #[inline]
    fn used_scaled(&self, left: u64, scale: u64) -> u128 {
        u128::from(self.previous) * u128::from(left) + u128::from(self.current) * u128::from(scale)
    }

    /// The estimate `previous × (W − e) / W + current` (`current` alone from `e = q` on),
    /// rounded up.
    pub fn estimate_rounded_up(&self, p: &WindowParams) -> u64 {
        let (left, scale) = self.decay(p);
        let scaled = self.used_scaled(left, scale).div_ceil(u128::from(scale));
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }

    /// Would a request of `hits` be admitted now?
    pub fn admits(&self, p: &WindowParams, hits: u64) -> bool {
        if hits > p.limit {
            return false;
        }
        let (left, scale) = self.decay(p);
        let scale_128 = u128::from(scale);
        self.used_scaled(left, scale) + u128::from(hits) * scale_128
            <= u128::from(p.limit) * scale_128
    }

    /// Hits still available: `floor(limit − estimate)`.
    pub fn remaining(&self, p: &WindowParams) -> u64 {
        let (left, scale) = self.decay(p);
        let cap = u128::from(p.limit) * u128::from(scale);
        let used = self.used_scaled(left, scale);
        if used >= cap {
            0
        } else {
            div_u128(cap - used, scale)
        }
    }

    /// Seconds (rounded up) until the estimate has decayed to zero if nothing more is
    /// admitted: phase `q` of the next window while the current one has hits (its latest
    /// hit leaves then), else phase `q` of this window while the previous one still weighs,
    /// else 0. At most the window: the latest hit was admitted no later than now.
    pub fn reset_secs(&self, p: &WindowParams, now_ms: u64) -> u64 {
        let start_ms = self.start_secs.saturating_mul(1000);
        let at = if self.current > 0 {
            start_ms
                .saturating_add(p.window_ms())
                .saturating_add(self.last_current_ms)
        } else if self.decay(p).0 > 0 {
            start_ms.saturating_add(self.last_previous_ms)
        } else {
            return 0;
        };
        ceil_secs(at.saturating_sub(now_ms))
    }

    /// Seconds (rounded up, ≥ 1) until a request of `hits` would be admitted if nothing else
    /// is. A request larger than the limit can never be admitted; it gets the window length.
    pub fn retry_after_secs(&self, p: &WindowParams, hits: u64, now_ms: u64) -> u64 {
        if hits > p.limit {
            return p.window_secs.max(1);
        }
        let start_ms = self.start_secs.saturating_mul(1000);
        let w = p.window_ms();
        // Both cases look for the earliest phase `e` of a window at which `count` hits of the
        // window before it, the latest at phase `q`, leave `room` for the request: the
        // smallest `e` with `count × (W − e) ≤ room × W`, which is
        // `W − min(W, ⌊room × W / count⌋)` (the classic weight decays linearly), or `q`
        // if that comes first (from `q` on the count weighs nothing).
        let earliest = |count: u64, room: u64, q: u64| -> u64 {
            if count == 0 {
                return 0;
            }
            let max_left =
                (u128::from(room) * u128::from(w) / u128::from(count)).min(u128::from(w)) as u64;
            (w - max_left).min(q)
        };
        let at = if self.current + hits > p.limit {
            // Not in this window: in the next one, the current count becomes the decaying
            // previous one (its latest hit at `last_current_ms`) and nothing is current yet.
            start_ms
                .saturating_add(p.window_ms())
                .saturating_add(earliest(self.current, p.limit - hits, self.last_current_ms))
        } else {
            start_ms.saturating_add(earliest(
                self.previous,
                p.limit - self.current - hits,
                self.last_previous_ms,
            ))
        };
        ceil_secs(at.saturating_sub(now_ms)).max(1)
    }

    /// The state after admitting `hits` now.
    pub fn admitted(&self, hash: u64, p: &WindowParams, hits: u64) -> WindowState {
        WindowState {
            hash,
            expiry: self.expiry(p),
            current: clamp_u32(self.current.saturating_add(hits)),
            previous: clamp_u32(self.previous),
            attempts: add_attempts(self.attempts, hits),
            last_current: p.store_phase(if hits > 0 {
                self.last_current_ms.max(self.elapsed_ms)
            } else {
                self.last_current_ms
            }),
            last_previous: p.store_phase(self.last_previous_ms),
        }
    }

    /// The state after a denial of `hits`: counts unchanged, attempts recorded.
    pub fn attempted(&self, hash: u64, p: &WindowParams, hits: u64) -> WindowState {
        WindowState {
            hash,
            expiry: self.expiry(p),
            current: clamp_u32(self.current),
            previous: clamp_u32(self.previous),
            attempts: add_attempts(self.attempts, hits),
            last_current: p.store_phase(self.last_current_ms),
            last_previous: p.store_phase(self.last_previous_ms),
        }
    }

    fn expiry(&self, p: &WindowParams) -> u32 {
        clamp_u32(self.start_secs.saturating_add(2 * p.window_secs))
    }
}

/// Adds `hits` to an attempts word, keeping the flag bit.
pub(crate) fn add_attempts(attempts: u32, hits: u64) -> u32 {
    let flag = attempts & ABUSE_REPORTED;
    let count = u64::from(attempts & ATTEMPTS_MAX).saturating_add(hits);
    flag | count.min(u64::from(ATTEMPTS_MAX)) as u32
}

/// Is this the moment to report abuse (attempts passed 2 × limit, not yet reported)?
pub(crate) fn abuse_due(attempts: u32, limit: u64) -> bool {
    attempts & ABUSE_REPORTED == 0 && u64::from(attempts & ATTEMPTS_MAX) > limit.saturating_mul(2)
}

/// `n / d` for a quotient known to fit in 64 bits, without the slow 128-bit division when
/// `n` itself fits (the usual case: limits and windows are far below 2^32).
fn div_u128(n: u128, d: u64) -> u64 {
    match u64::try_from(n) {
        Ok(n) => n / d,
        Err(_) => (n / u128::from(d)) as u64,
    }
}

pub(crate) fn clamp_u32(v: u64) -> u32 {
    v.min(u64::from(u32::MAX)) as u32
}

pub(crate) fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z, in seconds: a window edge.
    const START: u64 = 1_767_225_600;

    /// 60 hits in the previous minute, the latest at phase 40 s; nothing yet in this one.
    fn view(p: &WindowParams, elapsed_ms: u64) -> WindowView {
        WindowView {
            start_secs: START,
            elapsed_ms,
            current: 0,
            previous: 60,
            last_current_ms: 0,
            last_previous_ms: 40_000,
            attempts: 0,
        }
        .with_remote(0, 0, p)
    }

    #[test]
    fn the_previous_window_weighs_classically_until_its_latest_hit_leaves_then_nothing() {
        let p = WindowParams {
            limit: 100,
            window_secs: 60,
        };
        // At the edge the previous window weighs fully.
        assert_eq!(view(&p, 0).decay(&p), (60_000, 60_000));
        assert_eq!(view(&p, 0).remaining(&p), 40);
        // Just before phase q: the classic weight (W − e) / W, 60 × 20 001 / 60 000 = 20.001.
        let before = view(&p, 39_999);
        assert_eq!(before.decay(&p), (20_001, 60_000));
        assert_eq!(before.estimate_rounded_up(&p), 21);
        assert_eq!(before.remaining(&p), 79);
        assert!(before.admits(&p, 79));
        assert!(!before.admits(&p, 80));
        // At phase q every one of the 60 has left the sliding window: weight 0.
        let at_q = view(&p, 40_000);
        assert_eq!(at_q.decay(&p), (0, 1));
        assert_eq!(at_q.estimate_rounded_up(&p), 0);
        assert_eq!(at_q.remaining(&p), 100);
        assert!(at_q.admits(&p, 100));
        assert_eq!(at_q.reset_secs(&p, START * 1000 + 40_000), 0);
        // Remote hits (phase unknown) make their window weigh as the classic counter weighs
        // it, to its end: the 60 own and 60 remote hits weigh a third of 120 at phase 40 s,
        // 0.002 a millisecond before the end of the window.
        let remote = view(&p, 40_000).with_remote(0, 60, &p);
        assert_eq!(remote.last_previous_ms, 60_000);
        assert_eq!(remote.remaining(&p), 60);
        assert_eq!(view(&p, 59_999).with_remote(0, 60, &p).remaining(&p), 99);
    }

    #[test]
    fn retry_after_is_the_classic_answer_or_phase_q_whichever_comes_first() {
        let p = WindowParams {
            limit: 100,
            window_secs: 60,
        };
        let now_ms = START * 1000;
        let at_edge = view(&p, 0);
        // 41 hits need the 60 to weigh at most 59: `60 × (W − e) ≤ 59 × W` from e = 1 s,
        // before q.
        assert_eq!(at_edge.retry_after_secs(&p, 41, now_ms), 1);
        // The whole limit needs them to weigh nothing: the classic weight reaches 0 only at
        // the end of the window, the step at phase q = 40 s.
        assert_eq!(at_edge.retry_after_secs(&p, 100, now_ms), 40);
        assert_eq!(at_edge.reset_secs(&p, now_ms), 40);
        // When this window's own count leaves no room, the answer is in the next window,
        // where that count decays from its own latest phase (here 10 s into this window).
        let full = WindowView {
            current: 90,
            last_current_ms: 10_000,
            ..view(&p, 40_000)
        };
        let now_ms = START * 1000 + 40_000;
        assert!(!full.admits(&p, 11));
        // 11 hits: `90 × (W − e) ≤ 89 × W` from e = ⌈60 000 / 90⌉ ms = 667 ms into the next
        // window: 20.667 s from now, rounded up.
        assert_eq!(full.retry_after_secs(&p, 11, now_ms), 21);
        // 100 hits: at phase 10 s of the next window, when the 90 have left.
        assert_eq!(full.retry_after_secs(&p, 100, now_ms), 30);
        assert_eq!(full.reset_secs(&p, now_ms), 30);
    }
}
