//! `[auth]`: issuers, key sets, token cache, API keys, revocation, admin API.
//!
//! This file owns the schema of the `[auth]` section and its self-consistency checks
//! ([`AuthConfig::validate`]). Durations are kept as the strings the operator wrote
//! (`"30s"`, `"5m"`) and resolved by the accessor methods, so an error message can quote them.
//! Tier names are checked against `[tiers]` by the config loader, which knows both sections
//! ([`AuthConfig::referenced_tiers`]).
//!
//! ```toml
//! [auth]
//! anonymous_tier = "anonymous"     # no token
//! default_tier = "basic"           # a user none of whose roles is mapped
//! role_tiers = [{ role = "premium", tier = "premium" }]   # first match wins
//! api_key_header = "x-api-key"
//!
//! [[auth.issuers]]
//! name = "better-auth"
//! issuer = "https://app.example"
//! audiences = ["https://app.example"]
//! jwks_url = "https://app.example/api/auth/jwks"
//! algorithms = ["EdDSA"]
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Algorithms tollgate verifies. `none` and anything else are refused.
pub const SUPPORTED_ALGORITHMS: &[&str] = &["EdDSA", "ES256", "ES512", "RS256", "PS256", "HS256"];

/// Shortest HS256 secret accepted (RFC 7518 §3.2: a key at least as long as the hash).
pub const MIN_HS256_SECRET_BYTES: usize = 32;
/// How `hs256_secret_env`'s variable may hold the secret: as text, or base64url-encoded.
pub const HS256_SECRET_ENCODINGS: &[&str] = &["text", "base64url"];

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Token issuers; a token is matched to one by its `iss` claim.
    pub issuers: Vec<IssuerConfig>,
    /// Where user id, email, roles and permissions are read from.
    pub claims: ClaimNames,
    /// Tier of a request without credentials.
    pub anonymous_tier: String,
    /// Tier of an authenticated user none of whose roles appears in `role_tiers`.
    pub default_tier: String,
    /// Role → tier, in order: the first entry naming one of the user's roles wins.
    pub role_tiers: Vec<RoleTier>,
    /// Header carrying an API key.
    pub api_key_header: String,
    /// Accepted API keys, by SHA-256 hash.
    pub api_keys: Vec<ApiKeyConfig>,
    /// The verified-token cache.
    pub cache: TokenCacheConfig,
    /// The revocation store.
    pub revocation: RevocationConfig,
    /// The admin API (`POST /admin/revoke`, `GET /admin/revocations`).
    pub admin: AdminConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            claims: ClaimNames::default(),
            anonymous_tier: "anonymous".into(),
            default_tier: "basic".into(),
            role_tiers: Vec::new(),
            api_key_header: "x-api-key".into(),
            api_keys: Vec::new(),
            cache: TokenCacheConfig::default(),
            revocation: RevocationConfig::default(),
            admin: AdminConfig::default(),
        }
    }
}

/// One `[[auth.issuers]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// A label for logs and metrics.
    pub name: String,
    /// The `iss` value tokens of this issuer carry. When unset, this issuer takes tokens
    /// that have no `iss` claim (at most one issuer may leave it unset).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values. Empty: tokens must carry no `aud` (RFC 7519 §4.1.3).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Key source: exactly one of `jwks_url`, `jwks_file`, `hs256_secret_env`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Name of the environment variable holding the HS256 shared secret (≥ 32 bytes).
    #[serde(default)]
    pub hs256_secret_env: Option<String>,
    /// How the variable holds the secret: `"text"` (its bytes as they are, the default) or
    /// `"base64url"` (decoded first, padding optional: a JWK's `k`, or any binary key). Only
    /// for `hs256_secret_env`: set on an issuer with a key set, it is a configuration error
    /// (it would be ignored). Read through [`IssuerConfig::secret_encoding`].
    #[serde(default)]
    pub hs256_secret_encoding: Option<String>,
    /// Algorithms accepted. Default: every asymmetric algorithm for a JWKS source,
    /// `["HS256"]` for a secret.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`.
    #[serde(default = "default_leeway")]
    pub leeway: String,
    /// Claims a token must carry besides `exp` (always required), e.g. `["sub", "iat"]`.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// PEM file of CA certificates for an `https://` JWKS URL. Default: the system bundle.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Time allowed for one JWKS fetch, connection included.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout: String,
    /// Largest JWKS response body accepted.
    #[serde(default = "default_max_jwks_bytes")]
    pub max_jwks_bytes: usize,
    /// Refresh period when the response has no `Cache-Control: max-age`.
    #[serde(default = "default_refresh")]
    pub refresh_interval: String,
    /// `max-age` is clamped to [`min_refresh`, `max_refresh`].
    #[serde(default = "default_min_refresh")]
    pub min_refresh: String,
    #[serde(default = "default_max_refresh")]
    pub max_refresh: String,
    /// A token with an unknown `kid` triggers at most one refetch per this period.
    #[serde(default = "default_kid_cooldown")]
    pub unknown_kid_cooldown: String,
}

