//! The access decision: what `/auth` (HTTP, for nginx `auth_request`) and `VERIFY` (RESP)
//! answer about one request of the protected application.
//!
//! ```text
//! AccessQuery ─► normalise path ─► rule = most specific route ─► CORS preflight? pass ─►
//!   credentials (if the rule looks at them) ─► authorise (roles, permissions, owner) ─►
//!   limits: the tier's (unless the rule says `tier_limit = false`) + the rule's, keys from
//!   their templates, all checked together ─► AccessDecision
//! ```
//!
//! Order matters and is deliberate:
//! - the path is normalised first, so that `/api/users/alice/../bob` is judged as bob's path;
//! - credentials are checked before limits, so a forged token cannot spend a real user's
//!   quota, and a caller refused by the policy (401/403) spends nothing either;
//! - all limits are checked in one call to the engine, so a request denied by one limit
//!   consumes nothing from the others.
//!
//! - a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`, see
//!   [`crate::policy::preflight`]) passes before credentials are looked at, on every route,
//!   when `[policy] cors_preflight = "pass"` (the default): it never carries credentials, so
//!   judging it by a protected route's rule would refuse every cross-origin call. It spends
//!   only `[policy] cors_preflight_limits`. For any other method the check is one comparison.
//!
//! A route with `tier_limit = false` spends no tier quota: its requests are authenticated and
//! authorised as its rule says and counted against the rule's own `limits` only; with none,
//! the decision has no rate-limit part (no `RateLimit` fields), and `X-Tier` still names the
//! caller's tier.
//!
//! A bad token on a route whose `auth` is `optional` is still refused (401): a client that
//! presents credentials wants them honoured, and silently downgrading a revoked token to
//! anonymous would hide the revocation. On `auth = "none"` credentials are not looked at.

use std::net::IpAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use super::{CheckError, CompiledLimit, CompiledTier, Gate, GateState};
use crate::auth::{AuthError, AuthInput, Authentication, Identity, PendingVerification};
use crate::limiter::{Decision, LimitCheck};
use crate::policy::{
    normalize_path, AuthRequirement, KeyTemplate, PathError, Refusal, RequestFacts, RequestHeaders,
    RouteLimit,
};

/// The facts of one request of the protected application, as a front door found them.
#[derive(Debug, Clone, Copy)]
pub struct AccessQuery<'a> {
    /// The original method (`X-Original-Method`).
    pub method: &'a str,
    /// The original request target, path and optional query (`X-Original-URI`), raw.
    pub uri: &'a [u8],
    /// Bearer token and API key.
    pub credentials: AuthInput<'a>,
    /// The client address, already resolved by the door through the trusted-proxy rules
    /// ([`Gate::client_ip`]); `None` for a Unix-socket peer without a trusted header.
    pub client_ip: Option<IpAddr>,
    /// The request headers, for `header=<name>` key parts; `None` where a door has none.
    pub headers: Option<&'a dyn RequestHeaders>,
}

/// How an access decision came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessOutcome {
    /// Every check passed: 200.
    Allowed,
    /// A CORS preflight passed unjudged (`[policy] cors_preflight = "pass"`): 200,
    /// anonymous, no tier.
    PreflightPassed,
    /// The credentials did not verify: 401 (`missing_token`, `invalid_token`, `expired`,
    /// `revoked`, `invalid_api_key`, `keys_unavailable`).
    Unauthenticated(AuthError),
    /// The route's rule refused the caller: 401 for a missing identity, 403 otherwise.
    Refused(Refusal),
    /// A limit denied the request: 403 with `rate_limited` (nginx turns any status other than
    /// 2xx, 401 and 403 into 500, so the door does not answer 429 here).
    RateLimited,
    /// The original path cannot be normalised (`..` above the root, `%2F`, bad encoding):
    /// 403 with `bad_path`, since the request cannot be judged safely.
    BadPath(PathError),
}

