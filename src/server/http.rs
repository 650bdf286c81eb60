//! The HTTP front door: routes a request, parses `/check` query strings into a
//! [`CheckQuery`], asks the [`Gate`], and renders the decision (JSON body, IETF `RateLimit` /
//! `RateLimit-Policy` fields, legacy `X-RateLimit-*`, `Retry-After`) or a problem (RFC 9457).
//!
//! The door decides nothing: every answer about a key comes from [`Gate::check`]. The same
//! service serves TCP and Unix-socket connections (see [`super::listener`]).
//!
//! `/check` is the hot path, so its answer is written into one buffer — the JSON body first,
//! then every header value — and the header values are slices of that buffer: one allocation
//! for the bytes instead of one per header, and header names are constants.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;

use super::readiness::Readiness;
use crate::gate::{CheckQuery, Gate};
use crate::limiter::Decision;
use crate::problem::{quote, Problem, ProblemType};

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const ALLOW_GET: HeaderValue = HeaderValue::from_static("GET");
const ALLOW_GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");

/// The response type of every endpoint: the bodies are small and complete.
pub type HttpResponse = Response<Full<Bytes>>;

/// An answer before it is given to a transport: hyper turns it into a [`HttpResponse`], the
/// fast path writes it out itself ([`write_reply`]).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    fn new(status: StatusCode, body: Bytes) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body,
        }
    }

    pub fn into_response(self) -> HttpResponse {
        let mut resp = Response::new(Full::new(self.body));
        *resp.status_mut() = self.status;
        *resp.headers_mut() = self.headers;
        resp
    }
}

/// What the HTTP service needs, shared by every connection.
pub struct HttpShared {
    pub gate: Arc<Gate>,
    pub readiness: Readiness,
    /// Longest request target accepted (`server.max_uri_bytes`); longer gets 414.
    pub max_uri_bytes: usize,
}

/// The hyper service: one clone per connection (an `Arc` clone).
#[derive(Clone)]
pub struct HttpService(pub Arc<HttpShared>);

impl<B> hyper::service::Service<Request<B>> for HttpService {
    type Response = HttpResponse;
    type Error = Infallible;
    // Every endpoint answers synchronously: a ready future, no boxing per request.
    type Future = std::future::Ready<Result<HttpResponse, Infallible>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.0.respond(req.method(), req.uri())))
    }
}

impl HttpShared {
    /// Answers one request. Only the method and the target matter: no endpoint reads a body
    /// or a header.
    pub fn respond(&self, method: &Method, uri: &Uri) -> HttpResponse {
        self.reply(method, uri).into_response()
    }

