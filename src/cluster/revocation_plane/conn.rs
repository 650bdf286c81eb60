//! One TCP connection of the revocation plane: reading and writing frames under time limits,
//! answering a peer (the server side), and asking one (push, fetch).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;

use super::frame::{
    decode, encode, Frame, FrameError, Message, LENGTH_BYTES, MAX_ENTRIES_PER_FRAME,
    MAX_FRAME_BYTES,
};
use super::{now_ms, Shared, PLANE};
use crate::auth::Revocation;

/// Why a connection was given up. [`ConnError::as_str`] is the `dropped` label.
#[derive(Debug)]
pub(super) enum ConnError {
    /// The peer closed the connection between frames.
    Closed,
    /// A frame did not arrive in time (or the connection could not be made in time).
    Timeout,
    /// A frame was refused.
    Frame(FrameError),
    /// A well-formed frame that is not what was expected here.
    Unexpected,
    /// The store could not log what was received.
    Store,
    Io,
}

impl ConnError {
    pub(super) fn as_str(&self) -> &'static str {
        match self {
            ConnError::Closed => "closed",
            ConnError::Timeout => "timeout",
            ConnError::Frame(e) => e.as_str(),
            ConnError::Unexpected => "unexpected",
            ConnError::Store => "store",
            ConnError::Io => "io",
        }
    }
}

impl From<io::Error> for ConnError {
    fn from(_: io::Error) -> Self {
        ConnError::Io
    }
}

/// Reads one frame's bytes (after its length prefix): waits up to `idle` for it to begin and
/// up to the plane's read timeout for the rest. A length over [`MAX_FRAME_BYTES`] is refused
/// before anything is read or allocated for it.
async fn read_frame(
    stream: &mut TcpStream,
    shared: &Shared,
    idle: std::time::Duration,
) -> Result<Vec<u8>, ConnError> {
    let mut len = [0u8; LENGTH_BYTES];
    let first = timeout(idle, stream.read(&mut len[..1]))
        .await
        .map_err(|_| ConnError::Timeout)??;
    if first == 0 {
        return Err(ConnError::Closed);
    }
    let rest = async {
        stream.read_exact(&mut len[1..]).await?;
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME_BYTES {
            return Err(ConnError::Frame(FrameError::TooLong));
        }
        let mut body = vec![0u8; n];
        stream.read_exact(&mut body).await?;
        Ok(body)
    };
    timeout(shared.options.read_timeout, rest)
        .await
        .map_err(|_| ConnError::Timeout)?
}

/// Reads and decodes one frame, counting it in or (for the caller to count) refusing it.
async fn receive(
    stream: &mut TcpStream,
    shared: &Shared,
    idle: std::time::Duration,
) -> Result<Frame, ConnError> {
    let bytes = read_frame(stream, shared, idle).await?;
    let frame = decode(&bytes, &shared.key, now_ms(), shared.options.freshness)
        .map_err(ConnError::Frame)?;
    shared.traffic.received(bytes.len() + LENGTH_BYTES);
    Ok(frame)
}

async fn send(stream: &mut TcpStream, shared: &Shared, frame: &Frame) -> Result<(), ConnError> {
    let bytes = encode(frame, &shared.key);
    timeout(shared.options.read_timeout, stream.write_all(&bytes))
        .await
        .map_err(|_| ConnError::Timeout)??;
    shared.traffic.sent(bytes.len());
    Ok(())
}

/// Accepts connections until `shutdown`, at most `max_connections` at once (those past it
/// are closed at once and counted as `too_many_connections`).
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(shared.options.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        answer(stream, &shared).await;
                        drop(permit);
                    });
                }
                Err(_) => shared.metrics.drop(PLANE, "too_many_connections"),
            },
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "revocation plane: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers the frames of one connection until it closes or misbehaves.
async fn answer(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    loop {
        match answer_one(&mut stream, shared).await {
            Ok(()) => {}
            Err(ConnError::Closed) => return,
            Err(e) => {
                shared.metrics.drop(PLANE, e.as_str());
                tracing::debug!(reason = e.as_str(), "revocation plane: connection dropped");
                return;
            }
        }
    }
}

