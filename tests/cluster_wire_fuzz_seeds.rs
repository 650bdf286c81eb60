//! The `cluster_wire` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/cluster_wire/`, over any
//! crash reproducer saved in `fuzz/regressions/cluster_wire/`, and over mutations of the
//! seeds. The body panics when an invariant breaks, which fails the test.

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;

#[path = "../fuzz/src/cluster_wire.rs"]
mod cluster_wire;

fn inputs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join("cluster_wire");
    let Ok(entries) = fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

#[test]
fn seeds_and_regressions() {
    let seeds = inputs("seeds");
    assert!(
        seeds.len() >= 5,
        "expected a seed corpus in fuzz/seeds/cluster_wire/"
    );
    for (path, data) in seeds.iter().chain(inputs("regressions").iter()) {
        let outcome = std::panic::catch_unwind(|| cluster_wire::run(data));
        assert!(outcome.is_ok(), "cluster_wire failed on {}", path.display());
    }
}

/// The seeds, with bytes overwritten, inserted or removed, and seeds glued together.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = inputs("seeds").into_iter().map(|(_, d)| d).collect();
    let n = seeds.len().max(1);
    (
        proptest::collection::vec(0..n, 1..4),
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(move |(picks, edits)| {
            let mut data: Vec<u8> = picks
                .iter()
                .flat_map(|&i| seeds.get(i).cloned().unwrap_or_default())
                .collect();
            for (pos, byte, op) in edits {
                let at = if data.is_empty() { 0 } else { pos % data.len() };
                match op {
                    0 if !data.is_empty() => data[at] = byte,
                    1 => data.insert(at, byte),
                    _ if !data.is_empty() => {
                        data.remove(at);
                    }
                    _ => data.push(byte),
                }
            }
            data
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn seed_mutations(data in mutated()) {
        cluster_wire::run(&data);
    }

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        cluster_wire::run(&data);
    }
}

/// The signed seed was made outside tollgate (HMAC-SHA256 of the plane's label under the
/// secret, then of the datagram under that): it authenticates, so the seeds reach the parser
/// behind the MAC, and the key derivation is what the module documents.
#[test]
fn the_signed_seed_authenticates() {
    use tollgate::cluster::wire::{decode, ClusterKey, Freshness};
    let (_, data) = inputs("seeds")
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
