//! One connection of the client: a writer task that batches requests into few writes, and
//! a reader task that hands each request its replies, in order.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{encode_command, ClientError, ClientOptions, Target};
use crate::resp::frame::{Frame, Protocol};
use crate::resp::{parse_frame, FrameLimits};

// ------------------------------------------------------------------------------------------
// One connection: a writer task and a reader task

/// A request on its way: its encoded commands, how many replies it expects, and where they
/// go.
struct Job {
    bytes: Bytes,
    replies: usize,
    done: oneshot::Sender<Result<Vec<Frame>, ClientError>>,
}

/// What the reader needs to know about a request the writer sent.
struct Pending {
    replies: usize,
    done: oneshot::Sender<Result<Vec<Frame>, ClientError>>,
}

pub(super) struct Connection {
    tx: mpsc::Sender<Job>,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.writer.abort();
        self.reader.abort();
    }
}

/// Most bytes the writer gathers into one write.
const MAX_WRITE_BATCH: usize = 64 * 1024;

impl Connection {
    pub(super) async fn open(
        target: &Target,
        options: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let connect_err = |e: std::io::Error| ClientError::Connect {
            target: target.to_string(),
            reason: e.to_string(),
        };
        let timeout = |_| ClientError::Connect {
            target: target.to_string(),
            reason: format!("timed out after {:?}", options.connect_timeout),
        };
        let conn = match target {
            Target::Tcp(addr) => {
                let s = tokio::time::timeout(
                    options.connect_timeout,
                    tokio::net::TcpStream::connect(addr.as_str()),
                )
                .await
                .map_err(timeout)?
                .map_err(connect_err)?;
                let _ = s.set_nodelay(true);
                Self::spawn(s, options)
            }
            Target::Unix(path) => {
                let s = tokio::time::timeout(
                    options.connect_timeout,
                    tokio::net::UnixStream::connect(path),
                )
                .await
                .map_err(timeout)?
                .map_err(connect_err)?;
                Self::spawn(s, options)
            }
        };
        conn.handshake(options).await?;
        Ok(conn)
    }

    async fn handshake(&self, options: &ClientOptions) -> Result<(), ClientError> {
        let mut buf = BytesMut::new();
        match (options.protocol, &options.password) {
            (Protocol::Resp3, Some(pw)) => {
                encode_command(&["HELLO", "3", "AUTH", "default", pw.as_str()], &mut buf)
            }
            (Protocol::Resp3, None) => encode_command(&["HELLO", "3"], &mut buf),
            (Protocol::Resp2, Some(pw)) => encode_command(&["AUTH", pw.as_str()], &mut buf),
            (Protocol::Resp2, None) => return Ok(()),
        }
        let frames = self
            .request(buf.freeze(), 1, options.connect_timeout)
            .await?;
        match &frames[0] {
            Frame::Error(e) => Err(ClientError::Server(e.clone())),
            _ => Ok(()),
        }
    }

    fn spawn<S>(stream: S, options: &ClientOptions) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        let (pending_tx, pending_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(write_half, rx, pending_tx));
        let reader = tokio::spawn(read_loop(read_half, pending_rx, options.frame_limits));
        Self { tx, writer, reader }
    }

    pub(super) fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.reader.is_finished()
    }

    pub(super) async fn request(
        &self,
        bytes: Bytes,
        replies: usize,
        timeout: Duration,
    ) -> Result<Vec<Frame>, ClientError> {
        let (done, rx) = oneshot::channel();
        let lost = || ClientError::ConnectionLost("the connection is closed".into());
        self.tx
            .send(Job {
                bytes,
                replies,
                done,
            })
            .await
            .map_err(|_| lost())?;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(ClientError::Timeout(timeout)),
            Ok(Err(_)) => Err(lost()),
            Ok(Ok(result)) => result,
        }
    }
}

/// Takes every queued request, registers each with the reader (before its bytes leave, so
/// that a reply can never arrive for a request the reader does not know), and writes them
/// in one go.
async fn write_loop<W: AsyncWrite>(
    write_half: W,
    mut rx: mpsc::Receiver<Job>,
    pending: mpsc::UnboundedSender<Pending>,
) {
    tokio::pin!(write_half);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while let Some(job) = rx.recv().await {
        let mut next = Some(job);
        while let Some(job) = next.take() {
            buf.extend_from_slice(&job.bytes);
            if pending
                .send(Pending {
                    replies: job.replies,
                    done: job.done,
                })
                .is_err()
            {
                return; // The reader is gone: the connection failed.
            }
            if buf.len() < MAX_WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if write_half.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
    // Every handle is gone: say goodbye so the server closes its side.
    let _ = write_half.shutdown().await;
}

/// Parses replies and completes requests in order. On a read or protocol error every
/// waiting request fails with it.
async fn read_loop<R: AsyncRead>(
    read_half: R,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    limits: FrameLimits,
) {
    tokio::pin!(read_half);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut current: Option<(Pending, Vec<Frame>)> = None;
    let error = loop {
        // Hand out every complete reply in the buffer.
        let mut failed = None;
        loop {
            match parse_frame(&buf, &limits) {
                Ok(Some((f, used))) => {
                    let _ = buf.split_to(used);
                    if current.is_none() {
                        match pending.try_recv() {
                            Ok(p) => {
                                let n = p.replies;
                                current = Some((p, Vec::with_capacity(n)));
                            }
                            Err(_) => {
                                failed = Some(ClientError::Protocol(
                                    "a reply arrived with no request waiting".into(),
                                ));
                                break;
                            }
                        }
                    }
                    if let Some((p, frames)) = current.as_mut() {
                        frames.push(f);
                        if frames.len() == p.replies {
                            if let Some((p, frames)) = current.take() {
                                let _ = p.done.send(Ok(frames));
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(ClientError::Protocol(e.to_string()));
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break e;
        }
        buf.reserve(16 * 1024);
        match read_half.read_buf(&mut buf).await {
            Ok(0) => break ClientError::ConnectionLost("the server closed the connection".into()),
            Ok(_) => {}
            Err(e) => break ClientError::ConnectionLost(e.to_string()),
        }
    };
    if let Some((p, _)) = current.take() {
        let _ = p.done.send(Err(error.clone()));
    }
    pending.close();
    while let Ok(p) = pending.try_recv() {
        let _ = p.done.send(Err(error.clone()));
    }
}
