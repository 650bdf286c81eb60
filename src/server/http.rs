//! The HTTP front door: routes a request, parses `/check` query strings into a
//! [`CheckQuery`] and `/auth` requests into an [`AccessQuery`], asks the [`Gate`], and renders
//! the decision (IETF `RateLimit` / `RateLimit-Policy` fields, legacy `X-RateLimit-*`,
//! `Retry-After`; identity headers and `X-Tollgate-Reason` for `/auth`) or a problem
//! (RFC 9457). It also serves the admin API (`POST /admin/revoke`, `GET /admin/revocations`).
//!
//! The door decides nothing: every answer about a key comes from [`Gate::check`], every answer
//! about a request of the protected application from [`Gate::authorize`]. The same service
//! serves TCP and Unix-socket connections (see [`super::listener`]); each connection's service
//! knows its socket peer, which decides whether client-IP headers are believed and whether the
//! Unix-socket-only admin API is reachable.
//!
//! `/check` and `/auth` are the hot paths, so their answers are written into one buffer and
//! the header values are slices of it: one allocation for the bytes instead of one per header,
//! and header names are constants. `/auth` answers never have a body (`Content-Length: 0`):
//! nginx only returns its keep-alive connection to the pool after an auth answer without one.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use smallvec::SmallVec;

use super::readiness::Readiness;
use crate::auth::AuthInput;
use crate::gate::{
    grammar, retry_after, AccessDecision, AccessOutcome, AccessQuery, AdminCaller, AdminCredential,
    AdminRefusal, CheckQuery, Gate, RevokeError, RevokeRequest, Revoked,
};
use crate::limiter::Decision;
use crate::policy::Peer;
use crate::problem::{quote, Problem, ProblemType};

const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const X_TOLLGATE_REASON: HeaderName = HeaderName::from_static("x-tollgate-reason");
const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
const X_USER_EMAIL: HeaderName = HeaderName::from_static("x-user-email");
const X_USER_ROLE: HeaderName = HeaderName::from_static("x-user-role");
const X_TIER: HeaderName = HeaderName::from_static("x-tier");
/// The original request's target, which nginx passes to `/auth`.
pub const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
/// The original request's method (default: the `/auth` request's own method).
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const PROBLEM_JSON: HeaderValue = HeaderValue::from_static("application/problem+json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const ALLOW_GET: HeaderValue = HeaderValue::from_static("GET");
const ALLOW_GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
const ALLOW_POST: HeaderValue = HeaderValue::from_static("POST");

/// The path of the access endpoint (nginx `auth_request`).
pub const AUTH_PATH: &str = "/auth";
/// Every admin endpoint is below this.
pub const ADMIN_PREFIX: &str = "/admin/";
/// Largest admin request body accepted; larger gets 413.
pub const MAX_ADMIN_BODY_BYTES: usize = 16 * 1024;
/// An admin request body must arrive within this; otherwise 408.
pub const ADMIN_BODY_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The hyper service of one connection: the shared state and the connection's socket peer.
#[derive(Clone)]
pub struct HttpService {
    shared: Arc<HttpShared>,
    peer: Peer,
}

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
    pub fn new(shared: Arc<HttpShared>, peer: Peer) -> Self {
        Self { shared, peer }
    }

    /// The state every connection shares.
    pub fn shared(&self) -> &Arc<HttpShared> {
        &self.shared
    }

    /// Who is on the other end of this connection.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// `/auth` through hyper: the facts from the request's headers, the decision rendered.
    async fn auth<B>(self, req: Request<B>) -> HttpResponse {
        let h = req.headers();
        let facts = AuthFacts {
            method: req.method().as_str(),
            original_uri: h.get(X_ORIGINAL_URI).map(HeaderValue::as_bytes),
            original_method: h.get(X_ORIGINAL_METHOD).map(HeaderValue::as_bytes),
            authorization: h.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            api_key: h
                .get(self.shared.gate.authenticator().api_key_header())
                .map(HeaderValue::as_bytes),
        };
        let reply = match self.shared.authorize(&facts, self.peer, h).await {
            Ok(d) => self.shared.auth_reply(&d),
            Err(p) => problem_reply(&p, None),
        };
        reply.into_response()
    }

    /// `/admin/*`: who may call it, then the endpoint.
    async fn admin<B>(self, req: Request<B>) -> HttpResponse
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let shared = &self.shared;
        let authorization = req.headers().get(AUTHORIZATION).map(HeaderValue::as_bytes);
        let endpoint =
            match shared.admin_endpoint(req.method(), req.uri(), self.peer, authorization) {
                Ok(e) => e,
                Err(reply) => return (*reply).into_response(),
            };
        let reply = match endpoint {
            AdminEndpoint::Revocations => shared.revocations().await,
            AdminEndpoint::Revoke => match read_body(req).await {
                Ok(body) => shared.revoke(&body).await,
                Err(p) => problem_reply(&shared.refuse(p), None),
            },
        };
        reply.into_response()
    }
}