/// The answer to an [`AccessQuery`].
#[derive(Debug, Clone)]
pub struct AccessDecision {
    pub outcome: AccessOutcome,
    /// The verified caller; `None` when anonymous or when verification failed.
    pub identity: Option<Arc<Identity>>,
    /// The tier the request was counted in (empty when it never reached the limits).
    pub tier: Arc<str>,
    /// The rate-limit decision, when the limits were checked (allowed or rate-limited).
    pub limits: Option<Decision>,
}

impl AccessDecision {
    /// The HTTP status a door answers: 200, 401 or 403.
    pub fn status(&self) -> u16 {
        match &self.outcome {
            AccessOutcome::Allowed | AccessOutcome::PreflightPassed => 200,
            AccessOutcome::Unauthenticated(_) => 401,
            AccessOutcome::Refused(r) => r.status(),
            AccessOutcome::RateLimited | AccessOutcome::BadPath(_) => 403,
        }
    }

    /// `X-Tollgate-Reason`: `None` when allowed, else a stable reason (`missing_token`,
    /// `invalid_token`, `expired`, `revoked`, `invalid_api_key`, `keys_unavailable`,
    /// `forbidden`, `not_owner`, `rate_limited`, `bad_path`).
    pub fn reason(&self) -> Option<&'static str> {
        match &self.outcome {
            AccessOutcome::Allowed | AccessOutcome::PreflightPassed => None,
            AccessOutcome::Unauthenticated(e) => Some(e.reason()),
            AccessOutcome::Refused(r) => Some(r.reason()),
            AccessOutcome::RateLimited => Some("rate_limited"),
            AccessOutcome::BadPath(_) => Some("bad_path"),
        }
    }

    /// How the decision is counted in `tollgate_access_total{result}`: `allowed`,
    /// `preflight` (a CORS preflight passed unjudged), or the denial's [`reason`](Self::reason).
    pub fn result(&self) -> &'static str {
        match &self.outcome {
            AccessOutcome::PreflightPassed => "preflight",
            _ => self.reason().unwrap_or("allowed"),
        }
    }

    /// Whether the request may pass (status 200).
    pub fn is_allowed(&self) -> bool {
        matches!(
            self.outcome,
            AccessOutcome::Allowed | AccessOutcome::PreflightPassed
        )
    }

    /// The `WWW-Authenticate` value of a 401 (`None` otherwise): `Bearer realm="tollgate",
    /// error="invalid_token", error_description="…"` (RFC 6750 §3). The error code is sent
    /// for a missing token too, as the nginx contract asks: a proxy in front can then tell
    /// every 401 of tollgate's by one header. The description is fixed text (never token
    /// content) without `"` or `\`, so it is quoted as is.
    pub fn www_authenticate(&self) -> Option<String> {
        let description = match &self.outcome {
            AccessOutcome::Unauthenticated(e) => e.description(),
            AccessOutcome::Refused(Refusal::MissingToken) => {
                "this route requires a bearer token or API key".to_string()
            }
            _ => return None,
        };
        Some(format!(
            "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"{description}\""
        ))
    }

    /// Seconds the client should wait before retrying, when rate-limited (the one rule of
    /// [`super::retry_after`]: at least one second).
    pub fn retry_after(&self) -> Option<u64> {
        match (&self.outcome, &self.limits) {
            (AccessOutcome::RateLimited, Some(d)) => super::retry_after(d),
            _ => None,
        }
    }

    fn early(outcome: AccessOutcome, identity: Option<Arc<Identity>>) -> Self {
        Self {
            outcome,
            identity,
            tier: Arc::from(""),
            limits: None,
        }
    }
}

/// Most limits one request is checked against: its tier's and up to this many from its rule.
const MAX_LIMITS: usize = 8;

