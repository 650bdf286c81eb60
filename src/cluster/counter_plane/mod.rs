//! The counter plane: what this node tells its peers about its own counts, and what it does
//! with what they tell it. Sans-I/O: the driver hands it the time, the peers and each
//! datagram received, and gives it a `send` to call; it opens no socket and reads no clock.
//!
//! # Publishing ([`CounterPlane::tick`], every interval T)
//!
//! 1. **Changed cells.** The limiter notes every (limit, key) state an admission changed
//!    ([`Limiter::track_changes`]); each tick drains them ([`Limiter::drain_changed_cells`])
//!    into a bounded *pending* set of cells with this node's absolute count.
//! 2. **Threshold θ.** A cell is published once this node's own count in it reaches θ, so that
//!    the long tail of cold keys costs no traffic. θ is `[cluster] threshold` when set, else
//!    derived per limit: θ = max(1, ⌊L / (50·N)⌋) for a limit of L hits per window and N
//!    nodes (the live peers and this one). What a node holds back is below θ, so the
//!    N − 1 other nodes together hide fewer than (N − 1)·θ ≤ L/50 hits of a key: the
//!    threshold costs at most 2 % of the limit in over-admission, whatever N. A cell below θ
//!    leaves the pending set; it comes back when its count changes again.
//! 3. **Budget and order.** At most `max_cells_per_interval` cells go out per tick. When more
//!    are pending, those closest to their limit (count ÷ L) go first — the ones whose
//!    staleness would cost the most admissions — and the rest stay pending for the next tick
//!    (counted in `tollgate_cluster_cells_deferred_total`), never dropped silently; a cell
//!    still pending when its windows have passed no longer weighs in any decision and goes.
//!    The pending set holds at most [`PENDING_PER_BUDGET`] budgets; beyond that, changes
//!    wait in the limiter's own bounded changed set.
//! 4. **Where.** To every peer that is not down and whose configuration hash equals this
//!    node's, at its published plane address, in datagrams of at most 1,200 bytes
//!    ([`super::wire::Encoder`]); the same datagrams to each.
//! 5. **Re-sending.** Counts are absolute and merged by maximum, so a cell that keeps changing
//!    repairs a lost datagram at the next tick. A cell that stops changing would leave a peer
//!    that lost its last datagram stale for the rest of the window, so every published cell
//!    is sent again [`REFRESH_AFTER_INTERVALS`] intervals after it was last sent, up to
//!    [`REFRESHES`] times after its last change (or after the last snapshot, so that a lost
//!    snapshot datagram is repaired too), with whatever budget the changed cells leave.
//! 6. **Snapshot on join.** A peer seen for the first time (a new name, a new generation), or
//!    seen again after it was down or had another configuration, gets a burst of this node's
//!    published cells (closest to their limit first, at most [`SNAPSHOT_MAX_CELLS`]), so a
//!    joining or restarted node, or one back from a partition or a pause, knows the counts at
//!    once rather than as they change.
//! 7. **Relay.** With each snapshot, the counts this node holds for every (node, generation)
//!    that is not the current one of a listed, not-down peer — dead generations, previous
//!    lives, the joining peer's own included — go too, in datagrams in the name of the
//!    generation they count, at most [`SNAPSHOT_MAX_CELLS`] cells; again
//!    [`RELAY_AGAIN_AFTER_TICKS`] later, since nothing else repairs a lost one. Without it a
//!    restarted node, or each new node of a rolling update, would never count what a life
//!    that ended before it joined admitted. See `relay.rs`.
//!
//! The published cells are remembered (bounded by [`MAX_PUBLISHED`], the farthest from their
//! limit forgotten first; pruned as their windows pass): they are what snapshots and
//! re-sends send.
//!
//! # Receiving ([`CounterPlane::receive`])
//!
//! A datagram is decoded ([`super::wire::decode`]: authentication, freshness, form), then
//! the (node, generation) it names is looked up among the peers. **Direct:** a listed peer's
//! current generation is merged, unless that peer has another configuration hash
//! (`config_mismatch`, said once per peer generation in the log and in
//! `tollgate_cluster_config_mismatches_total`). **Relay:** any other is merged only if its
//! source address `from` is the plane address of a listed, not-down peer with this node's
//! configuration hash (the relayer vouches for the configuration; the tag proves it a
//! member), and if it names neither this node's current generation or a newer one
//! (`own_generation`: its counts are its own; its previous lives are merged like any dead
//! generation) nor a listed peer's generation newer than the membership announced
//! (`unknown_generation`). A relay not vouched for is dropped as a direct datagram of its
//! generation would be: an unknown node as `unknown_sender`, an older generation as
//! `old_generation`. Every drop is counted by reason.
//!
//! Each (node, generation) gets a [`NodeSlot`] of its own, assigned here, never reused (the
//! first datagram of a new one, direct or relayed, is counted as a snapshot received,
//! `tollgate_cluster_snapshot_transfers_total{plane="counter",direction="in"}`): a
//! restarted node's counts, which start again from 0, go to a new slot and never lower what
//! its previous life reported, and one life's counts are held in one slot only, so a peer is
//! never counted twice however often its datagrams are duplicated or relayed. The cells are merged with
//! [`Limiter::merge_cell_with_quota`] (by maximum, with the limit's quota so that the
//! limiter's memory cap evicts the counts farthest from their limit first).

