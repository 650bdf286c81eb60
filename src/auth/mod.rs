//! Authentication: JWT verification, key sets, verified-token cache, revocation, API keys.
//!
//! [`Authenticator`] owns all of it and answers one question for every front door: who is
//! this request? ([`Authenticator::authenticate`] → [`Identity`] or [`AuthError`]).
//!
//! ```text
//! Authorization: Bearer t ──► size ≤ 8 KiB ──► cache (HMAC fingerprint) ─hit─► revoked? ──► Identity
//!                                                  │ miss
//!                                                  ▼
//!                              parse ─► issuer by iss ─► key by kid (refetch on unknown kid,
//!                              once per cooldown) ─► signature ─► exp/nbf/iat/aud ─► Identity
//!                                                  │ ok: insert into cache, then revoked?
//! x-api-key: k ──► SHA-256 ─► constant-time match against configured hashes ──► Identity
//! neither ──► AuthError::MissingToken (the caller decides whether anonymous is allowed)
//! ```
//!
//! Files: [`verify`] (JWS parsing, algorithms, claim rules), [`jwks`] (key sets, remote
//! refresh), `build.rs` (issuers and their key sources from `[auth]`), `reload.rs`
//! ([`Authenticator::reloaded`]), [`cache`] ([`TokenCache`]), [`revocation`] ([`RevocationStore`]), [`api_key`],
//! [`identity`] (claims → [`Identity`], role → tier), [`admin`] (the admin secret), `error` ([`AuthError`]).
//!
//! Tokens and secrets are never logged; a refused token's key id and issuer are, at debug
//! level, so an operator can tell why it was refused.

pub mod admin;
pub mod api_key;
mod build;
pub mod cache;
mod error;
pub mod identity;
pub mod jwks;
mod reload;
pub mod revocation;
pub mod revocation_log;
pub mod verify;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

pub use admin::{AdminSecret, MIN_ADMIN_SECRET_BYTES};
pub use api_key::ApiKeys;
pub use build::{check_key_source, revocation_log_error};
pub use cache::{CacheStats, TokenCache};
pub use error::AuthError;
pub use identity::{Identity, IdentityKind, IdentityRules, TokenClaims};
pub use jwks::{IssuerKeys, KeySet, KeySetStats};
pub use reload::AuthChanges;
pub use revocation::{
    MergeSummary, Revocation, RevocationEntry, RevocationError, RevocationOptions, RevocationStore,
    MAX_ID_BYTES as MAX_REVOCATION_ID_BYTES,
};
pub use revocation_log::LogRecovery;
pub use verify::{Alg, AlgSet, MAX_TOKEN_BYTES};

use crate::clock::Clock;
use crate::config::AuthConfig;
use build::{revocation_options, Issuer, TaskGuard};
use cache::Lookup;

/// The credentials of one request, as the front door found them: raw bytes, so that every
/// door hands over exactly what it received and the one reading below decides what they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthInput<'a> {
    /// The `Authorization` header value (`Bearer <token>`; other schemes are ignored).
    pub authorization: Option<&'a [u8]>,
    /// The API key header value.
    pub api_key: Option<&'a [u8]>,
    /// A token passed on its own, without a header (the RESP `VERIFY` and `AUTH`
    /// commands). Takes precedence over `authorization`.
    pub token: Option<&'a [u8]>,
}

impl<'a> AuthInput<'a> {
    /// A bare token.
    pub fn bearer(token: &'a str) -> Self {
        Self::bearer_bytes(token.as_bytes())
    }

    /// A bare token as received, not yet known to be text.
    pub fn bearer_bytes(token: &'a [u8]) -> Self {
        Self {
            token: Some(token),
            ..Self::default()
        }
    }

    /// An `Authorization` header value.
    pub fn authorization(value: &'a [u8]) -> Self {
        Self {
            authorization: Some(value),
            ..Self::default()
        }
    }

