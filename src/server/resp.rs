//! The RESP door: tollgate's commands over the Redis wire format, on TCP and a Unix socket.
//!
//! This file owns the connections of the protocol and its commands (docs/protocol.md): it
//! parses each command into request facts, asks the [`Gate`], and writes the answer. It
//! decides nothing itself.
//!
//! A connection runs one loop, which is what makes pipelining cheap:
//!
//! ```text
//! read as much as the socket has ─► parse every complete command in the buffer ─► execute
//!        ▲                          (zero-copy: arguments are slices of the buffer)  each into
//!        │                                                                          one output
//!        └──────────────────── one write of every reply of the batch ◄──────────── buffer
//! ```
//!
//! Replies therefore come back in order, and a batch of 16 pipelined `CHECK`s costs one read
//! and one write. When the replies waiting in the output buffer pass
//! `resp.max_pending_reply_bytes`, the loop writes them before executing (or reading) any
//! more, so a client that pipelines without reading cannot grow tollgate's memory: it is
//! stalled by TCP flow control instead, and closed by the idle timeout if it never reads.
//!
//! A framing error (bad type byte, bad length, a bound exceeded) gets its error reply after
//! the replies of the commands before it, then the connection is closed: the position in
//! the stream is lost. A command error (`-ERR unknown command`, wrong arguments, an unknown
//! tier) leaves the connection usable.
//!
//! The accept loop, connection cap, idle timeout and shutdown phases are the ones every door
//! shares (`listener`). [`RespServer`] binds the `[resp]` listeners and serves them;
//! [`serve_resp`] is the accept loop for one listener of any kind.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::idle_poll::{self, LoopStats};
use super::listener::{
    self, Acceptor, ConnectionSlots, IdleTimeout, Phase, Shutdown, ShutdownController,
    UnixSocketFile,
};
use crate::auth::AuthInput;
use crate::config::Config;
use crate::gate::{
    grammar, retry_after, AccessDecision, AccessOutcome, AccessQuery, AdminCaller, AdminCredential,
    AdminProof, AdminRefusal, CheckError, CheckQuery, Gate, RevokeError, RevokeRequest, Revoked,
};
use crate::metrics::Listener;
use crate::policy::Peer;
use crate::resp::frame::{self, Frame, Protocol};
use crate::resp::{Args, ParseError, Parsed, RequestLimits, RequestParser};

/// Bytes the read buffer makes room for before each read.
const READ_CHUNK: usize = 16 * 1024;

/// Buffers that grew past this for one large command or batch are given back afterwards,
/// so that ten thousand idle connections do not each keep their high-water mark.
const KEEP_BUFFER: usize = 64 * 1024;

/// Longest client name kept (`CLIENT SETNAME`, `HELLO … SETNAME`).
const MAX_CLIENT_NAME: usize = 128;

/// Everything a RESP listener needs besides the gate. [`RespOptions::from_config`] reads it
/// from `[resp]` (and `[auth.admin]`); tests adjust the fields.
#[derive(Debug)]
pub struct RespOptions {
    /// TCP address to listen on; `None` for no TCP listener.
    pub tcp: Option<String>,
    /// Unix socket to listen on, and its file mode (octal text).
    pub unix_socket: Option<PathBuf>,
    pub unix_socket_mode: String,
    pub limits: RequestLimits,
    pub max_pending_reply_bytes: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Connections still open this long after a shutdown began are dropped.
    pub shutdown_grace: Duration,
    /// Event-loop threads of the door's own; 0 serves it on the caller's runtime.
    pub threads: usize,
    /// How long an event loop that is at least half busy polls for work before it sleeps
    /// (`resp.idle_poll_us`, [`idle_poll`]); zero never polls.
    pub idle_poll: Duration,
}

impl RespOptions {
    /// Reads `[resp]` (who may run admin commands is the gate's: `[auth.admin]`).
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let rc = &config.resp;
        Ok(Self {
            tcp: rc.tcp_addr().map(|a| a.to_string()),
            unix_socket: rc.unix_socket.clone(),
            unix_socket_mode: rc.unix_socket_mode.clone(),
            limits: rc.request_limits(),
            max_pending_reply_bytes: rc.max_pending_reply_bytes,
            max_connections: rc.max_connections,
            idle_timeout: rc.idle_timeout(),
            shutdown_grace: config.server.shutdown_grace(),
            threads: rc.threads,
            idle_poll: rc.idle_poll(idle_poll::cpu_quota_cores()),
        })
    }
}

/// Shards of the `INFO` counters. A connection always adds to the same shard (by its id),
/// once per batch; each shard sits on its own 128 bytes (a cache line and the one the CPU
/// prefetches with it), so two connections on different cores rarely touch the same line,
/// where one shared counter would bounce between cores on every unpipelined command
/// (measured with benches/resp.sh; docs/benchmarks.md).
const STAT_SHARDS: usize = 16;

/// One shard of the counters `INFO` reports.
#[derive(Debug, Default)]
#[repr(align(128))]
struct StatShard {
    commands: AtomicU64,
    checks_allowed: AtomicU64,
    checks_denied: AtomicU64,
    command_errors: AtomicU64,
    protocol_errors: AtomicU64,
    auth_failures: AtomicU64,
    verifies_allowed: AtomicU64,
    verifies_refused: AtomicU64,
    revocations: AtomicU64,
}

/// Counters `INFO` reports.
#[derive(Debug)]
struct RespStats {
    connections: AtomicU64,
    shards: [StatShard; STAT_SHARDS],
}

impl Default for RespStats {
    fn default() -> Self {
        Self {
            connections: AtomicU64::new(0),
            shards: std::array::from_fn(|_| StatShard::default()),
        }
    }
}

/// One batch's counts, kept in the connection until the batch ends.
#[derive(Debug, Default, Clone, Copy)]
struct BatchCounts {
    commands: u64,
    checks_allowed: u64,
    checks_denied: u64,
    command_errors: u64,
    protocol_errors: u64,
    auth_failures: u64,
    verifies_allowed: u64,
    verifies_refused: u64,
    revocations: u64,
}

impl RespStats {
    /// Adds one batch's counts of connection `id`.
    fn add(&self, id: u64, c: &BatchCounts) {
        let shard = &self.shards[id as usize % STAT_SHARDS];
        let add = |a: &AtomicU64, n: u64| {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&shard.commands, c.commands);
        add(&shard.checks_allowed, c.checks_allowed);
        add(&shard.checks_denied, c.checks_denied);
        add(&shard.command_errors, c.command_errors);
        add(&shard.protocol_errors, c.protocol_errors);
        add(&shard.auth_failures, c.auth_failures);
        add(&shard.verifies_allowed, c.verifies_allowed);
        add(&shard.verifies_refused, c.verifies_refused);
        add(&shard.revocations, c.revocations);
    }

    /// One counter summed over the shards.
    fn total(&self, field: impl Fn(&StatShard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .sum()
    }
}

/// Every open connection's own phase channel, and the phase they were last told.
///
/// Why not let each connection watch the server's [`Shutdown`] directly: that channel is one
/// lock and one waiter list shared by every connection, and a connection consults it on every
/// round trip (is the server draining? wake me when it does), so on an unpipelined load each
/// command bounced those cache lines between cores. Here the server's phases are fanned out
/// once, by one task, to a channel per connection that only that connection polls.
#[derive(Default)]
struct PhaseRegistry {
    phase: Option<Phase>,
    conns: HashMap<u64, watch::Sender<Phase>>,
}

/// Unregisters a connection however its task ends.
struct Registered<'a> {
    door: &'a DoorShared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.door.phases.lock().conns.remove(&self.id);
    }
}

/// What every connection of one RESP server shares. Cheap to clone.
#[derive(Clone)]
pub struct RespDoor(Arc<DoorShared>);

struct DoorShared {
    gate: Arc<Gate>,
    options: RespOptions,
    slots: Arc<ConnectionSlots>,
    stats: RespStats,
    /// What the event-loop threads report (idle polling).
    loops: Arc<LoopStats>,
    started: Instant,
    next_client_id: AtomicU64,
    /// The bound listeners, for `INFO` (filled in once bound).
    listening: parking_lot::Mutex<Vec<String>>,
    phases: parking_lot::Mutex<PhaseRegistry>,
    /// Set once a task fans the server's phases out to the connections.
    following: std::sync::atomic::AtomicBool,
}

impl DoorShared {
    /// A phase channel for connection `id`, starting at the phase the door is in.
    fn register(&self, id: u64) -> (Registered<'_>, watch::Receiver<Phase>) {
        let mut r = self.phases.lock();
        let (tx, rx) = watch::channel(r.phase.unwrap_or(Phase::Running));
        r.conns.insert(id, tx);
        (Registered { door: self, id }, rx)
    }

    /// Tells every connection (and every later one) that the server is now in `phase`.
    fn broadcast(&self, phase: Phase) {
        let mut r = self.phases.lock();
        if r.phase.is_some_and(|p| p >= phase) {
            return;
        }
        r.phase = Some(phase);
        for tx in r.conns.values() {
            tx.send_replace(phase);
        }
    }
}

/// Fans the server's shutdown phases out to the door's connections (see [`PhaseRegistry`]).
async fn follow_phases(door: RespDoor, shutdown: Shutdown) {
    shutdown.clone().draining().await;
    door.0.broadcast(Phase::Draining);
    shutdown.closing().await;
    door.0.broadcast(Phase::Closing);
}

