//! Unit tests of the counter plane: what a tick publishes, to whom and in what order, what a
//! receiver merges and what it drops.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;

use super::*;
use crate::clock::ManualClock;
use crate::cluster::membership::NodeValues;
use crate::limiter::{Algorithm, LimitCheck, LimiterOptions};

/// 2026-01-01T00:00:10Z.
const T0: u64 = 1_767_225_610_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn spec(name: &str, limit: u64) -> LimitSpec {
    LimitSpec {
        name: Arc::from(name),
        limit,
        window: Duration::from_secs(60),
        algorithm: Algorithm::SlidingWindow,
    }
}

fn limits() -> Vec<LimitSpec> {
    vec![spec("a", 100), spec("b", 1000)]
}

struct Node {
    name: &'static str,
    limiter: Limiter,
    plane: CounterPlane,
    registry: Registry,
}

fn node(
    name: &'static str,
    generation: u64,
    clock: &Arc<ManualClock>,
    opts: impl Fn(&mut CounterPlaneOptions),
) -> Node {
    node_with_key(name, generation, clock, [5; 16], &limits(), opts)
}

fn node_with_key(
    name: &'static str,
    generation: u64,
    clock: &Arc<ManualClock>,
    hash_key: [u8; 16],
    limits: &[LimitSpec],
    opts: impl Fn(&mut CounterPlaneOptions),
) -> Node {
    let limiter = Limiter::new(
        LimiterOptions {
            max_states: 10_000,
            shards: 4,
            hash_key,
        },
        clock.clone(),
    );
    let registry = Registry::new();
    let metrics = ClusterMetrics::new(&registry);
    let mut options = CounterPlaneOptions {
        node_name: name.into(),
        generation: Generation(generation),
        restored_from: None,
        key: ClusterKey::new(SECRET).unwrap(),
        threshold: Threshold::Fixed(1),
        max_cells_per_interval: 256,
        freshness: Freshness {
            max_age_ms: 5_000,
            max_ahead_ms: 1_000,
        },
        interval_ms: 50,
    };
    opts(&mut options);
    let mut plane = CounterPlane::new(options, metrics);
    plane.set_limits(limits, &limiter);
    Node {
        name,
        limiter,
        plane,
        registry,
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `n` as a peer sees it, at `port`.
fn peer_of(n: &Node, port: u16, state: PeerState) -> Peer {
    Peer {
        name: Arc::from(n.name),
        values: NodeValues {
            plane: addr(port),
            generation: n.plane.generation(),
            config_hash: n.plane.config_hash(),
            revocation_digest: 0,
            ready: true,
        },
        state,
        last_heard: Duration::ZERO,
    }
}

fn hit(n: &Node, limit: &LimitSpec, key: &str, hits: u64) {
    let d = n.limiter.check(&[LimitCheck { limit, key }], hits);
    assert!(d.allowed);
}

/// Ticks `from` and returns what it sent, by address.
fn tick(from: &mut Node, now: u64, peers: &[Peer]) -> (TickReport, Vec<(SocketAddr, Vec<u8>)>) {
    let mut sent = Vec::new();
    let r = from
        .plane
        .tick(&from.limiter, now, peers, |a, d| sent.push((a, d.to_vec())));
    (r, sent)
}

fn cells_in(datagrams: &[(SocketAddr, Vec<u8>)], to: SocketAddr) -> Vec<(CellId, u64)> {
    let key = ClusterKey::new(SECRET).unwrap();
    let any = Freshness {
        max_age_ms: u64::MAX,
        max_ahead_ms: u64::MAX,
    };
    datagrams
        .iter()
        .filter(|(a, _)| *a == to)
        .flat_map(|(_, d)| {
            wire::decode(d, &key, T0, any)
                .unwrap()
                .cells
                .collect::<Vec<_>>()
        })
        .collect()
}

fn metric(n: &Node, needle: &str) -> String {
    use prometheus::Encoder as _;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&n.registry.gather(), &mut buf)
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    text.lines()
        .find(|l| l.starts_with(needle))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn the_auto_threshold_is_a_fiftieth_of_a_share_of_the_limit() {
    assert_eq!(Threshold::Auto.for_limit(1000, 5), 4);
    assert_eq!(Threshold::Auto.for_limit(1000, 1), 20);
    assert_eq!(Threshold::Auto.for_limit(10, 5), 1, "never below 1");
    assert_eq!(Threshold::Auto.for_limit(100_000, 0), 2000);
    assert_eq!(Threshold::Fixed(7).for_limit(1000, 5), 7);
    assert_eq!(Threshold::Fixed(0).for_limit(1000, 5), 1);
    assert_eq!(Threshold::from_config(None), Threshold::Auto);
    assert_eq!(Threshold::from_config(Some(3)), Threshold::Fixed(3));
    // (N − 1)·θ stays under L/50 whatever N.
    for n in 1..200usize {
        let t = Threshold::Auto.for_limit(1000, n);
        assert!((n as u64 - 1) * t <= 1000 / 50 || t == 1, "{n}");
    }
}

#[test]
fn the_config_hash_covers_the_limits_and_the_hash_key_but_not_their_order() {
    let clock = Arc::new(ManualClock::new(T0));
    let a = node("a", 1, &clock, |_| {});
    let mut reversed = limits();
    reversed.reverse();
    let same = node_with_key("b", 2, &clock, [5; 16], &reversed, |_| {});
    let other_key = node_with_key("c", 3, &clock, [6; 16], &limits(), |_| {});
    let other_limits = node_with_key("d", 4, &clock, [5; 16], &[spec("a", 100)], |_| {});
    let mut changed = limits();
    changed[0].limit = 101;
    let other_quota = node_with_key("e", 5, &clock, [5; 16], &changed, |_| {});
    let h = a.plane.config_hash();
    assert_eq!(same.plane.config_hash(), h);
    for other in [&other_key, &other_limits, &other_quota] {
        assert_ne!(other.plane.config_hash(), h, "{}", other.name);
    }
    assert_eq!(config_hash(&limits(), &a.limiter), h);
}

#[test]
fn a_tick_publishes_cells_at_the_threshold_to_live_peers_of_the_same_configuration() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = node("a", 1, &clock, |o| o.threshold = Threshold::Fixed(3));
    let b = node("b", 2, &clock, |_| {});
    let c = node("c", 3, &clock, |_| {});
    let d = node_with_key("d", 4, &clock, [9; 16], &limits(), |_| {});
    let peers = [
        peer_of(&b, 2, PeerState::Alive),
        peer_of(&c, 3, PeerState::Down),
        peer_of(&d, 4, PeerState::Suspect),
    ];
    let (s, t) = (&limits()[0], &limits()[1]);
    hit(&a, s, "hot", 3);
    hit(&a, t, "cold", 2);
    let (r, sent) = tick(&mut a, T0, &peers);
    assert_eq!(a.plane.cluster_size(), 3, "b, d and a; c is down");
    assert_eq!((r.published, r.peers, r.snapshots), (1, 1, 1));
    assert!(
        sent.iter().all(|(to, _)| *to == addr(2)),
        "not to c (down) nor d (config)"
    );
    let hot = a.limiter.cell_at(s, "hot", T0);
    // Published once, then as a snapshot to the new peer.
    assert_eq!(cells_in(&sent, addr(2)), vec![(hot, 3), (hot, 3)]);
    assert_eq!(metric(&a, "tollgate_cluster_config_mismatches_total"), "1");
    // Nothing changed: nothing sent; the cold key below θ stays unpublished until it reaches θ.
    let (r, sent) = tick(&mut a, T0 + 50, &peers);
    assert_eq!((r.published, sent.len()), (0, 0));
    hit(&a, t, "cold", 1);
    let (_, sent) = tick(&mut a, T0 + 100, &peers);
    assert_eq!(
        cells_in(&sent, addr(2)),
        vec![(a.limiter.cell_at(t, "cold", T0), 3)]
    );
    assert_eq!(
        metric(&a, "tollgate_cluster_config_mismatches_total"),
        "1",
        "once"
    );
    assert_eq!(metric(&a, "tollgate_cluster_cells_published_total"), "2");
}

#[test]
fn over_budget_the_cells_closest_to_their_limit_go_first_and_the_rest_wait() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = node("a", 1, &clock, |o| o.max_cells_per_interval = 2);
    let b = node("b", 2, &clock, |_| {});
    let peers = [peer_of(&b, 2, PeerState::Alive)];
    tick(&mut a, T0, &peers); // b's snapshot (empty): out of the way.
    let (s, t) = (&limits()[0], &limits()[1]);
    // Fullness: s/k1 90 %, t/k2 50 % (500 of 1000), s/k3 30 %, s/k4 10 %, t/k5 1 %.
    hit(&a, s, "k4", 10);
    hit(&a, t, "k5", 10);
    hit(&a, s, "k1", 90);
    hit(&a, s, "k3", 30);
    hit(&a, t, "k2", 500);
    let order = [
        (s, "k1", 90),
        (t, "k2", 500),
        (s, "k3", 30),
        (s, "k4", 10),
        (t, "k5", 10),
    ];
    let mut got = Vec::new();
    for i in 0..3 {
        let (r, sent) = tick(&mut a, T0 + 50 * (i + 1), &peers);
        assert_eq!(r.deferred, [3, 1, 0][i as usize], "tick {i}");
        got.extend(cells_in(&sent, addr(2)));
    }
    let want: Vec<(CellId, u64)> = order
        .iter()
        .map(|(l, k, n)| (a.limiter.cell_at(l, k, T0), *n))
        .collect();
    assert_eq!(got, want);
    assert_eq!(metric(&a, "tollgate_cluster_cells_deferred_total"), "4");
    assert_eq!(a.plane.pending_cells(), 0);
    // A deferred cell that changed meanwhile goes out at its latest count, once.
    hit(&a, s, "k1", 1);
    hit(&a, s, "k3", 1);
    hit(&a, s, "k4", 1);
    tick(&mut a, T0 + 200, &peers);
    hit(&a, s, "k4", 1);
    let (_, sent) = tick(&mut a, T0 + 250, &peers);
    assert_eq!(
        cells_in(&sent, addr(2)),
        vec![(a.limiter.cell_at(s, "k4", T0), 12)]
    );
}

