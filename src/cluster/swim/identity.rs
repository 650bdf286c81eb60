//! Who a member is, as foca sees it: a node name, the address it gossips on, and which life
//! of the node this is.
//!
//! foca keeps one member per [`Identity::addr`] (here the gossip address) and, when two
//! identities claim the same address, keeps the one that wins
//! [`Identity::win_addr_conflict`]. A node's life is its [`Generation`] (drawn anew at every
//! start) and then its renewal count (bumped when the cluster declared it down while it was
//! still running, say after a SIGSTOP, so that it can rejoin at once under an identity the
//! cluster has not buried): the later life wins, so a restarted or renewed node replaces its
//! previous self. A renewal keeps the generation: the process, and so its counts, are the
//! same.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use foca::Identity;

use crate::cluster::membership::Generation;

/// The longest node name carried, in bytes (a DNS name's length: a pod's name is one).
pub const MAX_NAME_BYTES: usize = 253;

/// One life of one node, as the membership protocol names it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SwimIdentity {
    name: Arc<str>,
    gossip: SocketAddr,
    generation: Generation,
    renewal: u16,
}

impl SwimIdentity {
    /// The first identity of a node's life. `name` is at most [`MAX_NAME_BYTES`] (the codec
    /// refuses longer ones, so [`SwimNode::new`](super::SwimNode::new) checks).
    pub(crate) fn new(name: Arc<str>, gossip: SocketAddr, generation: Generation) -> Self {
        Self {
            name,
            gossip,
            generation,
            renewal: 0,
        }
    }

    /// Every field, as the codec reads them.
    pub(crate) fn from_parts(
        name: Arc<str>,
        gossip: SocketAddr,
        generation: Generation,
        renewal: u16,
    ) -> Self {
        Self {
            name,
            gossip,
            generation,
            renewal,
        }
    }

    /// Whoever listens at `gossip`, name unknown: what a node announces itself to when all
    /// it has is a seed's address. foca accepts an announce addressed to its own address
    /// whatever the identity, and answers with its own.
    pub(crate) fn seed(gossip: SocketAddr) -> Self {
        Self::new(Arc::from(""), gossip, Generation(0))
    }

    /// The node's name (empty only for the placeholder a node announces itself to when all it
    /// knows of a seed is its address).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// Where it gossips.
    pub fn gossip(&self) -> SocketAddr {
        self.gossip
    }

    /// Its life: drawn at start.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// How many times this life rejoined after being declared down.
    pub fn renewal(&self) -> u16 {
        self.renewal
    }

    /// Which of two identities is the later life: generation, then renewal (then the name,
    /// so that the order is total and two nodes misconfigured onto one address do not both
    /// lose).
    pub(crate) fn life(&self) -> (Generation, u16, &str) {
        (self.generation, self.renewal, &self.name)
    }
}

impl fmt::Debug for SwimIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{}/{}.{}",
            self.name, self.gossip, self.generation.0, self.renewal
        )
    }
}

impl Identity for SwimIdentity {
    type Addr = SocketAddr;

    /// The same life, renewed: declared down while it was in fact running (paused, or cut
    /// off), the node rejoins at once under an identity that wins over the buried one.
    /// `None` after 65,535 renewals (the node then stays out until it restarts).
    fn renew(&self) -> Option<Self> {
        let renewal = self.renewal.checked_add(1)?;
        Some(Self {
            renewal,
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.gossip
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.life() > adversary.life()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, generation: u64) -> SwimIdentity {
        SwimIdentity::new(
            Arc::from(name),
            SocketAddr::from(([127, 0, 0, 2], 7946)),
            Generation(generation),
        )
    }

    #[test]
    fn a_renewed_identity_wins_over_the_old_and_keeps_its_generation() {
        let old = id("a", 5);
        let renewed = old.renew().unwrap();
        assert_eq!(renewed.generation(), Generation(5));
        assert_eq!(renewed.renewal(), 1);
        assert_eq!(renewed.addr(), old.addr());
        assert!(renewed.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&renewed));
    }

    #[test]
    fn a_restart_wins_over_any_renewal_of_the_previous_life() {
        let mut old = id("a", 5);
        for _ in 0..3 {
            old = old.renew().unwrap();
        }
        let restarted = id("a", 6);
        assert!(restarted.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&restarted));
    }

    #[test]
    fn renewal_stops_at_its_limit() {
        let last = SwimIdentity::from_parts(
            Arc::from("a"),
            SocketAddr::from(([127, 0, 0, 2], 7946)),
            Generation(1),
            u16::MAX,
        );
        assert!(last.renew().is_none());
    }

    #[test]
    fn debug_shows_name_address_and_life() {
        assert_eq!(format!("{:?}", id("a", 5)), "a@127.0.0.2:7946/5.0");
    }
}