/// `hs256_secret_encoding` when it is not set.
const DEFAULT_HS256_SECRET_ENCODING: &str = "text";
fn default_leeway() -> String {
    "30s".into()
}
fn default_fetch_timeout() -> String {
    "5s".into()
}
fn default_max_jwks_bytes() -> usize {
    256 * 1024
}
fn default_refresh() -> String {
    "5m".into()
}
fn default_min_refresh() -> String {
    "1m".into()
}
fn default_max_refresh() -> String {
    "1h".into()
}
/// One second: a key an issuer publishes just after tollgate's last fetch is fetched at most
/// a second after the first token that names it (so a rotation costs its first users at most
/// that second), and a flood of random `kid`s costs the issuer at most one fetch a second.
fn default_kid_cooldown() -> String {
    "1s".into()
}

impl IssuerConfig {
    /// An issuer with every optional field at its default, for code and tests that build
    /// configurations by hand.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            issuer: None,
            audiences: Vec::new(),
            jwks_url: None,
            jwks_file: None,
            hs256_secret_env: None,
            hs256_secret_encoding: None,
            algorithms: Vec::new(),
            leeway: default_leeway(),
            required_claims: Vec::new(),
            ca_file: None,
            fetch_timeout: default_fetch_timeout(),
            max_jwks_bytes: default_max_jwks_bytes(),
            refresh_interval: default_refresh(),
            min_refresh: default_min_refresh(),
            max_refresh: default_max_refresh(),
            unknown_kid_cooldown: default_kid_cooldown(),
        }
    }

    /// The key source, once [`AuthConfig::validate`] has passed.
    pub fn key_source(&self) -> Result<KeySourceConfig<'_>, String> {
        match (&self.jwks_url, &self.jwks_file, &self.hs256_secret_env) {
            (Some(u), None, None) => Ok(KeySourceConfig::Url(u)),
            (None, Some(p), None) => Ok(KeySourceConfig::File(p)),
            (None, None, Some(e)) => Ok(KeySourceConfig::SecretEnv(e)),
            _ => Err(format!(
                "issuer {:?}: set exactly one of jwks_url, jwks_file, hs256_secret_env",
                self.name
            )),
        }
    }

    /// How `hs256_secret_env` holds the secret, the default applied.
    pub fn secret_encoding(&self) -> &str {
        self.hs256_secret_encoding
            .as_deref()
            .unwrap_or(DEFAULT_HS256_SECRET_ENCODING)
    }

    /// Algorithms accepted, defaults applied.
    pub fn effective_algorithms(&self) -> Vec<String> {
        if !self.algorithms.is_empty() {
            return self.algorithms.clone();
        }
        if self.hs256_secret_env.is_some() {
            vec!["HS256".into()]
        } else {
            SUPPORTED_ALGORITHMS
                .iter()
                .filter(|a| **a != "HS256")
                .map(|a| a.to_string())
                .collect()
        }
    }

    pub fn leeway(&self) -> Result<Duration, String> {
        self.dur("leeway", &self.leeway)
    }
    pub fn fetch_timeout(&self) -> Result<Duration, String> {
        self.dur("fetch_timeout", &self.fetch_timeout)
    }
    pub fn refresh_interval(&self) -> Result<Duration, String> {
        self.dur("refresh_interval", &self.refresh_interval)
    }
    pub fn min_refresh(&self) -> Result<Duration, String> {
        self.dur("min_refresh", &self.min_refresh)
    }
    pub fn max_refresh(&self) -> Result<Duration, String> {
        self.dur("max_refresh", &self.max_refresh)
    }
    pub fn unknown_kid_cooldown(&self) -> Result<Duration, String> {
        self.dur("unknown_kid_cooldown", &self.unknown_kid_cooldown)
    }

    fn dur(&self, field: &str, value: &str) -> Result<Duration, String> {
        parse_duration(value).map_err(|e| format!("issuer {:?}: {field}: {e}", self.name))
    }

    fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty() || name.len() > 64 {
            return Err("auth.issuers: a name must be 1 to 64 bytes".into());
        }
        let source = self.key_source()?;
        let algs = self.effective_algorithms();
        for a in &algs {
            if !SUPPORTED_ALGORITHMS.contains(&a.as_str()) {
                return Err(format!(
                    "issuer {name:?}: algorithms: {a:?} is not supported (supported: {})",
                    SUPPORTED_ALGORITHMS.join(", ")
                ));
            }
        }
        // The algorithm is pinned to the key type: a secret only signs HS256, and a key set
        // never lends its public keys to HMAC (the classic RS256→HS256 confusion).
        match source {
            KeySourceConfig::SecretEnv(env) => {
                if env.is_empty() {
                    return Err(format!("issuer {name:?}: hs256_secret_env: is empty"));
                }
                if !HS256_SECRET_ENCODINGS.contains(&self.secret_encoding()) {
                    return Err(format!(
                        "issuer {name:?}: hs256_secret_encoding: {:?} is not one of {}",
                        self.secret_encoding(),
                        HS256_SECRET_ENCODINGS.join(", ")
                    ));
                }
                if algs.iter().any(|a| a != "HS256") {
                    return Err(format!(
                        "issuer {name:?}: algorithms: a shared secret only verifies HS256"
                    ));
                }
            }
            KeySourceConfig::Url(_) | KeySourceConfig::File(_)
                if self.hs256_secret_encoding.is_some() =>
            {
                return Err(format!(
                    "issuer {name:?}: hs256_secret_encoding: only applies to hs256_secret_env; \
                     this issuer's keys come from a key set (jwks_url or jwks_file), whose \
                     keys carry their own encoding: remove it"
                ));
            }
            KeySourceConfig::Url(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "issuer {name:?}: jwks_url: must start with http:// or https://"
                    ));
                }
                if algs.iter().any(|a| a == "HS256") {
                    return Err(format!(
                        "issuer {name:?}: algorithms: HS256 needs hs256_secret_env, not a key set"
                    ));
                }
            }
            KeySourceConfig::File(_) => {
                if algs.iter().any(|a| a == "HS256") {
                    return Err(format!(
                        "issuer {name:?}: algorithms: HS256 needs hs256_secret_env, not a key set"
                    ));
                }
            }
        }
        if self.ca_file.is_some() && self.jwks_url.is_none() {
            return Err(format!(
                "issuer {name:?}: ca_file: only applies to jwks_url"
            ));
        }
        for c in &self.required_claims {
            if c.is_empty() {
                return Err(format!(
                    "issuer {name:?}: required_claims: empty claim name"
                ));
            }
        }
        if let Some(iss) = &self.issuer {
            if iss.is_empty() {
                return Err(format!("issuer {name:?}: issuer: must not be empty"));
            }
        }
        let leeway = self.leeway()?;
        if leeway > Duration::from_secs(300) {
            return Err(format!("issuer {name:?}: leeway: above 5m is not accepted"));
        }
        if self.fetch_timeout()?.is_zero() {
            return Err(format!(
                "issuer {name:?}: fetch_timeout: must be above zero"
            ));
        }
        let (min, max) = (self.min_refresh()?, self.max_refresh()?);
        if min.is_zero() || min > max {
            return Err(format!(
                "issuer {name:?}: min_refresh: need 0 < min_refresh <= max_refresh"
            ));
        }
        self.refresh_interval()?;
        self.unknown_kid_cooldown()?;
        if self.max_jwks_bytes < 1024 || self.max_jwks_bytes > 16 * 1024 * 1024 {
            return Err(format!(
                "issuer {name:?}: max_jwks_bytes: must be between 1 KiB and 16 MiB"
            ));
        }
        Ok(())
    }
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySourceConfig<'a> {
    Url(&'a str),
    File(&'a PathBuf),
    SecretEnv(&'a str),
}

/// `[auth.claims]`: claim names, tried in order; the first present one is used.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    pub user_id: Vec<String>,
    pub email: Vec<String>,
    /// A string (comma-separated roles allowed, as Better Auth's admin plugin writes) or
    /// an array of strings.
    pub roles: Vec<String>,
    /// A string (space- or comma-separated) or an array of strings.
    pub permissions: Vec<String>,
}

impl Default for ClaimNames {
    fn default() -> Self {
        let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
        Self {
            user_id: v(&["sub", "id", "userId"]),
            email: v(&["email"]),
            roles: v(&["role", "roles"]),
            permissions: v(&["permissions"]),
        }
    }
}

/// One `role_tiers` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleTier {
    pub role: String,
    pub tier: String,
}