impl Gate {
    /// Decides whether the request described by `q` may proceed (see the module docs for the
    /// order of the steps). Counts the outcome in `tollgate_access_total`.
    ///
    /// Awaits only when a token names a key id its issuer's key set does not hold: then it
    /// waits for one refetch of that key set (bounded by the fetch timeout, at most once per
    /// cooldown, shared by concurrent requests) and finishes verifying the token it already
    /// parsed, so a key rotation at the issuer does not turn its first requests into 401s.
    /// The request is authenticated once, counted once, and nothing is spent against a
    /// limit before its identity is known. Every other request is decided without yielding.
    pub async fn authorize(&self, q: &AccessQuery<'_>) -> Result<AccessDecision, CheckError> {
        // One configuration for the whole decision, even across the wait for keys: a reload
        // meanwhile applies from the next request, never halfway through this one.
        let state = self.state.load();
        let d = match self.decide_access(&state, q, Credentials::Verify) {
            Step::Decided(d) => d,
            Step::AwaitingKeys(pending) => {
                let state = arc_swap::Guard::into_inner(state);
                let verified = state.auth.finish(pending).await;
                // The path and rule are looked up again (pure and cheap); verification,
                // counting and metrics happen once.
                match self.decide_access(&state, q, Credentials::Verified(verified)) {
                    Step::Decided(d) => d,
                    // Verified credentials are not verified again, so this cannot wait; were
                    // it to, refuse rather than wait twice.
                    Step::AwaitingKeys(_) => Ok(AccessDecision::early(
                        AccessOutcome::Unauthenticated(AuthError::UnknownKey),
                        None,
                    )),
                }
            }
        }?;
        self.metrics.access(d.result());
        Ok(d)
    }

