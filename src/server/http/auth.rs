//! `/auth` (nginx `auth_request`): the access question about a request of the protected
//! application. The facts come from the request head — `X-Original-URI`, `X-Original-Method`
//! (else the `/auth` request's own method), `Authorization`, the configured API-key header,
//! and the client-IP and key-template headers the gate reads — into an [`AccessQuery`];
//! [`Gate::authorize`](crate::gate::Gate::authorize) decides.
//!
//! Every answer is header-only (`Content-Length: 0`): nginx only returns its keep-alive
//! connection to the pool after an auth answer without a body. Its fields are written by
//! `auth_fields` alone, for both transports.

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Request, StatusCode};

use super::render::{
    finish_head, problem_reply, put_ratelimit_fields, put_status_line, put_u64, write_problem,
    FieldWriter, HttpResponse, Reply, RETRY_AFTER, WWW_AUTHENTICATE, X_TIER, X_TOLLGATE_REASON,
    X_USER_EMAIL, X_USER_ID, X_USER_ROLE,
};
use super::{HttpService, HttpShared};
use crate::auth::AuthInput;
use crate::gate::{grammar, AccessDecision, AccessOutcome, AccessQuery};
use crate::policy::preflight::{may_be_preflight, PREFLIGHT_HEADERS};
use crate::policy::Peer;
use crate::problem::{quote, Problem, ProblemType};

/// The original request's target, which nginx passes to `/auth`.
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// The original request's method (default: the `/auth` request's own method).
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

/// The facts of an `/auth` request as a door found them in the request head, before the
/// client address is resolved.
#[derive(Debug, Clone, Copy)]
pub struct AuthFacts<'a> {
    /// The `/auth` request's own method, judged when `X-Original-Method` is absent (a
    /// direct caller). nginx's auth subrequest is always a `GET` whatever the original
    /// method (seen with nginx 1.22), so an nginx configuration must send the header, or
    /// method-specific rules would judge every request as a `GET`.
    pub method: &'a str,
    /// `X-Original-URI`, raw.
    pub original_uri: Option<&'a [u8]>,
    /// `X-Original-Method`.
    pub original_method: Option<&'a [u8]>,
    /// `Authorization`.
    pub authorization: Option<&'a [u8]>,
    /// The configured API-key header.
    pub api_key: Option<&'a [u8]>,
}

impl HttpService {
    /// `/auth` through hyper: the facts from the request's headers, the decision rendered.
    pub(super) async fn auth<B>(self, req: Request<B>) -> HttpResponse {
        let h = req.headers();
        let facts = AuthFacts {
            method: req.method().as_str(),
            original_uri: h.get(X_ORIGINAL_URI).map(HeaderValue::as_bytes),
            original_method: h.get(X_ORIGINAL_METHOD).map(HeaderValue::as_bytes),
            authorization: h.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            api_key: self
                .shared
                .gate
                .with_api_key_header(|name| h.get(name))
                .map(HeaderValue::as_bytes),
        };
        let reply = match self.shared.authorize(&facts, self.peer, h).await {
            Ok(d) => self.shared.auth_reply(&d),
            Err(p) => problem_reply(&p),
        };
        reply.into_response()
    }

