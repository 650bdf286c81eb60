//! Membership and failure detection between tollgate nodes: SWIM, as the `foca` crate
//! implements it, behind tollgate's [`Membership`](crate::cluster::membership::Membership)
//! trait (docs/cluster.md, "Membership", says why foca).
//!
//! foca does no I/O and reads no clock: [`SwimNode`] is a state machine that the cluster's
//! driver feeds with the datagrams it receives ([`SwimNode::receive`]) and the timers that
//! come due ([`SwimNode::handle_timer`]), and that answers by filling an [`Outbox`]: datagrams
//! to send, and timers to schedule (each to be handed back to `handle_timer` after its delay).
//! Nothing else drives it, so a test can run several nodes on a simulated network and clock
//! and get the same run every time.
//!
//! - `identity.rs`: who a member is — name, gossip address, generation and renewal; a later
//!   life of a node replaces the earlier one.
//! - `codec.rs`: foca's messages in a compact layout of tollgate's, refusing any input it
//!   cannot read without panicking.
//! - `values.rs`: each node's [`NodeValues`] spread as foca custom broadcasts, last writer wins
//!   per (name, generation, version).
//! - `view.rs`: [`SwimView`], what the rest of tollgate reads.
//!
//! # The datagram
//!
//! `[2][foca payload][tag]`: the kind byte [`MEMBERSHIP_KIND`] (the counter plane's datagrams
//! begin with [`wire::VERSION`], `1`, so one socket carries both), the payload
//! (`codec.rs`), and 32 bytes of HMAC-SHA256 over everything before them under
//! [`ClusterKey::for_plane`]`(secret, `[`KEY_LABEL`]`)`. At most
//! [`MAX_DATAGRAM_BYTES`] in all. The tag is checked, in constant time, before any byte
//! behind the kind is read. A datagram refused is dropped with a reason among
//! [`DROP_REASONS`].
//!
//! # Values, promptly
//!
//! A record is disseminated by foca like any update: piggybacked on the next few datagrams
//! the node sends, and by every node that learns it from a peer, until it is old news. That
//! alone would leave a node that joins later without the values of peers that have not
//! changed theirs: so whenever a node learns of a new member (or of a new life of one), it
//! sends that member one datagram with its own record and as many of the records it holds
//! as fit; and every [`SwimTiming::values_refresh`] it puts its own record back in the
//! dissemination queue, which repairs any datagram lost.

mod codec;
mod identity;
mod values;
mod view;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BufMut;
use foca::{Codec, Foca, Header, Member, Message, Notification, PeriodicParams, Runtime, State};
use parking_lot::Mutex;

pub use self::identity::{SwimIdentity, MAX_NAME_BYTES};
pub use self::view::SwimView;

use self::codec::SwimCodec;
use self::values::{Record, ValuesHandler, ValuesTable};
use self::view::Listed;
use crate::cluster::membership::{NodeValues, PeerState};
use crate::cluster::wire::{self, ClusterKey, MAX_DATAGRAM_BYTES, TAG_BYTES};

/// The first byte of every membership datagram.
pub const MEMBERSHIP_KIND: u8 = 2;

/// The label the membership key is derived under from the cluster secret
/// ([`ClusterKey::for_plane`]).
pub const KEY_LABEL: &[u8] = b"tollgate cluster membership v1";

/// The most members a node keeps (alive, suspect and down together), and the most nodes it
/// holds values for. A datagram that would take it past this is dropped
/// (`too_many_members`).
pub const MAX_MEMBERS: usize = 1024;

/// The most bytes of foca payload in one datagram: the datagram less its kind and tag.
const MAX_PAYLOAD: usize = MAX_DATAGRAM_BYTES - 1 - TAG_BYTES;

/// Every reason [`SwimNode::receive`] gives for dropping a datagram (the metric's labels).
pub const DROP_REASONS: [&str; 8] = [
    "too_long",
    "too_short",
    "bad_kind",
    "bad_mac",
    "malformed",
    "from_self",
    "too_many_members",
    "rejected",
];

