//! The HTTP door: `GET /check` (the rate-limit question), `/auth` (nginx `auth_request`: the
//! access question about a request of the protected application), `/healthz`, `/readyz`,
//! `/metrics`, and the admin API (`POST /admin/revoke`, `GET /admin/revocations`), over TCP
//! and the Unix socket.
//!
//! The door decides nothing: every answer about a key comes from
//! [`Gate::check`](crate::gate::Gate::check), every answer about a request of the protected
//! application from [`Gate::authorize`](crate::gate::Gate::authorize). It turns a request into
//! a [`CheckQuery`](crate::gate::CheckQuery) or an [`AccessQuery`](crate::gate::AccessQuery)
//! and the decision into a status, header fields (IETF `RateLimit` / `RateLimit-Policy`,
//! legacy `X-RateLimit-*`, `Retry-After`; identity headers and `X-Tollgate-Reason` for
//! `/auth`) and a body, or into a problem (RFC 9457). Each connection's service knows its
//! socket peer, which decides whether client-IP headers are believed, whether the
//! Unix-socket-only admin API is reachable, and whether `/check` may be asked without a
//! caller's secret (the gate's [`CheckStanding`], asked once when the connection opens).
//!
//! A listener serves the [`Endpoints`] it was built with: the main listeners everything, the
//! metrics listener (`server.metrics`) `/metrics`, `/healthz` and `/readyz` only, through
//! hyper alone (scrapes are not a hot path), and 404 for `/check`, `/auth` and `/admin/*`.
//!
//! # Files
//!
//! - `mod.rs` (here): [`HttpShared`] (what every connection shares), [`HttpService`] (hyper's
//!   service for one connection) and the router, [`HttpShared::reply`].
//! - [`connection`]: how the listener's connection is served — fast path or hyper — and the
//!   handover from one to the other.
//! - [`fastpath`]: the hand-written HTTP/1.1 path that answers plain `/check` and `/auth`
//!   requests itself (the hot paths), and hands every other connection state to hyper.
//! - [`query`]: `/check`'s query string, percent-decoded.
//! - [`check`]: `/check`. [`auth`]: `/auth`, its facts from the request head.
//!   [`admin`]: the admin API. [`health`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`render`]: status lines, header fields and problem answers, written once for both
//!   transports: the fast path writes the bytes, hyper's [`Reply`] is built from the same
//!   bytes.
//!
//! # Adding an endpoint
//!
//! 1. Write its handler in the file of its group (or a new file): a method on [`HttpShared`]
//!    that returns a [`Reply`] — its fields written through a
//!    [`FieldWriter`](render::FieldWriter), problems through `HttpShared::refuse` (which
//!    counts them) and [`render::problem_reply`] — with its tests beside it.
//! 2. Route it in [`HttpShared::reply`] (an answer from the path and the method alone) or,
//!    when it needs headers or a body, in `HttpService::call`, as `/auth` and the admin API
//!    are.
//! 3. The fast path serves every GET that [`HttpShared::reply`] answers without change. An
//!    endpoint that needs headers or a body is hyper's unless the fast path learns it: hand
//!    it over in `fastpath::answer`, as the admin API is.
//! 4. Document it in `docs/http-api.md`, and test it over both paths (tests/http_paths.rs).

pub mod admin;
pub mod auth;
pub mod check;
pub mod connection;
pub mod fastpath;
pub mod health;
pub mod query;
pub mod render;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::cluster::status::ClusterStatus;
use std::task::{Context, Poll};

use http::{Method, Request, StatusCode, Uri};

use crate::gate::{CheckCaller, CheckCredential, CheckStanding, Gate};
use crate::policy::Peer;
use crate::problem::{quote, Problem, ProblemType};

use crate::readiness::Readiness;

pub use self::admin::{ADMIN_BODY_TIMEOUT, ADMIN_PREFIX, MAX_ADMIN_BODY_BYTES};
pub use self::auth::{AuthFacts, X_ORIGINAL_METHOD, X_ORIGINAL_URI};
pub use self::check::render_decision;
pub use self::connection::{serve_connection, HttpConnSettings};
pub use self::render::{HttpResponse, Reply};

use self::render::{problem_reply, problem_reply_with, ALLOW};

/// The path of the access endpoint (nginx `auth_request`).
pub const AUTH_PATH: &str = "/auth";

