//! The decision core: turns request facts into a decision. Every front door calls it, and
//! every decision lives here (or in the modules it calls: `auth`, `policy`, `limiter`), so
//! that the same facts through any door get the same answer (`tests/door_equivalence.rs`).
//!
//! The gate owns three things:
//! - the compiled configuration (tiers and named limits as [`LimitSpec`]s, and the route
//!   policy; compiled in one place, [`compile`]), behind an [`ArcSwap`] so
//!   that a reload swaps them atomically while requests keep deciding on either the old or the
//!   new set, never a mix;
//! - the [`Limiter`], one for the life of the process: a reload does not replace it, and since
//!   the limiter keys its states by a fingerprint of the `LimitSpec`, counters of limits that
//!   did not change survive the reload while changed limits start afresh;
//! - the [`Metrics`]: decisions are counted here, not in the doors, so that HTTP, RESP and any
//!   later door count the same way.
//!
//! One concept a file:
//! - this file: [`Gate::check`], the rate-limit question (`/check`, `CHECK`), on a
//!   [`CheckQuery`], answering a [`Decision`] or a [`CheckError`];
//! - `access.rs`: [`Gate::authorize`], the access question (`/auth`, `VERIFY`) — credentials,
//!   route policy and limits together — on an [`AccessQuery`];
//! - `admin.rs`: who may run admin operations ([`AdminAccess`]);
//! - `check_access.rs`: who may ask the rate-limit question ([`CheckAccess`]: the Unix
//!   socket, `[check] networks`, or a named caller's secret);
//! - `revoke.rs`: recording and listing revocations ([`Gate::revoke`]);
//! - [`grammar`]: what a method and a hit count are, for every door;
//! - [`abuse`]: the abuse signal's periodic summary (one log line a minute while keys abuse);
//! - `retry_after.rs`: when a denied caller should retry ([`retry_after`], at least 1 s);
//! - [`compile`]: configuration → limits and policy, with file:line:column errors;
//! - `hash_key.rs`: the limiter's key-hash key, from the injected environment;
//! - [`preflight`]: the files, directories and environment variables a configuration names,
//!   checked before a start (`check-config`, `serve`).
//!
//! A door parses its input into these facts, calls the gate and renders the answer; it never
//! decides anything itself.

pub mod abuse;
mod access;
mod admin;
mod check_access;
pub mod compile;
pub mod grammar;
mod hash_key;
pub mod preflight;
mod retry_after;
mod revoke;
mod wrong_secrets;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use prometheus::{Histogram, IntCounter};

use http::HeaderName;

pub use access::{AccessDecision, AccessOutcome, AccessQuery};
pub use admin::{AdminAccess, AdminCaller, AdminCredential, AdminProof, AdminRefusal};
pub use check_access::{
    CheckAccess, CheckCaller, CheckCredential, CheckProof, CheckRefusal, CheckStanding,
};
pub use compile::Compiled;
pub use hash_key::MIN_HASH_KEY_SECRET_BYTES;
pub use retry_after::retry_after;
pub use revoke::{RevokeError, RevokeRequest, Revoked};

use crate::auth::{AuthChanges, Authenticator};
use crate::clock::Clock;
use crate::config::Config;
use crate::limiter::{Decision, LimitCheck, LimitSpec, Limiter, LimiterOptions};
use crate::metrics::{DecisionCounters, Metrics};
use crate::policy::{Peer, Policy, RequestHeaders};

/// The facts of a `/check` (HTTP) or `CHECK` (RESP) request.
#[derive(Debug, Clone, Copy)]
pub struct CheckQuery<'a> {
    /// The caller's key (an IP, a user id…). Non-empty, at most [`MAX_KEY_BYTES`].
    pub key: &'a str,
    /// A configured tier: its limit always applies.
    pub tier: &'a str,
    /// Hits to count; 0 peeks.
    pub hits: u64,
    /// A configured named limit checked together with the tier's limit.
    pub limit: Option<&'a str>,
}

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 512;

