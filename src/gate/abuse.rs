//! The abuse signal's periodic summary.
//!
//! Each key that asks for more than twice its limit in a window raises the abuse signal once
//! per window (the limiter decides when; the gate counts it and logs one warning per key).
//! Under an attack from many keys that is one line per key, which buries the attack's shape.
//! So the gate also gathers every signal of a period here and, once [`PERIOD_MS`] has passed
//! since the period's first signal, logs one summary line: how many signals, from how many
//! keys, per limit, and the [`TOP_KEYS`] keys that signalled most. No signal, no line.
//!
//! Bounded: at most [`MAX_TRACKED_KEYS`] keys and [`MAX_TRACKED_LIMITS`] limit names are
//! held. Beyond that, keys are counted by the Space-Saving algorithm (Metwally, Agrawal and
//! El Abbadi, 2005): a new key takes the place of the key with the smallest count and
//! inherits that count plus one, so every key that signalled more than
//! `signals / MAX_TRACKED_KEYS` times is still in the table, and a count is an upper bound
//! (exact while the table never filled). The number of distinct keys is then reported as
//! "more than [`MAX_TRACKED_KEYS`]". Signals of limits beyond the cap are counted under
//! `other`. Keys are what the limiter counts (user ids, addresses, API-key names): never a
//! token, which is never a key.

use std::collections::HashMap;
use std::fmt;

use parking_lot::Mutex;

/// How long signals are gathered before one summary is logged, from the period's first signal.
pub const PERIOD_MS: u64 = 60_000;
/// Keys named in a summary.
pub const TOP_KEYS: usize = 5;
/// Most keys counted one by one in a period.
pub const MAX_TRACKED_KEYS: usize = 1024;
/// Most limit names counted one by one in a period (more are counted under `other`).
pub const MAX_TRACKED_LIMITS: usize = 64;

/// The signals of one period.
#[derive(Debug, Default)]
struct Period {
    /// When its first signal came (Unix ms); `None` while there was none.
    started_ms: Option<u64>,
    signals: u64,
    keys: HashMap<Box<str>, u64, ahash::RandomState>,
    /// Whether a key had to take another's place (counts are upper bounds from then on).
    keys_overflowed: bool,
    limits: Vec<(Box<str>, u64)>,
    other_limits: u64,
}

/// Gathers abuse signals between summaries.
#[derive(Debug, Default)]
pub struct AbuseSummary(Mutex<Period>);

/// One summary: what a period of abuse signals looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseReport {
    /// Milliseconds from the period's first signal to the summary.
    pub period_ms: u64,
    /// Abuse signals raised.
    pub signals: u64,
    /// Distinct keys that raised them (exact unless `keys_over_cap`).
    pub keys: usize,
    /// More than [`MAX_TRACKED_KEYS`] keys signalled: `keys` is the cap, and `top` counts are
    /// upper bounds.
    pub keys_over_cap: bool,
    /// Signals per limit, most first (`other` for limits beyond [`MAX_TRACKED_LIMITS`]).
    pub by_limit: Vec<(String, u64)>,
    /// The keys with the most signals, most first (ties by key), at most [`TOP_KEYS`].
    pub top: Vec<(String, u64)>,
}

impl AbuseSummary {
    /// Records one abuse signal of `key` against `limit` at `now_ms`.
    pub fn record(&self, key: &str, limit: &str, now_ms: u64) {
        let mut p = self.0.lock();
        p.started_ms.get_or_insert(now_ms);
        p.signals = p.signals.saturating_add(1);

        if let Some(n) = p.keys.get_mut(key) {
            *n = n.saturating_add(1);
        } else if p.keys.len() < MAX_TRACKED_KEYS {
            p.keys.insert(Box::from(key), 1);
        } else {
            // Space-Saving: the new key replaces the least-counted one and inherits its count.
            // The table is full only under a many-key attack, whose every key already spent
            // more than twice its quota to get here: the scan is cheap by comparison.
            let smallest = p
                .keys
                .iter()
                .min_by_key(|(_, &n)| n)
                .map(|(k, &n)| (k.clone(), n));
            if let Some((old, n)) = smallest {
                p.keys.remove(&old);
                p.keys.insert(Box::from(key), n.saturating_add(1));
            }
            p.keys_overflowed = true;
        }

        if let Some((_, n)) = p.limits.iter_mut().find(|(l, _)| &**l == limit) {
            *n = n.saturating_add(1);
        } else if p.limits.len() < MAX_TRACKED_LIMITS {
            p.limits.push((Box::from(limit), 1));
        } else {
            p.other_limits = p.other_limits.saturating_add(1);
        }
    }

    /// The summary of the period, once [`PERIOD_MS`] has passed since its first signal (and
    /// a new period begins); `None` before then, and when there was no signal.
    pub fn take_due(&self, now_ms: u64) -> Option<AbuseReport> {
        let mut p = self.0.lock();
        let started = p.started_ms?;
        let period_ms = now_ms.saturating_sub(started);
        if period_ms < PERIOD_MS {
            return None;
        }
        let p = std::mem::take(&mut *p);
        let mut top: Vec<(String, u64)> = p.keys.iter().map(|(k, &n)| (k.to_string(), n)).collect();
        top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(TOP_KEYS);
        let mut by_limit: Vec<(String, u64)> =
            p.limits.into_iter().map(|(l, n)| (l.into(), n)).collect();
        if p.other_limits > 0 {
            by_limit.push(("other".to_owned(), p.other_limits));
        }
        by_limit.sort_by_key(|l| std::cmp::Reverse(l.1));
        Some(AbuseReport {
            period_ms,
            signals: p.signals,
            keys: p.keys.len(),
            keys_over_cap: p.keys_overflowed,
            by_limit,
            top,
        })
    }
}

