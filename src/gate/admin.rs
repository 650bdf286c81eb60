//! Who may use the admin operations (revoking tokens, listing revocations), on every door.
//!
//! There is one notion of admin access, configured once in `[auth.admin]`:
//!
//! - disabled (the default): no door serves an admin operation;
//! - a secret (`secret_env`, at least 32 bytes): the caller proves it knows the secret —
//!   over HTTP by `Authorization: Bearer <secret>` on each request, over RESP by
//!   `AUTH <secret>` once per connection (the connection then holds an [`AdminProof`]);
//! - `unix_socket_only`: only callers on a door's Unix socket are admitted (its file
//!   permissions are the access control), with the secret too when one is configured.
//!
//! A door turns what it saw into an [`AdminCaller`] and renders the [`AdminRefusal`] in its
//! own words (404/403/401 over HTTP, `ERR`/`NOPERM`/`NOAUTH` over RESP); it never decides.
//!
//! `resp.admin_secret_env`, the RESP door's former setting of its own, is read for one more
//! release as a deprecated alias of `[auth.admin] secret_env` (see [`AdminAccess::from_config`]).

use std::sync::Arc;

use crate::auth::{AdminSecret, MIN_ADMIN_SECRET_BYTES};
use crate::config::secret::SecretEnv;
use crate::config::Config;

/// How the admin operations may be reached, built once from the configuration.
#[derive(Debug)]
pub enum AdminAccess {
    /// Not served at all (the default).
    Disabled,
    /// Served where the config says; callers must prove the secret when `secret` is set, and
    /// may only come over a Unix socket when `unix_socket_only`.
    Enabled {
        secret: Option<Arc<AdminSecret>>,
        unix_socket_only: bool,
    },
}

/// What a caller presents to prove it knows the admin secret.
#[derive(Debug, Clone, Copy)]
pub enum AdminCredential<'a> {
    /// Nothing.
    None,
    /// An `Authorization` header value (`Bearer <secret>`), as received.
    Authorization(&'a [u8]),
    /// A proof obtained earlier on the same connection ([`AdminAccess::prove`]).
    Proven(AdminProof),
}

/// That a connection presented the admin secret. Only [`AdminAccess::prove`] makes one, so a
/// door cannot admit a caller without the gate having checked the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminProof(());

/// The facts about an admin caller a door knows.
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller<'a> {
    /// The request came over one of the door's Unix sockets.
    pub via_unix_socket: bool,
    pub credential: AdminCredential<'a>,
}

/// Why an admin caller is not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminRefusal {
    /// No admin access is configured: the operation does not exist here.
    #[error("the admin operations are disabled ([auth.admin] enabled = false)")]
    Disabled,
    /// Admin access is configured for Unix-socket callers only.
    #[error("admin operations are served on the Unix socket only (auth.admin.unix_socket_only)")]
    UnixSocketOnly,
    /// The secret is required and was not presented.
    #[error("the admin secret is required")]
    SecretRequired,
    /// A secret was presented and is not the admin secret.
    #[error("the admin secret presented is not valid")]
    SecretInvalid,
    /// A secret was presented where none is configured (Unix-socket access without one).
    #[error("no admin secret is configured")]
    NoSecretConfigured,
}