/// How often the protocol acts, and how long it waits. The defaults suit a LAN (a pod
/// network, loopback), where a round trip takes well under a millisecond and a node that
/// answers nothing for a second is in trouble:
///
/// - a node probes one member every `probe_period` (500 ms), and asks others to probe it
///   indirectly when no answer came within `probe_rtt` (200 ms: far above a LAN round trip,
///   so that a node slowed by a busy CPU is not suspected for it);
/// - a member that answered neither way by the next period is suspect, and down
///   `suspect_to_down` (2 s) later unless it refutes (a suspected node learns it within a
///   gossip period or two, and answers with a higher incarnation). A killed node is so
///   suspected within one to two probe periods (every live node probes someone each
///   period) and down about 3 s after it died; a node paused for less than about 2 s comes
///   back without ever being down, and one paused longer is declared down and, on
///   resuming, rejoins at once under a renewed identity;
/// - every `gossip_period` (200 ms) a node sends what changed to 3 random members, which
///   spreads a change through tens of nodes in well under a second;
/// - every `announce_period` (10 s) it asks a random member for its member list (which
///   repairs a partial view), and every `announce_down_period` (5 s) it announces itself to
///   2 members it believes down (which heals a partition once it is gone);
/// - a down member is listed (as down) for `forget_down_after` (5 min), then forgotten;
/// - every `values_refresh` (5 s) a node sends its own values again, which repairs a loss.
///
/// `probe_rtt` must be shorter than `probe_period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwimTiming {
    pub probe_period: Duration,
    pub probe_rtt: Duration,
    pub suspect_to_down: Duration,
    pub gossip_period: Duration,
    pub announce_period: Duration,
    pub announce_down_period: Duration,
    pub forget_down_after: Duration,
    pub values_refresh: Duration,
}

impl Default for SwimTiming {
    fn default() -> Self {
        Self {
            probe_period: Duration::from_millis(500),
            probe_rtt: Duration::from_millis(200),
            suspect_to_down: Duration::from_secs(2),
            gossip_period: Duration::from_millis(200),
            announce_period: Duration::from_secs(10),
            announce_down_period: Duration::from_secs(5),
            forget_down_after: Duration::from_secs(300),
            values_refresh: Duration::from_secs(5),
        }
    }
}

/// Members a node gossips to, and asks to probe indirectly, at a time.
const FANOUT: NonZeroUsize = match NonZeroUsize::new(3) {
    Some(n) => n,
    None => unreachable!(),
};

/// How many times a node passes on each update: 8 reaches every node of a cluster of up to
/// about a hundred with high probability (foca's rule is 4·log₁₀(N+1)).
const MAX_TRANSMISSIONS: NonZeroU8 = match NonZeroU8::new(8) {
    Some(n) => n,
    None => unreachable!(),
};

impl SwimTiming {
    fn foca_config(&self) -> foca::Config {
        let periodic = |frequency: Duration, n: usize| {
            NonZeroUsize::new(n).map(|num_members| PeriodicParams {
                frequency,
                num_members,
            })
        };
        foca::Config {
            probe_period: self.probe_period,
            probe_rtt: self.probe_rtt,
            num_indirect_probes: FANOUT,
            max_transmissions: MAX_TRANSMISSIONS,
            suspect_to_down_after: self.suspect_to_down,
            remove_down_after: self.forget_down_after,
            max_packet_size: NonZeroUsize::new(MAX_PAYLOAD).unwrap_or(NonZeroUsize::MIN),
            // A member declared down hears so when it next speaks, and rejoins at once.
            notify_down_members: true,
            periodic_announce: periodic(self.announce_period, 1),
            periodic_announce_to_down_members: periodic(self.announce_down_period, 2),
            periodic_gossip: periodic(self.gossip_period, FANOUT.get()),
        }
    }
}

/// A timer the node asked for: hand it back to [`SwimNode::handle_timer`] once its delay has
/// passed. Late is fine (the protocol is tolerant of a busy driver); never is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimTimer(TimerKind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerKind {
    Foca(foca::Timer<SwimIdentity>),
    RefreshValues,
}

/// What a call to the node asks the driver to do.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Datagrams to send, each to its address, in order.
    pub datagrams: Vec<(SocketAddr, Vec<u8>)>,
    /// Timers to schedule: after the delay, call [`SwimNode::handle_timer`] with the timer.
    pub timers: Vec<(Duration, SwimTimer)>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Nothing to send, nothing to schedule.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty() && self.timers.is_empty()
    }
}