    /// `/auth` on the fast path: picks the credentials, `X-Original-URI`,
    /// `X-Original-Method` and the headers the gate reads out of the head's `fields` (name,
    /// value, in order), and writes the answer into `out`. Only the headers the gate reads
    /// ([`crate::gate::Gate::with_access_headers`]: client-IP and key-template headers; and
    /// for an `OPTIONS` request, the two a CORS preflight is recognised by,
    /// [`PREFLIGHT_HEADERS`]) go into a `HeaderMap`, so a request without them builds
    /// nothing: an `Origin` on a `POST` costs no allocation.
    pub(super) async fn auth_from_head<'h>(
        &self,
        method: &'h str,
        fields: impl Iterator<Item = (&'h [u8], &'h [u8])>,
        out: &mut Vec<u8>,
        date: &[u8],
        close: bool,
    ) {
        let shared = &self.shared;
        let gate = &shared.gate;
        let mut facts = AuthFacts {
            method,
            original_uri: None,
            original_method: None,
            authorization: None,
            api_key: None,
        };
        let mut headers = HeaderMap::new();
        // Kept aside until the method is known (X-Original-Method may come after them).
        let mut preflight: [Option<&[u8]>; 2] = [None; 2];
        gate.with_access_headers(|api_key_header, wanted| {
            let api_key_header = api_key_header.as_str().as_bytes();
            for (name, value) in fields {
                // The first of repeated headers counts, as `HeaderMap::get` has it on hyper's
                // path.
                let slot = if name.eq_ignore_ascii_case(b"authorization") {
                    &mut facts.authorization
                } else if name.eq_ignore_ascii_case(b"x-original-uri") {
                    &mut facts.original_uri
                } else if name.eq_ignore_ascii_case(b"x-original-method") {
                    &mut facts.original_method
                } else if name.eq_ignore_ascii_case(api_key_header) {
                    &mut facts.api_key
                } else {
                    if wanted
                        .iter()
                        .any(|w| name.eq_ignore_ascii_case(w.as_str().as_bytes()))
                    {
                        // Every line, in order: X-Forwarded-For may come as several.
                        if let (Ok(n), Ok(v)) =
                            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
                        {
                            headers.append(n, v);
                        }
                    } else if let Some(i) = PREFLIGHT_HEADERS
                        .iter()
                        .position(|p| name.eq_ignore_ascii_case(p.as_str().as_bytes()))
                    {
                        preflight[i].get_or_insert(value);
                    }
                    continue;
                };
                if slot.is_none() {
                    *slot = Some(value);
                }
            }
        });
        if may_be_preflight(facts.original_method.unwrap_or(method.as_bytes())) {
            for (name, value) in PREFLIGHT_HEADERS.iter().zip(preflight) {
                if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v).ok()) {
                    headers.append(name, v);
                }
            }
        }
        match shared.authorize(&facts, self.peer, &headers).await {
            Ok(d) => shared.write_auth(out, &d, method == "HEAD", date, close),
            Err(p) => write_problem(out, &p, date, close),
        }
    }
}

impl HttpShared {
    /// The problem of an `/auth` request without `X-Original-URI` (counted).
    pub(super) fn missing_original_uri(&self) -> Problem {
        self.refuse(Problem::new(
            ProblemType::MissingHeader,
            "/auth judges the original request and needs its target in X-Original-URI; \
             nginx must set it: proxy_set_header X-Original-URI $request_uri;",
        ))
    }

    /// `/auth`: the facts into an [`AccessQuery`] (the client address resolved through the
    /// trusted-proxy rules from the socket `peer` and `headers`), the gate's decision. A
    /// problem when the request cannot be judged (no `X-Original-URI`, a malformed
    /// `X-Original-Method`) or the configuration cannot decide it (500).
    ///
    /// `headers` are the request's headers, or at least those the gate reads
    /// ([`crate::gate::Gate::with_access_headers`]).
    pub async fn authorize(
        &self,
        facts: &AuthFacts<'_>,
        peer: Peer,
        headers: &HeaderMap,
    ) -> Result<AccessDecision, Problem> {
        let Some(uri) = facts.original_uri else {
            return Err(self.missing_original_uri());
        };
        let method = match facts.original_method {
            None => facts.method,
            Some(m) => match grammar::method(m) {
                Some(m) => m,
                None => {
                    return Err(self.refuse(Problem::new(
                        ProblemType::InvalidHeader,
                        format!(
                            "X-Original-Method must be an HTTP method such as GET, not {}",
                            quote(&String::from_utf8_lossy(m))
                        ),
                    )))
                }
            },
        };
        let q = AccessQuery {
            method,
            uri,
            credentials: AuthInput {
                authorization: facts.authorization,
                api_key: facts.api_key,
                token: None,
            },
            client_ip: self.gate.client_ip(peer, headers),
            headers: Some(headers),
        };
        self.gate.authorize(&q).await.map_err(|e| {
            tracing::error!(error = %e, "/auth: the configuration cannot decide a request");
            self.refuse(Problem::new(
                ProblemType::Internal,
                format!("the configuration cannot decide this request: {e}"),
            ))
        })
    }

    /// An access decision as a [`Reply`] (for hyper): the fields `auth_fields` writes, and
    /// an empty body.
    pub fn auth_reply(&self, d: &AccessDecision) -> Reply {
        let mut refused = None;
        let reply = Reply::render(
            auth_status(d),
            256,
            |f| refused = auth_fields(f, d).err(),
            |_| {},
        );
        match refused {
            None => reply,
            Some(p) => problem_reply(&self.refuse(p)),
        }
    }

