//! Property tests of merging revocation stores (`RevocationStore::merge`): the merge is a
//! join, so stores that exchange their entries in any order, grouping or number of copies
//! end with the same entries, and a merge never weakens a revocation.
//!
//! Every case stays below the store's cap, where nothing is refused.

use std::sync::Arc;

use proptest::prelude::*;
use tollgate::auth::{Revocation, RevocationOptions, RevocationStore, TokenClaims};
use tollgate::clock::ManualClock;

/// Seconds on the stores' clock: some generated entries are already past their retention.
const NOW: u64 = 1000;

fn store() -> RevocationStore {
    RevocationStore::in_memory(
        Arc::new(ManualClock::new(NOW * 1000)),
        RevocationOptions {
            max_entries: 1000,
            subject_retention_secs: 5000,
            jti_slack_secs: 300,
        },
    )
}

fn revocation() -> impl Strategy<Value = Revocation> {
    prop_oneof![
        (0..4u8, 400..5000i64).prop_map(|(j, exp)| Revocation::Jti {
            jti: format!("j{j}"),
            exp,
        }),
        (0..3u8, 0..3000i64, 0..4000i64).prop_map(|(s, before, keep)| Revocation::Subject {
            sub: format!("s{s}"),
            before,
            until: before + keep,
        }),
    ]
}

fn entries() -> impl Strategy<Value = Vec<Revocation>> {
    prop::collection::vec(revocation(), 0..20)
}

/// Another store's entries, as a peer would send them.
fn exported(s: &RevocationStore) -> Vec<Revocation> {
    s.list_entries().into_iter().map(|e| e.revocation).collect()
}

fn merged(parts: &[&[Revocation]]) -> RevocationStore {
    let s = store();
    for p in parts {
        s.merge(p.iter().cloned()).unwrap();
    }
    s
}

/// Every token a store could be asked about, and whether it is revoked.
fn verdicts(s: &RevocationStore) -> Vec<bool> {
    let mut v = Vec::new();
    for sub in ["s0", "s1", "s2", "nobody"] {
        for jti in [None, Some("j0"), Some("j1"), Some("j2"), Some("j3")] {
            for iat in [None, Some(0), Some(500), Some(1500), Some(2999), Some(3000)] {
                v.push(s.is_revoked(&TokenClaims {
                    jti: jti.map(str::to_string),
                    subject: sub.into(),
                    iat,
                    exp: 10_000,
                }));
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn merging_is_commutative(a in entries(), b in entries()) {
        let ab = merged(&[&a, &b]);
        let ba = merged(&[&b, &a]);
        prop_assert_eq!(ab.list_entries(), ba.list_entries());
        prop_assert_eq!(verdicts(&ab), verdicts(&ba));
    }

    #[test]
    fn merging_is_associative(a in entries(), b in entries(), c in entries()) {
        let (x, y, z) = (merged(&[&a]), merged(&[&b]), merged(&[&c]));
        let xy = merged(&[&exported(&x), &exported(&y)]);
        let left = merged(&[&exported(&xy), &exported(&z)]);
        let yz = merged(&[&exported(&y), &exported(&z)]);
        let right = merged(&[&exported(&x), &exported(&yz)]);
        prop_assert_eq!(left.list_entries(), right.list_entries());
        prop_assert_eq!(left.list_entries(), merged(&[&a, &b, &c]).list_entries());
        prop_assert_eq!(verdicts(&left), verdicts(&right));
    }

    #[test]
    fn merging_is_idempotent(a in entries(), b in entries()) {
        let s = merged(&[&a, &b]);
        let before = s.list_entries();
        let again = s.merge(a.iter().chain(&b).cloned()).unwrap();
        prop_assert_eq!(again.recorded, 0);
        let own = s.merge(exported(&s)).unwrap();
        prop_assert_eq!(own.recorded, 0);
        prop_assert_eq!(s.list_entries(), before);
    }

    #[test]
    fn a_merge_never_weakens_a_revocation(a in entries(), b in entries()) {
        let s = merged(&[&a]);
        let before = verdicts(&s);
        let held = s.list_entries();
        s.merge(b.iter().cloned()).unwrap();
        for (was, now) in before.iter().zip(verdicts(&s)) {
            prop_assert!(!*was || now, "a revoked token was re-admitted");
        }
        // And nothing is forgotten sooner.
        let after = s.list_entries();
        for e in &held {
            let key = |r: &Revocation| match r {
                Revocation::Jti { jti, .. } => format!("j:{jti}"),
                Revocation::Subject { sub, .. } => format!("s:{sub}"),
            };
            let now = after.iter().find(|n| key(&n.revocation) == key(&e.revocation));
            prop_assert!(now.is_some_and(|n| n.expires_at >= e.expires_at));
        }
    }
}