impl AdminAccess {
    /// Reads `[auth.admin]`, taking the secret from the environment through `env`.
    ///
    /// `resp.admin_secret_env` is a deprecated alias: when set and `[auth.admin]` names no
    /// secret, it enables admin access with that secret (on every door, as the one notion
    /// of admin access has it); when both name a variable they must name the same one.
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let c = &config.auth.admin;
        let alias = config.resp.admin_secret_env.as_deref();
        let (enabled, secret_env) = match (alias, c.secret_env.as_deref()) {
            (Some(a), Some(s)) if a != s => {
                return Err(format!(
                    "resp.admin_secret_env ({a}) and auth.admin.secret_env ({s}) name different \
                     variables; there is one admin secret: remove resp.admin_secret_env, which \
                     is deprecated"
                ))
            }
            (Some(a), None) => (true, Some(a)),
            (_, s) => (c.enabled, s),
        };
        if !enabled {
            return Ok(AdminAccess::Disabled);
        }
        let secret = match secret_env {
            Some(var) => {
                let v = SecretEnv {
                    key: "auth.admin.secret_env",
                    var,
                    what: "the admin secret",
                    when_unset: "export it, or disable the admin API",
                    min_bytes: MIN_ADMIN_SECRET_BYTES,
                }
                .read(env)?;
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

    /// Whether `caller` may run an admin operation.
    pub fn admit(&self, caller: &AdminCaller<'_>) -> Result<(), AdminRefusal> {
        let AdminAccess::Enabled {
            secret,
            unix_socket_only,
        } = self
        else {
            return Err(AdminRefusal::Disabled);
        };
        if *unix_socket_only && !caller.via_unix_socket {
            return Err(AdminRefusal::UnixSocketOnly);
        }
        let Some(secret) = secret else {
            // No secret: the Unix socket's permissions are the access control (from_config
            // allows this only together with unix_socket_only, checked above).
            return Ok(());
        };
        match caller.credential {
            AdminCredential::Proven(AdminProof(())) => Ok(()),
            AdminCredential::Authorization(h) if secret.verify_authorization(Some(h)) => Ok(()),
            AdminCredential::Authorization(_) => Err(AdminRefusal::SecretInvalid),
            AdminCredential::None => Err(AdminRefusal::SecretRequired),
        }
    }

    /// Checks a secret presented on its own (RESP `AUTH <secret>`), in constant time; the
    /// proof lets the connection's later admin operations through [`Self::admit`].
    pub fn prove(&self, presented: &[u8]) -> Result<AdminProof, AdminRefusal> {
        match self {
            AdminAccess::Disabled => Err(AdminRefusal::Disabled),
            AdminAccess::Enabled { secret: None, .. } => Err(AdminRefusal::NoSecretConfigured),
            AdminAccess::Enabled {
                secret: Some(s), ..
            } => {
                if s.verify(presented) {
                    Ok(AdminProof(()))
                } else {
                    Err(AdminRefusal::SecretInvalid)
                }
            }
        }
    }

    /// A short description for status output: `disabled`, `secret`,
    /// `secret,unix_socket_only` or `unix_socket_only`.
    pub fn describe(&self) -> &'static str {
        match self {
            AdminAccess::Disabled => "disabled",
            AdminAccess::Enabled {
                secret: Some(_),
                unix_socket_only: false,
            } => "secret",
            AdminAccess::Enabled {
                secret: Some(_),
                unix_socket_only: true,
            } => "secret,unix_socket_only",
            AdminAccess::Enabled { secret: None, .. } => "unix_socket_only",
        }
    }

    /// Whether a secret is configured (what a door's `AUTH` can check against).
    pub fn has_secret(&self) -> bool {
        matches!(
            self,
            AdminAccess::Enabled {
                secret: Some(_),
                ..
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "admin-secret-0123456789abcdef-0123456789";

    /// The embedded default's tiers, then `text`.
    fn config(text: &str) -> Config {
        let base = "[tiers.anonymous]\nlimit = 100\nwindow = \"1h\"\n[tiers.basic]\nlimit = 500\nwindow = \"1h\"\n";
        Config::from_toml_str(&format!("{base}{text}"), "test").unwrap()
    }

    fn env(v: &str) -> Option<String> {
        (v == "ADMIN" || v == "OTHER").then(|| SECRET.to_string())
    }

    fn caller(via_unix_socket: bool, credential: AdminCredential<'_>) -> AdminCaller<'_> {
        AdminCaller {
            via_unix_socket,
            credential,
        }
    }

    #[test]
    fn disabled_by_default() {
        let a = AdminAccess::from_config(&Config::default(), &env).unwrap();
        assert_eq!(
            a.admit(&caller(true, AdminCredential::None)),
            Err(AdminRefusal::Disabled)
        );
        assert_eq!(a.prove(SECRET.as_bytes()), Err(AdminRefusal::Disabled));
    }

    #[test]
    fn a_secret_is_proved_per_request_or_per_connection() {
        let a = AdminAccess::from_config(
            &config("[auth.admin]\nenabled = true\nsecret_env = \"ADMIN\""),
            &env,
        )
        .unwrap();
        let h = format!("Bearer {SECRET}");
        let auth = AdminCredential::Authorization(h.as_bytes());
        assert_eq!(a.admit(&caller(false, auth)), Ok(()));
        assert_eq!(
            a.admit(&caller(
                false,
                AdminCredential::Authorization(b"Bearer nope")
            )),
            Err(AdminRefusal::SecretInvalid)
        );
        assert_eq!(
            a.admit(&caller(true, AdminCredential::None)),
            Err(AdminRefusal::SecretRequired),
            "the secret is needed on the socket too"
        );
        let proof = a.prove(SECRET.as_bytes()).unwrap();
        assert_eq!(
            a.admit(&caller(false, AdminCredential::Proven(proof))),
            Ok(())
        );
        assert_eq!(a.prove(b"nope"), Err(AdminRefusal::SecretInvalid));
    }

    #[test]
    fn unix_socket_only() {
        let uds = AdminAccess::from_config(
            &config("[auth.admin]\nenabled = true\nunix_socket_only = true"),
            &env,
        )
        .unwrap();
        assert_eq!(uds.admit(&caller(true, AdminCredential::None)), Ok(()));
        let h = format!("Bearer {SECRET}");
        assert_eq!(
            uds.admit(&caller(false, AdminCredential::Authorization(h.as_bytes()))),
            Err(AdminRefusal::UnixSocketOnly)
        );
        assert_eq!(
            uds.prove(SECRET.as_bytes()),
            Err(AdminRefusal::NoSecretConfigured)
        );
        let both = AdminAccess::from_config(
            &config(
                "[auth.admin]\nenabled = true\nunix_socket_only = true\nsecret_env = \"ADMIN\"",
            ),
            &env,
        )
        .unwrap();
        let proof = both.prove(SECRET.as_bytes()).unwrap();
        assert_eq!(
            both.admit(&caller(false, AdminCredential::Proven(proof))),
            Err(AdminRefusal::UnixSocketOnly)
        );
        assert_eq!(
            both.admit(&caller(true, AdminCredential::Proven(proof))),
            Ok(())
        );
    }

    #[test]
    fn the_deprecated_resp_setting_is_an_alias_of_the_one_secret() {
        let a = AdminAccess::from_config(&config("[resp]\nadmin_secret_env = \"ADMIN\""), &env)
            .unwrap();
        assert!(a.has_secret());
        let h = format!("Bearer {SECRET}");
        assert_eq!(
            a.admit(&caller(false, AdminCredential::Authorization(h.as_bytes()))),
            Ok(())
        );
        let same = config(
            "[resp]\nadmin_secret_env = \"ADMIN\"\n[auth.admin]\nenabled = true\nsecret_env = \"ADMIN\"",
        );
        assert!(AdminAccess::from_config(&same, &env).is_ok());
        let differ = config(
            "[resp]\nadmin_secret_env = \"OTHER\"\n[auth.admin]\nenabled = true\nsecret_env = \"ADMIN\"",
        );
        let e = AdminAccess::from_config(&differ, &env).unwrap_err();
        assert!(e.contains("different") && e.contains("deprecated"), "{e}");
        let unset = config("[auth.admin]\nenabled = true\nsecret_env = \"UNSET\"");
        let e = AdminAccess::from_config(&unset, &env).unwrap_err();
        assert!(e.contains("UNSET") && !e.contains(SECRET), "{e}");
    }
}