use std::net::SocketAddr;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::limiter::{CellId, LimitSpec, Limiter, MergeOutcome, NodeSlot, MAX_LIMIT};

use super::membership::{Generation, Peer, PeerState};
use super::metrics::{ClusterMetrics, PlaneTraffic};
use super::wire::{self, ClusterKey, Encoder, Freshness};

mod config_hash;
mod relay;
#[cfg(test)]
mod tests;

pub use config_hash::config_hash;

/// The `plane` label of this plane's metrics.
pub const PLANE: &str = "counter";

/// How many budgets of changed cells the pending set holds at most.
pub const PENDING_PER_BUDGET: usize = 8;

/// A published cell is sent again after this many intervals without being sent.
pub const REFRESH_AFTER_INTERVALS: u64 = 20;

/// How many times a published cell is sent again after its last change.
pub const REFRESHES: u8 = 3;

/// Most published cells remembered (for snapshots and re-sends).
pub const MAX_PUBLISHED: usize = 65_536;

/// Most cells in the snapshot burst one joining peer gets (about 100 datagrams).
pub const SNAPSHOT_MAX_CELLS: usize = 4_096;

/// Most (node, generation) slot assignments remembered.
pub const MAX_SLOT_ENTRIES: usize = 4_096;

pub use relay::RELAY_AGAIN_AFTER_TICKS;

/// When a cell is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// Per limit: θ = max(1, ⌊L / (50·N)⌋).
    Auto,
    /// The same θ for every limit (`[cluster] threshold`).
    Fixed(u64),
}

impl Threshold {
    /// The setting `[cluster] threshold` makes: unset, [`Threshold::Auto`].
    pub fn from_config(threshold: Option<u64>) -> Self {
        threshold.map_or(Threshold::Auto, Threshold::Fixed)
    }

    /// θ for a limit of `quota` hits per window in a cluster of `nodes` nodes (this one
    /// included).
    pub fn for_limit(self, quota: u64, nodes: usize) -> u64 {
        match self {
            Threshold::Fixed(t) => t.max(1),
            Threshold::Auto => (quota / (nodes.max(1) as u64).saturating_mul(50)).max(1),
        }
    }
}

/// The freshness bound a node should use: a datagram older than 2 s carries nothing a later
/// datagram or a re-send (every 20 intervals, at most 1 s at the default interval) has not
/// carried since, and a replay cannot outlive it; 1 s ahead leaves room for the clock skew
/// of synchronised hosts. A node whose clock is further off is refused (`stale`, `future`).
pub const DEFAULT_FRESHNESS: Freshness = Freshness {
    max_age_ms: 2_000,
    max_ahead_ms: 1_000,
};

