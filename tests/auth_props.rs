//! Properties of verification on hostile input: nothing from the network panics, arbitrary
//! bytes never authenticate, and no single-character change to a genuine token (any part,
//! any position) is accepted — neither on first sight nor after the genuine token is cached.

mod auth_support;

use std::sync::OnceLock;

use auth_support as s;
use proptest::prelude::*;
use tollgate::auth::{AuthInput, Authenticator, KeySet};

fn authenticator() -> &'static Authenticator {
    static A: OnceLock<Authenticator> = OnceLock::new();
    A.get_or_init(|| {
        let a = s::build(
            &s::config(s::static_issuer("jwks_rotated.json")),
            s::clock(),
        );
        // Cache every genuine token first: a mutated token must not hit their entries.
        for f in s::manifest().tokens.iter().filter(|f| f.expect == "ok") {
            let h = s::header(&f.token);
            assert!(a.authenticate_now(&s::input(&h)).is_ok(), "{}", f.name);
        }
        a
    })
}

fn valid_tokens() -> &'static Vec<String> {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        s::manifest()
            .tokens
            .into_iter()
            .filter(|f| f.expect == "ok")
            .map(|f| f.token)
            .collect()
    })
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_headers_never_authenticate(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
        let a = authenticator();
        prop_assert!(a.authenticate_now(&s::input(&raw)).is_err());
        let mut with_scheme = b"Bearer ".to_vec();
        with_scheme.extend_from_slice(&raw);
        prop_assert!(a.authenticate_now(&s::input(&with_scheme)).is_err());
    }

    #[test]
    fn arbitrary_jws_shaped_strings_never_authenticate(
        parts in proptest::collection::vec("[A-Za-z0-9_-]{0,120}", 1..5)
    ) {
        let t = parts.join(".");
        prop_assert!(authenticator().authenticate_now(&AuthInput::bearer(&t)).is_err());
    }

    #[test]
    fn no_single_character_change_is_accepted(
        which in 0usize..64,
        pos in any::<prop::sample::Index>(),
        with in prop::sample::select(B64URL.to_vec()),
    ) {
        let tokens = valid_tokens();
        let original = &tokens[which % tokens.len()];
        let i = pos.index(original.len());
        prop_assume!(original.as_bytes()[i] != with);
        let mut bytes = original.clone().into_bytes();
        bytes[i] = with;
        let forged = String::from_utf8(bytes).unwrap();
        let r = authenticator().authenticate_now(&AuthInput::bearer(&forged));
        prop_assert!(r.is_err(), "accepted a token changed at {i}: {r:?}");
    }

    #[test]
    fn truncations_and_extensions_are_refused(
        which in 0usize..64,
        cut in any::<prop::sample::Index>(),
        tail in "[A-Za-z0-9_.-]{1,8}",
    ) {
        let tokens = valid_tokens();
        let original = &tokens[which % tokens.len()];
        let short = &original[..cut.index(original.len())];
        prop_assert!(authenticator().authenticate_now(&AuthInput::bearer(short)).is_err());
        let long = format!("{original}{tail}");
        prop_assert!(authenticator().authenticate_now(&AuthInput::bearer(&long)).is_err());
    }

    #[test]
    fn arbitrary_key_set_documents_never_panic(doc in arb_json(3)) {
        let bytes = serde_json::to_vec(&serde_json::json!({ "keys": [doc.clone()] })).unwrap();
        let _ = KeySet::from_jwks(&bytes);
        let _ = KeySet::from_jwks(&serde_json::to_vec(&doc).unwrap());
    }
}

/// JSON values biased towards JWK-looking objects.
fn arb_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "OKP", "EC", "RSA", "oct", "Ed25519", "P-256", "P-521", "EdDSA", "ES256", "ES512",
            "RS256", "PS256", "sig", "enc", "AQAB", "",
        ])
        .prop_map(serde_json::Value::from),
        "[A-Za-z0-9_-]{0,90}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(depth, 32, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "key_ops", "k"
                ])
                .prop_map(str::to_string),
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