/// Why a check could not be decided. Each door renders it (HTTP: problem+json 400;
/// RESP: `-ERR`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("the key is missing or empty")]
    MissingKey,
    #[error("the key is {0} bytes long; the limit is {MAX_KEY_BYTES}")]
    KeyTooLong(usize),
    #[error("unknown tier {0:?}")]
    UnknownTier(String),
    #[error("unknown limit {0:?}")]
    UnknownLimit(String),
    #[error("hits must be between 0 and {max}")]
    HitsOutOfRange { max: u64 },
    /// The caller may not ask the rate-limit question at all ([`CheckAccess`]).
    #[error("{0}")]
    NotAllowed(CheckRefusal),
}

impl CheckError {
    /// Short reason, used as the `reason` label of `tollgate_check_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            CheckError::MissingKey => "missing_key",
            CheckError::KeyTooLong(_) => "key_too_long",
            CheckError::UnknownTier(_) => "unknown_tier",
            CheckError::UnknownLimit(_) => "unknown_limit",
            CheckError::HitsOutOfRange { .. } => "hits_out_of_range",
            CheckError::NotAllowed(r) => r.reason(),
        }
    }
}

/// One compiled limit with its pre-resolved denial counter.
struct CompiledLimit {
    spec: LimitSpec,
    denials: IntCounter,
    abuse: IntCounter,
}

/// A tier: its limit and its pre-resolved decision counters.
struct CompiledTier {
    limit: CompiledLimit,
    decisions: DecisionCounters,
}

/// Everything a reload replaces, swapped as one: a decision loads it once, so it sees the
/// old configuration or the new one entirely — tiers, policy, credentials and admin access
/// together — never a mix.
struct GateState {
    config: Arc<Config>,
    /// Who is calling (`[auth]`): issuers and their key sets, API keys, role tiers; rebuilt
    /// by a reload with what the change cannot affect carried over ([`Authenticator::reloaded`]).
    auth: Arc<Authenticator>,
    /// Who may run admin operations, on every door (`[auth.admin]`).
    admin: Arc<AdminAccess>,
    tiers: HashMap<Box<str>, CompiledTier, ahash::RandomState>,
    limits: HashMap<Box<str>, CompiledLimit, ahash::RandomState>,
    max_hits: u64,
    /// The compiled route policy (rules, key templates, trusted proxies).
    policy: Policy,
    /// The request headers an access decision reads besides the credentials: the client-IP
    /// headers and the headers key templates name.
    access_headers: Box<[HeaderName]>,
}

/// What a reload changed, compared with the configuration running before it, in the file's
/// own names: `tiers.NAME`, `limits.NAME`, `routes[I] (METHODS PATH)`, `policy`,
/// `auth.issuers.NAME`, `auth.api_keys`, `auth.role_tiers`…
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Entries new in this configuration (tiers, limits, routes, issuers).
    pub added: Vec<String>,
    /// Entries gone from this configuration (their counters age out of the limiter).
    pub removed: Vec<String>,
    /// Entries that changed: a tier's or limit's counters start afresh; a route, the policy
    /// or an `[auth]` key applies from the next request.
    pub changed: Vec<String>,
    /// Tiers and limits that did not change: their counters are kept.
    pub unchanged: usize,
    /// Whether the verified-token cache was kept (nothing a cached identity depends on
    /// changed) or emptied.
    pub token_cache_kept: bool,
    /// Sections (or keys) whose new values differ from the running ones but take effect only
    /// after a restart (listeners, the limiter's bounds, the revocation log). Compared with
    /// what runs, so putting a value back is no change.
    pub restart_required: Vec<String>,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, what: &str, v: &[String]) -> fmt::Result {
            write!(f, "{} {what}", v.len())?;
            if !v.is_empty() {
                write!(f, " ({})", v.join(", "))?;
            }
            Ok(())
        }
        list(f, "added", &self.added)?;
        f.write_str(", ")?;
        list(f, "removed", &self.removed)?;
        f.write_str(", ")?;
        list(f, "changed", &self.changed)?;
        write!(f, ", {} unchanged", self.unchanged)?;
        if !self.token_cache_kept {
            f.write_str("; verified-token cache emptied")?;
        }
        if !self.restart_required.is_empty() {
            write!(
                f,
                "; not applied until a restart: [{}] (the running values stay in force)",
                self.restart_required.join("], [")
            )?;
        }
        Ok(())
    }
}

