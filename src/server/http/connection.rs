//! How the HTTP door serves one connection the listener accepted: through the fast path
//! ([`super::fastpath`]) when it is on, handing the connection to hyper at the first request
//! the fast path does not answer itself, or through hyper from the start.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::HttpService;
use crate::server::budget::ConnectionBudget;
use crate::server::listener::{IdleTimeout, Presence, Shutdown};

/// hyper refuses a read buffer smaller than this.
const MIN_HEADER_BUFFER: usize = 8 * 1024;

/// Per-server settings of HTTP connections.
pub struct HttpConnSettings {
    pub http1: http1::Builder,
    pub idle_timeout: Duration,
    /// For the fast path (hyper has its own copy in `http1`).
    pub header_read_timeout: Duration,
    /// For the fast path (hyper has its own copy in `http1`).
    pub max_header_bytes: usize,
    /// Serve plain requests with [`super::fastpath`] (else every request goes through hyper).
    pub fast_path: bool,
    /// The budget of every connection's buffers (the fast path's are held to it; hyper's
    /// are bounded per connection by `max_buf_size`). The server shares one between its
    /// doors; [`new`](Self::new) makes one of the default size.
    pub budget: Arc<ConnectionBudget>,
}

impl HttpConnSettings {
    /// The settings of `[server]`: `header_read_timeout`, `idle_timeout`, `max_header_bytes`;
    /// and whether the fast path is on.
    pub fn new(
        header_read_timeout: Duration,
        idle_timeout: Duration,
        max_header_bytes: usize,
        fast_path: bool,
    ) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            // The head's size is checked exactly once it is complete; the read buffer (which
            // bounds what a client can make tollgate hold) has room for a maximal head plus
            // a pipelined request or two behind it.
            .max_header_size(max_header_bytes)
            .max_buf_size(max_header_bytes.saturating_mul(2).max(MIN_HEADER_BUFFER))
            // Not `pipeline_flush`: with it, hyper 1.12 closes without sending the automatic
            // 431/414/400 answer to a malformed request (measured in tests/http.rs).
            .keep_alive(true);
        Self {
            http1,
            idle_timeout,
            header_read_timeout,
            max_header_bytes,
            fast_path,
            budget: Arc::new(ConnectionBudget::new(
                crate::config::ServerConfig::default().max_connection_buffer_bytes,
                None,
            )),
        }
    }
}

/// Serves one HTTP/1.1 connection: through the fast path when enabled, else through hyper.
/// What the listener's accept loop runs for each connection of an HTTP listener.
///
/// `presence` is the connection's place in the cap's idle registry: the fast path marks the
/// connection idle while it waits for a request, so that it may be closed at the cap to make
/// room; a connection served by hyper stays busy (hyper's own timeouts bound it).
pub async fn serve_connection<S>(
    stream: S,
    service: HttpService,
    settings: Arc<HttpConnSettings>,
    shutdown: Shutdown,
    presence: Presence,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if settings.fast_path {
        super::fastpath::serve_fast(stream, service, settings, shutdown, presence).await;
    } else {
        let io = IdleTimeout::new(stream, settings.idle_timeout);
        serve_hyper(io, service, settings, shutdown).await;
    }
}

/// Serves an HTTP/1.1 connection with hyper until the client closes it, a timeout fires, or
/// the server drains (then the in-flight request finishes and the connection closes) or
/// closes. `io` already carries the idle timeout.
pub(super) async fn serve_hyper<I>(
    io: I,
    service: HttpService,
    settings: Arc<HttpConnSettings>,
    shutdown: Shutdown,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = settings.http1.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let draining = shutdown.clone().draining();
    let closing = shutdown.closing();
    tokio::pin!(draining, closing);
    let mut drained = false;
    let result = loop {
        tokio::select! {
            res = conn.as_mut() => break res,
            _ = &mut draining, if !drained => {
                drained = true;
                // Finishes the request being served (if any) with `Connection: close`, then
                // closes; an idle connection closes at once.
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut closing, if drained => break Ok(()),
        }
    };
    if let Err(e) = result {
        // Clients closing mid-request, timeouts and malformed requests are routine.
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

/// A stream whose first reads return `prefix`: bytes already read from it by someone else
/// (the fast path) before handing it over.
pub(super) struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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