    /// The decision itself. Stops early, before anything is counted, only when the
    /// credentials must wait for their key set ([`Credentials::Verify`]).
    fn decide_access<'q>(
        &self,
        state: &GateState,
        q: &AccessQuery<'q>,
        credentials: Credentials,
    ) -> Step<'q> {
        let path = match normalize_path(q.uri) {
            Ok(p) => p,
            Err(e) => return Step::done(AccessDecision::early(AccessOutcome::BadPath(e), None)),
        };
        let m = state.policy.evaluate(q.method, &path);
        if state.policy.passes_as_preflight(q.method, q.headers) {
            return Step::Decided(self.pass_preflight(state, q, m.rule.route()));
        }

        let looks_at_credentials = m.rule.auth != AuthRequirement::None;
        let identity = if looks_at_credentials {
            let verified = match credentials {
                Credentials::Verified(r) => r,
                Credentials::Verify => match state.auth.begin(&q.credentials) {
                    Authentication::Done(r) => r,
                    Authentication::AwaitingKeys(p) => return Step::AwaitingKeys(p),
                },
            };
            match verified {
                Ok(id) => Some(id),
                Err(AuthError::MissingToken) => None,
                Err(e) => {
                    tracing::debug!(
                        target: "tollgate::access",
                        reason = e.reason(),
                        detail = e.detail(),
                        route = m.rule.route(),
                        method = q.method,
                        "request refused: credentials"
                    );
                    return Step::done(AccessDecision::early(
                        AccessOutcome::Unauthenticated(e),
                        None,
                    ));
                }
            }
        } else {
            None
        };

        if let Err(r) = m.authorize(identity.as_deref()) {
            tracing::debug!(
                target: "tollgate::access",
                reason = r.reason(),
                route = m.rule.route(),
                method = q.method,
                user = ?identity.as_ref().and_then(|i| i.user_id.as_deref()),
                "request refused: route rule"
            );
            return Step::done(AccessDecision::early(AccessOutcome::Refused(r), identity));
        }

        // Owned, because the identity it comes from moves into the decision.
        let tier_arc: Arc<str> = Arc::from(
            identity
                .as_ref()
                .map(|i| i.tier.as_str())
                .unwrap_or(state.auth.anonymous_tier()),
        );
        let tier_name = &*tier_arc;
        let Some(tier) = state.tiers.get(tier_name) else {
            return Step::Decided(Err(CheckError::UnknownTier(tier_name.to_owned())));
        };

        let facts = RequestFacts {
            client_ip: q.client_ip,
            user: identity.as_ref().and_then(|i| i.user_id.as_deref()),
            route: m.rule.route(),
            method: q.method,
            tier: tier_name,
            headers: q.headers,
        };
        // Keys first (they borrow nothing from the checks), then the checks over them.
        let mut limits: SmallVec<[&CompiledLimit; 4]> = SmallVec::new();
        let mut keys: SmallVec<[String; 4]> = SmallVec::new();
        if m.rule.tier_limit {
            // Every tier has a template once compiled; the default one stands in regardless.
            keys.push(match state.policy.key_template(tier_name) {
                Some(t) => t.render(&facts),
                None => KeyTemplate::default().render(&facts),
            });
            limits.push(&tier.limit);
        }
        if let Err(e) = named_limits(state, &m.rule.limits, &facts, &mut limits, &mut keys) {
            return Step::Decided(Err(e));
        }
        // A route that spends no tier quota and names no limit of its own: nothing to count.
        let limits_decision =
            (!limits.is_empty()).then(|| self.check_limits(Some(tier), &limits, &keys, tier_name));
        let outcome = match &limits_decision {
            Some(d) if !d.allowed => AccessOutcome::RateLimited,
            _ => AccessOutcome::Allowed,
        };
        Step::done(AccessDecision {
            outcome,
            identity,
            tier: tier_arc,
            limits: limits_decision,
        })
    }

    /// A CORS preflight that passes unjudged: anonymous, no tier, counted only against
    /// `[policy] cors_preflight_limits` (keys rendered as for an anonymous request).
    fn pass_preflight(
        &self,
        state: &GateState,
        q: &AccessQuery<'_>,
        route: &str,
    ) -> Result<AccessDecision, CheckError> {
        let mut decision = AccessDecision::early(AccessOutcome::PreflightPassed, None);
        let named = state.policy.preflight_limits();
        if named.is_empty() {
            return Ok(decision);
        }
        let facts = RequestFacts {
            client_ip: q.client_ip,
            user: None,
            route,
            method: q.method,
            tier: state.auth.anonymous_tier(),
            headers: q.headers,
        };
        let mut limits: SmallVec<[&CompiledLimit; 4]> = SmallVec::new();
        let mut keys: SmallVec<[String; 4]> = SmallVec::new();
        named_limits(state, named, &facts, &mut limits, &mut keys)?;
        let d = self.check_limits(None, &limits, &keys, "");
        if !d.allowed {
            decision.outcome = AccessOutcome::RateLimited;
        }
        decision.limits = Some(d);
        Ok(decision)
    }

    /// One hit against `limits`, keyed by `keys` (pairwise), counted for `tier`.
    fn check_limits(
        &self,
        tier: Option<&CompiledTier>,
        limits: &[&CompiledLimit],
        keys: &[String],
        tier_name: &str,
    ) -> Decision {
        let checks: SmallVec<[LimitCheck<'_>; 4]> = limits
            .iter()
            .zip(keys)
            .map(|(l, k)| LimitCheck {
                limit: &l.spec,
                key: k,
            })
            .collect();
        self.decide_limits(tier, limits, &checks, tier_name, 1)
    }
}

/// Adds the named limits `named` (at most [`MAX_LIMITS`]), with their keys rendered from
/// `facts`, to `limits` and `keys`; the same limit and key twice would count the request
/// twice, so a repeat is skipped.
fn named_limits<'s>(
    state: &'s GateState,
    named: &[RouteLimit],
    facts: &RequestFacts<'_>,
    limits: &mut SmallVec<[&'s CompiledLimit; 4]>,
    keys: &mut SmallVec<[String; 4]>,
) -> Result<(), CheckError> {
    for rl in named.iter().take(MAX_LIMITS) {
        let Some(limit) = state.limits.get(&*rl.name) else {
            return Err(CheckError::UnknownLimit(rl.name.to_string()));
        };
        let key = rl.key.render(facts);
        if limits
            .iter()
            .zip(keys.iter())
            .any(|(l, k)| l.spec == limit.spec && *k == key)
        {
            continue;
        }
        limits.push(limit);
        keys.push(key);
    }
    Ok(())
}