impl RespDoor {
    /// A door deciding with `gate`, under `options`' bounds.
    pub fn new(gate: Arc<Gate>, options: RespOptions) -> Self {
        let slots = Arc::new(ConnectionSlots::new(options.max_connections));
        let loops = Arc::new(gate.metrics().event_loop_stats());
        Self(Arc::new(DoorShared {
            gate,
            options,
            slots,
            stats: RespStats::default(),
            loops,
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
            listening: parking_lot::Mutex::new(Vec::new()),
            phases: parking_lot::Mutex::new(PhaseRegistry::default()),
            following: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// RESP connections open now.
    pub fn open_connections(&self) -> usize {
        self.0.slots.open()
    }

    /// Resolves once no RESP connection is open.
    pub async fn all_closed(&self) {
        self.0.slots.all_closed().await
    }
}

/// Accepts RESP connections on `acceptor` until the server drains, each served on its own
/// task under the door's connection cap. Works for any listener ([`tokio::net::TcpListener`],
/// [`tokio::net::UnixListener`]); `kind` labels its connection metrics and tells the admin
/// check whether the connection came over the Unix socket.
pub async fn serve_resp<A>(acceptor: A, kind: Listener, door: RespDoor, shutdown: Shutdown)
where
    A: Acceptor,
    A::Stream: PeerAddress,
{
    let via_unix = kind == Listener::RespUnix;
    // One task per door carries the phases to the connections, however many listeners.
    if !door.0.following.swap(true, Ordering::AcqRel) {
        tokio::spawn(follow_phases(door.clone(), shutdown.clone()));
    }
    let metrics = door.0.gate.metrics().connections(kind);
    let slots = door.0.slots.clone();
    listener::accept_loop(
        acceptor,
        slots,
        metrics,
        shutdown,
        move |stream, _shutdown| {
            let peer = if via_unix {
                Some(Peer::Unix)
            } else {
                stream.peer_ip().map(Peer::Ip)
            };
            serve_connection(stream, door.clone(), peer)
        },
    )
    .await
}

/// The address of the other end of an accepted connection, which `VERIFY` needs: the
/// client IP it is given is believed only from a trusted proxy (docs/protocol.md).
pub trait PeerAddress {
    /// The peer's IP address; `None` for a Unix socket, or when the kernel no longer knows
    /// it (the peer already reset the connection).
    fn peer_ip(&self) -> Option<IpAddr>;
}

impl PeerAddress for tokio::net::TcpStream {
    fn peer_ip(&self) -> Option<IpAddr> {
        self.peer_addr().ok().map(|a| a.ip().to_canonical())
    }
}

impl PeerAddress for tokio::net::UnixStream {
    fn peer_ip(&self) -> Option<IpAddr> {
        None
    }
}

/// A running RESP server: the `[resp]` listeners, bound and served.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use std::sync::Arc;
/// use tollgate::{clock::SystemClock, config::Config, gate::Gate};
/// use tollgate::server::resp::{RespOptions, RespServer};
///
/// let mut config = Config::embedded();
/// config.resp.enabled = true;
/// config.resp.tcp = "127.0.0.1:0".into(); // any free port
/// let gate = Arc::new(Gate::new(&config, Arc::new(SystemClock))?);
/// let options = RespOptions::from_config(&config)?;
/// let server = RespServer::start(gate, options)?;
/// println!("RESP on {}", server.tcp_addr().unwrap());
/// server.stop().await;
/// # Ok(()) }
/// ```
pub struct RespServer {
    door: RespDoor,
    tcp_addr: Option<SocketAddr>,
    unix_socket: Option<PathBuf>,
    /// One per accept loop, or per event-loop thread: done once it stopped accepting.
    accept_loops: Vec<JoinHandle<()>>,
    /// One per event-loop thread: fires when the thread has ended.
    loops: Vec<tokio::sync::oneshot::Receiver<()>>,
    unix_file: Option<UnixSocketFile>,
    /// Present when this server runs on its own (`start`), absent when it follows the
    /// shutdown phases of the server it is part of (`start_with_shutdown`).
    controller: Option<Arc<ShutdownController>>,
}

impl RespServer {
    /// Binds the listeners `options` name and serves them until [`stop`](Self::stop).
    /// Must be called inside a tokio runtime.
    pub fn start(gate: Arc<Gate>, options: RespOptions) -> anyhow::Result<Self> {
        let controller = Arc::new(ShutdownController::new());
        let mut server = Self::start_with_shutdown(gate, options, controller.subscribe())?;
        server.controller = Some(controller);
        Ok(server)
    }

    /// Binds and serves, following the shutdown phases of an enclosing server: the accept
    /// loops stop when it drains, connections finish their batch and close, and whatever is
    /// still open is dropped when it closes.
    pub fn start_with_shutdown(
        gate: Arc<Gate>,
        options: RespOptions,
        shutdown: Shutdown,
    ) -> anyhow::Result<Self> {
        let tcp = match &options.tcp {
            Some(addr) => {
                let l = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("cannot listen on {addr} (resp.tcp)"))?;
                Some(listener::from_std_tcp(l)?)
            }
            None => None,
        };
        let unix = match &options.unix_socket {
            Some(path) => Some(
                listener::bind_unix(path, &options.unix_socket_mode).context("resp.unix_socket")?,
            ),
            None => None,
        };
        let tcp_addr = match &tcp {
            Some(l) => Some(l.local_addr().context("the RESP listener has no address")?),
            None => None,
        };
        let threads = options.threads;
        let door = RespDoor::new(gate, options);
        let mut listening = Vec::new();
        if let Some(a) = tcp_addr {
            listening.push(format!("tcp:{a}"));
        }
        let (unix, unix_file) = match unix {
            Some((l, file)) => {
                listening.push(format!("unix:{}", file.path().display()));
                (Some(l), Some(file))
            }
            None => (None, None),
        };
        let mut accept_loops = Vec::new();
        let mut loops = Vec::new();
        if threads == 0 {
            // On the server's runtime, beside the HTTP door.
            if let Some(l) = tcp {
                let f = serve_resp(l, Listener::RespTcp, door.clone(), shutdown.clone());
                accept_loops.push(tokio::spawn(f));
            }
            if let Some(l) = unix {
                let f = serve_resp(l, Listener::RespUnix, door.clone(), shutdown.clone());
                accept_loops.push(tokio::spawn(f));
            }
        } else {
            let tcp = tcp.map(|l| l.into_std()).transpose()?;
            let unix = unix.map(|l| l.into_std()).transpose()?;
            for i in 0..threads {
                let l = EventLoop::start(i, tcp.as_ref(), unix.as_ref(), &door, &shutdown)?;
                accept_loops.push(l.accepting);
                loops.push(l.exited);
            }
        }
        *door.0.listening.lock() = listening;
        let unix_socket = unix_file.as_ref().map(|f| f.path().to_path_buf());
        tracing::info!(
            tcp = tcp_addr.map(|a| a.to_string()),
            unix_socket = unix_socket.as_ref().map(|p| p.display().to_string()),
            idle_poll_us = if threads == 0 {
                0
            } else {
                door.0.options.idle_poll.as_micros() as u64
            },
            "RESP protocol listening"
        );
        Ok(Self {
            door,
            tcp_addr,
            unix_socket,
            accept_loops,
            loops,
            unix_file,
            controller: None,
        })
    }

    /// The bound TCP address (the real port when `:0` was asked for).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The Unix socket path, when one is configured.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix_socket.as_deref()
    }

    /// The door (shared state) this server's connections run on.
    pub fn door(&self) -> &RespDoor {
        &self.door
    }

    /// Begins a graceful shutdown of a server started with [`start`](Self::start): the
    /// listeners close and every connection closes once it has answered what it read. (A
    /// server started with `start_with_shutdown` follows its enclosing server instead.)
    pub fn shutdown(&self) {
        if let Some(c) = &self.controller {
            c.advance(Phase::Draining);
        }
    }

    /// Waits until the listeners are closed and every connection has finished, up to the
    /// shutdown grace; then drops what is left and removes the socket file.
    pub async fn stop(mut self) {
        self.shutdown();
        self.drain().await;
        if let Some(c) = &self.controller {
            c.advance(Phase::Closing);
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.door.all_closed()).await;
        // The event-loop threads end once their connections have.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        for exited in self.loops.drain(..) {
            let _ = tokio::time::timeout_at(deadline, exited).await;
        }
    }

    /// For the enclosing server's supervisor: once the shutdown began, waits for the accept
    /// loops, removes the socket file, then waits for the connections within the grace
    /// period. Does not move to `Closing`; the caller does.
    pub async fn drain(&mut self) {
        for l in self.accept_loops.drain(..) {
            let _ = l.await;
        }
        drop(self.unix_file.take());
        let grace = self.door.0.options.shutdown_grace;
        if tokio::time::timeout(grace, self.door.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.door.open_connections(),
                "RESP shutdown grace period over; closing the remaining connections"
            );
        }
    }
}

/// One event-loop thread of the door (`[resp] threads`): a single-threaded runtime that
/// accepts on its own registration of the listeners and keeps every connection it accepts.
///
/// Why: on the server's shared work-stealing runtime, a command arriving for an idle
/// connection often woke a second worker thread to steal it, and each such wake is a
/// context switch: measured with `perf stat` under `redis-benchmark -P 1`, three times as
/// many context switches per command as redis-server and about 10 % more CPU per command
/// (benches/resp.sh; docs/protocol.md#performance). On a thread of its own a connection is
/// read, decided and answered where its readiness arrives, as in Redis's event loop.
/// Several threads share the listening sockets; whichever is free first accepts.
struct EventLoop {
    /// Done when the thread stopped accepting (the server drains).
    accepting: JoinHandle<()>,
    /// Fires when the thread has ended: its connections closed, or were dropped when the
    /// server closed.
    exited: tokio::sync::oneshot::Receiver<()>,
}

impl EventLoop {
    /// Starts event-loop thread `i` on its own clones of the listeners. Must be called in
    /// a runtime (the accepting handle is a task there).
    fn start(
        i: usize,
        tcp: Option<&std::net::TcpListener>,
        unix: Option<&std::os::unix::net::UnixListener>,
        door: &RespDoor,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        let shared = &door.0;
        let rt = idle_poll::install(
            tokio::runtime::Builder::new_current_thread().enable_all(),
            shared.options.idle_poll,
            shared.loops.clone(),
        )
        .build()
        .context("cannot start a RESP event loop")?;
        // Registered with this thread's runtime here, so that a failure stops the start.
        let (tcp, unix) = {
            let _in_rt = rt.enter();
            let tcp = match tcp {
                Some(l) => Some(tokio::net::TcpListener::from_std(l.try_clone()?)?),
                None => None,
            };
            let unix = match unix {
                Some(l) => Some(tokio::net::UnixListener::from_std(l.try_clone()?)?),
                None => None,
            };
            (tcp, unix)
        };
        let (accepting_tx, accepting_rx) = tokio::sync::oneshot::channel::<()>();
        let (exited_tx, exited_rx) = tokio::sync::oneshot::channel::<()>();
        let (door, shutdown) = (door.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name(format!("tollgate-resp-{i}"))
            .spawn(move || {
                rt.block_on(async {
                    tokio::spawn(idle_poll::poke());
                    let tcp = async {
                        if let Some(l) = tcp {
                            serve_resp(l, Listener::RespTcp, door.clone(), shutdown.clone()).await
                        }
                    };
                    let unix = async {
                        if let Some(l) = unix {
                            serve_resp(l, Listener::RespUnix, door.clone(), shutdown.clone()).await
                        }
                    };
                    tokio::join!(tcp, unix);
                    let _ = accepting_tx.send(());
                    // Draining: connections finish what they read. Once the server closes,
                    // whatever is still open is dropped with the runtime.
                    tokio::select! {
                        _ = door.all_closed() => {}
                        _ = shutdown.closing() => {}
                    }
                });
                drop(rt);
                let _ = exited_tx.send(());
            })
            .context("cannot start a RESP event-loop thread")?;
        let accepting = tokio::spawn(async move {
            let _ = accepting_rx.await;
        });
        Ok(Self {
            accepting,
            exited: exited_rx,
        })
    }
}

// ------------------------------------------------------------------------------------------
// One connection

/// What a command asks of the connection loop.
enum Flow<'a> {
    Continue,
    /// Write the replies so far, then close (`QUIT`).
    Close,
    /// The command's arguments are valid and its answer needs work that may wait
    /// ([`settle`]); the loop finishes it before the next command, so replies stay in order.
    Await(Work<'a>),
}

/// The part of a command that may wait, with its validated arguments.
enum Work<'a> {
    /// `VERIFY`: the access decision, which waits only for a key-set refetch when the token
    /// names an unknown key id.
    Verify(VerifyArgs<'a>),
    /// `REVOKE`: a write to the revocation log with an fsync, run on the blocking pool.
    Revoke(RevokeRequest),
}

/// The arguments of a `VERIFY`, parsed.
struct VerifyArgs<'a> {
    /// The credentials: the token argument as received.
    credentials: AuthInput<'a>,
    method: &'a str,
    uri: &'a [u8],
    /// The client address the decision is made for (see [`Conn::verify`]).
    client_ip: Option<IpAddr>,
}