/// How a [`CounterPlane`] runs.
#[derive(Debug, Clone)]
pub struct CounterPlaneOptions {
    /// This node's name (its node id in datagrams is [`wire::node_id`] of it).
    pub node_name: String,
    /// This node's life.
    pub generation: Generation,
    /// The generation of this node whose counts the limiter restored from its snapshot (and
    /// holds back from what it publishes, [`Limiter::hold_back_restored_counts`]), if any:
    /// relays of that generation's counts are refused as `own_generation`, since they are in
    /// this node's own counts already.
    pub restored_from: Option<Generation>,
    /// The counter plane's key ([`ClusterKey::new`] of the cluster secret).
    pub key: ClusterKey,
    /// θ.
    pub threshold: Threshold,
    /// Most own cells published per tick (at least 1).
    pub max_cells_per_interval: usize,
    /// How old or how far ahead a datagram may be.
    pub freshness: Freshness,
    /// The interval T between ticks, in milliseconds (paces the re-sends).
    pub interval_ms: u64,
}

/// What one [`CounterPlane::tick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Changed cells published (each once, to every peer).
    pub published: usize,
    /// Published cells sent again (re-sends).
    pub refreshed: usize,
    /// Cells left pending for a later tick by the budget.
    pub deferred: usize,
    /// Peers that got a snapshot.
    pub snapshots: usize,
    /// Relays sent: one per peer and (node, generation) whose counts it was sent (see
    /// [`CounterPlane::tick`], "Relay").
    pub relayed: usize,
    /// Datagrams sent, all peers together.
    pub datagrams: usize,
    /// Peers sent to.
    pub peers: usize,
}

/// What this node knows of one peer's counter datagrams, for `/cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCounterView {
    /// The peer's node name.
    pub name: Arc<str>,
    /// The generation its last accepted datagram came from.
    pub generation: Option<Generation>,
    /// The slot its counts of that generation are merged into.
    pub slot: Option<NodeSlot>,
    /// The sequence number of its last accepted datagram.
    pub last_sequence: Option<u64>,
    /// Receive time minus send time of its last accepted datagram, in milliseconds (clock
    /// skew included).
    pub merge_lag_ms: Option<u64>,
    /// When its last datagram was accepted (Unix ms).
    pub last_datagram_ms: Option<u64>,
    /// Datagrams accepted from it.
    pub datagrams: u64,
    /// Its configuration hash differs from this node's: its counts are not merged.
    pub config_mismatch: bool,
}

/// One published cell, as last sent.
#[derive(Debug, Clone, Copy)]
struct Published {
    count: u64,
    sent_at_ms: u64,
    refreshes_left: u8,
}

/// What this plane keeps per peer name.
#[derive(Debug, Clone)]
struct PeerRecord {
    node: u64,
    view: PeerCounterView,
    /// The generation whose configuration mismatch was already said.
    mismatch_said: Option<Generation>,
}

/// One slot assignment: which slot, and when its generation was last current.
#[derive(Debug, Clone, Copy)]
struct SlotEntry {
    slot: NodeSlot,
    current_at_ms: u64,
}

