//! The revocation plane: a revocation made on any node is in force on every node.
//!
//! Three mechanisms, each covering what the one before can miss (docs/cluster.md,
//! "Revocation plane"):
//!
//! - **Push.** The store announces each revocation recorded here
//!   ([`RevocationStore::subscribe`]); the plane hands it at once to one pusher task per live
//!   peer (every peer not [`PeerState::Down`]), which sends it in a `push` frame over a kept
//!   TCP connection and waits for the `ack` that the peer sends once it has merged and logged
//!   it. An unacknowledged push is sent again with a doubling backoff until acknowledged, or
//!   until the peer is down or gone (its queue, bounded, is then dropped: the digest repairs).
//! - **Anti-entropy.** Each node publishes the digest of its store
//!   ([`RevocationStore::digest_u64`]). When a ready, live peer's digest has differed from
//!   this node's for longer than a grace (two intervals by default, so that pushes in flight
//!   are not repaired), this node `fetch`es the peer's whole list and merges it (at most once
//!   per peer every `min_fetch_spacing`). If this node holds more, the digests still differ
//!   after the merge, and the peer repairs from this node the same way.
//! - **Join.** A starting node is not ready until it has fetched the lists of its ready, live
//!   peers (up to eight, all at once, so that a revocation only its recorder holds yet is not
//!   missed). When no such peer is seen within `join_timeout` it is ready alone: it is the first
//!   node of its deployment, or cut off (then the anti-entropy repairs once it hears peers).
//!
//! What is received is merged into the store ([`RevocationStore::merge`], a join that never
//! weakens a revocation), on the blocking pool since the store fsyncs its log, and so
//! outlives the node that received it.
//!
//! - [`frame`]: the frame format, its authentication and its decoder.
//! - `conn`: one connection — reading frames under time limits, answering, asking.

pub mod frame;

mod conn;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::frame::MAX_ENTRIES_PER_FRAME;
use crate::auth::{Revocation, RevocationStore};
use crate::cluster::membership::{Generation, Membership, Peer, PeerState};
use crate::cluster::metrics::{ClusterMetrics, PlaneTraffic};
use crate::cluster::wire::{ClusterKey, Freshness};
use crate::readiness::ReadinessFlag;

/// The `plane` label of this plane's metrics.
pub const PLANE: &str = "revocation";

/// How many local revocations the store's feed holds for the plane
/// ([`RevocationStore::subscribe`]).
pub const FEED_CAPACITY: usize = 4096;

/// The revocation plane's settings. [`Default`] is what tollgate runs with, but for
/// `interval` and `join_timeout`, which come from `[cluster]`.
#[derive(Debug, Clone)]
pub struct RevocationPlaneOptions {
    /// How often digests are compared (the cluster's interval T).
    pub interval: Duration,
    /// How long a peer's digest must differ before it is repaired from.
    pub repair_grace: Duration,
    /// The least time between two fetches from one peer for repair.
    pub min_fetch_spacing: Duration,
    /// How long a starting node looks for a ready peer before it is ready alone.
    pub join_timeout: Duration,
    /// How far a frame's send time may be from this node's clock.
    pub freshness: Freshness,
    /// How long a frame, once begun, or an answer may take to arrive.
    pub read_timeout: Duration,
    /// How long a connection may wait between frames before it is closed.
    pub idle_timeout: Duration,
    /// How long a connection to a peer may take to open.
    pub connect_timeout: Duration,
    /// Most connections answered at once.
    pub max_connections: usize,
    /// Most revocations waiting for one peer.
    pub peer_queue: usize,
    /// The first and the longest wait before a push is sent again.
    pub retry_backoff: (Duration, Duration),
}

impl Default for RevocationPlaneOptions {
    fn default() -> Self {
        let interval = Duration::from_millis(50);
        Self {
            interval,
            repair_grace: 2 * interval,
            min_fetch_spacing: Duration::from_secs(1),
            join_timeout: Duration::from_secs(3),
            freshness: Freshness {
                max_age_ms: 30_000,
                max_ahead_ms: 30_000,
            },
            read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(1),
            max_connections: 64,
            peer_queue: 4096,
            retry_backoff: (Duration::from_millis(20), Duration::from_secs(2)),
        }
    }
}

impl RevocationPlaneOptions {
    /// The defaults for a cluster whose interval is `interval` (the repair grace is two of
    /// them) and whose joiners wait `join_timeout`.
    pub fn new(interval: Duration, join_timeout: Duration) -> Self {
        Self {
            interval,
            repair_grace: 2 * interval,
            join_timeout,
            ..Self::default()
        }
    }
}

