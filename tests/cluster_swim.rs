//! The membership protocol (`cluster::swim`) run for real — foca's failure detector, the
//! codec, the signed envelope, the values broadcasts — between several `SwimNode`s on a
//! simulated network: datagrams wait in a queue, time is an `Instant` the test advances,
//! timers wait in the same queue. Nothing sleeps, and a run is the same every time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tollgate::cluster::membership::{Generation, Membership, NodeValues, Peer, PeerState};
use tollgate::cluster::swim::{
    membership_key, Outbox, SwimNode, SwimTimer, SwimTiming, SwimView, DROP_REASONS,
    MEMBERSHIP_KIND,
};
use tollgate::cluster::wire::{ClusterKey, MAX_DATAGRAM_BYTES, TAG_BYTES};

const SECRET: &[u8] = b"a cluster secret of at least 32 bytes";
/// One way, every datagram.
const LATENCY: Duration = Duration::from_millis(1);

fn key() -> ClusterKey {
    membership_key(SECRET).unwrap()
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7946))
}

fn values(i: usize, generation: u64) -> NodeValues {
    NodeValues {
        plane: addr(i),
        generation: Generation(generation),
        config_hash: 0xc0ff_ee00 + i as u64,
        revocation_digest: 0,
        ready: false,
    }
}

enum Event {
    Datagram {
        from: SocketAddr,
        to: SocketAddr,
        bytes: Vec<u8>,
    },
    Timer {
        node: usize,
        life: u64,
        timer: SwimTimer,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Up,
    Paused,
    Crashed,
}

struct Slot {
    name: String,
    addr: SocketAddr,
    node: SwimNode,
    run: Run,
    /// Bumped at every restart: timers of an earlier life never fire.
    life: u64,
    /// What arrived or came due while paused.
    held: Vec<Event>,
}

struct Sim {
    t0: Instant,
    now: Instant,
    queue: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    slots: Vec<Slot>,
    /// Drops by reason, over the whole run.
    drops: BTreeMap<&'static str, u64>,
}

impl Sim {
    fn new() -> Self {
        let t0 = Instant::now();
        Sim {
            t0,
            now: t0,
            queue: BTreeMap::new(),
            seq: 0,
            slots: Vec::new(),
            drops: BTreeMap::new(),
        }
    }

    fn push(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn apply(&mut self, from: usize, out: Outbox) {
        let (src, life) = (self.slots[from].addr, self.slots[from].life);
        for (to, bytes) in out.datagrams {
            assert!(bytes.len() <= MAX_DATAGRAM_BYTES, "{} bytes", bytes.len());
            assert_eq!(bytes[0], MEMBERSHIP_KIND);
            self.push(
                self.now + LATENCY,
                Event::Datagram {
                    from: src,
                    to,
                    bytes,
                },
            );
        }
        for (after, timer) in out.timers {
            self.push(
                self.now + after,
                Event::Timer {
                    node: from,
                    life,
                    timer,
                },
            );
        }
    }

    fn node(&self, i: usize, name: &str, generation: u64) -> SwimNode {
        SwimNode::new(
            name,
            addr(i),
            values(i, generation),
            key(),
            SwimTiming::default(),
            i as u64 * 7919 + generation,
            self.now,
        )
        .unwrap()
    }

    /// Starts node `i` (named `n{i}`) and announces it to node 0 unless it is node 0.
    fn start(&mut self, i: usize) {
        self.start_as(i, &format!("n{i}"), 1, 0);
    }

    fn start_as(&mut self, i: usize, name: &str, generation: u64, seed: usize) {
        let node = self.node(i, name, generation);
        let slot = Slot {
            name: name.to_string(),
            addr: addr(i),
            node,
            run: Run::Up,
            life: 0,
            held: Vec::new(),
        };
        if i < self.slots.len() {
            let life = self.slots[i].life + 1;
            self.slots[i] = Slot { life, ..slot };
        } else {
            assert_eq!(i, self.slots.len());
            self.slots.push(slot);
        }
        let mut out = Outbox::new();
        self.slots[i].node.announce(addr(seed), self.now, &mut out);
        self.apply(i, out);
    }

    fn slot_at(&self, to: SocketAddr) -> Option<usize> {
        self.slots.iter().position(|s| s.addr == to)
    }

    fn dispatch(&mut self, event: Event) {
        let i = match &event {
            Event::Datagram { to, .. } => match self.slot_at(*to) {
                Some(i) => i,
                None => return,
            },
            Event::Timer { node, life, .. } => {
                if self.slots[*node].life != *life {
                    return;
                }
                *node
            }
        };
        match self.slots[i].run {
            Run::Crashed => return,
            Run::Paused => {
                self.slots[i].held.push(event);
                return;
            }
            Run::Up => {}
        }
        let mut out = Outbox::new();
        let now = self.now;
        match event {
            Event::Datagram { from, bytes, .. } => {
                if let Err(reason) = self.slots[i].node.receive(&bytes, from, now, &mut out) {
                    assert!(DROP_REASONS.contains(&reason), "{reason}");
                    *self.drops.entry(reason).or_default() += 1;
                }
            }
            Event::Timer { timer, .. } => self.slots[i].node.handle_timer(timer, now, &mut out),
        }
        self.apply(i, out);
    }

    /// Runs every event due up to `self.now + d`, in order.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > until {
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.now = at;
            self.dispatch(event);
        }
        self.now = until;
    }