#[test]
fn a_new_peer_a_new_generation_and_a_peer_back_from_down_get_a_snapshot() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = node("a", 1, &clock, |_| {});
    let b = node("b", 2, &clock, |_| {});
    let s = &limits()[0];
    hit(&a, s, "k", 5);
    let (r, _) = tick(&mut a, T0, &[]);
    assert_eq!(
        (r.published, r.datagrams),
        (1, 0),
        "alone: remembered, not sent"
    );
    let cell = a.limiter.cell_at(s, "k", T0);
    let mut peer = peer_of(&b, 2, PeerState::Alive);
    let (r, sent) = tick(&mut a, T0 + 50, std::slice::from_ref(&peer));
    assert_eq!(r.snapshots, 1);
    assert_eq!(cells_in(&sent, addr(2)), vec![(cell, 5)]);
    let (r, _) = tick(&mut a, T0 + 100, std::slice::from_ref(&peer));
    assert_eq!(r.snapshots, 0, "once");
    peer.values.generation = Generation(22);
    let (r, sent) = tick(&mut a, T0 + 150, std::slice::from_ref(&peer));
    assert_eq!(
        (r.snapshots, cells_in(&sent, addr(2))),
        (1, vec![(cell, 5)])
    );
    peer.state = PeerState::Down;
    let (r, sent) = tick(&mut a, T0 + 200, std::slice::from_ref(&peer));
    assert_eq!((r.snapshots, sent.len()), (0, 0));
    peer.state = PeerState::Suspect;
    let (r, _) = tick(&mut a, T0 + 250, std::slice::from_ref(&peer));
    assert_eq!(r.snapshots, 1, "back from down");
    assert_eq!(
        metric(
            &a,
            "tollgate_cluster_snapshot_transfers_total{direction=\"out\""
        ),
        "3"
    );
}