/// The future of one hyper request: ready at once for every endpoint that answers
/// synchronously; boxed only for `/auth` (which may wait for a key-set refetch) and the admin
/// API (which reads a body and writes to disk).
pub enum HttpFuture {
    Ready(Option<HttpResponse>),
    Pending(Pin<Box<dyn Future<Output = HttpResponse> + Send>>),
}

impl Future for HttpFuture {
    type Output = Result<HttpResponse, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            HttpFuture::Ready(r) => Poll::Ready(Ok(r.take().unwrap_or_else(|| {
                // Polled again after completion: a caller bug, answered rather than panicking.
                Reply::new(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()).into_response()
            }))),
            HttpFuture::Pending(f) => f.as_mut().poll(cx).map(Ok),
        }
    }
}

impl<B> hyper::service::Service<Request<B>> for HttpService
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = HttpFuture;

    fn call(&self, req: Request<B>) -> Self::Future {
        let path = req.uri().path();
        if path == AUTH_PATH {
            if let Err(p) = self.shared.check_target_len(target_len(req.uri())) {
                return HttpFuture::Ready(Some(problem_response(&p, None)));
            }
            return HttpFuture::Pending(Box::pin(self.clone().auth(req)));
        }
        if path.starts_with(ADMIN_PREFIX) {
            return HttpFuture::Pending(Box::pin(self.clone().admin(req)));
        }
        HttpFuture::Ready(Some(self.shared.respond(req.method(), req.uri())))
    }
}

/// An admin endpoint a caller was let through to.
/// A caller who presents nothing, to ask whether admin access exists at all.
const NOBODY: AdminCaller<'static> = AdminCaller {
    via_unix_socket: true,
    credential: AdminCredential::None,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AdminEndpoint {
    Revoke,
    Revocations,
}

