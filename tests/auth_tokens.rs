//! Every token written by `tests/tokens/gen.py` (PyJWT + cryptography, an implementation
//! independent of tollgate) gets the outcome the generator recorded, through the public
//! `Authenticator` API, on the first verification and again from the cache.

mod auth_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use auth_support as s;
use tollgate::auth::{AuthError, AuthInput, Authenticator, IdentityKind, MAX_TOKEN_BYTES};
use tollgate::config::auth::ApiKeyConfig;

fn outcome(a: &Authenticator, token: &str) -> Result<Arc<tollgate::auth::Identity>, AuthError> {
    let h = s::header(token);
    a.authenticate_now(&s::input(&h))
}

fn check_all(a: &Authenticator, pass: &str) -> usize {
    let m = s::manifest();
    let mut ok = 0;
    for f in &m.tokens {
        let r = outcome(a, &f.token);
        match (&r, f.expect.as_str()) {
            (Ok(id), "ok") => {
                assert_eq!(id.user_id, f.sub, "{pass}: {}", f.name);
                assert_eq!(id.kind, IdentityKind::User);
                ok += 1;
            }
            (Err(e), want) if want != "ok" => {
                assert_eq!(e.reason(), want, "{pass}: {}: {e:?}", f.name);
                assert_eq!(e.detail(), f.detail, "{pass}: {}: {e:?}", f.name);
            }
            _ => panic!("{pass}: {} expected {} got {r:?}", f.name, f.expect),
        }
    }
    ok
}

#[test]
fn every_fixture_gets_its_expected_outcome_then_the_same_from_the_cache() {
    let cfg = s::config(s::static_issuer("jwks_rotated.json"));
    let a = s::build(&cfg, s::clock());
    assert!(a.is_ready(), "static key sets are ready at once");
    let oks = check_all(&a, "first pass");
    assert!(oks >= 13, "{oks} valid fixtures");
    let stats = &a.cache().stats;
    assert_eq!(a.cache().len(), oks, "only successes are cached");
    assert_eq!(stats.hits.load(Ordering::Relaxed), 0);
    check_all(&a, "second pass");
    // Every valid token now comes from the cache; every refused one was verified again.
    assert_eq!(stats.hits.load(Ordering::Relaxed), oks as u64);
    assert_eq!(a.cache().len(), oks);
    assert_eq!(
        a.outcomes.ok_token.load(Ordering::Relaxed),
        2 * oks as u64,
        "outcome counters"
    );
    let snap = a.snapshot();
    let count = |r: &str| snap.outcomes.iter().find(|(n, _)| *n == r).unwrap().1;
    let m = s::manifest();
    let want = |r: &str| 2 * m.tokens.iter().filter(|t| t.expect == r).count() as u64;
    for r in ["ok", "invalid_token", "expired"] {
        assert_eq!(count(r), want(r), "{r}");
    }
    assert_eq!(snap.cache_hits, oks as u64);
    assert_eq!(snap.cache_entries, oks);
    assert_eq!(snap.issuers.len(), 2);
    assert!(snap
        .issuers
        .iter()
        .all(|i| i.ready && i.keys > 0 && i.fetches == 0));
}

#[test]
fn better_auth_token_identity_and_tiers() {
    let a = s::build(&s::config(s::static_issuer("jwks.json")), s::clock());
    let id = outcome(&a, &s::token("eddsa_better_auth")).unwrap();
    assert_eq!(id.user_id.as_deref(), Some("user_1"));
    assert_eq!(id.email.as_deref(), Some("user_1@example.com"));
    assert_eq!(id.roles, ["user"]);
    assert_eq!(id.tier, "basic", "a user with no mapped role is basic");
    assert_eq!(id.issuer.as_deref(), Some("better-auth"));
    assert_eq!(
        id.token.as_ref().unwrap().jti,
        None,
        "Better Auth sends no jti"
    );
    let p = outcome(&a, &s::token("eddsa_premium_roles")).unwrap();
    assert_eq!(p.roles, ["user", "premium"]);
    assert_eq!(p.tier, "premium");
    let hs = outcome(&a, &s::token("hs256")).unwrap();
    assert_eq!(hs.issuer.as_deref(), Some("fastapi"));
    assert_eq!(hs.tier, "basic");
    assert_eq!(a.anonymous().tier, "anonymous");
    assert_eq!(a.anonymous().kind, IdentityKind::Anonymous);
}