/// The counter plane of one node (see the module doc).
pub struct CounterPlane {
    options: CounterPlaneOptions,
    /// This node's id in datagrams ([`wire::node_id`] of its name).
    node: u64,
    metrics: ClusterMetrics,
    /// This plane's series of `metrics`, resolved once (a label lookup costs a hash and a
    /// lock; these are counted for every datagram).
    traffic: PlaneTraffic,
    encoder: Encoder,
    /// Limit fingerprint → quota, from the configuration.
    quotas: HashMap<u64, u64>,
    /// The longest window of the configured limits, in seconds.
    max_window_secs: u64,
    config_hash: u64,
    /// N as of the last tick: the peers not down, and this node.
    nodes: usize,
    pending: HashMap<CellId, u64>,
    published: HashMap<CellId, Published>,
    /// The peers sent to at the last tick, with their generation.
    targets: HashMap<Arc<str>, Generation>,
    peers: HashMap<Arc<str>, PeerRecord>,
    /// Node id → name, of the peers in `peers`.
    by_node: HashMap<u64, Arc<str>>,
    /// Ticks so far (the bookkeeping of gone peers runs every few).
    ticks: u64,
    slots: HashMap<(u64, u64), SlotEntry>,
    next_slot: u32,
    /// [`Limiter::remote_counts_dropped`] as last read, to count evictions as they happen.
    remote_dropped_seen: u64,
    /// Reused buffers: datagrams of one tick, cells to encode.
    outbox: Vec<Vec<u8>>,
    /// Peers that got a snapshot lately, with when they get the relay again (one per peer
    /// sent to, so bounded by the peers).
    relays: HashMap<Arc<str>, relay::RelayDue>,
}

impl CounterPlane {
    /// A plane for this node; call [`CounterPlane::set_limits`] before the first tick.
    pub fn new(options: CounterPlaneOptions, metrics: ClusterMetrics) -> Self {
        let node = wire::node_id(&options.node_name);
        // The sequence starts at a value of this generation's, so that the sequences of two
        // lives are told apart in logs and captures.
        let encoder = Encoder::new(options.key.clone(), node, options.generation.0, 0);
        Self {
            traffic: metrics.traffic(PLANE),
            node,
            relays: HashMap::new(),
            options,
            metrics,
            encoder,
            by_node: HashMap::new(),
            ticks: 0,
            quotas: HashMap::new(),
            max_window_secs: 1,
            config_hash: 0,
            nodes: 1,
            pending: HashMap::new(),
            published: HashMap::new(),
            targets: HashMap::new(),
            peers: HashMap::new(),
            slots: HashMap::new(),
            // Slot 0 is left unused: a zero slot in a dump is then never a peer's.
            next_slot: 1,
            remote_dropped_seen: 0,
            outbox: Vec::new(),
        }
    }

    /// Takes the configured limits (at start and after each reload): their quotas, for θ and
    /// for ordering, and the configuration hash ([`config_hash`]) published in membership.
    /// Starts the limiter noting changed cells.
    pub fn set_limits(&mut self, limits: &[LimitSpec], limiter: &Limiter) {
        self.quotas = limits
            .iter()
            .map(|l| (Limiter::limit_fingerprint(l), l.limit.min(MAX_LIMIT)))
            .collect();
        self.max_window_secs = limits
            .iter()
            .map(|l| l.window.as_secs().max(1))
            .max()
            .unwrap_or(1);
        self.config_hash = config_hash(limits, limiter);
        limiter.track_changes();
    }

    /// The hash of this node's limit configuration and hash key (see [`config_hash`]): what
    /// it publishes in membership; peers with another one do not merge its counts.
    pub fn config_hash(&self) -> u64 {
        self.config_hash
    }

    /// This node's life.
    pub fn generation(&self) -> Generation {
        self.options.generation
    }

    /// This node's id in datagrams.
    pub fn node_id(&self) -> u64 {
        self.node
    }

    /// N as of the last tick: the peers not down, and this node.
    pub fn cluster_size(&self) -> usize {
        self.nodes
    }

    /// The threshold setting.
    pub fn threshold(&self) -> Threshold {
        self.options.threshold
    }

    /// θ in force for `limit` at the cluster size of the last tick.
    pub fn threshold_for(&self, limit: &LimitSpec) -> u64 {
        self.options
            .threshold
            .for_limit(limit.limit.min(MAX_LIMIT), self.nodes)
    }

    /// Cells waiting for a later tick.
    pub fn pending_cells(&self) -> usize {
        self.pending.len()
    }