/// What the HTTP service needs, shared by every connection of a listener.
pub struct HttpShared {
    pub gate: Arc<Gate>,
    pub readiness: Readiness,
    /// Longest request target accepted (`server.max_uri_bytes`); longer gets 414.
    pub max_uri_bytes: usize,
    /// Which endpoints the listener serves.
    pub endpoints: Endpoints,
    /// The cluster's latest report, for `GET /admin/cluster`; `None` when `[cluster]` is off.
    pub cluster: Option<ClusterStatus>,
}

/// Which endpoints a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    /// The main listeners (`server.http`, `server.unix_socket`): `/check`, `/auth`, the admin
    /// API, and `/metrics`, `/healthz` and `/readyz` when `metrics` (`server.metrics_on_http`).
    Main { metrics: bool },
    /// The metrics listener (`server.metrics`): `/metrics`, `/healthz` and `/readyz` only,
    /// so that a port Prometheus and the kubelet can reach serves nothing that spends a
    /// quota or needs a secret.
    MetricsOnly,
}

impl Endpoints {
    /// Everything: what a main listener serves by default.
    pub const ALL: Endpoints = Endpoints::Main { metrics: true };

    /// Whether `/metrics`, `/healthz` and `/readyz` are served here.
    pub fn serves_metrics(self) -> bool {
        matches!(
            self,
            Endpoints::MetricsOnly | Endpoints::Main { metrics: true }
        )
    }
}

/// The hyper service of one connection: the shared state, the connection's socket peer, and
/// what the peer is worth to `/check` (asked of the gate once, when the connection opens).
#[derive(Clone)]
pub struct HttpService {
    shared: Arc<HttpShared>,
    peer: Peer,
    check: CheckStanding,
}

impl HttpService {
    pub fn new(shared: Arc<HttpShared>, peer: Peer) -> Self {
        let check = shared.gate.check_standing(Some(peer));
        Self {
            shared,
            peer,
            check,
        }
    }

    /// A `/check` caller on this connection presenting `authorization` (the header's value),
    /// which is only looked at when the peer alone is not admitted.
    pub fn check_caller<'a>(&self, authorization: Option<&'a [u8]>) -> CheckCaller<'a> {
        CheckCaller {
            standing: self.check,
            credential: match authorization {
                Some(h) if !self.check.is_trusted() => CheckCredential::Authorization(h),
                _ => CheckCredential::None,
            },
        }
    }

    /// The state every connection shares.
    pub fn shared(&self) -> &Arc<HttpShared> {
        &self.shared
    }

    /// Who is on the other end of this connection.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// What the peer is worth to `/check`.
    pub fn check_standing(&self) -> CheckStanding {
        self.check
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
                Reply::render(StatusCode::INTERNAL_SERVER_ERROR, 0, |_| {}, |_| {}).into_response()
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
        if let Err(p) = self.shared.check_host(req.version(), req.headers()) {
            return HttpFuture::Ready(Some(problem_reply(&p).into_response()));
        }
        let path = req.uri().path();
        if self.shared.endpoints == Endpoints::MetricsOnly {
            let caller = self.check_caller(None);
            return HttpFuture::Ready(Some(self.shared.respond(req.method(), req.uri(), &caller)));
        }
        if path == AUTH_PATH {
            if let Err(p) = self.shared.check_target_len(target_len(req.uri())) {
                return HttpFuture::Ready(Some(problem_reply(&p).into_response()));
            }
            return HttpFuture::Pending(Box::pin(self.clone().auth(req)));
        }
        if path.starts_with(ADMIN_PREFIX) {
            return HttpFuture::Pending(Box::pin(self.clone().admin(req)));
        }
        let authorization = if path == "/check" {
            req.headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes())
        } else {
            None
        };
        let caller = self.check_caller(authorization);
        HttpFuture::Ready(Some(self.shared.respond(req.method(), req.uri(), &caller)))
    }
}

impl HttpShared {
    /// Answers one request that needs no body (`/check`, whose caller is `caller`,
    /// `/healthz`, `/readyz`, `/metrics`). `/auth` is answered as a request without
    /// `X-Original-URI` and the admin API as a request without credentials over TCP would be.
    pub fn respond(&self, method: &Method, uri: &Uri, caller: &CheckCaller<'_>) -> HttpResponse {
        self.reply(method, uri, caller).into_response()
    }