    /// [`respond`](Self::respond) before it becomes a hyper response.
    pub fn reply(&self, method: &Method, uri: &Uri) -> Reply {
        if let Err(p) = self.check_target_len(target_len(uri)) {
            return problem_reply(&p, None);
        }
        match uri.path() {
            "/check" => {
                if method == Method::GET {
                    match self.check_outcome(uri.query().unwrap_or("")) {
                        Ok(decision) => decision_reply(&decision),
                        Err(p) => problem_reply(&p, None),
                    }
                } else {
                    self.method_not_allowed(method, "/check", ALLOW_GET)
                }
            }
            path @ ("/healthz" | "/readyz" | "/metrics") => {
                if method != Method::GET && method != Method::HEAD {
                    return self.method_not_allowed(method, path, ALLOW_GET_HEAD);
                }
                match path {
                    "/healthz" => json_reply(StatusCode::OK, r#"{"status":"ok"}"#.into()),
                    "/readyz" => self.readyz(),
                    _ => self.metrics(),
                }
            }
            other => {
                let p = self.refuse(Problem::new(
                    ProblemType::NotFound,
                    format!(
                        "no endpoint at {}; tollgate serves /check, /healthz, /readyz and /metrics",
                        quote(other)
                    ),
                ));
                problem_reply(&p, None)
            }
        }
    }

    /// Refuses a request target longer than `server.max_uri_bytes` (counted).
    pub fn check_target_len(&self, len: usize) -> Result<(), Problem> {
        if len <= self.max_uri_bytes {
            return Ok(());
        }
        Err(self.refuse(Problem::new(
            ProblemType::UriTooLong,
            format!(
                "the request target is {len} bytes long; the limit is {}",
                self.max_uri_bytes
            ),
        )))
    }

    /// `GET /check?<query>`: the gate's decision, or the problem with the query (counted).
    pub fn check_outcome(&self, query: &str) -> Result<Decision, Problem> {
        let params = CheckParams::parse(query).map_err(|p| self.refuse(p))?;
        let key = params.key.as_deref().unwrap_or("");
        // An empty key is reported before a missing tier, and by the gate, so that every door
        // reports and counts it the same way.
        let tier = match (&params.tier, key.is_empty()) {
            (Some(t), _) => t.as_ref(),
            (None, true) => "",
            (None, false) => {
                return Err(self.refuse(Problem::new(
                    ProblemType::MissingParameter,
                    "the query parameter tier is required, e.g. /check?key=ip:203.0.113.7&tier=anonymous",
                )))
            }
        };
        let hits = match params.hits.as_deref() {
            None => 1,
            // `parse` accepts a leading '+', which a query string cannot carry undecoded
            // ('+' is a space); a decoded "%2B5" is still a number, so it stays accepted.
            Some(h) => h.parse::<u64>().map_err(|_| {
                self.refuse(Problem::new(
                    ProblemType::InvalidHits,
                    format!(
                        "hits must be a whole number from 0 to {}, not {}",
                        self.gate.max_hits(),
                        quote(h)
                    ),
                ))
            })?,
        };
        let q = CheckQuery {
            key,
            tier,
            hits,
            limit: params.limit.as_deref(),
        };
        self.gate
            .check(&q)
            .map_err(|e| self.refuse(Problem::from(&e)))
    }

    fn readyz(&self) -> Reply {
        let report = self.readiness.report();
        let ready = report.iter().all(|(_, ok)| *ok);
        let checks: serde_json::Map<String, serde_json::Value> = report
            .into_iter()
            .map(|(name, ok)| (name, serde_json::Value::Bool(ok)))
            .collect();
        let body = serde_json::json!({ "ready": ready, "checks": checks }).to_string();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_reply(status, body.into())
    }

    fn metrics(&self) -> Reply {
        let mut r = Reply::new(StatusCode::OK, Bytes::from(self.gate.render_metrics()));
        r.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        );
        r
    }

    fn method_not_allowed(&self, method: &Method, path: &str, allow: HeaderValue) -> Reply {
        let detail = format!(
            "{} does not answer {}; use {}",
            path,
            quote(method.as_str()),
            allow.to_str().unwrap_or("GET")
        );
        let p = self.refuse(Problem::new(ProblemType::MethodNotAllowed, detail));
        problem_reply(&p, Some(allow))
    }

    /// Counts a problem answer; every problem passes here once, whichever path answers it.
    fn refuse(&self, problem: Problem) -> Problem {
        self.gate.metrics().http_problem(problem.kind.slug());
        problem
    }
}

/// Renders a problem as `application/problem+json`.
pub fn problem_response(problem: &Problem, allow: Option<HeaderValue>) -> HttpResponse {
    problem_reply(problem, allow).into_response()
}

pub fn problem_reply(problem: &Problem, allow: Option<HeaderValue>) -> Reply {
    let status = StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = Reply::new(status, Bytes::from(problem.to_json()));
    r.headers.insert(CONTENT_TYPE, PROBLEM_JSON);
    r.headers.insert(CACHE_CONTROL, NO_STORE);
    if let Some(allow) = allow {
        r.headers.insert(ALLOW, allow);
    }
    r
}

fn json_reply(status: StatusCode, body: Bytes) -> Reply {
    let mut r = Reply::new(status, body);
    r.headers.insert(CONTENT_TYPE, JSON);
    r.headers.insert(CACHE_CONTROL, NO_STORE);
    r
}

/// Length of the request target as the client sent it (origin form: path and query).
fn target_len(uri: &Uri) -> usize {
    let pq = uri.path_and_query().map_or(0, |p| p.as_str().len());
    // Absolute form (`GET http://host/check?…`) also carries a scheme and an authority.
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    pq + authority + scheme
}

