//! JWT verification: the compact-JWS parser, the algorithm set, and the per-issuer claim rules.
//!
//! The order is fixed and every step refuses early: size (≤ 8 KiB, before any decoding) →
//! three base64url parts → header (`alg`, `kid`, `crit`; `jwk`/`jku`/`x5u`/`x5c` are never
//! read, so key material or URLs inside a token can never be trusted or fetched) → payload
//! (a JSON object) → issuer by `iss` → key by `kid`, with the algorithm pinned to the key's
//! type → signature → time claims against the injected clock → audience and required claims.
//!
//! Signatures go through `jsonwebtoken` 11 with its aws-lc backend (the rust_crypto backend
//! measured 4–9× slower on ES256/RS256), except ES512 which that crate lacks and which goes to
//! aws-lc directly (see `jwks.rs`). Time claims are checked here rather than by
//! `jsonwebtoken::Validation`, because that reads the system clock and tollgate's tests move
//! time by hand; it also lets tollgate insist that NumericDate claims are JSON numbers.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::AuthError;

/// Largest bearer token looked at. Longer ones are refused before any parsing, so a 100 KiB
/// header cannot make tollgate decode or hash 100 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A signature algorithm tollgate verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    EdDSA,
    ES256,
    ES512,
    RS256,
    PS256,
    HS256,
}

impl Alg {
    pub const ALL: [Alg; 6] = [
        Alg::EdDSA,
        Alg::ES256,
        Alg::ES512,
        Alg::RS256,
        Alg::PS256,
        Alg::HS256,
    ];

    /// The JOSE name (`"EdDSA"`, `"ES256"`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::ES256 => "ES256",
            Alg::ES512 => "ES512",
            Alg::RS256 => "RS256",
            Alg::PS256 => "PS256",
            Alg::HS256 => "HS256",
        }
    }

    /// Parses a JOSE `alg`. `none` in any case is its own error: it is an attack, not a typo.
    pub fn from_jose(s: &str) -> Result<Alg, AuthError> {
        Alg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                if s.eq_ignore_ascii_case("none") {
                    AuthError::AlgNone
                } else {
                    AuthError::UnsupportedAlgorithm
                }
            })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A small set of algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AlgSet(u8);

impl AlgSet {
    pub const EMPTY: AlgSet = AlgSet(0);

    pub fn of(algs: &[Alg]) -> Self {
        AlgSet(algs.iter().fold(0, |m, a| m | a.bit()))
    }

    pub fn contains(self, a: Alg) -> bool {
        self.0 & a.bit() != 0
    }

    pub fn intersect(self, o: AlgSet) -> AlgSet {
        AlgSet(self.0 & o.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The set as a bit mask (one bit per [`Alg`]).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Parses config names (already validated against the supported list).
    pub fn from_names(names: &[String]) -> Result<Self, String> {
        let mut set = AlgSet::EMPTY;
        for n in names {
            let a = Alg::from_jose(n).map_err(|_| format!("unsupported algorithm {n:?}"))?;
            set.0 |= a.bit();
        }
        Ok(set)
    }
}

/// A compact JWS split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct ParsedToken<'a> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    /// The third part, still base64url.
    pub signature_b64: &'a str,
    pub claims: Map<String, Value>,
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Any `crit` (even `null` or `[]`) is refused: tollgate implements no extension.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    // jwk, jku, x5u, x5c, x5t, typ, cty: deliberately not read.
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// Longest `kid` accepted (Better Auth's are 32 characters).
pub const MAX_KID_BYTES: usize = 256;

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits and decodes a compact JWS. Does not verify anything cryptographic.
pub fn parse_token(token: &str) -> Result<ParsedToken<'_>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TokenTooLarge);
    }
    let mut parts = token.splitn(4, '.');
    let (h, p, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        _ => return Err(AuthError::Malformed("not three dot-separated parts")),
    };
    if h.is_empty() || p.is_empty() {
        return Err(AuthError::Malformed("empty header or payload"));
    }
    if !is_b64url(h) || !is_b64url(p) || !is_b64url(s) {
        return Err(AuthError::Malformed("not base64url"));
    }
    let header_json = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| AuthError::Malformed("header is not base64url"))?;
    let header: JoseHeader = serde_json::from_slice(&header_json)
        .map_err(|_| AuthError::Malformed("header is not a JSON object with alg"))?;
    // `none` is refused before `crit`, so the most telling reason wins.
    let alg = Alg::from_jose(&header.alg)?;
    if header.crit {
        return Err(AuthError::CriticalHeader);
    }
    if let Some(k) = &header.kid {
        if k.is_empty() || k.len() > MAX_KID_BYTES {
            return Err(AuthError::Malformed("kid is empty or too long"));
        }
    }
    if s.is_empty() {
        return Err(AuthError::BadSignature);
    }
    let payload_json = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| AuthError::Malformed("payload is not base64url"))?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload_json)
        .map_err(|_| AuthError::Malformed("payload is not a JSON object"))?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    Ok(ParsedToken {
        alg,
        kid: header.kid,
        signing_input,
        signature_b64: s,
        claims,
    })
}