    /// A credential argument that is either a bare token or a whole `Authorization` value
    /// (RESP `VERIFY`'s), read so that it means what the same bytes mean in the header.
    ///
    /// A compact JWS holds no whitespace, so an argument with whitespace inside (`Bearer
    /// <token>`, `Basic …`), or the scheme `Bearer` on its own, is a header value: another
    /// scheme, or `Bearer` without a token, is then no token, exactly as `/auth` reads its
    /// `Authorization` header. Anything else is a bare token. Surrounding whitespace is
    /// dropped, as HTTP drops it around a field value.
    pub fn token_or_authorization(arg: &'a [u8]) -> Self {
        let arg = arg.trim_ascii();
        if arg.iter().any(u8::is_ascii_whitespace) || arg.eq_ignore_ascii_case(b"bearer") {
            Self::authorization(arg)
        } else {
            Self::bearer_bytes(arg)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, RFC 6750
/// §2.1), as bytes. `None` for other schemes or an empty token: those carry no bearer token.
/// Whether the bytes are text is [`read_token`]'s question, not this one's, so a token that
/// is not UTF-8 is an invalid token, never "no token".
pub fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let h = header.trim_ascii_start();
    if h.len() < 7 || !h[..6].eq_ignore_ascii_case(b"bearer") || h[6] != b' ' {
        return None;
    }
    let t = h[7..].trim_ascii();
    (!t.is_empty()).then_some(t)
}

/// Reads the bearer token of an input, the one rule every door shares: `None` when there is
/// none (no header, another scheme, an empty token); oversize tokens are refused before any
/// other look at them; bytes that are not UTF-8 cannot be a JWS and are an invalid token
/// (`Malformed`), on every door alike.
pub fn read_token<'a>(input: &AuthInput<'a>) -> Option<Result<&'a str, AuthError>> {
    let raw = match input.token {
        Some(t) => t,
        None => {
            let header = input.authorization?;
            // Size first: a 100 KiB header is refused without being scanned.
            if header.len() > MAX_TOKEN_BYTES + 64 {
                return Some(Err(AuthError::TokenTooLarge));
            }
            bearer_token(header)?
        }
    };
    if raw.is_empty() {
        return None;
    }
    if raw.len() > MAX_TOKEN_BYTES {
        return Some(Err(AuthError::TokenTooLarge));
    }
    Some(std::str::from_utf8(raw).map_err(|_| AuthError::Malformed("the token is not UTF-8 text")))
}

/// Counters of authentication outcomes, by reason, exported by the metrics module.
#[derive(Debug, Default)]
pub struct AuthOutcomes {
    pub ok_token: AtomicU64,
    pub ok_api_key: AtomicU64,
    /// No credentials presented: an anonymous request, not a failure (an optional route
    /// admits it; a required one refuses it, counted as `missing_token` by the gate).
    pub no_credentials: AtomicU64,
    pub invalid_token: AtomicU64,
    pub expired: AtomicU64,
    pub revoked: AtomicU64,
    pub invalid_api_key: AtomicU64,
    pub keys_unavailable: AtomicU64,
    /// Tokens whose signature was checked: those that missed the cache and passed every cheap
    /// check first (size, shape, algorithm, issuer, key by `kid`). A flood of garbage or
    /// forged tokens must leave it still.
    pub signature_checks: AtomicU64,
}

impl AuthOutcomes {
    fn count(&self, r: &Result<Arc<Identity>, AuthError>) {
        let c = match r {
            Ok(id) if id.kind == IdentityKind::ApiKey => &self.ok_api_key,
            Ok(_) => &self.ok_token,
            Err(e) => match e.reason() {
                "missing_token" => &self.no_credentials,
                "expired" => &self.expired,
                "revoked" => &self.revoked,
                "invalid_api_key" => &self.invalid_api_key,
                "keys_unavailable" => &self.keys_unavailable,
                _ => &self.invalid_token,
            },
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `(reason, count)` pairs; `ok` for successes.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("ok", l(&self.ok_token) + l(&self.ok_api_key)),
            ("no_credentials", l(&self.no_credentials)),
            ("invalid_token", l(&self.invalid_token)),
            ("expired", l(&self.expired)),
            ("revoked", l(&self.revoked)),
            ("invalid_api_key", l(&self.invalid_api_key)),
            ("keys_unavailable", l(&self.keys_unavailable)),
        ]
    }
}

