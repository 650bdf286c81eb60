//! Problem details (RFC 9457) for requests tollgate cannot answer.
//!
//! Every HTTP answer that is not a decision — bad parameters, an unknown path, a wrong method,
//! a URI that is too long — carries an `application/problem+json` body built here, so that a
//! client always learns *what* was wrong in a machine-readable `type` and a human `detail`.
//! The RESP door answers `-ERR` lines of its own wording; what the two doors share is the
//! gate's errors underneath ([`CheckError`], the revocation and admin refusals), so the same
//! input is refused alike on both.

use std::fmt::Write as _;

use crate::gate::CheckError;

/// The kinds of problem tollgate reports. Each has a stable `type` URI, a title that never
/// changes between occurrences (RFC 9457 §3.1.3), and an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemType {
    /// A required query parameter is absent.
    MissingParameter,
    /// A query parameter appears more than once.
    DuplicateParameter,
    /// A query parameter is not valid percent-encoded UTF-8, or not of the expected form.
    InvalidParameter,
    /// `key` is missing or empty.
    MissingKey,
    /// `key` is longer than [`crate::gate::MAX_KEY_BYTES`].
    KeyTooLong,
    /// `tier` names no configured tier.
    UnknownTier,
    /// `limit` names no configured limit.
    UnknownLimit,
    /// `hits` is not a number, or above the configured maximum.
    InvalidHits,
    /// No endpoint at this path.
    NotFound,
    /// The endpoint exists but not for this method.
    MethodNotAllowed,
    /// The request target is longer than `server.max_uri_bytes`.
    UriTooLong,
    /// A required request header is absent (`/auth` without `X-Original-URI`).
    MissingHeader,
    /// A request header is malformed (`X-Original-Method` that is not a method).
    InvalidHeader,
    /// A request body is not what the endpoint accepts (admin API: bad JSON).
    InvalidBody,
    /// The admin API needs the admin bearer secret.
    Unauthorized,
    /// The admin API is not served on this listener.
    Forbidden,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// The request body is larger than the endpoint accepts.
    BodyTooLarge,
    /// Tollgate cannot answer: its configuration cannot decide the request, or a write failed.
    Internal,
    /// The revocation store holds its maximum of entries.
    StoreFull,
    /// This caller may not ask `/check` (`[check]`: not on the Unix socket, not in
    /// `networks`, no valid caller secret).
    CheckForbidden,
    /// Too many wrong admin secrets from this address: refused for a while.
    TooManyAttempts,
    /// An HTTP/1.1 request without a `Host` header, or any request with two (RFC 9112 §3.2).
    InvalidHost,
}

impl ProblemType {
    /// Every problem type, for documentation and tests.
    pub const ALL: [ProblemType; 23] = [
        ProblemType::MissingParameter,
        ProblemType::DuplicateParameter,
        ProblemType::InvalidParameter,
        ProblemType::MissingKey,
        ProblemType::KeyTooLong,
        ProblemType::UnknownTier,
        ProblemType::UnknownLimit,
        ProblemType::InvalidHits,
        ProblemType::NotFound,
        ProblemType::MethodNotAllowed,
        ProblemType::UriTooLong,
        ProblemType::MissingHeader,
        ProblemType::InvalidHeader,
        ProblemType::InvalidBody,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::RequestTimeout,
        ProblemType::BodyTooLarge,
        ProblemType::Internal,
        ProblemType::StoreFull,
        ProblemType::CheckForbidden,
        ProblemType::TooManyAttempts,
        ProblemType::InvalidHost,
    ];

    /// Short identifier, also the last part of the type URI and the `reason` label in metrics.
    pub fn slug(self) -> &'static str {
        match self {
            ProblemType::MissingParameter => "missing-parameter",
            ProblemType::DuplicateParameter => "duplicate-parameter",
            ProblemType::InvalidParameter => "invalid-parameter",
            ProblemType::MissingKey => "missing-key",
            ProblemType::KeyTooLong => "key-too-long",
            ProblemType::UnknownTier => "unknown-tier",
            ProblemType::UnknownLimit => "unknown-limit",
            ProblemType::InvalidHits => "invalid-hits",
            ProblemType::NotFound => "not-found",
            ProblemType::MethodNotAllowed => "method-not-allowed",
            ProblemType::UriTooLong => "uri-too-long",
            ProblemType::MissingHeader => "missing-header",
            ProblemType::InvalidHeader => "invalid-header",
            ProblemType::InvalidBody => "invalid-body",
            ProblemType::Unauthorized => "unauthorized",
            ProblemType::Forbidden => "forbidden",
            ProblemType::RequestTimeout => "request-timeout",
            ProblemType::BodyTooLarge => "body-too-large",
            ProblemType::Internal => "internal",
            ProblemType::StoreFull => "store-full",
            ProblemType::CheckForbidden => "check-forbidden",
            ProblemType::TooManyAttempts => "too-many-attempts",
            ProblemType::InvalidHost => "invalid-host",
        }
    }

    /// The `type` member: a URN, since these problems have no web page of their own; they are
    /// described in docs/http-api.md.
    pub fn type_uri(self) -> String {
        format!("urn:tollgate:problem:{}", self.slug())
    }

    /// The `title` member: the same for every occurrence of this type.
    pub fn title(self) -> &'static str {
        match self {
            ProblemType::MissingParameter => "A required parameter is missing",
            ProblemType::DuplicateParameter => "A parameter is given more than once",
            ProblemType::InvalidParameter => "A parameter is malformed",
            ProblemType::MissingKey => "The key is missing or empty",
            ProblemType::KeyTooLong => "The key is too long",
            ProblemType::UnknownTier => "Unknown tier",
            ProblemType::UnknownLimit => "Unknown limit",
            ProblemType::InvalidHits => "Invalid hits",
            ProblemType::NotFound => "Not found",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::UriTooLong => "URI too long",
            ProblemType::MissingHeader => "A required header is missing",
            ProblemType::InvalidHeader => "A header is malformed",
            ProblemType::InvalidBody => "The request body is malformed",
            ProblemType::Unauthorized => "Authentication required",
            ProblemType::Forbidden => "Forbidden",
            ProblemType::RequestTimeout => "The request body did not arrive in time",
            ProblemType::BodyTooLarge => "The request body is too large",
            ProblemType::Internal => "Internal error",
            ProblemType::StoreFull => "The revocation store is full",
            ProblemType::CheckForbidden => "This caller may not spend or read quotas",
            ProblemType::TooManyAttempts => "Too many wrong secrets from this address",
            ProblemType::InvalidHost => "The Host header is missing or repeated",
        }
    }

    /// The HTTP status this problem is answered with.
    pub fn status(self) -> u16 {
        match self {
            ProblemType::NotFound => 404,
            ProblemType::MethodNotAllowed => 405,
            ProblemType::UriTooLong => 414,
            ProblemType::Unauthorized => 401,
            ProblemType::Forbidden | ProblemType::CheckForbidden => 403,
            ProblemType::RequestTimeout => 408,
            ProblemType::BodyTooLarge => 413,
            ProblemType::Internal => 500,
            ProblemType::StoreFull => 507,
            ProblemType::TooManyAttempts => 429,
            _ => 400,
        }
    }
}

