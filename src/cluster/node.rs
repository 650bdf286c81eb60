//! The driver: one tokio task per node that owns the cluster's socket, its timers and its
//! planes, and does every piece of I/O the sans-I/O parts ask for.
//!
//! - **One UDP socket** on `[cluster] gossip`, read by this task alone. Each datagram goes to
//!   the plane its first byte names: [`wire::VERSION`] to the counter plane,
//!   [`swim::MEMBERSHIP_KIND`] to the membership; anything else is dropped and counted.
//! - **A TCP listener on the same address** for the revocation plane, which runs as a task
//!   of its own (pushes and fetches are request/answer exchanges, not datagrams).
//! - **Every interval T** the counter plane publishes this node's changed counts, the node's
//!   published values (readiness, revocation digest, configuration hash) are refreshed,
//!   and the report `GET /admin/cluster` and `INFO cluster` read is rebuilt.
//! - **Seeds** are resolved at start and again every `reresolve_interval` (every second while
//!   the node has no live peer, so that a node started before its peers finds them soon), and
//!   each address found is announced to.
//! - **Membership timers** (probes, suspicion, the leave) are kept ordered by due time and fired when
//!   due.
//!
//! A reload that changes the limits gives the counter plane the new set at its next interval
//! (a new configuration hash, published at once: peers stop merging counts that no longer
//! mean the same).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::counter_plane::{CounterPlane, CounterPlaneOptions, Threshold, DEFAULT_FRESHNESS};
use super::membership::{Generation, Membership, NodeValues, PeerState};
use super::metrics::{ClusterMetrics, PlaneTraffic};
use super::revocation_plane::{self, RevocationPlane, RevocationPlaneOptions};
use super::status::{ClusterReport, ClusterStatus, PeerReport};
use super::swim::{self, Outbox, SwimNode, SwimTimer, SwimTiming, MEMBERSHIP_KIND};
use super::wire::{self, ClusterKey};
use crate::config::cluster::{ClusterConfig, Seed};
use crate::gate::Gate;
use crate::readiness::Readiness;

/// Largest datagram read: more than the planes accept, so that an oversized one is seen
/// whole and dropped as `too_long` rather than silently truncated into something else.
const RECV_BUFFER_BYTES: usize = 2048;

/// How often seeds are announced to (and resolved) while this node has no live peer.
const LONELY_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(1);

/// Most seed addresses announced to in one round (a Service may name many pods; a few
/// contacts are enough to join, the membership spreads the rest).
const MAX_SEED_ADDRESSES: usize = 16;

