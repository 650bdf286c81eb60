//! An async client for tollgate's RESP protocol (docs/protocol.md), with pipelining and a
//! small pool.
//!
//! Each pooled connection runs two tasks: a writer, which takes every request queued so far
//! and sends them in one write, and a reader, which parses replies and hands each to its
//! request in order. So any number of tasks can share one [`Client`] and their requests are
//! pipelined on the wire without anyone asking; [`Client::pipeline`] additionally sends a
//! batch as one unit and returns its replies together. Requests go to the pool's connections
//! in turn; a connection that fails is replaced on its next use.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tollgate::client::ClientError> {
//! use tollgate::client::{Client, ClientOptions, Target};
//!
//! let client = Client::connect(Target::tcp("127.0.0.1:7070"), ClientOptions::default()).await?;
//! client.ping().await?;
//! let d = client.check("user:42", "basic", 1).await?;
//! if d.allowed {
//!     println!("{} of {} left", d.remaining, d.limit);
//! } else {
//!     println!("retry in {} s", d.retry_after_secs.unwrap_or(0));
//! }
//! // Many checks, one round trip.
//! let mut p = client.pipeline();
//! for i in 0..100 {
//!     p.check(&format!("ip:10.0.0.{i}"), "anonymous", 1);
//! }
//! let replies = p.execute().await?;
//! assert_eq!(replies.len(), 100);
//! # Ok(()) }
//! ```

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

mod connection;

use crate::resp::frame::{self, Frame, Protocol};
use crate::resp::FrameLimits;
use connection::Connection;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host:port`, e.g. `127.0.0.1:7070`.
    Tcp(String),
    /// A Unix socket path.
    Unix(PathBuf),
}

impl Target {
    pub fn tcp(addr: impl ToString) -> Self {
        Target::Tcp(addr.to_string())
    }

    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Target::Unix(path.into())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "{a}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// How a [`Client`] connects and behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Connections in the pool (at least 1).
    pub pool_size: usize,
    /// Sent as `AUTH <password>` on every connection (unlocks admin commands).
    pub password: Option<String>,
    /// `Resp3` sends `HELLO 3` on every connection.
    pub protocol: Protocol,
    pub connect_timeout: Duration,
    /// A request without its reply after this fails with [`ClientError::Timeout`]; the
    /// connection carries on (the late reply is discarded).
    pub request_timeout: Duration,
    /// Requests queued per connection before senders wait.
    pub queue_depth: usize,
    /// Bounds on the replies read.
    pub frame_limits: FrameLimits,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            pool_size: 2,
            password: None,
            protocol: Protocol::Resp2,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            queue_depth: 1024,
            frame_limits: FrameLimits::default(),
        }
    }
}

/// What can go wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The server answered with an error (`-ERR …`): the whole message, code included.
    #[error("{0}")]
    Server(String),
    /// The server's bytes are not valid RESP.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A well-formed reply of the wrong shape for the typed call that asked.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
}

/// The answer to a `CHECK`: the deciding limit's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReply {
    pub allowed: bool,
    /// The deciding limit's quota per window.
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the quota is fully available again.
    pub reset_secs: u64,
    /// Seconds to wait before retrying; `None` when allowed.
    pub retry_after_secs: Option<u64>,
    /// The deciding limit's name, when asked for (`WITHNAME`).
    pub limit_name: Option<String>,
}

impl CheckReply {
    /// Reads a `CHECK` reply: `[allowed, limit, remaining, reset, retry_after]` (+ name).
    pub fn from_frame(f: &Frame) -> Result<Self, ClientError> {
        let bad = || ClientError::UnexpectedReply(format!("not a CHECK reply: {f:?}"));
        let items = match f {
            Frame::Error(e) => return Err(ClientError::Server(e.clone())),
            Frame::Array(items) if items.len() == 5 || items.len() == 6 => items,
            _ => return Err(bad()),
        };
        let int = |i: usize| items[i].as_integer().ok_or_else(bad);
        let nonneg = |i: usize| int(i).and_then(|v| u64::try_from(v).map_err(|_| bad()));
        let allowed = match int(0)? {
            0 => false,
            1 => true,
            _ => return Err(bad()),
        };
        let retry = int(4)?;
        let limit_name = match items.get(5) {
            Some(n) => Some(
                n.as_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .ok_or_else(bad)?,
            ),
            None => None,
        };
        Ok(CheckReply {
            allowed,
            limit: nonneg(1)?,
            remaining: nonneg(2)?,
            reset_secs: nonneg(3)?,
            retry_after_secs: u64::try_from(retry).ok().filter(|_| !allowed),
            limit_name,
        })
    }
}

/// The answer to a `VERIFY`: the access decision `/auth` would give the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReply {
    /// 200 allowed, 401 unauthenticated, 403 refused or rate limited.
    pub status: u16,
    /// Why it was refused (`invalid_token`, `revoked`, `forbidden`, `rate_limited`…);
    /// `None` when allowed.
    pub reason: Option<String>,
    /// The verified user id; `None` when anonymous or not verified.
    pub user_id: Option<String>,
    /// The user's roles, comma-separated as in the token; `None` when it has none.
    pub role: Option<String>,
    /// The tier the request was counted in; `None` when refused before the limits.
    pub tier: Option<String>,
    /// Hits left on the deciding limit; `None` when the limits were not reached.
    pub remaining: Option<u64>,
    /// Seconds to wait before retrying; `Some` only when rate limited.
    pub retry_after_secs: Option<u64>,
}

impl VerifyReply {
    /// Whether the request may proceed (status 200).
    pub fn allowed(&self) -> bool {
        self.status == 200
    }

    /// The roles one by one.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.role
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
    }

    /// Reads a `VERIFY` reply: `[status, reason, user_id, role, tier, remaining,
    /// retry_after]`, absent strings null and absent integers -1.
    pub fn from_frame(f: &Frame) -> Result<Self, ClientError> {
        let bad = || ClientError::UnexpectedReply(format!("not a VERIFY reply: {f:?}"));
        let items = match f {
            Frame::Error(e) => return Err(ClientError::Server(e.clone())),
            Frame::Array(items) if items.len() == 7 => items,
            _ => return Err(bad()),
        };
        let text = |i: usize| match &items[i] {
            Frame::Null => Ok(None),
            other => other
                .as_bytes()
                .map(|b| Some(String::from_utf8_lossy(b).into_owned()))
                .ok_or_else(bad),
        };
        // -1 (absent) or a count.
        let count = |i: usize| match items[i].as_integer() {
            Some(-1) => Ok(None),
            Some(n) => u64::try_from(n).map(Some).map_err(|_| bad()),
            None => Err(bad()),
        };
        let status = items[0]
            .as_integer()
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(bad)?;
        Ok(VerifyReply {
            status,
            reason: text(1)?,
            user_id: text(2)?,
            role: text(3)?,
            tier: text(4)?,
            remaining: count(5)?,
            retry_after_secs: count(6)?,
        })
    }
}