/// Every auth counter and gauge at one instant, for the metrics exporter (copied in at
/// scrape time, so the request path only bumps plain atomics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSnapshot {
    /// `(reason, count)`; `ok` counts successes, `no_credentials` requests that presented
    /// none (`tollgate_auth_outcomes_total{reason}`).
    pub outcomes: Vec<(&'static str, u64)>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_evictions: u64,
    pub cache_expirations: u64,
    pub cache_entries: usize,
    pub issuers: Vec<IssuerSnapshot>,
    /// Revocations held now.
    pub revocations: usize,
    /// Revocations recorded since start.
    pub revocations_recorded: u64,
    /// Tokens refused because revoked.
    pub revocations_refused: u64,
    /// What the start found in the revocation log (`None`: memory-only).
    pub revocation_log: Option<LogRecovery>,
}

/// One issuer's key-set state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerSnapshot {
    pub name: String,
    pub ready: bool,
    pub keys: usize,
    pub fetches: u64,
    pub fetch_failures: u64,
    pub kid_refetches: u64,
    pub kid_refetches_suppressed: u64,
}

enum Attempt<'t> {
    Done(Result<Arc<Identity>, AuthError>),
    /// The token's kid is not in the issuer's current set (and not known-unknown).
    UnknownKid(PendingVerification<'t>),
}

/// What [`Authenticator::begin`] found.
pub enum Authentication<'t> {
    /// The outcome, already counted.
    Done(Result<Arc<Identity>, AuthError>),
    /// The token names a key id its issuer's key set lacks: a refetch may bring it.
    AwaitingKeys(PendingVerification<'t>),
}

/// A token parsed and matched to its issuer, whose key id the issuer's key set lacks. It is
/// finished by [`Authenticator::finish`] (after one refetch) or [`Authenticator::give_up`],
/// without being parsed again.
pub struct PendingVerification<'t> {
    issuer: usize,
    kid: String,
    parsed: verify::ParsedToken<'t>,
    fingerprint: cache::Fingerprint,
}

impl std::fmt::Debug for PendingVerification<'_> {
    /// Names the issuer only: the token and its key id are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingVerification")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Everything authentication needs, built once from `[auth]`.
pub struct Authenticator {
    issuers: Vec<Issuer>,
    by_iss: HashMap<String, usize>,
    without_iss: Option<usize>,
    rules: IdentityRules,
    anonymous: Arc<Identity>,
    api_keys: ApiKeys,
    /// Shared with the authenticator a reload builds when the reload cannot change what a
    /// cached token means (see `reload.rs`).
    cache: Arc<TokenCache>,
    /// One store for the life of the process: a reload hands it on.
    revocations: Arc<RevocationStore>,
    clock: Arc<dyn Clock>,
    /// Outcome counters, handed on by a reload.
    pub outcomes: Arc<AuthOutcomes>,
    /// The revocation upkeep task, handed on by a reload.
    upkeep: Arc<Mutex<Option<TaskGuard>>>,
    started: AtomicBool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.keys).collect::<Vec<_>>(),
            )
            .field("api_keys", &self.api_keys)
            .field("cache", &self.cache)
            .field("revocations", &self.revocations)
            .finish()
    }
}

impl Authenticator {
    /// Builds from a validated `[auth]`, reading secrets from the process environment and
    /// opening the revocation log named in config. Remote key sets start empty: call
    /// [`Self::start`] inside a Tokio runtime to fetch and refresh them.
    pub fn from_config(config: &AuthConfig, clock: Arc<dyn Clock>) -> Result<Self, String> {
        Self::from_config_with(config, clock, &|v| std::env::var(v).ok(), None)
    }

    /// Like [`Self::from_config`], with the environment lookup injected and, optionally, a
    /// revocation store shared with something else (tests, the cluster).
    pub fn from_config_with(
        config: &AuthConfig,
        clock: Arc<dyn Clock>,
        env: &dyn Fn(&str) -> Option<String>,
        revocations: Option<Arc<RevocationStore>>,
    ) -> Result<Self, String> {
        config.validate()?;
        let mut issuers = Vec::new();
        for ic in &config.issuers {
            issuers.push(Issuer::from_config(ic, &clock, env)?);
        }
        let revocations = match revocations {
            Some(r) => r,
            None => {
                let store = RevocationStore::open_with(
                    config.revocation.path.as_deref(),
                    Arc::clone(&clock),
                    revocation_options(config)?,
                )
                .map_err(|e| match &config.revocation.path {
                    Some(path) => revocation_log_error(path, &e),
                    None => e.to_string(),
                })?;
                // Revocations are of tokens: without an issuer there is nothing to lose.
                if !store.is_durable() && !config.issuers.is_empty() {
                    tracing::warn!("auth.revocation.path is not set: revocations are kept in memory only and lost on restart");
                }
                Arc::new(store)
            }
        };
        Self::assemble(
            config,
            issuers,
            Arc::new(TokenCache::new(config.cache.capacity)),
            revocations,
            clock,
            Arc::default(),
            Arc::default(),
        )
    }

