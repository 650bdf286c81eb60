//! The examples of RFC 7515 (appendix A.1 HS256, A.2 RS256, A.3 ES256) through tollgate's whole
//! token verification with an injected clock, RFC 8037's Ed25519 example (A.4/A.5) at the
//! signature layer, and the checks every verifier owes: an HS256 token keyed with an issuer's
//! public key is refused, `exp == now` is expired, claims that are not UTF-8 are refused.
//!
//! The RFC keys are typed in from the RFC text. The RFC tokens carry no subject, so these
//! issuers take the user id from `iss` (`[auth.claims] user_id = ["iss"]`).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use tollgate::auth::{Alg, AuthError, AuthInput, Authenticator, KeySet};
use tollgate::clock::ManualClock;
use tollgate::config::auth::IssuerConfig;
use tollgate::config::AuthConfig;

/// RFC 7515 A.1–A.3's payload: `{"iss":"joe",\r\n "exp":1300819380,\r\n "http://example.com/is_root":true}`.
const RFC7515_PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const RFC7515_EXP: u64 = 1_300_819_380;

/// A.1: the HMAC key as a JWK `k`, and the token.
const A1_K: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
const A1_HEADER: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9";
const A1_SIG: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A.2: the RSA public key and the token's header and signature.
const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx\
HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs\
D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH\
SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV\
MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8\
NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
const A2_HEADER: &str = "eyJhbGciOiJSUzI1NiJ9";
const A2_SIG: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7\
AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4\
BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K\
0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv\
hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB\
p0igcN_IoypGlUPQGe77Rw";

/// A.3: the P-256 public key and the token's header and signature.
const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const A3_HEADER: &str = "eyJhbGciOiJFUzI1NiJ9";
const A3_SIG: &str = "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSA\
pmWQxfKTUJqPP3-Kg6NU1Q";

/// RFC 8037 A.4/A.5: the Ed25519 public key, the signing input and the signature.
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const RFC8037_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
const RFC8037_SIG: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

const SECRET_ENV: &str = "RFC_HS256_SECRET";

fn rsa_jwk() -> Value {
    json!({"kty": "RSA", "n": A2_N, "e": "AQAB"})
}

fn p256_jwk() -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y})
}

fn token(header: &str, payload: &str, sig: &str) -> String {
    format!("{header}.{payload}.{sig}")
}

/// An `[auth]` with one issuer of `iss` "joe" whose user id is read from `iss`.
fn config(mut issuer: IssuerConfig, leeway: &str) -> AuthConfig {
    issuer.issuer = Some("joe".into());
    issuer.leeway = leeway.into();
    let mut cfg = AuthConfig {
        issuers: vec![issuer],
        ..AuthConfig::default()
    };
    cfg.claims.user_id = vec!["iss".into()];
    cfg
}

/// An issuer reading `keys` from a JWKS file (kept alive by the returned guard).
fn key_file_issuer(keys: &[Value]) -> (IssuerConfig, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), json!({ "keys": keys }).to_string()).unwrap();
    let mut ic = IssuerConfig::new("rfc");
    ic.jwks_file = Some(file.path().to_path_buf());
    (ic, file)
}

/// An issuer with the HS256 secret in `SECRET_ENV`, held in `encoding`.
fn secret_issuer(encoding: &str) -> IssuerConfig {
    let mut ic = IssuerConfig::new("rfc");
    ic.hs256_secret_env = Some(SECRET_ENV.into());
    ic.hs256_secret_encoding = Some(encoding.into());
    ic
}

fn build(cfg: &AuthConfig, secret: &str, now_ms: u64) -> (Authenticator, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(now_ms));
    let secret = secret.to_string();
    let env = move |v: &str| (v == SECRET_ENV).then(|| secret.clone());
    let a = Authenticator::from_config_with(cfg, clock.clone(), &env, None)
        .expect("authenticator builds");
    (a, clock)
}

fn verify(a: &Authenticator, token: &str) -> Result<Arc<tollgate::auth::Identity>, AuthError> {
    a.authenticate_now(&AuthInput::bearer(token))
}