    /// Published cells remembered (for snapshots and re-sends).
    pub fn published_cells(&self) -> usize {
        self.published.len()
    }

    /// What this node knows of each peer's counter datagrams, ordered by name (`/cluster`).
    pub fn peer_views(&self) -> Vec<PeerCounterView> {
        let mut v: Vec<PeerCounterView> = self.peers.values().map(|p| p.view.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One interval's work (see the module doc): drains the limiter's changed cells, sends
    /// the ones due to every live peer with this node's configuration, a snapshot to each
    /// peer new to it, and re-sends. `peers` is the membership's current list; `send`
    /// sends one datagram to one address.
    pub fn tick(
        &mut self,
        limiter: &Limiter,
        now_ms: u64,
        peers: &[Peer],
        mut send: impl FnMut(SocketAddr, &[u8]),
    ) -> TickReport {
        let mut report = TickReport::default();
        self.nodes = 1 + peers.iter().filter(|p| p.state != PeerState::Down).count();
        // Every second or so: what is kept per peer and per generation only needs that
        // precision (a generation's slot is kept for two of the longest windows).
        if self.ticks % REFRESH_AFTER_INTERVALS == 0 {
            self.forget_gone_peers(peers, now_ms);
        }
        self.ticks += 1;

        // Whom to send to, and who is new.
        let mut targets: Vec<SocketAddr> = Vec::new();
        let mut joiners: Vec<SocketAddr> = Vec::new();
        let mut joiner_names: Vec<Arc<str>> = Vec::new();
        let mut next_targets = HashMap::with_capacity(peers.len());
        for p in peers.iter().filter(|p| p.state != PeerState::Down) {
            if p.values.config_hash != self.config_hash {
                self.note_mismatch(p);
                continue;
            }
            if let Some(r) = self.peers.get_mut(&p.name) {
                r.view.config_mismatch = false;
            }
            targets.push(p.values.plane);
            if self.targets.get(&p.name) != Some(&p.values.generation) {
                joiners.push(p.values.plane);
                joiner_names.push(p.name.clone());
            }
            next_targets.insert(p.name.clone(), p.values.generation);
        }
        self.targets = next_targets;
        report.peers = targets.len();

        // Changed cells, and what passed.
        let room = (self.options.max_cells_per_interval.max(1) * PENDING_PER_BUDGET)
            .saturating_sub(self.pending.len());
        if room >= 2 {
            let pending = &mut self.pending;
            // Each state yields at most two cells (its two windows).
            limiter.drain_changed_cells(room / 2, |cell, count| {
                let held = pending.entry(cell).or_insert(0);
                *held = (*held).max(count);
            });
        }
        let now_secs = now_ms / 1000;
        let weighs = |c: &CellId| c.window_start_secs.saturating_add(2 * c.window_secs) > now_secs;
        self.pending.retain(|c, _| weighs(c));
        self.published.retain(|c, _| weighs(c));

        // Due: at θ or above, and not yet sent at this count; closest to their limit first.
        let mut due: Vec<(f64, CellId, u64)> = Vec::with_capacity(self.pending.len());
        let (quotas, published, nodes, threshold) = (
            &self.quotas,
            &self.published,
            self.nodes,
            self.options.threshold,
        );
        self.pending.retain(|cell, &mut count| {
            let quota = quotas.get(&cell.limit).copied().unwrap_or(MAX_LIMIT);
            let sent = published.get(cell).is_some_and(|p| p.count >= count);
            if sent || count < threshold.for_limit(quota, nodes) {
                return false;
            }
            due.push((count as f64 / quota.max(1) as f64, *cell, count));
            true
        });
        due.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let budget = self.options.max_cells_per_interval.max(1);
        let mut out: Vec<(CellId, u64)> = Vec::with_capacity(budget.min(due.len()));
        for &(_, cell, count) in due.iter().take(budget) {
            self.pending.remove(&cell);
            out.push((cell, count));
        }
        report.published = out.len();
        report.deferred = due.len().saturating_sub(budget);
        self.metrics.cells_deferred.inc_by(report.deferred as u64);
        for &(cell, count) in &out {
            self.remember(cell, count, now_ms);
        }

        // Re-sends, with what the budget leaves.
        let left = budget - out.len();
        if left > 0 {
            let refresh_ms = REFRESH_AFTER_INTERVALS * self.options.interval_ms.max(1);
            let mut stale: Vec<(u64, CellId)> = self
                .published
                .iter()
                .filter(|(_, p)| {
                    p.refreshes_left > 0 && now_ms.saturating_sub(p.sent_at_ms) >= refresh_ms
                })
                .map(|(c, p)| (p.sent_at_ms, *c))
                .collect();
            stale.sort_unstable();
            for (_, cell) in stale.into_iter().take(left) {
                if let Some(p) = self.published.get_mut(&cell) {
                    p.sent_at_ms = now_ms;
                    p.refreshes_left -= 1;
                    out.push((cell, p.count));
                    report.refreshed += 1;
                }
            }
        }

        if !targets.is_empty() && !out.is_empty() {
            self.metrics.cells_published.inc_by(out.len() as u64);
            report.datagrams += self.send_cells(now_ms, &out, &targets, &mut send);
        }

        // Snapshots for peers new to this node; their cells are then re-sent like changed
        // ones, so that a lost snapshot datagram is repaired too.
        if !joiners.is_empty() {
            let snapshot = self.snapshot();
            for p in self.published.values_mut() {
                p.refreshes_left = REFRESHES;
            }
            report.datagrams += self.send_cells(now_ms, &snapshot, &joiners, &mut send);
            report.snapshots = joiners.len();
            self.metrics
                .snapshot_transfers
                .with_label_values(&[PLANE, "out"])
                .inc_by(joiners.len() as u64);
        }

        // Relay: the counts of generations no live peer speaks for any more, to the peers
        // that just got a snapshot and to those due to get them again.
        let (relayed, datagrams) = self.relay(limiter, now_ms, peers, &joiner_names, &mut send);
        report.relayed = relayed;
        report.datagrams += datagrams;

        // Mirror the limiter's remote counts.
        let dropped = limiter.remote_counts_dropped();
        self.metrics
            .remote_cells_evicted
            .inc_by(dropped.saturating_sub(self.remote_dropped_seen));
        self.remote_dropped_seen = dropped;
        self.metrics
            .remote_cells
            .set(i64::try_from(limiter.remote_counts_held()).unwrap_or(i64::MAX));
        report
    }

    /// Takes one datagram received at `now_ms` from the counter plane's socket, sent from
    /// `from`: decodes it, finds its sender among `peers` (or, for a relay, the peer at
    /// `from` that vouches for it; see the module doc), and merges its cells into the slot
    /// of its (node, generation). Returns how many cells raised a count, or the label of the
    /// reason it was dropped (counted in `tollgate_cluster_dropped_total{plane="counter",
    /// reason}`).
    pub fn receive(
        &mut self,
        limiter: &Limiter,
        datagram: &[u8],
        now_ms: u64,
        peers: &[Peer],
        from: SocketAddr,
    ) -> Result<usize, &'static str> {
        let decoded =
            match wire::decode(datagram, &self.options.key, now_ms, self.options.freshness) {
                Ok(d) => d,
                Err(reason) => return Err(self.dropped(reason.as_str())),
            };
        let h = decoded.header;
        let sender = self.sender(peers, h.node);
        let direct = sender.filter(|p| p.values.generation.0 == h.generation);
        if let Some(peer) = direct {
            if peer.values.config_hash != self.config_hash {
                self.note_mismatch(peer);
                return Err(self.dropped("config_mismatch"));
            }
        } else if let Some(reason) = self.relay_refusal(peers, h.node, h.generation, sender, from) {
            // Not a listed peer's current generation, and not a relay this node merges.
            return Err(self.dropped(reason));
        }
        let slot = self.slot_of(h.node, h.generation, now_ms);
        self.traffic.received(datagram.len());
        let lag_ms = now_ms.saturating_sub(h.sent_at_ms);
        self.metrics.merge_lag.observe(lag_ms as f64 / 1000.0);
        let mut raised = 0;
        for (cell, count) in decoded.cells {
            let quota = self.quotas.get(&cell.limit).copied().unwrap_or(0);
            if limiter.merge_cell_with_quota(&cell, slot, count, quota) == MergeOutcome::Raised {
                raised += 1;
            }
        }
        if let Some(peer) = direct {
            let record = self.record(peer);
            let view = &mut record.view;
            view.generation = Some(peer.values.generation);
            view.slot = Some(slot);
            view.last_sequence = Some(h.sequence);
            view.merge_lag_ms = Some(lag_ms);
            view.last_datagram_ms = Some(now_ms);
            view.datagrams += 1;
        }
        Ok(raised)
    }

    /// Counts a drop and returns its label.
    fn dropped(&self, reason: &'static str) -> &'static str {
        self.metrics.drop(PLANE, reason);
        reason
    }

    /// The record of `peer`, created on first sight.
    fn record(&mut self, peer: &Peer) -> &mut PeerRecord {
        let by_node = &mut self.by_node;
        self.peers.entry(peer.name.clone()).or_insert_with(|| {
            let node = wire::node_id(&peer.name);
            by_node.insert(node, peer.name.clone());
            PeerRecord {
                node,
                view: PeerCounterView {
                    name: peer.name.clone(),
                    generation: None,
                    slot: None,
                    last_sequence: None,
                    merge_lag_ms: None,
                    last_datagram_ms: None,
                    datagrams: 0,
                    config_mismatch: false,
                },
                mismatch_said: None,
            }
        })
    }

    /// The peer of `peers` whose node id is `node`.
    fn sender<'p>(&mut self, peers: &'p [Peer], node: u64) -> Option<&'p Peer> {
        let named = |name: &Arc<str>| peers.iter().find(|p| p.name == *name);
        if let Some(p) = self.by_node.get(&node).and_then(named) {
            return Some(p);
        }
        // A peer not seen before: learn every listed peer's id.
        for p in peers {
            self.record(p);
        }
        self.by_node.get(&node).and_then(named)
    }