/// Encodes `VERIFY <token> <method> <path> <client-ip>` (no token: an empty argument).
fn encode_verify(
    token: Option<&str>,
    method: &str,
    path: &str,
    client_ip: IpAddr,
    out: &mut BytesMut,
) {
    let ip = client_ip.to_string();
    encode_command(
        &[
            "VERIFY".as_bytes(),
            token.unwrap_or("").as_bytes(),
            method.as_bytes(),
            path.as_bytes(),
            ip.as_bytes(),
        ],
        out,
    );
}

/// What to revoke ([`Client::revoke`]): the same two forms as `POST /admin/revoke`.
pub use crate::gate::RevokeRequest;

/// One `CHECK` with every option.
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    pub key: &'a str,
    pub tier: &'a str,
    pub hits: u64,
    /// A named limit checked together with the tier's.
    pub limit: Option<&'a str>,
    /// Ask for the deciding limit's name too.
    pub with_name: bool,
}

impl CheckRequest<'_> {
    fn encode(&self, out: &mut BytesMut) {
        let mut hits = itoa::Buffer::new();
        let hits = hits.format(self.hits).as_bytes();
        let n = 3
            + if self.hits != 1 { 2 } else { 0 }
            + if self.limit.is_some() { 2 } else { 0 }
            + usize::from(self.with_name);
        frame::put_array_header(out, n);
        frame::put_bulk(out, b"CHECK");
        frame::put_bulk(out, self.key.as_bytes());
        frame::put_bulk(out, self.tier.as_bytes());
        if self.hits != 1 {
            frame::put_bulk(out, b"HITS");
            frame::put_bulk(out, hits);
        }
        if let Some(l) = self.limit {
            frame::put_bulk(out, b"LIMIT");
            frame::put_bulk(out, l.as_bytes());
        }
        if self.with_name {
            frame::put_bulk(out, b"WITHNAME");
        }
    }
}

fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    frame::put_array_header(out, args.len());
    for a in args {
        frame::put_bulk(out, a.as_ref());
    }
}

/// A pooled client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    target: Target,
    options: ClientOptions,
    slots: Vec<Slot>,
    next: AtomicUsize,
}

/// One pool entry: the live connection, replaced under the async lock when it has failed.
struct Slot {
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

impl Client {
    /// Opens the pool's connections (authenticating and switching protocol as asked), so
    /// that a wrong address or password fails here rather than on first use.
    pub async fn connect(target: Target, options: ClientOptions) -> Result<Self, ClientError> {
        let pool = options.pool_size.max(1);
        let mut slots = Vec::with_capacity(pool);
        for _ in 0..pool {
            let conn = Connection::open(&target, &options).await?;
            slots.push(Slot {
                conn: tokio::sync::Mutex::new(Some(Arc::new(conn))),
            });
        }
        Ok(Self {
            inner: Arc::new(ClientInner {
                target,
                options,
                slots,
                next: AtomicUsize::new(0),
            }),
        })
    }

    /// The next connection of the pool, reconnecting it if it failed.
    async fn connection(&self) -> Result<Arc<Connection>, ClientError> {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.slots.len();
        let mut slot = self.inner.slots[i].conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        *slot = None;
        let c = Arc::new(Connection::open(&self.inner.target, &self.inner.options).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn send(&self, bytes: Bytes, replies: usize) -> Result<Vec<Frame>, ClientError> {
        let conn = self.connection().await?;
        conn.request(bytes, replies, self.inner.options.request_timeout)
            .await
    }

    /// Sends any command; an error reply comes back as [`ClientError::Server`].
    pub async fn command<A: AsRef<[u8]>>(&self, args: &[A]) -> Result<Frame, ClientError> {
        let mut buf = BytesMut::new();
        encode_command(args, &mut buf);
        let mut frames = self.send(buf.freeze(), 1).await?;
        match frames.pop() {
            Some(Frame::Error(e)) => Err(ClientError::Server(e)),
            Some(f) => Ok(f),
            None => Err(ClientError::Protocol("no reply".into())),
        }
    }

    /// `PING`: expects `PONG`.
    pub async fn ping(&self) -> Result<(), ClientError> {
        match self.command(&["PING"]).await? {
            Frame::Simple(s) if s == "PONG" => Ok(()),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// `CHECK key tier [HITS hits]`.
    pub async fn check(&self, key: &str, tier: &str, hits: u64) -> Result<CheckReply, ClientError> {
        self.check_request(&CheckRequest {
            key,
            tier,
            hits,
            limit: None,
            with_name: false,
        })
        .await
    }

    /// `CHECK` with every option.
    pub async fn check_request(&self, req: &CheckRequest<'_>) -> Result<CheckReply, ClientError> {
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        let frames = self.send(buf.freeze(), 1).await?;
        CheckReply::from_frame(&frames[0])
    }

    /// `VERIFY`: the access decision for one request of the protected application, as
    /// `/auth` gives it to nginx. `token` is the bearer token (`None`: anonymous), `method`
    /// and `path` the request's (the path may carry its query), `client_ip` the end client's
    /// address, which tollgate believes only when this client connects from a trusted proxy
    /// (loopback and the Unix socket by default; docs/protocol.md).
    ///
    /// A refusal is a reply, not an error: check [`VerifyReply::allowed`].
    ///
    /// ```no_run
    /// # async fn demo(client: &tollgate::client::Client, bearer: &str) -> Result<(), tollgate::client::ClientError> {
    /// let ip = "203.0.113.7".parse().unwrap();
    /// let v = client.verify(Some(bearer), "GET", "/api/orders?page=2", ip).await?;
    /// if v.allowed() {
    ///     println!("user {:?} in tier {:?}, {:?} left", v.user_id, v.tier, v.remaining);
    /// } else if v.status == 403 && v.reason.as_deref() == Some("rate_limited") {
    ///     println!("429, retry in {} s", v.retry_after_secs.unwrap_or(1));
    /// } else {
    ///     println!("{} {}", v.status, v.reason.unwrap_or_default());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn verify(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        client_ip: IpAddr,
    ) -> Result<VerifyReply, ClientError> {
        let mut buf = BytesMut::new();
        encode_verify(token, method, path, client_ip, &mut buf);
        let frames = self.send(buf.freeze(), 1).await?;
        VerifyReply::from_frame(&frames[0])
    }

    /// `REVOKE JTI <jti> <exp>`: the token with this `jti` is refused from now on (kept
    /// until `exp`, seconds since the epoch). Admin only: connect with
    /// [`ClientOptions::password`] set to the admin secret. `Ok` means the revocation is
    /// in force and written to the revocation log (fsynced).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), tollgate::client::ClientError> {
    /// use tollgate::client::{Client, ClientOptions, Target};
    ///
    /// let admin = Client::connect(
    ///     Target::unix("/run/tollgate/resp.sock"),
    ///     ClientOptions {
    ///         password: std::env::var("TOLLGATE_ADMIN_SECRET").ok(),
    ///         pool_size: 1,
    ///         ..ClientOptions::default()
    ///     },
    /// )
    /// .await?;
    /// admin.revoke_jti("0b7c5f0e-jti", 1_767_225_600).await?;
    /// // Log user-42 out everywhere: every token issued before now.
    /// let now = std::time::SystemTime::now()
    ///     .duration_since(std::time::UNIX_EPOCH)
    ///     .unwrap()
    ///     .as_secs() as i64;
    /// admin.revoke_sub("user-42", now).await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke_jti(&self, jti: &str, exp: i64) -> Result<(), ClientError> {
        self.revoke(&RevokeRequest::Jti {
            jti: jti.to_string(),
            exp,
        })
        .await
    }

    /// `REVOKE SUB <sub> <before>`: every token of `sub` issued before `before` (seconds
    /// since the epoch) is refused from now on. Admin only, like [`Client::revoke_jti`].
    pub async fn revoke_sub(&self, sub: &str, before: i64) -> Result<(), ClientError> {
        self.revoke(&RevokeRequest::Subject {
            sub: sub.to_string(),
            before,
        })
        .await
    }

    /// `REVOKE` in either form; `Ok` once tollgate answered `+OK`.
    pub async fn revoke(&self, request: &RevokeRequest) -> Result<(), ClientError> {
        let (kind, id, at) = match request {
            RevokeRequest::Jti { jti, exp } => ("JTI", jti, exp),
            RevokeRequest::Subject { sub, before } => ("SUB", sub, before),
        };
        let at = at.to_string();
        match self
            .command(&["REVOKE", kind, id.as_str(), at.as_str()])
            .await?
        {
            Frame::Simple(s) if s == "OK" => Ok(()),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A batch of commands sent in one write on one connection; replies come back together,
    /// in order.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline {
            client: self.clone(),
            buf: BytesMut::new(),
            count: 0,
        }
    }
}

/// Commands collected to be sent at once ([`Client::pipeline`]).
pub struct Pipeline {
    client: Client,
    buf: BytesMut,
    count: usize,
}

impl Pipeline {
    /// Adds any command.
    pub fn command<A: AsRef<[u8]>>(&mut self, args: &[A]) -> &mut Self {
        encode_command(args, &mut self.buf);
        self.count += 1;
        self
    }

    /// Adds `CHECK key tier [HITS hits]`; read its reply with [`CheckReply::from_frame`].
    pub fn check(&mut self, key: &str, tier: &str, hits: u64) -> &mut Self {
        self.check_request(&CheckRequest {
            key,
            tier,
            hits,
            limit: None,
            with_name: false,
        })
    }

    /// Adds a `CHECK` with every option.
    pub fn check_request(&mut self, req: &CheckRequest<'_>) -> &mut Self {
        req.encode(&mut self.buf);
        self.count += 1;
        self
    }

    /// Adds a `VERIFY` ([`Client::verify`]); read its reply with
    /// [`VerifyReply::from_frame`].
    pub fn verify(
        &mut self,
        token: Option<&str>,
        method: &str,
        path: &str,
        client_ip: IpAddr,
    ) -> &mut Self {
        encode_verify(token, method, path, client_ip, &mut self.buf);
        self.count += 1;
        self
    }

    /// Commands added so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sends the batch; returns one frame per command, error replies included as
    /// [`Frame::Error`] (one failing command does not hide the others' answers).
    pub async fn execute(self) -> Result<Vec<Frame>, ClientError> {
        if self.count == 0 {
            return Ok(Vec::new());
        }
        self.client.send(self.buf.freeze(), self.count).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_request_encoding() {
        let mut b = BytesMut::new();
        CheckRequest {
            key: "k",
            tier: "basic",
            hits: 1,
            limit: None,
            with_name: false,
        }
        .encode(&mut b);
        assert_eq!(&b[..], b"*3\r\n$5\r\nCHECK\r\n$1\r\nk\r\n$5\r\nbasic\r\n");
        let mut b = BytesMut::new();
        CheckRequest {
            key: "k",
            tier: "t",
            hits: 250,
            limit: Some("auth"),
            with_name: true,
        }
        .encode(&mut b);
        assert_eq!(
            &b[..],
            &b"*8\r\n$5\r\nCHECK\r\n$1\r\nk\r\n$1\r\nt\r\n$4\r\nHITS\r\n$3\r\n250\r\n$5\r\nLIMIT\r\n$4\r\nauth\r\n$8\r\nWITHNAME\r\n"[..]
        );
    }

    #[test]
    fn verify_encoding_and_decoding() {
        let mut b = BytesMut::new();
        encode_verify(None, "GET", "/a?b", "::1".parse().unwrap(), &mut b);
        assert_eq!(
            &b[..],
            &b"*5\r\n$6\r\nVERIFY\r\n$0\r\n\r\n$3\r\nGET\r\n$4\r\n/a?b\r\n$3\r\n::1\r\n"[..]
        );
        let reply = |v: Vec<Frame>| VerifyReply::from_frame(&Frame::Array(v));
        let ok = reply(vec![
            Frame::Integer(200),
            Frame::Null,
            Frame::bulk("user_1"),
            Frame::bulk("user, premium"),
            Frame::bulk("premium"),
            Frame::Integer(41),
            Frame::Integer(-1),
        ])
        .unwrap();
        assert!(ok.allowed() && ok.reason.is_none() && ok.retry_after_secs.is_none());
        assert_eq!(ok.roles().collect::<Vec<_>>(), ["user", "premium"]);
        assert_eq!(
            (ok.remaining, ok.tier.as_deref()),
            (Some(41), Some("premium"))
        );
        let limited = reply(vec![
            Frame::Integer(403),
            Frame::bulk("rate_limited"),
            Frame::bulk("u"),
            Frame::Null,
            Frame::bulk("basic"),
            Frame::Integer(0),
            Frame::Integer(30),
        ])
        .unwrap();
        assert!(!limited.allowed());
        assert_eq!(limited.retry_after_secs, Some(30));
        assert_eq!(limited.roles().count(), 0);
        let mut short = vec![Frame::Integer(200); 6];
        short[1] = Frame::Null;
        assert!(reply(short).is_err());
        let mut neg = vec![Frame::Null; 7];
        neg[0] = Frame::Integer(401);
        neg[5] = Frame::Integer(-2);
        neg[6] = Frame::Integer(-1);
        assert!(reply(neg).is_err());
        assert_eq!(
            VerifyReply::from_frame(&Frame::error("ERR x")).unwrap_err(),
            ClientError::Server("ERR x".into())
        );
    }

    #[test]
    fn check_reply_decoding() {
        let ints = |v: &[i64]| Frame::Array(v.iter().map(|&n| Frame::Integer(n)).collect());
        let allowed = CheckReply::from_frame(&ints(&[1, 500, 499, 3600, -1])).unwrap();
        assert!(allowed.allowed && allowed.retry_after_secs.is_none());
        assert_eq!((allowed.limit, allowed.remaining), (500, 499));
        let denied = CheckReply::from_frame(&ints(&[0, 5, 0, 300, 42])).unwrap();
        assert_eq!(denied.retry_after_secs, Some(42));
        let mut named = vec![Frame::Integer(1); 5];
        named[4] = Frame::Integer(-1);
        named.push(Frame::bulk("basic"));
        let n = CheckReply::from_frame(&Frame::Array(named)).unwrap();
        assert_eq!(n.limit_name.as_deref(), Some("basic"));
        assert_eq!(
            CheckReply::from_frame(&Frame::error("ERR unknown tier")).unwrap_err(),
            ClientError::Server("ERR unknown tier".into())
        );
        assert!(CheckReply::from_frame(&ints(&[2, 1, 1, 1, 1])).is_err());
        assert!(CheckReply::from_frame(&ints(&[1, -1, 1, 1, 1])).is_err());
        assert!(CheckReply::from_frame(&Frame::simple("OK")).is_err());
    }
}