#[test]
fn unknown_kid_with_a_static_key_set_is_refused_without_waiting() {
    let a = s::build(&s::config(s::static_issuer("jwks.json")), s::clock());
    for name in ["eddsa_rotated_key", "unknown_kid"] {
        assert_eq!(
            outcome(&a, &s::token(name)),
            Err(AuthError::UnknownKey),
            "{name}"
        );
    }
}

#[test]
fn time_claims_follow_the_injected_clock() {
    let clock = s::clock();
    let a = s::build(&s::config(s::static_issuer("jwks.json")), clock.clone());
    // The "expired" fixture was issued at 1600000000 for 15 minutes.
    clock.set_millis(1_600_000_500_000);
    let id = outcome(&a, &s::token("expired")).unwrap();
    assert_eq!(id.user_id.as_deref(), Some("user_1"));
    // Within the 30 s leeway after exp: still accepted (from the cache).
    clock.set_millis(1_600_000_929_000);
    assert!(outcome(&a, &s::token("expired")).is_ok());
    // Past exp + leeway: the cached entry expires too.
    clock.set_millis(1_600_000_930_000);
    assert_eq!(outcome(&a, &s::token("expired")), Err(AuthError::Expired));
    assert_eq!(outcome(&a, &s::token("expired")), Err(AuthError::Expired));
    // The fixtures' far-future tokens expire on 2100-01-01.
    let good = s::token("eddsa_better_auth");
    clock.set_millis(4_102_444_800_000 - 1);
    assert!(outcome(&a, &good).is_ok());
    clock.set_millis(4_102_444_800_000 + 30_000);
    assert_eq!(outcome(&a, &good), Err(AuthError::Expired));
}

#[test]
fn leeway_is_per_issuer() {
    let clock = s::clock();
    let mut iss = s::static_issuer("jwks.json");
    iss.leeway = "0s".into();
    let a = s::build(&s::config(iss), clock.clone());
    clock.set_millis(1_600_000_900_000);
    assert_eq!(outcome(&a, &s::token("expired")), Err(AuthError::Expired));
    clock.set_millis(1_600_000_899_999);
    assert!(outcome(&a, &s::token("expired")).is_ok());
}

#[test]
fn audience_and_algorithm_restrictions_from_config() {
    let mut iss = s::static_issuer("jwks.json");
    iss.algorithms = vec!["EdDSA".into()];
    let a = s::build(&s::config(iss), s::clock());
    assert!(outcome(&a, &s::token("eddsa_better_auth")).is_ok());
    for name in ["es256", "es512", "rs256", "ps256"] {
        assert_eq!(
            outcome(&a, &s::token(name)),
            Err(AuthError::AlgorithmNotAllowed),
            "{name}"
        );
    }
    let mut iss = s::static_issuer("jwks.json");
    iss.required_claims = vec!["jti".into()];
    let a = s::build(&s::config(iss), s::clock());
    assert_eq!(
        outcome(&a, &s::token("eddsa_better_auth")),
        Err(AuthError::MissingClaim("jti".into()))
    );
    assert!(outcome(&a, &s::token("eddsa_with_jti")).is_ok());
}

