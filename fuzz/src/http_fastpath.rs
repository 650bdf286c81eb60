//! Fuzz body: the HTTP/1.1 fast path's request-head reader
//! (`tollgate::server::http::fastpath::parse_head`) and the `/check` query decoder
//! (`tollgate::server::http::query`).
//!
//! Input: the first byte picks `server.max_header_bytes` (64, 1 KiB or 8 KiB), the rest is
//! what a client sent on one connection. Invariants checked, beyond "never panics":
//! - heads are read one after another, as the connection does with pipelined requests; a
//!   head the fast path calls plain is one httparse (hyper's parser, with hyper's limit of
//!   100 headers) reads the same way: the same length, method, target and header list, at
//!   most 32 headers, HTTP/1.1, exactly one `Host` header (RFC 9112 §3.2: a head with none
//!   or two goes to hyper, which answers 400), a target in origin form, `GET` (or any method but `CONNECT`
//!   for `/auth`), within `max_header_bytes`, no body, no `Transfer-Encoding`, `Expect` or
//!   `Upgrade`, and `close` exactly when a `Connection` token says so. Anything else is
//!   handed to hyper (`Other`) or still incomplete (`Partial`, only below `max_header_bytes`
//!   and only when httparse also wants more);
//! - the query of every plain `/check?…` head, and the whole input read as text, decode as
//!   an independent model of `application/x-www-form-urlencoded` says: each known
//!   parameter (`key`, `tier`, `hits`, `limit`, compared after decoding) at most once, a
//!   second one refused as `duplicate_parameter`, a malformed escape or non-UTF-8 result
//!   refused as `invalid_parameter`, unknown parameters ignored; and a value percent-encoded
//!   byte by byte decodes back to itself.

use std::borrow::Cow;

use tollgate::problem::ProblemType;
use tollgate::server::http::fastpath::{parse_head, Head, HeaderSpan};
use tollgate::server::http::query::{decode, CheckParams};

const MAX_HEAD: [usize; 3] = [64, 1024, 8192];
/// hyper's limit of headers per request.
const HYPER_MAX_HEADERS: usize = 100;
/// The fast path's own limit.
const FAST_MAX_HEADERS: usize = 32;

pub fn run(data: &[u8]) {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    let max_head = MAX_HEAD[pick as usize % MAX_HEAD.len()];
    let mut spans = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        match parse_head(rest, max_head, &mut spans) {
            Head::Partial => {
                assert!(rest.len() < max_head, "partial beyond max_header_bytes");
                let mut headers = [httparse::EMPTY_HEADER; HYPER_MAX_HEADERS];
                let mut req = httparse::Request::new(&mut headers);
                assert!(
                    matches!(req.parse(rest), Ok(httparse::Status::Partial)),
                    "partial, but httparse reads no partial head"
                );
                break;
            }
            Head::Other => break,
            Head::Plain {
                len,
                method,
                target,
                close,
            } => {
                check_plain(rest, max_head, &spans, len, method, target, close);
                rest = &rest[len..];
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(stream) {
        check_query(text);
    }
}

fn check_plain(
    buf: &[u8],
    max_head: usize,
    spans: &[HeaderSpan],
    len: usize,
    method: (usize, usize),
    target: (usize, usize),
    close: bool,
) {
    assert!(0 < len && len <= max_head && len <= buf.len());
    assert!(spans.len() <= FAST_MAX_HEADERS);
    let mut headers = [httparse::EMPTY_HEADER; HYPER_MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf);
    assert_eq!(
        status.ok(),
        Some(httparse::Status::Complete(len)),
        "a plain head is one complete head for httparse, of the same length"
    );
    assert_eq!(req.version, Some(1), "HTTP/1.1 only");
    let m = req.method.expect("a method");
    let path = req.path.expect("a target");
    assert_eq!(&buf[method.0..method.1], m.as_bytes());
    assert_eq!(&buf[target.0..target.1], path.as_bytes());
    assert!(path.starts_with('/'), "origin form");
    let is_auth = path
        .strip_prefix("/auth")
        .is_some_and(|r| r.is_empty() || r.starts_with('?'));
    assert!(
        m == "GET" || (is_auth && m != "CONNECT"),
        "method {m:?} for {path:?}"
    );
    assert_eq!(req.headers.len(), spans.len(), "the same header count");
    let mut asked_close = false;
    let hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    assert_eq!(hosts, 1, "a plain HTTP/1.1 head has exactly one Host");
    for (h, s) in req.headers.iter().zip(spans) {
        assert_eq!(&buf[s.name.0..s.name.1], h.name.as_bytes());
        assert_eq!(&buf[s.value.0..s.value.1], h.value);
        let name = h.name.to_ascii_lowercase();
        assert!(
            !matches!(name.as_str(), "transfer-encoding" | "expect" | "upgrade"),
            "a plain head has no {name}"
        );
        if name == "content-length" {
            assert_eq!(h.value, b"0", "a plain head has no body");
        }
        if name == "connection" {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                assert!(!token.eq_ignore_ascii_case(b"upgrade"));
                asked_close |= token.eq_ignore_ascii_case(b"close");
            }
        }
    }
    assert_eq!(close, asked_close, "close exactly when Connection says so");
    if let Some(query) = path.strip_prefix("/check?") {
        check_query(query);
    }
}

/// What `CheckParams::parse` must answer, by an independent reading.
#[derive(Debug, PartialEq)]
enum Expected {
    Params([Option<String>; 4]),
    Refused(ProblemType),
}

const KNOWN: [&str; 4] = ["key", "tier", "hits", "limit"];

/// `application/x-www-form-urlencoded` component decoding, written apart from tollgate's.
fn model_decode(raw: &str) -> Option<String> {
    let mut out = Vec::new();
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(|c| char::from(c).to_digit(16))?;
                let lo = bytes.next().and_then(|c| char::from(c).to_digit(16))?;
                out.push((hi << 4 | lo) as u8);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn model(query: &str) -> Expected {
    let mut found: [Option<String>; 4] = Default::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(name) = model_decode(name) else {
            return Expected::Refused(ProblemType::InvalidParameter);
        };
        let Some(i) = KNOWN.iter().position(|k| *k == name) else {
            continue;
        };
        if found[i].is_some() {
            return Expected::Refused(ProblemType::DuplicateParameter);
        }
        match model_decode(value) {
            Some(v) => found[i] = Some(v),
            None => return Expected::Refused(ProblemType::InvalidParameter),
        }
    }
    Expected::Params(found)
}

fn check_query(query: &str) {
    let got = match CheckParams::parse(query) {
        Ok(p) => Expected::Params([p.key, p.tier, p.hits, p.limit].map(|v| v.map(Cow::into_owned))),
        Err(problem) => Expected::Refused(problem.kind),
    };
    assert_eq!(got, model(query), "query {query:?}");
    // One component: nothing to decode borrows; everything decodes as the model does; a
    // value encoded byte by byte comes back.
    match decode(query) {
        Ok(v) => {
            assert_eq!(Some(v.as_ref()), model_decode(query).as_deref());
            if !query.contains(['%', '+']) {
                assert!(matches!(v, Cow::Borrowed(_)));
            }
            let encoded: String = v.bytes().map(|b| format!("%{b:02X}")).collect();
            assert_eq!(decode(&encoded).ok().as_deref(), Some(v.as_ref()));
        }
        Err(_) => assert_eq!(model_decode(query), None),
    }
}
