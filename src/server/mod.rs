//! Front doors: HTTP (TCP and Unix socket) and RESP. Each parses its input into request
//! facts, asks the [`crate::gate::Gate`], and renders the decision.
//!
//! This module owns the server's life: [`ServerBuilder::start`] builds the gate, binds every
//! listener and spawns the accept loops, the periodic limiter sweep and a supervisor; the
//! returned [`ServerHandle`] reports the bound addresses, reloads the configuration, and shuts
//! down gracefully (stop accepting → let in-flight requests finish within
//! `server.shutdown_grace` → close what is left). [`run`] is what `tollgate serve` calls: the
//! same, driven by signals (SIGTERM/SIGINT shut down, SIGHUP reloads).
//!
//! Files: [`http`] is the HTTP door (a folder: routing, the fast path, one file per endpoint
//! group, rendering), [`listener`] the sockets and connection handling every door shares
//! (it knows no protocol), [`resp`] the RESP
//! door (a folder: its connection loop, one file per command, and its event loops, which
//! poll for work before they sleep: [`resp::idle_poll`]), [`snapshot`] the limiter's snapshot
//! file (restored at start, written periodically and after the drain). The conditions `/readyz` reports are
//! [`crate::readiness`]'s; the cluster (a door of its own, [`crate::cluster`]) is started here
//! before the others answer.

pub mod budget;
pub mod http;
pub mod listener;
pub mod occupancy;
pub mod resp;
pub mod snapshot;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::{AbortHandle, JoinHandle};

use crate::auth::{Authenticator, IssuerKeys};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::gate::AdminAccess;
use crate::gate::{Gate, ReloadSummary};
use crate::metrics::Listener;

pub use crate::readiness::{Readiness, ReadinessFlag};
pub use listener::{ConnectionSlots, Phase, Shutdown};

use self::http::{Endpoints, HttpConnSettings, HttpService, HttpShared};
use self::listener::{ShutdownController, UnixSocketFile};

/// How often idle limiter states are dropped. Idle means both windows passed, so for the
/// usual windows (minutes to hours) a few seconds of delay changes nothing but memory.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Connections the metrics listener (`server.metrics`) holds open at once. Prometheus keeps
/// one or two and each probe opens one; the cap is its own, so a flood of scrapes cannot
/// take the slots of `/check` and `/auth`, nor the reverse.
pub const METRICS_MAX_CONNECTIONS: usize = 64;

/// Starts a server: `ServerBuilder::new(config).start().await` binds and serves on the
/// current tokio runtime.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// let mut config = tollgate::config::Config::default();
/// config.server.http = "127.0.0.1:0".into(); // any free port
/// let server = tollgate::server::ServerBuilder::new(config).start().await?;
/// println!("listening on {}", server.http_addr());
/// server.stop().await?;
/// # Ok(()) }
/// ```
pub struct ServerBuilder {
    config: Config,
    config_path: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    http_listener: Option<std::net::TcpListener>,
    readiness: Readiness,
    http_fast_path: bool,
    env: EnvLookup,
}

/// How a server reads secrets from its environment (see [`ServerBuilder::env`]).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Environment variable that turns the HTTP fast path off (`0`, `off`, `false`): every
/// request then goes through hyper. A diagnostic switch, used by `benches/http.sh` to show
/// what the fast path is worth.
pub const FAST_PATH_ENV: &str = "TOLLGATE_HTTP_FAST_PATH";

