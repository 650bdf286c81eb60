//! The HTTP/1.1 fast path: answers plain requests itself and hands every other connection
//! state to hyper.
//!
//! Why it exists: `/check` and `/auth` are the hot paths (`/auth` runs on every request of the
//! protected application), and through hyper an answer spent more CPU in building and encoding
//! `http` types (a request `Uri` and `HeaderMap`, a response `HeaderMap`, a per-request
//! header-read timer, a boxed future) than in the decision itself. Measured with
//! `benches/http.sh` (docs/benchmarks.md, "HTTP /check"): the fast path cuts the server's CPU
//! per request by about a fifth, which is what brings `/check` to the target ratio against
//! nginx.
//!
//! What it handles: a complete request head, parsed with `httparse` (hyper's own parser), over
//! HTTP/1.1 in origin form, with exactly one `Host` header, with no body (`Content-Length` absent or `0`, no
//! `Transfer-Encoding`), no `Expect` and no `Upgrade`, whose method is `GET` — or, for
//! `/auth`, any method but `CONNECT` (nginx's auth subrequest carries the original method).
//! `/check` and `/auth` are decided and written straight into the output buffer, by the same
//! field writers hyper's answers are built with ([`super::render`]); for `/auth` only the
//! headers the gate reads are copied out of the read buffer. Any other GET goes through the
//! same router as hyper ([`super::HttpShared::reply`]) and its [`Reply`](super::Reply) is
//! written here. Pipelined requests are answered in order, with one write per batch.
//!
//! What it hands to hyper: everything else — other methods, HTTP/1.0, bodies, the admin API,
//! malformed or oversized heads, too many headers, no `Host` or two of them (which
//! `HttpService::call` refuses with 400) — together with the bytes already read.
//! From then on the connection is hyper's, with its strict parsing and its automatic
//! 400/414/431 answers. So the fast path never has to get an unusual case right: it only has
//! to recognise the usual one. Both paths give the same answers (tests/http_paths.rs,
//! tests/http_auth.rs).
//!
//! Memory: the buffers are held to the connection buffer budget ([`crate::server::budget`]):
//! the output buffer grows only within it (else the answers made so far are written first),
//! and buffers that grew past 64 KiB are replaced once drained. At the connection
//! cap, a connection waiting for its next request (or its first) may be closed to make room
//! ([`crate::server::occupancy`]).
//!
//! Timeouts and shutdown match the hyper path: `IdleTimeout` for idle connections and stalled
//! writes, `header_read_timeout` from the accept for a connection's first request and from the
//! first byte of a later head that arrives in pieces (a timer exists only then), and on drain a connection closes after the request being answered
//! (`Connection: close`) or at once when idle.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use http::{Method, Uri};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::check::write_decision;
use super::connection::{serve_hyper, HttpConnSettings, Rewind};
use super::render::write_problem;
use super::{HttpService, ADMIN_PREFIX, AUTH_PATH};
use crate::server::budget::BufferAccount;
use crate::server::listener::{IdleTimeout, Phase, Presence, Shutdown};

/// Headers a fast-path request may carry; more goes to hyper (which allows 100).
const MAX_HEADERS: usize = 32;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;
/// Answers are written once this much is buffered, even mid-batch, to bound the buffer.
const MAX_PENDING_OUT: usize = 64 * 1024;
/// Buffers that grew past this (a large pipelined batch) are replaced once drained.
const KEEP_BUFFER: usize = 64 * 1024;
/// Room the output buffer must have before an answer is made; with less it grows first (a
/// doubling, reserved from the budget) or is written out.
const OUT_ROOM: usize = 512;

/// Where one header of a parsed head is: name and value as byte ranges of the read buffer.
///
/// Public (hidden) only for the `http_fastpath` fuzz target, like [`Head`] and [`parse_head`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: (usize, usize),
    pub value: (usize, usize),
}