#[test]
fn a_published_cell_is_sent_again_a_few_times_after_it_stops_changing() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = node("a", 1, &clock, |_| {});
    let b = node("b", 2, &clock, |_| {});
    let peers = [peer_of(&b, 2, PeerState::Alive)];
    hit(&a, &limits()[0], "k", 5);
    tick(&mut a, T0, &peers);
    let mut resent_at = Vec::new();
    for i in 1..=100 {
        let now = T0 + 50 * i;
        let (r, _) = tick(&mut a, now, &peers);
        if r.refreshed > 0 {
            resent_at.push(50 * i);
        }
    }
    assert_eq!(resent_at, vec![1000, 2000, 3000]);
    // A new change restarts the re-sends.
    hit(&a, &limits()[0], "k", 1);
    tick(&mut a, T0 + 5_050, &peers);
    let (r, _) = tick(&mut a, T0 + 6_050, &peers);
    assert_eq!(r.refreshed, 1);
}

#[test]
fn received_counts_go_to_the_senders_slot_and_never_count_twice() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = node("a", 1, &clock, |_| {});
    let mut b = node("b", 2, &clock, |_| {});
    let s = &limits()[0];
    let cell = a.limiter.cell_at(s, "k", T0);
    hit(&a, s, "k", 7);
    let (_, sent) = tick(&mut a, T0, &[peer_of(&b, 2, PeerState::Alive)]);
    let a_seen = [peer_of(&a, 1, PeerState::Alive)];
    for (_, d) in &sent {
        assert!(b
            .plane
            .receive(&b.limiter, d, T0 + 3, &a_seen, addr(1))
            .is_ok());
    }
    // Duplicates change nothing.
    for (_, d) in &sent {
        assert_eq!(
            b.plane.receive(&b.limiter, d, T0 + 4, &a_seen, addr(1)),
            Ok(0)
        );
    }
    assert_eq!(b.limiter.remote_total(&cell), 7);
    let view = &b.plane.peer_views()[0];
    assert_eq!(&*view.name, "a");
    assert_eq!(view.merge_lag_ms, Some(4));
    assert_eq!(view.datagrams, sent.len() as u64 * 2);
    assert_eq!(view.last_sequence, Some(sent.len() as u64 - 1));
    let first_slot = view.slot.unwrap();

    // a restarts: a new generation, counting from 0, gets a new slot; the old one stays.
    let mut a2 = node("a", 9, &clock, |_| {});
    hit(&a2, s, "k", 2);
    let (_, sent2) = tick(&mut a2, T0 + 100, &[peer_of(&b, 2, PeerState::Alive)]);
    let a2_seen = [peer_of(&a2, 1, PeerState::Alive)];
    // Its publication and b's snapshot: the second raises nothing.
    let raised: Vec<_> = sent2
        .iter()
        .map(|(_, d)| b.plane.receive(&b.limiter, d, T0 + 100, &a2_seen, addr(1)))
        .collect();
    assert_eq!(raised, vec![Ok(1), Ok(0)]);
    assert_eq!(
        b.limiter.remote_total(&cell),
        9,
        "7 of the old life + 2 of the new"
    );
    assert_ne!(b.plane.peer_views()[0].slot, Some(first_slot));
    assert_eq!(b.limiter.remote_count(&cell, first_slot), Some(7));
    // The old life's datagrams are now refused unless a peer relays them (see the relay
    // tests), and a generation not yet known is refused even from a peer.
    assert_eq!(
        b.plane
            .receive(&b.limiter, &sent[0].1, T0 + 100, &a2_seen, addr(77)),
        Err("old_generation")
    );
    let a3 = node("a", 99, &clock, |_| {});
    hit(&a3, s, "k", 1);
    let mut a3 = a3;
    let (_, sent3) = tick(&mut a3, T0 + 100, &[peer_of(&b, 2, PeerState::Alive)]);
    assert_eq!(
        b.plane
            .receive(&b.limiter, &sent3[0].1, T0 + 100, &a2_seen, addr(1)),
        Err("unknown_generation")
    );
    assert_eq!(b.limiter.remote_total(&cell), 9);
    // Nor does b tick anything of a's back: merges are not own changes.
    let (r, _) = tick(&mut b, T0 + 150, &a2_seen);
    assert_eq!(r.published, 0);
}