/// One `[[auth.api_keys]]` entry. Only the key's SHA-256 is configured, never the key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// Who holds the key; becomes the identity's user id.
    pub owner: String,
    #[serde(default = "default_api_key_tier")]
    pub tier: String,
    /// Roles granted to requests made with this key.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Permissions granted to requests made with this key.
    #[serde(default)]
    pub permissions: Vec<String>,
}

fn default_api_key_tier() -> String {
    "api_key".into()
}

/// `[auth.cache]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TokenCacheConfig {
    /// Most tokens kept; 0 disables the cache.
    pub capacity: usize,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        Self { capacity: 100_000 }
    }
}

/// `[auth.revocation]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RevocationConfig {
    /// The append-only log. Unset: revocations live in memory only and are lost on restart.
    pub path: Option<PathBuf>,
    /// Most revocations held; further ones are refused until some expire.
    pub max_entries: usize,
    /// A subject revocation ("tokens of U issued before T") is kept until T + this.
    /// It must exceed the longest token lifetime the issuers use.
    pub subject_retention: String,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_entries: 100_000,
            subject_retention: "30d".into(),
        }
    }
}

impl RevocationConfig {
    pub fn subject_retention(&self) -> Result<Duration, String> {
        parse_duration(&self.subject_retention)
            .map_err(|e| format!("auth.revocation.subject_retention: {e}"))
    }
}

