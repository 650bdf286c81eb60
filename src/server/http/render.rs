//! How the HTTP door writes an answer: status lines, header fields (the IETF `RateLimit` /
//! `RateLimit-Policy` fields, legacy `X-RateLimit-*`, `Retry-After`), problem answers
//! (RFC 9457), and the end of a head (`Content-Length`, `Date`, `Connection: close`).
//!
//! Every answer's header fields are written once, by one function per kind of answer, through
//! a [`FieldWriter`]: each field as `\r\nname: value` into a byte buffer. The two transports
//! take those same bytes:
//! - the fast path ([`super::fastpath`]) writes them straight into the connection's output
//!   buffer, after a status line and before [`finish_head`] — nothing is recorded, nothing
//!   allocated;
//! - hyper gets a [`Reply`], whose buffer also records where each value is, so that its
//!   `HeaderMap` values are slices of that one buffer (one allocation for all the bytes, and
//!   header names are constants).

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use smallvec::SmallVec;

use crate::limiter::Decision;
use crate::problem::Problem;

/// The response type of every endpoint: the bodies are small and complete.
pub type HttpResponse = Response<Full<Bytes>>;

/// A header field tollgate writes: its name for hyper's `HeaderMap`, and the bytes that open
/// it on the wire (`\r\n<name>: `), so that writing it takes one copy.
pub struct Field {
    pub name: HeaderName,
    line: &'static [u8],
}

/// A [`Field`] from its lowercase name (the name is written to the wire as it is here).
macro_rules! field {
    ($name:literal) => {
        Field {
            name: HeaderName::from_static($name),
            line: concat!("\r\n", $name, ": ").as_bytes(),
        }
    };
}

pub static CONTENT_TYPE: Field = field!("content-type");
pub static CACHE_CONTROL: Field = field!("cache-control");
pub static ALLOW: Field = field!("allow");
pub static RETRY_AFTER: Field = field!("retry-after");
pub static WWW_AUTHENTICATE: Field = field!("www-authenticate");
pub static RATELIMIT_POLICY: Field = field!("ratelimit-policy");
pub static RATELIMIT: Field = field!("ratelimit");
pub static X_RATELIMIT_LIMIT: Field = field!("x-ratelimit-limit");
pub static X_RATELIMIT_REMAINING: Field = field!("x-ratelimit-remaining");
pub static X_RATELIMIT_RESET: Field = field!("x-ratelimit-reset");
pub static X_TOLLGATE_REASON: Field = field!("x-tollgate-reason");
pub static X_USER_ID: Field = field!("x-user-id");
pub static X_USER_EMAIL: Field = field!("x-user-email");
pub static X_USER_ROLE: Field = field!("x-user-role");
pub static X_TIER: Field = field!("x-tier");

/// `Content-Type` of JSON answers.
pub const JSON: &[u8] = b"application/json";
/// `Content-Type` of problem answers.
pub const PROBLEM_JSON: &[u8] = b"application/problem+json";
/// `Cache-Control` of every answer about a request: a decision is never reusable.
pub const NO_STORE: &[u8] = b"no-store";

/// Header fields written by a [`FieldWriter`] for hyper: name and the span of the value.
type FieldSpans = SmallVec<[(HeaderName, usize, usize); 12]>;

/// Writes header fields, each as `\r\nname: value`, and (for hyper) records where each value
/// is. The one way every answer's fields are written, whichever transport sends them.
pub struct FieldWriter<'a> {
    out: &'a mut Vec<u8>,
    spans: Option<&'a mut FieldSpans>,
}

impl<'a> FieldWriter<'a> {
    /// Writes into `out` and records nothing (the fast path: the bytes are the answer).
    pub fn into_bytes(out: &'a mut Vec<u8>) -> Self {
        Self { out, spans: None }
    }

    /// One field; `value` writes its value.
    pub fn put(&mut self, field: &Field, value: impl FnOnce(&mut Vec<u8>)) {
        self.out.extend_from_slice(field.line);
        let start = self.out.len();
        value(self.out);
        if let Some(spans) = &mut self.spans {
            spans.push((field.name.clone(), start, self.out.len()));
        }
    }

    /// One field with a value known as bytes.
    pub fn put_bytes(&mut self, field: &Field, value: &[u8]) {
        self.put(field, |o| o.extend_from_slice(value))
    }
}

/// An answer for hyper: the status, the header fields as the [`FieldWriter`] wrote them, and
/// the body. The fast path writes the same bytes itself ([`Reply::write`]).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// Every field as `\r\nname: value`.
    head: Bytes,
    /// Where each value is in `head`.
    spans: FieldSpans,
    body: Bytes,
}