    /// An authenticator of `config` from parts that may outlive it (a reload hands over the
    /// token cache, the revocation store, the counters and the background upkeep).
    fn assemble(
        config: &AuthConfig,
        issuers: Vec<Issuer>,
        cache: Arc<TokenCache>,
        revocations: Arc<RevocationStore>,
        clock: Arc<dyn Clock>,
        outcomes: Arc<AuthOutcomes>,
        upkeep: Arc<Mutex<Option<TaskGuard>>>,
    ) -> Result<Self, String> {
        let mut by_iss = HashMap::new();
        let mut without_iss = None;
        for (i, (ic, _)) in config.issuers.iter().zip(&issuers).enumerate() {
            match &ic.issuer {
                Some(iss) => {
                    by_iss.insert(iss.clone(), i);
                }
                None => without_iss = Some(i),
            }
        }
        let rules = IdentityRules::from_config(config);
        Ok(Self {
            issuers,
            by_iss,
            without_iss,
            anonymous: Arc::new(Identity::anonymous(rules.anonymous_tier())),
            rules,
            api_keys: ApiKeys::from_config(&config.api_key_header, &config.api_keys)?,
            cache,
            revocations,
            clock,
            outcomes,
            upkeep,
            started: AtomicBool::new(false),
        })
    }