impl ServerBuilder {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            config_path: None,
            clock: Arc::new(SystemClock),
            http_listener: None,
            readiness: Readiness::new(),
            http_fast_path: !matches!(
                std::env::var(FAST_PATH_ENV).as_deref(),
                Ok("0" | "off" | "false")
            ),
            env: Arc::new(|var| std::env::var(var).ok()),
        }
    }

    /// Where the secrets the configuration names by environment variable are read from:
    /// HS256 issuer secrets and the admin secret (`auth.admin.secret_env`).
    /// Default: the process environment. Tests pass their own, so they need not change the
    /// environment of a multi-threaded process.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Whether plain GETs are answered by the hand-written fast path (default: yes, unless
    /// [`FAST_PATH_ENV`] says otherwise) or every request goes through hyper.
    pub fn http_fast_path(mut self, on: bool) -> Self {
        self.http_fast_path = on;
        self
    }

    /// The file [`ServerHandle::reload_config_file`] (SIGHUP) re-reads.
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }

    /// The clock decisions use (tests pass a [`crate::clock::ManualClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Serve HTTP on this already-bound listener instead of binding `server.http`.
    pub fn http_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.http_listener = Some(listener);
        self
    }

    /// Share a readiness set with other components (they register their own conditions).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Builds the gate, binds every listener, and starts serving. Returns once the listeners
    /// accept connections (`/readyz` is then ready unless another condition is not).
    pub async fn start(self) -> anyhow::Result<ServerHandle> {
        let ServerBuilder {
            config,
            config_path,
            clock,
            http_listener,
            readiness,
            http_fast_path,
            env,
        } = self;
        config.validate()?;
        let sc = &config.server;
        let header_read_timeout = sc.header_read_timeout();
        let idle_timeout = sc.idle_timeout();
        let shutdown_grace = sc.shutdown_grace();

        let auth = Authenticator::from_config_with(&config.auth, clock.clone(), &*env, None)
            .map_err(|e| anyhow::anyhow!("[auth]: {e}"))
            .context("invalid configuration")?;
        let gate = Arc::new(
            Gate::with_authenticator(&config, clock, Arc::new(auth), &*env)
                .context("invalid configuration")?,
        );
        if matches!(
            *gate.admin(),
            AdminAccess::Enabled {
                unix_socket_only: true,
                ..
            }
        ) && sc.unix_socket.is_none()
        {
            tracing::warn!(
                "auth.admin.unix_socket_only is set but server.unix_socket is not: the admin API is unreachable"
            );
        }
        // The counts of the previous life, before the cluster starts and any door answers:
        // a restart must not hand every key a fresh quota.
        let snapshot_path = config.limiter.snapshot_path.clone();
        let mut restored_from = None;
        if let Some(path) = &snapshot_path {
            if config.cluster.enabled {
                // Peers still hold the previous life's counts in its generation's slot.
                gate.limiter().hold_back_restored_counts();
            }
            let (g, p) = (gate.clone(), path.clone());
            restored_from = tokio::task::spawn_blocking(move || snapshot::restore(&g, &p))
                .await
                .context("the limiter snapshot restore failed")?;
        }
        let listeners_up = readiness.register("listeners", false);
        let not_draining = readiness.register("not_draining", true);
        // Key sets: fetched and refreshed in the background; not ready until each issuer
        // has one (a token of an issuer without keys cannot be judged).
        gate.authenticator().start();
        let key_set_watchers = KeySetWatchers::default();
        track_key_set_readiness(&gate, &readiness, &key_set_watchers);

        let tcp = match http_listener {
            Some(l) => listener::from_std_tcp(l)?,
            None => listener::bind_tcp(&sc.http, "[server] http")?,
        };
        let http_addr = tcp
            .local_addr()
            .context("the HTTP listener has no address")?;
        let unix = match &sc.unix_socket {
            Some(path) => Some(listener::bind_unix(
                path,
                sc.unix_socket_mode(),
                "[server] unix_socket",
            )?),
            None => None,
        };

        // The cluster layer, when `[cluster] enabled`: started once the gate exists, before
        // any door answers, so the doors can show its report. Its readiness condition
        // (`cluster`) holds once it has its peers' revocations.
        let cluster = if config.cluster.enabled {
            Some(
                crate::cluster::node::start(crate::cluster::node::ClusterStart {
                    gate: gate.clone(),
                    config: &config.cluster,
                    env: &*env,
                    readiness: &readiness,
                    restored_from,
                })
                .await?,
            )
        } else {
            None
        };
        let cluster_status = cluster.as_ref().map(|c| c.status().clone());
        let cluster_addr = cluster.as_ref().map(|c| c.gossip_addr());
        // One memory budget for the buffers of every connection of both doors.
        let budget = Arc::new(budget::ConnectionBudget::new(
            sc.max_connection_buffer_bytes,
            Some(gate.metrics().connection_budget()),
        ));
        let settings = Arc::new(HttpConnSettings {
            budget: budget.clone(),
            ..HttpConnSettings::new(
                header_read_timeout,
                idle_timeout,
                sc.max_header_bytes,
                http_fast_path,
            )
        });
        let shared = Arc::new(HttpShared {
            gate: gate.clone(),
            readiness: readiness.clone(),
            max_uri_bytes: sc.max_uri_bytes,
            endpoints: Endpoints::Main {
                metrics: sc.metrics_on_http,
            },
            cluster: cluster_status.clone(),
        });
        let slots = Arc::new(ConnectionSlots::new(sc.max_connections));
        let controller = Arc::new(ShutdownController::new());
        let mut all_slots = vec![slots.clone()];

        let mut accept_loops = Vec::new();
        accept_loops.push(spawn_http_accept(
            tcp,
            Listener::HttpTcp,
            &gate,
            &slots,
            &controller,
            &shared,
            &settings,
        ));
        // The metrics listener: /metrics, /healthz and /readyz only, through hyper (no fast
        // path: scrapes are not a hot path), with connection slots of its own.
        let metrics_addr = match sc.metrics_addr() {
            Some(addr) => {
                let l = listener::bind_tcp(&addr.to_string(), "[server] metrics")?;
                let bound = l
                    .local_addr()
                    .context("the metrics listener has no address")?;
                let metrics_shared = Arc::new(HttpShared {
                    gate: gate.clone(),
                    readiness: readiness.clone(),
                    max_uri_bytes: sc.max_uri_bytes,
                    endpoints: Endpoints::MetricsOnly,
                    cluster: None,
                });
                let metrics_settings = Arc::new(HttpConnSettings {
                    budget: budget.clone(),
                    ..HttpConnSettings::new(
                        header_read_timeout,
                        idle_timeout,
                        sc.max_header_bytes,
                        false,
                    )
                });
                let metrics_slots = Arc::new(ConnectionSlots::new(METRICS_MAX_CONNECTIONS));
                accept_loops.push(spawn_http_accept(
                    l,
                    Listener::HttpMetrics,
                    &gate,
                    &metrics_slots,
                    &controller,
                    &metrics_shared,
                    &metrics_settings,
                ));
                all_slots.push(metrics_slots);
                Some(bound)
            }
            None => None,
        };
        let unix_socket = unix.as_ref().map(|(_, f)| f.path().to_path_buf());
        let unix_file = unix.map(|(l, file)| {
            accept_loops.push(spawn_http_accept(
                l,
                Listener::HttpUnix,
                &gate,
                &slots,
                &controller,
                &shared,
                &settings,
            ));
            file
        });
        // The RESP door, when `[resp] enabled`: its own listeners and connection cap, the same
        // gate and the same shutdown phases.
        let resp_server = if config.resp.enabled {
            let mut options = resp::RespOptions::from_config(&config)?;
            options.cluster = cluster_status.clone();
            options.budget = Some(budget.clone());
            Some(resp::RespServer::start_with_shutdown(
                gate.clone(),
                options,
                controller.subscribe(),
            )?)
        } else {
            None
        };
        let resp_addr = resp_server.as_ref().and_then(|r| r.tcp_addr());
        let resp_unix_socket = resp_server
            .as_ref()
            .and_then(|r| r.unix_socket().map(Path::to_path_buf));

        tokio::spawn(sweep_periodically(gate.clone(), controller.subscribe()));
        if let Some(path) = &snapshot_path {
            tokio::spawn(snapshot::write_periodically(
                gate.clone(),
                path.clone(),
                config.limiter.snapshot_interval(),
                controller.subscribe(),
            ));
        }
        listeners_up.set(true);
        tracing::info!(
            http = %http_addr,
            metrics = metrics_addr.map(|a| a.to_string()),
            unix_socket = unix_socket.as_ref().map(|p| p.display().to_string()),
            version = env!("CARGO_PKG_VERSION"),
            "tollgate listening"
        );

        let supervisor = tokio::spawn(supervise(
            controller.subscribe(),
            controller.clone(),
            accept_loops,
            all_slots,
            shutdown_grace,
            unix_file,
            OtherDoors {
                resp: resp_server,
                cluster,
                snapshot: snapshot_path.map(|p| (gate.clone(), p)),
            },
        ));
        Ok(ServerHandle {
            gate,
            http_slots: slots,
            budget,
            readiness,
            not_draining,
            http_addr,
            metrics_addr,
            unix_socket,
            resp_addr,
            resp_unix_socket,
            cluster_addr,
            config_path,
            key_set_watchers,
            env,
            controller,
            supervisor,
        })
    }
}

