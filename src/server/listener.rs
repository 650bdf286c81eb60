//! Listeners and connections, shared by every front door: binding TCP and Unix sockets,
//! accepting under a connection cap (making room by closing the oldest idle connection,
//! [`super::occupancy`]), the idle timeout, and the shutdown phases that let in-flight
//! requests finish.
//!
//! Nothing here knows a protocol: a door hands [`accept_loop`] (or, when it needs the socket
//! peer, [`accept_loop_with_peer`]) its connection handler, a closure that is given each
//! accepted stream with its [`Presence`], and serves it with [`Shutdown`] and
//! [`IdleTimeout`]. The HTTP door's handler is [`super::http::serve_connection`]; the RESP
//! door has its own.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{bail, Context as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::occupancy::Occupancy;
pub use super::occupancy::Presence;
use crate::metrics::ConnectionMetrics;
use crate::policy::Peer;

/// How long a connection accepted at the cap waits for the slot of the idle connection that
/// was evicted for it (which closes at its next poll: in practice microseconds).
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// The phases of a server's life. Ordered: a later phase implies the earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Accepting and serving.
    Running,
    /// Not accepting; open connections finish their in-flight request and close.
    Draining,
    /// The grace period is over: connections still open are dropped.
    Closing,
}

/// A receiver of the shutdown phases. Cheap to clone; one per connection task.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Phase>,
}

impl Shutdown {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }

    /// Resolves once the server drains (or closes, or its controller is gone).
    pub async fn draining(mut self) {
        let _ = self.rx.wait_for(|p| *p >= Phase::Draining).await;
    }

    /// Resolves once the grace period is over (or the controller is gone).
    pub async fn closing(mut self) {
        let _ = self.rx.wait_for(|p| *p >= Phase::Closing).await;
    }
}

/// The sending side of [`Shutdown`]: owned by the server.
pub(crate) struct ShutdownController {
    tx: watch::Sender<Phase>,
}

impl ShutdownController {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::Sender::new(Phase::Running),
        }
    }

    pub(crate) fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }

    /// Moves to `phase` if it is later than the current one (phases never go back).
    pub(crate) fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|p| {
            if phase > *p {
                *p = phase;
                true
            } else {
                false
            }
        });
    }
}

/// A cap on open connections. A connection holds a slot for its whole life; waiting for every
/// slot to come back is how shutdown knows that all connections have finished. At the cap,
/// the connection idle longest is closed to make room ([`Occupancy`]).
pub struct ConnectionSlots {
    sem: Arc<Semaphore>,
    max: u32,
    occupancy: Arc<Occupancy>,
}

impl ConnectionSlots {
    pub fn new(max: usize) -> Self {
        let max = u32::try_from(max.max(1)).unwrap_or(u32::MAX).min(1 << 28);
        Self {
            sem: Arc::new(Semaphore::new(max as usize)),
            max,
            occupancy: Arc::new(Occupancy::default()),
        }
    }

    /// Which of these connections are idle: where an accepted connection registers.
    pub fn occupancy(&self) -> &Arc<Occupancy> {
        &self.occupancy
    }

    /// A slot that comes back within `wait` (one an evicted connection gives back), or
    /// `None`. Waiters are served in order, before any later [`try_acquire`](Self::try_acquire).
    pub async fn acquire_within(&self, wait: Duration) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(wait, self.sem.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// A slot, or `None` when `max` connections are open.
    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.sem.clone().try_acquire_owned().ok()
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max as usize - self.sem.available_permits()
    }

    /// Resolves when no connection is open.
    pub async fn all_closed(&self) {
        if let Ok(all) = self.sem.acquire_many(self.max).await {
            drop(all);
        }
    }
}

/// A listening socket a door accepts from.
pub trait Acceptor: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and who is on its other end.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Peer)>> + Send;
}

impl Acceptor for TcpListener {
    type Stream = TcpStream;

    async fn accept(&self) -> io::Result<(TcpStream, Peer)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        // Answers are one small write each: do not let Nagle hold them back waiting for an
        // ACK of the previous one.
        let _ = stream.set_nodelay(true);
        Ok((stream, Peer::from(peer)))
    }
}

impl Acceptor for UnixListener {
    type Stream = UnixStream;

    async fn accept(&self) -> io::Result<(UnixStream, Peer)> {
        UnixListener::accept(self)
            .await
            .map(|(s, _)| (s, Peer::Unix))
    }
}

/// Accepts connections until the server drains, and runs `serve` for each on its own task.
/// At the connection cap the connection idle longest is closed to make room (and counted in
/// `evicted`); when none is idle, the new connection is accepted and closed at once (and
/// counted in `rejected`): the client learns immediately, instead of waiting in the kernel's
/// backlog.
pub async fn accept_loop<A, S, F>(
    acceptor: A,
    slots: Arc<ConnectionSlots>,
    metrics: ConnectionMetrics,
    shutdown: Shutdown,
    serve: S,
) where
    A: Acceptor,
    S: Fn(A::Stream, Shutdown, Presence) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    accept_loop_with_peer(
        acceptor,
        slots,
        metrics,
        shutdown,
        move |stream, _peer, sd, presence| serve(stream, sd, presence),
    )
    .await
}