    /// Runs in steps of `step` for `d`, calling `watch` after each.
    fn run_watching(&mut self, d: Duration, step: Duration, mut watch: impl FnMut(&Sim)) {
        let until = self.now + d;
        while self.now < until {
            self.run_for(step);
            watch(self);
        }
    }

    fn crash(&mut self, i: usize) {
        self.slots[i].run = Run::Crashed;
        self.slots[i].held.clear();
    }

    fn pause(&mut self, i: usize) {
        self.slots[i].run = Run::Paused;
    }

    /// Resumes node `i`: what it missed is handed to it now, in the order it came.
    fn resume(&mut self, i: usize) {
        self.slots[i].run = Run::Up;
        let held = std::mem::take(&mut self.slots[i].held);
        for event in held {
            self.push(self.now, event);
        }
    }

    fn view(&self, i: usize) -> SwimView {
        self.slots[i].node.view()
    }

    fn peers(&self, i: usize) -> Vec<Peer> {
        self.view(i).peers_at(self.now)
    }

    fn state_of(&self, observer: usize, name: &str) -> Option<PeerState> {
        self.peers(observer)
            .into_iter()
            .find(|p| &*p.name == name)
            .map(|p| p.state)
    }

    /// Every running node but `except` sees every other running node but `except` alive,
    /// with the values it publishes.
    fn assert_converged(&self, except: &[usize]) {
        let up: Vec<usize> = (0..self.slots.len())
            .filter(|i| self.slots[*i].run == Run::Up && !except.contains(i))
            .collect();
        for &i in &up {
            let peers = self.peers(i);
            for &j in up.iter().filter(|&&j| j != i) {
                let name = &self.slots[j].name;
                let p = peers.iter().find(|p| &*p.name == name).unwrap_or_else(|| {
                    panic!("{} does not list {name}: {peers:?}", self.slots[i].name)
                });
                assert_eq!(
                    p.state,
                    PeerState::Alive,
                    "{} sees {name}",
                    self.slots[i].name
                );
                let own = self.slots[j].node.view();
                assert_eq!(own.name(), name);
                assert_eq!(p.values.plane, self.slots[j].addr);
            }
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

fn cluster(n: usize) -> Sim {
    let mut sim = Sim::new();
    for i in 0..n {
        sim.start(i);
    }
    sim
}

#[test]
fn nodes_join_through_a_seed_and_learn_every_peers_values_within_a_few_periods() {
    let mut sim = cluster(5);
    sim.run_for(Duration::from_secs(2));
    sim.assert_converged(&[]);
    let p = sim.peers(4).into_iter().find(|p| &*p.name == "n2").unwrap();
    assert_eq!(p.values, values(2, 1));
    assert!(p.last_heard < Duration::from_secs(2), "{:?}", p.last_heard);
    assert_eq!(
        sim.drops,
        BTreeMap::new(),
        "nothing dropped in a healthy cluster"
    );

    // A value published through the view reaches every peer.
    let mut ready = values(2, 1);
    ready.ready = true;
    ready.revocation_digest = 42;
    sim.view(2).publish(ready);
    sim.run_for(Duration::from_secs(1));
    for i in [0, 1, 3, 4] {
        let p = sim.peers(i).into_iter().find(|p| &*p.name == "n2").unwrap();
        assert_eq!(p.values, ready, "seen by n{i}");
    }
}

#[test]
fn a_node_that_joins_late_learns_values_nobody_is_spreading_any_more() {
    let mut sim = cluster(4);
    // Long after the joins: every broadcast has died out.
    sim.run_for(Duration::from_secs(30));
    sim.start_as(4, "late", 1, 2);
    sim.run_for(Duration::from_secs(2));
    sim.assert_converged(&[]);
    assert_eq!(sim.peers(4).len(), 4);
}

#[test]
fn changes_are_signalled_when_a_peer_joins() {
    let mut sim = cluster(2);
    let mut changes = sim.view(0).changes();
    changes.mark_unchanged();
    sim.run_for(Duration::from_secs(1));
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();
    // Nothing changes in a quiet cluster but the ages.
    sim.run_for(Duration::from_secs(3));
    assert!(!changes.has_changed().unwrap());
}

#[test]
fn a_crashed_node_goes_suspect_then_down_then_is_forgotten() {
    let mut sim = cluster(5);
    sim.run_for(Duration::from_secs(2));
    sim.assert_converged(&[]);
    sim.crash(3);
    let crashed_at = sim.elapsed();
    let mut seen: Vec<PeerState> = Vec::new();
    let mut down_at = None;
    sim.run_watching(Duration::from_secs(6), Duration::from_millis(50), |sim| {
        let s = sim.state_of(0, "n3").expect("a crashed node stays listed");
        if seen.last() != Some(&s) {
            seen.push(s);
        }
        if s == PeerState::Down && down_at.is_none() {
            down_at = Some(sim.elapsed());
        }
    });
    assert_eq!(
        seen,
        [PeerState::Alive, PeerState::Suspect, PeerState::Down]
    );
    let detection = down_at.unwrap() - crashed_at;
    assert!(
        detection <= Duration::from_secs(4),
        "down after {detection:?}"
    );
    for i in [1, 2, 4] {
        assert_eq!(sim.state_of(i, "n3"), Some(PeerState::Down), "seen by n{i}");
    }
    sim.assert_converged(&[3]);
    let p = sim.peers(0).into_iter().find(|p| &*p.name == "n3").unwrap();
    assert!(p.last_heard >= Duration::from_secs(5), "{:?}", p.last_heard);

    // Listed as down for a while, then forgotten.
    sim.run_for(SwimTiming::default().forget_down_after);
    for i in [0, 1, 2, 4] {
        assert_eq!(sim.state_of(i, "n3"), None, "n{i} still lists n3");
    }
    sim.assert_converged(&[3]);
}

#[test]
fn a_node_paused_briefly_is_never_declared_down() {
    let mut sim = cluster(4);
    sim.run_for(Duration::from_secs(2));
    sim.pause(2);
    let mut worst = PeerState::Alive;
    sim.run_watching(
        Duration::from_millis(1500),
        Duration::from_millis(50),
        |sim| {
            for i in [0, 1, 3] {
                if let Some(s) = sim.state_of(i, "n2") {
                    worst = worst.max(s);
                }
            }
        },
    );
    sim.resume(2);
    sim.run_watching(Duration::from_secs(3), Duration::from_millis(50), |sim| {
        for i in [0, 1, 3] {
            if let Some(s) = sim.state_of(i, "n2") {
                worst = worst.max(s);
            }
        }
    });
    // Suspected while it was silent, and the suspicion refuted once it spoke again.
    assert_eq!(worst, PeerState::Suspect);
    sim.assert_converged(&[]);
}

#[test]
fn a_node_paused_long_is_declared_down_and_comes_back_alive_when_it_resumes() {
    let mut sim = cluster(4);
    sim.run_for(Duration::from_secs(2));
    let generation = sim.slots[2].node.identity().generation();
    sim.pause(2);
    sim.run_for(Duration::from_secs(8));
    for i in [0, 1, 3] {
        assert_eq!(sim.state_of(i, "n2"), Some(PeerState::Down), "seen by n{i}");
    }
    sim.resume(2);
    sim.run_for(Duration::from_secs(3));
    sim.assert_converged(&[]);
    // The same life, under a renewed identity: its counts are still its own.
    let identity = sim.slots[2].node.identity();
    assert_eq!(identity.generation(), generation);
    assert!(identity.renewal() > 0);
    for i in [0, 1, 3] {
        let p = sim.peers(i).into_iter().find(|p| &*p.name == "n2").unwrap();
        assert_eq!(p.values.generation, generation);
    }
}

#[test]
fn a_restart_with_a_new_generation_replaces_the_previous_life() {
    let mut sim = cluster(4);
    sim.run_for(Duration::from_secs(2));
    // At the same address, at once (a container restarted in its pod).
    sim.crash(1);
    sim.start_as(1, "n1", 2, 0);
    sim.run_for(Duration::from_secs(2));
    sim.assert_converged(&[]);
    for i in [0, 2, 3] {
        let listed: Vec<Peer> = sim
            .peers(i)
            .into_iter()
            .filter(|p| &*p.name == "n1")
            .collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].values.generation, Generation(2), "seen by n{i}");
        assert_eq!(listed[0].state, PeerState::Alive);
    }
    // At another address (a pod rescheduled under the same name): the old address is never
    // heard from again, and the new life is the one listed.
    sim.crash(3);
    sim.start_as(4, "n3", 2, 0);
    sim.run_for(Duration::from_secs(6));
    sim.assert_converged(&[3]);
    for i in [0, 1, 2] {
        let listed: Vec<Peer> = sim
            .peers(i)
            .into_iter()
            .filter(|p| &*p.name == "n3")
            .collect();
        assert_eq!(listed.len(), 1, "seen by n{i}: {listed:?}");
        assert_eq!(
            (
                listed[0].values.generation,
                listed[0].values.plane,
                listed[0].state
            ),
            (Generation(2), addr(4), PeerState::Alive)
        );
    }
}

#[test]
fn a_node_that_leaves_is_dropped_from_every_list() {
    let mut sim = cluster(5);
    sim.run_for(Duration::from_secs(2));
    let mut out = Outbox::new();
    let now = sim.now;
    sim.slots[2].node.leave(now, &mut out);
    sim.apply(2, out);
    sim.run_for(Duration::from_millis(500));
    for i in [0, 1, 3, 4] {
        assert_eq!(sim.state_of(i, "n2"), None, "n{i} still lists n2");
    }
    sim.crash(2);
    sim.run_for(Duration::from_secs(10));
    for i in [0, 1, 3, 4] {
        assert_eq!(sim.state_of(i, "n2"), None, "n{i} lists n2 again");
    }
    sim.assert_converged(&[2]);
    // It may come back later, as a new life.
    sim.start_as(2, "n2", 2, 0);
    sim.run_for(Duration::from_secs(2));
    sim.assert_converged(&[]);
}

#[test]
fn a_node_with_another_secret_cannot_join() {
    let mut sim = cluster(3);
    sim.run_for(Duration::from_secs(1));
    let intruder = SwimNode::new(
        "intruder",
        addr(3),
        values(3, 1),
        membership_key(b"another secret that is 32 bytes long").unwrap(),
        SwimTiming::default(),
        1,
        sim.now,
    )
    .unwrap();
    sim.slots.push(Slot {
        name: "intruder".into(),
        addr: addr(3),
        node: intruder,
        run: Run::Up,
        life: 0,
        held: Vec::new(),
    });
    let mut out = Outbox::new();
    let now = sim.now;
    sim.slots[3].node.announce(addr(0), now, &mut out);
    sim.apply(3, out);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.drops.get("bad_mac"), Some(&1));
    for i in 0..3 {
        assert!(sim.state_of(i, "intruder").is_none());
    }
    assert!(sim.peers(3).is_empty());
}

