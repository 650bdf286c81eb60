//! Property tests of the counter plane's slots (`cluster::counter_plane`): whatever the order
//! and number of copies in which a peer's datagrams arrive, across restarts,
//!
//! - a restarted node (a new generation, counting again from 0) never lowers a count its
//!   previous life reported: the receiver's total for a cell never goes down;
//! - a peer's slot is never counted twice: the receiver's total is never more than the sum
//!   of what each life really counted, and is exactly that once every life's datagrams
//!   arrived while it was current.
//!
//! Merging by maximum being commutative, associative and idempotent is tested at the
//! limiter's level in tests/limiter_merge_props.rs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use proptest::prelude::*;
use tollgate::clock::ManualClock;
use tollgate::cluster::counter_plane::{CounterPlane, CounterPlaneOptions, Threshold};
use tollgate::cluster::membership::{Generation, NodeValues, Peer, PeerState};
use tollgate::cluster::metrics::ClusterMetrics;
use tollgate::cluster::wire::{ClusterKey, Freshness};
use tollgate::limiter::{Algorithm, LimitCheck, LimitSpec, Limiter, LimiterOptions};

/// 2026-01-01T00:00:10Z.
const T0: u64 = 1_767_225_610_000;

fn spec() -> LimitSpec {
    LimitSpec {
        name: Arc::from("tier"),
        limit: 10_000,
        window: Duration::from_secs(60),
        algorithm: Algorithm::SlidingWindow,
    }
}

fn node(name: &str, generation: u64, clock: &Arc<ManualClock>) -> (Limiter, CounterPlane) {
    let limiter = Limiter::new(
        LimiterOptions {
            max_states: 1000,
            shards: 2,
            hash_key: *b"tollgate-cluster",
        },
        clock.clone(),
    );
    let mut plane = CounterPlane::new(
        CounterPlaneOptions {
            node_name: name.into(),
            generation: Generation(generation),
            restored_from: None,
            key: ClusterKey::new(&[7; 32]).unwrap(),
            threshold: Threshold::Fixed(1),
            max_cells_per_interval: 64,
            freshness: Freshness {
                max_age_ms: 60_000,
                max_ahead_ms: 1_000,
            },
            interval_ms: 50,
        },
        ClusterMetrics::new(&Registry::new()),
    );
    plane.set_limits(&[spec()], &limiter);
    (limiter, plane)
}

fn peer(name: &str, generation: u64, config_hash: u64) -> Peer {
    Peer {
        name: Arc::from(name),
        values: NodeValues {
            plane: SocketAddr::from(([127, 0, 0, 1], 7946)),
            generation: Generation(generation),
            config_hash,
            revocation_digest: 0,
            ready: true,
        },
        state: PeerState::Alive,
        last_heard: Duration::ZERO,
    }
}

/// One life of the sending node: its hits per interval, with the datagrams each interval's
/// tick sent, and what it counted in all.
struct Life {
    generation: u64,
    datagrams: Vec<Vec<u8>>,
    total: u64,
}

fn live(lives: &[Vec<u8>], clock: &Arc<ManualClock>, receiver: &Peer) -> Vec<Life> {
    lives
        .iter()
        .enumerate()
        .map(|(i, steps)| {
            let generation = 100 + i as u64;
            let (limiter, mut plane) = node("a", generation, clock);
            let mut datagrams = Vec::new();
            let mut total = 0;
            for (t, &hits) in steps.iter().enumerate() {
                if hits > 0 {
                    let s = spec();
                    let d = limiter.check(
                        &[LimitCheck {
                            limit: &s,
                            key: "k",
                        }],
                        u64::from(hits),
                    );
                    assert!(d.allowed);
                    total += u64::from(hits);
                }
                plane.tick(
                    &limiter,
                    T0 + 50 * t as u64,
                    std::slice::from_ref(receiver),
                    |_, d| datagrams.push(d.to_vec()),
                );
            }
            Life {
                generation,
                datagrams,
                total,
            }
        })
        .collect()
}

/// `n` indexes into `0..len` drawn from `picks` (an order with repeats and omissions).
fn order(len: usize, picks: &[u16]) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    picks.iter().map(|&p| usize::from(p) % len).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn restarts_never_lower_a_count_and_no_slot_counts_twice(
        lives in prop::collection::vec(prop::collection::vec(0u8..6, 1..8), 1..4),
        picks in prop::collection::vec(prop::collection::vec(any::<u16>(), 0..40), 4),
        replays in prop::collection::vec(any::<u16>(), 0..10),
    ) {
        let clock = Arc::new(ManualClock::new(T0));
        let (b_limiter, mut b) = node("b", 1, &clock);
        let hash = b.config_hash();
        let lives = live(&lives, &clock, &peer("b", 1, hash));
        let cell = b_limiter.cell_at(&spec(), "k", T0);
        let mut seen = 0;
        let mut true_total = 0;
        let all: Vec<&Vec<u8>> = lives.iter().flat_map(|l| &l.datagrams).collect();
        for (i, life) in lives.iter().enumerate() {
            let current = [peer("a", life.generation, hash)];
            true_total += life.total;
            // Its datagrams in a random order with repeats, then all of them once more (so
            // that every count arrived), with replays of any life's datagrams in between.
            let mut deliveries: Vec<&Vec<u8>> = order(life.datagrams.len(), &picks[i])
                .into_iter()
                .map(|j| &life.datagrams[j])
                .collect();
            deliveries.extend(order(all.len(), &replays).into_iter().map(|j| all[j]));
            deliveries.extend(&life.datagrams);
            for d in deliveries {
                // From the sender's address: a peer there vouches for any life of its own,
                // but the slots still count each life once.
                let _ = b.receive(&b_limiter, d, T0 + 1_000, &current, current[0].values.plane);
                let now = b_limiter.remote_total(&cell);
                prop_assert!(now >= seen, "a count went down: {seen} -> {now}");
                prop_assert!(now <= true_total, "counted twice: {now} > {true_total}");
                seen = now;
            }
            prop_assert_eq!(seen, true_total);
        }
        // Every life in a slot of its own, each holding that life's count.
        let mut slots = Vec::new();
        b_limiter.for_each_remote_count(|c, slot, n| {
            assert_eq!(c, cell);
            slots.push((slot, n));
        });
        slots.sort();
        let counts: Vec<u64> = slots.iter().map(|&(_, n)| n).collect();
        let want: Vec<u64> = lives.iter().map(|l| l.total).filter(|&n| n > 0).collect();
        prop_assert_eq!(counts, want);
    }
}
