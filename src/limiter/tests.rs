//! Unit tests of the engine: window rollover, retry-after accuracy, peek, multi-limit
//! atomicity, the cap, the idle sweep and the abuse signal. Randomised properties against an
//! exact oracle live in tests/limiter_props.rs.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;

/// 2026-01-01T00:00:00Z: a realistic epoch, aligned to every window used below.
const T0: u64 = 1_767_225_600_000;

fn spec(name: &str, limit: u64, window_secs: u64, algorithm: Algorithm) -> LimitSpec {
    LimitSpec {
        name: Arc::from(name),
        limit,
        window: Duration::from_secs(window_secs),
        algorithm,
    }
}

fn limiter(max_states: usize) -> (Limiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let l = Limiter::new(
        LimiterOptions {
            max_states,
            shards: 0,
            hash_key: [7; 16],
        },
        clock.clone(),
    );
    (l, clock)
}

fn one(l: &Limiter, s: &LimitSpec, key: &str, hits: u64) -> Decision {
    l.check(&[LimitCheck { limit: s, key }], hits)
}

#[test]
fn admits_up_to_the_limit_then_denies() {
    let (l, _c) = limiter(1000);
    let s = spec("basic", 5, 60, Algorithm::SlidingWindow);
    for i in 0..5 {
        let d = one(&l, &s, "k", 1);
        assert!(d.allowed, "hit {i}");
        assert_eq!(d.deciding().remaining, 4 - i);
    }
    let d = one(&l, &s, "k", 1);
    assert!(!d.allowed);
    assert_eq!(d.deciding().remaining, 0);
    assert!(d.deciding().retry_after_secs.is_some());
    // Another key is independent.
    assert!(one(&l, &s, "other", 1).allowed);
}
