//! Property tests of the rate-limiting engine against an exact sliding-log oracle written
//! here, independently of the engine, on random traces:
//!
//! - the sliding-window counter never admits more than the limit in an aligned window, nor
//!   more than `2·L − ⌈2·L / W_ms⌉` in any window of its length (the theoretical worst
//!   case, docs/algorithms.md), and the constructed worst case reaches that bound exactly;
//! - its `reset` and `retry_after` are at most the window, and a request that waits
//!   `retry_after` with no other traffic on its key is admitted;
//! - `sliding_log` answers exactly as the oracle (decision, remaining, reset, retry-after);
//! - a multi-limit request is all or nothing: it is admitted exactly when every limit,
//!   taken alone, would admit it, and a denied one changes no count anywhere;
//! - eviction never raises a count;
//! - retry-after is exact to the second: a same-size request passes then and not a second
//!   earlier.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tollgate::clock::{Clock, ManualClock};
use tollgate::limiter::{Algorithm, LimitCheck, LimitSpec, Limiter, LimiterOptions};

/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600_000;

fn spec(name: &str, limit: u64, window_secs: u64, algorithm: Algorithm) -> LimitSpec {
    LimitSpec {
        name: Arc::from(name),
        limit,
        window: Duration::from_secs(window_secs),
        algorithm,
    }
}

fn engine(max_states: usize, start_ms: u64) -> (Limiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start_ms));
    let limiter = Limiter::new(
        LimiterOptions {
            max_states,
            shards: 0,
            hash_key: *b"tollgate-proptst",
        },
        clock.clone(),
    );
    (limiter, clock)
}

fn check1(l: &Limiter, s: &LimitSpec, key: &str, hits: u64) -> tollgate::limiter::Decision {
    l.check(&[LimitCheck { limit: s, key }], hits)
}

/// Hits still available now, asked without counting.
fn remaining(l: &Limiter, s: &LimitSpec, key: &str) -> u64 {
    check1(l, s, key, 0).deciding().remaining
}

/// The exact sliding log: a request at `t` passes when the hits admitted in `(t − W, t]`
/// plus its own do not exceed the limit.
#[derive(Debug, Default, Clone)]
struct Oracle {
    admitted: Vec<(u64, u64)>,
}

impl Oracle {
    fn in_window(&self, w_ms: u64, t: u64) -> u64 {
        self.admitted
            .iter()
            .filter(|&&(ts, _)| ts + w_ms > t)
            .map(|&(_, h)| h)
            .sum()
    }

    fn check(&mut self, limit: u64, w_ms: u64, t: u64, hits: u64) -> OracleAnswer {
        let used = self.in_window(w_ms, t);
        let probe = hits.max(1);
        let allowed = used + probe <= limit;
        let retry_after = (!allowed).then(|| {
            if probe > limit {
                return w_ms / 1000;
            }
            // Walk the live records oldest first until enough hits have left the window.
            let mut freed = 0;
            for &(ts, h) in &self.admitted {
                if ts + w_ms <= t {
                    continue;
                }
                freed += h;
                if used + probe - freed <= limit {
                    return (ts + w_ms - t).div_ceil(1000).max(1);
                }
            }
            unreachable!("every live record leaving frees the whole window")
        });
        if allowed && hits > 0 {
            self.admitted.push((t, hits));
        }
        let used_after = self.in_window(w_ms, t);
        let newest = self
            .admitted
            .iter()
            .filter(|&&(ts, _)| ts + w_ms > t)
            .map(|&(ts, _)| ts)
            .max();
        OracleAnswer {
            allowed,
            remaining: limit.saturating_sub(used_after),
            reset: newest.map_or(0, |ts| (ts + w_ms - t).div_ceil(1000)),
            retry_after,
        }
    }
}

#[derive(Debug, PartialEq)]
struct OracleAnswer {
    allowed: bool,
    remaining: u64,
    reset: u64,
    retry_after: Option<u64>,
}

/// One request of a trace: wait `gap_ms`, then ask for `hits` on key `key`.
#[derive(Debug, Clone, Copy)]
struct Step {
    gap_ms: u64,
    key: usize,
    hits: u64,
}

fn steps(
    max_gap_ms: u64,
    max_hits: u64,
    keys: usize,
    len: usize,
) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (0..=max_gap_ms, 0..keys, 0..=max_hits).prop_map(|(gap_ms, key, hits)| Step {
            gap_ms,
            key,
            hits,
        }),
        1..len,
    )
}

/// Arrival gaps mixing bursts (0–50 ms apart) and pauses up to two windows long.
fn bursty_gap(w_ms: u64) -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..50u64, 1 => 0..=2 * w_ms]
}