/// Keeps one readiness condition per issuer key set, `keyset:NAME`, for the issuers of the
/// configuration in force: at start, and after a reload (an issuer added is waited for, one
/// removed no longer is).
fn track_key_set_readiness(gate: &Gate, readiness: &Readiness, watchers: &KeySetWatchers) {
    let auth = gate.authenticator();
    let current: Vec<(String, &Arc<IssuerKeys>)> = auth
        .issuer_keys()
        .map(|k| (format!("keyset:{}", k.name()), k))
        .collect();
    readiness.remove_where(|name| {
        name.starts_with("keyset:") && !current.iter().any(|(n, _)| n == name)
    });
    let mut watching = watchers.0.lock();
    // A watcher whose issuer a reload removed, or whose key set it replaced, would wait for
    // keys nobody uses (and hold them): stop it.
    watching.retain(|name, (keys, task)| {
        let still = current
            .iter()
            .any(|(n, k)| n == name && Weak::ptr_eq(keys, &Arc::downgrade(k)));
        if !still {
            task.abort();
        }
        still
    });
    for (name, keys) in current {
        let flag = readiness.register(&name, keys.is_ready());
        if !flag.get() && !watching.contains_key(&name) {
            let task = tokio::spawn(mark_ready_when_keys_arrive(keys.clone(), flag));
            watching.insert(name, (Arc::downgrade(keys), task.abort_handle()));
        }
    }
}

