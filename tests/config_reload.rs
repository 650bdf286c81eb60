//! Reloading a configuration (what SIGHUP does), `[auth]` included: API keys, issuers' key
//! sources and role tiers apply without a restart, in one swap with the rest; a refused
//! reload changes nothing; the summary compares with what runs.

mod auth_support;

use std::sync::Arc;

use auth_support::{clock, dir, manifest, token, HS256_ENV};
use tollgate::auth::AuthInput;
use tollgate::config::Config;
use tollgate::gate::{AccessOutcome, AccessQuery, CheckCaller, CheckCredential, CheckQuery, Gate};
use tollgate::policy::Peer;

/// An API key and its SHA-256 (`printf %s "$KEY" | sha256sum`).
const API_KEY: &str = "svc-key-0123456789abcdef0123456789";

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A configuration accepting the token fixtures (`jwks_file` for Better Auth, the HS256
/// issuer), with `/api/**` needing credentials; `extra` is appended.
fn config_text(jwks_file: &str, premium_tier: &str, extra: &str) -> String {
    let m = manifest();
    format!(
        r#"
[server]
http = "127.0.0.1:0"

[tiers.anonymous]
limit = 100
window = "1h"
[tiers.basic]
limit = 100
window = "1h"
[tiers.api_key]
limit = 100
window = "1h"
[tiers.premium]
limit = 100
window = "1h"
[tiers.gold]
limit = 100
window = "1h"

[[routes]]
path = "/api/**"
auth = "required"

[auth]
anonymous_tier = "anonymous"
default_tier = "basic"

[[auth.role_tiers]]
role = "premium"
tier = "{premium_tier}"

[[auth.issuers]]
name = "better-auth"
issuer = "{iss}"
audiences = ["{aud}"]
jwks_file = "{file}"

[[auth.issuers]]
name = "fastapi"
hs256_secret_env = "{HS256_ENV}"
{extra}
"#,
        iss = m.issuer,
        aud = m.audience,
        file = dir().join(jwks_file).display(),
    )
}

fn parse(text: &str) -> Config {
    Config::from_toml_str(text, "test.toml").expect("the test configuration is valid")
}

fn api_key_entry(tier: &str) -> String {
    format!(
        "\n[[auth.api_keys]]\nsha256 = \"{}\"\nowner = \"svc\"\ntier = \"{tier}\"\n",
        sha256_hex(API_KEY)
    )
}

fn gate(text: &str) -> Gate {
    Gate::with_env(&parse(text), clock(), &auth_support::env).expect("the gate builds")
}

fn reload(g: &Gate, text: &str) -> anyhow::Result<tollgate::gate::ReloadSummary> {
    g.reload_with_env(&parse(text), &auth_support::env)
}

async fn ask(g: &Gate, credentials: AuthInput<'_>) -> (u16, Option<&'static str>, String) {
    let q = AccessQuery {
        method: "GET",
        uri: b"/api/tasks",
        credentials,
        client_ip: Some("203.0.113.7".parse().unwrap()),
        headers: None,
    };
    let d = g.authorize(&q).await.expect("decided");
    (d.status(), d.reason(), d.tier.to_string())
}

fn api_key() -> AuthInput<'static> {
    AuthInput {
        api_key: Some(API_KEY.as_bytes()),
        ..AuthInput::default()
    }
}

fn outcome_count(g: &Gate, reason: &str) -> u64 {
    g.authenticator()
        .outcomes
        .snapshot()
        .into_iter()
        .find(|(r, _)| *r == reason)
        .map_or(0, |(_, n)| n)
}