    /// Says once per peer generation that its configuration differs.
    fn note_mismatch(&mut self, peer: &Peer) {
        let ours = self.config_hash;
        let record = self.record(peer);
        record.view.config_mismatch = true;
        if record.mismatch_said == Some(peer.values.generation) {
            return;
        }
        record.mismatch_said = Some(peer.values.generation);
        self.metrics.config_mismatches.inc();
        tracing::warn!(
            peer = %peer.name,
            generation = peer.values.generation.0,
            their_config_hash = format_args!("{:016x}", peer.values.config_hash),
            our_config_hash = format_args!("{ours:016x}"),
            "this peer's limits or hash key differ from this node's: neither merges the \
             other's counts until both run the same [limits] and limiter.hash_key_env"
        );
    }

    /// The slot of (node, generation): assigned on first sight, never reused.
    fn slot_of(&mut self, node: u64, generation: u64, now_ms: u64) -> NodeSlot {
        if let Some(e) = self.slots.get_mut(&(node, generation)) {
            e.current_at_ms = now_ms;
            return e.slot;
        }
        if self.slots.len() >= MAX_SLOT_ENTRIES {
            // Forget the assignment whose generation was current longest ago: its counts
            // have almost surely left the limiter (see forget_gone_peers).
            if let Some(oldest) = self
                .slots
                .iter()
                .min_by_key(|(_, e)| e.current_at_ms)
                .map(|(k, _)| *k)
            {
                self.slots.remove(&oldest);
            }
        }
        let slot = NodeSlot(self.next_slot);
        self.next_slot = self.next_slot.wrapping_add(1).max(1);
        self.slots.insert(
            (node, generation),
            SlotEntry {
                slot,
                current_at_ms: now_ms,
            },
        );
        self.metrics
            .snapshot_transfers
            .with_label_values(&[PLANE, "in"])
            .inc();
        slot
    }