/// Everything the revocation plane of one node works with; [`RevocationPlane::spawn`]
/// starts it.
pub struct RevocationPlane {
    /// The node's store: what is received is merged into it.
    pub store: Arc<RevocationStore>,
    /// The store's feed of local revocations (`store.subscribe(FEED_CAPACITY)`).
    pub feed: mpsc::Receiver<Revocation>,
    /// Who the peers are: a peer's `values.plane` is where its plane listens (TCP).
    pub membership: Arc<dyn Membership>,
    /// `ClusterKey::for_plane(secret, frame::KEY_LABEL)`.
    pub key: ClusterKey,
    /// This node's name and generation, as its frames carry them.
    pub name: Arc<str>,
    pub generation: Generation,
    /// The readiness condition of the join: false from the start until the join is done.
    pub ready: ReadinessFlag,
    pub metrics: ClusterMetrics,
    pub options: RevocationPlaneOptions,
}

/// What the tasks of one plane share.
struct Shared {
    store: Arc<RevocationStore>,
    key: ClusterKey,
    name: Arc<str>,
    generation: u64,
    metrics: ClusterMetrics,
    /// This plane's frame and byte counters, resolved once.
    traffic: PlaneTraffic,
    options: RevocationPlaneOptions,
    next_request: AtomicU64,
    /// The listener's own IP when it is a specific one: connections to peers leave from it,
    /// so that a peer (and a firewall between them) sees this node's address.
    local_ip: Option<std::net::IpAddr>,
}

/// Unix milliseconds: frames cross processes, so their times are wall times.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RevocationPlane {
    /// Starts the plane: answers peers on `listener` (bound to the node's gossip address),
    /// pushes local revocations, repairs by digest and joins; sets `ready` false at once and
    /// true when the join is done. Runs until `shutdown` turns true (or its sender is
    /// dropped). The caller publishes, every interval, `revocation_digest:
    /// store.digest_u64()` and `ready: ready.get()` among its node values.
    pub fn spawn(self, listener: TcpListener, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        self.ready.set(false);
        tokio::spawn(self.run(listener, shutdown))
    }

    async fn run(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let RevocationPlane {
            store,
            mut feed,
            membership,
            key,
            name,
            generation,
            ready,
            metrics,
            options,
        } = self;
        let shared = Arc::new(Shared {
            store,
            key,
            name,
            generation: generation.0,
            traffic: metrics.traffic(PLANE),
            metrics,
            options,
            next_request: AtomicU64::new(rand::random::<u64>() >> 1),
            local_ip: listener
                .local_addr()
                .ok()
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified()),
        });
        let server = tokio::spawn(conn::serve(listener, shared.clone(), shutdown.clone()));
        let joining = tokio::spawn(join(shared.clone(), membership.clone(), ready));
        let mut state = State::default();
        let mut changes = membership.changes();
        let mut tick = tokio::time::interval(shared.options.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut feed_open = true;
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    if shutdown.borrow().to_owned() || shutdown.has_changed().is_err() {
                        break;
                    }
                }
                r = feed.recv(), if feed_open => match r {
                    Some(r) => state.push(&shared, r),
                    None => feed_open = false,
                },
                c = changes.changed() => {
                    if c.is_err() {
                        // The membership is gone (this node left): keep ticking on it.
                        changes = watch::channel(0).1;
                    }
                    state.reconcile(&shared, &membership.peers());
                }
                _ = tick.tick() => {
                    let peers = membership.peers();
                    state.reconcile(&shared, &peers);
                    state.repair(&shared, &peers);
                    state.count_feed_overflow(&shared);
                }
            }
        }
        server.abort();
        joining.abort();
        state.stop();
    }
}

/// What the main loop keeps: one pusher per live peer, one repair record per peer.
#[derive(Default)]
struct State {
    pushers: HashMap<Arc<str>, Pusher>,
    repairs: HashMap<Arc<str>, Repair>,
    feed_overflow_seen: u64,
}

struct Pusher {
    addr: SocketAddr,
    queue: mpsc::Sender<Revocation>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Repair {
    /// Since when the peer's digest has differed from ours.
    differs_since: Option<Instant>,
    last_fetch: Option<Instant>,
    in_flight: Option<JoinHandle<()>>,
}

impl State {
    /// Hands a local revocation to every pusher, at once.
    fn push(&mut self, shared: &Arc<Shared>, r: Revocation) {
        for p in self.pushers.values() {
            if p.queue.try_send(r.clone()).is_err() {
                shared.metrics.drop(PLANE, "queue_full");
            }
        }
    }