/// The `/check` parameters, percent-decoded (`+` is a space), each at most once.
#[derive(Debug, Default, PartialEq)]
struct CheckParams<'a> {
    key: Option<Cow<'a, str>>,
    tier: Option<Cow<'a, str>>,
    hits: Option<Cow<'a, str>>,
    limit: Option<Cow<'a, str>>,
}

impl<'a> CheckParams<'a> {
    /// Parses `application/x-www-form-urlencoded` pairs. Unknown parameters are ignored (a
    /// cache-busting `_=…` must not fail a check); a known one given twice is an error,
    /// since choosing either value silently could count against the wrong key.
    fn parse(query: &'a str) -> Result<Self, Problem> {
        let mut p = CheckParams::default();
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name).map_err(|why| {
                Problem::new(
                    ProblemType::InvalidParameter,
                    format!("a parameter name {why}: {}", quote(raw_name)),
                )
            })?;
            let slot = match name.as_ref() {
                "key" => &mut p.key,
                "tier" => &mut p.tier,
                "hits" => &mut p.hits,
                "limit" => &mut p.limit,
                _ => continue,
            };
            if slot.is_some() {
                return Err(Problem::new(
                    ProblemType::DuplicateParameter,
                    format!("the parameter {name} appears more than once"),
                ));
            }
            let value = decode(raw_value).map_err(|why| {
                Problem::new(
                    ProblemType::InvalidParameter,
                    format!("the value of {name} {why}"),
                )
            })?;
            *slot = Some(value);
        }
        Ok(p)
    }
}

/// Percent-decodes one form component (`+` → space). Borrows when there is nothing to decode,
/// which is the common case for keys such as `ip:203.0.113.7`. A `%` not followed by two hex
/// digits, or bytes that are not UTF-8, are refused: guessing would change the key.
fn decode(raw: &str) -> Result<Cow<'_, str>, &'static str> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        return Err(
                            "has a malformed percent-escape (% must be followed by two hex digits)",
                        )
                    }
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| "is not UTF-8 once percent-decoded")
}

/// Renders a decision for hyper: 200 when allowed, 429 when denied.
pub fn render_decision(d: &Decision) -> HttpResponse {
    decision_reply(d).into_response()
}

/// The decision as a [`Reply`]. The body and every header value are written into one buffer
/// and the header values are slices of it: one allocation for all the bytes.
fn decision_reply(d: &Decision) -> Reply {
    let o = d.deciding();
    let mut buf = Vec::with_capacity(320);
    decision_body(&mut buf, d);
    let body_end = buf.len();

    let mut spans: [(usize, usize); 6] = [(0, 0); 6];
    let mut start = body_end;
    let mut mark = |buf: &Vec<u8>, i: usize| {
        spans[i] = (start, buf.len());
        start = buf.len();
    };
    ratelimit_fields(&mut buf, d, FieldKind::Policy);
    mark(&buf, 0);
    ratelimit_fields(&mut buf, d, FieldKind::Current);
    mark(&buf, 1);
    put_u64(&mut buf, o.limit);
    mark(&buf, 2);
    put_u64(&mut buf, o.remaining);
    mark(&buf, 3);
    put_u64(&mut buf, o.reset_secs);
    mark(&buf, 4);
    if !d.allowed {
        put_u64(&mut buf, retry_after_secs(d));
    }
    mark(&buf, 5);

    let bytes = Bytes::from(buf);
    let mut headers = HeaderMap::with_capacity(10);
    headers.insert(CONTENT_TYPE, JSON);
    headers.insert(CACHE_CONTROL, NO_STORE);
    let names = [
        RATELIMIT_POLICY,
        RATELIMIT,
        X_RATELIMIT_LIMIT,
        X_RATELIMIT_REMAINING,
        X_RATELIMIT_RESET,
        RETRY_AFTER,
    ];
    for (name, (a, b)) in names.into_iter().zip(spans) {
        if a == b {
            continue; // no Retry-After when allowed
        }
        // The bytes were written above from digits, `;`, `=`, `,`, spaces and names escaped
        // to visible ASCII, so this cannot fail; a failure would drop one header, not panic.
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes.slice(a..b)) {
            headers.insert(name, v);
        }
    }
    Reply {
        status: decision_status(d),
        headers,
        body: bytes.slice(..body_end),
    }
}