/// What a [`Work`] came to.
enum Settled {
    Verify(Result<AccessDecision, CheckError>),
    Revoke(Result<Revoked, RevokeError>),
}

/// Does the waiting part of a command. Borrows nothing of the connection, so the loop can
/// write earlier replies while it waits.
async fn settle(work: Work<'_>, door: &DoorShared) -> Settled {
    match work {
        Work::Verify(v) => {
            let query = AccessQuery {
                method: v.method,
                uri: v.uri,
                credentials: v.credentials,
                client_ip: v.client_ip,
                headers: None,
            };
            Settled::Verify(door.gate.authorize(&query).await)
        }
        // The gate writes on the blocking pool (an fsync); the connection waits for it (its
        // later replies stay in order), others do not.
        Work::Revoke(request) => Settled::Revoke(door.gate.revoke(&request).await),
    }
}

/// The state of one connection.
struct Conn {
    id: u64,
    protocol: Protocol,
    /// `AUTH` with the admin secret succeeded: the gate's proof of it.
    admin: Option<AdminProof>,
    via_unix: bool,
    /// The other end: `Unix`, an IP, or `None` when unknown (never trusted).
    peer: Option<Peer>,
    name: Option<String>,
}

/// Writes `wbuf` out in one write (giving its memory back when a large batch grew it);
/// false when the connection is finished (a write error, or the server closing while the
/// client does not read).
async fn write_replies<W: AsyncWrite + Unpin>(
    io: &mut W,
    wbuf: &mut BytesMut,
    phase: &mut watch::Receiver<Phase>,
) -> bool {
    tokio::select! {
        biased;
        res = io.write_all(wbuf) => if res.is_err() { return false },
        // Only consulted while the client is not reading its replies.
        _ = phase.wait_for(|p| *p >= Phase::Closing) => return false,
    }
    wbuf.clear();
    if wbuf.capacity() > KEEP_BUFFER {
        *wbuf = BytesMut::with_capacity(READ_CHUNK);
    }
    true
}

/// Finishes a command that may wait ([`Flow::Await`]) and writes its reply after those
/// before it. Nearly always it is decided at once (a `VERIFY` whose key id is known); when it
/// waits (a key-set refetch, a revocation's fsync), the replies already in `wbuf` are written
/// first, so only the commands after it wait with it. False when the connection is finished.
async fn finish_work<W: AsyncWrite + Unpin>(
    work: Work<'_>,
    conn: &mut Conn,
    door: &DoorShared,
    io: &mut W,
    wbuf: &mut BytesMut,
    phase: &mut watch::Receiver<Phase>,
    counts: &mut BatchCounts,
) -> bool {
    let settling = settle(work, door);
    tokio::pin!(settling);
    let first = std::future::poll_fn(|cx| Poll::Ready(settling.as_mut().poll(cx))).await;
    let settled = match first {
        Poll::Ready(s) => s,
        Poll::Pending => {
            if !wbuf.is_empty() && !write_replies(io, wbuf, phase).await {
                return false;
            }
            tokio::select! {
                biased;
                s = &mut settling => s,
                _ = phase.wait_for(|p| *p >= Phase::Closing) => return false,
            }
        }
    };
    conn.reply_settled(settled, wbuf, counts);
    true
}