/// [`accept_loop`] for doors that need to know the socket peer of each connection (the HTTP
/// door: the client address, trusted proxies, the Unix-socket-only admin API).
pub async fn accept_loop_with_peer<A, S, F>(
    acceptor: A,
    slots: Arc<ConnectionSlots>,
    metrics: ConnectionMetrics,
    shutdown: Shutdown,
    serve: S,
) where
    A: Acceptor,
    S: Fn(A::Stream, Peer, Shutdown, Presence) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let draining = shutdown.clone().draining();
    tokio::pin!(draining);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut draining => break,
            accepted = acceptor.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if is_per_connection_error(&e) {
                        continue;
                    }
                    // Out of file descriptors or memory: retrying at once would spin. Back off
                    // a little; connections closing will free resources.
                    tracing::warn!(error = %e, "accept failed; retrying in 50 ms");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        metrics.accepted.inc();
        if let Some(slot) = slots.try_acquire() {
            let presence = slots.occupancy().register();
            let open = OpenGuard::new(metrics.open.clone());
            let conn = serve(stream, peer, shutdown.clone(), presence);
            tokio::spawn(async move {
                conn.await;
                drop(open);
                drop(slot);
            });
        } else if slots.occupancy().evict_oldest_idle() {
            // The evicted connection closes at its next poll and gives its slot back, which
            // this one waits for (on its own task: accepting goes on meanwhile).
            metrics.evicted.inc();
            let (slots, metrics) = (slots.clone(), metrics.clone());
            let conn = serve(stream, peer, shutdown.clone(), slots.occupancy().register());
            tokio::spawn(async move {
                let Some(slot) = slots.acquire_within(EVICTION_WAIT).await else {
                    metrics.rejected.inc();
                    return;
                };
                let open = OpenGuard::new(metrics.open.clone());
                conn.await;
                drop(open);
                drop(slot);
            });
        } else {
            metrics.rejected.inc();
            drop(stream);
        }
    }
    // Dropping the acceptor here closes the listening socket: new connections are refused.
}

/// Errors that concern one connection only (the peer reset it before we accepted it).
fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Keeps `tollgate_connections_open` right however a connection task ends.
struct OpenGuard(prometheus::IntGauge);

impl OpenGuard {
    fn new(g: prometheus::IntGauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Wraps a stream so that it fails with `TimedOut` once neither a read nor a write has made
/// progress for `timeout`: idle keep-alive connections, clients that stop reading their
/// answers, and half-sent requests all end up here.
///
/// The timer is re-armed lazily: progress only records the time, and the sleep is moved to the
/// new deadline when it fires early. That keeps the per-request cost at one clock read instead
/// of a timer-wheel update.
pub struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    last_progress: Instant,
    sleep: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            timeout,
            last_progress: now,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    /// Called when the inner stream is not ready: has the connection been idle too long?
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last_progress + self.timeout;
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for longer than idle_timeout",
                ));
            }
            // Progress happened since the sleep was armed: move it and poll again, which
            // registers the waker with the new deadline.
            self.sleep.as_mut().reset(deadline);
        }
    }

    /// The outcome of a read or write of the inner stream: bytes moved (`progressed`) are
    /// progress; not ready is a chance for the idle timeout to fire.
    fn after<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
        progressed: bool,
    ) -> Poll<io::Result<T>> {
        if polled.is_pending() {
            return self.poll_expired(cx).map(Err);
        }
        if progressed {
            self.last_progress = Instant::now();
        }
        polled
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        let progressed = matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        this.after(cx, read, progressed)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        let progressed = matches!(written, Poll::Ready(Ok(n)) if n > 0);
        this.after(cx, written, progressed)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        let progressed = matches!(written, Poll::Ready(Ok(n)) if n > 0);
        this.after(cx, written, progressed)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Binds a TCP listener at `addr`, the value of the configuration key `key` (such as
/// `[server] http`). The error names the key, the address, the cause and what to do.
pub fn bind_tcp(addr: &str, key: &str) -> anyhow::Result<TcpListener> {
    let std_listener = bind_std_tcp(addr, key)?;
    from_std_tcp(std_listener)
}

/// [`bind_tcp`] without registering with the runtime (a door with its own event loop).
pub fn bind_std_tcp(addr: &str, key: &str) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        anyhow::anyhow!(
            "{key} = {addr:?}: cannot listen there ({e}); {}",
            tcp_bind_fix(&e, addr, key)
        )
    })
}

/// What to do about a failed TCP bind, by its cause.
fn tcp_bind_fix(e: &io::Error, addr: &str, key: &str) -> String {
    let port = addr.rsplit(':').next().unwrap_or("");
    match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "another process listens on it (`ss -ltnp 'sport = :{port}'` names it): stop it, \
             or set {key} to a free port"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "ports below 1024 need root or the CAP_NET_BIND_SERVICE capability: set {key} to a \
             port of 1024 or above"
        ),
        io::ErrorKind::AddrNotAvailable => format!(
            "no interface of this machine has that address: set {key} to one it has \
             (127.0.0.1 for loopback, 0.0.0.0 for every interface)"
        ),
        _ => format!("check {key}"),
    }
}