#[tokio::test]
async fn a_reload_that_adds_an_api_key_admits_it_and_keeps_every_counter() {
    let without = config_text("jwks.json", "premium", "");
    let g = gate(&without);
    // With no API key configured the header is no credential at all.
    assert_eq!(
        ask(&g, api_key()).await,
        (401, Some("missing_token"), String::new())
    );
    let check = CheckQuery {
        key: "user:42",
        tier: "basic",
        hits: 7,
        limit: None,
    };
    // Asked as the application on the Unix socket would.
    let caller = CheckCaller {
        standing: g.check_standing(Some(Peer::Unix)),
        credential: CheckCredential::None,
    };
    g.check(&caller, &check).unwrap();
    let store = Arc::clone(g.authenticator().revocations());

    let with = format!("{without}{}", api_key_entry("gold"));
    let s = reload(&g, &with).unwrap();
    assert_eq!(s.changed, vec!["auth.api_keys"], "{s}");
    assert!(
        s.token_cache_kept,
        "API keys are not in the token cache: {s}"
    );
    assert!(s.restart_required.is_empty(), "{s}");

    assert_eq!(ask(&g, api_key()).await, (200, None, "gold".into()));
    // The limiter's counters, the auth counters and the revocation store are the same ones.
    let peek = g.check(&caller, &CheckQuery { hits: 0, ..check }).unwrap();
    assert_eq!(peek.outcomes[0].remaining, 93);
    assert_eq!(outcome_count(&g, "no_credentials"), 1);
    assert_eq!(outcome_count(&g, "ok"), 1);
    assert!(Arc::ptr_eq(&store, g.authenticator().revocations()));
    let text = String::from_utf8(g.render_metrics()).unwrap();
    assert!(text.contains("tollgate_config_reloads_total{result=\"ok\"} 1"));
}

#[tokio::test]
async fn rotating_an_issuers_key_file_applies_on_reload_and_empties_the_token_cache() {
    let rotated = token("eddsa_rotated_key");
    let header = format!("Bearer {rotated}");
    let bearer = || AuthInput::authorization(header.as_bytes());

    let old_keys = config_text("jwks.json", "premium", "");
    let g = gate(&old_keys);
    assert_eq!(
        ask(&g, bearer()).await.0,
        401,
        "its kid is not in jwks.json"
    );

    let new_keys = config_text("jwks_rotated.json", "premium", "");
    let s = reload(&g, &new_keys).unwrap();
    assert_eq!(s.changed, vec!["auth.issuers.better-auth"], "{s}");
    assert!(!s.token_cache_kept, "{s}");
    assert_eq!(ask(&g, bearer()).await, (200, None, "basic".into()));
    // Now cached; the same file again changes nothing and keeps the cache.
    let s = reload(&g, &new_keys).unwrap();
    assert!(s.changed.is_empty() && s.token_cache_kept, "{s}");
    assert_eq!(ask(&g, bearer()).await.0, 200);

    // Back to the old keys: the token verified under the removed key is not answered from
    // the cache.
    reload(&g, &old_keys).unwrap();
    assert_eq!(ask(&g, bearer()).await.0, 401);
}

#[tokio::test]
async fn changing_role_tiers_changes_the_tier_of_a_token_already_cached() {
    let premium = token("eddsa_premium_roles");
    let header = format!("Bearer {premium}");
    let bearer = || AuthInput::authorization(header.as_bytes());
    let g = gate(&config_text("jwks.json", "premium", ""));
    assert_eq!(ask(&g, bearer()).await, (200, None, "premium".into()));

    let s = reload(&g, &config_text("jwks.json", "gold", "")).unwrap();
    assert_eq!(s.changed, vec!["auth.role_tiers"], "{s}");
    assert!(!s.token_cache_kept);
    assert_eq!(ask(&g, bearer()).await, (200, None, "gold".into()));
}

#[tokio::test]
async fn a_refused_reload_keeps_the_old_configuration_entirely() {
    let running = config_text("jwks.json", "premium", "");
    let g = gate(&running);
    let premium = token("eddsa_premium_roles");
    let header = format!("Bearer {premium}");

    // Everything changes at once, but one issuer's secret is not set: nothing applies.
    let broken = config_text("jwks_rotated.json", "gold", &api_key_entry("gold"))
        .replace(HS256_ENV, "TOLLGATE_TEST_UNSET_SECRET")
        .replace("[tiers.basic]\nlimit = 100", "[tiers.basic]\nlimit = 1");
    let e = reload(&g, &broken).unwrap_err();
    let message = format!("{e:#}");
    assert!(
        message.contains("TOLLGATE_TEST_UNSET_SECRET") && message.contains("not set"),
        "{message}"
    );
    assert_eq!(
        ask(&g, api_key()).await.1,
        Some("missing_token"),
        "the API key was not added"
    );
    let bearer = AuthInput::authorization(header.as_bytes());
    assert_eq!(ask(&g, bearer).await, (200, None, "premium".into()));
    let rotated = format!("Bearer {}", token("eddsa_rotated_key"));
    assert_eq!(
        ask(&g, AuthInput::authorization(rotated.as_bytes()))
            .await
            .0,
        401
    );
    let basic = g.tiers().into_iter().find(|t| &*t.name == "basic").unwrap();
    assert_eq!(basic.limit, 100);
    let text = String::from_utf8(g.render_metrics()).unwrap();
    assert!(text.contains("tollgate_config_reloads_total{result=\"failed\"} 1"));
}