#[test]
fn datagrams_from_strangers_other_configurations_and_other_keys_are_dropped_and_counted() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = node("a", 1, &clock, |_| {});
    let mut b = node("b", 2, &clock, |_| {});
    let s = &limits()[0];
    hit(&a, s, "k", 7);
    let (_, sent) = tick(&mut a, T0, &[peer_of(&b, 2, PeerState::Alive)]);
    let d = &sent[0].1;
    assert_eq!(
        b.plane.receive(&b.limiter, d, T0, &[], addr(1)),
        Err("unknown_sender")
    );
    let mut other = peer_of(&a, 1, PeerState::Alive);
    other.values.config_hash ^= 1;
    for _ in 0..3 {
        assert_eq!(
            b.plane
                .receive(&b.limiter, d, T0, std::slice::from_ref(&other), addr(1)),
            Err("config_mismatch")
        );
    }
    assert!(b.plane.peer_views()[0].config_mismatch);
    assert_eq!(metric(&b, "tollgate_cluster_config_mismatches_total"), "1");
    let a_seen = [peer_of(&a, 1, PeerState::Alive)];
    assert_eq!(
        b.plane.receive(&b.limiter, d, T0 + 6_000, &a_seen, addr(1)),
        Err("stale")
    );
    let mut forged = d.clone();
    forged[40] ^= 1;
    assert_eq!(
        b.plane.receive(&b.limiter, &forged, T0, &a_seen, addr(1)),
        Err("bad_mac")
    );
    assert_eq!(
        b.plane
            .receive(&b.limiter, &[1; 2000], T0, &a_seen, addr(1)),
        Err("too_long")
    );
    assert_eq!(b.limiter.remote_counts_held(), 0);
    for (reason, n) in [
        ("unknown_sender", "1"),
        ("config_mismatch", "3"),
        ("stale", "1"),
        ("bad_mac", "1"),
        ("too_long", "1"),
    ] {
        let series =
            format!("tollgate_cluster_dropped_total{{plane=\"counter\",reason=\"{reason}\"}}");
        assert_eq!(metric(&b, &series), n, "{reason}");
    }
    assert_eq!(b.plane.receive(&b.limiter, d, T0, &a_seen, addr(1)), Ok(1));
    let _ = tick(&mut b, T0, &a_seen);
    assert_eq!(metric(&b, "tollgate_cluster_remote_cells "), "1");
}