impl Reply {
    /// Renders an answer: `fields` writes the header fields, `body` the body, into one buffer
    /// of `capacity` bytes (grown if needed).
    pub fn render(
        status: StatusCode,
        capacity: usize,
        fields: impl FnOnce(&mut FieldWriter<'_>),
        body: impl FnOnce(&mut Vec<u8>),
    ) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        let mut spans = FieldSpans::new();
        fields(&mut FieldWriter {
            out: &mut buf,
            spans: Some(&mut spans),
        });
        let head_end = buf.len();
        body(&mut buf);
        let buf = Bytes::from(buf);
        Self {
            status,
            head: buf.slice(..head_end),
            spans,
            body: buf.slice(head_end..),
        }
    }

    /// [`render`](Self::render) for a body that is already made (no copy of it).
    pub fn with_body(
        status: StatusCode,
        fields: impl FnOnce(&mut FieldWriter<'_>),
        body: Bytes,
    ) -> Self {
        let mut r = Self::render(status, 128, fields, |_| {});
        r.body = body;
        r
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The response hyper sends: the header values are slices of the rendered bytes.
    pub fn into_response(self) -> HttpResponse {
        let mut headers = HeaderMap::with_capacity(self.spans.len());
        for (name, a, b) in self.spans {
            // The writers only write digits, names escaped to visible ASCII, fixed text and
            // identity values checked to be header-safe, so this cannot fail; a failure would
            // drop one header, not panic.
            if let Ok(v) = HeaderValue::from_maybe_shared(self.head.slice(a..b)) {
                headers.append(name, v);
            }
        }
        let mut resp = Response::new(Full::new(self.body));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = headers;
        resp
    }

    /// Writes the answer as a complete HTTP/1.1 response into `out` (the fast path), the same
    /// bytes hyper would send.
    pub fn write(&self, out: &mut Vec<u8>, date: &[u8], close: bool) {
        put_status_line(out, self.status);
        out.extend_from_slice(&self.head);
        finish_head(out, Some(self.body.len()), date, close);
        out.extend_from_slice(&self.body);
    }
}

/// `HTTP/1.1 <code> <reason>`, without the line end (the first field or [`finish_head`]
/// writes it).
pub fn put_status_line(out: &mut Vec<u8>, status: StatusCode) {
    // The statuses of the hot paths in one copy each.
    let line: &[u8] = match status.as_u16() {
        200 => b"HTTP/1.1 200 OK",
        429 => b"HTTP/1.1 429 Too Many Requests",
        401 => b"HTTP/1.1 401 Unauthorized",
        403 => b"HTTP/1.1 403 Forbidden",
        _ => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(status.as_str().as_bytes());
            out.push(b' ');
            out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
            return;
        }
    };
    out.extend_from_slice(line);
}

/// Ends the header section: `connection: close` when closing, `content-length` (left out
/// when `None`, as hyper leaves it out of an answer to HEAD), `date`.
pub fn finish_head(out: &mut Vec<u8>, content_length: Option<usize>, date: &[u8], close: bool) {
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    if let Some(n) = content_length {
        out.extend_from_slice(b"\r\ncontent-length: ");
        put_u64(out, n as u64);
    }
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
}

/// The fields of a JSON answer.
pub fn json_fields(f: &mut FieldWriter<'_>) {
    f.put_bytes(&CONTENT_TYPE, JSON);
    f.put_bytes(&CACHE_CONTROL, NO_STORE);
}

/// A JSON answer with a body already made.
pub fn json_reply(status: StatusCode, body: String) -> Reply {
    Reply::with_body(status, json_fields, body.into())
}

/// The status of a problem.
fn problem_status(problem: &Problem) -> StatusCode {
    StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The fields of a problem answer, and `extra` (`Allow` of a 405, `WWW-Authenticate` of the
/// admin API's 401).
fn problem_fields(f: &mut FieldWriter<'_>, extra: Option<(&Field, &str)>) {
    f.put_bytes(&CONTENT_TYPE, PROBLEM_JSON);
    f.put_bytes(&CACHE_CONTROL, NO_STORE);
    if let Some((field, value)) = extra {
        f.put_bytes(field, value.as_bytes());
    }
}

/// A problem as `application/problem+json`.
pub fn problem_reply(problem: &Problem) -> Reply {
    problem_reply_with(problem, None)
}

/// [`problem_reply`] with one more field.
pub fn problem_reply_with(problem: &Problem, extra: Option<(&Field, &str)>) -> Reply {
    Reply::with_body(
        problem_status(problem),
        |f| problem_fields(f, extra),
        problem.to_json().into(),
    )
}

/// Writes a problem answer straight into `out` (the fast path), as [`problem_reply`] renders
/// it for hyper.
pub fn write_problem(out: &mut Vec<u8>, problem: &Problem, date: &[u8], close: bool) {
    let body = problem.to_json();
    put_status_line(out, problem_status(problem));
    problem_fields(&mut FieldWriter::into_bytes(out), None);
    finish_head(out, Some(body.len()), date, close);
    out.extend_from_slice(body.as_bytes());
}

/// `RateLimit-Policy`, `RateLimit` and `X-RateLimit-Limit/-Remaining/-Reset` of a decision,
/// as `/check` and `/auth` both answer them.
pub fn put_ratelimit_fields(f: &mut FieldWriter<'_>, d: &Decision) {
    let o = d.deciding();
    f.put(&RATELIMIT_POLICY, |b| {
        ratelimit_list(b, d, ListKind::Policy)
    });
    f.put(&RATELIMIT, |b| ratelimit_list(b, d, ListKind::Current));
    f.put(&X_RATELIMIT_LIMIT, |b| put_u64(b, o.limit));
    f.put(&X_RATELIMIT_REMAINING, |b| put_u64(b, o.remaining));
    f.put(&X_RATELIMIT_RESET, |b| put_u64(b, o.reset_secs));
}

enum ListKind {
    /// `RateLimit-Policy: "basic";q=500;w=3600, "login";q=5;w=300`
    Policy,
    /// `RateLimit: "basic";r=42;t=1800, "login";r=4;t=300`
    Current,
}

/// Writes the value of an IETF RateLimit field (draft-ietf-httpapi-ratelimit-headers): one
/// list member per limit that applied to the request, in the order they were checked (tier
/// first).
fn ratelimit_list(buf: &mut Vec<u8>, d: &Decision, kind: ListKind) {
    for (i, o) in d.outcomes.iter().enumerate() {
        if i > 0 {
            buf.extend_from_slice(b", ");
        }
        put_sf_string(buf, &o.name);
        match kind {
            ListKind::Policy => {
                buf.extend_from_slice(b";q=");
                put_u64(buf, o.limit);
                buf.extend_from_slice(b";w=");
                put_u64(buf, o.window_secs);
            }
            ListKind::Current => {
                buf.extend_from_slice(b";r=");
                put_u64(buf, o.remaining);
                buf.extend_from_slice(b";t=");
                put_u64(buf, o.reset_secs);
            }
        }
    }
}

/// A number in decimal.
pub fn put_u64(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A JSON string: quotes, backslashes and control characters escaped; UTF-8 passes through.
pub fn put_json_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.extend_from_slice(b"\\u00");
                buf.push(HEX[(b >> 4) as usize]);
                buf.push(HEX[(b & 0xf) as usize]);
            }
            _ => buf.push(b),
        }
    }
    buf.push(b'"');
}