impl HttpShared {
    /// Answers one request that needs neither headers nor a body (`/check`, `/healthz`,
    /// `/readyz`, `/metrics`). `/auth` is answered as a request without `X-Original-URI`
    /// and the admin API as a request without credentials over TCP would be.
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
            AUTH_PATH => problem_reply(&self.missing_original_uri(), None),
            path if path.starts_with(ADMIN_PREFIX) => {
                // A request without credentials from a TCP peer: nobody is let through.
                let tcp = Peer::Ip(std::net::Ipv4Addr::UNSPECIFIED.into());
                match self.admin_endpoint(method, uri, tcp, None) {
                    Err(reply) => *reply,
                    Ok(_) => self.admin_unauthorized(false),
                }
            }
            other => {
                let p = self.refuse(Problem::new(
                    ProblemType::NotFound,
                    format!(
                        "no endpoint at {}; tollgate serves /check, /auth, /healthz, /readyz and /metrics",
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
            .check(&q)
            .map_err(|e| self.refuse(Problem::from(&e)))
    }

    /// The problem of an `/auth` request without `X-Original-URI` (counted).
    fn missing_original_uri(&self) -> Problem {
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
    /// ([`Gate::with_access_headers`]).
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

    /// An access decision as a [`Reply`] (for hyper): the same fields [`Self::write_auth`] writes,
    /// and an empty body.
    pub fn auth_reply(&self, d: &AccessDecision) -> Reply {
        let mut buf = Vec::with_capacity(256);
        let mut spans = FieldSpans::new();
        let status = match auth_fields(&mut buf, d, Some(&mut spans)) {
            Ok(s) => s,
            Err(p) => return problem_reply(&self.refuse(p), None),
        };
        let bytes = Bytes::from(buf);
        let mut headers = HeaderMap::with_capacity(spans.len());
        for (name, a, b) in spans {
            // Checked by `auth_fields` (identity values) or written from digits, names and
            // fixed text, so this cannot fail; a failure would drop one header, not panic.
            if let Ok(v) = HeaderValue::from_maybe_shared(bytes.slice(a..b)) {
                headers.append(name, v);
            }
        }
        Reply {
            status,
            headers,
            body: Bytes::new(),
        }
    }

    /// Writes the complete HTTP/1.1 answer to an access decision into `out` (the fast path's
    /// way), exactly as [`auth_reply`](Self::auth_reply) through hyper would answer: with
    /// `Content-Length: 0`, except for a HEAD request (`head`), where hyper leaves it out.
    pub fn write_auth(
        &self,
        out: &mut Vec<u8>,
        d: &AccessDecision,
        head: bool,
        date: &[u8],
        close: bool,
    ) {
        let start = out.len();
        out.extend_from_slice(match d.status() {
            200 => b"HTTP/1.1 200 OK".as_slice(),
            401 => b"HTTP/1.1 401 Unauthorized",
            _ => b"HTTP/1.1 403 Forbidden",
        });
        match auth_fields(out, d, None) {
            Ok(_) if head => finish_head_with(out, None, date, close),
            Ok(_) => finish_head(out, 0, date, close),
            Err(p) => {
                out.truncate(start);
                write_reply(out, &problem_reply(&self.refuse(p), None), date, close);
            }
        }
    }

    /// Which admin endpoint a request may use, or the refusal: 404 when the admin API is
    /// disabled or there is no such endpoint, 405 for another method, 403 from a listener it
    /// is not served on, 401 without the admin secret.
    fn admin_endpoint(
        &self,
        method: &Method,
        uri: &Uri,
        peer: Peer,
        authorization: Option<&[u8]>,
    ) -> Result<AdminEndpoint, Box<Reply>> {
        if let Err(p) = self.check_target_len(target_len(uri)) {
            return Err(Box::new(problem_reply(&p, None)));
        }
        if self.gate.admin().admit(&NOBODY).err() == Some(AdminRefusal::Disabled) {
            let p = self.refuse(Problem::new(
                ProblemType::NotFound,
                format!(
                    "no endpoint at {}: the admin API is disabled ([auth.admin] enabled = false)",
                    quote(uri.path())
                ),
            ));
            return Err(Box::new(problem_reply(&p, None)));
        }
        let (endpoint, allow, allowed) = match uri.path() {
            "/admin/revoke" => (AdminEndpoint::Revoke, ALLOW_POST, method == Method::POST),
            "/admin/revocations" => (
                AdminEndpoint::Revocations,
                ALLOW_GET_HEAD,
                method == Method::GET || method == Method::HEAD,
            ),
            other => {
                let p = self.refuse(Problem::new(
                    ProblemType::NotFound,
                    format!(
                        "no endpoint at {}; the admin API serves /admin/revoke and /admin/revocations",
                        quote(other)
                    ),
                ));
                return Err(Box::new(problem_reply(&p, None)));
            }
        };
        if !allowed {
            return Err(Box::new(self.method_not_allowed(method, uri.path(), allow)));
        }
        let caller = AdminCaller {
            via_unix_socket: peer == Peer::Unix,
            credential: authorization.map_or(AdminCredential::None, AdminCredential::Authorization),
        };
        match self.gate.admin().admit(&caller) {
            Ok(()) => {}
            Err(
                refusal @ (AdminRefusal::Disabled
                | AdminRefusal::UnixSocketOnly
                | AdminRefusal::NoSecretConfigured),
            ) => {
                let p = self.refuse(Problem::new(ProblemType::Forbidden, refusal.to_string()));
                return Err(Box::new(problem_reply(&p, None)));
            }
            Err(AdminRefusal::SecretRequired) => {
                return Err(Box::new(self.admin_unauthorized(false)))
            }
            Err(AdminRefusal::SecretInvalid) => {
                return Err(Box::new(self.admin_unauthorized(true)))
            }
        }
        Ok(endpoint)
    }

    /// 401 for the admin API: `WWW-Authenticate: Bearer`, with `error="invalid_token"` when
    /// credentials were presented (RFC 6750 §3.1).
    fn admin_unauthorized(&self, presented: bool) -> Reply {
        let p = self.refuse(Problem::new(
            ProblemType::Unauthorized,
            if presented {
                "the admin secret presented is not valid"
            } else {
                "the admin API needs the admin secret: Authorization: Bearer <secret>"
            },
        ));
        let mut r = problem_reply(&p, None);
        r.headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(if presented {
                r#"Bearer realm="tollgate-admin", error="invalid_token""#
            } else {
                r#"Bearer realm="tollgate-admin""#
            }),
        );
        r
    }

    /// `POST /admin/revoke`: parses the body and records the revocation, answering only once
    /// it is in the revocation log (the fsync runs on the blocking pool).
    async fn revoke(&self, body: &[u8]) -> Reply {
        let req = match RevokeRequest::from_json(body) {
            Ok(r) => r,
            Err(why) => {
                let p = self.refuse(Problem::new(
                    ProblemType::InvalidBody,
                    format!("the revocation request is malformed: {why}"),
                ));
                return problem_reply(&p, None);
            }
        };
        let Revoked { recorded, durable } = match self.gate.revoke(&req).await {
            Ok(r) => r,
            Err(e) => return self.revocation_failed(&e),
        };
        let revocation = req.to_json();
        let body = serde_json::json!({
            "recorded": recorded,
            "durable": durable,
            "revocation": revocation,
        });
        let status = if recorded {
            StatusCode::CREATED
        } else {
            // Already revoked, or past its retention (the token is refused as expired).
            StatusCode::OK
        };
        json_reply(status, body.to_string().into())
    }

    fn revocation_failed(&self, e: &RevokeError) -> Reply {
        let kind = match e {
            RevokeError::BadId { .. } | RevokeError::BadTime { .. } => ProblemType::InvalidBody,
            RevokeError::Full(_) => ProblemType::StoreFull,
            RevokeError::NotSaved | RevokeError::Failed => ProblemType::Internal,
        };
        problem_reply(&self.refuse(Problem::new(kind, e.to_string())), None)
    }

    async fn revocations(&self) -> Reply {
        match self.gate.revocations().await {
            Ok((list, durable)) => {
                let body = serde_json::json!({
                    "count": list.len(),
                    "durable": durable,
                    "revocations": list,
                });
                json_reply(StatusCode::OK, body.to_string().into())
            }
            Err(e) => {
                let p = self.refuse(Problem::new(ProblemType::Internal, e.to_string()));
                problem_reply(&p, None)
            }
        }
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

/// Reads an admin request body: at most [`MAX_ADMIN_BODY_BYTES`] (413 beyond, refused before
/// reading when `Content-Length` says so), within [`ADMIN_BODY_TIMEOUT`] (408).
async fn read_body<B>(req: Request<B>) -> Result<Bytes, Problem>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || {
        Problem::new(
            ProblemType::BodyTooLarge,
            format!("the request body may be at most {MAX_ADMIN_BODY_BYTES} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ADMIN_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), MAX_ADMIN_BODY_BYTES);
    match tokio::time::timeout(ADMIN_BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(Problem::new(
            ProblemType::InvalidBody,
            "the request body could not be read",
        )),
        Err(_) => Err(Problem::new(
            ProblemType::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                ADMIN_BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Header fields written by [`auth_fields`]: name and the span of the value in the buffer.
type FieldSpans = SmallVec<[(HeaderName, usize, usize); 12]>;

/// Writes one header field as `\r\nname: value` and records where its value is.
fn put_field(
    out: &mut Vec<u8>,
    spans: &mut Option<&mut FieldSpans>,
    name: &HeaderName,
    value: impl FnOnce(&mut Vec<u8>),
) {
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    let start = out.len();
    value(out);
    if let Some(s) = spans {
        s.push((name.clone(), start, out.len()));
    }
}

/// Whether text can be a header value as it is: no control characters (a CR or LF would
/// split the header). Identity values are checked for this when a token is verified; this
/// is the door's own guard.
fn header_safe(s: &str) -> bool {
    !s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Writes the header fields of an `/auth` answer into `out` (each as `\r\nname: value`),
/// recording the value spans in `spans` when given; returns the status. Every answer is
/// header-only:
/// - 200: `X-User-Id`, `X-User-Email`, `X-User-Role` (those that have a value), `X-Tier`,
///   and the rate-limit fields as `/check` renders them;
/// - 401: `WWW-Authenticate` and `X-Tollgate-Reason`;
/// - 403: `X-Tollgate-Reason`; when rate-limited also `X-Tier`, `Retry-After` and the
///   rate-limit fields.
///
/// Refuses (500 problem) an identity or tier that cannot be sent as a header value.
fn auth_fields(
    out: &mut Vec<u8>,
    d: &AccessDecision,
    mut spans: Option<&mut FieldSpans>,
) -> Result<StatusCode, Problem> {
    let unsafe_value = || {
        Problem::new(
            ProblemType::Internal,
            "the caller's identity cannot be sent in a header",
        )
    };
    if !header_safe(&d.tier) {
        return Err(unsafe_value());
    }
    let sp = &mut spans;
    match &d.outcome {
        AccessOutcome::Allowed => {
            if let Some(id) = &d.identity {
                let safe = |v: Option<&str>| v.map_or(true, header_safe);
                if !safe(id.user_id.as_deref())
                    || !safe(id.email.as_deref())
                    || !id.roles.iter().all(|r| header_safe(r))
                {
                    return Err(unsafe_value());
                }
                if let Some(user) = id.user_id.as_deref().filter(|u| !u.is_empty()) {
                    put_field(out, sp, &X_USER_ID, |o| {
                        o.extend_from_slice(user.as_bytes())
                    });
                }
                if let Some(email) = id.email.as_deref().filter(|e| !e.is_empty()) {
                    put_field(out, sp, &X_USER_EMAIL, |o| {
                        o.extend_from_slice(email.as_bytes())
                    });
                }
                if !id.roles.is_empty() {
                    put_field(out, sp, &X_USER_ROLE, |o| {
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
                put_field(out, sp, &X_TIER, |o| o.extend_from_slice(d.tier.as_bytes()));
            }
            if let Some(l) = &d.limits {
                ratelimit_headers(out, sp, l);
            }
            Ok(StatusCode::OK)
        }
        AccessOutcome::RateLimited => {
            put_field(out, sp, &X_TOLLGATE_REASON, |o| {
                o.extend_from_slice(b"rate_limited")
            });
            if !d.tier.is_empty() {
                put_field(out, sp, &X_TIER, |o| o.extend_from_slice(d.tier.as_bytes()));
            }
            if let Some(secs) = d.retry_after() {
                put_field(out, sp, &RETRY_AFTER, |o| put_u64(o, secs));
            }
            if let Some(l) = &d.limits {
                ratelimit_headers(out, sp, l);
            }
            Ok(StatusCode::FORBIDDEN)
        }
        _ => {
            let status = if d.status() == 401 {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::FORBIDDEN
            };
            if status == StatusCode::UNAUTHORIZED {
                if let Some(w) = d.www_authenticate() {
                    put_field(out, sp, &WWW_AUTHENTICATE, |o| put_header_text(o, &w));
                }
            }
            let reason = d.reason().unwrap_or("forbidden");
            put_field(out, sp, &X_TOLLGATE_REASON, |o| {
                o.extend_from_slice(reason.as_bytes())
            });
            Ok(status)
        }
    }
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

/// `RateLimit-Policy`, `RateLimit` and `X-RateLimit-Limit/-Remaining/-Reset` of a decision,
/// exactly as `/check` writes them.
fn ratelimit_headers(out: &mut Vec<u8>, sp: &mut Option<&mut FieldSpans>, d: &Decision) {
    let o = d.deciding();
    put_field(out, sp, &RATELIMIT_POLICY, |b| {
        ratelimit_fields(b, d, FieldKind::Policy)
    });
    put_field(out, sp, &RATELIMIT, |b| {
        ratelimit_fields(b, d, FieldKind::Current)
    });
    put_field(out, sp, &X_RATELIMIT_LIMIT, |b| put_u64(b, o.limit));
    put_field(out, sp, &X_RATELIMIT_REMAINING, |b| put_u64(b, o.remaining));
    put_field(out, sp, &X_RATELIMIT_RESET, |b| put_u64(b, o.reset_secs));
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
    if let Some(secs) = retry_after(d) {
        put_u64(&mut buf, secs);
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
    if let Some(secs) = retry_after(d) {
        buf.extend_from_slice(br#","retry_after":"#);
        put_u64(buf, secs);
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
    if let Some(secs) = retry_after(d) {
        out.extend_from_slice(b"\r\nretry-after: ");
        put_u64(out, secs);
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
    finish_head_with(out, Some(content_length), date, close)
}

/// [`finish_head`], with `content-length` left out when `None`.
fn finish_head_with(out: &mut Vec<u8>, content_length: Option<usize>, date: &[u8], close: bool) {
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
