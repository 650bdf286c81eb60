//! Relay: the counts of generations that no live peer speaks for any more, passed on by the
//! peers that hold them.
//!
//! A node publishes only its own counts, so without relay a node never learns the counts of
//! a generation that was no longer current when it joined: a restarted node would never
//! count what its previous life admitted, and in a rolling update each new node would miss
//! every old node's counts. So with each snapshot, a node also sends the counts it holds for
//! every (node, generation) that is not the current generation of a listed, not-down peer
//! (dead generations, previous lives, the receiving peer's own previous lives included),
//! each in ordinary counter datagrams whose header names the **original** node and
//! generation, closest to their limit first, at most [`SNAPSHOT_MAX_CELLS`] cells in all.
//! Such a relay goes again [`RELAY_AGAIN_AFTER_TICKS`] after the snapshot, so that a lost
//! datagram, or one that arrived before the receiver listed the relayer, is repaired:
//! nothing else would send those counts again.
//!
//! The receiver ([`CounterPlane::receive`]) merges a datagram naming a listed peer's
//! current generation as it always does. Any other datagram is a relay, accepted only if
//! it comes from the plane address of a listed, not-down peer with this node's
//! configuration hash (the relayer vouches for the configuration the counts were counted
//! under; the tag already proved it a cluster member), and only if it names neither this
//! node's current generation nor a newer one (`own_generation`: its own counts are its
//! own) nor a generation of a listed peer newer than the one the membership announced
//! (`unknown_generation`). One naming this node with an older generation — its previous
//! life — is merged into a slot of its own like any other, except the generation whose counts
//! this life restored from its limiter snapshot (`restored_from`, `own_generation`): those
//! are in its own counts already. A relay not vouched for is
//! dropped with the reason a direct datagram of that generation gets (`unknown_sender`,
//! `old_generation`). Relayed counts go to the slot of their (node, generation), merged
//! by maximum: several peers relaying the same dead generation, or a relay of counts the
//! receiver had already heard directly, count once.

use std::net::SocketAddr;
use std::sync::Arc;

use hashbrown::{HashMap, HashSet};

use crate::limiter::{CellId, Limiter, NodeSlot};

use super::{wire, CounterPlane, Encoder, Generation, Peer, PeerState, PLANE, SNAPSHOT_MAX_CELLS};

/// After a snapshot, the relay goes again this many ticks later: three times in a row (a
/// datagram lost on a link, each a tick later, as a changed cell would be), then spaced
/// (the receiver had not listed the relayer yet).
pub const RELAY_AGAIN_AFTER_TICKS: [u64; 6] = [1, 2, 3, 6, 12, 24];

/// A peer that got a snapshot, and when it gets the relay again.
#[derive(Debug, Clone, Copy)]
pub(super) struct RelayDue {
    generation: Generation,
    plane: SocketAddr,
    snapshot_tick: u64,
    /// Index into [`RELAY_AGAIN_AFTER_TICKS`] of the next repeat.
    next: usize,
}

/// One relayed identity, (node id, generation), and its cells.
pub(super) type Relayed = ((u64, u64), Vec<(CellId, u64)>);

impl CounterPlane {
    /// Sends the relay to the peers that just got a snapshot (`joiners`) and to those due to
    /// get it again. Returns (relays sent: one per peer and relayed identity, datagrams).
    pub(super) fn relay(
        &mut self,
        limiter: &Limiter,
        now_ms: u64,
        peers: &[Peer],
        joiners: &[Arc<str>],
        send: &mut impl FnMut(SocketAddr, &[u8]),
    ) -> (usize, usize) {
        let tick = self.ticks;
        for name in joiners {
            let (Some(&generation), Some(p)) = (
                self.targets.get(name),
                peers.iter().find(|p| &p.name == name),
            ) else {
                continue;
            };
            self.relays.insert(
                name.clone(),
                RelayDue {
                    generation,
                    plane: p.values.plane,
                    snapshot_tick: tick,
                    next: 0,
                },
            );
        }
        let targets = &self.targets;
        let mut to: Vec<SocketAddr> = Vec::new();
        self.relays.retain(|name, due| {
            if targets.get(name) != Some(&due.generation) {
                return false;
            }
            if due.snapshot_tick == tick {
                to.push(due.plane);
            } else if let Some(&after) = RELAY_AGAIN_AFTER_TICKS.get(due.next) {
                if tick.saturating_sub(due.snapshot_tick) >= after {
                    to.push(due.plane);
                    due.next += 1;
                }
            }
            due.next < RELAY_AGAIN_AFTER_TICKS.len()
        });
        if to.is_empty() {
            return (0, 0);
        }
        let relayed = self.relayed_counts(limiter, now_ms, peers);
        let mut datagrams = 0;
        for ((node, generation), cells) in &relayed {
            // A datagram in the name of the generation whose counts it carries: the receiver
            // merges it into that generation's slot.
            let mut encoder = Encoder::new(self.options.key.clone(), *node, *generation, 0);
            encoder.encode(now_ms, cells.iter().copied(), |d| {
                for &addr in &to {
                    send(addr, d);
                    self.traffic.sent(d.len());
                    datagrams += 1;
                }
            });
        }
        let sent = relayed.len() * to.len();
        self.metrics
            .snapshot_transfers
            .with_label_values(&[PLANE, "relayed"])
            .inc_by(sent as u64);
        (sent, datagrams)
    }

