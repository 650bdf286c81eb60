//! Fuzz body: the JSON body of `POST /admin/revoke`
//! (`tollgate::gate::RevokeRequest::from_json`).
//!
//! Invariants checked, beyond "never panics":
//! - a body is accepted only when it is one JSON object whose fields are exactly `jti` (a
//!   string) and `exp` (an integer), or exactly `sub` (a string) and `before` (an integer):
//!   unknown fields and mixed forms are refused;
//! - every such object is accepted (read by serde_json apart from tollgate, as a `Value`),
//!   except that a body naming a field twice may be refused (whether it must be is the
//!   admin API's rule, not this target's: when accepted, the last value counts, as
//!   serde_json reads it);
//! - what is accepted re-serialises (`to_json`) to a value equal to the body's, and that
//!   serialisation is accepted again as the same request;
//! - reading the same bytes twice gives the same answer.

use serde_json::Value;
use tollgate::gate::RevokeRequest;

pub fn run(data: &[u8]) {
    let got = RevokeRequest::from_json(data);
    assert_eq!(got, RevokeRequest::from_json(data), "deterministic");
    let expected = model(data);
    match &got {
        Ok(req) => {
            assert_eq!(
                Some(req),
                expected.as_ref(),
                "accepted only in one of the two forms"
            );
            let echoed = req.to_json();
            let body: Value = serde_json::from_slice(data).expect("accepted bodies are JSON");
            assert_eq!(echoed, body, "to_json is the body it came from");
            let again = serde_json::to_vec(&echoed).expect("serialises");
            assert_eq!(RevokeRequest::from_json(&again).as_ref(), Ok(req));
        }
        Err(e) => {
            assert!(!e.is_empty());
            if !has_duplicate_field(data) {
                assert_eq!(expected, None, "a well-formed body was refused: {e}");
            }
        }
    }
}

/// The request a body stands for, read without tollgate's parser.
fn model(data: &[u8]) -> Option<RevokeRequest> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let obj = v.as_object()?;
    if obj.len() != 2 {
        return None;
    }
    let int = |name: &str| obj.get(name).and_then(Value::as_i64);
    let text = |name: &str| obj.get(name).and_then(Value::as_str).map(str::to_string);
    if let (Some(jti), Some(exp)) = (text("jti"), int("exp")) {
        return Some(RevokeRequest::Jti { jti, exp });
    }
    if let (Some(sub), Some(before)) = (text("sub"), int("before")) {
        return Some(RevokeRequest::Subject { sub, before });
    }
    None
}

/// Whether the body is a JSON object that names a field twice.
fn has_duplicate_field(data: &[u8]) -> bool {
    struct Fields(bool);
    impl<'de> serde::Deserialize<'de> for Fields {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Fields;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Fields, A::Error> {
                    let mut seen = std::collections::HashSet::new();
                    let mut twice = false;
                    while let Some(k) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        twice |= !seen.insert(k);
                    }
                    Ok(Fields(twice))
                }
            }
            d.deserialize_map(Visit)
        }
    }
    serde_json::from_slice::<Fields>(data).is_ok_and(|f| f.0)
}