/// The decision core.
pub struct Gate {
    clock: Arc<dyn Clock>,
    limiter: Limiter,
    state: ArcSwap<GateState>,
    /// The configuration the process started with: the sections read once at start
    /// (listeners, the limiter's bounds, the revocation log, who may ask `/check`) keep
    /// running on it, and a reload's summary compares them with it.
    running: Arc<Config>,
    /// One reload at a time, so each builds on the state the previous one left.
    reloading: parking_lot::Mutex<()>,
    /// Who may ask the rate-limit question, on every door (`[check]`; read at start: a
    /// connection's standing is computed once, when it opens).
    check_access: CheckAccess,
    /// Wrong admin secrets per address (kept across reloads).
    wrong_secrets: wrong_secrets::WrongSecrets,
    /// Abuse signals since the last summary (kept across reloads).
    abuse: abuse::AbuseSummary,
    metrics: Arc<Metrics>,
    /// Cloned out of `metrics` so the hot path does not chase the Arc.
    decision_seconds: Histogram,
}

impl Gate {
    /// Builds the core from a validated configuration, with the authenticator of its
    /// `[auth]` section; secrets come from the process environment.
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Self::with_env(config, clock, &|v| std::env::var(v).ok())
    }

    /// [`Gate::new`] with the environment lookup injected (`env` names a variable and
    /// answers its value): every secret the gate reads comes through it.
    pub fn with_env(
        config: &Config,
        clock: Arc<dyn Clock>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let auth = Authenticator::from_config_with(&config.auth, clock.clone(), env, None)
            .map_err(|e| anyhow::anyhow!("[auth]: {e}"))?;
        Self::with_authenticator(config, clock, Arc::new(auth), env)
    }

    /// [`Gate::with_env`] with an authenticator built elsewhere (tests inject stores).
    pub fn with_authenticator(
        config: &Config,
        clock: Arc<dyn Clock>,
        auth: Arc<Authenticator>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let admin = AdminAccess::from_config(config, env)
            .map_err(|e| anyhow::anyhow!("[auth.admin]: {e}"))?;
        if config.resp.admin_secret_env.is_some() {
            tracing::warn!(
                "resp.admin_secret_env is deprecated and will be removed: set [auth.admin] \
                 enabled = true and secret_env instead (one admin secret serves every door)"
            );
        }
        let check_access =
            CheckAccess::from_config(config, env).map_err(|e| anyhow::anyhow!("[check]: {e}"))?;
        let metrics = Arc::new(Metrics::new());
        let state = GateState::new(compile::compile(config)?, auth, Arc::new(admin), &metrics);
        let options = LimiterOptions {
            max_states: config.limiter.max_states,
            shards: config.limiter.shards,
            hash_key: hash_key::limiter_hash_key(&config.limiter, env)?,
        };
        let limiter = Limiter::new(options, clock.clone());
        Ok(Self {
            clock,
            limiter,
            running: Arc::clone(&state.config),
            state: ArcSwap::from_pointee(state),
            reloading: parking_lot::Mutex::new(()),
            check_access,
            wrong_secrets: Default::default(),
            abuse: Default::default(),
            decision_seconds: metrics.decision_seconds().clone(),
            metrics,
        })
    }

    /// Decides a rate-limit check for `caller`: first whether the caller may ask at all
    /// ([`CheckAccess`]; a refusal is counted and nothing about the key is looked at), then
    /// the tier's limit, plus the named limit when given, both for the same key; admitted
    /// only if both admit, and a denial consumes from neither.
    pub fn check(
        &self,
        caller: &CheckCaller<'_>,
        q: &CheckQuery<'_>,
    ) -> Result<Decision, CheckError> {
        if let Err(refusal) = self.check_access.admit(caller) {
            self.metrics.check_refusal(refusal.reason());
            tracing::debug!(reason = refusal.reason(), "check refused: {refusal}");
            return Err(CheckError::NotAllowed(refusal));
        }
        let state = self.state.load();
        let (tier, named) = match validate(&state, q) {
            Ok(found) => found,
            Err(e) => {
                self.metrics.check_error(e.reason());
                return Err(e);
            }
        };
        let mut checks = [LimitCheck {
            limit: &tier.limit.spec,
            key: q.key,
        }; 2];
        let mut n = 1;
        if let Some(named) = named {
            // A limit identical to the tier's (same name and spec) is the same counter in the
            // limiter: checking it twice would count the request twice.
            if named.spec != tier.limit.spec {
                checks[1].limit = &named.spec;
                n = 2;
            }
        }

        let limits = [&tier.limit, named.unwrap_or(&tier.limit)];
        Ok(self.decide_limits(Some(tier), &limits[..n], &checks[..n], q.tier, q.hits))
    }

    /// Runs `checks` (whose limits are `limits`, the tier's first when it applies) through the
    /// engine and records the decision: the decision counters of `tier` (`None` for a passed
    /// CORS preflight, which belongs to no tier), the deciding limit's denial counter, and the
    /// abuse signal (counted, and logged once per key and window).
    fn decide_limits(
        &self,
        tier: Option<&CompiledTier>,
        limits: &[&CompiledLimit],
        checks: &[LimitCheck<'_>],
        tier_name: &str,
        hits: u64,
    ) -> Decision {
        let started = Instant::now();
        let decision = self.limiter.check(checks, hits);
        self.decision_seconds
            .observe(started.elapsed().as_secs_f64());

        if decision.allowed {
            if let Some(tier) = tier {
                tier.decisions.allowed.inc();
            }
        } else {
            if let Some(tier) = tier {
                tier.decisions.denied.inc();
            }
            if let Some(denier) = limits.get(decision.deciding) {
                denier.denials.inc();
            }
        }
        for (i, o) in decision
            .outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| o.abuse)
        {
            // The limiter raises `abuse` once per key and window, so this logs once too.
            if let Some(limit) = limits.get(i) {
                limit.abuse.inc();
            }
            let key = checks.get(i).map(|c| c.key).unwrap_or("");
            self.abuse.record(key, &o.name, self.clock.now_millis());
            tracing::warn!(
                target: "tollgate::abuse",
                key = ?key,
                tier = ?tier_name,
                limit = %o.name,
                quota = o.limit,
                window_secs = o.window_secs,
                "abuse signal: key asked for more than twice its limit in this window"
            );
        }
        decision
    }

    /// Replaces the tiers, limits, policy and `[auth]` with those of `new_config` (compiled
    /// here, see [`compile::compile`]); secrets come from the process environment. Counters
    /// of unchanged limits are kept. On error nothing changes and the failure is counted.
    pub fn reload(&self, new_config: &Config) -> anyhow::Result<ReloadSummary> {
        self.reload_with_env(new_config, &|v| std::env::var(v).ok())
    }

    /// [`Gate::reload`] with the environment lookup injected (see [`Gate::with_env`]).
    pub fn reload_with_env(
        &self,
        new_config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ReloadSummary> {
        match compile::compile(new_config) {
            Ok(compiled) => self.reload_compiled(compiled, env),
            Err(e) => {
                self.metrics.config_reload(false);
                Err(e.into())
            }
        }
    }

    /// Swaps in a configuration compiled by [`compile::load`] (SIGHUP) or
    /// [`compile::compile`], with the authenticator and admin access of its `[auth]` (secrets
    /// read through `env`), all in one swap. Counters of unchanged limits are kept, and so
    /// is the auth state the change cannot affect ([`Authenticator::reloaded`]). When the
    /// new `[auth]` cannot be built (a secret unset, a key file unreadable) nothing changes.
    pub fn reload_compiled(
        &self,
        compiled: Compiled,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ReloadSummary> {
        let _one_at_a_time = self.reloading.lock();
        let old = self.state.load_full();
        let built = old
            .auth
            .reloaded(&old.config.auth, &compiled.config.auth, env)
            .map_err(|e| anyhow::anyhow!("[auth]: {e}"))
            .and_then(|auth| {
                let admin = AdminAccess::from_config(&compiled.config, env)
                    .map_err(|e| anyhow::anyhow!("[auth.admin]: {e}"))?;
                Ok((auth, admin))
            });
        let ((auth, auth_changes), admin) = match built {
            Ok(built) => built,
            Err(e) => {
                self.metrics.config_reload(false);
                return Err(e);
            }
        };
        let new_state = GateState::new(compiled, Arc::new(auth), Arc::new(admin), &self.metrics);
        let summary = summarise(&old, &new_state, &self.running, auth_changes);
        self.state.store(Arc::new(new_state));
        self.metrics.config_reload(true);
        Ok(summary)
    }

    /// Counts a reload that failed before reaching [`Gate::reload`] (e.g. the file did not
    /// parse), so `tollgate_config_reloads_total{result="failed"}` sees every failure.
    pub fn reload_failed(&self) {
        self.metrics.config_reload(false);
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.state.load().config.clone()
    }

    /// The configured tiers, sorted by name.
    pub fn tiers(&self) -> Vec<LimitSpec> {
        let state = self.state.load();
        let mut v: Vec<_> = state.tiers.values().map(|t| t.limit.spec.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The configured named limits, sorted by name.
    pub fn limits(&self) -> Vec<LimitSpec> {
        let state = self.state.load();
        let mut v: Vec<_> = state.limits.values().map(|l| l.spec.clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The largest `hits` a check may carry now.
    pub fn max_hits(&self) -> u64 {
        self.state.load().max_hits
    }

    /// The metrics every door records into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The authenticator in force now (key sets, token cache, revocations, API keys). A
    /// reload replaces it; a decision uses the one of the state it loaded.
    pub fn authenticator(&self) -> Arc<Authenticator> {
        Arc::clone(&self.state.load().auth)
    }

    /// The client address of a request from `peer` carrying `headers`: from the configured
    /// client-IP headers only when `peer` is a trusted proxy, else the socket address.
    pub fn client_ip(&self, peer: Peer, headers: &dyn RequestHeaders) -> Option<IpAddr> {
        self.state.load().policy.client_ip(peer, headers)
    }

    /// The client address of a request whose caller states it as an argument (RESP
    /// `VERIFY`): believed only from a trusted proxy, as [`Gate::client_ip`] believes the
    /// client-IP headers; otherwise the peer's own address (none for a Unix socket).
    pub fn claimed_client_ip(&self, peer: Peer, claimed: IpAddr) -> Option<IpAddr> {
        self.state
            .load()
            .policy
            .client_ip_resolver()
            .resolve_claimed(peer, claimed)
    }

    /// Who may run admin operations, now.
    pub fn admin(&self) -> Arc<AdminAccess> {
        Arc::clone(&self.state.load().admin)
    }

    /// Whether `peer` may present an admin secret now: `Err(seconds)` while it is refused
    /// for presenting too many wrong ones (`wrong_secrets.rs`; a Unix-socket peer never is).
    /// A door asks before it checks a presented secret, and reports the outcome with
    /// [`Gate::admin_secret_outcome`].
    pub fn admin_secret_allowed(&self, peer: Option<Peer>) -> Result<(), u64> {
        match peer {
            Some(Peer::Ip(ip)) => self
                .wrong_secrets
                .refused(ip, self.clock.now_millis())
                .map_or(Ok(()), Err),
            _ => Ok(()),
        }
    }

    /// Records whether the admin secret `peer` presented was right.
    pub fn admin_secret_outcome(&self, peer: Option<Peer>, right: bool) {
        if let Some(Peer::Ip(ip)) = peer {
            if right {
                self.wrong_secrets.right(ip);
            } else {
                self.wrong_secrets.wrong(ip, self.clock.now_millis());
            }
        }
    }

    /// Who may ask the rate-limit question (`/check`, `CHECK`).
    pub fn check_access(&self) -> &CheckAccess {
        &self.check_access
    }

    /// What a connection from `peer` is worth to [`CheckAccess`]: a door asks once, when
    /// the connection opens, and passes it with every check ([`CheckCaller`]).
    pub fn check_standing(&self, peer: Option<Peer>) -> CheckStanding {
        self.check_access.standing(peer)
    }

    /// Calls `f` with the API-key header (`[auth] api_key_header`) and the names of the
    /// request headers an access decision reads besides the credentials: the client-IP
    /// headers (`[policy] client_ip_headers`) and every header a key template names, all of
    /// the configuration in force. A door that keeps only some headers of a request (the
    /// HTTP fast path) keeps these, so that [`Gate::authorize`] decides as it would on all
    /// of them.
    pub fn with_access_headers<R>(&self, f: impl FnOnce(&HeaderName, &[HeaderName]) -> R) -> R {
        let state = self.state.load();
        f(state.auth.api_key_header(), &state.access_headers)
    }

    /// Calls `f` with the header API keys are read from (`[auth] api_key_header`) in the
    /// configuration in force, without taking a reference count on it (the hot path asks).
    pub fn with_api_key_header<R>(&self, f: impl FnOnce(&HeaderName) -> R) -> R {
        f(self.state.load().auth.api_key_header())
    }

    /// The engine.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The clock decisions are made with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Drops idle limiter states, and logs the abuse summary when one is due. The server
    /// calls it periodically.
    pub fn sweep(&self) {
        self.limiter.sweep();
        if let Some(report) = self.abuse_summary() {
            report.log();
        }
    }

    /// The abuse signals gathered since the last summary, once a summary is due
    /// ([`abuse::PERIOD_MS`] after the period's first signal, by the gate's clock); `None`
    /// before then or when no key abused. [`Gate::sweep`] logs it.
    pub fn abuse_summary(&self) -> Option<abuse::AbuseReport> {
        self.abuse.take_due(self.clock.now_millis())
    }

    /// `GET /metrics`: every metric in the Prometheus text format.
    pub fn render_metrics(&self) -> Vec<u8> {
        self.metrics.render(
            self.limiter.tracked_states(),
            self.limiter.evictions(),
            Some(&self.state.load().auth.snapshot()),
        )
    }
}

fn validate<'s>(
    state: &'s GateState,
    q: &CheckQuery<'_>,
) -> Result<(&'s CompiledTier, Option<&'s CompiledLimit>), CheckError> {
    if q.key.is_empty() {
        return Err(CheckError::MissingKey);
    }
    if q.key.len() > MAX_KEY_BYTES {
        return Err(CheckError::KeyTooLong(q.key.len()));
    }
    let tier = state
        .tiers
        .get(q.tier)
        .ok_or_else(|| CheckError::UnknownTier(q.tier.to_owned()))?;
    let named = match q.limit {
        Some(name) => Some(
            state
                .limits
                .get(name)
                .ok_or_else(|| CheckError::UnknownLimit(name.to_owned()))?,
        ),
        None => None,
    };
    if q.hits > state.max_hits {
        return Err(CheckError::HitsOutOfRange {
            max: state.max_hits,
        });
    }
    Ok((tier, named))
}

impl GateState {
    /// A compiled configuration with the metric handles of its tiers and limits, and the
    /// authenticator and admin access of its `[auth]`.
    fn new(
        compiled: Compiled,
        auth: Arc<Authenticator>,
        admin: Arc<AdminAccess>,
        metrics: &Metrics,
    ) -> Self {
        let limit = |spec: LimitSpec| CompiledLimit {
            denials: metrics.denial_counter(&spec.name),
            abuse: metrics.abuse_counter(&spec.name),
            spec,
        };
        let mut tiers = HashMap::with_hasher(ahash::RandomState::new());
        for spec in compiled.tiers {
            let decisions = metrics.decision_counters(&spec.name);
            tiers.insert(
                Box::from(&*spec.name),
                CompiledTier {
                    limit: limit(spec),
                    decisions,
                },
            );
        }
        let mut limits = HashMap::with_hasher(ahash::RandomState::new());
        for spec in compiled.limits {
            limits.insert(Box::from(&*spec.name), limit(spec));
        }
        let access_headers = access_header_names(&compiled.policy);
        Self {
            max_hits: compiled.config.server.max_hits,
            config: compiled.config,
            auth,
            admin,
            tiers,
            limits,
            policy: compiled.policy,
            access_headers,
        }
    }
}

/// The client-IP headers, then the headers key templates name, each once.
fn access_header_names(policy: &Policy) -> Box<[HeaderName]> {
    use crate::policy::key::KeyPart;
    let mut names: Vec<HeaderName> = policy.client_ip_resolver().headers().to_vec();
    for t in policy.key_templates() {
        for part in t.parts() {
            if let KeyPart::Header(h) = part {
                if !names.contains(h) {
                    names.push(h.clone());
                }
            }
        }
    }
    names.into()
}

/// Records in `s` the names of `new` that `old` lacks (added), that differ (changed), and
/// the names of `old` that `new` lacks (removed); returns how many are the same.
fn compare<V: PartialEq>(
    old: &HashMap<String, V>,
    new: &HashMap<String, V>,
    s: &mut ReloadSummary,
) -> usize {
    let mut same = 0;
    for (name, v) in new {
        match old.get(name) {
            None => s.added.push(name.clone()),
            Some(o) if o != v => s.changed.push(name.clone()),
            Some(_) => same += 1,
        }
    }
    s.removed
        .extend(old.keys().filter(|k| !new.contains_key(*k)).cloned());
    same
}

fn summarise(
    old: &GateState,
    new: &GateState,
    running: &Config,
    auth: AuthChanges,
) -> ReloadSummary {
    let mut s = ReloadSummary {
        token_cache_kept: auth.token_cache_kept,
        ..ReloadSummary::default()
    };
    let named = |section: &str, specs: Vec<(&str, &LimitSpec)>| -> HashMap<String, LimitSpec> {
        specs
            .into_iter()
            .map(|(name, spec)| (format!("{section}.{name}"), spec.clone()))
            .collect()
    };
    s.unchanged += compare(
        &named(
            "tiers",
            old.tiers
                .iter()
                .map(|(k, v)| (&**k, &v.limit.spec))
                .collect(),
        ),
        &named(
            "tiers",
            new.tiers
                .iter()
                .map(|(k, v)| (&**k, &v.limit.spec))
                .collect(),
        ),
        &mut s,
    );
    s.unchanged += compare(
        &named(
            "limits",
            old.limits.iter().map(|(k, v)| (&**k, &v.spec)).collect(),
        ),
        &named(
            "limits",
            new.limits.iter().map(|(k, v)| (&**k, &v.spec)).collect(),
        ),
        &mut s,
    );
    let (o, n) = (&old.config, &new.config);
    // Routes, by what they match: a route is named by its methods and path.
    let routes = |c: &Config| -> HashMap<String, String> {
        c.routes
            .iter()
            .map(|r| {
                let name = if r.methods.is_empty() {
                    format!("routes[{}]", r.path)
                } else {
                    format!("routes[{} {}]", r.methods.join(","), r.path)
                };
                (name, format!("{r:?}"))
            })
            .collect()
    };
    compare(&routes(o), &routes(n), &mut s);
    let debug = |v: &dyn fmt::Debug| format!("{v:?}");
    if debug(&o.policy) != debug(&n.policy) {
        s.changed.push("policy".into());
    }
    if o.server.max_hits != n.server.max_hits {
        s.changed.push("server.max_hits".into());
    }
    s.added.extend(auth.added);
    s.removed.extend(auth.removed);
    s.changed.extend(auth.changed);
    s.added.sort();
    s.removed.sort();
    s.changed.sort();

    // These are read once at start (listeners, the engine's bounds, the revocation log), so
    // they are compared with the values running, not with the previous file: a change put
    // back is no change. Compared through their Debug form so that fields added later are
    // covered without touching this list.
    let server_at_start = |c: &Config| crate::config::ServerConfig {
        max_hits: 0, // reloadable: reported above
        ..c.server.clone()
    };
    for (name, differs) in [
        (
            "server",
            debug(&server_at_start(running)) != debug(&server_at_start(n)),
        ),
        ("limiter", debug(&running.limiter) != debug(&n.limiter)),
        ("log", debug(&running.log) != debug(&n.log)),
        ("resp", debug(&running.resp) != debug(&n.resp)),
        (
            "auth.revocation",
            debug(&running.auth.revocation) != debug(&n.auth.revocation),
        ),
        ("check", running.check != n.check),
        ("cluster", running.cluster != n.cluster),
    ] {
        if differs {
            s.restart_required.push(name.to_string());
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::{Algorithm, LimitConfig};

    fn config(tiers: &[(&str, u64, &str)], limits: &[(&str, u64, &str)]) -> Config {
        let mut c = Config::default();
        for (map, entries) in [(&mut c.tiers, tiers), (&mut c.limits, limits)] {
            for (n, l, w) in entries {
                let limit = LimitConfig {
                    limit: *l,
                    window: w.to_string(),
                    algorithm: Algorithm::SlidingWindow,
                    key: None,
                };
                map.insert(n.to_string(), limit);
            }
        }
        c
    }

    fn gate(c: &Config) -> Gate {
        Gate::new(c, Arc::new(ManualClock::new(1_000_000))).unwrap()
    }

    /// A caller on the Unix socket, admitted by the default `[check]`.
    fn local(g: &Gate) -> CheckCaller<'static> {
        CheckCaller {
            standing: g.check_standing(Some(Peer::Unix)),
            credential: CheckCredential::None,
        }
    }

    fn q<'a>(key: &'a str, tier: &'a str) -> CheckQuery<'a> {
        CheckQuery {
            key,
            tier,
            hits: 1,
            limit: None,
        }
    }

    #[test]
    fn abuse_signals_are_summarised_once_a_minute_by_the_gates_clock() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let c = config(&[("basic", 2, "1m")], &[]);
        let g = Gate::new(&c, clock.clone()).unwrap();
        // Each key asks 6 times: more than twice its limit of 2, so one signal each.
        for key in ["user:1", "user:2", "user:3"] {
            for _ in 0..6 {
                g.check(&local(&g), &q(key, "basic")).unwrap();
            }
        }
        for _ in 0..6 {
            g.check(&local(&g), &q("user:1", "basic")).unwrap();
        }
        assert_eq!(
            g.abuse_summary(),
            None,
            "not due before a minute has passed"
        );
        clock.advance_millis(abuse::PERIOD_MS);
        let r = g.abuse_summary().expect("due after a minute");
        assert_eq!(r.signals, 3, "once per key and window: {r:?}");
        assert_eq!(r.keys, 3);
        assert_eq!(r.by_limit, vec![("basic".to_owned(), 3)]);
        assert_eq!(r.top.len(), 3);
        assert_eq!(g.abuse_summary(), None, "one summary per period");
        // A quiet minute logs nothing.
        clock.advance_millis(abuse::PERIOD_MS);
        g.sweep();
        assert_eq!(g.abuse_summary(), None);
    }

    #[test]
    fn validation_errors_are_reported_in_order() {
        let g = gate(&config(&[("basic", 5, "1h")], &[("login", 2, "5m")]));
        assert_eq!(
            g.check(&local(&g), &q("", "basic")).unwrap_err(),
            CheckError::MissingKey
        );
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(
            g.check(&local(&g), &q(&long, "basic")).unwrap_err(),
            CheckError::KeyTooLong(MAX_KEY_BYTES + 1)
        );
        assert_eq!(
            g.check(&local(&g), &q("k", "gold")).unwrap_err(),
            CheckError::UnknownTier("gold".into())
        );
        let mut bad_limit = q("k", "basic");
        bad_limit.limit = Some("nope");
        assert_eq!(
            g.check(&local(&g), &bad_limit).unwrap_err(),
            CheckError::UnknownLimit("nope".into())
        );
        let mut too_many = q("k", "basic");
        too_many.hits = g.max_hits() + 1;
        assert_eq!(
            g.check(&local(&g), &too_many).unwrap_err(),
            CheckError::HitsOutOfRange { max: g.max_hits() }
        );
        let text = String::from_utf8(g.render_metrics()).unwrap();
        assert!(text.contains("tollgate_check_errors_total{reason=\"unknown_tier\"} 1"));
    }

    #[test]
    fn reload_summarises_and_refuses_bad_configs() {
        let g = gate(&config(
            &[("basic", 5, "1h"), ("premium", 50, "1h")],
            &[("login", 2, "5m")],
        ));
        let mut next = config(
            &[("basic", 5, "1h"), ("premium", 60, "1h")],
            &[("upload", 10, "1h")],
        );
        next.server.http = "127.0.0.1:9999".into();
        let s = g.reload(&next).unwrap();
        assert_eq!(s.added, vec!["limits.upload"]);
        assert_eq!(s.removed, vec!["limits.login"]);
        assert_eq!(s.changed, vec!["tiers.premium"]);
        assert_eq!(s.unchanged, 1);
        assert_eq!(s.restart_required, vec!["server"]);
        assert_eq!(g.limits()[0].name.as_ref(), "upload");

        let bad = config(&[("basic", 5, "forever")], &[]);
        assert!(g.reload(&bad).is_err());
        // The old set stays in force.
        assert_eq!(g.tiers().len(), 2);
        let text = String::from_utf8(g.render_metrics()).unwrap();
        assert!(text.contains("tollgate_config_reloads_total{result=\"failed\"} 1"));
        assert!(text.contains("tollgate_config_reloads_total{result=\"ok\"} 1"));
    }
}
