//! Fuzz body: reading and verifying a bearer token (`tollgate::auth::read_token`, the
//! compact-JWS parser, the claim rules and `Authenticator::authenticate_now`).
//!
//! A fresh authenticator per input, with two HS256 issuers (fixed secrets, one matched by
//! `iss`, one taking tokens without `iss`), an in-memory revocation store and a manual clock
//! fixed at `NOW_MS`. The input: `H` then an `Authorization` value, `V` then a RESP `VERIFY`
//! argument, anything else a bare token. Invariants checked, beyond "never panics":
//! - a token is accepted only with a signature that is the HMAC-SHA256 of its first two
//!   parts under the secret of the issuer the identity names (computed here with `ring`,
//!   compared byte for byte after strict base64url decoding), from an issuer whose `iss`
//!   it carries (or none, for the issuer without `iss`), with `alg` HS256, an audience the
//!   issuer accepts and `exp` (plus leeway) after the clock: fuzzed bytes are only ever
//!   accepted when they are a seed signed with the key, or derived from one without
//!   touching what is signed;
//! - a refusal's reason is one of the stable reasons, its detail one of the known labels,
//!   and its description quotable (no `"` or `\`) and free of the token (checked for
//!   tokens with a `.`, since the fixed sentences have none);
//! - what [`read_token`] says first holds: no token is `missing_token` (no API keys are
//!   configured), an unreadable one is refused with `read_token`'s own error;
//! - verifying the same bytes twice gives the same answer (the second from the token cache
//!   when the first was accepted), and an accepted token whose `jti` is then revoked is
//!   refused as `revoked`.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tollgate::auth::{read_token, AuthError, AuthInput, Authenticator};
use tollgate::clock::ManualClock;
use tollgate::config::auth::IssuerConfig;
use tollgate::config::AuthConfig;

/// The clock: 2025-06-15T15:06:40Z.
pub const NOW_MS: u64 = 1_750_000_000_000;
/// The issuer matched by `iss`, its `iss`, audience and secret.
pub const ISSUER: &str = "https://issuer.fuzz.example";
pub const AUDIENCE: &str = "tollgate";
pub const SECRET: &[u8] = b"tollgate fuzz hs256 secret, 32 bytes at least";
/// The issuer for tokens without `iss`, and its secret.
pub const LEGACY_SECRET: &[u8] = b"tollgate fuzz legacy hs256 secret (no iss)";

const REASONS: [&str; 6] = [
    "missing_token",
    "invalid_token",
    "expired",
    "revoked",
    "invalid_api_key",
    "keys_unavailable",
];
const DETAILS: [&str; 20] = [
    "missing_token",
    "too_large",
    "malformed",
    "alg_none",
    "unsupported_alg",
    "alg_not_allowed",
    "crit_header",
    "unknown_issuer",
    "unknown_kid",
    "bad_signature",
    "invalid_claim",
    "missing_claim",
    "wrong_audience",
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "bad_identity",
    "revoked",
    "invalid_api_key",
    "keys_unavailable",
];

fn config() -> AuthConfig {
    let mut main = IssuerConfig::new("fuzz");
    main.issuer = Some(ISSUER.into());
    main.audiences = vec![AUDIENCE.into()];
    main.hs256_secret_env = Some("FUZZ_SECRET".into());
    let mut legacy = IssuerConfig::new("legacy");
    legacy.hs256_secret_env = Some("FUZZ_LEGACY_SECRET".into());
    let mut c = AuthConfig {
        issuers: vec![main, legacy],
        ..AuthConfig::default()
    };
    c.cache.capacity = 64;
    c
}

/// The authenticator every input meets: fresh, so that inputs do not leak into each other.
pub fn authenticator() -> Authenticator {
    let env = |var: &str| match var {
        "FUZZ_SECRET" => Some(String::from_utf8(SECRET.to_vec()).unwrap()),
        "FUZZ_LEGACY_SECRET" => Some(String::from_utf8(LEGACY_SECRET.to_vec()).unwrap()),
        _ => None,
    };
    Authenticator::from_config_with(&config(), Arc::new(ManualClock::new(NOW_MS)), &env, None)
        .expect("the fuzz configuration is valid")
}

/// How the input is presented to the authenticator.
pub fn input_of(data: &[u8]) -> AuthInput<'_> {
    match data.split_first() {
        Some((b'H', header)) => AuthInput::authorization(header),
        Some((b'V', arg)) => AuthInput::token_or_authorization(arg),
        _ => AuthInput::bearer_bytes(data),
    }
}

pub fn run(data: &[u8]) {
    let auth = authenticator();
    let input = input_of(data);
    let read = read_token(&input);
    let first = auth.authenticate_now(&input);
    let second = auth.authenticate_now(&input);
    assert_eq!(first, second, "the same bytes, the same answer");
    match &read {
        None => assert_eq!(first, Err(AuthError::MissingToken)),
        Some(Err(e)) => assert_eq!(first.as_ref().err(), Some(e)),
        Some(Ok(_)) => {}
    }
    match first {
        Ok(id) => {
            let token = read
                .and_then(Result::ok)
                .expect("accepted: a token was read");
            check_accepted(token, &id);
            if let Some(claims) = &id.token {
                if let Some(jti) = &claims.jti {
                    if auth.revocations().revoke_jti(jti, claims.exp).is_ok() {
                        assert_eq!(auth.authenticate_now(&input), Err(AuthError::Revoked));
                    }
                }
            }
        }
        Err(e) => {
            assert!(REASONS.contains(&e.reason()), "{e:?}");
            assert!(DETAILS.contains(&e.detail()), "{e:?}");
            let d = e.description();
            assert!(!d.contains(['"', '\\']), "{d:?}");
            // The sentences hold no `.`: a token with one (any JWS) can only appear in one
            // if it was copied in. (A token without one may be a piece of a sentence.)
            if let Some(Ok(token)) = read {
                assert!(!token.contains('.') || !d.contains(token), "{d:?}");
            }
        }
    }
}

fn check_accepted(token: &str, id: &tollgate::auth::Identity) {
    let secret = match id.issuer.as_deref() {
        Some("fuzz") => SECRET,
        Some("legacy") => LEGACY_SECRET,
        other => panic!("accepted from issuer {other:?}"),
    };
    let (signing_input, sig) = token.rsplit_once('.').expect("three parts");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let expected = ring::hmac::sign(&key, signing_input.as_bytes());
    assert_eq!(
        URL_SAFE_NO_PAD.decode(sig).ok().as_deref(),
        Some(expected.as_ref()),
        "accepted without the key's signature"
    );
    let (header, payload) = signing_input.split_once('.').expect("three parts");
    let json = |part: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    };
    assert_eq!(json(header)["alg"], "HS256");
    let claims = json(payload);
    match id.issuer.as_deref() {
        Some("fuzz") => {
            assert_eq!(claims["iss"], ISSUER);
            let aud = &claims["aud"];
            assert!(
                aud == AUDIENCE
                    || aud
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == AUDIENCE)),
                "audience {aud}"
            );
        }
        _ => assert!(claims.get("iss").map_or(true, |v| v.is_null())),
    }
    let exp = claims["exp"].as_f64().expect("exp is a number");
    let leeway_ms = IssuerConfig::new("x").leeway().unwrap().as_millis() as f64;
    assert!(
        exp * 1000.0 + leeway_ms > NOW_MS as f64,
        "accepted after exp"
    );
}
