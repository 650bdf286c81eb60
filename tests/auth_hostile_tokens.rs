//! Garbage and forged tokens at full speed: none is ever cached as valid, each is still
//! refused after the flood, and the cheap checks (size, shape, algorithm, issuer, key by
//! `kid`) refuse them before any signature is checked — observed through the authenticator's
//! count of signature checks (`AuthOutcomes::signature_checks`). The latency a flood costs
//! valid users is measured by benches/hostile_tokens.sh.

mod auth_support;

use std::sync::atomic::Ordering;

use auth_support as s;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use tollgate::auth::{AuthError, Authenticator, MAX_TOKEN_BYTES};

/// A small xorshift generator: the flood needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn outcome(a: &Authenticator, token: &str) -> Result<(), AuthError> {
    let h = s::header(token);
    a.authenticate_now(&s::input(&h)).map(|_| ())
}

fn signature_checks(a: &Authenticator) -> u64 {
    a.outcomes.signature_checks.load(Ordering::Relaxed)
}

/// Tokens every cheap check refuses before a signature is looked at: random bytes, wrong
/// shapes, bad base64, headers that are not JSON, an algorithm the issuer does not allow, an
/// unknown issuer, a random `kid`, oversize.
fn garbage_and_cheap_forgeries(rng: &mut Rng, valid: &str, n: usize) -> Vec<String> {
    let mut parts = valid.split('.');
    let (header, claims) = (parts.next().unwrap(), parts.next().unwrap());
    let claims_json: serde_json::Value =
        serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap();
    (0..n)
        .map(|i| {
            let sig = B64.encode(rng.bytes(64));
            match i % 9 {
                0 => B64.encode(rng.bytes(16 + (i % 200))),
                1 => format!(
                    "{}.{}",
                    B64.encode(rng.bytes(12)),
                    B64.encode(rng.bytes(40))
                ),
                2 => format!("{header}.{claims}.{sig}.{sig}"),
                3 => format!("{header}.!!not-base64!!.{sig}"),
                4 => format!("{}.{claims}.{sig}", B64.encode(rng.bytes(30))),
                // Well formed, a random kid the issuer never published.
                5 => {
                    let h = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"k{:x}"}}"#, rng.next());
                    format!("{}.{claims}.{sig}", B64.encode(h))
                }
                // Well formed, an issuer nobody configured.
                6 => {
                    let mut c = claims_json.clone();
                    c["iss"] = format!("https://forged-{:x}.example", rng.next()).into();
                    format!("{header}.{}.{sig}", B64.encode(c.to_string()))
                }
                // Well formed, `alg: none`.
                7 => {
                    let h = r#"{"alg":"none","typ":"JWT"}"#;
                    format!("{}.{claims}.", B64.encode(h))
                }
                _ => "A".repeat(MAX_TOKEN_BYTES + 1 + i % 100),
            }
        })
        .collect()
}

/// Well formed in every way, the issuer's real `kid`, and a signature of random bytes: only
/// the signature check can refuse these.
fn forged_signatures(rng: &mut Rng, valid: &str, n: usize) -> Vec<String> {
    let (signed, _) = valid.rsplit_once('.').unwrap();
    (0..n)
        .map(|_| format!("{signed}.{}", B64.encode(rng.bytes(64))))
        .collect()
}

#[test]
fn cheap_checks_refuse_garbage_and_forgeries_before_any_signature_check() {
    let cfg = s::config(s::static_issuer("jwks.json"));
    let a = s::build(&cfg, s::clock());
    let valid = s::token("eddsa_better_auth");
    let mut rng = Rng(0x0bad_5eed);
    let flood = garbage_and_cheap_forgeries(&mut rng, &valid, 20_000);
    for t in &flood {
        assert!(outcome(&a, t).is_err(), "a garbage token was admitted");
    }
    assert_eq!(
        signature_checks(&a),
        0,
        "a token refused by a cheap check had its signature checked"
    );
    assert_eq!(a.cache().len(), 0, "a refused token was cached");
    assert_eq!(a.cache().stats.inserts.load(Ordering::Relaxed), 0);
    // Still refused after the flood, still without a signature check.
    for t in &flood {
        assert!(outcome(&a, t).is_err(), "admitted after the flood");
    }
    assert_eq!(signature_checks(&a), 0);
    assert_eq!(a.cache().len(), 0);
}

#[test]
fn a_forged_signature_is_checked_every_time_and_never_cached() {
    let cfg = s::config(s::static_issuer("jwks.json"));
    let a = s::build(&cfg, s::clock());
    let valid = s::token("eddsa_better_auth");
    let mut rng = Rng(0xf0f0_1234);
    let forged = forged_signatures(&mut rng, &valid, 2_000);
    for t in &forged {
        assert_eq!(outcome(&a, t), Err(AuthError::BadSignature));
    }
    assert_eq!(
        signature_checks(&a),
        2_000,
        "one signature check per forgery"
    );
    assert_eq!(a.cache().len(), 0, "a forgery was cached");
    // Refused again: not answered from memory, checked again.
    for t in &forged {
        assert_eq!(outcome(&a, t), Err(AuthError::BadSignature));
    }
    assert_eq!(signature_checks(&a), 4_000);
    assert_eq!(a.cache().len(), 0);
    assert_eq!(a.cache().stats.inserts.load(Ordering::Relaxed), 0);

    // The valid token is unaffected: verified once, then answered from the cache.
    assert_eq!(outcome(&a, &valid), Ok(()));
    assert_eq!(signature_checks(&a), 4_001);
    assert_eq!(a.cache().len(), 1);
    assert_eq!(outcome(&a, &valid), Ok(()));
    assert_eq!(
        signature_checks(&a),
        4_001,
        "the second time comes from the cache"
    );
    // And the forgeries of it are still refused, with its entry in the cache.
    for t in forged.iter().take(100) {
        assert_eq!(outcome(&a, t), Err(AuthError::BadSignature));
    }
    assert_eq!(a.cache().len(), 1);
}