/// A Structured Field string (RFC 8941 §3.3.3): printable ASCII with `"` and `\` escaped.
/// Other bytes cannot be represented and become `?` (limit names are normally plain words).
fn put_sf_string(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' | b'\\' => {
                buf.push(b'\\');
                buf.push(b);
            }
            0x20..=0x7e => buf.push(b),
            _ => buf.push(b'?'),
        }
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::ProblemType;

    #[test]
    fn u64_formatting() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            let mut b = Vec::new();
            put_u64(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn field_lines_name_their_field() {
        for f in [
            &CONTENT_TYPE,
            &CACHE_CONTROL,
            &ALLOW,
            &RETRY_AFTER,
            &WWW_AUTHENTICATE,
            &RATELIMIT_POLICY,
            &RATELIMIT,
            &X_RATELIMIT_LIMIT,
            &X_RATELIMIT_REMAINING,
            &X_RATELIMIT_RESET,
            &X_TOLLGATE_REASON,
            &X_USER_ID,
            &X_USER_EMAIL,
            &X_USER_ROLE,
            &X_TIER,
        ] {
            assert_eq!(f.line, format!("\r\n{}: ", f.name.as_str()).as_bytes());
        }
    }

    /// Both transports of one answer carry the same status, fields and body.
    #[test]
    fn a_reply_gives_hyper_and_the_fast_path_the_same_answer() {
        let p = Problem::new(ProblemType::MethodNotAllowed, "no");
        let reply = problem_reply_with(&p, Some((&ALLOW, "GET")));
        let mut wire = Vec::new();
        reply.write(&mut wire, b"DATE", true);
        let body = p.to_json();
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            format!(
                "HTTP/1.1 405 Method Not Allowed\r\ncontent-type: application/problem+json\r\n\
                 cache-control: no-store\r\nallow: GET\r\nconnection: close\r\n\
                 content-length: {}\r\ndate: DATE\r\n\r\n{body}",
                body.len()
            )
        );
        let mut direct = Vec::new();
        write_problem(&mut direct, &p, b"DATE", false);
        let mut via_reply = Vec::new();
        problem_reply(&p).write(&mut via_reply, b"DATE", false);
        assert_eq!(direct, via_reply);
        let resp = reply.into_response();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let names: Vec<_> = resp.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "cache-control", "allow"]);
        assert_eq!(resp.headers()["allow"], "GET");
    }
}