/// How [`Gate::decide_access`] comes by the caller's identity.
enum Credentials {
    /// Verify them; stop with [`Step::AwaitingKeys`] if their key must be refetched.
    Verify,
    /// Already verified (after the refetch): use this outcome.
    Verified(Result<Arc<Identity>, AuthError>),
}

/// Where [`Gate::decide_access`] stopped.
enum Step<'q> {
    Decided(Result<AccessDecision, CheckError>),
    /// Nothing decided or counted yet: the token's key must be refetched first.
    AwaitingKeys(PendingVerification<'q>),
}

impl Step<'_> {
    fn done(d: AccessDecision) -> Self {
        Step::Decided(Ok(d))
    }
}

#[cfg(test)]
mod tests {
    //! `Gate::authorize` on its own, with the PyJWT fixtures of tests/tokens/: what is
    //! counted when (refusals spend nothing), `header=` key parts, the headers a door must
    //! keep, and a token with an unknown key id.

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;
    use http::HeaderMap;
    use std::future::Future;

    const HS_ENV: &str = "GATE_TEST_HS256_SECRET";

    fn fixtures() -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tokens/tokens.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn token(name: &str) -> String {
        fixtures()["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no fixture {name}"))["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Tiers `anonymous` (keyed per IP) and `basic` (2 per hour per user), the fixtures'
    /// issuers, an owner rule, and a partner route limited per `X-Client-Id`.
    fn gate() -> Gate {
        gate_with("")
    }

    /// [`gate`] with `extra` configuration appended.
    fn gate_with(extra: &str) -> Gate {
        let f = fixtures();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tokens");
        let text = format!(
            r#"
[tiers.anonymous]
limit = 100
window = "1h"
key = "ip"
[tiers.basic]
limit = 2
window = "1h"
key = "user"
[limits.per_client]
limit = 1
window = "1h"
key = "header=x-client-id"
[[routes]]
path = "/api/**"
auth = "required"
[[routes]]
path = "/api/users/{{user_id}}/**"
owner = "user_id"
[[routes]]
path = "/partner/**"
auth = "none"
limits = ["per_client"]
[[auth.issuers]]
name = "better-auth"
issuer = "{iss}"
audiences = ["{iss}"]
jwks_file = "{dir}/jwks.json"
[[auth.issuers]]
name = "fastapi"
hs256_secret_env = "{HS_ENV}"
{extra}
"#,
            iss = f["issuer"].as_str().unwrap(),
        );
        let config = Config::from_toml_str(&text, "test").unwrap();
        let now_ms = (f["generated_at"].as_u64().unwrap() + 60) * 1000;
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(ManualClock::new(now_ms));
        let secret = std::fs::read_to_string(format!("{dir}/hs256_secret.txt")).unwrap();
        let env = move |v: &str| (v == HS_ENV).then(|| secret.clone());
        let auth =
            crate::auth::Authenticator::from_config_with(&config.auth, clock.clone(), &env, None)
                .unwrap();
        Gate::with_authenticator(&config, clock, Arc::new(auth), &|_| None).unwrap()
    }

    fn query<'a>(
        uri: &'a str,
        authorization: Option<&'a [u8]>,
        headers: &'a HeaderMap,
    ) -> AccessQuery<'a> {
        AccessQuery {
            method: "GET",
            uri: uri.as_bytes(),
            credentials: AuthInput {
                authorization,
                ..AuthInput::default()
            },
            client_ip: Some(IpAddr::from([203, 0, 113, 7])),
            headers: Some(headers),
        }
    }

    /// `authorize` on a request that has no reason to wait (every key set here is a file):
    /// it must be ready at the first poll.
    fn decide_at_once(g: &Gate, q: &AccessQuery<'_>) -> AccessDecision {
        let mut fut = std::pin::pin!(g.authorize(q));
        let waker = std::task::Waker::noop();
        match fut
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(d) => d.unwrap(),
            std::task::Poll::Pending => panic!("authorize waited on a request that needs nothing"),
        }
    }

    #[test]
    fn refusals_spend_nothing_and_limits_deny_with_retry_after() {
        let g = gate();
        let none = HeaderMap::new();
        let good = format!("Bearer {}", token("eddsa_better_auth")); // user_1
        let forged = format!("Bearer {}", token("tampered_signature"));
        let decide = |uri: &str, auth: Option<&str>| {
            decide_at_once(&g, &query(uri, auth.map(str::as_bytes), &none))
        };

        // Refused before the limits: nothing is counted, no rate-limit answer.
        for (uri, auth, reason) in [
            ("/api/me", Some(forged.as_str()), "invalid_token"),
            ("/api/me", None, "missing_token"),
            ("/api/users/bob/tasks", Some(good.as_str()), "not_owner"),
            ("/api/users/user_1/../bob", Some(good.as_str()), "not_owner"),
            ("/api/users/user_1%2Fx", Some(good.as_str()), "bad_path"),
        ] {
            let d = decide(uri, auth);
            assert_eq!(d.reason(), Some(reason), "{uri}");
            assert!(d.limits.is_none() && d.retry_after().is_none(), "{uri}");
        }
        assert_eq!(g.limiter().tracked_states(), 0, "refusals counted nothing");

        let d = decide("/api/users/bob/../user_1/tasks", Some(&good));
        assert_eq!(d.outcome, AccessOutcome::Allowed);
        assert_eq!(d.status(), 200);
        assert_eq!(&*d.tier, "basic");
        assert_eq!(
            d.identity.as_ref().unwrap().user_id.as_deref(),
            Some("user_1")
        );
        assert_eq!(d.limits.as_ref().unwrap().deciding().remaining, 1);
        assert_eq!(
            decide("/api/me", Some(&good)).outcome,
            AccessOutcome::Allowed
        );
        let d = decide("/api/me", Some(&good));
        assert_eq!(d.outcome, AccessOutcome::RateLimited);
        assert_eq!((d.status(), d.reason()), (403, Some("rate_limited")));
        assert!(d.retry_after().is_some_and(|s| s > 0));
        assert!(d.www_authenticate().is_none());
        assert_eq!(g.limiter().tracked_states(), 1);
    }

    #[test]
    fn header_key_parts_count_per_header_value_and_doors_keep_those_headers() {
        let g = gate();
        let names = g.with_access_headers(|_, h| {
            h.iter().map(|n| n.as_str().to_string()).collect::<Vec<_>>()
        });
        assert_eq!(names, ["x-forwarded-for", "x-real-ip", "x-client-id"]);

        let with = |id: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-client-id", http::HeaderValue::from_static(id));
            h
        };
        let (a, b, none) = (with("a"), with("b"), HeaderMap::new());
        let decide = |h: &HeaderMap| decide_at_once(&g, &query("/partner/x", None, h));
        assert_eq!(decide(&a).outcome, AccessOutcome::Allowed);
        assert_eq!(decide(&b).outcome, AccessOutcome::Allowed);
        assert_eq!(decide(&a).outcome, AccessOutcome::RateLimited);
        // No header is a value of its own (`~`), not a free pass.
        assert_eq!(decide(&none).outcome, AccessOutcome::Allowed);
        assert_eq!(decide(&none).outcome, AccessOutcome::RateLimited);
    }

    #[tokio::test]
    async fn an_unknown_key_id_of_a_static_key_set_is_an_invalid_token() {
        let g = gate();
        let none = HeaderMap::new();
        let h = format!("Bearer {}", token("unknown_kid"));
        let q = query("/api/me", Some(h.as_bytes()), &none);
        let waited = g.authorize(&q).await.unwrap();
        let again = g.authorize(&q).await.unwrap();
        for d in [waited, again] {
            assert_eq!(
                d.outcome,
                AccessOutcome::Unauthenticated(AuthError::UnknownKey)
            );
            assert_eq!((d.status(), d.reason()), (401, Some("invalid_token")));
            let w = d.www_authenticate().unwrap();
            assert!(
                w.starts_with("Bearer ") && w.contains("invalid_token"),
                "{w}"
            );
        }
        assert_eq!(g.limiter().tracked_states(), 0);
    }

    /// Routes that spend no tier quota (besides [`gate`]'s): a health check with no limit at
    /// all, public files limited per IP by a named limit only, and a required route.
    const UNLIMITED: &str = r#"
