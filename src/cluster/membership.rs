//! Membership: who the live peers are, and the few values each publishes about itself.
//!
//! tollgate asks one thing of a membership protocol: keep, on every node, the list of the
//! other nodes with a handful of small values each — where its counter plane listens, its
//! generation, the hash of its limit configuration, the digest of its revocations, whether it
//! is ready ([`NodeValues`]) — and say how each is doing: alive, suspected, down, and how long
//! since it was last heard from ([`Peer`]). Counters never go through it: they have their own
//! plane, which reads this list to know whom to send to and whose counts to merge.
//!
//! [`Membership`] is that contract. The implementation that runs between processes sits on a
//! gossip crate (docs/cluster.md, "Membership", says which and why); [`MemoryNetwork`] is the
//! deterministic one for tests and simulation: nodes join, leave, crash and are partitioned
//! (one way or both) under the test's control, and time is an injected [`Clock`], so a run
//! is the same every time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::clock::Clock;

/// One life of a node: drawn anew at every start, so a restarted node is a new member whose
/// counts are kept apart from those of its previous life. Later starts draw larger values
/// (while the wall clock does not go back), so peers can tell which life is the newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

impl Generation {
    /// A generation for a start at `now_millis` (wall time): the milliseconds in the high
    /// bits, 12 random bits below, so two starts in the same millisecond still differ.
    pub fn at_start(now_millis: u64) -> Self {
        Generation((now_millis << 12) | (rand::random::<u64>() & 0xfff))
    }
}

/// What a node publishes about itself: small and few, republished when one changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeValues {
    /// Where its counter plane receives datagrams.
    pub plane: SocketAddr,
    /// Its current life.
    pub generation: Generation,
    /// Hash of its limit configuration: nodes whose hashes differ do not merge each other's
    /// counts.
    pub config_hash: u64,
    /// Digest of the revocations it holds: peers whose digests differ repair the difference.
    pub revocation_digest: u64,
    /// Whether it has what it needs to answer (its peers' revocations among them).
    pub ready: bool,
}

/// How a peer is doing, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerState {
    /// Heard from recently.
    Alive,
    /// Not heard from for a while; not yet given up on. Its counts still count.
    Suspect,
    /// Given up on (crashed, partitioned away, or left).
    Down,
}

impl PeerState {
    /// The name `/cluster` and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Alive => "alive",
            PeerState::Suspect => "suspect",
            PeerState::Down => "down",
        }
    }
}

/// Another node, as this one last heard of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its node name (`[cluster] node_name`, by default its host name).
    pub name: Arc<str>,
    /// What it last published.
    pub values: NodeValues,
    pub state: PeerState,
    /// How long since this node last heard from it.
    pub last_heard: Duration,
}

/// The membership of one node: what it publishes, and whom it sees.
pub trait Membership: Send + Sync {
    /// This node's name.
    fn name(&self) -> &str;

    /// Replaces the values this node publishes; peers learn them at the protocol's pace.
    fn publish(&self, values: NodeValues);

    /// Every other node this one knows of, ordered by name, with its state and the age of the
    /// last word from it. A node that left gracefully is not listed.
    fn peers(&self) -> Vec<Peer>;

    /// A receiver whose value changes whenever [`peers`](Membership::peers) may have changed
    /// (a join, a leave, a new state or new values): wait on it rather than poll.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// When a silent peer becomes suspect and then down, in the in-memory network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Silence after which a peer is [`PeerState::Suspect`].
    pub suspect_after: Duration,
    /// Silence after which a peer is [`PeerState::Down`].
    pub down_after: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            suspect_after: Duration::from_millis(500),
            down_after: Duration::from_secs(2),
        }
    }
}

/// A deterministic network of in-memory nodes, for tests and simulation.
///
/// A message on it arrives at once unless the test blocks its direction
/// ([`partition`](MemoryNetwork::partition) and its one-way form); what a node hears is what
/// its peer last published, and silence ages by the injected clock: a peer unheard for
/// [`Timeouts::suspect_after`] is suspect, for [`Timeouts::down_after`] down. A crashed node
/// falls silent; a node that leaves says so and is dropped from every list at once.
#[derive(Clone)]
pub struct MemoryNetwork {
    inner: Arc<Mutex<Net>>,
    clock: Arc<dyn Clock>,
    timeouts: Timeouts,
}

struct Net {
    /// Nodes that are up, by name, with what they publish.
    up: BTreeMap<Arc<str>, NodeValues>,
    /// (observer, subject) → what the observer last heard from the subject, and when (ms).
    heard: BTreeMap<(Arc<str>, Arc<str>), (NodeValues, u64)>,
    /// Directions that drop everything: (from, to).
    blocked: BTreeSet<(Arc<str>, Arc<str>)>,
    /// Each node's change signal.
    signals: BTreeMap<Arc<str>, watch::Sender<u64>>,
}