/// One minute before the RFC tokens' `exp`.
const BEFORE_EXP_MS: u64 = (RFC7515_EXP - 60) * 1000;

fn assert_joe(r: Result<Arc<tollgate::auth::Identity>, AuthError>, what: &str) {
    let id = r.unwrap_or_else(|e| panic!("{what}: refused: {e:?}"));
    assert_eq!(id.user_id.as_deref(), Some("joe"), "{what}");
    assert_eq!(id.token.as_ref().unwrap().exp, RFC7515_EXP as i64, "{what}");
}

#[test]
fn rfc7515_a1_hs256_token_verifies_with_the_jwk_secret_given_in_base64url() {
    let t = token(A1_HEADER, RFC7515_PAYLOAD, A1_SIG);
    // The RFC's key is 64 random bytes, not text: it is configured as its JWK `k`.
    let (a, _) = build(
        &config(secret_issuer("base64url"), "0s"),
        A1_K,
        BEFORE_EXP_MS,
    );
    assert_joe(verify(&a, &t), "A.1");
    // Read as text, the same variable is another key (the bytes of the base64url string).
    let (text, _) = build(&config(secret_issuer("text"), "0s"), A1_K, BEFORE_EXP_MS);
    assert_eq!(verify(&text, &t).unwrap_err(), AuthError::BadSignature);
    // Padding and surrounding whitespace in the variable do not change the key.
    let padded = format!(" {A1_K}==\n");
    let (a, _) = build(
        &config(secret_issuer("base64url"), "0s"),
        &padded,
        BEFORE_EXP_MS,
    );
    assert_joe(verify(&a, &t), "A.1 with padding");
}

#[test]
fn an_hs256_secret_in_base64url_must_decode_to_32_bytes() {
    // 43 characters of text pass the text length check, but decode to 31 bytes.
    let short = URL_SAFE_NO_PAD.encode([7u8; 31]);
    assert!(short.len() >= 32);
    let cfg = config(secret_issuer("base64url"), "0s");
    let clock = Arc::new(ManualClock::new(0));
    let env = |_: &str| Some(short.clone());
    let e = Authenticator::from_config_with(&cfg, clock.clone(), &env, None).unwrap_err();
    assert!(e.contains("decodes to 31 bytes"), "{e}");
    assert!(!e.contains(&short), "the secret is never shown: {e}");
    let env = |_: &str| Some("not base64url!".repeat(4));
    let e = Authenticator::from_config_with(&cfg, clock.clone(), &env, None).unwrap_err();
    assert!(e.contains("is not base64url"), "{e}");
    // An encoding tollgate does not know is a configuration error.
    let cfg = config(secret_issuer("hex"), "0s");
    let env = |_: &str| Some("x".repeat(64));
    let e = Authenticator::from_config_with(&cfg, clock, &env, None).unwrap_err();
    assert!(e.contains("hs256_secret_encoding"), "{e}");
}

#[test]
fn rfc7515_a2_rs256_and_a3_es256_tokens_verify_through_a_key_file() {
    let (ic, _f) = key_file_issuer(&[rsa_jwk()]);
    let (a, _) = build(&config(ic, "0s"), "", BEFORE_EXP_MS);
    assert_joe(
        verify(&a, &token(A2_HEADER, RFC7515_PAYLOAD, A2_SIG)),
        "A.2",
    );

    let (ic, _f) = key_file_issuer(&[p256_jwk()]);
    let (a, _) = build(&config(ic, "0s"), "", BEFORE_EXP_MS);
    assert_joe(
        verify(&a, &token(A3_HEADER, RFC7515_PAYLOAD, A3_SIG)),
        "A.3",
    );

    // Both keys in one set, no kid: each token finds its key by type.
    let (ic, _f) = key_file_issuer(&[rsa_jwk(), p256_jwk()]);
    let (a, _) = build(&config(ic, "0s"), "", BEFORE_EXP_MS);
    assert_joe(
        verify(&a, &token(A2_HEADER, RFC7515_PAYLOAD, A2_SIG)),
        "A.2, two keys",
    );
    assert_joe(
        verify(&a, &token(A3_HEADER, RFC7515_PAYLOAD, A3_SIG)),
        "A.3, two keys",
    );
    // One changed byte of the signature: refused.
    let mut bad = A3_SIG.to_string();
    bad.replace_range(0..1, "E");
    assert_eq!(
        verify(&a, &token(A3_HEADER, RFC7515_PAYLOAD, &bad)).unwrap_err(),
        AuthError::BadSignature
    );
}

