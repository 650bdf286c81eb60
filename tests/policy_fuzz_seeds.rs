//! The policy and config fuzz targets as ordinary tests, on stable Rust: each target's body
//! (the same file the libFuzzer binary calls) runs over its seed corpus in
//! `fuzz/seeds/<target>/`, over every crash reproducer saved in `fuzz/regressions/<target>/`,
//! and over proptest-generated mutations of the seeds. A body panics when an invariant
//! breaks, which fails the test. docs/fuzzing.md describes the real fuzzing runs.

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;

#[path = "../fuzz/src/config_parse.rs"]
mod config_parse;
#[path = "../fuzz/src/policy_client_ip.rs"]
mod policy_client_ip;
#[path = "../fuzz/src/policy_key.rs"]
mod policy_key;
#[path = "../fuzz/src/policy_path.rs"]
mod policy_path;

type Body = fn(&[u8]);

const TARGETS: [(&str, Body); 4] = [
    ("policy_path", policy_path::run),
    ("policy_key", policy_key::run),
    ("policy_client_ip", policy_client_ip::run),
    ("config_parse", config_parse::run),
];

/// Every file of `fuzz/<dir>/<target>/`, sorted; an absent directory has none.
fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
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
fn every_target_passes_its_seed_corpus_and_regressions() {
    for (target, body) in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(
            seeds.len() >= 3,
            "{target}: expected a seed corpus in fuzz/seeds/{target}/"
        );
        for (path, data) in seeds.iter().chain(inputs("regressions", target).iter()) {
            let outcome = std::panic::catch_unwind(|| body(data));
            assert!(outcome.is_ok(), "{target} failed on {}", path.display());
        }
    }
}

/// A seed with some bytes overwritten, inserted or cut: cheap structure-aware mutation.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = inputs("seeds", target)
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let n = seeds.len().max(1);
    (
        0..n,
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(move |(i, edits)| {
            let mut data = seeds.get(i).cloned().unwrap_or_default();
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
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn policy_path_mutations(data in mutated("policy_path")) {
        policy_path::run(&data);
    }

    #[test]
    fn policy_key_mutations(data in mutated("policy_key")) {
        policy_key::run(&data);
    }

    #[test]
    fn policy_client_ip_mutations(data in mutated("policy_client_ip")) {
        policy_client_ip::run(&data);
    }

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        for (_, body) in TARGETS {
            body(&data);
        }
    }
}

proptest! {
    // Loading and validating a configuration costs more; fewer cases.
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn config_parse_mutations(data in mutated("config_parse")) {
        config_parse::run(&data);
    }
}