/// Why a node could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwimError {
    #[error("the node name is empty")]
    EmptyName,
    #[error("the node name is {len} bytes long; at most {MAX_NAME_BYTES} are carried")]
    NameTooLong { len: usize },
}

/// A small seeded generator for foca's random choices (whom to probe, whom to gossip to):
/// SplitMix64, so that a simulation is the same for the same seed.
struct SplitMix(u64);

impl rand_core::RngCore for SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// foca's view of the outside world during one call: what it sends goes into the outbox,
/// sealed; what it schedules goes there too; what it notifies is kept for the node.
struct Sink<'a> {
    key: &'a ClusterKey,
    out: &'a mut Outbox,
    events: &'a mut Vec<Notification<SwimIdentity>>,
}

impl Runtime<SwimIdentity> for Sink<'_> {
    fn notify(&mut self, notification: Notification<SwimIdentity>) {
        self.events.push(notification);
    }

    fn send_to(&mut self, to: SwimIdentity, data: &[u8]) {
        self.out.datagrams.push((to.gossip(), seal(self.key, data)));
    }

    fn submit_after(&mut self, event: foca::Timer<SwimIdentity>, after: Duration) {
        self.out
            .timers
            .push((after, SwimTimer(TimerKind::Foca(event))));
    }
}

/// `[MEMBERSHIP_KIND][payload][tag]`.
fn seal(key: &ClusterKey, payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(1 + payload.len() + TAG_BYTES);
    datagram.push(MEMBERSHIP_KIND);
    datagram.extend_from_slice(payload);
    key.append_tag(&mut datagram);
    datagram
}

/// The metric label of an error foca returned for a datagram.
fn drop_reason(error: &foca::Error) -> &'static str {
    match error {
        foca::Error::DataTooBig => "too_long",
        foca::Error::DataFromOurselves => "from_self",
        foca::Error::MalformedPacket
        | foca::Error::Decode(_)
        | foca::Error::CustomBroadcast(_)
        | foca::Error::IndirectForOurselves => "malformed",
        _ => "rejected",
    }
}

/// One node of the membership protocol, without I/O: see the module doc.
pub struct SwimNode {
    foca: Foca<SwimIdentity, SwimCodec, SplitMix, ValuesHandler>,
    key: ClusterKey,
    timing: SwimTiming,
    name: Arc<str>,
    view: SwimView,
    table: Arc<Mutex<ValuesTable>>,
    /// This node's values as last published, under their version.
    own: Record,
    /// When each member (by name) was last heard from directly, or first learnt of.
    heard: HashMap<Arc<str>, Instant>,
    refresh_scheduled: bool,
    left: bool,
    events: Vec<Notification<SwimIdentity>>,
}

impl fmt::Debug for SwimNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwimNode")
            .field("identity", self.foca.identity())
            .field("members", &self.foca.iter_membership_state().len())
            .finish_non_exhaustive()
    }
}

impl SwimNode {
    /// A node named `name` (at most [`MAX_NAME_BYTES`]), gossiping at `gossip` — the address
    /// its peers reach it at, so not an unspecified one like `0.0.0.0` — publishing `values`
    /// (whose generation is this life's), signing with `key` (made with [`KEY_LABEL`]).
    /// `rng_seed` seeds its random choices. It knows no one until it is announced to a seed
    /// ([`announce`](Self::announce)) or a peer announces itself to it; `now` starts its
    /// clock.
    pub fn new(
        name: &str,
        gossip: SocketAddr,
        values: NodeValues,
        key: ClusterKey,
        timing: SwimTiming,
        rng_seed: u64,
        now: Instant,
    ) -> Result<Self, SwimError> {
        if name.is_empty() {
            return Err(SwimError::EmptyName);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(SwimError::NameTooLong { len: name.len() });
        }
        let name: Arc<str> = Arc::from(name);
        let table = Arc::new(Mutex::new(ValuesTable::new(name.clone(), now)));
        let identity = SwimIdentity::new(name.clone(), gossip, values.generation);
        let foca = Foca::with_custom_broadcast(
            identity,
            timing.foca_config(),
            SplitMix(rng_seed),
            SwimCodec,
            ValuesHandler {
                table: table.clone(),
            },
        );
        let mut node = Self {
            foca,
            key,
            timing,
            view: SwimView::new(name.clone(), now),
            name: name.clone(),
            table,
            own: Record {
                name,
                version: 0,
                left: false,
                values,
            },
            heard: HashMap::new(),
            refresh_scheduled: false,
            left: false,
            events: Vec::new(),
        };
        node.queue_own_values();
        Ok(node)
    }

