//! A snapshot round-trips every state; a damaged one gives back what is whole and counts
//! the rest as lost, never failing.

use std::sync::Arc;

use super::super::tests::{limiter, one, spec, T0};
use super::super::{Algorithm, Limiter, LimiterOptions};
use super::RestoreReport;
use crate::clock::{Clock, ManualClock};

/// A limiter with `keys` keys that have spent their quota of 3 per minute (window counter)
/// and of 2 per minute (sliding log), and its snapshot.
fn spent(keys: usize) -> (Limiter, Arc<ManualClock>, Vec<u8>) {
    let (l, clock) = limiter(10_000);
    let w = spec("w", 3, 60, Algorithm::SlidingWindow);
    let g = spec("g", 2, 60, Algorithm::SlidingLog);
    for k in 0..keys {
        let key = format!("key-{k}");
        for _ in 0..3 {
            assert!(one(&l, &w, &key, 1).allowed);
        }
        clock.advance_millis(10);
        for _ in 0..2 {
            assert!(one(&l, &g, &key, 1).allowed);
        }
    }
    let mut file = Vec::new();
    let n = l.write_snapshot(&mut file).unwrap();
    assert_eq!(n, 2 * keys as u64);
    (l, clock, file)
}

/// A fresh limiter with the same hash key, on a clock at `now`.
fn fresh(now: u64, max_states: usize, hash_key: [u8; 16]) -> Limiter {
    Limiter::new(
        LimiterOptions {
            max_states,
            shards: 0,
            hash_key,
        },
        Arc::new(ManualClock::new(now)),
    )
}

fn restore(l: &Limiter, file: &[u8]) -> RestoreReport {
    l.restore_snapshot(&mut &file[..])
}

fn denied_keys(l: &Limiter, keys: usize) -> usize {
    let w = spec("w", 3, 60, Algorithm::SlidingWindow);
    let g = spec("g", 2, 60, Algorithm::SlidingLog);
    (0..keys)
        .filter(|k| {
            let key = format!("key-{k}");
            !one(l, &w, &key, 0).allowed && !one(l, &g, &key, 0).allowed
        })
        .count()
}

#[test]
fn a_snapshot_restores_every_state_with_its_counts() {
    let (before, clock, file) = spent(20);
    let text = std::str::from_utf8(&file).unwrap();
    assert!(text.starts_with("tollgate-limiter-snapshot 1 "), "{text}");
    let after = fresh(clock.now_millis(), 10_000, [7; 16]);
    let report = restore(&after, &file);
    assert_eq!(
        report,
        RestoreReport {
            restored: 40,
            ended: 0,
            lost: 0,
            problem: None,
            origin: None,
        }
    );
    // Writing the restored limiter gives the same states back (before the checks below
    // add their attempts).
    let mut again = Vec::new();
    after.write_snapshot(&mut again).unwrap();
    let body = |f: &[u8]| {
        let mut lines: Vec<String> = std::str::from_utf8(f)
            .unwrap()
            .lines()
            .skip(1)
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(body(&file), body(&again));
    assert_eq!(denied_keys(&after, 20), 20);
    // The same answers, Retry-After included, as the process that wrote it.
    let w = spec("w", 3, 60, Algorithm::SlidingWindow);
    let g = spec("g", 2, 60, Algorithm::SlidingLog);
    for s in [&w, &g] {
        assert_eq!(one(&before, s, "key-3", 1), one(&after, s, "key-3", 1));
    }
}

#[test]
fn states_whose_windows_ended_are_skipped() {
    let (_, clock, file) = spent(5);
    // Both windows of every counter have passed two minutes later.
    let later = fresh(clock.now_millis() + 120_000, 10_000, [7; 16]);
    let report = restore(&later, &file);
    assert_eq!((report.restored, report.ended, report.lost), (0, 10, 0));
    assert_eq!(later.tracked_states(), 0);
}

#[test]
fn one_flipped_byte_loses_one_state_and_no_other() {
    let (_, clock, mut file) = spent(10);
    // A digit of the third record's count: the line still parses, its checksum does not.
    let third = file
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .nth(2)
        .map(|(i, _)| i + 1)
        .unwrap();
    let at = third + 25;
    file[at] ^= 0x01;
    let l = fresh(clock.now_millis(), 10_000, [7; 16]);
    let report = restore(&l, &file);
    assert_eq!((report.restored, report.lost), (19, 1), "{report:?}");
    assert!(
        report
            .problem
            .as_deref()
            .unwrap()
            .contains("line 4: checksum"),
        "{report:?}"
    );
}

#[test]
fn a_file_cut_in_half_restores_the_first_half_and_counts_the_rest_lost() {
    let (_, clock, file) = spent(50);
    let half = &file[..file.len() / 2];
    let l = fresh(clock.now_millis(), 10_000, [7; 16]);
    let report = restore(&l, half);
    assert!(report.restored > 30 && report.restored < 70, "{report:?}");
    assert_eq!(report.restored + report.lost, 100, "{report:?}");
    assert!(report.problem.is_some());
}

#[test]
fn garbage_and_empty_files_restore_nothing_and_say_why() {
    let l = fresh(T0, 10_000, [7; 16]);
    let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    for (file, why) in [
        (&garbage[..], "line 1"),
        (&b""[..], "empty"),
        (&b"tollgate-limiter-snapshot 2 0 0 0 - 0\n"[..], "line 1"),
    ] {
        let report = restore(&l, file);
        assert_eq!(report.restored, 0);
        assert!(
            report.problem.as_deref().unwrap().contains(why),
            "{report:?}"
        );
    }
    assert_eq!(l.tracked_states(), 0);
}

#[test]
fn a_snapshot_of_another_hash_key_is_refused_whole() {
    let (_, clock, file) = spent(5);
    let l = fresh(clock.now_millis(), 10_000, [8; 16]);
    let report = restore(&l, &file);
    assert_eq!((report.restored, report.lost), (0, 10));
    assert!(report.problem.unwrap().contains("hash key"));
}

#[test]
fn a_changed_limit_starts_fresh_while_an_unchanged_one_keeps_its_count() {
    let (_, clock, file) = spent(3);
    let l = fresh(clock.now_millis(), 10_000, [7; 16]);
    restore(&l, &file);
    // "w" is now 4 per minute: another limit, whose states the snapshot does not hold.
    let changed = spec("w", 4, 60, Algorithm::SlidingWindow);
    assert!(one(&l, &changed, "key-0", 1).allowed);
    let unchanged = spec("g", 2, 60, Algorithm::SlidingLog);
    assert!(!one(&l, &unchanged, "key-0", 1).allowed);
}

#[test]
fn a_restore_stops_at_the_state_cap() {
    let (_, clock, file) = spent(20);
    let l = fresh(clock.now_millis(), 15, [7; 16]);
    let report = restore(&l, &file);
    assert_eq!((report.restored, report.lost), (15, 25), "{report:?}");
    assert_eq!(l.tracked_states(), 15);
}