/// `[auth.admin]`: the admin API is off unless enabled, and then needs a secret or the
/// Unix socket.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    /// Environment variable holding the bearer secret the admin API requires (≥ 32 bytes).
    pub secret_env: Option<String>,
    /// Serve the admin API only on the HTTP Unix socket.
    pub unix_socket_only: bool,
}

impl AuthConfig {
    /// Checks the section on its own. Tier names are checked by the loader against
    /// `[tiers]` (see [`AuthConfig::referenced_tiers`]); environment variables are read
    /// when the authenticator is built.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = BTreeSet::new();
        let mut isses = BTreeSet::new();
        let mut without_iss = 0;
        for i in &self.issuers {
            i.validate()?;
            if !names.insert(i.name.as_str()) {
                return Err(format!("auth.issuers: duplicate name {:?}", i.name));
            }
            match &i.issuer {
                Some(iss) => {
                    if !isses.insert(iss.as_str()) {
                        return Err(format!("auth.issuers: duplicate issuer {iss:?}"));
                    }
                }
                None => without_iss += 1,
            }
        }
        if without_iss > 1 {
            return Err("auth.issuers: at most one issuer may leave `issuer` unset".into());
        }
        for (field, list) in [
            ("user_id", &self.claims.user_id),
            ("email", &self.claims.email),
            ("roles", &self.claims.roles),
            ("permissions", &self.claims.permissions),
        ] {
            if list.iter().any(|n| n.is_empty()) {
                return Err(format!("auth.claims.{field}: empty claim name"));
            }
        }
        if self.claims.user_id.is_empty() {
            return Err("auth.claims.user_id: name at least one claim".into());
        }
        if self.anonymous_tier.is_empty() || self.default_tier.is_empty() {
            return Err("auth: anonymous_tier and default_tier must not be empty".into());
        }
        for rt in &self.role_tiers {
            if rt.role.is_empty() || rt.tier.is_empty() {
                return Err("auth.role_tiers: role and tier must not be empty".into());
            }
        }
        if http::HeaderName::from_bytes(self.api_key_header.as_bytes()).is_err() {
            return Err(format!(
                "auth.api_key_header: {:?} is not a header name",
                self.api_key_header
            ));
        }
        let mut hashes = BTreeSet::new();
        for k in &self.api_keys {
            let h = k.sha256.to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "auth.api_keys: owner {:?}: sha256 must be 64 hex digits",
                    k.owner
                ));
            }
            if k.owner.is_empty() || k.owner.len() > 256 || k.owner.chars().any(char::is_control) {
                return Err("auth.api_keys: owner must be 1 to 256 printable bytes".into());
            }
            if k.tier.is_empty() {
                return Err(format!("auth.api_keys: owner {:?}: empty tier", k.owner));
            }
            if !hashes.insert(h) {
                return Err(format!("auth.api_keys: owner {:?}: duplicate key", k.owner));
            }
        }
        if self.cache.capacity > 10_000_000 {
            return Err("auth.cache.capacity: at most 10,000,000".into());
        }
        if self.revocation.max_entries == 0 || self.revocation.max_entries > 10_000_000 {
            return Err("auth.revocation.max_entries: between 1 and 10,000,000".into());
        }
        self.revocation.subject_retention()?;
        if self.admin.enabled && self.admin.secret_env.is_none() && !self.admin.unix_socket_only {
            return Err("auth.admin: enabled needs secret_env or unix_socket_only = true".into());
        }
        Ok(())
    }

    /// Every tier name this section refers to, for the loader to check against `[tiers]`.
    pub fn referenced_tiers(&self) -> BTreeSet<&str> {
        let mut t = BTreeSet::new();
        t.insert(self.anonymous_tier.as_str());
        t.insert(self.default_tier.as_str());
        t.extend(self.role_tiers.iter().map(|r| r.tier.as_str()));
        t.extend(self.api_keys.iter().map(|k| k.tier.as_str()));
        t
    }
}