    /// [`respond`](Self::respond) before it becomes a hyper response: the router.
    pub fn reply(&self, method: &Method, uri: &Uri, caller: &CheckCaller<'_>) -> Reply {
        if let Err(p) = self.check_target_len(target_len(uri)) {
            return problem_reply(&p);
        }
        if self.endpoints == Endpoints::MetricsOnly {
            return self.reply_metrics_only(method, uri.path());
        }
        match uri.path() {
            "/check" => {
                if method == Method::GET {
                    match self.check_outcome(caller, uri.query().unwrap_or("")) {
                        Ok(decision) => check::decision_reply(&decision),
                        Err(p) => problem_reply(&p),
                    }
                } else {
                    self.method_not_allowed(method, "/check", "GET")
                }
            }
            path @ ("/healthz" | "/readyz" | "/metrics") => {
                if !self.endpoints.serves_metrics() {
                    let p = self.refuse(Problem::new(
                        ProblemType::NotFound,
                        format!(
                            "{path} is served on the metrics listener (server.metrics), not on \
                             this one (server.metrics_on_http = false)"
                        ),
                    ));
                    return problem_reply(&p);
                }
                self.observe(method, path)
            }
            AUTH_PATH => problem_reply(&self.missing_original_uri()),
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
                    if self.endpoints.serves_metrics() {
                        format!(
                            "no endpoint at {}; tollgate serves /check, /auth, /healthz, /readyz and /metrics",
                            quote(other)
                        )
                    } else {
                        format!(
                            "no endpoint at {}; this listener serves /check and /auth (/metrics, \
                             /healthz and /readyz are on server.metrics)",
                            quote(other)
                        )
                    },
                ));
                problem_reply(&p)
            }
        }
    }

    /// The metrics listener's router: `/metrics`, `/healthz` and `/readyz`, and 404 for
    /// everything else — `/check`, `/auth` and the admin API included.
    fn reply_metrics_only(&self, method: &Method, path: &str) -> Reply {
        match path {
            "/healthz" | "/readyz" | "/metrics" => self.observe(method, path),
            other => {
                let p = self.refuse(Problem::new(
                    ProblemType::NotFound,
                    format!(
                        "no endpoint at {}; this is the metrics listener (server.metrics): it \
                         serves /metrics, /healthz and /readyz only",
                        quote(other)
                    ),
                ));
                problem_reply(&p)
            }
        }
    }

    /// `/healthz`, `/readyz` or `/metrics`, for GET and HEAD.
    fn observe(&self, method: &Method, path: &str) -> Reply {
        if method != Method::GET && method != Method::HEAD {
            return self.method_not_allowed(method, path, "GET, HEAD");
        }
        match path {
            "/healthz" => self.healthz(),
            "/readyz" => self.readyz(),
            _ => self.metrics(),
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

    /// Refuses a request whose `Host` header is absent over HTTP/1.1, or given more than once
    /// in any version (RFC 9112 §3.2: a server must answer both with 400). HTTP/1.0 may omit
    /// it. Asked of every request that reaches hyper; the fast path hands such heads over.
    pub fn check_host(
        &self,
        version: http::Version,
        headers: &http::HeaderMap,
    ) -> Result<(), Problem> {
        let hosts = headers.get_all(http::header::HOST).iter().count();
        let detail = match hosts {
            1 => return Ok(()),
            0 if version != http::Version::HTTP_11 => return Ok(()),
            0 => "an HTTP/1.1 request must carry a Host header (RFC 9112 §3.2); this one has none"
                .to_owned(),
            n => format!("a request must carry one Host header (RFC 9112 §3.2); this one has {n}"),
        };
        Err(self.refuse(Problem::new(ProblemType::InvalidHost, detail)))
    }

    /// 405, with the methods the endpoint answers in `Allow`.
    fn method_not_allowed(&self, method: &Method, path: &str, allow: &str) -> Reply {
        let detail = format!(
            "{} does not answer {}; use {}",
            path,
            quote(method.as_str()),
            allow
        );
        let p = self.refuse(Problem::new(ProblemType::MethodNotAllowed, detail));
        problem_reply_with(&p, Some((&ALLOW, allow)))
    }

    /// Counts a problem answer; every problem passes here once, whichever path answers it.
    fn refuse(&self, problem: Problem) -> Problem {
        self.gate.metrics().http_problem(problem.kind.slug());
        problem
    }
}

/// Length of the request target as the client sent it (origin form: path and query).
fn target_len(uri: &Uri) -> usize {
    let pq = uri.path_and_query().map_or(0, |p| p.as_str().len());
    // Absolute form (`GET http://host/check?…`) also carries a scheme and an authority.
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    pq + authority + scheme
}
