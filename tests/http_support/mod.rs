//! Helpers shared by the HTTP integration tests: a server on an ephemeral loopback port, a
//! configuration builder, and a raw HTTP/1.1 client that speaks over any stream (TCP or Unix
//! socket) so tests can see exactly what goes over the wire (keep-alive, pipelining, EOF).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use tollgate::clock::ManualClock;
use tollgate::config::Algorithm;
use tollgate::config::{Config, LimitConfig};
use tollgate::server::{ServerBuilder, ServerHandle};

/// Upper bound for anything a test waits on: generous, so a loaded CI machine does not flake,
/// but a hang still fails instead of blocking forever.
pub const WAIT: Duration = Duration::from_secs(10);

/// 2030-01-01T00:00:00Z: a fixed start time so windows are predictable.
pub const T0_MILLIS: u64 = 1_893_456_000_000;

pub fn limit(limit: u64, window: &str) -> LimitConfig {
    LimitConfig {
        limit,
        window: window.to_string(),
        algorithm: Algorithm::SlidingWindow,
        key: None,
    }
}

/// A configuration with the given tiers and limits, HTTP on an ephemeral loopback port.
/// The tiers `[auth]` names by default (anonymous, basic) are added when not given, so the
/// configuration validates.
pub fn config(tiers: &[(&str, LimitConfig)], limits: &[(&str, LimitConfig)]) -> Config {
    let mut c = Config::default();
    c.server.http = "127.0.0.1:0".into();
    c.tiers = tiers
        .iter()
        .map(|(n, l)| (n.to_string(), l.clone()))
        .collect::<BTreeMap<_, _>>();
    for default in ["anonymous", "basic"] {
        c.tiers
            .entry(default.to_string())
            .or_insert_with(|| limit(100, "1h"));
    }
    c.limits = limits
        .iter()
        .map(|(n, l)| (n.to_string(), l.clone()))
        .collect::<BTreeMap<_, _>>();
    c
}

/// Starts a server on a manual clock at [`T0_MILLIS`].
pub async fn start(config: Config) -> (ServerHandle, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0_MILLIS));
    let server = ServerBuilder::new(config)
        .clock(clock.clone())
        .start()
        .await
        .expect("server starts");
    (server, clock)
}

/// One parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-cased names, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 client over one stream.
pub struct RawClient<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawClient<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, raw: &str) {
        tokio::time::timeout(WAIT, self.stream.write_all(raw.as_bytes()))
            .await
            .expect("write timed out")
            .expect("write failed");
    }

    /// `GET target` with keep-alive.
    pub async fn get(&mut self, target: &str) -> RawResponse {
        self.send(&format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"))
            .await;
        self.read_response()
            .await
            .expect("a response, not end of stream")
    }

    /// Reads one response; `None` on a clean end of stream before any byte of it.
    pub async fn read_response(&mut self) -> Option<RawResponse> {
        tokio::time::timeout(WAIT, self.read_response_inner(true))
            .await
            .expect("response timed out")
    }

    /// Reads the head of an answer to HEAD: it announces a length but carries no body.
    pub async fn read_response_head_only(&mut self) -> RawResponse {
        tokio::time::timeout(WAIT, self.read_response_inner(false))
            .await
            .expect("response timed out")
            .expect("a response, not end of stream")
    }

    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            // A reset counts as the end of the stream: the server closed.
            Err(_) => 0,
        }
    }

    async fn read_response_inner(&mut self, with_body: bool) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill().await == 0 {
                assert!(
                    self.buf.is_empty(),
                    "stream ended inside a response head: {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                return None;
            }
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line has a colon");
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let len: usize = if with_body {
            headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().expect("numeric content-length"))
                .unwrap_or(0)
        } else {
            0
        };
        let body_start = head_end + 4;
        while self.buf.len() < body_start + len {
            assert!(self.fill().await > 0, "stream ended inside a response body");
        }
        let body = self.buf[body_start..body_start + len].to_vec();
        self.buf.drain(..body_start + len);
        Some(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Waits for the server to close the stream (end of stream or reset), failing if it sends
    /// anything else first.
    pub async fn expect_closed(&mut self) {
        let r = tokio::time::timeout(WAIT, self.fill())
            .await
            .expect("the server did not close the connection");
        assert_eq!(
            r,
            0,
            "expected the connection to close, got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    pub fn into_inner(self) -> S {
        self.stream
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A raw client connected to the server's TCP listener.
pub async fn tcp_client(server: &ServerHandle) -> RawClient<tokio::net::TcpStream> {
    let s = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(server.http_addr()))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    RawClient::new(s)
}

/// Polls `cond` until it holds, failing after [`WAIT`]. For conditions only observable by
/// asking again (a gauge, a file's existence), never as a stand-in for a known event.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
