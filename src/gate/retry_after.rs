//! When a denied caller should come back: the one rule behind `Retry-After` (HTTP) and the
//! `retry_after` field of `CHECK` and `VERIFY` (RESP).

use crate::limiter::Decision;

/// Seconds a denied caller should wait before retrying; `None` when admitted.
///
/// The deciding limit's own estimate (when the denied hits fit again), else the time until
/// its window resets, and **at least one second**: `0` would invite an immediate retry that
/// the same limit denies again, and `Retry-After` counts whole seconds.
pub fn retry_after(decision: &Decision) -> Option<u64> {
    if decision.allowed {
        return None;
    }
    let o = decision.deciding();
    Some(o.retry_after_secs.unwrap_or(o.reset_secs).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::limiter::{Algorithm, LimitCheck, LimitSpec, Limiter, LimiterOptions};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn at_least_one_second_and_only_when_denied() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let limiter = Limiter::new(
            LimiterOptions {
                max_states: 100,
                shards: 1,
                hash_key: [7; 16],
            },
            clock.clone(),
        );
        let spec = LimitSpec {
            name: "one".into(),
            limit: 1,
            window: Duration::from_secs(1),
            algorithm: Algorithm::SlidingLog,
        };
        let check = [LimitCheck {
            limit: &spec,
            key: "k",
        }];
        let admitted = limiter.check(&check, 1);
        assert_eq!(retry_after(&admitted), None);
        // 999 ms into a 1 s window the hit frees up in 1 ms: still one whole second.
        clock.advance_millis(999);
        let denied = limiter.check(&check, 1);
        assert!(!denied.allowed);
        assert_eq!(retry_after(&denied), Some(1));

        // Whatever a limit estimates, a denial never advises less than a second, and an
        // estimate is preferred over the window's reset.
        let mut d = denied.clone();
        d.outcomes[0].retry_after_secs = Some(0);
        d.outcomes[0].reset_secs = 0;
        assert_eq!(retry_after(&d), Some(1));
        d.outcomes[0].retry_after_secs = None;
        d.outcomes[0].reset_secs = 30;
        assert_eq!(retry_after(&d), Some(30));
        d.outcomes[0].retry_after_secs = Some(7);
        assert_eq!(retry_after(&d), Some(7));
    }
}