fn lone_node() -> (SwimNode, Instant) {
    let now = Instant::now();
    let node = SwimNode::new(
        "n0",
        addr(0),
        values(0, 1),
        key(),
        SwimTiming::default(),
        1,
        now,
    )
    .unwrap();
    (node, now)
}

/// A membership datagram holding `payload`, signed with this cluster's key.
fn signed(payload: &[u8]) -> Vec<u8> {
    let mut d = vec![MEMBERSHIP_KIND];
    d.extend_from_slice(payload);
    key().append_tag(&mut d);
    d
}

#[test]
fn bad_datagrams_are_dropped_with_their_reason() {
    // A real datagram: n1's announce to n0.
    let mut sim = Sim::new();
    sim.start(0);
    let mut announce = Outbox::new();
    let mut n1 = sim.node(1, "n1", 1);
    n1.announce(addr(0), sim.now, &mut announce);
    let (_, good) = announce.datagrams.pop().unwrap();

    let (mut node, now) = lone_node();
    let mut out = Outbox::new();
    let mut recv = |d: &[u8]| node.receive(d, addr(1), now, &mut out);
    assert_eq!(
        recv(&vec![MEMBERSHIP_KIND; MAX_DATAGRAM_BYTES + 1]),
        Err("too_long")
    );
    assert_eq!(recv(&[MEMBERSHIP_KIND; 1 + TAG_BYTES]), Err("too_short"));
    let mut counter = good.clone();
    counter[0] = 1;
    assert_eq!(recv(&counter), Err("bad_kind"));
    let mut flipped = good.clone();
    flipped[5] ^= 1;
    assert_eq!(recv(&flipped), Err("bad_mac"));
    let mut bad_tag = good.clone();
    *bad_tag.last_mut().unwrap() ^= 1;
    assert_eq!(recv(&bad_tag), Err("bad_mac"));
    assert_eq!(recv(&good[..good.len() - 1]), Err("bad_mac"));
    // Authentic, but cut short or with bytes after it.
    let payload = &good[1..good.len() - TAG_BYTES];
    assert_eq!(
        recv(&signed(&payload[..payload.len() - 1])),
        Err("malformed")
    );
    let mut longer = payload.to_vec();
    longer.push(0);
    assert_eq!(recv(&signed(&longer)), Err("malformed"));
    assert_eq!(recv(&signed(&[0xff; 40])), Err("malformed"));
    // This node's own datagram, reflected back.
    let mut own = Outbox::new();
    let (mut other, _) = lone_node();
    other.announce(addr(1), now, &mut own);
    let (_, reflected) = own.datagrams.pop().unwrap();
    assert_eq!(recv(&reflected), Err("from_self"));
    // And the good one is accepted: n0 answers with its members.
    assert_eq!(recv(&good), Ok(()));
    assert!(out.datagrams.iter().any(|(to, _)| *to == addr(1)));
}