/// Adopts a listener bound elsewhere (tests bind port 0 themselves, or a supervisor passes a
/// socket).
pub fn from_std_tcp(l: std::net::TcpListener) -> anyhow::Result<TcpListener> {
    l.set_nonblocking(true)
        .context("cannot make the listener non-blocking")?;
    TcpListener::from_std(l).context("cannot register the listener with the runtime")
}

/// A Unix socket file this process created: removed when dropped, but only if the path still
/// holds the same socket (another instance may have replaced it since).
pub struct UnixSocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl UnixSocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixSocketFile {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Binds a Unix socket at `path` with permissions `mode` (such as `0o660`; the configuration
/// parses and bounds it).
///
/// A socket file left behind by a process that died is removed first; a live one (something
/// accepts connections on it) or a path that is not a socket is refused, never deleted.
///
/// `key` is the configuration key that names the path (such as `[server] unix_socket`); every
/// error names it, the path, the cause and what to do.
pub fn bind_unix(
    path: &Path,
    mode: u32,
    key: &str,
) -> anyhow::Result<(UnixListener, UnixSocketFile)> {
    let shown = path.display().to_string();
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "{key} = {shown:?}: another process accepts connections on this socket (a \
                     connection to it succeeded); stop it (another tollgate?), or set {key} to \
                     another path"
                );
            }
            std::fs::remove_file(path).with_context(|| {
                format!(
                    "{key} = {shown:?}: cannot remove the stale socket a stopped process left; \
                     remove it by hand, or give the user tollgate runs as write access to its \
                     directory"
                )
            })?;
            tracing::info!(path = %path.display(), "removed a stale Unix socket file");
        }
        Ok(_) => bail!(
            "{key} = {shown:?}: the path exists and is not a socket, and tollgate never replaces \
             it; move it away, or set {key} to another path"
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "{key} = {shown:?}: cannot inspect the path; check its directory's permissions"
                )
            })
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        let fix = match e.kind() {
            io::ErrorKind::NotFound => format!(
                "its directory does not exist: create it (mkdir -p {}), or set {key} to a path \
                 in an existing directory",
                path.parent().unwrap_or(Path::new("/")).display()
            ),
            io::ErrorKind::PermissionDenied => format!(
                "the user tollgate runs as cannot create files in {}: give it write access, or \
                 set {key} to a path in a directory it may write",
                path.parent().unwrap_or(Path::new("/")).display()
            ),
            _ => format!("check {key}"),
        };
        anyhow::anyhow!("{key} = {shown:?}: cannot listen there ({e}); {fix}")
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode {mode:o} on {}", path.display()))?;
    let m = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot inspect {}", path.display()))?;
    Ok((
        listener,
        UnixSocketFile {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn idle_timeout_fires_only_without_progress() {
        let (a, mut b) = tokio::io::duplex(64);
        let timeout = Duration::from_millis(200);
        let mut idle = IdleTimeout::new(a, timeout);
        let mut buf = [0u8; 8];
        // Each byte is progress: the connection survives several timeouts' worth of time as
        // long as bytes keep coming.
        let started = Instant::now();
        for _ in 0..6 {
            tokio::time::sleep(timeout / 2).await;
            b.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        assert!(started.elapsed() > timeout * 2);
        let last_progress = Instant::now();
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let idle_for = last_progress.elapsed();
        assert!(idle_for >= timeout, "fired after {idle_for:?}");
        assert!(idle_for < timeout * 10, "fired late: {idle_for:?}");
    }

    #[tokio::test]
    async fn slots_cap_and_report_when_all_closed() {
        let slots = ConnectionSlots::new(2);
        let a = slots.try_acquire().unwrap();
        let _b = slots.try_acquire().unwrap();
        assert!(slots.try_acquire().is_none());
        assert_eq!(slots.open(), 2);
        drop(a);
        assert_eq!(slots.open(), 1);
        let wait = slots.all_closed();
        tokio::pin!(wait);
        assert!(futures_poll_once(wait.as_mut()).is_pending());
        drop(_b);
        wait.await;
    }

    fn futures_poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        let waker = futures_noop_waker();
        f.poll(&mut Context::from_waker(&waker))
    }

    fn futures_noop_waker() -> std::task::Waker {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        std::task::Waker::from(Arc::new(Noop))
    }

    #[test]
    fn unix_bind_replaces_stale_refuses_live_and_files() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.sock");
            // A stale socket: bound, then its listener dropped without removing the file.
            drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
            let (live, file) = bind_unix(&path, 0o600, "[server] unix_socket").unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            // While it is live, a second bind is refused and the file stays.
            assert!(bind_unix(&path, 0o600, "[server] unix_socket").is_err());
            assert!(path.exists());
            drop(live);
            drop(file);
            assert!(!path.exists(), "removed on drop");
            std::fs::write(&path, b"not a socket").unwrap();
            assert!(bind_unix(&path, 0o600, "[server] unix_socket").is_err());
            assert!(path.exists(), "a regular file is never deleted");
        });
    }
}