#[test]
fn rfc7515_tokens_expire_at_exp_with_no_leeway_and_at_exp_plus_leeway_otherwise() {
    let t = token(A3_HEADER, RFC7515_PAYLOAD, A3_SIG);
    let exp_ms = RFC7515_EXP * 1000;
    let (ic, _f) = key_file_issuer(&[p256_jwk()]);
    // leeway 0: valid until the millisecond before exp; `exp == now` is expired.
    let (a, _) = build(&config(ic.clone(), "0s"), "", exp_ms - 1);
    assert_joe(verify(&a, &t), "1 ms before exp");
    let (a, _) = build(&config(ic.clone(), "0s"), "", exp_ms);
    assert_eq!(
        verify(&a, &t).unwrap_err(),
        AuthError::Expired,
        "exp == now"
    );
    // With a leeway of 30 s the same rule applies at exp + 30 s.
    let (a, _) = build(&config(ic.clone(), "30s"), "", exp_ms + 29_999);
    assert_joe(verify(&a, &t), "within the leeway");
    let (a, _) = build(&config(ic, "30s"), "", exp_ms + 30_000);
    assert_eq!(
        verify(&a, &t).unwrap_err(),
        AuthError::Expired,
        "exp + leeway == now"
    );
}

#[test]
fn a_cached_token_is_expired_from_exp_on_too() {
    let t = token(A3_HEADER, RFC7515_PAYLOAD, A3_SIG);
    let exp_ms = RFC7515_EXP * 1000;
    let (ic, _f) = key_file_issuer(&[p256_jwk()]);
    let (a, clock) = build(&config(ic, "0s"), "", exp_ms - 1);
    assert_joe(verify(&a, &t), "verified and cached");
    clock.set_millis(exp_ms);
    assert_eq!(
        verify(&a, &t).unwrap_err(),
        AuthError::Expired,
        "from the cache"
    );
}

#[test]
fn rfc8037_ed25519_example_verifies_at_the_signature_layer() {
    let doc = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X, "kid": "a4"}]});
    let set = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
    let key = set.candidates(Some("a4"), Alg::EdDSA).unwrap()[0];
    assert!(key.verify(Alg::EdDSA, RFC8037_INPUT.as_bytes(), RFC8037_SIG));
    // A.5 is the same check; a changed input or another algorithm is refused.
    let mut other = RFC8037_INPUT.as_bytes().to_vec();
    *other.last_mut().unwrap() ^= 1;
    assert!(!key.verify(Alg::EdDSA, &other, RFC8037_SIG));
    assert!(!key.verify(Alg::ES256, RFC8037_INPUT.as_bytes(), RFC8037_SIG));
}

fn hs256(secret: &[u8], signing_input: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, signing_input.as_bytes()).as_ref())
}

