//! The `cluster_wire` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/cluster_wire/`, over any
//! crash reproducer saved in `fuzz/regressions/cluster_wire/`, and over mutations of the
//! seeds. The body panics when an invariant breaks, which fails the test.

mod fuzz_support;

#[path = "../fuzz/src/cluster_wire.rs"]
mod cluster_wire;

fuzz_target_tests!(cluster_wire, min_seeds: 5, cases: 2000);

/// The signed seed was made outside tollgate (HMAC-SHA256 of the plane's label under the
/// secret, then of the datagram under that): it authenticates, so the seeds reach the parser
/// behind the MAC, and the key derivation is what the module documents.
#[test]
fn the_signed_seed_authenticates() {
    use tollgate::cluster::wire::{decode, ClusterKey, Freshness};
    let (_, data) = fuzz_support::inputs("seeds", TARGET)
        .into_iter()
        .find(|(p, _)| p.ends_with("datagram_signed"))
        .expect("fuzz/seeds/cluster_wire/datagram_signed");
    let key = ClusterKey::new(b"tollgate fuzz cluster secret 32b").unwrap();
    let any_time = Freshness {
        max_age_ms: u64::MAX,
        max_ahead_ms: u64::MAX,
    };
    let d = decode(&data, &key, 0, any_time).expect("the signed seed");
    assert_eq!((d.header.generation, d.cells.len()), (7, 3));
}