    /// Forgets peers no longer listed, and slot assignments of generations that stopped
    /// being current more than two of the longest windows ago (their counts have left the
    /// limiter by then, so a late datagram of theirs could not be counted twice).
    fn forget_gone_peers(&mut self, peers: &[Peer], now_ms: u64) {
        self.peers.retain(|name, r| {
            let listed = peers.iter().any(|p| &p.name == name);
            if !listed {
                self.by_node.remove(&r.node);
            }
            listed
        });
        for p in peers {
            let node = self.record(p).node;
            if let Some(e) = self.slots.get_mut(&(node, p.values.generation.0)) {
                e.current_at_ms = now_ms;
            }
        }
        let keep_ms = self.max_window_secs.saturating_mul(2000);
        self.slots
            .retain(|_, e| now_ms.saturating_sub(e.current_at_ms) <= keep_ms);
    }

    /// Remembers that `cell` was published at `count`.
    fn remember(&mut self, cell: CellId, count: u64, now_ms: u64) {
        if self.published.len() >= MAX_PUBLISHED && !self.published.contains_key(&cell) {
            self.forget_farthest_published();
        }
        self.published.insert(
            cell,
            Published {
                count,
                sent_at_ms: now_ms,
                refreshes_left: REFRESHES,
            },
        );
    }