impl Net {
    /// Delivers `from`'s current values to every node that can hear it, and tells them.
    fn announce(&mut self, from: &Arc<str>, now: u64) {
        let Some(values) = self.up.get(from).copied() else {
            return;
        };
        let to: Vec<Arc<str>> = self.up.keys().filter(|n| *n != from).cloned().collect();
        for to in to {
            self.deliver(from, &to, values, now);
        }
    }

    /// Lets `to` hear `from` (both up, the direction open).
    fn deliver(&mut self, from: &Arc<str>, to: &Arc<str>, values: NodeValues, now: u64) {
        if self.blocked.contains(&(from.clone(), to.clone())) {
            return;
        }
        self.heard.insert((to.clone(), from.clone()), (values, now));
        self.signal(to);
    }

    fn signal(&self, node: &Arc<str>) {
        if let Some(s) = self.signals.get(node) {
            s.send_modify(|v| *v += 1);
        }
    }

    fn signal_all(&self) {
        for s in self.signals.values() {
            s.send_modify(|v| *v += 1);
        }
    }
}

impl MemoryNetwork {
    pub fn new(clock: Arc<dyn Clock>, timeouts: Timeouts) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Net {
                up: BTreeMap::new(),
                heard: BTreeMap::new(),
                blocked: BTreeSet::new(),
                signals: BTreeMap::new(),
            })),
            clock,
            timeouts,
        }
    }

    /// Starts a node named `name` publishing `values` (a restart when the name was up
    /// before: its new values, a new generation among them, replace the old).
    pub fn join(&self, name: &str, values: NodeValues) -> MemoryMembership {
        let name: Arc<str> = name.into();
        let now = self.clock.now_millis();
        let mut net = self.inner.lock();
        net.up.insert(name.clone(), values);
        // Forget what this node heard in an earlier life: it learns the cluster afresh.
        net.heard.retain(|(observer, _), _| *observer != name);
        let (tx, _) = watch::channel(0);
        net.signals.insert(name.clone(), tx);
        net.announce(&name, now);
        // The joiner hears everyone it can.
        let others: Vec<(Arc<str>, NodeValues)> = net
            .up
            .iter()
            .filter(|(n, _)| **n != name)
            .map(|(n, v)| (n.clone(), *v))
            .collect();
        for (other, v) in others {
            net.deliver(&other, &name, v, now);
        }
        net.signal(&name);
        MemoryMembership {
            name,
            network: self.clone(),
        }
    }

    /// `name` stops at once, saying nothing: its peers hear silence, then suspect it, then
    /// give it up.
    pub fn crash(&self, name: &str) {
        let mut net = self.inner.lock();
        net.up.remove(name);
        net.heard.retain(|(observer, _), _| &**observer != name);
        net.signals.remove(name);
    }

    /// `name` leaves gracefully: every peer drops it at once.
    pub fn leave(&self, name: &str) {
        let mut net = self.inner.lock();
        net.up.remove(name);
        net.signals.remove(name);
        net.heard
            .retain(|(observer, subject), _| &**observer != name && &**subject != name);
        net.signal_all();
    }

    /// Blocks both directions between every node of `a` and every node of `b`.
    pub fn partition(&self, a: &[&str], b: &[&str]) {
        self.block_one_way(a, b);
        self.block_one_way(b, a);
    }

    /// Blocks what nodes of `from` send to nodes of `to`: `to` stops hearing `from`, while
    /// `from` still hears `to`.
    pub fn block_one_way(&self, from: &[&str], to: &[&str]) {
        let mut net = self.inner.lock();
        for f in from {
            for t in to {
                net.blocked.insert((Arc::from(*f), Arc::from(*t)));
            }
        }
    }

    /// Opens every direction again; every node that is up is heard at once.
    pub fn heal(&self) {
        let now = self.clock.now_millis();
        let mut net = self.inner.lock();
        net.blocked.clear();
        let up: Vec<Arc<str>> = net.up.keys().cloned().collect();
        for n in &up {
            net.announce(n, now);
        }
    }

    /// A heartbeat round: every node that is up is heard by every node that can hear it.
    /// A simulation calls this every interval; between calls, silence ages.
    pub fn tick(&self) {
        let now = self.clock.now_millis();
        let mut net = self.inner.lock();
        let up: Vec<Arc<str>> = net.up.keys().cloned().collect();
        for n in &up {
            net.announce(n, now);
        }
    }

    fn state_after(&self, silence: Duration) -> PeerState {
        if silence >= self.timeouts.down_after {
            PeerState::Down
        } else if silence >= self.timeouts.suspect_after {
            PeerState::Suspect
        } else {
            PeerState::Alive
        }
    }
}

/// One node of a [`MemoryNetwork`].
pub struct MemoryMembership {
    name: Arc<str>,
    network: MemoryNetwork,
}