/// A NumericDate claim (RFC 7519 §2): a JSON number of seconds, possibly fractional.
/// Returns milliseconds, saturated to ±2^52 so arithmetic cannot overflow.
pub fn numeric_date_ms(v: &Value, claim: &'static str) -> Result<i64, AuthError> {
    const LIMIT: i64 = 1 << 52;
    let ms = if let Some(i) = v.as_i64() {
        i.saturating_mul(1000)
    } else if let Some(u) = v.as_u64() {
        i64::try_from(u).unwrap_or(i64::MAX).saturating_mul(1000)
    } else if let Some(f) = v.as_f64() {
        if !f.is_finite() {
            return Err(AuthError::InvalidClaim(claim));
        }
        // f64 → i64 `as` saturates; floor keeps 1.9 s at 1 s like the integer case.
        (f * 1000.0).floor() as i64
    } else {
        return Err(AuthError::InvalidClaim(claim));
    };
    Ok(ms.clamp(-LIMIT, LIMIT))
}

/// What one issuer demands of a token's claims.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    pub audiences: Vec<String>,
    pub leeway_ms: i64,
    pub required_claims: Vec<String>,
}

/// The time claims of a valid token, in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidTimes {
    pub exp: i64,
    pub iat: Option<i64>,
    /// Until when (ms) the token stays acceptable: `exp` + leeway.
    pub valid_until_ms: i64,
}