/// The most hits the counter can admit in a window of its length: `2·L − ⌈2·L / W_ms⌉`
/// (docs/algorithms.md, "The worst case"): `2L − 1` for any limit up to `W_ms / 2`.
fn window_bound(limit: u64, w_ms: u64) -> u64 {
    2 * limit - (2 * limit).div_ceil(w_ms)
}

/// Checks a key's admissions `(t, hits)`: at most `limit` per aligned window, at most
/// [`window_bound`] in every window `(t − W, t]` (the largest such window ends at an
/// admission, so those are the ones checked). Returns the largest sliding-window count.
fn check_admissions(log: &[(u64, u64)], limit: u64, w_ms: u64) -> Result<u64, TestCaseError> {
    let mut per_window = std::collections::HashMap::<u64, u64>::new();
    for &(t, h) in log {
        *per_window.entry(t / w_ms).or_default() += h;
    }
    for (&w, &n) in &per_window {
        prop_assert!(
            n <= limit,
            "aligned window {} admitted {} > {}",
            w,
            n,
            limit
        );
    }
    let mut peak = 0;
    for &(t, _) in log {
        let n: u64 = log
            .iter()
            .filter(|&&(ts, _)| ts <= t && ts + w_ms > t)
            .map(|&(_, h)| h)
            .sum();
        prop_assert!(
            n <= window_bound(limit, w_ms),
            "the window ending {} admitted {} > 2·{} − ⌈2·{} / {}⌉",
            t,
            n,
            limit,
            limit,
            w_ms
        );
        peak = peak.max(n);
    }
    Ok(peak)
}