/// A watcher: the key set it waits for, and its task.
type KeySetWatcher = (Weak<IssuerKeys>, AbortHandle);

/// The task per `keyset:NAME` condition that sets it once the issuer's key set arrives,
/// with the key set it waits for.
#[derive(Clone, Default)]
struct KeySetWatchers(Arc<parking_lot::Mutex<HashMap<String, KeySetWatcher>>>);

/// Sets `flag` once the issuer has a key set. A key set, once there, is never taken away
/// (a failed refresh keeps the last good one), so the flag never goes back.
async fn mark_ready_when_keys_arrive(keys: Arc<IssuerKeys>, flag: ReadinessFlag) {
    loop {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        if keys.wait_ready_until(deadline).await {
            flag.set(true);
            return;
        }
    }
}

fn spawn_http_accept<A: listener::Acceptor>(
    acceptor: A,
    kind: Listener,
    gate: &Arc<Gate>,
    slots: &Arc<ConnectionSlots>,
    controller: &ShutdownController,
    shared: &Arc<HttpShared>,
    settings: &Arc<HttpConnSettings>,
) -> JoinHandle<()> {
    let shared = shared.clone();
    let settings = settings.clone();
    tokio::spawn(listener::accept_loop_with_peer(
        acceptor,
        slots.clone(),
        gate.metrics().connections(kind),
        controller.subscribe(),
        move |stream, peer, shutdown, presence| {
            let service = HttpService::new(shared.clone(), peer);
            http::serve_connection(stream, service, settings.clone(), shutdown, presence)
        },
    ))
}

