//! What the admin API (`POST /admin/revoke`, `GET /admin/revocations`) needs from auth: who
//! may call it ([`AdminAccess`], the bearer secret checked in constant time) and the request
//! body it accepts ([`RevokeRequest`]).
//!
//! The admin API is never open by default: disabled unless `[auth.admin] enabled = true`,
//! and then it needs a secret from the environment or is served on the Unix socket only.

use std::sync::Arc;

use ring::digest;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::revocation::{RevocationError, RevocationStore};
use crate::config::auth::{AdminConfig, MIN_HS256_SECRET_BYTES};

/// Shortest admin secret accepted.
pub const MIN_ADMIN_SECRET_BYTES: usize = MIN_HS256_SECRET_BYTES;

/// The admin bearer secret, kept only as its SHA-256.
pub struct AdminSecret {
    hash: [u8; 32],
}

impl std::fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminSecret([redacted])")
    }
}

impl AdminSecret {
    /// From the secret's bytes (≥ 32).
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_ADMIN_SECRET_BYTES {
            return Err(format!(
                "the admin secret must be at least {MIN_ADMIN_SECRET_BYTES} bytes"
            ));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest::digest(&digest::SHA256, secret).as_ref());
        Ok(Self { hash })
    }

    /// True when `presented` is the secret. Both sides are hashed first, so the comparison
    /// takes the same time whatever the presented length and wherever it differs.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let h = digest::digest(&digest::SHA256, presented);
        bool::from(self.hash.ct_eq(h.as_ref()))
    }

    /// Checks an `Authorization` header value: `Bearer <secret>`.
    pub fn verify_authorization(&self, header: Option<&[u8]>) -> bool {
        match header.and_then(super::bearer_token) {
            Some(t) => self.verify(t.as_bytes()),
            None => false,
        }
    }
}

/// How the admin API may be reached.
#[derive(Debug)]
pub enum AdminAccess {
    /// Not served at all (the default).
    Disabled,
    /// Served where the config says; callers must present the secret when `secret` is set,
    /// and may only come over the Unix socket when `unix_socket_only`.
    Enabled {
        secret: Option<Arc<AdminSecret>>,
        unix_socket_only: bool,
    },
}

impl AdminAccess {
    /// Reads `[auth.admin]`, taking the secret from the environment through `env`.
    pub fn from_config(
        c: &AdminConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        if !c.enabled {
            return Ok(AdminAccess::Disabled);
        }
        let secret = match &c.secret_env {
            Some(var) => {
                let v =
                    env(var).ok_or_else(|| format!("auth.admin.secret_env: {var} is not set"))?;
                Some(Arc::new(
                    AdminSecret::new(v.as_bytes()).map_err(|e| format!("{var}: {e}"))?,
                ))
            }
            None => None,
        };
        if secret.is_none() && !c.unix_socket_only {
            return Err("auth.admin: needs secret_env or unix_socket_only".into());
        }
        Ok(AdminAccess::Enabled {
            secret,
            unix_socket_only: c.unix_socket_only,
        })
    }

    /// Whether a request may use the admin API. `via_unix_socket`: it came over the HTTP
    /// Unix socket; `authorization`: its `Authorization` header.
    pub fn allows(&self, via_unix_socket: bool, authorization: Option<&[u8]>) -> bool {
        match self {
            AdminAccess::Disabled => false,
            AdminAccess::Enabled {
                secret,
                unix_socket_only,
            } => {
                if *unix_socket_only && !via_unix_socket {
                    return false;
                }
                match secret {
                    Some(s) => s.verify_authorization(authorization),
                    None => via_unix_socket,
                }
            }
        }
    }
}

/// The body of `POST /admin/revoke`: `{"jti": …, "exp": …}` or `{"sub": …, "before": …}`
/// (times in seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RevokeRequest {
    Jti { jti: String, exp: i64 },
    Subject { sub: String, before: i64 },
}

impl RevokeRequest {
    /// Parses a JSON body, refusing unknown fields and mixed forms.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("expected a JSON object")?;
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        if sorted != ["exp", "jti"] && sorted != ["before", "sub"] {
            return Err(
                r#"expected {"jti": string, "exp": seconds} or {"sub": string, "before": seconds}"#
                    .into(),
            );
        }
        serde_json::from_value(v).map_err(|_| {
            r#"expected {"jti": string, "exp": seconds} or {"sub": string, "before": seconds}"#
                .to_string()
        })
    }

    /// Records it (durably, when the store has a log). Blocks on an fsync.
    pub fn apply(&self, store: &RevocationStore) -> Result<bool, RevocationError> {
        match self {
            RevokeRequest::Jti { jti, exp } => store.revoke_jti(jti, *exp),
            RevokeRequest::Subject { sub, before } => store.revoke_subject(sub, *before),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "admin-secret-0123456789abcdef-0123456789";

    #[test]
    fn secret_checks() {
        assert!(AdminSecret::new(b"short").is_err());
        let s = AdminSecret::new(SECRET.as_bytes()).unwrap();
        assert!(s.verify(SECRET.as_bytes()));
        assert!(!s.verify(&SECRET.as_bytes()[..SECRET.len() - 1]));
        assert!(!s.verify(b""));
        let h = format!("Bearer {SECRET}");
        assert!(s.verify_authorization(Some(h.as_bytes())));
        assert!(s.verify_authorization(Some(format!("bearer  {SECRET}").as_bytes())));
        assert!(!s.verify_authorization(Some(format!("Basic {SECRET}").as_bytes())));
        assert!(!s.verify_authorization(None));
        assert_eq!(format!("{s:?}"), "AdminSecret([redacted])");
    }

    #[test]
    fn access_rules() {
        let env = |v: &str| (v == "ADMIN").then(|| SECRET.to_string());
        let off = AdminAccess::from_config(&AdminConfig::default(), &env).unwrap();
        assert!(!off.allows(true, None));
        let cfg = AdminConfig {
            enabled: true,
            secret_env: Some("ADMIN".into()),
            unix_socket_only: false,
        };
        let a = AdminAccess::from_config(&cfg, &env).unwrap();
        let h = format!("Bearer {SECRET}");
        assert!(a.allows(false, Some(h.as_bytes())));
        assert!(!a.allows(false, Some(b"Bearer nope")));
        assert!(
            !a.allows(true, None),
            "the secret is needed on the socket too"
        );
        let uds = AdminAccess::from_config(
            &AdminConfig {
                enabled: true,
                secret_env: None,
                unix_socket_only: true,
            },
            &env,
        )
        .unwrap();
        assert!(uds.allows(true, None) && !uds.allows(false, Some(h.as_bytes())));
        let missing = AdminConfig {
            secret_env: Some("UNSET".into()),
            ..cfg.clone()
        };
        assert!(AdminAccess::from_config(&missing, &env).is_err());
    }

    #[test]
    fn revoke_request_forms() {
        assert_eq!(
            RevokeRequest::from_json(br#"{"jti":"a","exp":5}"#).unwrap(),
            RevokeRequest::Jti {
                jti: "a".into(),
                exp: 5
            }
        );
        assert_eq!(
            RevokeRequest::from_json(br#"{"sub":"u","before":7}"#).unwrap(),
            RevokeRequest::Subject {
                sub: "u".into(),
                before: 7
            }
        );
        for bad in [
            &br#"{"jti":"a"}"#[..],
            br#"{"jti":"a","exp":"5"}"#,
            br#"{"jti":"a","exp":5,"sub":"u"}"#,
            br#"{"sub":"u","before":1,"x":1}"#,
            br#"[1]"#,
            b"nope",
        ] {
            assert!(
                RevokeRequest::from_json(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