#[test]
fn a_backlog_stays_bounded_and_every_change_goes_out_in_the_end() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = node("a", 1, &clock, |o| o.max_cells_per_interval = 3);
    let b = node("b", 2, &clock, |_| {});
    let peers = [peer_of(&b, 2, PeerState::Alive)];
    let s = &limits()[0];
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        hit(&a, s, k, 1 + i as u64 % 50);
    }
    let mut got = std::collections::BTreeMap::new();
    let mut ticks = 0;
    while got.len() < keys.len() {
        let (r, sent) = tick(&mut a, T0 + 50 * ticks, &peers);
        assert!(r.published <= 3);
        assert!(a.plane.pending_cells() <= 3 * PENDING_PER_BUDGET, "bounded");
        got.extend(cells_in(&sent, addr(2)));
        ticks += 1;
        assert!(ticks < 100, "every change goes out");
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(got[&a.limiter.cell_at(s, k, T0)], 1 + i as u64 % 50);
    }
    assert_eq!(a.limiter.changes_dropped(), 0);
}

/// The (node id, generation) each datagram sent to `to` names, with its cells.
fn relayed_to(datagrams: &[(SocketAddr, Vec<u8>)], to: SocketAddr) -> Vec<relay::Relayed> {
    let key = ClusterKey::new(SECRET).unwrap();
    let any = Freshness {
        max_age_ms: u64::MAX,
        max_ahead_ms: u64::MAX,
    };
    datagrams
        .iter()
        .filter(|(a, _)| *a == to)
        .map(|(_, d)| {
            let d = wire::decode(d, &key, T0, any).unwrap();
            (
                (d.header.node, d.header.generation),
                d.cells.collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// A datagram in the name of `node` in `generation`, carrying `cells`.
fn datagram_of(node: &str, generation: u64, now: u64, cells: &[(CellId, u64)]) -> Vec<u8> {
    let key = ClusterKey::new(SECRET).unwrap();
    let mut e = Encoder::new(key, wire::node_id(node), generation, 0);
    let mut out = Vec::new();
    e.encode(now, cells.iter().copied(), |d| out.push(d.to_vec()));
    assert_eq!(out.len(), 1);
    out.pop().unwrap()
}

#[test]
fn a_snapshot_relays_dead_generations_and_the_restarted_peer_counts_its_previous_life_once() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut a = node("a", 1, &clock, |_| {});
    let mut b = node("b", 2, &clock, |_| {});
    let mut c = node("c", 3, &clock, |_| {});
    let s = &limits()[0];
    let cell = a.limiter.cell_at(s, "k", T0);
    // a admits 7 and c 4; b and c hear a, b hears c.
    hit(&a, s, "k", 7);
    hit(&c, s, "k", 4);
    let (_, from_a) = tick(&mut a, T0, &[peer_of(&b, 2, PeerState::Alive)]);
    let a_seen = [peer_of(&a, 1, PeerState::Alive)];
    for (_, d) in &from_a {
        assert!(b.plane.receive(&b.limiter, d, T0, &a_seen, addr(1)).is_ok());
        assert!(c.plane.receive(&c.limiter, d, T0, &a_seen, addr(1)).is_ok());
    }
    assert_eq!(b.limiter.remote_total(&cell), 7);
    let (_, from_c) = tick(&mut c, T0, &[peer_of(&b, 2, PeerState::Alive)]);
    let c_seen = [peer_of(&c, 3, PeerState::Alive)];
    for (_, d) in &from_c {
        assert!(b.plane.receive(&b.limiter, d, T0, &c_seen, addr(3)).is_ok());
    }
    let b_peers = [a_seen[0].clone(), peer_of(&c, 3, PeerState::Alive)];
    let (r, _) = tick(&mut b, T0 + 50, &b_peers);
    assert_eq!(
        (r.snapshots, r.relayed),
        (2, 0),
        "every generation b holds is a live peer's current one"
    );
    for t in 2..30 {
        let (r, _) = tick(&mut b, T0 + 50 * t, &b_peers);
        assert_eq!(r.relayed, 0);
    }

    // a crashes and restarts: a new generation, an empty limiter.
    let mut a2 = node("a", 9, &clock, |_| {});
    let a2_at = peer_of(&a2, 1, PeerState::Alive);
    let b_peers = [a2_at.clone(), peer_of(&c, 3, PeerState::Alive)];
    let (r, sent) = tick(&mut b, T0 + 1_500, &b_peers);
    assert_eq!((r.snapshots, r.relayed), (1, 1));
    // To a2: a's dead generation, in a's name; never c's counts (c is live and current).
    let relayed = relayed_to(&sent, addr(1));
    assert_eq!(
        relayed,
        vec![((wire::node_id("a"), 1), vec![(cell, 7)])],
        "b's own cells are not published (b admitted nothing), a's old life is relayed"
    );
    assert_eq!(
        metric(
            &b,
            "tollgate_cluster_snapshot_transfers_total{direction=\"relayed\""
        ),
        "1"
    );
    let c_peers = [a2_at.clone(), peer_of(&b, 2, PeerState::Alive)];
    let (_, sent_c) = tick(&mut c, T0 + 1_500, &c_peers);
    let from_c: Vec<_> = relayed_to(&sent_c, addr(1))
        .into_iter()
        .filter(|(id, _)| id.0 != c.plane.node_id())
        .collect();
    assert_eq!(
        from_c, relayed,
        "c relays a's old life too, and nothing else"
    );

    // a2 merges its previous life, relayed by both b and c, once.
    let a2_peers = [
        peer_of(&b, 2, PeerState::Alive),
        peer_of(&c, 3, PeerState::Alive),
    ];
    for (_, d) in sent.iter().filter(|(to, _)| *to == addr(1)) {
        assert!(a2
            .plane
            .receive(&a2.limiter, d, T0 + 1_501, &a2_peers, addr(2))
            .is_ok());
    }
    for (_, d) in sent_c.iter().filter(|(to, _)| *to == addr(1)) {
        assert!(a2
            .plane
            .receive(&a2.limiter, d, T0 + 1_502, &a2_peers, addr(3))
            .is_ok());
    }
    assert_eq!(
        a2.limiter.remote_total(&cell),
        7 + 4,
        "its previous life's 7 once, and c's 4"
    );
    hit(&a2, s, "k", 1);
    let d = a2.limiter.check(&[LimitCheck { limit: s, key: "k" }], 0);
    assert_eq!(d.deciding().remaining, 100 - 12);

    // The relay goes again a few ticks later (a lost datagram is repaired), then stops.
    let mut again = Vec::new();
    for t in 1..=40 {
        let (r, sent) = tick(&mut b, T0 + 1_500 + 50 * t, &b_peers);
        if r.relayed > 0 {
            assert_eq!(relayed_to(&sent, addr(1)).len(), 1);
            again.push(t);
        }
    }
    assert_eq!(again, RELAY_AGAIN_AFTER_TICKS.to_vec());
}

#[test]
fn relays_are_merged_only_when_a_live_peer_of_this_configuration_vouches_for_them() {
    let clock = Arc::new(ManualClock::new(T0));
    let mut r = node("r", 5, &clock, |_| {});
    let p = node("p", 6, &clock, |_| {});
    let q = node("q", 7, &clock, |_| {});
    let m = node_with_key("m", 8, &clock, [6; 16], &limits(), |_| {});
    let s = &limits()[0];
    let cell = r.limiter.cell_at(s, "k", T0);
    let peers = [
        peer_of(&p, 2, PeerState::Alive),
        peer_of(&q, 3, PeerState::Down),
        peer_of(&m, 4, PeerState::Alive),
    ];
    let mut receive = |d: &[u8], from: SocketAddr| r.plane.receive(&r.limiter, d, T0, &peers, from);

    // A dead node's generation: merged only from a live peer of this configuration.
    let dead = datagram_of("x", 1, T0, &[(cell, 3)]);
    assert_eq!(receive(&dead, addr(9)), Err("unknown_sender"), "not a peer");
    assert_eq!(
        receive(&dead, addr(3)),
        Err("unknown_sender"),
        "a down peer"
    );
    assert_eq!(
        receive(&dead, addr(4)),
        Err("unknown_sender"),
        "another config"
    );
    assert_eq!(receive(&dead, addr(2)), Ok(1));
    // A listed peer's older generation is merged when relayed; a newer one than the
    // membership announced is not, even relayed.
    let older = datagram_of("p", 4, T0, &[(cell, 2)]);
    assert_eq!(receive(&older, addr(9)), Err("old_generation"));
    assert_eq!(receive(&older, addr(2)), Ok(1));
    let newer = datagram_of("p", 60, T0, &[(cell, 50)]);
    assert_eq!(receive(&newer, addr(2)), Err("unknown_generation"));
    // This node's current generation (or a newer one) never: its counts are its own. Its
    // previous life's, yes, into a slot of their own.
    let own = datagram_of("r", 5, T0, &[(cell, 40)]);
    assert_eq!(receive(&own, addr(2)), Err("own_generation"));
    let own_newer = datagram_of("r", 50, T0, &[(cell, 40)]);
    assert_eq!(receive(&own_newer, addr(2)), Err("own_generation"));
    let previous = datagram_of("r", 4, T0, &[(cell, 6)]);
    assert_eq!(receive(&previous, addr(9)), Err("old_generation"));
    // From the relayer's IPv4 address as a dual-stack socket reports it.
    let mapped = SocketAddr::new(
        std::net::IpAddr::V6(std::net::Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped()),
        2,
    );
    assert_eq!(receive(&previous, mapped), Ok(1));
    assert_eq!(r.limiter.remote_total(&cell), 3 + 2 + 6);

    // Relayed by another peer, at the same or a stale count: counted once.
    let peers2 = [
        peer_of(&p, 2, PeerState::Alive),
        peer_of(&q, 3, PeerState::Alive),
    ];
    let stale = datagram_of("x", 1, T0, &[(cell, 1)]);
    for d in [&dead, &stale, &previous] {
        assert_eq!(r.plane.receive(&r.limiter, d, T0, &peers2, addr(3)), Ok(0));
    }
    assert_eq!(r.limiter.remote_total(&cell), 11);
    for (reason, n) in [
        ("unknown_sender", "3"),
        ("old_generation", "2"),
        ("unknown_generation", "1"),
        ("own_generation", "2"),
    ] {
        let series =
            format!("tollgate_cluster_dropped_total{{plane=\"counter\",reason=\"{reason}\"}}");
        assert_eq!(metric(&r, &series), n, "{reason}");
    }
    // The relayed generations are not peers: the view lists none.
    assert!(r.plane.peer_views().iter().all(|v| v.datagrams == 0));
}

/// A node restarted with its limiter's snapshot: the restored counts are held back from what
/// it publishes (its peers hold them in its previous generation's slot) and relays of that
/// generation are refused back home, so the count of a key is the true count on every node,
/// not the restored part twice.
#[test]
fn a_restarted_node_restoring_its_snapshot_is_not_counted_twice() {
    let clock = Arc::new(ManualClock::new(T0));
    let s = &limits()[0];
    let mut a = node("a", 1, &clock, |_| {});
    a.limiter.set_snapshot_origin(wire::node_id("a"), 1);
    let mut b = node("b", 2, &clock, |_| {});
    let cell = a.limiter.cell_at(s, "k", T0);
    let deliver =
        |sent: &[(SocketAddr, Vec<u8>)], to: &mut Node, port: u16, peers: &[Peer], from| {
            for (_, d) in sent.iter().filter(|(at, _)| *at == addr(port)) {
                let _ = to.plane.receive(&to.limiter, d, T0 + 200, peers, from);
            }
        };

    // The first life admits 30 and publishes them; b holds them in a's generation 1.
    hit(&a, s, "k", 30);
    let (_, sent) = tick(&mut a, T0 + 100, &[peer_of(&b, 2, PeerState::Alive)]);
    deliver(
        &sent,
        &mut b,
        2,
        &[peer_of(&a, 1, PeerState::Alive)],
        addr(1),
    );
    assert_eq!(b.limiter.remote_total(&cell), 30);
    let mut snapshot = Vec::new();
    a.limiter.write_snapshot(&mut snapshot).unwrap();

    // The second life restores them, holding them back, and admits 5 more.
    let mut a2 = node("a", 3, &clock, |o| o.restored_from = Some(Generation(1)));
    a2.limiter.hold_back_restored_counts();
    let report = a2.limiter.restore_snapshot(&mut &snapshot[..]);
    assert_eq!(
        (report.restored, report.origin),
        (1, Some((wire::node_id("a"), 1)))
    );
    hit(&a2, s, "k", 5);
    assert_eq!(
        a2.limiter.export_cell(&cell),
        Some(5),
        "only what this life counted"
    );
    let (_, sent) = tick(&mut a2, T0 + 200, &[peer_of(&b, 2, PeerState::Alive)]);
    let a2_peer = [peer_of(&a2, 1, PeerState::Alive)];
    deliver(&sent, &mut b, 2, &a2_peer, addr(1));
    // b: generation 1's 30 and generation 3's 5.
    assert_eq!(
        b.limiter.remote_total(&cell),
        35,
        "b counts the restored hits twice"
    );

    // b relays generation 1 to the new life (a new peer): refused, it is in a2's own counts.
    let (_, sent) = tick(&mut b, T0 + 300, &a2_peer);
    deliver(
        &sent,
        &mut a2,
        1,
        &[peer_of(&b, 2, PeerState::Alive)],
        addr(2),
    );
    assert_eq!(a2.limiter.remote_total(&cell), 0);

    // Every node sees the true count: 35 of 100.
    for n in [&a2, &b] {
        let d = n.limiter.check(&[LimitCheck { limit: s, key: "k" }], 0);
        assert_eq!(d.outcomes[0].remaining, 65, "node {}", n.name);
    }
}