    /// Writes the complete HTTP/1.1 answer to an access decision into `out` (the fast path),
    /// the same bytes [`auth_reply`](Self::auth_reply) gives hyper: with `Content-Length: 0`,
    /// except for a HEAD request (`head`), where hyper leaves it out.
    pub fn write_auth(
        &self,
        out: &mut Vec<u8>,
        d: &AccessDecision,
        head: bool,
        date: &[u8],
        close: bool,
    ) {
        let start = out.len();
        put_status_line(out, auth_status(d));
        match auth_fields(&mut FieldWriter::into_bytes(out), d) {
            Ok(()) => finish_head(out, if head { None } else { Some(0) }, date, close),
            Err(p) => {
                out.truncate(start);
                write_problem(out, &self.refuse(p), date, close);
            }
        }
    }
}

/// The status of an `/auth` answer: 200, 401, or 403 for every other refusal.
fn auth_status(d: &AccessDecision) -> StatusCode {
    match d.status() {
        200 => StatusCode::OK,
        401 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    }
}

/// Whether text can be a header value as it is: no control characters (a CR or LF would
/// split the header). Identity values are checked for this when a token is verified; this
/// is the door's own guard.
fn header_safe(s: &str) -> bool {
    !s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Writes the header fields of an `/auth` answer (status: [`auth_status`]). Every answer is
/// header-only:
/// - 200: `X-User-Id`, `X-User-Email`, `X-User-Role` (those that have a value), `X-Tier`,
///   and the rate-limit fields as `/check` renders them;
/// - 401: `WWW-Authenticate` and `X-Tollgate-Reason`;
/// - 403: `X-Tollgate-Reason`; when rate-limited also `X-Tier`, `Retry-After` and the
///   rate-limit fields.
///
/// Refuses (500 problem) an identity or tier that cannot be sent as a header value.
fn auth_fields(f: &mut FieldWriter<'_>, d: &AccessDecision) -> Result<(), Problem> {
    let unsafe_value = || {
        Problem::new(
            ProblemType::Internal,
            "the caller's identity cannot be sent in a header",
        )
    };
    if !header_safe(&d.tier) {
        return Err(unsafe_value());
    }
    match &d.outcome {
        AccessOutcome::Allowed | AccessOutcome::PreflightPassed => {
            if let Some(id) = &d.identity {
                let safe = |v: Option<&str>| v.map_or(true, header_safe);
                if !safe(id.user_id.as_deref())
                    || !safe(id.email.as_deref())
                    || !id.roles.iter().all(|r| header_safe(r))
                {
                    return Err(unsafe_value());
                }
                if let Some(user) = id.user_id.as_deref().filter(|u| !u.is_empty()) {
                    f.put_bytes(&X_USER_ID, user.as_bytes());
                }
                if let Some(email) = id.email.as_deref().filter(|e| !e.is_empty()) {
                    f.put_bytes(&X_USER_EMAIL, email.as_bytes());
                }
                if !id.roles.is_empty() {
                    f.put(&X_USER_ROLE, |o| {
                        for (i, r) in id.roles.iter().enumerate() {
                            if i > 0 {
                                o.push(b',');
                            }
                            o.extend_from_slice(r.as_bytes());
                        }
                    });
                }
            }
            if !d.tier.is_empty() {
                f.put_bytes(&X_TIER, d.tier.as_bytes());
            }
            if let Some(l) = &d.limits {
                put_ratelimit_fields(f, l);
            }
        }
        AccessOutcome::RateLimited => {
            f.put_bytes(&X_TOLLGATE_REASON, b"rate_limited");
            if !d.tier.is_empty() {
                f.put_bytes(&X_TIER, d.tier.as_bytes());
            }
            if let Some(secs) = d.retry_after() {
                f.put(&RETRY_AFTER, |o| put_u64(o, secs));
            }
            if let Some(l) = &d.limits {
                put_ratelimit_fields(f, l);
            }
        }
        _ => {
            if auth_status(d) == StatusCode::UNAUTHORIZED {
                if let Some(w) = d.www_authenticate() {
                    f.put(&WWW_AUTHENTICATE, |o| put_header_text(o, &w));
                }
            }
            let reason = d.reason().unwrap_or("forbidden");
            f.put_bytes(&X_TOLLGATE_REASON, reason.as_bytes());
        }
    }
    Ok(())
}

/// Fixed text as a header value; a control character (there are none) would become a space.
fn put_header_text(out: &mut Vec<u8>, s: &str) {
    out.extend(s.bytes().map(|b| {
        if (b < 0x20 && b != b'\t') || b == 0x7f {
            b' '
        } else {
            b
        }
    }));
}