fn decision_status(d: &Decision) -> StatusCode {
    if d.allowed {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    }
}

/// `{"allowed":…,"limit":…,"remaining":…,"reset":…,"policy":…[,"retry_after":…]}`
fn decision_body(buf: &mut Vec<u8>, d: &Decision) {
    let o = d.deciding();
    buf.extend_from_slice(br#"{"allowed":"#);
    buf.extend_from_slice(if d.allowed { b"true" } else { b"false" });
    buf.extend_from_slice(br#","limit":"#);
    put_u64(buf, o.limit);
    buf.extend_from_slice(br#","remaining":"#);
    put_u64(buf, o.remaining);
    buf.extend_from_slice(br#","reset":"#);
    put_u64(buf, o.reset_secs);
    buf.extend_from_slice(br#","policy":"#);
    put_json_str(buf, &o.name);
    if !d.allowed {
        buf.extend_from_slice(br#","retry_after":"#);
        put_u64(buf, retry_after_secs(d));
    }
    buf.push(b'}');
}

/// Writes a complete HTTP/1.1 answer to a decision, exactly as [`render_decision`] through
/// hyper would (same status, headers and body), straight into `out`. `scratch` holds the body
/// while its length is written; both buffers are the connection's, reused.
pub fn write_decision(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    d: &Decision,
    date: &[u8],
    close: bool,
) {
    let o = d.deciding();
    scratch.clear();
    decision_body(scratch, d);
    out.extend_from_slice(if d.allowed {
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\nratelimit-policy: "
            .as_slice()
    } else {
        b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncache-control: no-store\r\nratelimit-policy: "
            .as_slice()
    });
    ratelimit_fields(out, d, FieldKind::Policy);
    out.extend_from_slice(b"\r\nratelimit: ");
    ratelimit_fields(out, d, FieldKind::Current);
    out.extend_from_slice(b"\r\nx-ratelimit-limit: ");
    put_u64(out, o.limit);
    out.extend_from_slice(b"\r\nx-ratelimit-remaining: ");
    put_u64(out, o.remaining);
    out.extend_from_slice(b"\r\nx-ratelimit-reset: ");
    put_u64(out, o.reset_secs);
    if !d.allowed {
        out.extend_from_slice(b"\r\nretry-after: ");
        put_u64(out, retry_after_secs(d));
    }
    finish_head(out, scratch.len(), date, close);
    out.extend_from_slice(scratch);
}

/// Writes any [`Reply`] as a complete HTTP/1.1 answer (the fast path's way of answering
/// everything that is not a decision).
pub fn write_reply(out: &mut Vec<u8>, reply: &Reply, date: &[u8], close: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(reply.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        reply
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    for (name, value) in &reply.headers {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    finish_head(out, reply.body.len(), date, close);
    out.extend_from_slice(&reply.body);
}

/// Ends the header section: `content-length`, `date`, `connection: close` when closing.
fn finish_head(out: &mut Vec<u8>, content_length: usize, date: &[u8], close: bool) {
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\ncontent-length: ");
    put_u64(out, content_length as u64);
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Seconds a denied client should wait. A denial always advises at least one second: `0`
/// would invite an immediate retry that the same limit denies again.
fn retry_after_secs(d: &Decision) -> u64 {
    let o = d.deciding();
    o.retry_after_secs.unwrap_or(o.reset_secs).max(1)
}

enum FieldKind {
    /// `RateLimit-Policy: "basic";q=500;w=3600, "login";q=5;w=300`
    Policy,
    /// `RateLimit: "basic";r=42;t=1800, "login";r=4;t=300`
    Current,
}

/// Writes the IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers): one list member
/// per limit that applied to the request, in the order they were checked (tier first).
fn ratelimit_fields(buf: &mut Vec<u8>, d: &Decision, kind: FieldKind) {
    for (i, o) in d.outcomes.iter().enumerate() {
        if i > 0 {
            buf.extend_from_slice(b", ");
        }
        put_sf_string(buf, &o.name);
        match kind {
            FieldKind::Policy => {
                buf.extend_from_slice(b";q=");
                put_u64(buf, o.limit);
                buf.extend_from_slice(b";w=");
                put_u64(buf, o.window_secs);
            }
            FieldKind::Current => {
                buf.extend_from_slice(b";r=");
                put_u64(buf, o.remaining);
                buf.extend_from_slice(b";t=");
                put_u64(buf, o.reset_secs);
            }
        }
    }
}

fn put_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// A JSON string: quotes, backslashes and control characters escaped; UTF-8 passes through.
fn put_json_str(buf: &mut Vec<u8>, s: &str) {
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
    use crate::limiter::LimitOutcome;
    use smallvec::smallvec;

    fn outcome(name: &str, limit: u64, remaining: u64, retry: Option<u64>) -> LimitOutcome {
        LimitOutcome {
            name: name.into(),
            limit,
            window_secs: 3600,
            remaining,
            reset_secs: 1800,
            retry_after_secs: retry,
            abuse: false,
        }
    }

    #[test]
    fn decode_handles_plus_escapes_and_refuses_garbage() {
        assert!(matches!(
            decode("ip:1.2.3.4"),
            Ok(Cow::Borrowed("ip:1.2.3.4"))
        ));
        assert_eq!(decode("a+b%20c%3A").unwrap(), "a b c:");
        assert_eq!(decode("%C3%A9").unwrap(), "é");
        assert!(decode("%").is_err());
        assert!(decode("%4").is_err());
        assert!(decode("%zz").is_err());
        assert!(decode("%FF").is_err(), "not UTF-8");
    }

    #[test]
    fn params_parse_decode_and_refuse_duplicates() {
        let p = CheckParams::parse("key=user%3A42&tier=basic&hits=3&_=17&&limit=log+in").unwrap();
        assert_eq!(p.key.as_deref(), Some("user:42"));
        assert_eq!(p.tier.as_deref(), Some("basic"));
        assert_eq!(p.hits.as_deref(), Some("3"));
        assert_eq!(p.limit.as_deref(), Some("log in"));
        let e = CheckParams::parse("key=a&tier=b&key=c").unwrap_err();
        assert_eq!(e.kind, ProblemType::DuplicateParameter);
        // An encoded name is the same parameter.
        let e = CheckParams::parse("key=a&k%65y=c").unwrap_err();
        assert_eq!(e.kind, ProblemType::DuplicateParameter);
        let e = CheckParams::parse("key=%ZZ").unwrap_err();
        assert_eq!(e.kind, ProblemType::InvalidParameter);
        assert_eq!(CheckParams::parse("key").unwrap().key.as_deref(), Some(""));
    }

    #[tokio::test]
    async fn denial_renders_body_and_every_header() {
        let d = Decision {
            allowed: false,
            deciding: 1,
            outcomes: smallvec![
                outcome("basic", 500, 42, None),
                outcome("lo\"gin", 5, 0, Some(120))
            ],
        };
        let resp = render_decision(&d);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = resp.headers();
        assert_eq!(
            h["ratelimit-policy"],
            r#""basic";q=500;w=3600, "lo\"gin";q=5;w=3600"#
        );
        assert_eq!(
            h["ratelimit"],
            r#""basic";r=42;t=1800, "lo\"gin";r=0;t=1800"#
        );
        assert_eq!(h["x-ratelimit-limit"], "5");
        assert_eq!(h["x-ratelimit-remaining"], "0");
        assert_eq!(h["x-ratelimit-reset"], "1800");
        assert_eq!(h["retry-after"], "120");
        assert_eq!(h["content-type"], "application/json");
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"allowed": false, "limit": 5, "remaining": 0, "reset": 1800,
                               "policy": "lo\"gin", "retry_after": 120})
        );
    }

    #[test]
    fn admission_has_no_retry_after() {
        let d = Decision {
            allowed: true,
            deciding: 0,
            outcomes: smallvec![outcome("basic", 500, 499, None)],
        };
        let resp = render_decision(&d);
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get("retry-after").is_none());
        assert_eq!(resp.headers()["ratelimit"], r#""basic";r=499;t=1800"#);
    }

    #[test]
    fn u64_formatting() {
        for n in [0, 7, 10, 12345, u64::MAX] {
            let mut b = Vec::new();
            put_u64(&mut b, n);
            assert_eq!(&b[..], n.to_string().as_bytes());
        }
    }
}