async fn answer_one(stream: &mut TcpStream, shared: &Shared) -> Result<(), ConnError> {
    let frame = receive(stream, shared, shared.options.idle_timeout).await?;
    let request = frame.request;
    let reply = |message| Frame {
        sender: shared.name.to_string(),
        generation: shared.generation,
        sent_at_ms: now_ms(),
        request,
        message,
    };
    match frame.message {
        Message::Push { revocations } => {
            let count = revocations.len() as u32;
            shared
                .metrics
                .revocations
                .with_label_values(&["received"])
                .inc_by(u64::from(count));
            merge(shared, revocations).await?;
            // Acknowledged only once logged: a sender whose push failed here retries.
            send(stream, shared, &reply(Message::Ack { count })).await
        }
        Message::Fetch => {
            let store = shared.store.clone();
            let entries = tokio::task::spawn_blocking(move || store.list_entries())
                .await
                .map_err(|_| ConnError::Store)?;
            let revocations: Vec<Revocation> = entries.into_iter().map(|e| e.revocation).collect();
            let mut chunks = revocations.chunks(MAX_ENTRIES_PER_FRAME).peekable();
            if chunks.peek().is_none() {
                send(
                    stream,
                    shared,
                    &reply(Message::Entries {
                        revocations: Vec::new(),
                        last: true,
                    }),
                )
                .await?;
            }
            while let Some(chunk) = chunks.next() {
                let last = chunks.peek().is_none();
                let message = Message::Entries {
                    revocations: chunk.to_vec(),
                    last,
                };
                send(stream, shared, &reply(message)).await?;
            }
            shared
                .metrics
                .snapshot_transfers
                .with_label_values(&[PLANE, "out"])
                .inc();
            Ok(())
        }
        Message::Ack { .. } | Message::Entries { .. } => Err(ConnError::Unexpected),
    }
}

/// Merges into the store on the blocking pool (it fsyncs); the entries it recorded.
async fn merge(shared: &Shared, revocations: Vec<Revocation>) -> Result<usize, ConnError> {
    let store = shared.store.clone();
    match tokio::task::spawn_blocking(move || store.merge(revocations)).await {
        Ok(Ok(summary)) => Ok(summary.recorded),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "revocation plane: could not log revocations from a peer");
            Err(ConnError::Store)
        }
        Err(_) => Err(ConnError::Store),
    }
}

/// Connects to a peer's plane within the connect timeout.
pub(super) async fn connect(shared: &Shared, addr: SocketAddr) -> Result<TcpStream, ConnError> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(ip) = shared.local_ip.filter(|ip| ip.is_ipv4() == addr.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = timeout(shared.options.connect_timeout, socket.connect(addr))
        .await
        .map_err(|_| ConnError::Timeout)??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn request(shared: &Shared, message: Message) -> Frame {
    Frame {
        sender: shared.name.to_string(),
        generation: shared.generation,
        sent_at_ms: now_ms(),
        request: shared.next_request.fetch_add(1, Ordering::Relaxed),
        message,
    }
}

/// Pushes `revocations` (at most [`MAX_ENTRIES_PER_FRAME`]) on `stream` and waits for the
/// acknowledgement.
pub(super) async fn push(
    stream: &mut TcpStream,
    shared: &Shared,
    revocations: &[Revocation],
) -> Result<(), ConnError> {
    let frame = request(
        shared,
        Message::Push {
            revocations: revocations.to_vec(),
        },
    );
    send(stream, shared, &frame).await?;
    let answer = receive(stream, shared, shared.options.read_timeout).await?;
    match answer.message {
        Message::Ack { .. } if answer.request == frame.request => Ok(()),
        _ => Err(ConnError::Unexpected),
    }
}

/// Fetches every live revocation a peer holds and merges it here, chunk by chunk; the
/// entries that added or extended a revocation here.
pub(super) async fn fetch(shared: &Shared, addr: SocketAddr) -> Result<usize, ConnError> {
    let mut stream = connect(shared, addr).await?;
    let frame = request(shared, Message::Fetch);
    send(&mut stream, shared, &frame).await?;
    let mut recorded = 0;
    // Bounded: at most this many chunks (two million revocations) per fetch.
    for _ in 0..1024 {
        let answer = receive(&mut stream, shared, shared.options.read_timeout).await;
        let answer = match answer {
            Ok(a) => a,
            Err(ConnError::Closed) => return Err(ConnError::Closed),
            Err(e) => {
                shared.metrics.drop(PLANE, e.as_str());
                return Err(e);
            }
        };
        let Message::Entries { revocations, last } = answer.message else {
            shared.metrics.drop(PLANE, "unexpected");
            return Err(ConnError::Unexpected);
        };
        if answer.request != frame.request {
            shared.metrics.drop(PLANE, "unexpected");
            return Err(ConnError::Unexpected);
        }
        if !revocations.is_empty() {
            recorded += merge(shared, revocations).await?;
        }
        if last {
            shared
                .metrics
                .snapshot_transfers
                .with_label_values(&[PLANE, "in"])
                .inc();
            return Ok(recorded);
        }
    }
    Err(ConnError::Unexpected)
}
