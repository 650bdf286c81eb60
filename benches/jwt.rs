//! JWT verification cost per algorithm, and a verified-token cache hit, through the same
//! `Authenticator::authenticate_now` call the front doors make, on the PyJWT-made fixtures in
//! `tests/tokens/`.
//!
//! `cargo bench --bench jwt`. Rows (group `jwt`):
//! - `verify/<alg>`: a cache miss: parse, key lookup, signature, claims, identity (cache off).
//! - `signature_only/EdDSA`: just the Ed25519 signature check, to show what the rest costs.
//! - `signature_only/EdDSA_awslc_preparsed`: the same check on a key aws-lc parsed once,
//!   without `jsonwebtoken` (a reference: would hand-writing it pay?).
//! - `cache_hit`: the same EdDSA token answered from the cache (HMAC fingerprint, lookup,
//!   expiry and revocation checks).
//! - `cache_fingerprint`: the HMAC-SHA256 of the token alone, the bulk of a hit.
//! - `cache_hit_10k_revocations`: the same with 10,000 jti and 10,000 subject revocations.
//!
//! The last line printed is one JSON object read from criterion's estimates:
//! `{"eddsa_verify_ns":…, "cache_hit_ns":…, "ratio":…}` (medians; target ratio ≥ 50).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::Criterion;
use serde_json::Value;
use tollgate::auth::verify::parse_token;
use tollgate::auth::{AuthInput, Authenticator};
use tollgate::clock::{Clock, ManualClock};
use tollgate::config::auth::IssuerConfig;
use tollgate::config::AuthConfig;

const HS256_ENV: &str = "TOLLGATE_BENCH_HS256";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tokens")
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("tokens.json")).unwrap()).unwrap()
}

fn token(m: &Value, name: &str) -> String {
    m["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn authenticator(cache_capacity: usize, clock: Arc<ManualClock>) -> Authenticator {
    let m = manifest();
    let mut ba = IssuerConfig::new("better-auth");
    ba.issuer = Some(m["issuer"].as_str().unwrap().into());
    ba.audiences = vec![m["audience"].as_str().unwrap().into()];
    ba.jwks_file = Some(fixtures().join("jwks.json"));
    let mut hs = IssuerConfig::new("fastapi");
    hs.hs256_secret_env = Some(HS256_ENV.into());
    let mut cfg = AuthConfig {
        issuers: vec![ba, hs],
        ..AuthConfig::default()
    };
    cfg.cache.capacity = cache_capacity;
    let secret = std::fs::read_to_string(fixtures().join("hs256_secret.txt")).unwrap();
    let env = move |v: &str| (v == HS256_ENV).then(|| secret.clone());
    Authenticator::from_config_with(&cfg, clock, &env, None).unwrap()
}

fn bench(c: &mut Criterion) {
    let m = manifest();
    let clock = Arc::new(ManualClock::new(
        (m["generated_at"].as_u64().unwrap() + 60) * 1000,
    ));
    let mut g = c.benchmark_group("jwt");

    let uncached = authenticator(0, clock.clone());
    for (alg, name) in [
        ("EdDSA", "eddsa_better_auth"),
        ("ES256", "es256"),
        ("ES512", "es512"),
        ("RS256", "rs256"),
        ("PS256", "ps256"),
        ("HS256", "hs256"),
    ] {
        let h = format!("Bearer {}", token(&m, name)).into_bytes();
        let input = AuthInput {
            authorization: Some(&h),
            api_key: None,
            ..AuthInput::default()
        };
        assert!(uncached.authenticate_now(&input).is_ok(), "{name} verifies");
        g.bench_function(format!("verify/{alg}"), |b| {
            b.iter(|| black_box(uncached.authenticate_now(black_box(&input)).is_ok()))
        });
    }

    let eddsa = token(&m, "eddsa_better_auth");
    let set = tollgate::auth::KeySet::from_file(&fixtures().join("jwks.json")).unwrap();
    let p = parse_token(&eddsa).unwrap();
    let key = set.candidates(p.kid.as_deref(), p.alg).unwrap()[0];
    assert!(key.verify(p.alg, p.signing_input.as_bytes(), p.signature_b64));
    g.bench_function("signature_only/EdDSA", |b| {
        b.iter(|| {
            black_box(key.verify(
                p.alg,
                black_box(p.signing_input.as_bytes()),
                black_box(p.signature_b64),
            ))
        })
    });

    // Reference: the same check with a key aws-lc parsed once, without jsonwebtoken, to see
    // whether hand-writing the signature path would pay.
    let jwks: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("jwks.json")).unwrap()).unwrap();
    let x = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == p.kid.as_deref())
        .unwrap()["x"]
        .as_str()
        .unwrap()
        .to_string();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ED25519,
        base64::Engine::decode(&b64, &x).unwrap(),
    )
    .unwrap();
    g.bench_function("signature_only/EdDSA_awslc_preparsed", |b| {
        b.iter(|| {
            let sig = base64::Engine::decode(&b64, black_box(p.signature_b64)).unwrap();
            black_box(
                parsed
                    .verify_sig(black_box(p.signing_input.as_bytes()), &sig)
                    .is_ok(),
            )
        })
    });

    let h = format!("Bearer {eddsa}").into_bytes();
    let input = AuthInput {
        authorization: Some(&h),
        api_key: None,
        ..AuthInput::default()
    };
    let cached = authenticator(100_000, clock.clone());
    assert!(cached.authenticate_now(&input).is_ok());
    g.bench_function("cache_fingerprint", |b| {
        b.iter(|| black_box(cached.cache().fingerprint(black_box(eddsa.as_bytes()))))
    });
    g.bench_function("cache_hit", |b| {
        b.iter(|| black_box(cached.authenticate_now(black_box(&input)).is_ok()))
    });

    let now = clock.now_secs() as i64;
    for i in 0..10_000 {
        let r = cached.revocations();
        r.revoke_jti(&format!("jti-{i}"), now + 3600).unwrap();
        r.revoke_subject(&format!("user-{i}"), now).unwrap();
    }
    assert!(cached.authenticate_now(&input).is_ok());
    g.bench_function("cache_hit_10k_revocations", |b| {
        b.iter(|| black_box(cached.authenticate_now(black_box(&input)).is_ok()))
    });
    g.finish();
}

/// Median (ns) of one row, from criterion's output directory.
fn median_ns(id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion")
        .join("jwt")
        .join(id)
        .join("new/estimates.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn main() {
    let mut c = Criterion::default()
        .measurement_time(std::time::Duration::from_secs(4))
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
    if let (Some(v), Some(h)) = (median_ns("verify_EdDSA"), median_ns("cache_hit")) {
        println!(
            "{{\"eddsa_verify_ns\":{v:.0},\"cache_hit_ns\":{h:.1},\"ratio\":{:.1}}}",
            v / h
        );
    }
}