async fn serve_connection<S>(stream: S, door: RespDoor, peer: Option<Peer>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = &*door.0;
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let opts = &shared.options;
    let mut io = IdleTimeout::new(stream, opts.idle_timeout);
    let mut conn = Conn {
        id: shared.next_client_id.fetch_add(1, Ordering::Relaxed),
        protocol: Protocol::Resp2,
        admin: None,
        via_unix: peer == Some(Peer::Unix),
        peer,
        name: None,
    };
    let mut parser = RequestParser::new(opts.limits);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let (_registered, mut phase) = shared.register(conn.id);

    loop {
        // Execute every complete command read so far, up to the pending-reply bound.
        let mut counts = BatchCounts::default();
        let mut pos = 0;
        let mut close = false;
        let mut more_pending = false;
        loop {
            if wbuf.len() >= opts.max_pending_reply_bytes {
                more_pending = true;
                break;
            }
            let flow = match parser.parse(&rbuf[pos..]) {
                Ok(Parsed::Command { args, consumed }) => {
                    pos += consumed;
                    if args.is_empty() {
                        continue;
                    }
                    counts.commands += 1;
                    conn.execute(&args, shared, &mut wbuf, &mut counts)
                }
                Ok(Parsed::Incomplete) => break,
                Err(e) => {
                    counts.protocol_errors += 1;
                    put_protocol_error(&mut wbuf, &e);
                    close = true;
                    break;
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    close = true;
                    break;
                }
                Flow::Await(work) => {
                    // Boxed, so that the state of this rare path (a key-set fetch) is not
                    // part of every connection's future: inline, it made that future 2.4 KB
                    // instead of 0.6 KB, and pipelined CHECKs measurably slower.
                    let finished = Box::pin(finish_work(
                        work,
                        &mut conn,
                        shared,
                        &mut io,
                        &mut wbuf,
                        &mut phase,
                        &mut counts,
                    ))
                    .await;
                    if !finished {
                        shared.stats.add(conn.id, &counts);
                        return;
                    }
                }
            }
        }
        rbuf.advance(pos);
        shared.stats.add(conn.id, &counts);
        idle_poll::note_work();

        // One write for the whole batch.
        if !wbuf.is_empty() && !write_replies(&mut io, &mut wbuf, &mut phase).await {
            return;
        }
        if close {
            let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
            return;
        }
        if more_pending {
            continue;
        }
        if *phase.borrow() >= Phase::Draining {
            // Everything read has been answered; a partial command is abandoned.
            return;
        }
        if rbuf.is_empty() && rbuf.capacity() > KEEP_BUFFER {
            rbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        rbuf.reserve(READ_CHUNK);
        tokio::select! {
            biased;
            res = io.read_buf(&mut rbuf) => match res {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            // Any change of phase is at least `Draining` (or the door is gone).
            _ = phase.changed() => return,
        }
    }
}

fn put_protocol_error(out: &mut BytesMut, e: &ParseError) {
    let mut msg = String::with_capacity(64);
    let _ = write!(msg, "ERR {e}");
    frame::put_error(out, &msg);
}

// ------------------------------------------------------------------------------------------
// Commands

/// Case-insensitive comparison of a command or option name.
#[inline]
fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// A command name or argument as it may appear in an error message: lossy text, without
/// CR/LF (the encoder replaces those anyway) and cut to a readable length.
fn shown(arg: &[u8]) -> String {
    let cut = &arg[..arg.len().min(64)];
    String::from_utf8_lossy(cut).replace(['\r', '\n'], " ")
}

fn wrong_arity(out: &mut BytesMut, name: &str, counts: &mut BatchCounts) {
    counts.command_errors += 1;
    let mut msg = String::with_capacity(64);
    let _ = write!(msg, "ERR wrong number of arguments for '{name}' command");
    frame::put_error(out, &msg);
}

fn err(out: &mut BytesMut, msg: &str, counts: &mut BatchCounts) {
    counts.command_errors += 1;
    frame::put_error(out, msg);
}

/// A decimal integer argument, as Redis reads them (no spaces, no `+`).
fn int_arg(arg: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.starts_with('+') {
        return None;
    }
    s.parse().ok()
}

const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const ERR_SYNTAX: &str = "ERR syntax error";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// The commands tollgate answers, for `COMMAND COUNT` / `COMMAND LIST`.
const COMMANDS: [&str; 14] = [
    "auth", "check", "client", "command", "echo", "hello", "info", "ping", "quit", "reset",
    "revoke", "select", "verify", "config",
];

impl Conn {
    /// Executes one command, writing its reply into `out`; or, for a command whose answer
    /// may wait, checks its arguments and hands the rest back as [`Flow::Await`].
    fn execute<'a>(
        &mut self,
        args: &Args<'a>,
        door: &DoorShared,
        out: &mut BytesMut,
        counts: &mut BatchCounts,
    ) -> Flow<'a> {
        let name = args[0];
        // The hot command first.
        if is(name, "CHECK") {
            self.check(args, door, out, counts);
            return Flow::Continue;
        }
        if is(name, "PING") {
            match args.len() {
                1 => out.extend_from_slice(b"+PONG\r\n"),
                2 => frame::put_bulk(out, args[1]),
                _ => wrong_arity(out, "ping", counts),
            }
        } else if is(name, "ECHO") {
            if args.len() == 2 {
                frame::put_bulk(out, args[1]);
            } else {
                wrong_arity(out, "echo", counts);
            }
        } else if is(name, "QUIT") {
            out.extend_from_slice(b"+OK\r\n");
            return Flow::Close;
        } else if is(name, "AUTH") {
            self.auth(args, door, out, counts);
        } else if is(name, "HELLO") {
            self.hello(args, door, out, counts);
        } else if is(name, "VERIFY") {
            if let Some(v) = self.verify(args, door, out, counts) {
                return Flow::Await(Work::Verify(v));
            }
        } else if is(name, "REVOKE") {
            if let Some(r) = self.revoke(args, door, out, counts) {
                return Flow::Await(Work::Revoke(r));
            }
        } else if is(name, "INFO") {
            self.info(args, door, out, counts);
        } else if is(name, "COMMAND") {
            self.command(args, out, counts);
        } else if is(name, "CLIENT") {
            self.client(args, out, counts);
        } else if is(name, "SELECT") {
            // Clients configured with a database number send this; tollgate has one.
            match args.len() {
                2 => match int_arg(args[1]) {
                    Some(0) => out.extend_from_slice(b"+OK\r\n"),
                    Some(_) => err(out, "ERR DB index is out of range", counts),
                    None => err(out, ERR_NOT_INTEGER, counts),
                },
                _ => wrong_arity(out, "select", counts),
            }
        } else if is(name, "RESET") {
            if args.len() == 1 {
                self.protocol = Protocol::Resp2;
                self.admin = None;
                self.name = None;
                out.extend_from_slice(b"+RESET\r\n");
            } else {
                wrong_arity(out, "reset", counts);
            }
        } else if is(name, "CONFIG") {
            // redis-benchmark asks `CONFIG GET save` / `appendonly` to print them; tollgate's
            // configuration is not Redis's, so every parameter reads as absent.
            if args.len() >= 3 && is(args[1], "GET") {
                frame::put_empty_map(out, self.protocol);
            } else if args.len() >= 2 && is(args[1], "GET") {
                wrong_arity(out, "config|get", counts);
            } else {
                let sub = args.get(1).map_or(String::new(), |a| shown(a));
                err(
                    out,
                    &format!("ERR unknown subcommand '{sub}'. Try CONFIG GET."),
                    counts,
                );
            }
        } else {
            let mut msg = String::with_capacity(96);
            let _ = write!(
                msg,
                "ERR unknown command '{}', with args beginning with:",
                shown(name)
            );
            for a in args.iter().skip(1).take(4) {
                let _ = write!(msg, " '{}'", shown(a));
            }
            err(out, &msg, counts);
        }
        Flow::Continue
    }

    /// `CHECK <key> <tier> [HITS n] [LIMIT name] [WITHNAME]` →
    /// `[allowed, limit, remaining, reset_s, retry_after_s]` (+ the deciding limit's name).
    fn check(
        &mut self,
        args: &Args<'_>,
        door: &DoorShared,
        out: &mut BytesMut,
        counts: &mut BatchCounts,
    ) {
        if args.len() < 3 {
            return wrong_arity(out, "check", counts);
        }
        let Ok(key) = std::str::from_utf8(args[1]) else {
            return err(out, "ERR the key must be UTF-8 text", counts);
        };
        let Ok(tier) = std::str::from_utf8(args[2]) else {
            return err(out, "ERR the tier must be UTF-8 text", counts);
        };
        let mut hits: Option<u64> = None;
        let mut limit: Option<&str> = None;
        let mut with_name = false;
        let mut i = 3;
        while i < args.len() {
            let opt = args[i];
            let value = args.get(i + 1).copied();
            if is(opt, "HITS") && hits.is_none() {
                let Some(v) = value else {
                    return err(out, ERR_SYNTAX, counts);
                };
                match grammar::hits(v) {
                    Some(n) => hits = Some(n),
                    None => return err(out, "ERR HITS must be an integer of at least 0", counts),
                }
                i += 2;
            } else if is(opt, "LIMIT") && limit.is_none() {
                let Some(v) = value else {
                    return err(out, ERR_SYNTAX, counts);
                };
                match std::str::from_utf8(v) {
                    Ok(name) => limit = Some(name),
                    Err(_) => return err(out, "ERR the limit must be UTF-8 text", counts),
                }
                i += 2;
            } else if is(opt, "WITHNAME") && !with_name {
                with_name = true;
                i += 1;
            } else {
                return err(out, ERR_SYNTAX, counts);
            }
        }
        let query = CheckQuery {
            key,
            tier,
            hits: hits.unwrap_or(1),
            limit,
        };
        match door.gate.check(&query) {
            Ok(decision) => {
                let o = decision.deciding();
                let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let retry = retry_after(&decision).map_or(-1, clamp);
                if decision.allowed {
                    counts.checks_allowed += 1;
                } else {
                    counts.checks_denied += 1;
                }
                frame::put_array_header(out, if with_name { 6 } else { 5 });
                frame::put_integer(out, i64::from(decision.allowed));
                frame::put_integer(out, clamp(o.limit));
                frame::put_integer(out, clamp(o.remaining));
                frame::put_integer(out, clamp(o.reset_secs));
                frame::put_integer(out, retry);
                if with_name {
                    frame::put_bulk(out, o.name.as_bytes());
                }
            }
            Err(e) => {
                let msg = match &e {
                    // The gate's messages, with Redis's error code in front.
                    CheckError::MissingKey
                    | CheckError::KeyTooLong(_)
                    | CheckError::UnknownTier(_)
                    | CheckError::UnknownLimit(_)
                    | CheckError::HitsOutOfRange { .. } => format!("ERR {e}"),
                };
                err(out, &msg, counts);
            }
        }
    }

    /// Checks an `AUTH`/`HELLO AUTH` user and password; unlocks admin commands when right.
    fn authenticate(&mut self, user: Option<&[u8]>, password: &[u8], door: &DoorShared) -> bool {
        // Check the password even for a wrong user name, so timing does not tell them
        // apart.
        let proof = door.gate.admin().prove(password);
        let user_ok = user.map_or(true, |u| u == b"default");
        match proof {
            Ok(proof) if user_ok => {
                self.admin = Some(proof);
                true
            }
            _ => false,
        }
    }

    fn auth(
        &mut self,
        args: &Args<'_>,
        door: &DoorShared,
        out: &mut BytesMut,
        counts: &mut BatchCounts,
    ) {
        let (user, password) = match args.len() {
            2 => (None, args[1]),
            3 => (Some(args[1]), args[2]),
            _ => return wrong_arity(out, "auth", counts),
        };
        if !door.gate.admin().has_secret() {
            return err(
                out,
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
                counts,
            );
        }
        if self.authenticate(user, password, door) {
            out.extend_from_slice(b"+OK\r\n");
        } else {
            counts.auth_failures += 1;
            err(out, WRONGPASS, counts);
        }
    }

    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    fn hello(
        &mut self,
        args: &Args<'_>,
        door: &DoorShared,
        out: &mut BytesMut,
        counts: &mut BatchCounts,
    ) {
        let mut protocol = self.protocol;
        let mut name = None;
        let mut auth = None;
        if args.len() >= 2 {
            protocol = match int_arg(args[1]) {
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                Some(_) => {
                    return err(out, "NOPROTO unsupported protocol version", counts);
                }
                None => {
                    return err(
                        out,
                        "ERR Protocol version is not an integer or out of range",
                        counts,
                    )
                }
            };
            let mut i = 2;
            while i < args.len() {
                if is(args[i], "AUTH") && i + 2 < args.len() {
                    auth = Some((args[i + 1], args[i + 2]));
                    i += 3;
                } else if is(args[i], "SETNAME") && i + 1 < args.len() {
                    name = Some(args[i + 1]);
                    i += 2;
                } else {
                    let msg = format!("ERR Syntax error in HELLO option '{}'", shown(args[i]));
                    return err(out, &msg, counts);
                }
            }
        }
        if let Some(n) = name {
            if let Err(e) = check_client_name(n) {
                return err(out, e, counts);
            }
        }
        if let Some((user, password)) = auth {
            if !self.authenticate(Some(user), password, door) {
                counts.auth_failures += 1;
                return err(out, WRONGPASS, counts);
            }
        }
        if let Some(n) = name {
            self.name = Some(String::from_utf8_lossy(n).into_owned());
        }
        self.protocol = protocol;
        let reply = Frame::Map(vec![
            (Frame::bulk("server"), Frame::bulk("tollgate")),
            (
                Frame::bulk("version"),
                Frame::bulk(env!("CARGO_PKG_VERSION")),
            ),
            (Frame::bulk("proto"), Frame::Integer(protocol.version())),
            (Frame::bulk("id"), Frame::Integer(self.id as i64)),
            (Frame::bulk("mode"), Frame::bulk("standalone")),
            (Frame::bulk("role"), Frame::bulk("master")),
            (Frame::bulk("modules"), Frame::Array(Vec::new())),
        ]);
        reply.encode(protocol, out);
    }

    /// `VERIFY <token> <method> <path> <client-ip>`: checks the arguments and resolves the
    /// client address; the decision itself is [`settle`]d by the loop.
    ///
    /// The client-IP argument is believed only when this connection's peer is a trusted
    /// proxy (`[policy]` trusted proxies; loopback and the Unix socket by default), as the
    /// HTTP door believes `X-Forwarded-For` only from one. From any other peer the peer's
    /// own address is used, so a client cannot pick the IP its limits are counted by. The
    /// argument must be an IP address either way, so a caller's mistake shows wherever it
    /// connects from.
    fn verify<'a>(
        &self,
        args: &Args<'a>,
        door: &DoorShared,
        out: &mut BytesMut,
        counts: &mut BatchCounts,
    ) -> Option<VerifyArgs<'a>> {
        if args.len() != 5 {
            wrong_arity(out, "verify", counts);
            return None;
        }
        let (token, method, uri, ip) = (args[1], args[2], args[3], args[4]);
        let Some(method) = grammar::method(method) else {
            err(
                out,
                "ERR the method must be an HTTP method token (GET, POST…)",
                counts,
            );
            return None;
        };
        let Some(claimed) = std::str::from_utf8(ip)
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok())
        else {
            err(
                out,
                "ERR the client-ip must be an IPv4 or IPv6 address",
                counts,
            );
            return None;
        };
        // An unknown peer is trusted with nothing, not even an address of its own.
        let client_ip = self
            .peer
            .and_then(|peer| door.gate.claimed_client_ip(peer, claimed));
        Some(VerifyArgs {
            credentials: token_arg(token),
            method,
            uri,
            client_ip,
        })
    }

    /// Writes the answer of a settled [`Work`].
    fn reply_settled(&mut self, settled: Settled, out: &mut BytesMut, counts: &mut BatchCounts) {
        match settled {
            Settled::Verify(Ok(d)) => {
                if d.outcome == AccessOutcome::Allowed {
                    counts.verifies_allowed += 1;
                } else {
                    counts.verifies_refused += 1;
                }
                put_verify_reply(out, &d, self.protocol);
            }
            // A configuration that names a tier or limit the gate does not know: the
            // gate's message, as CHECK shows it.
            Settled::Verify(Err(e)) => err(out, &format!("ERR {e}"), counts),
            Settled::Revoke(Ok(_)) => {
                counts.revocations += 1;
                out.extend_from_slice(b"+OK\r\n");
            }
            Settled::Revoke(Err(e)) => err(out, &format!("ERR {e}"), counts),
        }
    }

    /// `REVOKE JTI <jti> <exp>` / `REVOKE SUB <sub> <before>`: admin only. Checks the
    /// arguments and access; the store write is [`settle`]d by the loop.
    fn revoke(
        &mut self,
        args: &Args<'_>,
        door: &DoorShared,
        out: &mut BytesMut,
        counts: &mut BatchCounts,
    ) -> Option<RevokeRequest> {
        if args.len() != 4 {
            wrong_arity(out, "revoke", counts);
            return None;
        }
        let caller = AdminCaller {
            via_unix_socket: self.via_unix,
            credential: self
                .admin
                .map_or(AdminCredential::None, AdminCredential::Proven),
        };
        let refusal = match door.gate.admin().admit(&caller) {
            Ok(()) => None,
            Err(AdminRefusal::Disabled) => {
                Some("ERR REVOKE is disabled: no admin access is configured ([auth.admin])")
            }
            Err(AdminRefusal::UnixSocketOnly | AdminRefusal::NoSecretConfigured) => {
                Some("NOPERM admin commands are only allowed on the Unix socket")
            }
            Err(AdminRefusal::SecretRequired | AdminRefusal::SecretInvalid) => {
                Some("NOAUTH Authentication required.")
            }
        };
        if let Some(msg) = refusal {
            err(out, msg, counts);
            return None;
        }
        let (kind, time) = if is(args[1], "JTI") {
            ("jti", "exp")
        } else if is(args[1], "SUB") {
            ("subject", "before")
        } else {
            err(
                out,
                "ERR REVOKE takes JTI <jti> <exp> or SUB <sub> <before>",
                counts,
            );
            return None;
        };
        // Its length is the gate's rule (the same answer as over HTTP).
        let Ok(id) = std::str::from_utf8(args[2]) else {
            let msg = format!("ERR the {kind} must be UTF-8 text");
            err(out, &msg, counts);
            return None;
        };
        let id = id.to_owned();
        let Some(at) = int_arg(args[3]) else {
            let msg = format!("ERR {time} must be an integer (seconds since the epoch)");
            err(out, &msg, counts);
            return None;
        };
        Some(if kind == "jti" {
            RevokeRequest::Jti { jti: id, exp: at }
        } else {
            RevokeRequest::Subject {
                sub: id,
                before: at,
            }
        })
    }

    /// `INFO [section…]`: a bulk string in Redis's INFO format.
    fn info(
        &mut self,
        args: &Args<'_>,
        door: &DoorShared,
        out: &mut BytesMut,
        _counts: &mut BatchCounts,
    ) {
        let wanted: Vec<String> = args[1..]
            .iter()
            .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
            .collect();
        let all = wanted.is_empty()
            || wanted
                .iter()
                .any(|w| w == "all" || w == "everything" || w == "default");
        let want = |s: &str| all || wanted.iter().any(|w| w == s);
        let s = &door.stats;
        let mut text = String::with_capacity(1024);
        let mut section = |title: &str, body: &dyn Fn(&mut String)| {
            if want(&title.to_ascii_lowercase()) {
                if !text.is_empty() {
                    text.push_str("\r\n");
                }
                let _ = write!(text, "# {title}\r\n");
                body(&mut text);
            }
        };
        section("Server", &|t| {
            let _ = write!(
                t,
                "tollgate_version:{}\r\nredis_mode:standalone\r\nprocess_id:{}\r\nuptime_in_seconds:{}\r\nlisteners:{}\r\n",
                env!("CARGO_PKG_VERSION"),
                std::process::id(),
                door.started.elapsed().as_secs(),
                door.listening.lock().join(","),
            );
        });
        section("Clients", &|t| {
            let _ = write!(
                t,
                "connected_clients:{}\r\nmaxclients:{}\r\n",
                door.slots.open(),
                door.options.max_connections,
            );
        });
        section("Stats", &|t| {
            let _ = write!(
                t,
                "total_connections_received:{}\r\ntotal_commands_processed:{}\r\nchecks_allowed:{}\r\nchecks_denied:{}\r\nverifies_allowed:{}\r\nverifies_refused:{}\r\nrevocations:{}\r\ncommand_errors:{}\r\nprotocol_errors:{}\r\nauth_failures:{}\r\nevent_loop_sleeps:{}\r\nevent_loop_idle_polls:{}\r\n",
                s.connections.load(Ordering::Relaxed),
                s.total(|x| &x.commands),
                s.total(|x| &x.checks_allowed),
                s.total(|x| &x.checks_denied),
                s.total(|x| &x.verifies_allowed),
                s.total(|x| &x.verifies_refused),
                s.total(|x| &x.revocations),
                s.total(|x| &x.command_errors),
                s.total(|x| &x.protocol_errors),
                s.total(|x| &x.auth_failures),
                door.loops.sleeps.get(),
                door.loops.idle_polls.get(),
            );
        });
        section("Limiter", &|t| {
            let l = door.gate.limiter();
            let _ = write!(
                t,
                "tracked_states:{}\r\nevictions:{}\r\n",
                l.tracked_states(),
                l.evictions(),
            );
        });
        section("Config", &|t| {
            let o = &door.options;
            let _ = write!(t, "summary:{}\r\n", door.gate.config().summary());
            let tiers: Vec<String> = door
                .gate
                .tiers()
                .iter()
                .map(|spec| format!("{}={}/{}s", spec.name, spec.limit, spec.window.as_secs()))
                .collect();
            let limits: Vec<String> = door
                .gate
                .limits()
                .iter()
                .map(|spec| format!("{}={}/{}s", spec.name, spec.limit, spec.window.as_secs()))
                .collect();
            let _ = write!(
                t,
                "tiers:{}\r\nlimits:{}\r\nmax_bulk_bytes:{}\r\nmax_args:{}\r\nmax_inline_bytes:{}\r\nmax_command_bytes:{}\r\nmax_pending_reply_bytes:{}\r\nidle_timeout_seconds:{}\r\nthreads:{}\r\nidle_poll_us:{}\r\nadmin:{}\r\n",
                tiers.join(","),
                limits.join(","),
                o.limits.max_bulk_bytes,
                o.limits.max_args,
                o.limits.max_inline_bytes,
                o.limits.max_command_bytes,
                o.max_pending_reply_bytes,
                o.idle_timeout.as_secs(),
                o.threads,
                // Polling applies to the door's own event loops only.
                if o.threads == 0 { 0 } else { o.idle_poll.as_micros() },
                door.gate.admin().describe(),
            );
        });
        frame::put_bulk(out, text.as_bytes());
    }

    /// The `COMMAND` variants clients send on connect; tollgate's commands have no Redis
    /// key specs, so the informational ones answer empty.
    fn command(&mut self, args: &Args<'_>, out: &mut BytesMut, counts: &mut BatchCounts) {
        if args.len() == 1 {
            frame::put_array_header(out, 0);
            return;
        }
        let sub = args[1];
        if is(sub, "COUNT") {
            frame::put_integer(out, COMMANDS.len() as i64);
        } else if is(sub, "DOCS") {
            frame::put_empty_map(out, self.protocol);
        } else if is(sub, "LIST") {
            frame::put_array_header(out, COMMANDS.len());
            for c in COMMANDS {
                frame::put_bulk(out, c.as_bytes());
            }
        } else if is(sub, "INFO") {
            // One null per name asked: tollgate publishes no command table.
            frame::put_array_header(out, args.len() - 2);
            for _ in 2..args.len() {
                frame::put_null(out, self.protocol);
            }
        } else {
            let msg = format!("ERR unknown subcommand '{}'. Try COMMAND HELP.", shown(sub));
            err(out, &msg, counts);
        }
    }

    /// `CLIENT SETNAME|GETNAME|ID|SETINFO`, which client libraries send on connect.
    fn client(&mut self, args: &Args<'_>, out: &mut BytesMut, counts: &mut BatchCounts) {
        let Some(&sub) = args.get(1) else {
            return wrong_arity(out, "client", counts);
        };
        if is(sub, "SETNAME") && args.len() == 3 {
            match check_client_name(args[2]) {
                Ok(()) => {
                    self.name = (!args[2].is_empty())
                        .then(|| String::from_utf8_lossy(args[2]).into_owned());
                    out.extend_from_slice(b"+OK\r\n");
                }
                Err(e) => err(out, e, counts),
            }
        } else if is(sub, "GETNAME") && args.len() == 2 {
            match &self.name {
                Some(n) => frame::put_bulk(out, n.as_bytes()),
                None => frame::put_null(out, self.protocol),
            }
        } else if is(sub, "ID") && args.len() == 2 {
            frame::put_integer(out, self.id as i64);
        } else if is(sub, "SETINFO") && args.len() == 4 {
            out.extend_from_slice(b"+OK\r\n");
        } else {
            let msg = format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                shown(sub)
            );
            err(out, &msg, counts);
        }
    }
}