/// The constructed worst case (docs/algorithms.md): a quiet window, then `limit` hits in the
/// last millisecond of the next window, then as many as pass two milliseconds before the end
/// of the window after. Both bursts lie in one window `(t − W, t]`, which then holds exactly
/// `2·L − ⌈2·L / W_ms⌉`: the first burst, at phase `W_ms − 1`, has not left yet (its phase
/// is `q`), so it still weighs the classic `L × 2 / W_ms`.
#[test]
fn the_constructed_worst_case_reaches_the_bound_exactly() {
    for (limit, window_secs) in [
        (5u64, 1u64),
        (100, 1),
        (500, 1),
        (10_000, 1),
        (10_000, 3600),
    ] {
        let w_ms = window_secs * 1000;
        // T0 is a whole number of hours: an edge of every window length used here.
        let (l, clock) = engine(16, T0);
        let s = spec("worst", limit, window_secs, Algorithm::SlidingWindow);
        clock.set_millis(T0 + 2 * w_ms - 1);
        assert!(check1(&l, &s, "k", limit).allowed);
        let second = T0 + 3 * w_ms - 2;
        clock.set_millis(second);
        let room = remaining(&l, &s, "k");
        assert_eq!(
            room,
            limit - (2 * limit).div_ceil(w_ms),
            "L={limit} W={window_secs}s"
        );
        assert!(check1(&l, &s, "k", room).allowed);
        assert!(!check1(&l, &s, "k", 1).allowed, "one more hit passed");
        // (second − W, second] holds both bursts.
        assert!(T0 + 2 * w_ms - 1 > second - w_ms);
        assert_eq!(limit + room, window_bound(limit, w_ms));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn counter_admits_at_most_the_limit_per_aligned_window_and_the_bound_per_window(
        limit in 1u64..40,
        window_secs in prop::sample::select(vec![1u64, 2, 5, 60]),
        start_offset in 0u64..120_000,
        trace in prop::collection::vec((bursty_gap(60_000), 0usize..3, 0u64..6), 1..300),
    ) {
        let w_ms = window_secs * 1000;
        let (l, clock) = engine(10_000, T0 + start_offset);
        let s = spec("w", limit, window_secs, Algorithm::SlidingWindow);
        let mut admitted: Vec<Vec<(u64, u64)>> = vec![Vec::new(); 3];
        for (gap, key, hits) in trace {
            clock.advance_millis(gap % (2 * w_ms + 1));
            let t = clock.now_millis();
            let d = check1(&l, &s, &format!("key{key}"), hits);
            if d.allowed && hits > 0 {
                admitted[key].push((t, hits));
            }
            prop_assert!(d.deciding().remaining <= limit);
        }
        for log in &admitted {
            check_admissions(log, limit, w_ms)?;
        }
    }

    /// The bound where it is tight: large limits, requests of many hits (a share of the
    /// limit, or all that is left), and arrivals pushed into the last milliseconds before
    /// window edges, where the previous window weighs least.
    #[test]
    fn counter_stays_within_the_worst_case_bound_near_window_edges(
        limit in 1u64..5_000,
        window_secs in prop::sample::select(vec![1u64, 2, 60]),
        trace in prop::collection::vec(
            (0u64..4, 0u64..5, prop_oneof![1 => Just(0u64), 2 => 1u64..=100]), 1..60),
    ) {
        let w_ms = window_secs * 1000;
        let (l, clock) = engine(16, T0);
        let s = spec("edge", limit, window_secs, Algorithm::SlidingWindow);
        let mut admitted = Vec::new();
        for (jump, before_edge, percent) in trace {
            // Stay, or move to `before_edge` ms before the end of this or a later window.
            let now = clock.now_millis();
            if jump > 0 {
                let edge = (now / w_ms + jump) * w_ms;
                clock.set_millis((edge - before_edge - 1).max(now));
            }
            let t = clock.now_millis();
            // 0: everything the counter has left (at least one hit, to be denied).
            let hits = match percent {
                0 => remaining(&l, &s, "k").max(1),
                p => (limit * p).div_ceil(100),
            };
            if check1(&l, &s, "k", hits).allowed {
                admitted.push((t, hits));
            }
        }
        check_admissions(&admitted, limit, w_ms)?;
    }

    #[test]
    fn sliding_log_matches_the_exact_oracle(
        limit in 1u64..25,
        window_secs in prop::sample::select(vec![1u64, 3, 10, 300]),
        start_offset in 0u64..1_000_000,
        trace in steps(4_000, 8, 3, 300),
    ) {
        let w_ms = window_secs * 1000;
        let (l, clock) = engine(10_000, T0 + start_offset);
        let s = spec("log", limit, window_secs, Algorithm::SlidingLog);
        let mut oracles = vec![Oracle::default(); 3];
        for step in trace {
            clock.advance_millis(step.gap_ms * window_secs / 3);
            let t = clock.now_millis();
            let d = check1(&l, &s, &format!("key{}", step.key), step.hits);
            let o = d.deciding();
            let got = OracleAnswer {
                allowed: d.allowed,
                remaining: o.remaining,
                reset: o.reset_secs,
                retry_after: o.retry_after_secs,
            };
            let want = oracles[step.key].check(limit, w_ms, t, step.hits);
            prop_assert_eq!(got, want, "at t = T0 + {} ms, hits {}", t - T0, step.hits);
        }
    }

    #[test]
    fn multi_limit_requests_are_all_or_nothing(
        limits in prop::collection::vec(
            (1u64..12, prop::sample::select(vec![1u64, 5, 60]), any::<bool>()), 2..4),
        start_offset in 0u64..100_000,
        trace in prop::collection::vec(
            (0u64..3_000, prop::collection::vec((0usize..4, 0usize..2), 1..4), 0u64..5), 1..150),
    ) {
        let specs: Vec<LimitSpec> = limits
            .iter()
            .enumerate()
            .map(|(i, &(limit, w, log))| {
                let algorithm = if log { Algorithm::SlidingLog } else { Algorithm::SlidingWindow };
                spec(&format!("limit{i}"), limit, w, algorithm)
            })
            .collect();
        let keys = ["alice", "bob"];
        let (l, clock) = engine(10_000, T0 + start_offset);
        // The model: each limit alone, in an engine of its own, fed only admitted requests.
        let models: Vec<Limiter> = specs.iter().map(|_| {
            Limiter::new(
                LimiterOptions { max_states: 10_000, shards: 0, hash_key: *b"tollgate-proptst" },
                clock.clone(),
            )
        }).collect();
        for (gap, picks, hits) in trace {
            clock.advance_millis(gap);
            let mut picks: Vec<(usize, usize)> = picks
                .into_iter()
                .map(|(s, k)| (s % specs.len(), k))
                .collect();
            picks.sort_unstable();
            picks.dedup();
            let checks: Vec<LimitCheck<'_>> = picks
                .iter()
                .map(|&(s, k)| LimitCheck { limit: &specs[s], key: keys[k] })
                .collect();
            let all: Vec<(usize, usize)> = (0..specs.len())
                .flat_map(|s| (0..keys.len()).map(move |k| (s, k)))
                .collect();
            let before: Vec<u64> = all.iter().map(|&(s, k)| remaining(&l, &specs[s], keys[k])).collect();
            let model_admits = picks.iter().all(|&(s, k)| {
                remaining(&models[s], &specs[s], keys[k]) >= hits.max(1)
            });
            let d = l.check(&checks, hits);
            prop_assert_eq!(d.allowed, model_admits);
            prop_assert_eq!(d.outcomes.len(), checks.len());
            if !d.allowed {
                prop_assert!(d.outcomes[d.deciding].retry_after_secs.is_some());
                prop_assert!(d.outcomes[..d.deciding].iter().all(|o| o.retry_after_secs.is_none()));
            }
            if d.allowed && hits > 0 {
                for &(s, k) in &picks {
                    prop_assert!(check1(&models[s], &specs[s], keys[k], hits).allowed);
                }
            }
            let after: Vec<u64> = all.iter().map(|&(s, k)| remaining(&l, &specs[s], keys[k])).collect();
            if !d.allowed || hits == 0 {
                prop_assert_eq!(&before, &after, "a denied request or a peek changed a count");
            }
            // Engine and model agree on every state.
            for (i, &(s, k)) in all.iter().enumerate() {
                prop_assert_eq!(after[i], remaining(&models[s], &specs[s], keys[k]));
            }
        }
    }

    #[test]
    fn eviction_never_raises_a_count(
        cap in 8usize..64,
        algorithm_log in any::<bool>(),
        loads in prop::collection::vec((1u64..10, 0u64..5_000), 1..40),
        flood in 1usize..300,
        flood_gap in 0u64..3_000,
    ) {
        let algorithm = if algorithm_log { Algorithm::SlidingLog } else { Algorithm::SlidingWindow };
        let s = spec("e", 10, 60, algorithm);
        let (l, clock) = engine(cap, T0);
        for (i, &(hits, gap)) in loads.iter().enumerate() {
            clock.advance_millis(gap);
            check1(&l, &s, &format!("k{i}"), hits);
        }
        clock.advance_millis(flood_gap);
        let before: Vec<u64> = (0..loads.len()).map(|i| remaining(&l, &s, &format!("k{i}"))).collect();
        for j in 0..flood {
            check1(&l, &s, &format!("flood{j}"), 1);
            prop_assert!(l.tracked_states() <= cap);
        }
        for (i, &b) in before.iter().enumerate() {
            let a = remaining(&l, &s, &format!("k{i}"));
            prop_assert!(a >= b, "k{}: remaining fell from {} to {} after evictions", i, b, a);
        }
    }

    #[test]
    fn retry_after_is_exact_to_the_second(
        limit in 1u64..200,
        window_secs in prop::sample::select(vec![1u64, 7, 60, 3600, 86_400]),
        log in any::<bool>(),
        history in prop::collection::vec((0u64..1000, 1u64..20), 1..30),
        ask in 1u64..30,
    ) {
        let algorithm = if log && limit <= 1000 { Algorithm::SlidingLog } else { Algorithm::SlidingWindow };
        let s = spec("r", limit, window_secs, algorithm);
        let (l, clock) = engine(100, T0);
        for &(gap_permille, hits) in &history {
            clock.advance_millis(gap_permille * window_secs);
            check1(&l, &s, "k", hits);
        }
        let now = clock.now_millis();
        let d = check1(&l, &s, "k", ask);
        if !d.allowed {
            let retry = d.deciding().retry_after_secs.unwrap();
            prop_assert!(retry >= 1);
            prop_assert!(retry <= window_secs, "retry_after {} > window {}", retry, window_secs);
            if ask <= limit {
                clock.set_millis(now + retry * 1000);
                prop_assert!(remaining(&l, &s, "k") >= ask, "still denied after retry_after {}", retry);
                if retry > 1 {
                    clock.set_millis(now + (retry - 1) * 1000);
                    prop_assert!(remaining(&l, &s, "k") < ask, "admitted before retry_after {}", retry);
                }
            } else {
                prop_assert_eq!(retry, window_secs);
            }
        }
    }

    /// `reset` (the `t` of the `RateLimit` field) and `retry_after` never pass the window,
    /// after any history, on either algorithm; and a client that waits `retry_after` and
    /// asks again (nothing else on its key) is admitted.
    #[test]
    fn reset_and_retry_after_are_at_most_the_window_and_honest(
        limit in 1u64..100,
        window_secs in prop::sample::select(vec![1u64, 2, 60, 3600]),
        log in any::<bool>(),
        trace in prop::collection::vec((0u64..1500, 0u64..12), 1..60),
    ) {
        let algorithm = if log { Algorithm::SlidingLog } else { Algorithm::SlidingWindow };
        let s = spec("t", limit, window_secs, algorithm);
        let (l, clock) = engine(100, T0);
        let w_ms = window_secs * 1000;
        for &(gap_permille, hits) in &trace {
            clock.advance_millis(gap_permille * w_ms / 1000);
            let d = check1(&l, &s, "k", hits);
            let o = d.deciding();
            prop_assert!(o.reset_secs <= window_secs, "reset {} > window {}", o.reset_secs, window_secs);
            if let Some(retry) = o.retry_after_secs {
                prop_assert!(retry <= window_secs, "retry_after {} > window {}", retry, window_secs);
                if hits <= limit {
                    // Wait exactly as told, on a copy of the clock's time, and ask again.
                    let now = clock.now_millis();
                    clock.set_millis(now + retry * 1000);
                    let again = check1(&l, &s, "k", hits);
                    prop_assert!(again.allowed, "denied after waiting retry_after {}", retry);
                }
            }
        }
    }
}