    /// What the rest of tollgate reads: the peers, this node's name, and where to publish
    /// its values.
    pub fn view(&self) -> SwimView {
        self.view.clone()
    }

    /// This node's current identity (its renewal grows when it rejoins after being declared
    /// down).
    pub fn identity(&self) -> &SwimIdentity {
        self.foca.identity()
    }

    /// Announces this node to whoever gossips at `to` (a seed: the driver resolves names and
    /// calls this for every address found, at start and again from time to time). An
    /// announce to this node's own address is skipped. The seed answers with its members.
    pub fn announce(&mut self, to: SocketAddr, now: Instant, out: &mut Outbox) {
        if to == self.foca.identity().gossip() || self.left {
            return;
        }
        self.begin(now, out);
        let mut sink = Sink {
            key: &self.key,
            out,
            events: &mut self.events,
        };
        if let Err(e) = self.foca.announce(SwimIdentity::seed(to), &mut sink) {
            tracing::debug!(error = %e, "cluster membership: announce not sent");
        }
        self.finish(now, out);
    }

    /// Handles one datagram received from `from` (not trusted: only the tag says who sent
    /// it). `Err` is why it was dropped, one of [`DROP_REASONS`]: the driver counts it. The
    /// length, the kind and then the tag are checked before anything else is read; no input
    /// makes this panic.
    pub fn receive(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        out: &mut Outbox,
    ) -> Result<(), &'static str> {
        let _ = from;
        if datagram.len() > MAX_DATAGRAM_BYTES {
            return Err("too_long");
        }
        if datagram.len() <= 1 + TAG_BYTES {
            return Err("too_short");
        }
        if datagram[0] != MEMBERSHIP_KIND {
            return Err("bad_kind");
        }
        let signed = self.key.open(datagram).ok_or("bad_mac")?;
        let payload = &signed[1..];
        let preview = codec::preview(payload).map_err(|_| "malformed")?;
        let src = &preview.header.src;
        if src.gossip() == self.foca.identity().gossip() || *src.name_arc() == self.name {
            return Err("from_self");
        }
        if self.would_overflow(src, &preview.updates) {
            return Err("too_many_members");
        }
        let src = src.clone();
        let to_us = preview.header.dst == *self.foca.identity();
        let (payload, about_us) = self.split_updates_about_us(payload, preview);
        self.begin(now, out);
        let mut sink = Sink {
            key: &self.key,
            out,
            events: &mut self.events,
        };
        let mut result = self.foca.handle_data(&payload, &mut sink);
        // What the sender said about this node, applied as foca would have, had the sender
        // been heard (see `split_updates_about_us`).
        let heard = self.foca.iter_members().any(|m| *m.id() == src);
        if result.is_ok() && to_us && heard && !about_us.is_empty() {
            result = self.foca.apply_many(about_us.into_iter(), &mut sink);
        }
        if result.is_ok() {
            self.heard.insert(src.name_arc().clone(), now);
        }
        self.finish(now, out);
        result.map_err(|e| drop_reason(&e))
    }

    /// Takes the updates about this node itself out of `payload`, to be applied after it.
    ///
    /// foca 0.17 answers a suspicion of itself by gossiping at once, and does so, when the
    /// suspicion arrives in a datagram, with a buffer it has lent out for the datagram's
    /// updates: a debug assertion of foca's then fails (a release build only allocates
    /// anew). Applied on their own, after the datagram, those updates have the same effect
    /// and no such clash. Most datagrams say nothing about their recipient and are passed
    /// through as they are.
    fn split_updates_about_us<'a>(
        &self,
        payload: &'a [u8],
        preview: codec::Preview,
    ) -> (Cow<'a, [u8]>, Vec<Member<SwimIdentity>>) {
        let own = self.foca.identity();
        if !preview.updates.iter().any(|(m, _)| m.id() == own) {
            return (Cow::Borrowed(payload), Vec::new());
        }
        let mut kept = Vec::with_capacity(payload.len());
        kept.extend_from_slice(&payload[..preview.header_len]);
        kept.put_u16(0);
        let mut count: u16 = 0;
        let mut about_us = Vec::new();
        for (member, bytes) in preview.updates {
            if member.id() == own {
                about_us.push(member);
            } else {
                kept.extend_from_slice(&payload[bytes]);
                count += 1;
            }
        }
        kept[preview.header_len..preview.header_len + 2].copy_from_slice(&count.to_be_bytes());
        kept.extend_from_slice(&payload[preview.tail..]);
        (Cow::Owned(kept), about_us)
    }

    /// Handles a timer that came due (one this node put in an outbox).
    pub fn handle_timer(&mut self, timer: SwimTimer, now: Instant, out: &mut Outbox) {
        self.begin(now, out);
        match timer.0 {
            TimerKind::Foca(timer) => {
                let mut sink = Sink {
                    key: &self.key,
                    out,
                    events: &mut self.events,
                };
                if let Err(e) = self.foca.handle_timer(timer, &mut sink) {
                    tracing::debug!(error = %e, "cluster membership: timer");
                }
            }
            TimerKind::RefreshValues => {
                self.refresh_scheduled = false;
                if !self.left {
                    self.queue_own_values();
                }
            }
        }
        self.finish(now, out);
    }

    /// Leaves the cluster gracefully (at shutdown): tells every member this node knows that
    /// it left, so that they drop it from their lists rather than report it down. The node
    /// then ignores what it receives; send what the outbox holds, and stop.
    pub fn leave(&mut self, now: Instant, out: &mut Outbox) {
        if self.left {
            return;
        }
        self.begin(now, out);
        self.own.left = true;
        self.own.version += 1;
        self.queue_own_values();
        let members: Vec<SwimIdentity> = self.foca.iter_members().map(|m| m.id().clone()).collect();
        for member in &members {
            self.push_values(member, out);
        }
        let mut sink = Sink {
            key: &self.key,
            out,
            events: &mut self.events,
        };
        if let Err(e) = self.foca.leave_cluster(&mut sink) {
            tracing::debug!(error = %e, "cluster membership: leave");
        }
        self.left = true;
        self.finish(now, out);
    }

    /// Starts a call: the time, values published since the last call, the refresh timer.
    fn begin(&mut self, now: Instant, out: &mut Outbox) {
        self.table.lock().now = now;
        if self.left {
            return;
        }
        if let Some(values) = self.view.take_pending() {
            if values != self.own.values {
                self.own.values = values;
                self.own.version += 1;
                self.queue_own_values();
                // Sent to a few members at once rather than at the next gossip round.
                let mut sink = Sink {
                    key: &self.key,
                    out,
                    events: &mut self.events,
                };
                if let Err(e) = self.foca.broadcast(&mut sink) {
                    tracing::debug!(error = %e, "cluster membership: broadcast");
                }
            }
        }
        if !self.refresh_scheduled {
            self.refresh_scheduled = true;
            out.timers.push((
                self.timing.values_refresh,
                SwimTimer(TimerKind::RefreshValues),
            ));
        }
    }

    /// Ends a call: reacts to what foca noticed, then updates the view.
    fn finish(&mut self, now: Instant, out: &mut Outbox) {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            match event {
                // A member new to this node (or a new life of one) gets this node's values,
                // and what else it holds, at once.
                Notification::MemberUp(id) | Notification::Rename(_, id) if !self.left => {
                    self.push_values(id, out);
                }
                // This node was declared down and came back under a renewed identity: every
                // member hears its values again.
                Notification::Rejoin(_) => {
                    self.queue_own_values();
                    let members: Vec<SwimIdentity> =
                        self.foca.iter_members().map(|m| m.id().clone()).collect();
                    for member in &members {
                        self.push_values(member, out);
                    }
                }
                _ => {}
            }
        }
        self.events = events;
        self.events.clear();
        self.update_view(now);
    }

    /// Puts this node's record in foca's dissemination queue.
    fn queue_own_values(&mut self) {
        let Some(bytes) = self.own.encode() else {
            return;
        };
        if let Err(e) = self.foca.add_broadcast(&bytes) {
            tracing::debug!(error = %e, "cluster membership: own values not queued");
        }
    }

    /// Sends `to` one datagram of foca's broadcast kind: this node's record first, then as
    /// many held records as fit. Built here rather than by foca, which only broadcasts to
    /// members it picks at random. The header gives incarnation 0, which can neither refute
    /// a suspicion nor revive anything: it only says "alive", which `to` may already know
    /// better.
    fn push_values(&mut self, to: &SwimIdentity, out: &mut Outbox) {
        let header = Header {
            src: self.foca.identity().clone(),
            src_incarnation: 0,
            dst: to.clone(),
            message: Message::Broadcast,
        };
        let mut payload = Vec::with_capacity(MAX_PAYLOAD);
        if SwimCodec
            .encode_header(&header, (&mut payload).limit(MAX_PAYLOAD))
            .is_err()
        {
            return;
        }
        let own = self.own.encode();
        let table = self.table.lock();
        let held = table
            .iter()
            .filter(|h| h.record.name != *to.name_arc())
            .filter_map(|h| h.record.encode());
        for record in own.into_iter().chain(held) {
            if payload.len() + 2 + record.len() > MAX_PAYLOAD {
                break;
            }
            payload.put_u16(record.len() as u16);
            payload.extend_from_slice(&record);
        }
        drop(table);
        out.datagrams.push((to.gossip(), seal(&self.key, &payload)));
    }

    /// Whether accepting a datagram from `src` about `updates` would take the member list
    /// past [`MAX_MEMBERS`].
    fn would_overflow(
        &self,
        src: &SwimIdentity,
        updates: &[(Member<SwimIdentity>, std::ops::Range<usize>)],
    ) -> bool {
        let known = self.foca.iter_membership_state().len();
        if known + 1 + updates.len() <= MAX_MEMBERS {
            return false;
        }
        let addrs: HashSet<SocketAddr> = self
            .foca
            .iter_membership_state()
            .map(|m| m.id().gossip())
            .collect();
        let own = self.foca.identity().gossip();
        let new: HashSet<SocketAddr> = std::iter::once(src)
            .chain(updates.iter().map(|(m, _)| m.id()))
            .map(SwimIdentity::gossip)
            .filter(|a| *a != own && !addrs.contains(a))
            .collect();
        known + new.len() > MAX_MEMBERS
    }

    /// Rebuilds the view: per node name, the latest life foca knows, with the values that
    /// life published. A node is listed once its values are known, and not at all once it
    /// left.
    fn update_view(&mut self, now: Instant) {
        let mut latest: BTreeMap<Arc<str>, &Member<SwimIdentity>> = BTreeMap::new();
        for member in self.foca.iter_membership_state() {
            let name = member.id().name_arc();
            if name.is_empty() || *name == self.name {
                continue;
            }
            match latest.get(name) {
                Some(known) if known.id().life() >= member.id().life() => {}
                _ => {
                    latest.insert(name.clone(), member);
                }
            }
        }
        self.heard.retain(|name, _| latest.contains_key(name));
        let mut table = self.table.lock();
        let mut peers = Vec::with_capacity(latest.len());
        for (name, member) in &latest {
            let Some(held) = table.get(name) else {
                continue;
            };
            let record = &held.record;
            if record.left || record.values.generation != member.id().generation() {
                continue;
            }
            let heard_at = *self.heard.entry(name.clone()).or_insert(now);
            peers.push(Listed {
                identity: member.id().clone(),
                values: record.values,
                state: match member.state() {
                    State::Alive => PeerState::Alive,
                    State::Suspect => PeerState::Suspect,
                    State::Down => PeerState::Down,
                },
                heard_at,
            });
        }
        table.forget(self.timing.forget_down_after, |name| {
            latest.contains_key(name)
        });
        drop(table);
        self.view.set_peers(peers, now);
    }
}

/// The key membership datagrams are signed with, from the cluster secret.
pub fn membership_key(secret: &[u8]) -> Result<ClusterKey, wire::SecretTooShort> {
    ClusterKey::for_plane(secret, KEY_LABEL)
}
