//! What the rest of tollgate sees of the membership: a [`SwimView`], cheap to clone and safe
//! to share, that lists the peers as of the last thing the [`SwimNode`](super::SwimNode)
//! handled and takes this node's new values to publish.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::identity::SwimIdentity;
use crate::cluster::membership::{Membership, NodeValues, Peer, PeerState};

/// A peer in the view: what [`Peer`] says, with the instant it was last heard from rather
/// than an age (the age depends on when one asks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub identity: SwimIdentity,
    pub values: NodeValues,
    pub state: PeerState,
    pub heard_at: Instant,
}

impl Listed {
    /// The same peer in every way the list's readers care about (not the time last heard:
    /// that changes with every datagram and is no reason to wake anyone).
    fn same_as(&self, other: &Listed) -> bool {
        self.identity == other.identity && self.values == other.values && self.state == other.state
    }
}

pub(crate) struct Shared {
    /// Values published through the view, not yet taken by the node.
    pub pending: Option<NodeValues>,
    /// The peers, ordered by name.
    pub peers: Vec<Listed>,
    /// The latest instant the node was called with.
    pub as_of: Instant,
}

/// The membership of one [`SwimNode`](super::SwimNode), for everything but its driver.
#[derive(Clone)]
pub struct SwimView {
    name: Arc<str>,
    shared: Arc<Mutex<Shared>>,
    changes: watch::Sender<u64>,
}

impl SwimView {
    pub(crate) fn new(name: Arc<str>, now: Instant) -> Self {
        Self {
            name,
            shared: Arc::new(Mutex::new(Shared {
                pending: None,
                peers: Vec::new(),
                as_of: now,
            })),
            changes: watch::channel(0).0,
        }
    }

    /// The peers, with the time since each was last heard from measured at `now`. What
    /// [`Membership::peers`] returns at the later of the real clock and the last instant the
    /// node was called with; a simulation with its own clock calls this.
    pub fn peers_at(&self, now: Instant) -> Vec<Peer> {
        let shared = self.shared.lock();
        shared
            .peers
            .iter()
            .map(|p| Peer {
                name: p.identity.name_arc().clone(),
                values: p.values,
                state: p.state,
                last_heard: now.saturating_duration_since(p.heard_at),
            })
            .collect()
    }

    /// The values published and not yet taken by the node.
    pub(crate) fn take_pending(&self) -> Option<NodeValues> {
        self.shared.lock().pending.take()
    }

    /// Replaces the list; wakes the [`changes`](Membership::changes) receivers when a peer
    /// came, went, changed state or values.
    pub(crate) fn set_peers(&self, peers: Vec<Listed>, now: Instant) {
        let mut shared = self.shared.lock();
        shared.as_of = shared.as_of.max(now);
        let changed = shared.peers.len() != peers.len()
            || shared.peers.iter().zip(&peers).any(|(a, b)| !a.same_as(b));
        shared.peers = peers;
        drop(shared);
        if changed {
            self.changes.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}

impl Membership for SwimView {
    fn name(&self) -> &str {
        &self.name
    }

    /// Takes effect at the node's next call that is given an outbox (a timer fires at
    /// least every gossip period, so within [`SwimTiming::gossip_period`](super::SwimTiming)).
    fn publish(&self, values: NodeValues) {
        self.shared.lock().pending = Some(values);
    }

    fn peers(&self) -> Vec<Peer> {
        let as_of = self.shared.lock().as_of;
        self.peers_at(Instant::now().max(as_of))
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