    /// Starts the background refresh of every remote key set (first fetch at once).
    /// Needs a Tokio runtime; the tasks stop when the authenticator is dropped.
    pub fn start(&self) {
        self.started.store(true, Ordering::Relaxed);
        for i in &self.issuers {
            let mut refresh = i.refresh.lock();
            if refresh.is_none() {
                *refresh = i.keys.spawn_refresh().map(|h| TaskGuard(h.abort_handle()));
            }
        }
        let mut upkeep = self.upkeep.lock();
        if upkeep.is_some() {
            return; // started by the authenticator this one replaced
        }
        // Revocation upkeep: expired entries leave memory and the log every 10 minutes.
        let store = Arc::downgrade(&self.revocations);
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(REVOCATION_UPKEEP);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let Some(store) = store.upgrade() else { return };
                let r = tokio::task::spawn_blocking(move || store.maintain()).await;
                if let Ok(Err(e)) = r {
                    tracing::warn!(error = %e, "revocation log compaction failed");
                }
            }
        });
        *upkeep = Some(TaskGuard(task.abort_handle()));
    }

    /// Whether [`Self::start`] was called: a reload starts the authenticator it builds only
    /// if the one it replaces was started.
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    /// True when every issuer has a key set (the `/readyz` condition).
    pub fn is_ready(&self) -> bool {
        self.issuers.iter().all(|i| i.keys.is_ready())
    }

    /// Names of issuers still without a key set.
    pub fn not_ready(&self) -> Vec<&str> {
        self.issuers
            .iter()
            .filter(|i| !i.keys.is_ready())
            .map(|i| i.name.as_str())
            .collect()
    }

    /// Waits until [`Self::is_ready`] or `timeout`; returns readiness.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        for i in &self.issuers {
            if !i.keys.wait_ready_until(deadline).await {
                return false;
            }
        }
        true
    }

    /// The identity of a request without credentials.
    pub fn anonymous(&self) -> Arc<Identity> {
        Arc::clone(&self.anonymous)
    }

    /// The tier of a request without credentials (`[auth] anonymous_tier`).
    pub fn anonymous_tier(&self) -> &str {
        self.rules.anonymous_tier()
    }

    /// The header API keys are read from.
    pub fn api_key_header(&self) -> &http::HeaderName {
        self.api_keys.header()
    }

    /// Picks the credentials out of request headers.
    pub fn input_from_headers<'a>(&self, headers: &'a http::HeaderMap) -> AuthInput<'a> {
        AuthInput {
            authorization: headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
            api_key: headers.get(self.api_keys.header()).map(|v| v.as_bytes()),
            token: None,
        }
    }

    /// Authenticates a request. A bearer token wins over an API key when both are sent.
    /// On a token whose `kid` is unknown, this waits for one key-set refetch (bounded by
    /// the fetch timeout, at most once per cooldown per issuer) and then finishes the same
    /// verification: the token is parsed once and the outcome counted once.
    pub async fn authenticate(&self, input: &AuthInput<'_>) -> Result<Arc<Identity>, AuthError> {
        match self.begin(input) {
            Authentication::Done(r) => r,
            Authentication::AwaitingKeys(pending) => self.finish(pending).await,
        }
    }

    /// Authenticates without ever waiting: a token with an unknown `kid` fails at once
    /// (`UnknownKey`) and, inside a Tokio runtime, starts the refetch in the background so a
    /// retry can succeed. For callers that cannot await, and for benchmarks.
    pub fn authenticate_now(&self, input: &AuthInput<'_>) -> Result<Arc<Identity>, AuthError> {
        match self.begin(input) {
            Authentication::Done(r) => r,
            Authentication::AwaitingKeys(pending) => self.give_up(pending),
        }
    }

    /// The first, never-waiting part of [`Self::authenticate`]: either the outcome (counted
    /// in the outcome metrics) or a verification that needs its issuer's key set refetched,
    /// to be completed by [`Self::finish`] (which waits) or [`Self::give_up`] (which does not).
    pub fn begin<'t>(&self, input: &AuthInput<'t>) -> Authentication<'t> {
        let r = match read_token(input) {
            Some(Ok(token)) => match self.attempt(token) {
                Attempt::Done(r) => r,
                Attempt::UnknownKid(pending) => return Authentication::AwaitingKeys(pending),
            },
            Some(Err(e)) => Err(e),
            None => self.api_key_or_missing(input),
        };
        self.outcomes.count(&r);
        Authentication::Done(r)
    }

    /// Completes a verification that waited for its key: one refetch of the issuer's key
    /// set (shared with concurrent callers, at most once per cooldown), then the signature
    /// and claims of the token already parsed. Counts the outcome.
    pub async fn finish(
        &self,
        pending: PendingVerification<'_>,
    ) -> Result<Arc<Identity>, AuthError> {
        let keys = &self.issuers[pending.issuer].keys;
        let r = if keys.resolve_unknown_kid(&pending.kid).await {
            let now = self.clock.now_millis() as i64;
            match self.verify_parsed(pending.issuer, &pending.parsed, now) {
                Ok((id, valid_until, tag)) => {
                    self.cache
                        .insert(pending.fingerprint, Arc::clone(&id), valid_until, now, tag);
                    self.unless_revoked(id)
                }
                Err(Failure::Invalid(e)) => Err(e),
                // Refetched, and the kid is still missing (or the set changed under us).
                Err(Failure::UnknownKid(..)) => Err(AuthError::UnknownKey),
            }
        } else {
            Err(AuthError::UnknownKey)
        };
        self.outcomes.count(&r);
        r
    }

    /// Refuses a verification that would have to wait (`UnknownKey`), starting the refetch
    /// in the background when inside a Tokio runtime so that a retry can pass. Counts it.
    pub fn give_up(&self, pending: PendingVerification<'_>) -> Result<Arc<Identity>, AuthError> {
        let keys = Arc::clone(&self.issuers[pending.issuer].keys);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let kid = pending.kid;
            rt.spawn(async move {
                keys.resolve_unknown_kid(&kid).await;
            });
        }
        let r = Err(AuthError::UnknownKey);
        self.outcomes.count(&r);
        r
    }

    /// Convenience: [`Self::authenticate`] on request headers.
    pub async fn authenticate_headers(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Arc<Identity>, AuthError> {
        let input = self.input_from_headers(headers);
        self.authenticate(&input).await
    }

    fn api_key_or_missing(&self, input: &AuthInput<'_>) -> Result<Arc<Identity>, AuthError> {
        match input.api_key {
            // With no keys configured the header is someone else's business.
            Some(k) if !self.api_keys.is_empty() => self.api_keys.authenticate(k.trim_ascii()),
            _ => Err(AuthError::MissingToken),
        }
    }

    fn attempt<'t>(&self, token: &'t str) -> Attempt<'t> {
        if token.len() > MAX_TOKEN_BYTES {
            return Attempt::Done(Err(AuthError::TokenTooLarge));
        }
        let now = self.clock.now_millis() as i64;
        let fp = self.cache.fingerprint(token.as_bytes());
        match self.cache.get(&fp, now) {
            // Verified under a key set that still holds every key it had: answer from memory.
            Lookup::Hit(id, tag) if self.tag_is_current(tag) => {
                return Attempt::Done(self.unless_revoked(id))
            }
            // Its issuer's keys changed since: forget it and verify again below.
            Lookup::Hit(..) => self.cache.remove(&fp),
            Lookup::Expired => return Attempt::Done(Err(AuthError::Expired)),
            Lookup::Miss => {}
        }
        let parsed = match verify::parse_token(token) {
            Ok(p) => p,
            Err(e) => return Attempt::Done(Err(refused(e, None, None))),
        };
        let issuer = match self.issuer_of(&parsed) {
            Ok(i) => i,
            Err(e) => return Attempt::Done(Err(refused(e, None, parsed.kid.as_deref()))),
        };
        match self.verify_parsed(issuer, &parsed, now) {
            Ok((id, valid_until, tag)) => {
                self.cache
                    .insert(fp, Arc::clone(&id), valid_until, now, tag);
                Attempt::Done(self.unless_revoked(id))
            }
            Err(Failure::Invalid(e)) => Attempt::Done(Err(refused(
                e,
                Some(&self.issuers[issuer].name),
                parsed.kid.as_deref(),
            ))),
            Err(Failure::UnknownKid(issuer, kid)) => Attempt::UnknownKid(PendingVerification {
                issuer,
                kid,
                parsed,
                fingerprint: fp,
            }),
        }
    }

    /// A cache tag: the issuer's index and its key-set generation at verification time.
    fn tag_for(&self, issuer: usize, generation: u64) -> u64 {
        ((issuer as u64) << 48) | (generation & GENERATION_MASK)
    }

    fn tag_is_current(&self, tag: u64) -> bool {
        let issuer = (tag >> 48) as usize;
        self.issuers
            .get(issuer)
            .is_some_and(|i| i.keys.generation() & GENERATION_MASK == tag & GENERATION_MASK)
    }

    fn unless_revoked(&self, id: Arc<Identity>) -> Result<Arc<Identity>, AuthError> {
        match &id.token {
            Some(c) if self.revocations.is_revoked(c) => {
                Err(refused(AuthError::Revoked, id.issuer.as_deref(), None))
            }
            _ => Ok(id),
        }
    }

    /// The configured issuer a parsed token names by `iss` (or the one without `iss`).
    fn issuer_of(&self, p: &verify::ParsedToken<'_>) -> Result<usize, AuthError> {
        match verify::issuer_claim(&p.claims)? {
            Some(iss) => self.by_iss.get(iss).copied(),
            None => self.without_iss,
        }
        .ok_or(AuthError::UnknownIssuer)
    }

    /// Full verification of a parsed token not in the cache, against issuer `idx`.
    fn verify_parsed(
        &self,
        idx: usize,
        p: &verify::ParsedToken<'_>,
        now_ms: i64,
    ) -> Result<(Arc<Identity>, i64, u64), Failure> {
        let issuer = &self.issuers[idx];
        if !issuer.algs.contains(p.alg) {
            return Err(AuthError::AlgorithmNotAllowed.into());
        }
        // Generation before set: see IssuerKeys::fetch_locked for why this order is safe.
        let generation = issuer.keys.generation();
        let set = issuer.keys.current().ok_or(AuthError::KeysUnavailable)?;
        let candidates = match set.candidates(p.kid.as_deref(), p.alg) {
            Some(c) => c,
            None => {
                let kid = p.kid.clone().unwrap_or_default();
                if !issuer.keys.is_remote() {
                    return Err(AuthError::UnknownKey.into());
                }
                if issuer.keys.is_known_unknown(&kid) {
                    // Looked up in vain moments ago: no refetch, and that is a suppression.
                    issuer.keys.count_suppressed_refetch();
                    return Err(AuthError::UnknownKey.into());
                }
                return Err(Failure::UnknownKid(idx, kid));
            }
        };
        // The algorithm is pinned to the key type: an RS256 key never checks an HS256 or
        // ES256 signature, whatever the header says.
        if candidates.is_empty() || !candidates.iter().any(|k| k.algs().contains(p.alg)) {
            return Err(AuthError::AlgorithmNotAllowed.into());
        }
        let message = p.signing_input.as_bytes();
        self.outcomes
            .signature_checks
            .fetch_add(1, Ordering::Relaxed);
        if !candidates
            .iter()
            .any(|k| k.verify(p.alg, message, p.signature_b64))
        {
            return Err(AuthError::BadSignature.into());
        }
        let times = issuer.rules.check(&p.claims, now_ms)?;
        let id = self
            .rules
            .identity_from_claims(&p.claims, &issuer.name, times.exp, times.iat)?;
        Ok((
            Arc::new(id),
            times.valid_until_ms,
            self.tag_for(idx, generation),
        ))
    }

    /// The verified-token cache (its counters are `cache().stats`).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// The revocation store, for the admin API and the cluster.
    pub fn revocations(&self) -> &Arc<RevocationStore> {
        &self.revocations
    }

    /// Each issuer's name, key set and fetch counters.
    pub fn issuer_keys(&self) -> impl Iterator<Item = &Arc<IssuerKeys>> {
        self.issuers.iter().map(|i| &i.keys)
    }

    /// All counters at once, for the metrics exporter.
    pub fn snapshot(&self) -> AuthSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.cache.stats;
        let r = &self.revocations.stats;
        AuthSnapshot {
            outcomes: self.outcomes.snapshot(),
            cache_hits: l(&c.hits),
            cache_misses: l(&c.misses),
            cache_evictions: l(&c.evictions),
            cache_expirations: l(&c.expirations),
            cache_entries: self.cache.len(),
            issuers: self
                .issuers
                .iter()
                .map(|i| {
                    let s = &i.keys.stats;
                    IssuerSnapshot {
                        name: i.name.clone(),
                        ready: i.keys.is_ready(),
                        keys: i.keys.current().map_or(0, |k| k.len()),
                        fetches: l(&s.fetches),
                        fetch_failures: l(&s.failures),
                        kid_refetches: l(&s.kid_refetches),
                        kid_refetches_suppressed: l(&s.kid_refetches_suppressed),
                    }
                })
                .collect(),
            revocations: self.revocations.len(),
            revocations_recorded: l(&r.recorded),
            revocations_refused: l(&r.refused),
            revocation_log: self.revocations.recovery().cloned(),
        }
    }
}