#[test]
fn hs256_secret_rules() {
    let cfg = s::config(s::static_issuer("jwks.json"));
    let short = |v: &str| (v == s::HS256_ENV).then(|| "x".repeat(31));
    let e = Authenticator::from_config_with(&cfg, s::clock(), &short, None).unwrap_err();
    assert!(e.contains("at least 32"), "{e}");
    let unset = |_: &str| None;
    let e = Authenticator::from_config_with(&cfg, s::clock(), &unset, None).unwrap_err();
    assert!(e.contains("not set"), "{e}");
    // Exactly 32 bytes is enough (and then the fixture secret does not verify).
    let ok32 = |v: &str| (v == s::HS256_ENV).then(|| "y".repeat(32));
    let a = Authenticator::from_config_with(&cfg, s::clock(), &ok32, None).unwrap();
    assert_eq!(
        outcome(&a, &s::token("hs256")),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn oversize_tokens_are_refused_before_parsing() {
    let a = s::build(&s::config(s::static_issuer("jwks.json")), s::clock());
    // Not even base64: it would be Malformed if it were looked at.
    let junk = "%".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(outcome(&a, &junk), Err(AuthError::TokenTooLarge));
    let h = vec![b'a'; 100 * 1024];
    assert_eq!(
        a.authenticate_now(&s::input(&h)),
        Err(AuthError::TokenTooLarge)
    );
    assert_eq!(
        a.cache().stats.misses.load(Ordering::Relaxed),
        0,
        "no hashing either"
    );
}

#[test]
fn credentials_precedence_and_api_keys() {
    let mut cfg = s::config(s::static_issuer("jwks.json"));
    cfg.api_keys = vec![ApiKeyConfig {
        sha256: tollgate::auth::api_key::hash_hex("svc-key-0123456789abcdef"),
        owner: "billing-service".into(),
        tier: "api_key".into(),
        roles: vec![],
        permissions: vec!["invoices:write".into()],
    }];
    let a = s::build(&cfg, s::clock());
    let none = AuthInput::default();
    assert_eq!(a.authenticate_now(&none), Err(AuthError::MissingToken));
    let basic = AuthInput {
        authorization: Some(b"Basic dXNlcjpwYXNz"),
        api_key: None,
        ..AuthInput::default()
    };
    assert_eq!(a.authenticate_now(&basic), Err(AuthError::MissingToken));
    let key = AuthInput {
        authorization: None,
        api_key: Some(b"svc-key-0123456789abcdef"),
        ..AuthInput::default()
    };
    let id = a.authenticate_now(&key).unwrap();
    assert_eq!(id.kind, IdentityKind::ApiKey);
    assert_eq!(id.user_id.as_deref(), Some("billing-service"));
    assert_eq!(id.tier, "api_key");
    assert!(id.has_permission("invoices:write"));
    let wrong = AuthInput {
        authorization: None,
        api_key: Some(b"svc-key-0123456789abcdeF"),
        ..AuthInput::default()
    };
    assert_eq!(a.authenticate_now(&wrong), Err(AuthError::InvalidApiKey));
    // A bearer token wins over an API key.
    let h = s::header(&s::token("eddsa_better_auth"));
    let both = AuthInput {
        authorization: Some(&h),
        api_key: Some(b"svc-key-0123456789abcdef"),
        ..AuthInput::default()
    };
    assert_eq!(
        a.authenticate_now(&both).unwrap().user_id.as_deref(),
        Some("user_1")
    );
    // Headers as the HTTP door sees them.
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", "svc-key-0123456789abcdef".parse().unwrap());
    let input = a.input_from_headers(&headers);
    assert_eq!(
        a.authenticate_now(&input).unwrap().user_id.as_deref(),
        Some("billing-service")
    );
    // Without configured keys, the header is ignored (it may be the upstream's business).
    let plain = s::build(&s::config(s::static_issuer("jwks.json")), s::clock());
    assert_eq!(plain.authenticate_now(&key), Err(AuthError::MissingToken));
}

#[test]
fn descriptions_never_echo_token_content() {
    let a = s::build(&s::config(s::static_issuer("jwks.json")), s::clock());
    let m = s::manifest();
    for f in m.tokens.iter().filter(|f| f.expect != "ok") {
        let e = outcome(&a, &f.token).unwrap_err();
        let d = e.description();
        for part in f.token.split('.').filter(|p| p.len() >= 8) {
            assert!(!d.contains(part), "{}: {d}", f.name);
        }
        for kid in m.kids.values() {
            assert!(!d.contains(kid.as_str()), "{}: {d}", f.name);
        }
        assert!(
            !d.contains("user_") && !d.contains("evil"),
            "{}: {d}",
            f.name
        );
    }
}

#[tokio::test]
async fn async_and_header_entry_points_agree() {
    let a = s::build(&s::config(s::static_issuer("jwks.json")), s::clock());
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {}", s::token("es512")).parse().unwrap(),
    );
    let id = a.authenticate_headers(&headers).await.unwrap();
    assert_eq!(id.user_id.as_deref(), Some("user_es512"));
    let bare = s::token("ps256");
    let id = a.authenticate(&AuthInput::bearer(&bare)).await.unwrap();
    assert_eq!(id.user_id.as_deref(), Some("user_ps256"));
}