    /// One pusher for each peer that is not down, at its current address; none for the rest
    /// (what was queued for them is dropped: the digest repairs it).
    fn reconcile(&mut self, shared: &Arc<Shared>, peers: &[Peer]) {
        let live: HashMap<&Arc<str>, SocketAddr> = peers
            .iter()
            .filter(|p| p.state != PeerState::Down && *p.name != *shared.name)
            .map(|p| (&p.name, p.values.plane))
            .collect();
        self.pushers.retain(|name, p| {
            let keep = live.get(name) == Some(&p.addr) && !p.task.is_finished();
            if !keep {
                p.task.abort();
            }
            keep
        });
        for (name, addr) in live {
            if !self.pushers.contains_key(name) {
                let (queue, rx) = mpsc::channel(shared.options.peer_queue.max(1));
                let task = tokio::spawn(push_loop(shared.clone(), addr, rx));
                self.pushers
                    .insert(name.clone(), Pusher { addr, queue, task });
            }
        }
    }

    /// Fetches from each ready, live peer whose digest has differed from ours for longer
    /// than the grace (at most one fetch in flight per peer, spaced by `min_fetch_spacing`).
    fn repair(&mut self, shared: &Arc<Shared>, peers: &[Peer]) {
        let now = Instant::now();
        let ours = shared.store.digest_u64();
        let o = &shared.options;
        self.repairs
            .retain(|name, _| peers.iter().any(|p| p.name == *name));
        for p in peers {
            if p.state == PeerState::Down || !p.values.ready || *p.name == *shared.name {
                continue;
            }
            let r = self.repairs.entry(p.name.clone()).or_default();
            if r.in_flight.as_ref().is_some_and(|t| t.is_finished()) {
                r.in_flight = None;
            }
            if p.values.revocation_digest == ours {
                r.differs_since = None;
                continue;
            }
            let since = *r.differs_since.get_or_insert(now);
            let spaced = r
                .last_fetch
                .map_or(true, |t| now.duration_since(t) >= o.min_fetch_spacing);
            if now.duration_since(since) < o.repair_grace || !spaced || r.in_flight.is_some() {
                continue;
            }
            r.last_fetch = Some(now);
            r.differs_since = None;
            let (shared, addr, name) = (shared.clone(), p.values.plane, p.name.clone());
            r.in_flight = Some(tokio::spawn(async move {
                match conn::fetch(&shared, addr).await {
                    Ok(learnt) => {
                        count_repaired(&shared, learnt);
                        if learnt > 0 {
                            tracing::info!(peer = %name, learnt, "revocation plane: repaired by digest");
                        }
                        // Entries past their retention still count in the digest until purged:
                        // purge, so that they do not keep the digests apart.
                        let store = shared.store.clone();
                        let _ = tokio::task::spawn_blocking(move || store.purge_expired()).await;
                    }
                    Err(e) => {
                        tracing::debug!(peer = %name, reason = e.as_str(), "revocation plane: repair fetch failed");
                    }
                }
            }));
        }
    }

    /// Mirrors the store's feed overflow into `dropped{reason="feed_full"}`.
    fn count_feed_overflow(&mut self, shared: &Shared) {
        let seen = shared.store.stats.feed_overflow.load(Ordering::Relaxed);
        if seen > self.feed_overflow_seen {
            shared
                .metrics
                .dropped
                .with_label_values(&[PLANE, "feed_full"])
                .inc_by(seen - self.feed_overflow_seen);
            self.feed_overflow_seen = seen;
        }
    }

