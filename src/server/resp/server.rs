//! [`RespServer`]: the `[resp]` listeners, bound and served, and their lifecycle (start,
//! drain, stop); [`serve_resp`], the accept loop for one listener of any kind.
//!
//! The accept loop, connection cap, idle timeout and shutdown phases are the ones every door
//! shares (`server::listener`); what is the RESP door's own is where a connection runs
//! (on the server's runtime, or on the door's event-loop threads) and what it is told about
//! its peer.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;

use super::connection::serve_connection;
use super::door::{follow_phases, RespDoor};
use super::event_loop::EventLoop;
use super::options::RespOptions;
use crate::gate::Gate;
use crate::metrics::Listener;
use crate::policy::Peer;
use crate::server::listener::{
    self, Acceptor, Phase, Shutdown, ShutdownController, UnixSocketFile,
};

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
        move |stream, _shutdown, presence| {
            let peer = if via_unix {
                Some(Peer::Unix)
            } else {
                stream.peer_ip().map(Peer::Ip)
            };
            serve_connection(stream, door.clone(), peer, presence)
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
                let l = listener::bind_std_tcp(addr, "[resp] tcp")?;
                Some(listener::from_std_tcp(l)?)
            }
            None => None,
        };
        let unix = match &options.unix_socket {
            Some(path) => Some(listener::bind_unix(
                path,
                options.unix_socket_mode,
                "[resp] unix_socket",
            )?),
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
