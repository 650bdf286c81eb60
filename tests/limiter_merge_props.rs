//! Property tests of merging counts from other nodes into the engine
//! (`Limiter::merge_cell`): merging is a join, so nodes that receive the same counts in any
//! order, grouping or number of copies end in the same state and decide alike.
//!
//! - commutative and idempotent: the same merges applied in another order, some of them
//!   repeated, leave the same remote counts and give the same decisions;
//! - associative: merging the states of three nodes as `(a ⊔ b) ⊔ c` or `a ⊔ (b ⊔ c)` gives
//!   what applying every merge to one node gives;
//! - monotone: a merge never lowers a count, and never makes a decision more permissive.
//!
//! Every case stays below the caps (`max_states`, slots per cell), where nothing is evicted.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tollgate::clock::ManualClock;
use tollgate::limiter::{
    Algorithm, CellId, LimitCheck, LimitOutcome, LimitSpec, Limiter, LimiterOptions, NodeSlot,
};

/// 2026-01-01T00:00:00Z plus 61 s: inside the second minute, so a minute window has a
/// previous window to hold counts.
const NOW: u64 = 1_767_225_661_000;
const KEYS: [&str; 3] = ["a", "b", "c"];

fn specs() -> [LimitSpec; 2] {
    let spec = |name: &str, limit, algorithm| LimitSpec {
        name: Arc::from(name),
        limit,
        window: Duration::from_secs(60),
        algorithm,
    };
    [
        spec("tier", 40, Algorithm::SlidingWindow),
        spec("login", 30, Algorithm::SlidingLog),
    ]
}

fn engine() -> (Limiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NOW));
    let limiter = Limiter::new(
        LimiterOptions {
            max_states: 10_000,
            shards: 4,
            hash_key: *b"tollgate-merging",
        },
        clock.clone(),
    );
    (limiter, clock)
}

/// One merge: which cell (spec, key, current or previous window), which slot, what count.
#[derive(Debug, Clone, Copy)]
struct Merge {
    spec: usize,
    key: usize,
    previous: bool,
    slot: u32,
    count: u64,
}

fn merge() -> impl Strategy<Value = Merge> {
    (0..2usize, 0..KEYS.len(), any::<bool>(), 0..4u32, 0..30u64).prop_map(
        |(spec, key, previous, slot, count)| Merge {
            spec,
            key,
            previous,
            slot,
            count,
        },
    )
}

fn cell(l: &Limiter, m: &Merge) -> CellId {
    let at = if m.previous { NOW - 60_000 } else { NOW };
    l.cell_at(&specs()[m.spec], KEYS[m.key], at)
}

fn apply(l: &Limiter, merges: &[Merge]) {
    for m in merges {
        l.merge_cell(&cell(l, m), NodeSlot(m.slot), m.count);
    }
}

/// Copies every remote count `from` holds into `into` (a node merging another's state).
fn merge_state(into: &Limiter, from: &Limiter) {
    from.for_each_remote_count(|c, slot, n| {
        into.merge_cell(&c, slot, n);
    });
}

/// The remote counts held, sorted.
fn state(l: &Limiter) -> Vec<(CellId, NodeSlot, u64)> {
    let mut v = Vec::new();
    l.for_each_remote_count(|c, s, n| v.push((c, s, n)));
    v.sort();
    v
}

/// What every (limit, key) answers now and later, asked without counting.
fn decisions(l: &Limiter, clock: &ManualClock) -> Vec<(bool, LimitOutcome)> {
    let mut v = Vec::new();
    for at in [NOW, NOW + 20_000, NOW + 59_000] {
        clock.set_millis(at);
        for s in &specs() {
            for k in KEYS {
                let d = l.check(&[LimitCheck { limit: s, key: k }], 0);
                v.push((d.allowed, d.deciding().clone()));
            }
        }
    }
    clock.set_millis(NOW);
    v
}

/// A permutation of `0..n` from a seed (Fisher–Yates on a SplitMix64 stream).
fn permutation(n: usize, mut seed: u64) -> Vec<usize> {
    let mut next = || {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        p.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn merging_is_commutative_and_idempotent(
        merges in prop::collection::vec(merge(), 0..40),
        seed in any::<u64>(),
        repeat in prop::collection::vec(any::<bool>(), 40),
    ) {
        let (a, a_clock) = engine();
        apply(&a, &merges);
        // Another order, with some merges applied twice.
        let (b, b_clock) = engine();
        for i in permutation(merges.len(), seed) {
            apply(&b, &[merges[i]]);
            if repeat[i] {
                apply(&b, &[merges[i]]);
            }
        }
        // The whole sequence once more changes nothing.
        apply(&b, &merges);
        prop_assert_eq!(state(&a), state(&b));
        prop_assert_eq!(decisions(&a, &a_clock), decisions(&b, &b_clock));
    }

    #[test]
    fn merging_is_associative(
        merges in prop::collection::vec(merge(), 0..45),
        cut1 in 0..45usize,
        cut2 in 0..45usize,
    ) {
        let (lo, hi) = (cut1.min(cut2).min(merges.len()), cut1.max(cut2).min(merges.len()));
        let parts = [&merges[..lo], &merges[lo..hi], &merges[hi..]];
        let node = |part: &[Merge]| {
            let (l, _) = engine();
            apply(&l, part);
            l
        };
        let (x, y, z) = (node(parts[0]), node(parts[1]), node(parts[2]));
        // (x ⊔ y) ⊔ z
        let (xy, _) = engine();
        merge_state(&xy, &x);
        merge_state(&xy, &y);
        let (left, left_clock) = engine();
        merge_state(&left, &xy);
        merge_state(&left, &z);
        // x ⊔ (y ⊔ z)
        let (yz, _) = engine();
        merge_state(&yz, &y);
        merge_state(&yz, &z);
        let (right, right_clock) = engine();
        merge_state(&right, &x);
        merge_state(&right, &yz);
        // Everything applied to one node.
        let (all, all_clock) = engine();
        apply(&all, &merges);
        prop_assert_eq!(state(&left), state(&right));
        prop_assert_eq!(state(&left), state(&all));
        let d = decisions(&all, &all_clock);
        prop_assert_eq!(decisions(&left, &left_clock), d.clone());
        prop_assert_eq!(decisions(&right, &right_clock), d);
    }

    #[test]
    fn a_merge_never_lowers_a_count_nor_admits_more(
        merges in prop::collection::vec(merge(), 1..40),
    ) {
        let (l, clock) = engine();
        let mut before = decisions(&l, &clock);
        for m in &merges {
            let c = cell(&l, m);
            let held = l.remote_count(&c, NodeSlot(m.slot)).unwrap_or(0);
            l.merge_cell(&c, NodeSlot(m.slot), m.count);
            prop_assert_eq!(l.remote_count(&c, NodeSlot(m.slot)).unwrap_or(0), held.max(m.count));
            let after = decisions(&l, &clock);
            for ((was_allowed, was), (allowed, now)) in before.iter().zip(&after) {
                prop_assert!(now.remaining <= was.remaining);
                prop_assert!(*was_allowed || !*allowed);
            }
            before = after;
        }
    }
}