    fn stop(self) {
        for p in self.pushers.into_values() {
            p.task.abort();
        }
        for r in self.repairs.into_values() {
            if let Some(t) = r.in_flight {
                t.abort();
            }
        }
    }
}

fn count_repaired(shared: &Shared, learnt: usize) {
    shared
        .metrics
        .revocations
        .with_label_values(&["repaired"])
        .inc_by(learnt as u64);
}

/// Sends what is queued for one peer, in batches, each until acknowledged; a batch that
/// fails is sent again after a doubling wait, taking in what was queued meanwhile. Runs until
/// aborted (the peer is down or gone) or its queue closes.
async fn push_loop(shared: Arc<Shared>, addr: SocketAddr, mut queue: mpsc::Receiver<Revocation>) {
    let mut stream: Option<TcpStream> = None;
    let mut batch: Vec<Revocation> = Vec::new();
    let (first_wait, longest_wait) = shared.options.retry_backoff;
    let count = |event: &str, n: usize| {
        shared
            .metrics
            .revocations
            .with_label_values(&[event])
            .inc_by(n as u64)
    };
    loop {
        match queue.recv().await {
            Some(r) => batch.push(r),
            None => return,
        }
        let mut wait = first_wait;
        let mut attempt = 0u32;
        loop {
            while batch.len() < MAX_ENTRIES_PER_FRAME {
                match queue.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            count(if attempt == 0 { "pushed" } else { "retried" }, batch.len());
            let reused = stream.is_some();
            let sent = async {
                let s = match stream.as_mut() {
                    Some(s) => s,
                    None => stream.insert(conn::connect(&shared, addr).await?),
                };
                conn::push(s, &shared, &batch).await
            }
            .await;
            match sent {
                Ok(()) => {
                    count("acked", batch.len());
                    batch.clear();
                    break;
                }
                // A kept connection the peer has closed (idle, or restarted): try a new one
                // at once.
                Err(_) if reused => {
                    stream = None;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::debug!(%addr, reason = e.as_str(), "revocation plane: push not acknowledged; will retry");
                    stream = None;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(longest_wait);
                    attempt += 1;
                }
            }
        }
    }
}

/// How many ready, live peers a joining node fetches from (the most recently heard first):
/// every peer of a deployment of up to this many other pods, a bounded cost beyond.
const JOIN_FANOUT: usize = 8;

/// The join: not ready until the lists of the ready, live peers (up to [`JOIN_FANOUT`]) are
/// fetched and merged, at least one of them successfully; ready alone when no such peer is
/// seen within `join_timeout`.
async fn join(shared: Arc<Shared>, membership: Arc<dyn Membership>, ready: ReadinessFlag) {
    ready.set(false);
    let o = &shared.options;
    let deadline = Instant::now() + o.join_timeout;
    let mut changes = membership.changes();
    let mut wait = o.retry_backoff.0;
    loop {
        let mut candidates: Vec<Peer> = membership
            .peers()
            .into_iter()
            .filter(|p| p.state != PeerState::Down && p.values.ready && *p.name != *shared.name)
            .collect();
        candidates.sort_by_key(|p| (p.state, p.last_heard));
        candidates.truncate(JOIN_FANOUT);
        // Every candidate at once, not the first that answers: a revocation is acknowledged
        // by the node that recorded it before its pushes land, so for a moment only that
        // node holds it, and a join that fetched from one other peer would miss it.
        let mut fetches = tokio::task::JoinSet::new();
        for p in &candidates {
            let (shared, name, addr) = (Arc::clone(&shared), p.name.clone(), p.values.plane);
            fetches.spawn(async move { (name, conn::fetch(&shared, addr).await) });
        }
        let (mut joined, mut learnt_total) = (0usize, 0usize);
        while let Some(done) = fetches.join_next().await {
            let Ok((name, result)) = done else { continue };
            match result {
                Ok(learnt) => {
                    count_repaired(&shared, learnt);
                    joined += 1;
                    learnt_total += learnt;
                    tracing::debug!(peer = %name, learnt, "revocation plane: fetched a peer's revocations to join");
                }
                Err(e) => {
                    tracing::warn!(peer = %name, reason = e.as_str(), "revocation plane: could not fetch a peer's revocations to join; trying others");
                }
            }
        }
        if joined > 0 {
            tracing::info!(
                peers = joined,
                learnt = learnt_total,
                "revocation plane: joined with the revocations of its ready peers"
            );
            ready.set(true);
            return;
        }
        if candidates.is_empty() && Instant::now() >= deadline {
            tracing::info!(
                join_timeout_ms = o.join_timeout.as_millis() as u64,
                "revocation plane: no ready peer found within join_timeout; ready alone \
                 (the first node of the deployment, or cut off: digest repair catches up later)"
            );
            ready.set(true);
            return;
        }
        if candidates.is_empty() {
            // Wait for a peer to appear (or for the deadline); poll too, since a peer's state
            // also changes by the mere passing of time.
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = tokio::time::sleep(o.interval) => {}
            }
        } else {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(o.retry_backoff.1);
        }
    }
}