/// The token argument of `VERIFY`: the bare token, or a whole `Authorization` value
/// (`Bearer <token>`, the scheme in any case); empty for none. Handed to the gate as
/// received: reading it (and refusing one that is not UTF-8) is the gate's rule.
fn token_arg(arg: &[u8]) -> AuthInput<'_> {
    match arg.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => AuthInput::authorization(arg),
        _ => AuthInput::bearer_bytes(arg),
    }
}

/// `VERIFY`'s reply: `[status, reason, user_id, role, tier, remaining, retry_after]`.
/// Absent strings are null and absent integers -1, as in `CHECK`'s reply.
fn put_verify_reply(out: &mut BytesMut, d: &AccessDecision, protocol: Protocol) {
    let put_opt = |out: &mut BytesMut, v: Option<&[u8]>| match v {
        Some(b) => frame::put_bulk(out, b),
        None => frame::put_null(out, protocol),
    };
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let identity = d.identity.as_deref();
    frame::put_array_header(out, 7);
    frame::put_integer(out, i64::from(d.status()));
    put_opt(out, d.reason().map(str::as_bytes));
    put_opt(
        out,
        identity
            .and_then(|i| i.user_id.as_deref())
            .map(str::as_bytes),
    );
    match identity.filter(|i| !i.roles.is_empty()) {
        Some(i) => frame::put_bulk(out, i.roles.join(",").as_bytes()),
        None => frame::put_null(out, protocol),
    }
    put_opt(out, (!d.tier.is_empty()).then_some(d.tier.as_bytes()));
    let deciding = d.limits.as_ref().map(|l| l.deciding());
    frame::put_integer(out, deciding.map_or(-1, |o| clamp(o.remaining)));
    frame::put_integer(out, d.retry_after().map_or(-1, clamp));
}