/// A running server.
pub struct ServerHandle {
    gate: Arc<Gate>,
    /// The connection cap of the HTTP listeners (TCP and Unix socket).
    http_slots: Arc<ConnectionSlots>,
    /// The memory budget of every connection's buffers, both doors.
    budget: Arc<budget::ConnectionBudget>,
    readiness: Readiness,
    not_draining: ReadinessFlag,
    http_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    unix_socket: Option<PathBuf>,
    resp_addr: Option<SocketAddr>,
    resp_unix_socket: Option<PathBuf>,
    /// Where the cluster gossips, when `[cluster] enabled`.
    cluster_addr: Option<SocketAddr>,
    config_path: Option<PathBuf>,
    /// The tasks that mark each issuer's key set ready (a reload replaces them).
    key_set_watchers: KeySetWatchers,
    /// Where a reload reads the secrets its configuration names.
    env: EnvLookup,
    controller: Arc<ShutdownController>,
    supervisor: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the HTTP listener is bound to (the real port when `:0` was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The metrics listener's address (`server.metrics`), when one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The Unix socket path, when one is configured.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix_socket.as_deref()
    }

    /// The RESP door's TCP address, when `[resp]` is enabled with a TCP listener.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.resp_addr
    }

    /// The RESP door's Unix socket, when configured.
    pub fn resp_unix_socket(&self) -> Option<&Path> {
        self.resp_unix_socket.as_deref()
    }

    /// The decision core this server asks.
    /// The address the cluster gossips on (UDP) and serves the revocation plane on (TCP),
    /// as bound; `None` when `[cluster]` is off.
    pub fn cluster_addr(&self) -> Option<SocketAddr> {
        self.cluster_addr
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// HTTP connections (TCP and Unix socket) idle now: waiting for their next request, or
    /// their first. At `server.max_connections` the one idle longest makes room.
    pub fn http_idle_connections(&self) -> usize {
        self.http_slots.occupancy().idle()
    }

    /// The memory budget of every connection's buffers, both doors.
    pub fn connection_budget(&self) -> &Arc<budget::ConnectionBudget> {
        &self.budget
    }

    /// The readiness conditions `/readyz` reports.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// What SIGHUP does: re-reads the configuration file and swaps in, at once, its tiers,
    /// limits, routes, policy and `[auth]` (issuers, key sources, API keys, role tiers,
    /// admin access). A file that does not load or validate, or whose `[auth]` cannot be
    /// built (a secret unset, a key file unreadable), is refused and the running
    /// configuration stays entirely. What is read only at start is named in the summary.
    pub fn reload_config_file(&self) -> anyhow::Result<ReloadSummary> {
        let path = self.config_path.as_deref().context(
            "no configuration file to reload: tollgate runs on the embedded default (start it with --config FILE)",
        )?;
        let summary = match crate::gate::compile::load(path) {
            Ok(compiled) => self.gate.reload_compiled(compiled, &*self.env)?,
            Err(e) => {
                self.gate.reload_failed();
                return Err(e.into());
            }
        };
        track_key_set_readiness(&self.gate, &self.readiness, &self.key_set_watchers);
        Ok(summary)
    }

    /// Begins a graceful shutdown and returns at once: listeners close, `/readyz` turns
    /// not-ready, and connections close after their in-flight request.
    pub fn shutdown(&self) {
        self.not_draining.set(false);
        self.controller.advance(Phase::Draining);
    }

    /// Resolves once the server has stopped (after [`shutdown`](Self::shutdown)).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.supervisor
            .await
            .context("the server supervisor task failed")
    }

    /// [`shutdown`](Self::shutdown), then [`wait`](Self::wait).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown();
        self.wait().await
    }
}

/// The doors beside HTTP that a shutdown stops: RESP drains with HTTP; the cluster leaves
/// last.
struct OtherDoors {
    resp: Option<resp::RespServer>,
    cluster: Option<crate::cluster::node::ClusterNode>,
    /// Where the limiter's counts are saved once no request can change them any more.
    snapshot: Option<(Arc<Gate>, PathBuf)>,
}