    /// Forgets the 1/64 of the published cells farthest from their limit.
    fn forget_farthest_published(&mut self) {
        let mut ranked: Vec<(f64, CellId)> = self
            .published
            .iter()
            .map(|(c, p)| (self.closeness(c, p.count), *c))
            .collect();
        let n = (ranked.len() / 64).max(1);
        ranked.select_nth_unstable_by(n - 1, |a, b| a.0.total_cmp(&b.0));
        for (_, c) in &ranked[..n] {
            self.published.remove(c);
        }
    }

    fn closeness(&self, cell: &CellId, count: u64) -> f64 {
        let quota = self.quotas.get(&cell.limit).copied().unwrap_or(MAX_LIMIT);
        count as f64 / quota.max(1) as f64
    }

    /// The published cells, closest to their limit first, at most [`SNAPSHOT_MAX_CELLS`].
    fn snapshot(&self) -> Vec<(CellId, u64)> {
        let mut all: Vec<(f64, CellId, u64)> = self
            .published
            .iter()
            .map(|(c, p)| (self.closeness(c, p.count), *c, p.count))
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        all.into_iter()
            .take(SNAPSHOT_MAX_CELLS)
            .map(|(_, c, n)| (c, n))
            .collect()
    }

    /// Encodes `cells` once and sends every datagram to every address of `to`. Returns the
    /// datagrams sent.
    fn send_cells(
        &mut self,
        now_ms: u64,
        cells: &[(CellId, u64)],
        to: &[SocketAddr],
        send: &mut impl FnMut(SocketAddr, &[u8]),
    ) -> usize {
        let mut outbox = std::mem::take(&mut self.outbox);
        let mut used = 0;
        self.encoder.encode(now_ms, cells.iter().copied(), |d| {
            if used == outbox.len() {
                outbox.push(Vec::with_capacity(wire::MAX_DATAGRAM_BYTES));
            }
            outbox[used].clear();
            outbox[used].extend_from_slice(d);
            used += 1;
        });
        let mut sent = 0;
        for d in &outbox[..used] {
            for &addr in to {
                send(addr, d);
                self.traffic.sent(d.len());
                sent += 1;
            }
        }
        outbox.truncate(used.max(8));
        self.outbox = outbox;
        sent
    }
}