/// A configured duration (`30s`, `5m`, `1h30m`…), in the syntax of the rest of the file.
fn parse_duration(s: &str) -> Result<Duration, String> {
    super::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> AuthConfig {
        toml::from_str(s).unwrap()
    }

    #[test]
    fn defaults_are_valid_and_match_the_brief() {
        let c = AuthConfig::default();
        c.validate().unwrap();
        assert_eq!(c.api_key_header, "x-api-key");
        assert_eq!(c.claims.user_id, ["sub", "id", "userId"]);
        let i = IssuerConfig::new("x");
        assert_eq!(i.leeway().unwrap(), Duration::from_secs(30));
        assert_eq!(i.unknown_kid_cooldown().unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn full_section_parses() {
        let c = parse(
            r#"
            anonymous_tier = "anonymous"
            role_tiers = [{ role = "premium", tier = "premium" }]
            [[issuers]]
            name = "better-auth"
            issuer = "https://app.example"
            audiences = ["https://app.example"]
            jwks_url = "https://app.example/api/auth/jwks"
            algorithms = ["EdDSA", "ES512"]
            [[issuers]]
            name = "fastapi"
            hs256_secret_env = "JWT_SECRET"
            [[api_keys]]
            sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            owner = "billing"
            [cache]
            capacity = 10
            [revocation]
            path = "/tmp/x.log"
            [admin]
            enabled = true
            secret_env = "ADMIN"
            "#,
        );
        c.validate().unwrap();
        assert_eq!(c.api_keys[0].tier, "api_key");
        assert_eq!(c.issuers[1].effective_algorithms(), ["HS256"]);
        assert!(c.referenced_tiers().contains("premium"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(toml::from_str::<AuthConfig>("colour = 1").is_err());
        assert!(toml::from_str::<AuthConfig>("[[issuers]]\nname='a'\njku='x'").is_err());
    }

    #[test]
    fn validation_refuses_unsafe_combinations() {
        let bad = [
            // two key sources
            "[[issuers]]\nname='a'\njwks_url='http://x'\nhs256_secret_env='S'",
            // no key source
            "[[issuers]]\nname='a'",
            // HS256 on a key set: alg confusion
            "[[issuers]]\nname='a'\njwks_url='http://x'\nalgorithms=['RS256','HS256']",
            // asymmetric alg on a secret
            "[[issuers]]\nname='a'\nhs256_secret_env='S'\nalgorithms=['RS256']",
            "[[issuers]]\nname='a'\njwks_file='/x'\nalgorithms=['none']",
            "[[issuers]]\nname='a'\njwks_url='ftp://x'",
            "[[issuers]]\nname='a'\njwks_file='/x'\nleeway='10 parsecs'",
            "[[issuers]]\nname='a'\njwks_file='/x'\n[[issuers]]\nname='b'\njwks_file='/y'",
            "[[issuers]]\nname='a'\nissuer='i'\njwks_file='/x'\n[[issuers]]\nname='a'\nissuer='j'\njwks_file='/y'",
            "[[api_keys]]\nsha256='abc'\nowner='o'",
            "[admin]\nenabled=true",
            "api_key_header='bad header'",
        ];
        for b in bad {
            let c: AuthConfig = toml::from_str(b).unwrap();
            assert!(c.validate().is_err(), "accepted: {b}");
        }
    }

    #[test]
    fn durations_use_the_config_syntax() {
        let mut i = IssuerConfig::new("x");
        i.leeway = "1m30s".into();
        assert_eq!(i.leeway().unwrap(), Duration::from_secs(90));
        i.leeway = "90".into();
        let e = i.leeway().unwrap_err();
        assert!(e.starts_with("issuer \"x\": leeway: "), "{e}");
        let r = RevocationConfig::default();
        assert_eq!(
            r.subject_retention().unwrap(),
            Duration::from_secs(30 * 86_400)
        );
    }
}
