//! Why a request could not be authenticated.
//!
//! Every failure is one [`AuthError`] variant. The variant is fine-grained (for tests, logs and
//! the `detail` metric label); [`AuthError::reason`] folds it into the few stable reasons the
//! front doors put in `X-Tollgate-Reason`, and [`AuthError::description`] is a fixed sentence
//! safe for `WWW-Authenticate: Bearer error_description="…"`: it never contains token content,
//! claim values or key ids, so an attacker learns nothing beyond the reason.

use std::fmt;

/// An authentication failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` and no API key header.
    MissingToken,
    /// The bearer token is longer than [`super::MAX_TOKEN_BYTES`]; refused before parsing.
    TokenTooLarge,
    /// Not three base64url parts, bad base64, or a header/payload that is not a JSON object.
    Malformed(&'static str),
    /// `alg: none` (any spelling).
    AlgNone,
    /// An `alg` tollgate does not implement.
    UnsupportedAlgorithm,
    /// The issuer does not accept this `alg`, or the selected key is of another type.
    AlgorithmNotAllowed,
    /// A `crit` header: tollgate implements no JWS extension, so it must refuse (RFC 7515 §4.1.11).
    CriticalHeader,
    /// The token's `iss` (or its absence) matches no configured issuer.
    UnknownIssuer,
    /// No key with the token's `kid` (after the allowed refetch).
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// A registered claim has the wrong JSON type (e.g. `exp` as a string).
    InvalidClaim(&'static str),
    /// A claim the issuer requires is absent (`exp` always is).
    MissingClaim(String),
    /// `aud` does not name an accepted audience (or is present when none is configured).
    WrongAudience,
    /// `exp` (plus leeway) has passed.
    Expired,
    /// `nbf` minus leeway is still in the future.
    NotYetValid,
    /// `iat` is further in the future than the leeway.
    IssuedInFuture,
    /// Identity claims tollgate cannot forward (control characters, oversize values).
    BadIdentity(&'static str),
    /// The token was revoked (by `jti` or by subject).
    Revoked,
    /// An API key was presented and matches no configured key.
    InvalidApiKey,
    /// The token's issuer has no key set yet (first fetch pending or failing).
    KeysUnavailable,
}

impl AuthError {
    /// The stable reason for `X-Tollgate-Reason` and the outcome metric:
    /// `missing_token`, `invalid_token`, `expired`, `revoked`, `invalid_api_key`,
    /// `keys_unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::Expired => "expired",
            AuthError::Revoked => "revoked",
            AuthError::InvalidApiKey => "invalid_api_key",
            AuthError::KeysUnavailable => "keys_unavailable",
            _ => "invalid_token",
        }
    }

    /// A finer label for logs and metrics (`bad_signature`, `unknown_kid`, `alg_none`…).
    pub fn detail(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::TokenTooLarge => "too_large",
            AuthError::Malformed(_) => "malformed",
            AuthError::AlgNone => "alg_none",
            AuthError::UnsupportedAlgorithm => "unsupported_alg",
            AuthError::AlgorithmNotAllowed => "alg_not_allowed",
            AuthError::CriticalHeader => "crit_header",
            AuthError::UnknownIssuer => "unknown_issuer",
            AuthError::UnknownKey => "unknown_kid",
            AuthError::BadSignature => "bad_signature",
            AuthError::InvalidClaim(_) => "invalid_claim",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::BadIdentity(_) => "bad_identity",
            AuthError::Revoked => "revoked",
            AuthError::InvalidApiKey => "invalid_api_key",
            AuthError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// A sentence for `error_description`: only fixed text and configured claim names,
    /// never token content. Contains no `"` or `\` so it can be quoted as is.
    pub fn description(&self) -> String {
        match self {
            AuthError::MissingToken => "no bearer token or API key was presented".into(),
            AuthError::TokenTooLarge => "the token is larger than 8 KiB".into(),
            AuthError::Malformed(what) => format!("the token is malformed: {what}"),
            AuthError::AlgNone => "unsigned tokens (alg none) are refused".into(),
            AuthError::UnsupportedAlgorithm => "the token's algorithm is not supported".into(),
            AuthError::AlgorithmNotAllowed => {
                "the token's algorithm is not allowed for its issuer or key".into()
            }
            AuthError::CriticalHeader => {
                "the token names a critical header extension that is not implemented".into()
            }
            AuthError::UnknownIssuer => "the token's issuer is not accepted".into(),
            AuthError::UnknownKey => "the token's signing key is not known".into(),
            AuthError::BadSignature => "the token's signature is invalid".into(),
            AuthError::InvalidClaim(claim) => {
                format!("the token's {claim} claim has the wrong type")
            }
            AuthError::MissingClaim(claim) => {
                let safe: String = claim
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .take(64)
                    .collect();
                format!("the token lacks the required {safe} claim")
            }
            AuthError::WrongAudience => "the token's audience is not accepted".into(),
            AuthError::Expired => "the token has expired".into(),
            AuthError::NotYetValid => "the token is not valid yet".into(),
            AuthError::IssuedInFuture => "the token is issued in the future".into(),
            AuthError::BadIdentity(what) => {
                format!("the token's identity claims are unusable: {what}")
            }
            AuthError::Revoked => "the token has been revoked".into(),
            AuthError::InvalidApiKey => "the API key is not valid".into(),
            AuthError::KeysUnavailable => "the token's issuer keys are not available yet".into(),
        }
    }

    /// The RFC 6750 `error` code for `WWW-Authenticate`: none when no credentials were sent
    /// (§3.1), `invalid_token` otherwise.
    pub fn bearer_error(&self) -> Option<&'static str> {
        match self {
            AuthError::MissingToken => None,
            _ => Some("invalid_token"),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description())
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_quotable_and_reasons_stable() {
        let all = [
            AuthError::MissingToken,
            AuthError::TokenTooLarge,
            AuthError::Malformed("x"),
            AuthError::AlgNone,
            AuthError::UnsupportedAlgorithm,
            AuthError::AlgorithmNotAllowed,
            AuthError::CriticalHeader,
            AuthError::UnknownIssuer,
            AuthError::UnknownKey,
            AuthError::BadSignature,
            AuthError::InvalidClaim("exp"),
            AuthError::MissingClaim("a\"b\\c\r\nd".into()),
            AuthError::WrongAudience,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::IssuedInFuture,
            AuthError::BadIdentity("x"),
            AuthError::Revoked,
            AuthError::InvalidApiKey,
            AuthError::KeysUnavailable,
        ];
        for e in &all {
            let d = e.description();
            assert!(!d.is_empty());
            assert!(
                !d.contains('"') && !d.contains('\\') && !d.contains('\n'),
                "{d}"
            );
            assert!([
                "missing_token",
                "invalid_token",
                "expired",
                "revoked",
                "invalid_api_key",
                "keys_unavailable"
            ]
            .contains(&e.reason()));
        }
        assert_eq!(AuthError::MissingToken.bearer_error(), None);
        assert_eq!(AuthError::Expired.bearer_error(), Some("invalid_token"));
    }
}