impl Membership for MemoryMembership {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish(&self, values: NodeValues) {
        let now = self.network.clock.now_millis();
        let mut net = self.network.inner.lock();
        if let Some(v) = net.up.get_mut(&self.name) {
            *v = values;
            net.announce(&self.name, now);
        }
    }

    fn peers(&self) -> Vec<Peer> {
        let now = self.network.clock.now_millis();
        let net = self.network.inner.lock();
        net.heard
            .range((self.name.clone(), Arc::from(""))..)
            .take_while(|((observer, _), _)| *observer == self.name)
            .map(|((_, subject), (values, at))| {
                let last_heard = Duration::from_millis(now.saturating_sub(*at));
                Peer {
                    name: subject.clone(),
                    values: *values,
                    state: self.network.state_after(last_heard),
                    last_heard,
                }
            })
            .collect()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        let net = self.network.inner.lock();
        match net.signals.get(&self.name) {
            Some(s) => s.subscribe(),
            // Crashed or left: a receiver that never changes.
            None => watch::channel(0).1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn values(port: u16, ready: bool) -> NodeValues {
        NodeValues {
            plane: SocketAddr::from(([127, 0, 0, 1], port)),
            generation: Generation(u64::from(port)),
            config_hash: 7,
            revocation_digest: 0,
            ready,
        }
    }

    fn net() -> (Arc<ManualClock>, MemoryNetwork) {
        let clock = Arc::new(ManualClock::new(1_000));
        let network = MemoryNetwork::new(clock.clone(), Timeouts::default());
        (clock, network)
    }

    fn view(m: &dyn Membership) -> Vec<(String, PeerState)> {
        m.peers()
            .into_iter()
            .map(|p| (p.name.to_string(), p.state))
            .collect()
    }

    #[test]
    fn nodes_see_each_other_and_their_published_values() {
        let (_, network) = net();
        let a = network.join("a", values(1, false));
        let b = network.join("b", values(2, false));
        let c = network.join("c", values(3, true));
        assert_eq!(
            view(&a),
            [
                ("b".into(), PeerState::Alive),
                ("c".into(), PeerState::Alive)
            ]
        );
        assert_eq!(view(&c).len(), 2);
        b.publish(values(2, true));
        let seen = a.peers().into_iter().find(|p| &*p.name == "b").unwrap();
        assert!(seen.values.ready);
        assert_eq!(seen.last_heard, Duration::ZERO);
        assert_eq!(a.name(), "a");
    }

    #[test]
    fn silence_ages_into_suspect_then_down_and_a_tick_revives() {
        let (clock, network) = net();
        let a = network.join("a", values(1, true));
        let _b = network.join("b", values(2, true));
        network.crash("b");
        clock.advance_millis(499);
        assert_eq!(view(&a), [("b".into(), PeerState::Alive)]);
        clock.advance_millis(1);
        assert_eq!(view(&a), [("b".into(), PeerState::Suspect)]);
        clock.advance_millis(1_500);
        let p = &a.peers()[0];
        assert_eq!(
            (p.state, p.last_heard),
            (PeerState::Down, Duration::from_secs(2))
        );
        // A restart is a new generation under the same name.
        let b2 = network.join("b", values(9, true));
        let p = &a.peers()[0];
        assert_eq!(
            (p.state, p.values.generation),
            (PeerState::Alive, Generation(9))
        );
        assert_eq!(view(&b2), [("a".into(), PeerState::Alive)]);
    }

    #[test]
    fn partitions_one_way_and_both_ways_then_heal() {
        let (clock, network) = net();
        let a = network.join("a", values(1, true));
        let b = network.join("b", values(2, true));
        network.block_one_way(&["a"], &["b"]);
        clock.advance_millis(3_000);
        network.tick();
        assert_eq!(view(&a), [("b".into(), PeerState::Alive)]);
        assert_eq!(view(&b), [("a".into(), PeerState::Down)]);
        network.heal();
        assert_eq!(view(&b), [("a".into(), PeerState::Alive)]);
        network.partition(&["a"], &["b"]);
        clock.advance_millis(600);
        network.tick();
        assert_eq!(view(&a), [("b".into(), PeerState::Suspect)]);
        assert_eq!(view(&b), [("a".into(), PeerState::Suspect)]);
    }

    #[test]
    fn a_node_that_leaves_is_dropped_at_once_and_changes_are_signalled() {
        let (_, network) = net();
        let a = network.join("a", values(1, true));
        let mut changes = a.changes();
        changes.mark_unchanged();
        let b = network.join("b", values(2, true));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        b.publish(values(2, false));
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        network.leave("b");
        assert!(changes.has_changed().unwrap());
        assert!(a.peers().is_empty());
    }

    #[test]
    fn generations_grow_with_the_start_time() {
        let g1 = Generation::at_start(1_000);
        let g2 = Generation::at_start(1_001);
        assert!(g1 < g2);
        assert_eq!(g1.0 >> 12, 1_000);
    }
}
