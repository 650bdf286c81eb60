//! Fuzz body: the JWKS document reader and each JWK (`tollgate::auth::KeySet::from_jwks`,
//! `tollgate::auth::jwks::VerifyingKey::from_jwk`).
//!
//! Invariants checked, beyond "never panics":
//! - a set is accepted only from a JSON object with a `keys` array; it holds 1 to
//!   `MAX_KEYS` keys, and keys plus skipped entries are exactly the array's entries;
//! - every key kept is one `from_jwk` accepts on its own; its algorithms are not empty and
//!   fit its `kty`/`crv` (`OKP`/`Ed25519` → EdDSA, `EC`/`P-256` → ES256, `EC`/`P-521` →
//!   ES512, `RSA` → RS256 and PS256), exactly its `alg` when it declares one; a key with a
//!   `use` other than `sig`, or of type `oct`, is never kept;
//! - kids are unique: each kept kid names exactly its key (`candidates`), and a token
//!   without a kid is tried against at most 4 keys, all of its algorithm;
//! - reading the same bytes twice gives the same set (same size, skips, kids and keys,
//!   `keeps_every_key_of` both ways), and the same answer for every JWK;
//! - a kept key never verifies under an algorithm outside its set, and checks a signature
//!   made of fuzzed bytes without panicking.

use serde_json::Value;
use tollgate::auth::jwks::{VerifyingKey, MAX_KEYS};
use tollgate::auth::{Alg, AlgSet, KeySet};

/// Remote documents are bounded by `max_jwks_bytes` before parsing; this bounds fuzz time.
const MAX_DOC: usize = 1 << 16;

pub fn run(data: &[u8]) {
    if data.len() > MAX_DOC {
        return;
    }
    let set = KeySet::from_jwks(data);
    let again = KeySet::from_jwks(data);
    let entries: Option<Vec<Value>> = serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.get("keys").and_then(Value::as_array).cloned());
    match (&set, &again) {
        (Ok(set), Ok(again)) => {
            let entries = entries.expect("an accepted set has a keys array");
            assert!((1..=MAX_KEYS).contains(&set.len()));
            assert_eq!(set.len() + set.skipped, entries.len());
            assert_eq!((set.len(), set.skipped), (again.len(), again.skipped));
            assert!(set.keeps_every_key_of(again) && again.keeps_every_key_of(set));
            check_keys(set, &entries, data);
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b, "deterministic");
            // Refused: no keys array, or not one usable key in it.
            if let Some(entries) = entries {
                let usable = entries
                    .iter()
                    .filter(|j| matches!(VerifyingKey::from_jwk(j), Ok(Some(_))))
                    .count();
                assert_eq!(usable, 0, "a set with a usable key was refused: {a}");
            }
        }
        _ => panic!("the same document read two ways"),
    }
}

/// The algorithms a key of this JWK's type and curve may verify.
fn family(jwk: &Value) -> AlgSet {
    let s = |n: &str| jwk.get(n).and_then(Value::as_str);
    match (s("kty"), s("crv")) {
        (Some("OKP"), Some("Ed25519")) => AlgSet::of(&[Alg::EdDSA]),
        (Some("EC"), Some("P-256")) => AlgSet::of(&[Alg::ES256]),
        (Some("EC"), Some("P-521")) => AlgSet::of(&[Alg::ES512]),
        (Some("RSA"), None) => AlgSet::of(&[Alg::RS256, Alg::PS256]),
        _ => AlgSet::EMPTY,
    }
}

fn check_keys(set: &KeySet, entries: &[Value], data: &[u8]) {
    let mut kept = 0;
    let mut kids = std::collections::HashSet::new();
    for jwk in entries {
        let one = VerifyingKey::from_jwk(jwk);
        let twice = VerifyingKey::from_jwk(jwk);
        assert_eq!(
            one.as_ref()
                .map(|k| k.as_ref().map(|k| (k.kid.clone(), k.algs()))),
            twice
                .as_ref()
                .map(|k| k.as_ref().map(|k| (k.kid.clone(), k.algs()))),
            "deterministic"
        );
        let Ok(Some(key)) = one else { continue };
        let s = |n: &str| jwk.get(n).and_then(Value::as_str);
        assert!(
            s("use").map_or(true, |u| u == "sig"),
            "a key not for signatures"
        );
        assert_ne!(s("kty"), Some("oct"), "a secret from a key set");
        let fam = family(jwk);
        assert!(!key.algs().is_empty());
        assert_eq!(key.algs().intersect(fam), key.algs(), "algs fit kty/crv");
        if let Some(alg) = s("alg") {
            let alg = Alg::from_jose(alg).expect("a kept key declares a known alg");
            assert_eq!(key.algs(), AlgSet::of(&[alg]));
        }
        for alg in Alg::ALL {
            let sig = sig_of(data, alg);
            let verified = key.verify(alg, data, &sig);
            assert!(
                !verified || key.algs().contains(alg),
                "alg pinned to the key"
            );
        }
        // Kept by the set unless it holds MAX_KEYS already or an earlier key took its kid.
        if kept < MAX_KEYS && key.kid.as_ref().map_or(true, |k| kids.insert(k.clone())) {
            kept += 1;
        }
        if let Some(kid) = key.kid.as_ref().filter(|k| kids.contains(*k)) {
            assert!(set.contains_kid(kid));
            for alg in Alg::ALL {
                let c = set.candidates(Some(kid), alg).expect("a known kid");
                assert_eq!(c.len(), 1);
                assert_eq!(c[0].kid.as_deref(), Some(kid.as_str()));
            }
        }
    }
    assert_eq!(kept, set.len(), "the set keeps exactly the usable keys");
    for alg in Alg::ALL {
        let c = set
            .candidates(None, alg)
            .expect("without a kid, never unknown");
        assert!(c.len() <= 4);
        assert!(c.iter().all(|k| k.algs().contains(alg)));
    }
}

/// A base64url "signature" of the right size for `alg`, made of the input's bytes.
fn sig_of(data: &[u8], alg: Alg) -> String {
    use base64::Engine;
    let len = match alg {
        Alg::EdDSA | Alg::ES256 => 64,
        Alg::ES512 => 132,
        Alg::RS256 | Alg::PS256 => 256,
        Alg::HS256 => 32,
    };
    let bytes: Vec<u8> = data.iter().copied().cycle().take(len).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