    /// The counts this node holds for every (node, generation) that is not the current one
    /// of a listed, not-down peer and whose windows still weigh in a decision: closest to
    /// their limit first, at most [`SNAPSHOT_MAX_CELLS`] in all, grouped by identity.
    pub(super) fn relayed_counts(
        &self,
        limiter: &Limiter,
        now_ms: u64,
        peers: &[Peer],
    ) -> Vec<Relayed> {
        let live: HashSet<(u64, u64)> = peers
            .iter()
            .filter(|p| p.state != PeerState::Down)
            .map(|p| (wire::node_id(&p.name), p.values.generation.0))
            .collect();
        let identity: HashMap<NodeSlot, (u64, u64)> = self
            .slots
            .iter()
            .filter(|(id, _)| !live.contains(*id))
            .map(|(id, e)| (e.slot, *id))
            .collect();
        if identity.is_empty() {
            // Nothing dead is known: no walk over the limiter's counts.
            return Vec::new();
        }
        let now_secs = now_ms / 1000;
        let mut all: Vec<(f64, (u64, u64), CellId, u64)> = Vec::new();
        limiter.for_each_remote_count(|cell, slot, count| {
            let weighs = cell.window_start_secs.saturating_add(2 * cell.window_secs) > now_secs;
            if let Some(&id) = identity.get(&slot).filter(|_| weighs && count > 0) {
                all.push((self.closeness(&cell, count), id, cell, count));
            }
        });
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)));
        all.truncate(SNAPSHOT_MAX_CELLS);
        all.sort_by(|a, b| a.1.cmp(&b.1).then(b.0.total_cmp(&a.0)));
        let mut out: Vec<Relayed> = Vec::new();
        for (_, id, cell, count) in all {
            match out.last_mut() {
                Some((last, cells)) if *last == id => cells.push((cell, count)),
                _ => out.push((id, vec![(cell, count)])),
            }
        }
        out
    }

    /// Why a datagram naming (`node`, `generation`), which is not a listed peer's current
    /// generation, is not merged as a relay from `from`; `None` if it is (see the module
    /// doc). `sender` is the listed peer whose node id is `node`, if any.
    pub(super) fn relay_refusal(
        &self,
        peers: &[Peer],
        node: u64,
        generation: u64,
        sender: Option<&Peer>,
        from: SocketAddr,
    ) -> Option<&'static str> {
        if node == self.node {
            if generation >= self.options.generation.0
                || self.options.restored_from.map(|g| g.0) == Some(generation)
            {
                return Some("own_generation");
            }
        } else if sender.is_some_and(|p| generation > p.values.generation.0) {
            return Some("unknown_generation");
        }
        let from = canonical(from);
        let vouched = peers.iter().any(|p| {
            p.state != PeerState::Down
                && p.values.config_hash == self.config_hash
                && canonical(p.values.plane) == from
        });
        match (vouched, sender) {
            (true, _) => None,
            (false, None) if node != self.node => Some("unknown_sender"),
            (false, _) => Some("old_generation"),
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address as IPv4: a socket bound to `[::]` reports an
/// IPv4 peer that way, while the peer publishes its plane address as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