/// One occurrence of a problem: its type and a `detail` specific to this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemType,
    /// Says what exactly was wrong with this request. Never contains secrets; it may quote
    /// (truncated) parameter values the client sent.
    pub detail: String,
}

/// Longest client-supplied value quoted back in a `detail`: enough to recognise it, not
/// enough to turn an error answer into an amplifier.
const MAX_QUOTED_CHARS: usize = 64;

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The `application/problem+json` body, members in the order RFC 9457 lists them.
    pub fn to_json(&self) -> String {
        let s = |v: &str| serde_json::Value::from(v).to_string();
        format!(
            "{{\"type\":{},\"title\":{},\"status\":{},\"detail\":{}}}",
            s(&self.kind.type_uri()),
            s(self.kind.title()),
            self.kind.status(),
            s(&self.detail)
        )
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.slug(), self.detail)
    }
}

/// Quotes a client-supplied value for a `detail`, truncated to `MAX_QUOTED_CHARS`
/// characters, with `…` marking the cut.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_QUOTED_CHARS * 4) + 4);
    out.push('"');
    let mut chars = value.chars();
    for c in chars.by_ref().take(MAX_QUOTED_CHARS) {
        // Debug-escape control characters and quotes so the detail stays one readable line.
        let _ = write!(out, "{}", c.escape_debug());
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

impl From<&CheckError> for Problem {
    fn from(e: &CheckError) -> Self {
        let (kind, detail) = match e {
            CheckError::MissingKey => (
                ProblemType::MissingKey,
                "the query parameter key is required and must not be empty".to_string(),
            ),
            CheckError::KeyTooLong(_) => (ProblemType::KeyTooLong, e.to_string()),
            CheckError::UnknownTier(t) => (
                ProblemType::UnknownTier,
                format!(
                    "unknown tier {}; see the [tiers] of the configuration",
                    quote(t)
                ),
            ),
            CheckError::UnknownLimit(l) => (
                ProblemType::UnknownLimit,
                format!(
                    "unknown limit {}; see the [limits] of the configuration",
                    quote(l)
                ),
            ),
            CheckError::HitsOutOfRange { .. } => (ProblemType::InvalidHits, e.to_string()),
            CheckError::NotAllowed(_) => (ProblemType::CheckForbidden, e.to_string()),
        };
        Problem { kind, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_four_members() {
        let p = Problem::new(ProblemType::UnknownTier, "unknown tier \"gold\"");
        let body = p.to_json();
        assert!(body.starts_with(r#"{"type":"urn:tollgate:problem:unknown-tier","title":"#));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "urn:tollgate:problem:unknown-tier");
        assert_eq!(v["title"], "Unknown tier");
        assert_eq!(v["status"], 400);
        assert_eq!(v["detail"], "unknown tier \"gold\"");
    }

    #[test]
    fn slugs_are_unique() {
        let mut slugs: Vec<_> = ProblemType::ALL.iter().map(|p| p.slug()).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), ProblemType::ALL.len());
    }

    #[test]
    fn quote_truncates_and_escapes() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "x".repeat(100);
        let q = quote(&long);
        assert!(q.ends_with("…\""));
        assert_eq!(q.chars().filter(|&c| c == 'x').count(), MAX_QUOTED_CHARS);
    }

    #[test]
    fn check_errors_map_to_types() {
        assert_eq!(
            Problem::from(&CheckError::KeyTooLong(600)).kind,
            ProblemType::KeyTooLong
        );
        assert_eq!(
            Problem::from(&CheckError::HitsOutOfRange { max: 5 }).kind,
            ProblemType::InvalidHits
        );
        let refused = Problem::from(&CheckError::NotAllowed(
            crate::gate::CheckRefusal::UntrustedPeer,
        ));
        assert_eq!(refused.status(), 403);
        assert!(refused.detail.contains("[check] networks"), "{refused}");
        assert!(Problem::from(&CheckError::UnknownLimit("x".into()))
            .detail
            .contains("\"x\""));
    }
}