/// A running cluster node: its report for the doors, and how to stop it.
pub struct ClusterNode {
    status: ClusterStatus,
    gossip: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ClusterNode {
    /// The report `GET /admin/cluster` and `INFO cluster` show.
    pub fn status(&self) -> &ClusterStatus {
        &self.status
    }

    /// Where this node gossips (UDP) and serves the revocation plane (TCP), as bound.
    pub fn gossip_addr(&self) -> SocketAddr {
        self.gossip
    }

    /// Leaves the cluster gracefully (peers drop this node at once rather than after the
    /// failure detector's timeouts) and stops the planes.
    pub async fn leave(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Everything the driver needs from the server: the gate (limiter, limits, revocation store,
/// metrics registry), the readiness set, and where secrets are read.
pub struct ClusterStart<'a> {
    pub gate: Arc<Gate>,
    pub config: &'a ClusterConfig,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub readiness: &'a Readiness,
    /// The (node id, generation) that wrote the limiter snapshot restored at start, if a
    /// cluster node did: when it was this node's previous life, its restored counts are held
    /// back from publishing and relays of that generation refused (see the counter plane).
    pub restored_from: Option<(u64, u64)>,
}

/// Binds the cluster's socket and listener, joins through the seeds, and spawns the driver.
/// Errors name the key and say what to do.
pub async fn start(s: ClusterStart<'_>) -> anyhow::Result<ClusterNode> {
    let config = s.config;
    let secret = config
        .read_secret(s.env)
        .map_err(|e| anyhow::anyhow!("[cluster] {e}"))?
        .context("[cluster] is not enabled")?;
    let bind = config.gossip_addr().context(
        "[cluster] gossip is not set: give the address to gossip on, e.g. \"0.0.0.0:7946\"",
    )?;
    let socket = UdpSocket::bind(bind).await.with_context(|| {
        format!(
            "[cluster] gossip: cannot bind UDP {bind}: is another process (or another \
             tollgate) using the port? Choose a free one"
        )
    })?;
    let bound = socket
        .local_addr()
        .context("the gossip socket has no address")?;
    let listener = TcpListener::bind(bound).await.with_context(|| {
        format!(
            "[cluster] gossip: cannot bind TCP {bound} for the revocation plane (the same \
             address as the UDP socket): free the port or choose another"
        )
    })?;
    let hostname = hostname();
    let name = config.node_name_or(&hostname);
    let advertised = advertised_address(bound, &hostname).await?;
    let clock = s.gate.clock().clone();
    let generation = Generation::at_start(clock.now_millis());
    let metrics = ClusterMetrics::new(s.gate.metrics().registry());

    let counter_key = ClusterKey::new(&secret).map_err(|e| anyhow::anyhow!("[cluster] {e}"))?;
    let membership_key =
        swim::membership_key(&secret).map_err(|e| anyhow::anyhow!("[cluster] {e}"))?;
    let revocation_key = ClusterKey::for_plane(&secret, revocation_plane::frame::KEY_LABEL)
        .map_err(|e| anyhow::anyhow!("[cluster] {e}"))?;

    let limiter = s.gate.limiter();
    limiter.track_changes();
    let node_id = super::wire::node_id(&name);
    limiter.set_snapshot_origin(node_id, generation.0);
    let restored_from = s
        .restored_from
        .filter(|&(node, _)| node == node_id)
        .map(|(_, g)| Generation(g));
    let mut counters = CounterPlane::new(
        CounterPlaneOptions {
            node_name: name.clone(),
            generation,
            restored_from,
            key: counter_key,
            threshold: Threshold::from_config(config.threshold),
            max_cells_per_interval: config.max_cells_per_interval as usize,
            freshness: DEFAULT_FRESHNESS,
            interval_ms: config.interval().as_millis() as u64,
        },
        metrics.clone(),
    );
    counters.set_limits(&all_limits(&s.gate), limiter);

    let ready = s.readiness.register("cluster", false);
    let store = s.gate.authenticator().revocations().clone();
    let values = NodeValues {
        plane: advertised,
        generation,
        config_hash: counters.config_hash(),
        revocation_digest: store.digest_u64(),
        ready: false,
    };
    let swim = SwimNode::new(
        &name,
        advertised,
        values,
        membership_key,
        SwimTiming::default(),
        generation.0,
        Instant::now(),
    )
    .map_err(|e| anyhow::anyhow!("[cluster] node_name {name:?}: {e}"))?;
    let view = swim.view();
    let (stop, stopped) = watch::channel(false);
    let revocations = RevocationPlane {
        store: store.clone(),
        feed: store.subscribe(revocation_plane::FEED_CAPACITY),
        membership: Arc::new(view.clone()),
        key: revocation_key,
        name: Arc::from(name.as_str()),
        generation,
        ready: ready.clone(),
        metrics: metrics.clone(),
        options: RevocationPlaneOptions::new(config.interval(), config.join_timeout()),
    }
    .spawn(listener, stopped.clone());

    let (seeds_tx, seeds_rx) = mpsc::channel(4);
    let resolver = tokio::spawn(resolve_seeds(
        config.parsed_seeds(),
        config.reresolve_interval(),
        advertised,
        bound,
        view.clone(),
        seeds_tx,
        stopped.clone(),
    ));
    let status = ClusterStatus::default();
    let driver = Driver {
        gate: s.gate.clone(),
        socket,
        swim,
        view,
        counters,
        membership_traffic: metrics.traffic("membership"),
        metrics,
        status: status.clone(),
        name,
        generation,
        advertised,
        interval: config.interval(),
        ready,
        store,
        published: values,
        config_seen: s.gate.config(),
        timers: BTreeMap::new(),
        timer_seq: 0,
    };
    tracing::info!(
        node = %driver.name,
        gossip = %bound,
        advertised = %advertised,
        generation = generation.0,
        seeds = config.seeds.len(),
        "cluster: joining"
    );
    let task = tokio::spawn(async move {
        driver.run(seeds_rx, stopped).await;
        resolver.abort();
        let _ = revocations.await;
    });
    Ok(ClusterNode {
        status,
        gossip: bound,
        stop,
        task,
    })
}

/// Every limit a node counts (tiers and named limits): what the configuration hash covers.
fn all_limits(gate: &Gate) -> Vec<crate::limiter::LimitSpec> {
    let mut limits = gate.tiers();
    limits.extend(gate.limits());
    limits
}

/// The driver's state, owned by its one task.
struct Driver {
    gate: Arc<Gate>,
    socket: UdpSocket,
    swim: SwimNode,
    view: super::swim::SwimView,
    counters: CounterPlane,
    metrics: ClusterMetrics,
    /// The membership's datagram and byte counters, resolved once.
    membership_traffic: PlaneTraffic,
    status: ClusterStatus,
    name: String,
    generation: Generation,
    advertised: SocketAddr,
    interval: Duration,
    ready: crate::readiness::ReadinessFlag,
    store: Arc<crate::auth::RevocationStore>,
    /// What this node last published about itself.
    published: NodeValues,
    /// The configuration whose limits the counter plane has (a reload replaces it).
    config_seen: Arc<crate::config::Config>,
    /// Membership timers by due time; ties broken by the order they were set.
    timers: BTreeMap<(Instant, u64), SwimTimer>,
    timer_seq: u64,
}

impl Driver {
    async fn run(
        mut self,
        mut seeds: mpsc::Receiver<Vec<SocketAddr>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut buf = vec![0u8; RECV_BUFFER_BYTES];
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut out = Outbox::new();
        loop {
            let next_timer = self.timers.first_key_value().map(|((at, _), _)| *at);
            let timer_due = async {
                match next_timer {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.receive(&buf[..len], from, &mut out),
                    Err(e) => tracing::debug!(error = %e, "cluster: receive failed"),
                },
                _ = tick.tick() => self.on_interval(),
                _ = timer_due => self.fire_timers(&mut out),
                Some(addrs) = seeds.recv() => {
                    let now = Instant::now();
                    for addr in addrs {
                        self.swim.announce(addr, now, &mut out);
                    }
                }
                _ = stop.changed() => {
                    self.swim.leave(Instant::now(), &mut out);
                    self.flush(&mut out);
                    tracing::info!(node = %self.name, "cluster: left");
                    return;
                }
            }
            self.flush(&mut out);
        }
    }

    /// One datagram: to the plane its first byte names.
    fn receive(&mut self, datagram: &[u8], from: SocketAddr, out: &mut Outbox) {
        match datagram.first() {
            Some(&wire::VERSION) => {
                let now_ms = self.gate.clock().now_millis();
                let peers = self.view.peers();
                // Accepted and dropped datagrams are counted by the plane.
                let _ = self
                    .counters
                    .receive(self.gate.limiter(), datagram, now_ms, &peers, from);
            }
            Some(&MEMBERSHIP_KIND) => {
                match self.swim.receive(datagram, from, Instant::now(), out) {
                    Ok(()) => self.membership_traffic.received(datagram.len()),
                    Err(reason) => self.metrics.drop("membership", reason),
                }
            }
            _ => self.metrics.drop("membership", "unknown_kind"),
        }
    }

    /// Every interval T: publish counts, refresh this node's values and the report.
    fn on_interval(&mut self) {
        let config = self.gate.config();
        if !Arc::ptr_eq(&config, &self.config_seen) {
            self.counters
                .set_limits(&all_limits(&self.gate), self.gate.limiter());
            self.config_seen = config;
        }
        let now_ms = self.gate.clock().now_millis();
        let peers = self.view.peers();
        let socket = &self.socket;
        let metrics = &self.metrics;
        // Datagrams sent are counted by the plane; one the socket refuses (its buffer full)
        // is lost like one the network drops, and counted here.
        self.counters
            .tick(self.gate.limiter(), now_ms, &peers, |to, bytes| {
                if socket.try_send_to(bytes, to).is_err() {
                    metrics.drop("counter", "send_failed");
                }
            });
        let values = NodeValues {
            plane: self.advertised,
            generation: self.generation,
            config_hash: self.counters.config_hash(),
            revocation_digest: self.store.digest_u64(),
            ready: self.ready.get(),
        };
        if values != self.published {
            self.view.publish(values);
            self.published = values;
        }
        self.report(&peers);
    }

    /// Rebuilds the report the doors show, and the gauges.
    fn report(&mut self, peers: &[super::membership::Peer]) {
        for state in [PeerState::Alive, PeerState::Suspect, PeerState::Down] {
            let n = peers.iter().filter(|p| p.state == state).count();
            self.metrics
                .peers
                .with_label_values(&[state.as_str()])
                .set(n as i64);
        }
        let ours = self.published;
        let lags = self.counters.peer_views();
        let live = peers.iter().filter(|p| p.state != PeerState::Down).count();
        self.status.set(ClusterReport {
            node: self.name.clone(),
            generation: self.generation.0,
            gossip: self.advertised.to_string(),
            ready: self.ready.get(),
            config_hash: format!("{:016x}", ours.config_hash),
            interval_ms: self.interval.as_millis() as u64,
            threshold_per_1000: self.counters.threshold().for_limit(1000, live + 1),
            live_peers: live,
            peers: peers
                .iter()
                .map(|p| PeerReport {
                    name: p.name.to_string(),
                    state: p.state.as_str(),
                    generation: p.values.generation.0,
                    address: p.values.plane.to_string(),
                    last_heard_ms: p.last_heard.as_millis() as u64,
                    merge_lag_ms: lags
                        .iter()
                        .find(|v| v.name == p.name)
                        .and_then(|v| v.merge_lag_ms),
                    config_match: p.values.config_hash == ours.config_hash,
                    ready: p.values.ready,
                    revocations_match: p.values.revocation_digest == ours.revocation_digest,
                })
                .collect(),
        });
    }

    fn fire_timers(&mut self, out: &mut Outbox) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            self.swim.handle_timer(timer, now, out);
        }
    }

    /// Sends what the membership asked to send, and schedules its timers.
    fn flush(&mut self, out: &mut Outbox) {
        for (to, bytes) in out.datagrams.drain(..) {
            match self.socket.try_send_to(&bytes, to) {
                Ok(_) => self.membership_traffic.sent(bytes.len()),
                Err(_) => self.metrics.drop("membership", "send_failed"),
            }
        }
        let now = Instant::now();
        for (after, timer) in out.timers.drain(..) {
            self.timer_seq += 1;
            self.timers.insert((now + after, self.timer_seq), timer);
        }
    }
}

/// Resolves the seeds at start and then periodically, and hands the addresses found (not
/// this node's own) to the driver to announce to: every `reresolve` while the node has live
/// peers, every [`LONELY_ANNOUNCE_INTERVAL`] while it has none.
async fn resolve_seeds(
    seeds: Vec<Seed>,
    reresolve: Duration,
    advertised: SocketAddr,
    bound: SocketAddr,
    view: super::swim::SwimView,
    to_driver: mpsc::Sender<Vec<SocketAddr>>,
    mut stop: watch::Receiver<bool>,
) {
    if seeds.is_empty() {
        return;
    }
    let mut last_resolved = None::<Instant>;
    loop {
        let lonely = !view.peers().iter().any(|p| p.state != PeerState::Down);
        let due = last_resolved.map_or(true, |t| t.elapsed() >= reresolve);
        if lonely || due {
            let mut found = Vec::new();
            for seed in &seeds {
                match seed {
                    Seed::Addr(a) => found.push(*a),
                    Seed::Name { host, port } => {
                        match tokio::net::lookup_host((host.as_str(), *port)).await {
                            Ok(addrs) => found.extend(addrs),
                            Err(e) => tracing::debug!(
                                seed = %host, error = %e, "cluster: seed did not resolve"
                            ),
                        }
                    }
                }
            }
            found.retain(|a| *a != advertised && *a != bound);
            found.sort();
            found.dedup();
            found.truncate(MAX_SEED_ADDRESSES);
            last_resolved = Some(Instant::now());
            if !found.is_empty() && to_driver.send(found).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LONELY_ANNOUNCE_INTERVAL.min(reresolve)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The host name (in Kubernetes, the pod's name): the default node name.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many
    // bytes and NUL-terminates when there is room.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(name) = std::str::from_utf8(&buf[..end]) {
            if !name.is_empty() {
                return name.to_string();
            }
        }
    }
    "tollgate".to_string()
}

/// The address peers reach this node at: the bound address, unless it is unspecified
/// (`0.0.0.0:7946` in a pod), when it is the host name's address (a pod's name resolves to
/// its IP) on the bound port.
async fn advertised_address(bound: SocketAddr, hostname: &str) -> anyhow::Result<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    let found = tokio::net::lookup_host((hostname, bound.port()))
        .await
        .ok()
        .and_then(|mut addrs| {
            addrs.find(|a| {
                a.is_ipv4() == bound.is_ipv4() && !a.ip().is_loopback() && !a.ip().is_unspecified()
            })
        });
    found.with_context(|| {
        format!(
            "[cluster] gossip is {bound}, and the host name {hostname:?} does not resolve to \
             an address peers can reach: set gossip to this node's own IP (in Kubernetes, \
             the pod IP from the downward API)"
        )
    })
}
