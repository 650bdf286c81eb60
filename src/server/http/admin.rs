//! The admin API: `POST /admin/revoke` (revoke a token by `jti`, or every token of a subject
//! issued before a time), `GET /admin/revocations` (every live revocation) and
//! `GET /admin/cluster` (this node's peers, their state, generation, last-heard age and
//! merge lag: `cluster::status`). Who may call
//! it is the gate's decision (`gate::AdminAccess`, from `[auth.admin]`); this door words its
//! refusals: disabled (404), the Unix socket only (403 elsewhere), and the admin secret as a
//! bearer token (401 without it). Recording and listing are the gate's too ([`Gate::revoke`]).
//!
//! [`Gate::revoke`]: crate::gate::Gate::revoke

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::render::{
    json_reply, problem_reply, problem_reply_with, HttpResponse, Reply, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use super::{target_len, HttpService, HttpShared};
use crate::gate::{
    AdminAccess, AdminCaller, AdminCredential, AdminRefusal, RevokeError, RevokeRequest, Revoked,
};
use crate::policy::Peer;
use crate::problem::{quote, Problem, ProblemType};

/// Every admin endpoint is below this.
pub const ADMIN_PREFIX: &str = "/admin/";
/// Largest admin request body accepted; larger gets 413.
pub const MAX_ADMIN_BODY_BYTES: usize = 16 * 1024;
/// An admin request body must arrive within this; otherwise 408.
pub const ADMIN_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// An admin endpoint a caller was let through to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AdminEndpoint {
    Revoke,
    Revocations,
    Cluster,
}

impl HttpService {
    /// `/admin/*`: who may call it, then the endpoint.
    pub(super) async fn admin<B>(self, req: Request<B>) -> HttpResponse
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
            AdminEndpoint::Cluster => shared.cluster_report(),
            AdminEndpoint::Revoke => match read_body(req).await {
                Ok(body) => shared.revoke(&body).await,
                Err(p) => problem_reply(&shared.refuse(p)),
            },
        };
        reply.into_response()
    }
}

impl HttpShared {
    /// Which admin endpoint a request may use, or the refusal: 404 when the admin API is
    /// disabled or there is no such endpoint, 405 for another method, 403 from a listener it
    /// is not served on, 401 without the admin secret.
    pub(super) fn admin_endpoint(
        &self,
        method: &Method,
        uri: &Uri,
        peer: Peer,
        authorization: Option<&[u8]>,
    ) -> Result<AdminEndpoint, Box<Reply>> {
        if let Err(p) = self.check_target_len(target_len(uri)) {
            return Err(Box::new(problem_reply(&p)));
        }
        if matches!(*self.gate.admin(), AdminAccess::Disabled) {
            let p = self.refuse(Problem::new(
                ProblemType::NotFound,
                format!(
                    "no endpoint at {}: the admin API is disabled ([auth.admin] enabled = false)",
                    quote(uri.path())
                ),
            ));
            return Err(Box::new(problem_reply(&p)));
        }
        let (endpoint, allow, allowed) = match uri.path() {
            "/admin/revoke" => (AdminEndpoint::Revoke, "POST", method == Method::POST),
            "/admin/revocations" => (
                AdminEndpoint::Revocations,
                "GET, HEAD",
                method == Method::GET || method == Method::HEAD,
            ),
            "/admin/cluster" => (
                AdminEndpoint::Cluster,
                "GET, HEAD",
                method == Method::GET || method == Method::HEAD,
            ),
            other => {
                let p = self.refuse(Problem::new(
                    ProblemType::NotFound,
                    format!(
                        "no endpoint at {}; the admin API serves /admin/revoke, /admin/revocations and /admin/cluster",
                        quote(other)
                    ),
                ));
                return Err(Box::new(problem_reply(&p)));
            }
        };
        if !allowed {
            return Err(Box::new(self.method_not_allowed(method, uri.path(), allow)));
        }
        // Who is admitted is the gate's decision; this door only words the refusal.
        let caller = AdminCaller {
            via_unix_socket: peer == Peer::Unix,
            credential: authorization.map_or(AdminCredential::None, AdminCredential::Authorization),
        };
        // Too many wrong secrets from this address: refused before the secret is looked at
        // (the gate's rule, `gate/wrong_secrets.rs`).
        let presented = authorization.is_some();
        if presented {
            if let Err(secs) = self.gate.admin_secret_allowed(Some(peer)) {
                let p = self.refuse(Problem::new(
                    ProblemType::TooManyAttempts,
                    format!(
                        "too many wrong admin secrets from this address; try again in {secs} s"
                    ),
                ));
                return Err(Box::new(problem_reply_with(
                    &p,
                    Some((&RETRY_AFTER, &secs.to_string())),
                )));
            }
        }
        match self.gate.admin().admit(&caller) {
            Ok(()) => {
                if presented {
                    self.gate.admin_secret_outcome(Some(peer), true);
                }
            }
            Err(
                refusal @ (AdminRefusal::Disabled
                | AdminRefusal::UnixSocketOnly
                | AdminRefusal::NoSecretConfigured),
            ) => {
                let p = self.refuse(Problem::new(ProblemType::Forbidden, refusal.to_string()));
                return Err(Box::new(problem_reply(&p)));
            }
            Err(AdminRefusal::SecretRequired) => {
                return Err(Box::new(self.admin_unauthorized(false)))
            }
            Err(AdminRefusal::SecretInvalid) => {
                self.gate.admin_secret_outcome(Some(peer), false);
                return Err(Box::new(self.admin_unauthorized(true)));
            }
        }
        Ok(endpoint)
    }

