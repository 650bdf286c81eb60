//! The door's own event-loop threads (`[resp] threads`).

use anyhow::Context as _;
use tokio::task::JoinHandle;

use super::door::RespDoor;
use super::idle_poll;
use super::server::serve_resp;
use crate::metrics::Listener;
use crate::server::listener::Shutdown;

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
pub(super) struct EventLoop {
    /// Done when the thread stopped accepting (the server drains).
    pub(super) accepting: JoinHandle<()>,
    /// Fires when the thread has ended: its connections closed, or were dropped when the
    /// server closed.
    pub(super) exited: tokio::sync::oneshot::Receiver<()>,
}

impl EventLoop {
    /// Starts event-loop thread `i` on its own clones of the listeners. Must be called in
    /// a runtime (the accepting handle is a task there).
    pub(super) fn start(
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