/// Logs why a token was refused, at debug level: the detailed reason, the configured issuer
/// that judged it and the key id it named, when known — never the token or its claims. An
/// operator asking "why was this token refused?" runs with `TOLLGATE_LOG=debug`; the gate
/// logs the route and method of the same request.
fn refused(e: AuthError, issuer: Option<&str>, kid: Option<&str>) -> AuthError {
    tracing::debug!(
        target: "tollgate::auth",
        reason = e.reason(),
        detail = e.detail(),
        issuer = issuer.unwrap_or("-"),
        // Attacker-chosen text: Debug-quoted so it cannot forge log lines.
        kid = ?kid,
        "token refused"
    );
    e
}

/// How often expired revocations are dropped and the log compacted.
const REVOCATION_UPKEEP: Duration = Duration::from_secs(600);

/// Low bits of a cache tag holding the key-set generation.
const GENERATION_MASK: u64 = (1 << 48) - 1;

/// Why full verification stopped.
enum Failure {
    Invalid(AuthError),
    /// The kid is not in the issuer's set: a refetch may find it.
    UnknownKid(usize, String),
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Failure::Invalid(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_credentials_is_counted_as_such_not_as_a_failure() {
        let o = AuthOutcomes::default();
        o.count(&Err(AuthError::MissingToken));
        o.count(&Err(AuthError::BadSignature));
        let snap = o.snapshot();
        assert!(snap.contains(&("no_credentials", 1)), "{snap:?}");
        assert!(snap.contains(&("invalid_token", 1)), "{snap:?}");
        assert!(!snap.iter().any(|(r, _)| *r == "missing_token"), "{snap:?}");
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(
            bearer_token(b"Bearer abc.def.ghi"),
            Some(&b"abc.def.ghi"[..])
        );
        assert_eq!(bearer_token(b"bearer   abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BEARER x"), Some(&b"x"[..]));
        assert_eq!(bearer_token(b"Bearer "), None);
        assert_eq!(bearer_token(b"Bearerabc"), None);
        assert_eq!(bearer_token(b"Basic dXNlcjpwYXNz"), None);
        // Not text, but a bearer token all the same: reading it is read_token's business.
        assert_eq!(
            bearer_token(&[b'B', b'e', b'a', b'r', b'e', b'r', b' ', 0xff]),
            Some(&[0xff][..])
        );
    }

    #[test]
    fn read_token_refuses_huge_headers_without_scanning() {
        let big = vec![b'a'; 100 * 1024];
        let input = AuthInput::authorization(&big);
        assert_eq!(read_token(&input), Some(Err(AuthError::TokenTooLarge)));
        let mut b = b"Bearer ".to_vec();
        b.extend(std::iter::repeat_n(b'a', MAX_TOKEN_BYTES + 1));
        let input = AuthInput::authorization(&b);
        assert_eq!(read_token(&input), Some(Err(AuthError::TokenTooLarge)));
        let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            read_token(&AuthInput::bearer(&huge)),
            Some(Err(AuthError::TokenTooLarge))
        );
        assert_eq!(read_token(&AuthInput::bearer("a.b.c")), Some(Ok("a.b.c")));
        assert_eq!(read_token(&AuthInput::authorization(b"Basic xyz")), None);
        // A token without the Bearer scheme is not taken from the header.
        assert_eq!(read_token(&AuthInput::authorization(b"a.b.c")), None);
        assert_eq!(
            read_token(&AuthInput::authorization(b"Bearer a.b.c")),
            Some(Ok("a.b.c"))
        );
        // A token that is not UTF-8 is an invalid token, in a header or on its own; an
        // empty one is no token.
        let not_text = [b'B', b'e', b'a', b'r', b'e', b'r', b' ', b'a', 0xff];
        for input in [
            AuthInput::authorization(&not_text),
            AuthInput::bearer_bytes(&not_text[7..]),
        ] {
            let r = read_token(&input).unwrap().unwrap_err();
            assert_eq!(r.reason(), "invalid_token");
        }
        assert_eq!(read_token(&AuthInput::bearer_bytes(b"")), None);
    }