#[test]
fn the_summary_counts_a_new_route_and_compares_restart_only_sections_with_what_runs() {
    let running = config_text("jwks.json", "premium", "");
    let g = gate(&running);

    let s = reload(&g, &running).unwrap();
    assert_eq!(
        s.to_string(),
        "0 added, 0 removed, 0 changed, 5 unchanged",
        "the same file is no change"
    );

    let with_route = running.replace(
        "[auth]\n",
        "[[routes]]\npath = \"/api/public/**\"\nmethods = [\"GET\"]\nauth = \"none\"\n\n[auth]\n",
    );
    let s = reload(&g, &with_route).unwrap();
    assert_eq!(s.added, vec!["routes[GET /api/public/**]"]);
    assert_eq!(
        s.to_string(),
        "1 added (routes[GET /api/public/**]), 0 removed, 0 changed, 5 unchanged"
    );

    let moved = with_route.replace("127.0.0.1:0", "127.0.0.1:1");
    let s = reload(&g, &moved).unwrap();
    assert_eq!(s.restart_required, vec!["server"]);
    assert_eq!(
        s.to_string(),
        "0 added, 0 removed, 0 changed, 5 unchanged; not applied until a restart: [server] \
         (the running values stay in force)"
    );
    // Back to the values running: no change, and no restart to ask for.
    let s = reload(&g, &with_route).unwrap();
    assert!(s.restart_required.is_empty(), "{s}");
    assert_eq!(
        s.to_string(),
        "0 added, 0 removed, 0 changed, 5 unchanged",
        "putting [server] back is no change"
    );
}

/// Readers deciding while the configuration flips between two that cannot be mixed: in A the
/// API key's tier is `a` and there is no tier `b`; in B the other way round. A decision made
/// on A's credentials and B's tiers (or the reverse) would fail with an unknown tier, so
/// every decision must be allowed, in `a` or `b`. The check holds whatever the interleaving;
/// no reader waits on time.
#[test]
fn readers_during_reloads_see_one_configuration_or_the_other_never_a_mix() {
    let base = config_text("jwks.json", "premium", "");
    let flavour = |tier: &str| {
        format!(
            "{}{}",
            base.replace(
                "[tiers.gold]",
                &format!("[tiers.{tier}]\nlimit = 1000000\nwindow = \"1h\"\n[tiers.gold]")
            ),
            api_key_entry(tier)
        )
    };
    let (a, b) = (parse(&flavour("a")), parse(&flavour("b")));
    let g = Arc::new(Gate::with_env(&a, clock(), &auth_support::env).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Arc::new(std::sync::Barrier::new(4));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (g, stop, start) = (Arc::clone(&g), Arc::clone(&stop), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let mut seen = [0u64; 2];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let q = AccessQuery {
                        method: "GET",
                        uri: b"/api/tasks",
                        credentials: api_key(),
                        client_ip: None,
                        headers: None,
                    };
                    let d = rt
                        .block_on(g.authorize(&q))
                        .expect("never an unknown tier: credentials and tiers of one config");
                    assert_eq!(d.outcome, AccessOutcome::Allowed);
                    let id_tier = d.identity.as_ref().unwrap().tier.clone();
                    assert_eq!(&*d.tier, id_tier.as_str());
                    seen[usize::from(&*d.tier == "b")] += 1;
                }
                seen
            })
        })
        .collect();
    start.wait();
    for i in 0..300 {
        let next = if i % 2 == 0 { &b } else { &a };
        g.reload_with_env(next, &auth_support::env).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.join().expect("no reader saw a mix");
    }
}
