//! Building the parts of an [`Authenticator`](super::Authenticator) from `[auth]`: each
//! issuer with its key source, the revocation store's bounds and the words of its open
//! error, and the guards that stop background tasks. Start-up, a reload (`reload.rs`) and
//! `check-config` ([`check_key_source`]) build through these, so they agree on what a
//! configuration means and on how its problems are told.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parking_lot::Mutex;

use super::jwks::{self, IssuerKeys, KeySet};
use super::revocation::{RevocationError, RevocationOptions};
use super::verify::{AlgSet, ClaimRules};
use crate::clock::Clock;
use crate::config::auth::{IssuerConfig, KeySourceConfig, MIN_HS256_SECRET_BYTES};
use crate::config::secret::SecretEnv;
use crate::config::AuthConfig;

/// One configured issuer.
pub(super) struct Issuer {
    pub(super) name: String,
    pub(super) algs: AlgSet,
    pub(super) rules: ClaimRules,
    /// Shared with the authenticator a reload builds when the key source is unchanged, so a
    /// fetched set, its generation and its counters survive the reload.
    pub(super) keys: Arc<IssuerKeys>,
    /// The background refresh of a remote set; shared like `keys`, aborted when the last
    /// authenticator holding it is dropped.
    pub(super) refresh: Arc<Mutex<Option<TaskGuard>>>,
}

impl Issuer {
    /// Builds issuer `ic` with a key set of its own (read now for a file or a secret; empty
    /// until fetched for a URL).
    pub(super) fn from_config(
        ic: &IssuerConfig,
        clock: &Arc<dyn Clock>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let keys = Arc::new(issuer_keys(ic, clock, env)?);
        Self::with_keys(ic, keys, Arc::default())
    }

    /// Issuer `ic` on a key set (and its refresh task) that already exists.
    pub(super) fn with_keys(
        ic: &IssuerConfig,
        keys: Arc<IssuerKeys>,
        refresh: Arc<Mutex<Option<TaskGuard>>>,
    ) -> Result<Self, String> {
        Ok(Self {
            name: ic.name.clone(),
            algs: AlgSet::from_names(&ic.effective_algorithms())?,
            rules: ClaimRules {
                audiences: ic.audiences.clone(),
                leeway_ms: ic.leeway()?.as_millis() as i64,
                required_claims: ic.required_claims.clone(),
            },
            keys,
            refresh,
        })
    }
}

/// The key set of issuer `ic`: a secret from the environment, a JWKS file read now, or a
/// JWKS URL (empty until fetched).
pub(super) fn issuer_keys(
    ic: &IssuerConfig,
    clock: &Arc<dyn Clock>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<IssuerKeys, String> {
    let name = &ic.name;
    Ok(match ic.key_source()? {
        KeySourceConfig::SecretEnv(var) => {
            let secret = SecretEnv {
                key: &format!("issuer {name:?}: hs256_secret_env"),
                var,
                what: "the issuer's HS256 secret",
                when_unset: "set it to the secret the issuer signs with",
                min_bytes: MIN_HS256_SECRET_BYTES,
            }
            .read(env)?;
            IssuerKeys::fixed(name, KeySet::hs256(&hs256_secret(ic, secret)?))
        }
        KeySourceConfig::File(path) => IssuerKeys::fixed(
            name,
            KeySet::from_file(path).map_err(|e| {
                format!(
                    "issuer {name:?}: jwks_file: {e}; point it at a readable JWKS document \
                     ({{\"keys\": [...]}}) or use jwks_url"
                )
            })?,
        ),
        KeySourceConfig::Url(url) => IssuerKeys::remote(
            name,
            url,
            jwks::RemoteOptions {
                timeout: ic.fetch_timeout()?,
                max_bytes: ic.max_jwks_bytes,
                refresh: ic.refresh_interval()?,
                min_refresh: ic.min_refresh()?,
                max_refresh: ic.max_refresh()?,
                kid_cooldown: ic.unknown_kid_cooldown()?,
                ca_file: ic.ca_file.clone(),
            },
            Arc::clone(clock),
        )?,
    })
}

/// The HS256 key that the text of issuer `ic`'s secret variable stands for: its bytes, or
/// what they decode to when `hs256_secret_encoding = "base64url"` (checked for the least
/// length again, after decoding).
fn hs256_secret(ic: &IssuerConfig, text: String) -> Result<Vec<u8>, String> {
    if ic.secret_encoding() != "base64url" {
        return Ok(text.into_bytes());
    }
    let name = &ic.name;
    let var = ic.hs256_secret_env.as_deref().unwrap_or_default();
    let key = URL_SAFE_NO_PAD
        .decode(text.trim().trim_end_matches('='))
        .map_err(|_| {
            format!(
                "issuer {name:?}: hs256_secret_env: {var} is not base64url \
                 (hs256_secret_encoding = \"base64url\"); write the key in base64url \
                 (A-Z a-z 0-9 - _), or set hs256_secret_encoding = \"text\""
            )
        })?;
    if key.len() < MIN_HS256_SECRET_BYTES {
        return Err(format!(
            "issuer {name:?}: hs256_secret_env: {var} decodes to {} bytes; the issuer's HS256 \
             secret needs at least {MIN_HS256_SECRET_BYTES} bytes (e.g. openssl rand 32 | \
             basenc --base64url)",
            key.len()
        ));
    }
    Ok(key)
}

/// Builds issuer `ic`'s key source as `serve` would, and drops it: a secret read and
/// measured, a key file read and parsed, a JWKS URL's HTTP client and CA bundle set up (the
/// URL itself is not fetched). For `check-config`, which reports what a start would refuse.
pub fn check_key_source(
    ic: &IssuerConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), String> {
    let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
    issuer_keys(ic, &clock, env).map(drop)
}

/// The revocation store's bounds from `[auth.revocation]` and the issuers' leeways.
pub(super) fn revocation_options(config: &AuthConfig) -> Result<RevocationOptions, String> {
    let mut max_leeway = Duration::ZERO;
    for ic in &config.issuers {
        max_leeway = max_leeway.max(ic.leeway()?);
    }
    Ok(RevocationOptions {
        max_entries: config.revocation.max_entries,
        subject_retention_secs: config.revocation.subject_retention()?.as_secs() as i64,
        // A jti entry must outlive the last moment its token verifies.
        jti_slack_secs: max_leeway.as_secs() as i64 + 1,
    })
}

/// Why the revocation log at `path` could not be opened, naming the key, the path, the cause
/// and what to do about it.
pub fn revocation_log_error(path: &std::path::Path, e: &RevocationError) -> String {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let fix = match e {
        RevocationError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => format!(
            "the directory {} does not exist: create it (mkdir -p {}) writable by the user \
             tollgate runs as, or set the path to a file in a directory that exists",
            dir.display(),
            dir.display()
        ),
        RevocationError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => format!(
            "tollgate may not create or write that file: give the user it runs as write \
             access to {}, or set the path to a writable location",
            dir.display()
        ),
        _ => "fix the file or its directory, or set the path to a writable location".into(),
    };
    format!(
        "[auth.revocation] path = {:?}: cannot open the revocation log ({e}); {fix}",
        path.display().to_string()
    )
}

/// A background task that stops when its guard is dropped.
pub(super) struct TaskGuard(pub(super) tokio::task::AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