/// Redis's rule for client names (no spaces or newlines), plus a length bound.
fn check_client_name(name: &[u8]) -> Result<(), &'static str> {
    if name.len() > MAX_CLIENT_NAME {
        return Err("ERR Client names are limited to 128 bytes");
    }
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::LimitConfig;
    use crate::limiter::Algorithm;

    /// Admin access of a test door: none, or [`SECRET`] on every socket or on the Unix
    /// socket only (`[auth.admin]`).
    #[derive(Clone, Copy)]
    enum Admin {
        Disabled,
        Secret,
        SecretUnixSocketOnly,
    }

    fn admin_config(c: &mut Config, admin: Admin) {
        c.auth.admin = crate::config::auth::AdminConfig {
            enabled: !matches!(admin, Admin::Disabled),
            secret_env: (!matches!(admin, Admin::Disabled)).then(|| "ADMIN".into()),
            unix_socket_only: matches!(admin, Admin::SecretUnixSocketOnly),
        };
    }

    fn door(admin: Admin) -> RespDoor {
        let mut c = Config::default();
        c.tiers.insert(
            "basic".into(),
            LimitConfig {
                limit: 3,
                window: "1h".into(),
                algorithm: Algorithm::SlidingWindow,
                key: None,
            },
        );
        admin_config(&mut c, admin);
        let env = |v: &str| (v == "ADMIN").then(|| SECRET.to_string());
        let clock = Arc::new(ManualClock::new(1_000_000));
        let gate = Arc::new(Gate::with_env(&c, clock, &env).unwrap());
        let options = RespOptions::from_config(&c).unwrap();
        RespDoor::new(gate, options)
    }

    /// Runs one command line (split on spaces) and returns the reply text.
    fn run(conn: &mut Conn, door: &RespDoor, line: &str) -> String {
        let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        run_args(conn, door, &words)
    }

    /// Runs one command given as its arguments (which may be empty or not UTF-8), settling
    /// a command that waits on a runtime of its own, and returns the reply text (lossy).
    fn run_args(conn: &mut Conn, door: &RespDoor, words: &[&[u8]]) -> String {
        let args: Args<'_> = words.iter().copied().collect();
        let mut out = BytesMut::new();
        let mut counts = BatchCounts::default();
        if let Flow::Await(work) = conn.execute(&args, &door.0, &mut out, &mut counts) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let settled = rt.block_on(settle(work, &door.0));
            conn.reply_settled(settled, &mut out, &mut counts);
        }
        door.0.stats.add(conn.id, &counts);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A connection over TCP from loopback (a trusted proxy by default), or over the Unix
    /// socket.
    fn conn(via_unix: bool) -> Conn {
        let peer = if via_unix {
            Peer::Unix
        } else {
            Peer::Ip(IpAddr::from([127, 0, 0, 1]))
        };
        conn_from(Some(peer))
    }

    fn conn_from(peer: Option<Peer>) -> Conn {
        Conn {
            id: 7,
            protocol: Protocol::Resp2,
            admin: None,
            via_unix: peer == Some(Peer::Unix),
            peer,
            name: None,
        }
    }

    #[test]
    fn check_replies_and_errors() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        // The integers of an all-integer array reply.
        let ints = |reply: &str| -> Vec<i64> {
            reply
                .split("\r\n")
                .filter_map(|l| l.strip_prefix(':'))
                .map(|n| n.parse().unwrap())
                .collect()
        };
        let first = run(&mut c, &d, "CHECK k basic");
        assert!(first.starts_with("*5\r\n"), "{first}");
        let v = ints(&first);
        assert_eq!((v[0], v[1], v[2], v[4]), (1, 3, 2, -1), "{first}");
        // Reset: the time until both windows of the sliding window have passed.
        assert!(v[3] > 0 && v[3] <= 7200, "{first}");
        let named = run(&mut c, &d, "check k basic hits 2 WITHNAME");
        assert!(named.starts_with("*6\r\n") && named.ends_with("$5\r\nbasic\r\n"));
        assert_eq!(ints(&named)[..3], [1, 3, 0], "{named}");
        let denied = run(&mut c, &d, "CHECK k basic");
        let v = ints(&denied);
        assert_eq!((v[0], v[1], v[2]), (0, 3, 0), "{denied}");
        assert!(v[4] > 0, "retry-after is set on a denial: {denied}");
        for (line, want) in [
            (
                "CHECK k",
                "-ERR wrong number of arguments for 'check' command\r\n",
            ),
            ("CHECK k gold", "-ERR unknown tier \"gold\"\r\n"),
            ("CHECK k basic HITS", "-ERR syntax error\r\n"),
            (
                "CHECK k basic HITS -1",
                "-ERR HITS must be an integer of at least 0\r\n",
            ),
            ("CHECK k basic HITS 1 HITS 1", "-ERR syntax error\r\n"),
            (
                "CHECK k basic LIMIT nope",
                "-ERR unknown limit \"nope\"\r\n",
            ),
            ("CHECK k basic BOGUS", "-ERR syntax error\r\n"),
        ] {
            assert_eq!(run(&mut c, &d, line), want, "{line}");
        }
    }

    #[test]
    fn small_commands() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        assert_eq!(run(&mut c, &d, "PING"), "+PONG\r\n");
        assert_eq!(run(&mut c, &d, "ping hi"), "$2\r\nhi\r\n");
        assert_eq!(run(&mut c, &d, "ECHO x"), "$1\r\nx\r\n");
        assert_eq!(
            run(&mut c, &d, "FLUSHALL now"),
            "-ERR unknown command 'FLUSHALL', with args beginning with: 'now'\r\n"
        );
        assert_eq!(run(&mut c, &d, "COMMAND DOCS"), "*0\r\n");
        assert_eq!(run(&mut c, &d, "COMMAND COUNT"), ":14\r\n");
        assert_eq!(run(&mut c, &d, "CLIENT SETNAME app"), "+OK\r\n");
        assert_eq!(run(&mut c, &d, "CLIENT GETNAME"), "$3\r\napp\r\n");
        assert_eq!(run(&mut c, &d, "SELECT 0"), "+OK\r\n");
        assert_eq!(run(&mut c, &d, "CONFIG GET save"), "*0\r\n");
        let info = run(&mut c, &d, "INFO");
        assert!(info.contains("tiers:basic=3/3600s"), "{info}");
        assert!(info.contains("# Stats"), "{info}");
        let server_only = run(&mut c, &d, "INFO server");
        assert!(server_only.contains("tollgate_version:") && !server_only.contains("# Stats"));
    }

    #[test]
    fn hello_switches_protocol() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        let r3 = run(&mut c, &d, "HELLO 3");
        assert!(
            r3.starts_with("%7\r\n$6\r\nserver\r\n$8\r\ntollgate\r\n"),
            "{r3}"
        );
        assert!(r3.contains("$5\r\nproto\r\n:3\r\n"));
        assert_eq!(c.protocol, Protocol::Resp3);
        assert_eq!(run(&mut c, &d, "COMMAND DOCS"), "%0\r\n");
        assert_eq!(run(&mut c, &d, "CLIENT GETNAME"), "_\r\n");
        let r2 = run(&mut c, &d, "HELLO 2");
        assert!(r2.starts_with("*14\r\n"), "{r2}");
        assert_eq!(c.protocol, Protocol::Resp2);
        assert_eq!(
            run(&mut c, &d, "HELLO 4"),
            "-NOPROTO unsupported protocol version\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "HELLO 3 BOGUS"),
            "-ERR Syntax error in HELLO option 'BOGUS'\r\n"
        );
        assert_eq!(
            c.protocol,
            Protocol::Resp2,
            "a failed HELLO changes nothing"
        );
    }

    const SECRET: &str = "resp-admin-secret-0123456789abcdef";

    #[test]
    fn auth_gates_admin_commands() {
        let d = door(Admin::Secret);
        let mut c = conn(false);
        assert_eq!(
            run(&mut c, &d, "REVOKE JTI j 100"),
            "-NOAUTH Authentication required.\r\n"
        );
        assert!(run(&mut c, &d, "AUTH wrong").starts_with("-WRONGPASS"));
        assert!(run(&mut c, &d, &format!("AUTH admin {SECRET}")).starts_with("-WRONGPASS"));
        assert_eq!(
            run(&mut c, &d, &format!("AUTH default {SECRET}")),
            "+OK\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "REVOKE JTI j soon"),
            "-ERR exp must be an integer (seconds since the epoch)\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "REVOKE KID j 1"),
            "-ERR REVOKE takes JTI <jti> <exp> or SUB <sub> <before>\r\n"
        );
        assert_eq!(run(&mut c, &d, "REVOKE SUB u 100"), "+OK\r\n");
        assert_eq!(run(&mut c, &d, "RESET"), "+RESET\r\n");
        assert!(run(&mut c, &d, "REVOKE SUB u 1").starts_with("-NOAUTH"));
        // HELLO AUTH authenticates too.
        let r = run(
            &mut c,
            &d,
            &format!("HELLO 3 AUTH default {SECRET} SETNAME x"),
        );
        assert!(r.starts_with("%7"), "{r}");
        assert!(c.admin.is_some());

        let uds_only = door(Admin::SecretUnixSocketOnly);
        let mut tcp = conn(false);
        run(&mut tcp, &uds_only, &format!("AUTH {SECRET}"));
        assert!(run(&mut tcp, &uds_only, "REVOKE SUB u 1").starts_with("-NOPERM"));
        let mut unix = conn(true);
        assert!(run(&mut unix, &uds_only, "REVOKE SUB u 1").starts_with("-NOAUTH"));

        let off = door(Admin::Disabled);
        let mut c = conn(true);
        assert!(run(&mut c, &off, "AUTH x").starts_with("-ERR AUTH <password> called without"));
        assert!(run(&mut c, &off, "REVOKE SUB u 1").starts_with("-ERR REVOKE is disabled"));
    }

    /// A stream that records the size of every write the server makes.
    struct CountingStream {
        inner: tokio::io::DuplexStream,
        writes: Arc<parking_lot::Mutex<Vec<usize>>>,
    }

    impl AsyncRead for CountingStream {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingStream {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
            if let std::task::Poll::Ready(Ok(n)) = &r {
                self.writes.lock().push(*n);
            }
            r
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Writes `input` as one client write, closes the client's sending side, runs the server
    /// on the connection to its end, and returns what the client received and the sizes of
    /// the server's writes.
    async fn serve_bytes(d: &RespDoor, input: &[u8]) -> (Vec<u8>, Vec<usize>) {
        let (mut client, server) = tokio::io::duplex(8 * 1024 * 1024);
        // The whole input is in the pipe before the server first reads.
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let writes = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let stream = CountingStream {
            inner: server,
            writes: writes.clone(),
        };
        serve_connection(stream, d.clone(), None).await;
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        let w = writes.lock().clone();
        (got, w)
    }

    #[tokio::test]
    async fn a_pipelined_batch_is_answered_with_one_write() {
        let d = door(Admin::Disabled);
        let mut input = Vec::new();
        for i in 0..100 {
            input.extend_from_slice(
                &Frame::command(["CHECK".to_string(), format!("k{i}"), "basic".into()])
                    .to_bytes(Protocol::Resp2),
            );
        }
        let (got, writes) = serve_bytes(&d, &input).await;
        assert_eq!(writes.len(), 1, "one write for 100 commands: {writes:?}");
        assert_eq!(got.len(), writes[0]);
        assert_eq!(
            got.windows(4).filter(|w| w == b"*5\r\n").count(),
            100,
            "100 replies"
        );
    }

    /// Ten thousand connections each hold one of these; the rare paths' state (a key-set
    /// fetch for VERIFY, a revocation) is boxed when used, not carried by every connection.
    #[tokio::test]
    async fn a_connections_future_stays_small() {
        let d = door(Admin::Disabled);
        let (_client, server) = tokio::io::duplex(64);
        let size = std::mem::size_of_val(&serve_connection(server, d, None));
        assert!(size <= 1024, "a connection's future is {size} bytes");
    }

    #[tokio::test]
    async fn pending_replies_are_flushed_at_the_bound() {
        let mut d = door(Admin::Disabled);
        Arc::get_mut(&mut d.0)
            .unwrap()
            .options
            .max_pending_reply_bytes = 4096;
        // 300 six-byte commands whose replies are ~1 KiB each: one read, ~300 KiB of output.
        let input = b"INFO\r\n".repeat(300);
        let (got, writes) = serve_bytes(&d, &input).await;
        let one_reply = got.len() / 300;
        assert!(one_reply > 500, "INFO is large: {one_reply}");
        let biggest = writes.iter().copied().max().unwrap();
        assert!(
            biggest < 4096 + 2 * one_reply,
            "a write of {biggest} bytes passed the 4 KiB bound by more than a reply"
        );
        assert_eq!(writes.iter().sum::<usize>(), got.len());
        assert!(writes.len() >= got.len() / (4096 + 2 * one_reply));
    }

    /// Waits (bounded) until `d` has `n` registered connections.
    async fn registered(d: &RespDoor, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while d.0.phases.lock().conns.len() != n {
            assert!(std::time::Instant::now() < deadline, "never registered");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn draining_closes_a_connection_waiting_for_its_next_command() {
        let d = door(Admin::Disabled);
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let conn = tokio::spawn(serve_connection(server, d.clone(), None));
        client.write_all(b"PING\r\nPING\r\n").await.unwrap();
        let mut got = [0u8; 14];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"+PONG\r\n+PONG\r\n");
        registered(&d, 1).await;
        // The client keeps its side open: only the drain can end the connection.
        d.0.broadcast(Phase::Draining);
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .expect("a draining connection closes")
            .unwrap();
        registered(&d, 0).await;
        // A connection arriving once the door drains closes without serving.
        let (_c2, s2) = tokio::io::duplex(1024);
        tokio::time::timeout(
            Duration::from_secs(5),
            serve_connection(s2, d.clone(), None),
        )
        .await
        .expect("closes at once");
    }

    #[tokio::test]
    async fn closing_drops_a_connection_whose_client_does_not_read() {
        let d = door(Admin::Disabled);
        // A 64-byte pipe whose client writes and never reads: the server's write blocks
        // once 64 bytes of replies are waiting.
        let (client, server) = tokio::io::duplex(64);
        let (_read_half, mut write_half) = tokio::io::split(client);
        let conn = tokio::spawn(serve_connection(server, d.clone(), None));
        let writer = tokio::spawn(async move {
            let _ = write_half.write_all(&b"PING\r\n".repeat(1000)).await;
            write_half
        });
        // The first read takes 10 PINGs (64 bytes); once they are counted the connection is
        // in (or entering) the write of their 70 bytes of replies, which the pipe cannot hold.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while d.0.stats.total(|s| &s.commands) < 10 {
            assert!(std::time::Instant::now() < deadline, "never blocked");
            tokio::task::yield_now().await;
        }
        // Draining does not cut a connection that owes replies: it stays in its write.
        d.0.broadcast(Phase::Draining);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!conn.is_finished(), "still writing the replies it owes");
        d.0.broadcast(Phase::Closing);
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .expect("dropped at Closing")
            .unwrap();
        writer.abort();
    }

    // --- VERIFY and REVOKE, with the PyJWT-made fixtures of tests/tokens/ -----------------

    fn fixtures() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tokens/tokens.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn token(name: &str) -> String {
        let m = fixtures();
        let t = m["tokens"].as_array().unwrap().iter();
        let found = t.clone().find(|t| t["name"] == name);
        found.unwrap()["token"].as_str().unwrap().to_string()
    }

    /// Tiers anonymous (2/h per IP), basic (3/h per user), premium (10/h); routes `/api/me`
    /// (required) and `/api/users/{user_id}/**` (owner); the fixtures' Better Auth and
    /// HS256 issuers; revocations logged to `log` when given; the admin secret.
    fn auth_door(log: Option<&Path>) -> RespDoor {
        use crate::config::auth::{IssuerConfig, RoleTier};
        use crate::config::routes::RouteConfig;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tokens");
        let m = fixtures();
        let generated_at = m["generated_at"].as_u64().unwrap();
        let origin = m["issuer"].as_str().unwrap().to_string();
        let lim = |limit: u64, key: &str| LimitConfig {
            limit,
            window: "1h".into(),
            algorithm: Algorithm::SlidingWindow,
            key: Some(key.into()),
        };
        let mut c = Config::default();
        c.tiers.insert("anonymous".into(), lim(2, "ip"));
        c.tiers.insert("basic".into(), lim(3, "user"));
        c.tiers.insert("premium".into(), lim(10, "user"));
        let route = |path: &str, auth: Option<&str>, owner: Option<&str>| RouteConfig {
            path: path.into(),
            methods: Vec::new(),
            auth: auth.map(Into::into),
            roles: Vec::new(),
            permissions: Vec::new(),
            owner: owner.map(Into::into),
            bypass_roles: None,
            limits: Vec::new(),
        };
        c.routes = vec![
            route("/api/me", Some("required"), None),
            route("/api/users/{user_id}/**", None, Some("user_id")),
        ];
        let mut ba = IssuerConfig::new("better-auth");
        ba.issuer = Some(origin.clone());
        ba.audiences = vec![origin];
        ba.jwks_file = Some(dir.join("jwks.json"));
        let mut hs = IssuerConfig::new("fastapi");
        hs.hs256_secret_env = Some("HS".into());
        c.auth.issuers = vec![ba, hs];
        c.auth.role_tiers = vec![RoleTier {
            role: "premium".into(),
            tier: "premium".into(),
        }];
        c.auth.revocation.path = log.map(Path::to_path_buf);
        admin_config(&mut c, Admin::Secret);
        let hs_secret = std::fs::read_to_string(dir.join("hs256_secret.txt")).unwrap();
        let env = move |v: &str| match v {
            "HS" => Some(hs_secret.clone()),
            "ADMIN" => Some(SECRET.to_string()),
            _ => None,
        };
        let clock = Arc::new(ManualClock::new((generated_at + 60) * 1000));
        let gate = Arc::new(Gate::with_env(&c, clock, &env).unwrap());
        let options = RespOptions::from_config(&c).unwrap();
        RespDoor::new(gate, options)
    }

    /// Parses a RESP2/RESP3 reply into frames.
    fn parsed(reply: &str) -> Frame {
        let (f, used) = crate::resp::parse_frame(reply.as_bytes(), &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, reply.len(), "one reply: {reply:?}");
        f
    }

    /// A VERIFY reply as (status, reason, user, role, tier, remaining, retry_after).
    type Verdict = (
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        i64,
    );

    fn verdict(reply: &str) -> Verdict {
        let Frame::Array(v) = parsed(reply) else {
            panic!("not an array: {reply:?}")
        };
        assert_eq!(v.len(), 7, "{reply:?}");
        let s = |f: &Frame| match f {
            Frame::Null => None,
            f => Some(String::from_utf8(f.as_bytes().unwrap().to_vec()).unwrap()),
        };
        (
            v[0].as_integer().unwrap(),
            s(&v[1]),
            s(&v[2]),
            s(&v[3]),
            s(&v[4]),
            v[5].as_integer().unwrap(),
            v[6].as_integer().unwrap(),
        )
    }

    fn verify(c: &mut Conn, d: &RespDoor, token: &str, path: &str, ip: &str) -> String {
        run_args(
            c,
            d,
            &[
                b"VERIFY",
                token.as_bytes(),
                b"GET",
                path.as_bytes(),
                ip.as_bytes(),
            ],
        )
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn verify_answers_the_access_decision() {
        let d = auth_door(None);
        let mut c = conn(false);
        let ip = "198.51.100.7";
        // No token: anonymous, counted per IP.
        assert_eq!(
            verdict(&verify(&mut c, &d, "", "/api/items", ip)),
            (200, None, None, None, some("anonymous"), 1, -1)
        );
        // A valid token, bare or as a whole Authorization value.
        let t = token("eddsa_better_auth");
        assert_eq!(
            verdict(&verify(&mut c, &d, &t, "/api/items", ip)),
            (
                200,
                None,
                some("user_1"),
                some("user"),
                some("basic"),
                2,
                -1
            )
        );
        let bearer = format!("Bearer {t}");
        let v = verdict(&verify(&mut c, &d, &bearer, "/api/me", ip));
        assert_eq!((v.0, v.2, v.5), (200, some("user_1"), 1));
        // A comma-separated role claim, one role mapped to a tier.
        let p = token("eddsa_premium_roles");
        assert_eq!(
            verdict(&verify(&mut c, &d, &p, "/api/items", ip)),
            (
                200,
                None,
                some("user_premium"),
                some("user,premium"),
                some("premium"),
                9,
                -1
            )
        );
        // Refusals: nothing counted, so no tier or remaining.
        let refused = |reason: &str| (401, some(reason), None, None, None, -1, -1);
        assert_eq!(
            verdict(&verify(&mut c, &d, &token("expired"), "/api/items", ip)),
            refused("expired")
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, "not-a-jwt", "/api/items", ip)),
            refused("invalid_token")
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, &token("alg_none"), "/api/items", ip)),
            refused("invalid_token")
        );
        // Bytes that are not UTF-8 are an invalid token, not an error of the protocol.
        let r = run_args(
            &mut c,
            &d,
            &[
                b"VERIFY",
                b"\xff\xfe.x.y",
                b"GET",
                b"/api/items",
                ip.as_bytes(),
            ],
        );
        assert_eq!(verdict(&r), refused("invalid_token"));
        assert_eq!(
            verdict(&verify(&mut c, &d, "", "/api/me", ip)),
            refused("missing_token")
        );
        // The policy refuses a known user: 403 with who it was.
        let v = verdict(&verify(&mut c, &d, &t, "/api/users/user_2/files", ip));
        assert_eq!(
            v,
            (
                403,
                some("not_owner"),
                some("user_1"),
                some("user"),
                None,
                -1,
                -1
            )
        );
        let v = verdict(&verify(&mut c, &d, &t, "/api/users/user_1/files", ip));
        assert_eq!((v.0, v.5), (200, 0));
        // basic is 3 an hour per user: the fourth is rate limited (403, as /auth answers).
        let v = verdict(&verify(&mut c, &d, &t, "/api/items", ip));
        assert_eq!(
            (v.0, v.1, v.2, v.4, v.5),
            (403, some("rate_limited"), some("user_1"), some("basic"), 0)
        );
        assert!(v.6 > 0 && v.6 <= 7200, "retry-after {}", v.6);
        // A path that cannot be judged.
        assert_eq!(
            verdict(&verify(&mut c, &d, "", "/../etc/passwd", ip)).1,
            some("bad_path")
        );
        // RESP3: absent strings are RESP3 nulls.
        c.protocol = Protocol::Resp3;
        let r = verify(&mut c, &d, "bogus", "/api/items", ip);
        assert_eq!(
            r,
            "*7\r\n:401\r\n$13\r\ninvalid_token\r\n_\r\n_\r\n_\r\n:-1\r\n:-1\r\n"
        );
        let info = run(&mut c, &d, "INFO stats");
        assert!(info.contains("verifies_allowed:5\r\n"), "{info}");
        assert!(info.contains("verifies_refused:9\r\n"), "{info}");
    }

    #[test]
    fn verify_argument_errors() {
        let d = auth_door(None);
        let mut c = conn(false);
        assert_eq!(
            run(&mut c, &d, "VERIFY t GET /"),
            "-ERR wrong number of arguments for 'verify' command\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "VERIFY t GET / 1.2.3.4 x"),
            "-ERR wrong number of arguments for 'verify' command\r\n"
        );
        for ip in [
            "nope",
            "",
            "300.1.1.1",
            "10.0.0.1:80",
            "[::1]",
            "fe80::1%eth0",
        ] {
            let r = run_args(&mut c, &d, &[b"VERIFY", b"", b"GET", b"/", ip.as_bytes()]);
            assert_eq!(
                r, "-ERR the client-ip must be an IPv4 or IPv6 address\r\n",
                "{ip:?}"
            );
        }
        for method in [&b""[..], b"GE T", b"G\xffT", &[b'A'; 33]] {
            let r = run_args(&mut c, &d, &[b"VERIFY", b"", method, b"/", b"10.0.0.1"]);
            assert!(r.starts_with("-ERR the method must be"), "{r}");
        }
        // Lower-case methods and IPv6 clients are fine.
        let v = verdict(&verify(&mut c, &d, "", "/x", "2001:db8::1"));
        assert_eq!(v.0, 200);
        let r = run_args(
            &mut c,
            &d,
            &[b"verify", b"", b"patch", b"/x", b"::ffff:10.0.0.9"],
        );
        assert_eq!(verdict(&r).0, 200);
    }

    #[test]
    fn the_client_ip_is_believed_only_from_a_trusted_proxy() {
        // anonymous: 2 an hour per client IP.
        let d = auth_door(None);
        // Loopback is a trusted proxy by default: each claimed IP has its own counter.
        let mut proxy = conn(false);
        for ip in ["10.0.0.1", "10.0.0.1", "10.0.0.2"] {
            let v = verdict(&verify(&mut proxy, &d, "", "/x", ip));
            assert_eq!(v.0, 200, "{ip}");
        }
        assert_eq!(
            verdict(&verify(&mut proxy, &d, "", "/x", "10.0.0.1")).1,
            some("rate_limited")
        );
        // So is the Unix socket (the same IP's counter: the claim is believed).
        let mut unix = conn(true);
        assert_eq!(verdict(&verify(&mut unix, &d, "", "/x", "10.0.0.2")).5, 0);
        // Another peer's claims are ignored: its own address is counted, whatever it says.
        let mut outsider = conn_from(Some(Peer::Ip(IpAddr::from([203, 0, 113, 9]))));
        assert_eq!(
            verdict(&verify(&mut outsider, &d, "", "/x", "10.0.0.3")).5,
            1
        );
        assert_eq!(
            verdict(&verify(&mut outsider, &d, "", "/x", "10.0.0.4")).5,
            0
        );
        assert_eq!(
            verdict(&verify(&mut outsider, &d, "", "/x", "10.0.0.5")).1,
            some("rate_limited")
        );
        // It must still send an address.
        assert!(verify(&mut outsider, &d, "", "/x", "me").starts_with("-ERR the client-ip"));
    }

    #[test]
    fn revoke_is_durable_before_ok_and_verify_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("revocations.log");
        let d = auth_door(Some(&log));
        let mut c = conn(false);
        let with_jti = token("eddsa_with_jti");
        let user_1 = token("eddsa_better_auth");
        assert_eq!(
            verdict(&verify(&mut c, &d, &with_jti, "/x", "10.0.0.1")).0,
            200
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, &user_1, "/x", "10.0.0.1")).0,
            200
        );
        assert!(run(&mut c, &d, "REVOKE JTI jti-0001 4102444800").starts_with("-NOAUTH"));
        assert_eq!(run(&mut c, &d, &format!("AUTH {SECRET}")), "+OK\r\n");
        assert_eq!(run(&mut c, &d, "REVOKE JTI jti-0001 4102444800"), "+OK\r\n");
        // On disk when +OK came back.
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("\"jti-0001\""), "{text}");
        // The cached token is refused at once (revocation is checked on every cache hit).
        assert_eq!(
            verdict(&verify(&mut c, &d, &with_jti, "/x", "10.0.0.1")),
            (401, some("revoked"), None, None, None, -1, -1)
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, &user_1, "/x", "10.0.0.1")).0,
            200
        );
        // Every token of user_1 issued before a second after the fixtures were made.
        let iat = fixtures()["generated_at"].as_i64().unwrap();
        assert_eq!(
            run(&mut c, &d, &format!("revoke sub user_1 {}", iat + 1)),
            "+OK\r\n"
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, &user_1, "/x", "10.0.0.1")).1,
            some("revoked")
        );
        // Again: nothing new, still +OK.
        assert_eq!(
            run(&mut c, &d, &format!("REVOKE SUB user_1 {}", iat + 1)),
            "+OK\r\n"
        );
        assert_eq!(d.0.gate.authenticator().revocations().len(), 2);
        // Values the store refuses.
        let max = crate::auth::MAX_REVOCATION_ID_BYTES;
        let long = "j".repeat(max + 1);
        assert_eq!(
            run(&mut c, &d, &format!("REVOKE JTI {long} 1")),
            format!("-ERR the jti must be 1 to {max} bytes\r\n")
        );
        assert_eq!(
            run_args(&mut c, &d, &[b"REVOKE", b"SUB", b"\xff", b"1"]),
            "-ERR the subject must be UTF-8 text\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "REVOKE SUB u 99999999999999999"),
            "-ERR before is out of range: a time in seconds since the epoch\r\n"
        );
        let info = run(&mut c, &d, "INFO stats");
        assert!(info.contains("revocations:3\r\n"), "{info}");
    }

    fn first_int(f: &Frame) -> Option<i64> {
        match f {
            Frame::Array(v) => v.first().and_then(Frame::as_integer),
            _ => None,
        }
    }

    #[tokio::test]
    async fn commands_that_wait_keep_their_place_in_a_pipeline() {
        let d = auth_door(None);
        let t = token("eddsa_better_auth");
        let mut input = Vec::new();
        let mut cmd = |args: &[&str]| {
            input.extend_from_slice(&Frame::command(args.iter().copied()).to_bytes(Protocol::Resp2))
        };
        cmd(&["PING", "one"]);
        cmd(&["VERIFY", &t, "GET", "/x", "10.0.0.1"]);
        cmd(&["AUTH", SECRET]);
        // REVOKE waits for the blocking pool: the replies before it are written first.
        cmd(&["REVOKE", "SUB", "user_1", "4102444800"]);
        cmd(&["VERIFY", &t, "GET", "/x", "10.0.0.1"]);
        cmd(&["PING", "two"]);
        let (got, writes) = serve_bytes(&d, &input).await;
        let mut pos = 0;
        let mut replies = Vec::new();
        while pos < got.len() {
            let (f, used) = crate::resp::parse_frame(&got[pos..], &Default::default())
                .unwrap()
                .unwrap();
            replies.push(f);
            pos += used;
        }
        assert_eq!(replies.len(), 6, "{replies:?}");
        assert_eq!(replies[0], Frame::bulk("one"));
        assert_eq!(first_int(&replies[1]), Some(200));
        assert_eq!(replies[2], Frame::simple("OK"));
        assert_eq!(replies[3], Frame::simple("OK"));
        assert_eq!(first_int(&replies[4]), Some(401));
        assert_eq!(replies[5], Frame::bulk("two"));
        assert_eq!(
            writes.len(),
            2,
            "before the REVOKE, and the rest: {writes:?}"
        );
    }
}