fn b64_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn hs256_tokens_keyed_with_an_issuers_public_key_are_refused() {
    let claims = b64_json(&json!({"iss": "joe", "exp": RFC7515_EXP}));
    let header = b64_json(&json!({"alg": "HS256", "typ": "JWT"}));
    let input = format!("{header}.{claims}");
    let rsa_doc = json!({"keys": [rsa_jwk()]}).to_string();
    let ec_doc = json!({"keys": [p256_jwk()]}).to_string();
    let n = URL_SAFE_NO_PAD.decode(A2_N).unwrap();
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(A3_X).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(A3_Y).unwrap());
    // Every form a public key is published in, as an HMAC secret.
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("RSA JWKS document", rsa_doc.clone().into_bytes()),
        ("RSA JWK", rsa_jwk().to_string().into_bytes()),
        ("RSA modulus", n),
        ("RSA n as text", A2_N.as_bytes().to_vec()),
        ("EC JWKS document", ec_doc.clone().into_bytes()),
        ("EC JWK", p256_jwk().to_string().into_bytes()),
        ("EC point", point),
    ];
    for (doc, jwk, alg) in [
        (&rsa_doc, rsa_jwk(), Alg::RS256),
        (&ec_doc, p256_jwk(), Alg::ES256),
    ] {
        let (ic, _f) = key_file_issuer(&[jwk]);
        let (a, _) = build(&config(ic, "0s"), "", BEFORE_EXP_MS);
        for (what, secret) in &secrets {
            let t = format!("{input}.{}", hs256(secret, &input));
            assert_eq!(
                verify(&a, &t).unwrap_err(),
                AuthError::AlgorithmNotAllowed,
                "{what} against a key set"
            );
        }
        // At the signature layer too: a public key never checks an HMAC.
        let set = KeySet::from_jwks(doc.as_bytes()).unwrap();
        let key = set.candidates(None, alg).unwrap()[0];
        for (what, secret) in &secrets {
            assert!(
                !key.verify(Alg::HS256, input.as_bytes(), &hs256(secret, &input)),
                "{what}: a public key verified an HMAC"
            );
        }
    }
    // And the configuration refuses HS256 on a key set outright.
    let (mut ic, _f) = key_file_issuer(&[rsa_jwk()]);
    ic.algorithms = vec!["RS256".into(), "HS256".into()];
    let cfg = config(ic, "0s");
    let clock = Arc::new(ManualClock::new(0));
    let e = Authenticator::from_config_with(&cfg, clock, &|_| None, None).unwrap_err();
    assert!(e.contains("HS256 needs hs256_secret_env"), "{e}");
}

#[test]
fn claims_that_are_not_utf8_are_refused() {
    let secret = "s".repeat(32);
    let (a, _) = build(&config(secret_issuer("text"), "0s"), &secret, BEFORE_EXP_MS);
    let header = b64_json(&json!({"alg": "HS256"}));
    let signed = |payload: &[u8]| {
        let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        format!("{input}.{}", hs256(secret.as_bytes(), &input))
    };
    // The well-formed token verifies, so each refusal below is the bytes' doing.
    let good = format!(r#"{{"iss":"joe","exp":{RFC7515_EXP},"name":"ok"}}"#);
    assert_joe(verify(&a, &signed(good.as_bytes())), "UTF-8 claims");
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (
            "0xff in a string",
            raw(br#"{"iss":"joe","exp":EXP,"name":"a"#, b"\xff", br#""}"#),
        ),
        (
            "overlong encoding",
            raw(br#"{"iss":"joe","exp":EXP,"name":""#, b"\xc0\xaf", br#""}"#),
        ),
        (
            "encoded surrogate",
            raw(
                br#"{"iss":"joe","exp":EXP,"name":""#,
                b"\xed\xa0\x80",
                br#""}"#,
            ),
        ),
        (
            "truncated sequence",
            raw(br#"{"iss":"joe","exp":EXP,"name":""#, b"\xe2\x82", br#""}"#),
        ),
        (
            "0xfe in a key",
            raw(br#"{"iss":"joe","exp":EXP,""#, b"\xfe", br#"":1}"#),
        ),
        (
            "latin-1 byte in the subject",
            raw(br#"{"iss":"jo"#, b"\xe9", br#"","exp":EXP}"#),
        ),
        (
            "lone surrogate escape",
            raw(br#"{"iss":"joe","exp":EXP,"name":"\ud800"}"#, b"", b""),
        ),
    ];
    for (what, payload) in bad {
        match verify(&a, &signed(&payload)) {
            Err(AuthError::Malformed(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// `prefix ‖ bytes ‖ suffix`, with `EXP` in them replaced by the RFC tokens' `exp`.
fn raw(prefix: &[u8], bytes: &[u8], suffix: &[u8]) -> Vec<u8> {
    let exp = RFC7515_EXP.to_string();
    let mut out = Vec::new();
    for part in [prefix, bytes, suffix] {
        let mut i = 0;
        while i < part.len() {
            if part[i..].starts_with(b"EXP") {
                out.extend_from_slice(exp.as_bytes());
                i += 3;
            } else {
                out.push(part[i]);
                i += 1;
            }
        }
    }
    out
}