#[test]
fn names_are_checked_when_a_node_is_made() {
    let now = Instant::now();
    let make = |name: &str| {
        SwimNode::new(
            name,
            addr(0),
            values(0, 1),
            key(),
            SwimTiming::default(),
            1,
            now,
        )
    };
    assert!(make("").is_err());
    assert!(make(&"n".repeat(254)).is_err());
    assert!(make(&"n".repeat(253)).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Random bytes never authenticate, and never panic.
    #[test]
    fn random_bytes_are_dropped(data in proptest::collection::vec(any::<u8>(), 0..1300)) {
        let (mut node, now) = lone_node();
        let mut out = Outbox::new();
        let reason = node.receive(&data, addr(1), now, &mut out).unwrap_err();
        prop_assert!(DROP_REASONS.contains(&reason));
        prop_assert!(matches!(reason, "too_long" | "too_short" | "bad_kind" | "bad_mac"), "{}", reason);
        prop_assert!(out.datagrams.is_empty());
    }

    /// Random payloads that do authenticate reach the parser behind the tag, and never make
    /// it panic.
    #[test]
    fn random_signed_payloads_never_panic(
        data in proptest::collection::vec(any::<u8>(), 1..(MAX_DATAGRAM_BYTES - 1 - TAG_BYTES)),
    ) {
        let (mut node, now) = lone_node();
        let mut out = Outbox::new();
        if let Err(reason) = node.receive(&signed(&data), addr(1), now, &mut out) {
            prop_assert!(DROP_REASONS.contains(&reason));
            prop_assert!(!matches!(reason, "too_long" | "too_short" | "bad_kind" | "bad_mac"), "{}", reason);
        }
    }
}
