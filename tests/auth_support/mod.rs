//! Shared by the `auth_*` integration tests: the fixtures written by `tests/tokens/gen.py`
//! (PyJWT + cryptography) and an `[auth]` configuration that accepts them.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tollgate::auth::{AuthInput, Authenticator, RevocationStore};
use tollgate::clock::ManualClock;
use tollgate::config::auth::{IssuerConfig, RoleTier};
use tollgate::config::AuthConfig;

pub const HS256_ENV: &str = "TOLLGATE_TEST_HS256_SECRET";

#[derive(Debug, Clone, Deserialize)]
pub struct Fixture {
    pub name: String,
    pub token: String,
    /// `ok` or the expected `AuthError::reason()`.
    pub expect: String,
    /// `ok` or the expected `AuthError::detail()`.
    pub detail: String,
    pub sub: Option<String>,
    pub note: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub generated_at: u64,
    pub issuer: String,
    pub audience: String,
    pub kids: std::collections::HashMap<String, String>,
    pub tokens: Vec<Fixture>,
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tokens")
}

pub fn manifest() -> Manifest {
    let text =
        std::fs::read_to_string(dir().join("tokens.json")).expect("tests/tokens/tokens.json");
    serde_json::from_str(&text).expect("tokens.json parses")
}

pub fn token(name: &str) -> String {
    manifest()
        .tokens
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fixture {name}"))
        .token
}

pub fn hs256_secret() -> String {
    std::fs::read_to_string(dir().join("hs256_secret.txt")).unwrap()
}

/// A clock one minute after the fixtures were made.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new((manifest().generated_at + 60) * 1000))
}

/// The Better Auth issuer (key source filled in by the caller) and the HS256 issuer.
pub fn config(better_auth: IssuerConfig) -> AuthConfig {
    let m = manifest();
    let mut ba = better_auth;
    ba.issuer = Some(m.issuer.clone());
    ba.audiences = vec![m.audience.clone()];
    let mut hs = IssuerConfig::new("fastapi");
    hs.hs256_secret_env = Some(HS256_ENV.into());
    AuthConfig {
        issuers: vec![ba, hs],
        role_tiers: vec![RoleTier {
            role: "premium".into(),
            tier: "premium".into(),
        }],
        ..AuthConfig::default()
    }
}

pub fn static_issuer(jwks_file: &str) -> IssuerConfig {
    let mut i = IssuerConfig::new("better-auth");
    i.jwks_file = Some(dir().join(jwks_file));
    i
}

pub fn env(var: &str) -> Option<String> {
    (var == HS256_ENV).then(hs256_secret)
}

pub fn build(cfg: &AuthConfig, clock: Arc<ManualClock>) -> Authenticator {
    Authenticator::from_config_with(cfg, clock, &env, None).expect("authenticator builds")
}

pub fn build_with_store(
    cfg: &AuthConfig,
    clock: Arc<ManualClock>,
    store: Arc<RevocationStore>,
) -> Authenticator {
    Authenticator::from_config_with(cfg, clock, &env, Some(store)).expect("authenticator builds")
}

/// `Authorization: Bearer <token>` as the front door passes it.
pub fn header(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

pub fn input(h: &[u8]) -> AuthInput<'_> {
    AuthInput {
        authorization: Some(h),
        api_key: None,
        ..AuthInput::default()
    }
}