/// `name=count, name=count`, names quoted as Rust debug strings (a key may hold anything).
struct Counts<'a>(&'a [(String, u64)]);

impl fmt::Display for Counts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, n)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name:?}={n}")?;
        }
        Ok(())
    }
}

impl AbuseReport {
    /// The number of keys as logged: `1024+` once over the cap.
    pub fn keys_text(&self) -> String {
        if self.keys_over_cap {
            format!("{}+", MAX_TRACKED_KEYS)
        } else {
            self.keys.to_string()
        }
    }

    /// Logs the summary: one warning on the `tollgate::abuse` target.
    pub fn log(&self) {
        tracing::warn!(
            target: "tollgate::abuse",
            period_secs = self.period_ms / 1000,
            signals = self.signals,
            keys = %self.keys_text(),
            by_limit = %Counts(&self.by_limit),
            top_keys = %Counts(&self.top),
            "abuse summary: keys that asked for more than twice their limit since the last summary"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_due_without_a_signal() {
        let s = AbuseSummary::default();
        assert_eq!(s.take_due(0), None);
        assert_eq!(s.take_due(10 * PERIOD_MS), None);
    }

    #[test]
    fn one_summary_per_period_from_its_first_signal() {
        let s = AbuseSummary::default();
        let t0 = 1_000_000;
        s.record("user:1", "basic", t0);
        s.record("user:2", "basic", t0 + 10);
        s.record("user:1", "login", t0 + 20);
        s.record("user:1", "basic", t0 + 30_000);
        assert_eq!(s.take_due(t0 + PERIOD_MS - 1), None, "not due yet");
        let r = s.take_due(t0 + PERIOD_MS).expect("due");
        assert_eq!(r.period_ms, PERIOD_MS);
        assert_eq!(r.signals, 4);
        assert_eq!(r.keys, 2);
        assert!(!r.keys_over_cap);
        assert_eq!(r.keys_text(), "2");
        assert_eq!(
            r.by_limit,
            vec![("basic".to_owned(), 3), ("login".to_owned(), 1)]
        );
        assert_eq!(
            r.top,
            vec![("user:1".to_owned(), 3), ("user:2".to_owned(), 1)]
        );
        // The period was taken: nothing more until a new signal, and a new period from it.
        assert_eq!(s.take_due(t0 + 3 * PERIOD_MS), None);
        s.record("user:3", "basic", t0 + 3 * PERIOD_MS);
        assert_eq!(s.take_due(t0 + 4 * PERIOD_MS - 1), None);
        let r = s.take_due(t0 + 4 * PERIOD_MS).expect("due");
        assert_eq!((r.signals, r.keys), (1, 1));
    }

    #[test]
    fn top_keys_are_the_most_counted_at_most_five() {
        let s = AbuseSummary::default();
        for (i, key) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
            for _ in 0..=i {
                s.record(key, "basic", 0);
            }
        }
        let r = s.take_due(PERIOD_MS).expect("due");
        let names: Vec<&str> = r.top.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["g", "f", "e", "d", "c"]);
        assert_eq!(r.top[0].1, 7);
        assert_eq!(r.signals, 28);
    }

    #[test]
    fn memory_is_bounded_and_a_heavy_key_survives_a_flood_of_new_keys() {
        let s = AbuseSummary::default();
        for _ in 0..50 {
            s.record("attacker", "basic", 0);
        }
        for i in 0..(10 * MAX_TRACKED_KEYS) {
            s.record(&format!("flood:{i}"), &format!("limit{}", i % 100), 1);
        }
        {
            let p = s.0.lock();
            assert!(p.keys.len() <= MAX_TRACKED_KEYS);
            assert!(p.limits.len() <= MAX_TRACKED_LIMITS);
        }
        let r = s.take_due(PERIOD_MS).expect("due");
        assert!(r.keys_over_cap);
        assert_eq!(r.keys_text(), format!("{MAX_TRACKED_KEYS}+"));
        assert_eq!(r.signals, 50 + 10 * MAX_TRACKED_KEYS as u64);
        assert_eq!(r.top[0], ("attacker".to_owned(), 50));
        let other = r
            .by_limit
            .iter()
            .find(|(l, _)| l == "other")
            .expect("other");
        let named: u64 = r
            .by_limit
            .iter()
            .filter(|(l, _)| l != "other")
            .map(|x| x.1)
            .sum();
        assert_eq!(named + other.1, r.signals);
    }

    #[test]
    fn the_log_line_quotes_keys() {
        let r = AbuseReport {
            period_ms: 61_000,
            signals: 3,
            keys: 2,
            keys_over_cap: false,
            by_limit: vec![("basic".into(), 3)],
            top: vec![("ip:10.0.0.1".into(), 2), ("a \"b\"".into(), 1)],
        };
        assert_eq!(
            Counts(&r.top).to_string(),
            r#""ip:10.0.0.1"=2, "a \"b\""=1"#
        );
    }
}