/// A request head, as far as the fast path cares.
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// Not complete yet.
    Partial,
    /// A plain request: `len` bytes of head, the method and the target at these ranges, and
    /// whether the client asked to close after the answer. Its headers are in the span list
    /// [`parse_head`] filled.
    Plain {
        len: usize,
        method: (usize, usize),
        target: (usize, usize),
        close: bool,
    },
    /// Anything else: hyper's.
    Other,
}

/// Whether a request target is `/auth` (with or without a query).
fn is_auth_target(target: &str) -> bool {
    target
        .strip_prefix(AUTH_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
}

/// Classifies the head at the start of `buf`, and fills `spans` with where its headers are.
/// `max_head` is `server.max_header_bytes`.
///
/// Plain means: HTTP/1.1 in origin form, exactly one `Host`, no body, no `Expect`, no
/// `Upgrade`, and the method
/// `GET` — or any method but `CONNECT` for `/auth`, since nginx's auth subrequest carries the
/// original request's method.
///
/// Public (hidden) only so that the `http_fastpath` fuzz target can hold it against httparse.
#[doc(hidden)]
pub fn parse_head(buf: &[u8], max_head: usize, spans: &mut Vec<HeaderSpan>) -> Head {
    spans.clear();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= max_head {
                Head::Other // hyper reads on and answers 431
            } else {
                Head::Partial
            };
        }
        Err(_) => return Head::Other,
    };
    if len > max_head || req.version != Some(1) {
        return Head::Other;
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Head::Other;
    };
    if !path.starts_with('/') {
        return Head::Other;
    }
    if method != "GET" && (method == "CONNECT" || !is_auth_target(path)) {
        return Head::Other;
    }
    // Every slice httparse returns borrows from `buf`: its offset is where it starts.
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        (start, start + s.len())
    };
    let mut close = false;
    let mut hosts = 0usize;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            if h.value != b"0" {
                return Head::Other;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
        {
            return Head::Other;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    return Head::Other;
                }
            }
        }
        spans.push(HeaderSpan {
            name: range(name.as_bytes()),
            value: range(h.value),
        });
    }
    if hosts != 1 {
        // HTTP/1.1 needs exactly one Host (RFC 9112 §3.2): hyper's path answers the 400.
        return Head::Other;
    }
    Head::Plain {
        len,
        method: range(method.as_bytes()),
        target: range(path.as_bytes()),
        close,
    }
}

/// How one plain request went.
enum Answered {
    Yes,
    /// Not something the fast path answers (hyper will).
    HandOff,
}

/// The buffers of one connection, reused from request to request.
struct Buffers {
    out: Vec<u8>,
    scratch: Vec<u8>,
    spans: Vec<HeaderSpan>,
}

async fn answer(
    service: &HttpService,
    head: &[u8],
    method: (usize, usize),
    target: (usize, usize),
    close: bool,
    bufs: &mut Buffers,
    date: &[u8],
) -> Answered {
    let shared = service.shared();
    let Ok(target) = std::str::from_utf8(&head[target.0..target.1]) else {
        return Answered::HandOff;
    };
    if is_auth_target(target) && !target.contains('#') {
        let Ok(method) = std::str::from_utf8(&head[method.0..method.1]) else {
            return Answered::HandOff;
        };
        if let Err(p) = shared.check_target_len(target.len()) {
            write_problem(&mut bufs.out, &p, date, close);
            return Answered::Yes;
        }
        let fields = bufs.spans.iter().map(|span| {
            (
                &head[span.name.0..span.name.1],
                &head[span.value.0..span.value.1],
            )
        });
        service
            .auth_from_head(method, fields, &mut bufs.out, date, close)
            .await;
        return Answered::Yes;
    }
    if target.starts_with(ADMIN_PREFIX) {
        // Needs the credentials and, for POST, a body: hyper's.
        return Answered::HandOff;
    }
    let check_query = if target == "/check" {
        Some("")
    } else {
        target.strip_prefix("/check?")
    };
    match check_query {
        Some(query) if !query.contains('#') => {
            let caller = service.check_caller(authorization(head, &bufs.spans, service));
            let outcome = shared
                .check_target_len(target.len())
                .and_then(|()| shared.check_outcome(&caller, query));
            match outcome {
                Ok(decision) => {
                    write_decision(&mut bufs.out, &mut bufs.scratch, &decision, date, close)
                }
                Err(problem) => write_problem(&mut bufs.out, &problem, date, close),
            }
        }
        _ => {
            let Ok(uri) = target.parse::<Uri>() else {
                return Answered::HandOff;
            };
            let caller = service.check_caller(authorization(head, &bufs.spans, service));
            shared
                .reply(&Method::GET, &uri, &caller)
                .write(&mut bufs.out, date, close);
        }
    }
    Answered::Yes
}

