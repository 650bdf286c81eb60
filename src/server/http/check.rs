//! `GET /check?key=…&tier=…[&hits=…][&limit=…]`: the rate-limit question. The query becomes
//! a [`CheckQuery`], [`Gate::check`](crate::gate::Gate::check) decides, and the answer is 200
//! (allowed) or 429 (denied) with a JSON body and the `RateLimit`, `RateLimit-Policy`,
//! `X-RateLimit-*` and (when denied) `Retry-After` fields.
//!
//! Who may ask is the gate's decision too ([`CheckAccess`](crate::gate::CheckAccess)): the
//! door supplies the connection's standing and the `Authorization` header
//! ([`CheckCaller`]), and renders a refusal as 403 `check-forbidden`.
//!
//! The answer's fields are written by `decision_fields` alone, for both transports:
//! `decision_reply` for hyper, `write_decision` for the fast path.

use http::StatusCode;

use super::query::CheckParams;
use super::render::{
    finish_head, json_fields, put_json_str, put_ratelimit_fields, put_status_line, put_u64,
    FieldWriter, HttpResponse, Reply, RETRY_AFTER,
};
use super::HttpShared;
use crate::gate::{grammar, retry_after, CheckCaller, CheckQuery};
use crate::limiter::Decision;
use crate::problem::{quote, Problem, ProblemType};

impl HttpShared {
    /// `GET /check?<query>` from `caller`: the gate's decision, or the problem with the
    /// query or the caller (counted).
    pub fn check_outcome(
        &self,
        caller: &CheckCaller<'_>,
        query: &str,
    ) -> Result<Decision, Problem> {
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
            // The gate's grammar: decimal digits only, so a decoded "%2B5" is refused here as
            // `HITS +5` is over RESP.
            Some(h) => grammar::hits(h.as_bytes()).ok_or_else(|| {
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
            .check(caller, &q)
            .map_err(|e| self.refuse(Problem::from(&e)))
    }
}

/// Renders a decision for hyper: 200 when allowed, 429 when denied.
pub fn render_decision(d: &Decision) -> HttpResponse {
    decision_reply(d).into_response()
}

/// The decision as a [`Reply`]: the fields and the body in one buffer of which the header
/// values are slices.
pub(super) fn decision_reply(d: &Decision) -> Reply {
    Reply::render(
        decision_status(d),
        320,
        |f| decision_fields(f, d),
        |b| decision_body(b, d),
    )
}

/// Writes a complete HTTP/1.1 answer to a decision straight into `out` (the fast path), the
/// same bytes `decision_reply` gives hyper. `scratch` holds the body while its length is
/// written; both buffers are the connection's, reused, so nothing is allocated.
pub(super) fn write_decision(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    d: &Decision,
    date: &[u8],
    close: bool,
) {
    scratch.clear();
    decision_body(scratch, d);
    put_status_line(out, decision_status(d));
    decision_fields(&mut FieldWriter::into_bytes(out), d);
    finish_head(out, Some(scratch.len()), date, close);
    out.extend_from_slice(scratch);
}

fn decision_status(d: &Decision) -> StatusCode {
    if d.allowed {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    }
}

/// The header fields of a decision: JSON, not cacheable, the rate-limit fields, and
/// `Retry-After` when denied.
fn decision_fields(f: &mut FieldWriter<'_>, d: &Decision) {
    json_fields(f);
    put_ratelimit_fields(f, d);
    if let Some(secs) = retry_after(d) {
        f.put(&RETRY_AFTER, |o| put_u64(o, secs));
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
    if let Some(secs) = retry_after(d) {
        buf.extend_from_slice(br#","retry_after":"#);
        put_u64(buf, secs);
    }
    buf.push(b'}');
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

    /// The fast path writes exactly what it wrote before the two transports shared one field
    /// writer, and what hyper is given.
    #[test]
    fn the_fast_path_writes_the_reply_hyper_gets() {
        let d = Decision {
            allowed: false,
            deciding: 0,
            outcomes: smallvec![outcome("basic", 500, 0, Some(0))],
        };
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        write_decision(&mut out, &mut scratch, &d, b"DATE", false);
        let body = r#"{"allowed":false,"limit":500,"remaining":0,"reset":1800,"policy":"basic","retry_after":1}"#;
        let expected = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
             cache-control: no-store\r\nratelimit-policy: \"basic\";q=500;w=3600\r\n\
             ratelimit: \"basic\";r=0;t=1800\r\nx-ratelimit-limit: 500\r\n\
             x-ratelimit-remaining: 0\r\nx-ratelimit-reset: 1800\r\nretry-after: 1\r\n\
             content-length: {}\r\ndate: DATE\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        let mut via_reply = Vec::new();
        decision_reply(&d).write(&mut via_reply, b"DATE", false);
        assert_eq!(String::from_utf8(via_reply).unwrap(), expected);
    }
}