    /// 401 for the admin API: `WWW-Authenticate: Bearer`, with `error="invalid_token"` when
    /// credentials were presented (RFC 6750 §3.1).
    pub(super) fn admin_unauthorized(&self, presented: bool) -> Reply {
        let p = self.refuse(Problem::new(
            ProblemType::Unauthorized,
            if presented {
                "the admin secret presented is not valid"
            } else {
                "the admin API needs the admin secret: Authorization: Bearer <secret>"
            },
        ));
        let challenge = if presented {
            r#"Bearer realm="tollgate-admin", error="invalid_token""#
        } else {
            r#"Bearer realm="tollgate-admin""#
        };
        problem_reply_with(&p, Some((&WWW_AUTHENTICATE, challenge)))
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
                return problem_reply(&p);
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
        json_reply(status, body.to_string())
    }

    /// The gate's refusal as a problem: the caller's mistake (400), a full store, or
    /// a failure to record (500); the detail is the gate's message, as over RESP.
    fn revocation_failed(&self, e: &RevokeError) -> Reply {
        let kind = match e {
            RevokeError::BadId { .. } | RevokeError::BadTime { .. } => ProblemType::InvalidBody,
            RevokeError::Full(_) => ProblemType::StoreFull,
            RevokeError::NotSaved | RevokeError::Failed => ProblemType::Internal,
        };
        problem_reply(&self.refuse(Problem::new(kind, e.to_string())))
    }

    /// `GET /admin/revocations`: every live revocation.
    async fn revocations(&self) -> Reply {
        match self.gate.revocations().await {
            Ok((list, durable)) => {
                let body = serde_json::json!({
                    "count": list.len(),
                    "durable": durable,
                    "revocations": list,
                });
                json_reply(StatusCode::OK, body.to_string())
            }
            Err(e) => {
                let p = self.refuse(Problem::new(ProblemType::Internal, e.to_string()));
                problem_reply(&p)
            }
        }
    }
}

impl HttpShared {
    /// `GET /admin/cluster`: this node, its peers and their state, as JSON; `{"enabled":
    /// false}` when `[cluster]` is off.
    fn cluster_report(&self) -> Reply {
        let body = match &self.cluster {
            Some(status) => {
                let mut v = serde_json::to_value(status.report()).expect("a report serialises");
                v["enabled"] = serde_json::Value::Bool(true);
                v
            }
            None => serde_json::json!({ "enabled": false }),
        };
        json_reply(StatusCode::OK, body.to_string())
    }
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