/// The `Authorization` header's value, looked for only when the connection's peer is not
/// admitted to `/check` on its own (so the default, a trusted peer, does no work here).
fn authorization<'h>(
    head: &'h [u8],
    spans: &[HeaderSpan],
    service: &HttpService,
) -> Option<&'h [u8]> {
    if service.check_standing().is_trusted() {
        return None;
    }
    spans
        .iter()
        .find(|s| head[s.name.0..s.name.1].eq_ignore_ascii_case(b"authorization"))
        .map(|s| &head[s.value.0..s.value.1])
}

/// Serves one connection: plain GETs here, the rest (from the first request that is not
/// plain) through hyper.
pub async fn serve_fast<S>(
    stream: S,
    service: HttpService,
    settings: Arc<HttpConnSettings>,
    shutdown: Shutdown,
    presence: Presence,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = IdleTimeout::new(stream, settings.idle_timeout);
    let mut inbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut bufs = Buffers {
        out: Vec::with_capacity(1024),
        scratch: Vec::with_capacity(256),
        spans: Vec::with_capacity(MAX_HEADERS),
    };
    let mut date = DateCache::default();
    let mut account = BufferAccount::open(
        settings.budget.clone(),
        inbuf.capacity() + bufs.out.capacity() + bufs.scratch.capacity(),
    );
    let draining = shutdown.clone().draining();
    let closing = shutdown.clone().closing();
    tokio::pin!(draining, closing);
    let mut drained = false;
    // A fresh connection's first request must arrive within header_read_timeout of the
    // accept, not idle_timeout: a client that connects and sends nothing holds a connection
    // slot only that long (otherwise a trickle of silent connects fills the cap).
    let mut head_started: Option<Instant> = Some(Instant::now());

    loop {
        // Answer every complete request already read.
        let draining_now = drained || shutdown.phase() >= Phase::Draining;
        let mut close = false;
        while !inbuf.is_empty() {
            match parse_head(&inbuf, settings.max_header_bytes, &mut bufs.spans) {
                Head::Partial => break,
                Head::Other => {
                    hand_off(io, inbuf, bufs.out, service, settings, shutdown).await;
                    return;
                }
                Head::Plain {
                    len,
                    method,
                    target,
                    close: asked,
                } => {
                    close = asked || draining_now;
                    if bufs.out.capacity() - bufs.out.len() < OUT_ROOM {
                        // Grow (doubling) only within the budget; else write what is made.
                        let more = bufs.out.capacity().max(OUT_ROOM);
                        if !bufs.out.is_empty() && !account.try_grow(more) {
                            account.budget().note_backpressure();
                            if io.write_all(&bufs.out).await.is_err() {
                                return;
                            }
                            bufs.out.clear();
                        } else {
                            bufs.out
                                .reserve(bufs.out.capacity() - bufs.out.len() + more);
                        }
                    }
                    let answered = answer(
                        &service,
                        &inbuf[..len],
                        method,
                        target,
                        close,
                        &mut bufs,
                        date.get(),
                    )
                    .await;
                    if let Answered::HandOff = answered {
                        hand_off(io, inbuf, bufs.out, service, settings, shutdown).await;
                        return;
                    }
                    inbuf.advance(len);
                    head_started = None;
                    if close {
                        break;
                    }
                    if bufs.out.len() >= MAX_PENDING_OUT {
                        if io.write_all(&bufs.out).await.is_err() {
                            return;
                        }
                        bufs.out.clear();
                    }
                }
            }
        }
        account.hold(inbuf.capacity() + bufs.out.capacity() + bufs.scratch.capacity());
        if !bufs.out.is_empty() {
            if io.write_all(&bufs.out).await.is_err() {
                return;
            }
            bufs.out.clear();
            if bufs.out.capacity() > KEEP_BUFFER {
                bufs.out = Vec::with_capacity(1024);
            }
        }
        if close || (draining_now && inbuf.is_empty()) {
            let _ = io.shutdown().await;
            return;
        }

        // Read more: an idle connection waits for its next request (or the drain); a head that
        // arrives in pieces must complete within header_read_timeout of its first byte, and a
        // fresh connection's first head within header_read_timeout of the accept.
        if inbuf.is_empty() && inbuf.capacity() > KEEP_BUFFER {
            inbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        inbuf.reserve(READ_CHUNK);
        account.hold(inbuf.capacity() + bufs.out.capacity() + bufs.scratch.capacity());
        // Waiting for the next request (or the first) with nothing half-read: idle, and so
        // the connection may be closed at the cap to make room for a new one.
        let idle = inbuf.is_empty();
        let read = if idle && head_started.is_none() {
            tokio::select! {
                biased;
                _ = &mut draining, if !drained => {
                    drained = true;
                    continue;
                }
                r = io.read_buf(&mut inbuf) => r,
                _ = presence.idle_until_evicted() => {
                    let _ = io.shutdown().await;
                    return;
                }
            }
        } else {
            let started = *head_started.get_or_insert_with(Instant::now);
            let deadline = started + settings.header_read_timeout;
            tokio::select! {
                _ = &mut closing => return,
                r = tokio::time::timeout_at(deadline, io.read_buf(&mut inbuf)) => match r {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::debug!("request head not complete within header_read_timeout");
                        return;
                    }
                },
                _ = presence.idle_until_evicted(), if idle => {
                    let _ = io.shutdown().await;
                    return;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if !presence.busy() {
                    return; // evicted to make room at the connection cap
                }
            }
        }
    }
}

/// Gives the connection to hyper: first the answers already made, then hyper reads the bytes
/// already buffered before the socket.
async fn hand_off<S>(
    mut io: IdleTimeout<S>,
    inbuf: BytesMut,
    out: Vec<u8>,
    service: HttpService,
    settings: Arc<HttpConnSettings>,
    shutdown: Shutdown,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if !out.is_empty() && io.write_all(&out).await.is_err() {
        return;
    }
    serve_hyper(Rewind::new(inbuf.freeze(), io), service, settings, shutdown).await;
}

/// The `Date` value (IMF-fixdate), formatted once per second per connection.
#[derive(Default)]
struct DateCache {
    secs: u64,
    text: [u8; 29],
}

impl DateCache {
    fn get(&mut self) -> &[u8] {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if now != self.secs || self.text[0] == 0 {
            self.secs = now;
            self.text = imf_fixdate(now);
        }
        &self.text
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7) for seconds since the epoch.
fn imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = [0u8; 29];
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    out[3..5].copy_from_slice(b", ");
    two(&mut out[5..7], d as u64);
    out[7] = b' ';
    out[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    out[11] = b' ';
    let y = y.clamp(0, 9999) as u64;
    two(&mut out[12..14], y / 100);
    two(&mut out[14..16], y % 100);
    out[16] = b' ';
    two(&mut out[17..19], rem / 3600);
    out[19] = b':';
    two(&mut out[20..22], rem / 60 % 60);
    out[22] = b':';
    two(&mut out[23..25], rem % 60);
    out[25..29].copy_from_slice(b" GMT");
    out
}

fn two(dst: &mut [u8], n: u64) {
    dst[0] = b'0' + (n / 10 % 10) as u8;
    dst[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1–12) and day (1–31) of a day count since 1970-01-01 (proleptic Gregorian;
/// the well-known era-based conversion).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(req: &str) -> Head {
        parse_head(req.as_bytes(), 16 * 1024, &mut Vec::new())
    }

    #[test]
    fn plain_gets_are_recognised() {
        let req = "GET /check?key=a&tier=b HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
        let mut spans = Vec::new();
        match parse_head(req.as_bytes(), 16 * 1024, &mut spans) {
            Head::Plain {
                len,
                method,
                target,
                close,
            } => {
                assert_eq!(&req[method.0..method.1], "GET");
                assert_eq!(&req[target.0..target.1], "/check?key=a&tier=b");
                assert_eq!(&req[len..], "GET /next");
                assert!(!close);
                assert_eq!(spans.len(), 1);
                assert_eq!(&req[spans[0].name.0..spans[0].name.1], "Host");
                assert_eq!(&req[spans[0].value.0..spans[0].value.1], "x");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plain("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n"),
            Head::Plain { close: true, .. }
        ));
        assert!(matches!(
            plain("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
            Head::Plain { .. }
        ));
        assert_eq!(plain("GET /check?key=a HTTP/1.1\r\nHost"), Head::Partial);
    }

    #[test]
    fn auth_takes_any_method_but_connect() {
        for req in [
            "GET /auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: /x\r\n\r\n",
            "POST /auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: /x\r\n\r\n",
            "DELETE /auth?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "HEAD /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        ] {
            assert!(matches!(plain(req), Head::Plain { .. }), "{req:?}");
        }
        for req in [
            "CONNECT /auth HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            "POST /authx HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /auth/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            assert_eq!(plain(req), Head::Other, "{req:?}");
        }
        assert!(is_auth_target("/auth") && is_auth_target("/auth?a=b"));
        assert!(!is_auth_target("/authz") && !is_auth_target("/auth/"));
    }

    #[test]
    fn everything_unusual_goes_to_hyper() {
        for req in [
            "POST /check HTTP/1.1\r\nHost: x\r\n\r\n",
            "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /check HTTP/1.0\r\n\r\n",
            "GET /check HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "GET /check HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /check HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            "GET /check HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            "GET http://x/check HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /check HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
            "\x16\x03\x01 not http at all\r\n\r\n",
        ] {
            assert_eq!(plain(req), Head::Other, "{req:?}");
        }
        // Host and MAX_HEADERS more.
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            plain(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n")),
            Head::Other
        );
        // A head that outgrows the bound, complete or not.
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "a".repeat(200)
        );
        assert_eq!(
            parse_head(big.as_bytes(), 100, &mut Vec::new()),
            Head::Other
        );
        assert_eq!(
            parse_head(&big.as_bytes()[..150], 100, &mut Vec::new()),
            Head::Other
        );
    }

    #[test]
    fn http11_without_one_host_goes_to_hyper_which_refuses_it() {
        assert!(matches!(
            plain("GET /check HTTP/1.1\r\nhOsT: x\r\n\r\n"),
            Head::Plain { .. }
        ));
        for req in [
            "GET /check?key=a HTTP/1.1\r\n\r\n",
            "GET /check?key=a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            "GET /auth HTTP/1.1\r\nX-Original-URI: /x\r\n\r\n",
            "GET /auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: /x\r\nhost: x\r\n\r\n",
        ] {
            assert_eq!(plain(req), Head::Other, "{req:?}");
        }
    }

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            &imf_fixdate(1_893_456_000),
            b"Tue, 01 Jan 2030 00:00:00 GMT"
        );
        // 2100 is not a leap year.
        assert_eq!(
            &imf_fixdate(4_107_542_399),
            b"Sun, 28 Feb 2100 23:59:59 GMT"
        );
        assert_eq!(
            &imf_fixdate(4_107_542_400),
            b"Mon, 01 Mar 2100 00:00:00 GMT"
        );
        assert_eq!(
            &imf_fixdate(4_133_980_799),
            b"Fri, 31 Dec 2100 23:59:59 GMT"
        );
    }
}