/// Waits for the shutdown to begin, then for the accept loops to stop, then for connections
/// to finish within the grace period; then closes what is left and removes the socket file.
/// The RESP door (if any) drains alongside, within its own grace.
async fn supervise(
    shutdown: Shutdown,
    controller: Arc<ShutdownController>,
    accept_loops: Vec<JoinHandle<()>>,
    slots: Vec<Arc<ConnectionSlots>>,
    grace: Duration,
    unix_file: Option<UnixSocketFile>,
    doors: OtherDoors,
) {
    let OtherDoors {
        resp: resp_server,
        cluster,
        snapshot,
    } = doors;
    shutdown.clone().draining().await;
    let http = async {
        for l in accept_loops {
            let _ = l.await;
        }
        // Listeners are closed: the socket file can go now, before the grace period.
        drop(unix_file);
        let open: usize = slots.iter().map(|s| s.open()).sum();
        if open > 0 {
            tracing::info!(open, "draining: waiting for in-flight requests");
        }
        if tokio::time::timeout(grace, all_closed(&slots))
            .await
            .is_err()
        {
            tracing::warn!(
                open = slots.iter().map(|s| s.open()).sum::<usize>(),
                grace_ms = grace.as_millis() as u64,
                "shutdown grace period over; closing the remaining connections"
            );
        }
    };
    let resp = async {
        if let Some(mut r) = resp_server {
            r.drain().await;
            Some(r)
        } else {
            None
        }
    };
    let ((), resp_server) = tokio::join!(http, resp);
    controller.advance(Phase::Closing);
    if let Some(r) = &resp_server {
        let _ = tokio::time::timeout(Duration::from_secs(1), r.door().all_closed()).await;
    }
    // Connection tasks drop their connection as soon as they see `Closing`; this only waits
    // for them to do so, bounded in case a task is stuck in a blocking call.
    let _ = tokio::time::timeout(Duration::from_secs(1), all_closed(&slots)).await;
    // The drain is over and no request can change a count here any more: save them for the
    // next start (before leaving the cluster, so a node restarting at once finds them).
    if let Some((gate, path)) = snapshot {
        snapshot::write_logged(gate, path, "shutdown").await;
    }
    // Last, once no request can be admitted here any more: leave the cluster, so peers drop
    // this node at once (what it admitted keeps counting on them).
    if let Some(c) = cluster {
        let _ = tokio::time::timeout(Duration::from_secs(2), c.leave()).await;
    }
    tracing::info!("tollgate stopped");
}

/// Resolves when every listener's connections have closed.
async fn all_closed(slots: &[Arc<ConnectionSlots>]) {
    for s in slots {
        s.all_closed().await;
    }
}

async fn sweep_periodically(gate: Arc<Gate>, shutdown: Shutdown) {
    let draining = shutdown.draining();
    tokio::pin!(draining);
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; nothing to sweep at start
    loop {
        tokio::select! {
            _ = &mut draining => return,
            _ = tick.tick() => {
                // A sweep walks every shard: keep it off the workers that serve requests.
                let g = gate.clone();
                let _ = tokio::task::spawn_blocking(move || g.sweep()).await;
            }
        }
    }
}

/// Runs every configured listener until SIGTERM/SIGINT; reloads `config_path` on SIGHUP.
///
/// Call it on a multi-thread runtime with one worker per core (tokio's default for
/// `#[tokio::main]`). A second SIGTERM/SIGINT during the drain closes the remaining
/// connections at once.
pub async fn run(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;

    let mut builder = ServerBuilder::new(config);
    if let Some(p) = config_path {
        builder = builder.config_path(p);
    }
    let server = builder.start().await?;

    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => match server.reload_config_file() {
                Ok(summary) => tracing::info!(%summary, "SIGHUP: configuration reloaded"),
                Err(e) => tracing::error!(
                    error = %format!("{e:#}"),
                    "SIGHUP: configuration refused; the running configuration stays"
                ),
            },
        }
    }
    server.shutdown();
    let controller = server.controller.clone();
    let wait = server.wait();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            res = &mut wait => return res,
            _ = term.recv() => controller.advance(Phase::Closing),
            _ = int.recv() => controller.advance(Phase::Closing),
        }
    }
}