    #[test]
    fn a_token_argument_reads_like_the_header_it_may_be() {
        fn read(arg: &[u8]) -> Option<Result<&str, AuthError>> {
            read_token(&AuthInput::token_or_authorization(arg))
        }
        // A bare token, or the header's value: the same token.
        assert_eq!(read(b"a.b.c"), Some(Ok("a.b.c")));
        assert_eq!(read(b" a.b.c "), Some(Ok("a.b.c")));
        assert_eq!(read(b"Bearer a.b.c"), Some(Ok("a.b.c")));
        assert_eq!(read(b"bearer  a.b.c"), Some(Ok("a.b.c")));
        // What the header would carry no bearer token in: none here either.
        for none in [
            &b""[..],
            b"Bearer",
            b"BEARER",
            b"Bearer ",
            b"Basic dXNlcjpwYXNz",
            b"Bearer\ta.b.c",
        ] {
            assert_eq!(read(none), None, "{:?}", String::from_utf8_lossy(none));
        }
        // Not text is an invalid token, bare or in a header value.
        for not_text in [&b"\xff"[..], b"Bearer \xff"] {
            assert_eq!(
                read(not_text).unwrap().unwrap_err().reason(),
                "invalid_token"
            );
        }
        // A bare word that is not a scheme stays a (malformed) token.
        assert_eq!(read(b"Basic"), Some(Ok("Basic")));
    }
}
