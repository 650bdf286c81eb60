//! The `cluster_revocation_frame` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/cluster_revocation_frame/`, over any
//! crash reproducer saved in `fuzz/regressions/cluster_revocation_frame/`, and over mutations of the
//! seeds. The body panics when an invariant breaks, which fails the test.

mod fuzz_support;

#[path = "../fuzz/src/cluster_revocation_frame.rs"]
mod cluster_revocation_frame;

fuzz_target_tests!(cluster_revocation_frame, min_seeds: 5, cases: 2000);

/// The signed seeds were made outside tollgate (HMAC-SHA256 of the plane's label under the
/// secret, then of the frame under that): they authenticate, so the seeds reach the parser
/// behind the MAC, and the key derivation is what the module documents.
#[test]
fn the_signed_seeds_authenticate() {
    use tollgate::cluster::revocation_plane::frame::{decode, Message, KEY_LABEL};
    use tollgate::cluster::wire::{ClusterKey, Freshness};
    let key = ClusterKey::for_plane(b"tollgate fuzz cluster secret 32b", KEY_LABEL).unwrap();
    let any_time = Freshness {
        max_age_ms: u64::MAX,
        max_ahead_ms: u64::MAX,
    };
    let signed: Vec<_> = fuzz_support::inputs("seeds", TARGET)
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().ends_with("_signed"))
        .collect();
    assert_eq!(signed.len(), 4);
    for (path, data) in signed {
        let f = decode(&data, &key, 0, any_time).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!((f.sender.as_str(), f.generation), ("node-a", 7));
        if let Message::Push { revocations } = f.message {
            assert_eq!(revocations.len(), 2);
        }
    }
}