[limits.files]
limit = 1
window = "1h"
key = "ip"
[[routes]]
path = "/healthz"
auth = "none"
tier_limit = false
[[routes]]
path = "/static/**"
auth = "optional"
tier_limit = false
limits = ["files"]
[[routes]]
path = "/api/feed"
auth = "required"
tier_limit = false
"#;

    #[test]
    fn a_route_without_the_tier_limit_spends_no_tier_quota() {
        let g = gate_with(UNLIMITED);
        let none = HeaderMap::new();
        let good = format!("Bearer {}", token("eddsa_better_auth")); // basic: 2 an hour
        let decide = |uri: &str, auth: Option<&str>| {
            decide_at_once(&g, &query(uri, auth.map(str::as_bytes), &none))
        };
        // No limit at all: allowed as often as asked, no rate-limit answer, nothing tracked.
        for _ in 0..5 {
            let d = decide("/healthz", None);
            assert_eq!(d.outcome, AccessOutcome::Allowed);
            assert!(d.limits.is_none() && d.retry_after().is_none());
            assert_eq!(&*d.tier, "anonymous", "the caller's tier is still named");
        }
        assert_eq!(g.limiter().tracked_states(), 0);
        // A signed-in caller keeps its identity and tier, and spends none of its 2.
        for _ in 0..3 {
            let d = decide("/api/feed", Some(&good));
            assert_eq!(d.outcome, AccessOutcome::Allowed);
            assert_eq!(&*d.tier, "basic");
            assert_eq!(d.identity.unwrap().user_id.as_deref(), Some("user_1"));
            assert!(d.limits.is_none());
        }
        assert_eq!(g.limiter().tracked_states(), 0);
        // The rule's auth still holds.
        assert_eq!(decide("/api/feed", None).reason(), Some("missing_token"));
        // A named limit still applies, and alone decides.
        let d = decide("/static/app.js", Some(&good));
        assert_eq!(d.outcome, AccessOutcome::Allowed);
        let only = d.limits.as_ref().unwrap();
        assert_eq!(only.outcomes.len(), 1);
        assert_eq!(&*only.deciding().name, "files");
        let d = decide("/static/app.css", None);
        assert_eq!(d.outcome, AccessOutcome::RateLimited);
        assert!(d.retry_after().is_some());
        // The tier's quota is untouched: both of user_1's hits are still there.
        assert_eq!(
            decide("/api/me", Some(&good))
                .limits
                .unwrap()
                .deciding()
                .remaining,
            1
        );
        assert_eq!(
            decide("/api/me", Some(&good)).outcome,
            AccessOutcome::Allowed
        );
        // A more specific rule decides for itself: under /api/** the tier's limit applies.
        assert_eq!(
            decide("/api/feed/x", Some(&good)).outcome,
            AccessOutcome::RateLimited
        );
    }

    fn preflight_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "origin",
            http::HeaderValue::from_static("https://app.example"),
        );
        h.insert(
            "access-control-request-method",
            http::HeaderValue::from_static("DELETE"),
        );
        h
    }

    fn options<'a>(uri: &'a str, headers: &'a HeaderMap) -> AccessQuery<'a> {
        AccessQuery {
            method: "OPTIONS",
            ..query(uri, None, headers)
        }
    }

    #[test]
    fn a_cors_preflight_passes_on_every_route_without_spending_quota() {
        let g = gate();
        let pre = preflight_headers();
        for uri in ["/api/me", "/api/users/bob/tasks", "/partner/x", "/other"] {
            let d = decide_at_once(&g, &options(uri, &pre));
            assert_eq!(d.outcome, AccessOutcome::PreflightPassed, "{uri}");
            assert_eq!(
                (d.status(), d.reason(), d.result()),
                (200, None, "preflight")
            );
            assert!(d.identity.is_none() && d.tier.is_empty() && d.limits.is_none());
        }
        // Credentials are not looked at (a browser sends none; a forged one changes nothing).
        let forged = format!("Bearer {}", token("tampered_signature"));
        let q = AccessQuery {
            credentials: AuthInput {
                authorization: Some(forged.as_bytes()),
                ..AuthInput::default()
            },
            ..options("/api/me", &pre)
        };
        assert_eq!(
            decide_at_once(&g, &q).outcome,
            AccessOutcome::PreflightPassed
        );
        assert_eq!(g.limiter().tracked_states(), 0, "no quota spent");
        // Not a preflight: judged by the rule.
        let origin_only = {
            let mut h = HeaderMap::new();
            h.insert(
                "origin",
                http::HeaderValue::from_static("https://app.example"),
            );
            h
        };
        let none = HeaderMap::new();
        for (method, h) in [
            ("OPTIONS", &origin_only),
            ("OPTIONS", &none),
            ("options", &pre),
            ("GET", &pre),
        ] {
            let q = AccessQuery {
                method,
                ..query("/api/me", None, h)
            };
            assert_eq!(
                decide_at_once(&g, &q).reason(),
                Some("missing_token"),
                "{method}"
            );
        }
        let q = AccessQuery {
            headers: None,
            ..options("/api/me", &pre)
        };
        assert_eq!(decide_at_once(&g, &q).reason(), Some("missing_token"));
        // A path that cannot be judged is refused, preflight or not.
        assert_eq!(
            decide_at_once(&g, &options("/api/users/a%2Fb", &pre)).reason(),
            Some("bad_path")
        );
        let metrics = String::from_utf8(g.render_metrics()).unwrap();
        assert!(
            metrics.contains(r#"tollgate_access_total{result="preflight"} 5"#),
            "{metrics}"
        );
    }

    #[test]
    fn preflights_can_be_judged_or_bounded_by_a_limit() {
        let pre = preflight_headers();
        let g = gate_with("[policy]\ncors_preflight = \"judge\"\n");
        let d = decide_at_once(&g, &options("/api/me", &pre));
        assert_eq!((d.status(), d.reason()), (401, Some("missing_token")));
        assert_eq!(
            decide_at_once(&g, &options("/other", &pre)).outcome,
            AccessOutcome::Allowed,
            "judged: the anonymous tier's quota"
        );
        assert_eq!(g.limiter().tracked_states(), 1);

        let g = gate_with(
            r#"
[limits.preflight]
limit = 2
window = "1h"
key = "ip"
[policy]
cors_preflight_limits = ["preflight"]
"#,
        );
        for remaining in [1, 0] {
            let d = decide_at_once(&g, &options("/api/users/bob/x", &pre));
            assert_eq!(d.outcome, AccessOutcome::PreflightPassed);
            assert!(d.tier.is_empty());
            assert_eq!(d.limits.unwrap().deciding().remaining, remaining);
        }
        let d = decide_at_once(&g, &options("/api/me", &pre));
        assert_eq!((d.status(), d.reason()), (403, Some("rate_limited")));
        assert!(d.retry_after().is_some());
        // The anonymous tier was not spent by them.
        let none = HeaderMap::new();
        let d = decide_at_once(&g, &query("/other", None, &none));
        assert_eq!(d.limits.unwrap().deciding().remaining, 99);
    }
}
