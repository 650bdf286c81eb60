//! Reloading `[auth]`: the authenticator a new configuration describes, built so that what
//! the change cannot affect carries over from the running one.
//!
//! What carries over, and why:
//!
//! - **Key sets** of issuers whose key source is unchanged: a remote set already fetched is
//!   kept with its refresh task, generation and counters (the new configuration does not
//!   wait for a fetch); a file or a secret is read again, and the old set is kept when it
//!   holds the same keys — a rotated file brings its new keys.
//! - **The verified-token cache**, only when nothing that went into a cached identity
//!   changed: every issuer (its configuration and its keys), the claim names, the role
//!   tiers and the default tier, the cache's capacity. Otherwise the new authenticator
//!   starts with an empty cache, so a token is judged by the new rules from its next
//!   request on (a token verified under an issuer's old key set is not answered from memory
//!   after the keys changed). The counters carry over either way.
//! - **The revocation store**, always: it is one durable log for the life of the process.
//!   A change to `[auth.revocation]` (its path or bounds) needs a restart, and the reload
//!   summary says so (the gate compares it with the running configuration).
//! - **The outcome counters and the revocation upkeep task**, always.
//!
//! API keys, the API key header, the anonymous tier and admin access hold no state: the new
//! values simply apply.

use std::sync::Arc;

use super::build::{issuer_keys, Issuer};
use super::jwks::IssuerKeys;
use super::Authenticator;
use crate::config::auth::IssuerConfig;
use crate::config::AuthConfig;

/// What a reload of `[auth]` changed, in the file's own names (`auth.issuers.NAME`,
/// `auth.api_keys`…).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthChanges {
    /// Issuers new in this configuration.
    pub added: Vec<String>,
    /// Issuers gone from it.
    pub removed: Vec<String>,
    /// Issuers whose settings or keys changed, and the other `[auth]` keys that changed.
    pub changed: Vec<String>,
    /// Whether the verified-token cache was kept (else the new configuration starts empty).
    pub token_cache_kept: bool,
}

impl Authenticator {
    /// The authenticator of `new`, replacing this one (built from `old`), with the state the
    /// change cannot affect carried over (see the module docs). Secrets come through `env`.
    /// On error nothing is built and this authenticator stays as it is.
    pub fn reloaded(
        &self,
        old: &AuthConfig,
        new: &AuthConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Authenticator, AuthChanges), String> {
        new.validate()?;
        let mut changes = AuthChanges::default();
        let mut issuers = Vec::with_capacity(new.issuers.len());
        // Every issuer in the same place, configured alike, on the same key set.
        let mut issuers_unchanged = old.issuers.len() == new.issuers.len();
        for (i, ic) in new.issuers.iter().enumerate() {
            let label = format!("auth.issuers.{}", ic.name);
            let before = old.issuers.iter().position(|o| o.name == ic.name);
            let keys = match before {
                Some(j) => {
                    let keys = self.key_set_for(j, &old.issuers[j], ic, env)?;
                    let kept = matches!(keys, ReloadedKeys::Kept(_));
                    if old.issuers[j] != *ic || !kept {
                        changes.changed.push(label);
                    }
                    if i != j || old.issuers[j] != *ic || !kept {
                        issuers_unchanged = false;
                    }
                    keys
                }
                None => {
                    changes.added.push(label);
                    issuers_unchanged = false;
                    ReloadedKeys::New
                }
            };
            issuers.push(match keys {
                ReloadedKeys::Kept(issuer) => issuer,
                ReloadedKeys::Reread(keys) => Issuer::with_keys(ic, keys, Arc::default())?,
                ReloadedKeys::New => Issuer::from_config(ic, &self.clock, env)?,
            });
        }
        for o in &old.issuers {
            if !new.issuers.iter().any(|n| n.name == o.name) {
                changes.removed.push(format!("auth.issuers.{}", o.name));
            }
        }

        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        let mut identity_rules_unchanged = true;
        for (key, changed, in_identity) in [
            ("claims", differs(&old.claims, &new.claims), true),
            (
                "default_tier",
                differs(&old.default_tier, &new.default_tier),
                true,
            ),
            (
                "role_tiers",
                differs(&old.role_tiers, &new.role_tiers),
                true,
            ),
            ("cache", differs(&old.cache, &new.cache), true),
            (
                "anonymous_tier",
                differs(&old.anonymous_tier, &new.anonymous_tier),
                false,
            ),
            (
                "api_key_header",
                differs(&old.api_key_header, &new.api_key_header),
                false,
            ),
            ("api_keys", differs(&old.api_keys, &new.api_keys), false),
            ("admin", differs(&old.admin, &new.admin), false),
        ] {
            if changed {
                changes.changed.push(format!("auth.{key}"));
                identity_rules_unchanged &= !in_identity;
            }
        }
        // `[auth.revocation]` is not reloaded: the store stays (the gate compares it with
        // the running configuration and reports a restart).

        changes.token_cache_kept = issuers_unchanged && identity_rules_unchanged;
        let cache = if changes.token_cache_kept {
            Arc::clone(&self.cache)
        } else {
            Arc::new(self.cache.fresh(new.cache.capacity))
        };
        let next = Authenticator::assemble(
            new,
            issuers,
            cache,
            Arc::clone(&self.revocations),
            Arc::clone(&self.clock),
            Arc::clone(&self.outcomes),
            Arc::clone(&self.upkeep),
        )?;
        if self.is_started() && tokio::runtime::Handle::try_current().is_ok() {
            // Refresh tasks for the issuers whose key sets are new; the others run on.
            next.start();
        }
        Ok((next, changes))
    }

    /// The key set issuer `j` of this authenticator runs on once reconfigured as `new`: its
    /// present one when the key source is unchanged and still holds the same keys, else the
    /// file or secret as just read again, else (another source) a new one to build.
    fn key_set_for(
        &self,
        j: usize,
        old: &IssuerConfig,
        new: &IssuerConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ReloadedKeys, String> {
        if !same_key_source(old, new) {
            return Ok(ReloadedKeys::New);
        }
        let running = &self.issuers[j];
        if !running.keys.is_remote() {
            // A file or a secret: read it again; the same keys keep the same set (and the
            // cache entries verified under it), new keys replace it.
            let reread = Arc::new(issuer_keys(new, &self.clock, env)?);
            let same = match (reread.current(), running.keys.current()) {
                (Some(a), Some(b)) => a.keeps_every_key_of(&b) && b.keeps_every_key_of(&a),
                _ => false,
            };
            if !same {
                return Ok(ReloadedKeys::Reread(reread));
            }
        }
        Issuer::with_keys(new, Arc::clone(&running.keys), Arc::clone(&running.refresh))
            .map(ReloadedKeys::Kept)
    }
}

/// What a reloaded issuer's key set is.
enum ReloadedKeys {
    /// The running issuer, reconfigured, on its present key set (and refresh task).
    Kept(Issuer),
    /// The same file or secret, read again for this reload, holding other keys.
    Reread(Arc<IssuerKeys>),
    /// Another key source: built anew.
    New,
}

/// Whether two issuer configurations fetch or read the same key set the same way (their
/// claim rules may differ).
fn same_key_source(a: &IssuerConfig, b: &IssuerConfig) -> bool {
    let key_source_only = |c: &IssuerConfig| IssuerConfig {
        issuer: None,
        audiences: Vec::new(),
        algorithms: Vec::new(),
        leeway: String::new(),
        required_claims: Vec::new(),
        ..c.clone()
    };
    key_source_only(a) == key_source_only(b)
}