impl ClaimRules {
    /// Checks `exp` (required), `nbf` and `iat` (when present) against `now_ms`, then `aud`
    /// and the required claims. The issuer was already matched by `iss`.
    pub fn check(&self, claims: &Map<String, Value>, now_ms: i64) -> Result<ValidTimes, AuthError> {
        let exp_ms = match claims.get("exp") {
            None | Some(Value::Null) => return Err(AuthError::MissingClaim("exp".into())),
            Some(v) => numeric_date_ms(v, "exp")?,
        };
        let nbf_ms = claims
            .get("nbf")
            .map(|v| numeric_date_ms(v, "nbf"))
            .transpose()?;
        let iat_ms = claims
            .get("iat")
            .map(|v| numeric_date_ms(v, "iat"))
            .transpose()?;
        // RFC 7519 §4.1.4: the token must not be accepted on or after exp.
        let valid_until_ms = exp_ms.saturating_add(self.leeway_ms);
        if now_ms >= valid_until_ms {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = nbf_ms {
            if now_ms.saturating_add(self.leeway_ms) < nbf {
                return Err(AuthError::NotYetValid);
            }
        }
        if let Some(iat) = iat_ms {
            if iat > now_ms.saturating_add(self.leeway_ms) {
                return Err(AuthError::IssuedInFuture);
            }
        }
        self.check_audience(claims.get("aud"))?;
        for c in &self.required_claims {
            match claims.get(c) {
                None | Some(Value::Null) => return Err(AuthError::MissingClaim(c.clone())),
                Some(_) => {}
            }
        }
        Ok(ValidTimes {
            exp: exp_ms.div_euclid(1000),
            iat: iat_ms.map(|i| i.div_euclid(1000)),
            valid_until_ms,
        })
    }

    fn check_audience(&self, aud: Option<&Value>) -> Result<(), AuthError> {
        let accepted = |s: &str| self.audiences.iter().any(|a| a == s);
        match aud {
            None | Some(Value::Null) => {
                if self.audiences.is_empty() {
                    Ok(())
                } else {
                    Err(AuthError::MissingClaim("aud".into()))
                }
            }
            // Better Auth sends one string; RFC 7519 also allows an array.
            Some(Value::String(s)) => {
                if accepted(s) {
                    Ok(())
                } else {
                    Err(AuthError::WrongAudience)
                }
            }
            Some(Value::Array(items)) => {
                let mut any = false;
                for i in items {
                    match i {
                        Value::String(s) => any |= accepted(s),
                        _ => return Err(AuthError::InvalidClaim("aud")),
                    }
                }
                if any {
                    Ok(())
                } else {
                    Err(AuthError::WrongAudience)
                }
            }
            Some(_) => Err(AuthError::InvalidClaim("aud")),
        }
    }
}

/// The `iss` claim: `Ok(None)` when absent, an error when not a string.
pub fn issuer_claim(claims: &Map<String, Value>) -> Result<Option<&str>, AuthError> {
    match claims.get("iss") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AuthError::InvalidClaim("iss")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn tok(h: Value, p: Value) -> String {
        format!("{}.{}.c2ln", b64(&h), b64(&p))
    }

    #[test]
    fn parses_better_auth_shape() {
        let t = tok(
            json!({"alg": "EdDSA", "kid": "k1"}),
            json!({"sub": "u", "exp": 5}),
        );
        let p = parse_token(&t).unwrap();
        assert_eq!(p.alg, Alg::EdDSA);
        assert_eq!(p.kid.as_deref(), Some("k1"));
        assert_eq!(p.signature_b64, "c2ln");
        assert_eq!(p.claims["sub"], "u");
        assert!(t.starts_with(p.signing_input) && t.len() == p.signing_input.len() + 5);
    }

    #[test]
    fn refuses_structural_attacks() {
        let p = json!({"exp": 5});
        let cases: Vec<(String, AuthError)> = vec![
            (tok(json!({"alg": "none"}), p.clone()), AuthError::AlgNone),
            (tok(json!({"alg": "nOnE"}), p.clone()), AuthError::AlgNone),
            (
                tok(json!({"alg": "HS384"}), p.clone()),
                AuthError::UnsupportedAlgorithm,
            ),
            (
                tok(json!({"alg": "EdDSA", "crit": ["exp"]}), p.clone()),
                AuthError::CriticalHeader,
            ),
            (
                tok(json!({"alg": "EdDSA", "crit": null}), p.clone()),
                AuthError::CriticalHeader,
            ),
            (
                "a.b".into(),
                AuthError::Malformed("not three dot-separated parts"),
            ),
            (
                "a.b.c.d".into(),
                AuthError::Malformed("not three dot-separated parts"),
            ),
            (
                "...".into(),
                AuthError::Malformed("not three dot-separated parts"),
            ),
            ("..".into(), AuthError::Malformed("empty header or payload")),
            ("a+b.c.d".into(), AuthError::Malformed("not base64url")),
            ("x".repeat(MAX_TOKEN_BYTES + 1), AuthError::TokenTooLarge),
        ];
        for (t, want) in cases {
            assert_eq!(parse_token(&t).unwrap_err(), want, "{t:.60}");
        }
        // Duplicate alg is ambiguous between parsers: refused.
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","alg":"HS256"}"#);
        let t = format!("{h}.{}.c2ln", b64(&p));
        assert!(matches!(parse_token(&t), Err(AuthError::Malformed(_))));
        // Payload must be an object.
        let t = format!(
            "{}.{}.c2ln",
            b64(&json!({"alg": "EdDSA"})),
            b64(&json!([1]))
        );
        assert!(matches!(parse_token(&t), Err(AuthError::Malformed(_))));
        // Missing signature.
        let t = format!("{}.{}.", b64(&json!({"alg": "EdDSA"})), b64(&p));
        assert_eq!(parse_token(&t).unwrap_err(), AuthError::BadSignature);
    }

    #[test]
    fn header_key_material_is_never_read() {
        // A jwk in the header parses (it is ignored), it does not become a key.
        let t = tok(
            json!({"alg": "EdDSA", "jwk": {"kty": "OKP"}, "jku": "http://evil", "x5u": "x", "x5c": ["a"]}),
            json!({"exp": 1}),
        );
        let p = parse_token(&t).unwrap();
        assert_eq!(p.kid, None);
    }

    fn rules(aud: &[&str]) -> ClaimRules {
        ClaimRules {
            audiences: aud.iter().map(|s| s.to_string()).collect(),
            leeway_ms: 30_000,
            required_claims: vec![],
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn time_claims_use_the_given_clock_and_leeway() {
        let r = rules(&[]);
        let now = 1_000_000;
        let ok = r.check(&claims(json!({"exp": 1000})), now - 1).unwrap();
        assert_eq!(ok.exp, 1000);
        assert_eq!(ok.valid_until_ms, 1_030_000);
        // within leeway after exp: still valid; at exp + leeway: expired
        assert!(r.check(&claims(json!({"exp": 1000})), 1_029_999).is_ok());
        assert_eq!(
            r.check(&claims(json!({"exp": 1000})), 1_030_000),
            Err(AuthError::Expired)
        );
        assert_eq!(
            r.check(&claims(json!({"exp": 2000, "nbf": 1031})), now),
            Err(AuthError::NotYetValid)
        );
        assert!(r
            .check(&claims(json!({"exp": 2000, "nbf": 1030})), now)
            .is_ok());
        assert_eq!(
            r.check(&claims(json!({"exp": 2000, "iat": 1031})), now),
            Err(AuthError::IssuedInFuture)
        );
        assert!(r
            .check(&claims(json!({"exp": 2000, "iat": 1029.5})), now)
            .is_ok());
        assert!(r.check(&claims(json!({"exp": 1500.7})), now).is_ok());
    }

    #[test]
    fn numeric_dates_must_be_numbers() {
        let r = rules(&[]);
        for bad in [
            json!({"exp": "2000"}),
            json!({"exp": 2000, "nbf": "1"}),
            json!({"exp": 2000, "iat": true}),
            json!({"exp": [2000]}),
        ] {
            assert!(
                matches!(
                    r.check(&claims(bad.clone()), 0),
                    Err(AuthError::InvalidClaim(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            r.check(&claims(json!({"sub": "x"})), 0),
            Err(AuthError::MissingClaim("exp".into()))
        );
        // Huge values saturate instead of overflowing.
        assert!(r.check(&claims(json!({"exp": 1e300})), 0).is_ok());
        assert!(r.check(&claims(json!({"exp": u64::MAX})), 0).is_ok());
        assert_eq!(
            r.check(&claims(json!({"exp": -1e300})), 0),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn audience_rules() {
        let r = rules(&["https://app", "other"]);
        assert!(r
            .check(&claims(json!({"exp": 9, "aud": "https://app"})), 0)
            .is_ok());
        assert!(r
            .check(&claims(json!({"exp": 9, "aud": ["x", "other"]})), 0)
            .is_ok());
        assert_eq!(
            r.check(&claims(json!({"exp": 9, "aud": "x"})), 0),
            Err(AuthError::WrongAudience)
        );
        assert_eq!(
            r.check(&claims(json!({"exp": 9})), 0),
            Err(AuthError::MissingClaim("aud".into()))
        );
        assert_eq!(
            r.check(&claims(json!({"exp": 9, "aud": 5})), 0),
            Err(AuthError::InvalidClaim("aud"))
        );
        // No audience configured: a token naming one is not for us (RFC 7519 §4.1.3).
        let none = rules(&[]);
        assert_eq!(
            none.check(&claims(json!({"exp": 9, "aud": "x"})), 0),
            Err(AuthError::WrongAudience)
        );
        let mut req = rules(&[]);
        req.required_claims = vec!["sub".into()];
        assert_eq!(
            req.check(&claims(json!({"exp": 9})), 0),
            Err(AuthError::MissingClaim("sub".into()))
        );
    }

    #[test]
    fn alg_sets() {
        let s = AlgSet::from_names(&["EdDSA".into(), "ES512".into()]).unwrap();
        assert!(s.contains(Alg::EdDSA) && s.contains(Alg::ES512) && !s.contains(Alg::HS256));
        assert!(AlgSet::from_names(&["none".into()]).is_err());
        assert!(s.intersect(AlgSet::of(&[Alg::HS256])).is_empty());
    }
}
