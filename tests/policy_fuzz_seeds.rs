//! The policy and config fuzz targets as ordinary tests, on stable Rust: each target's body
//! (the same file the libFuzzer binary calls) runs over its seed corpus in
//! `fuzz/seeds/<target>/`, over every crash reproducer saved in `fuzz/regressions/<target>/`,
//! and over proptest-generated mutations of the seeds. A body panics when an invariant
//! breaks, which fails the test. docs/fuzzing.md describes the real fuzzing runs.

mod fuzz_support;

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

#[test]
fn every_target_passes_its_seed_corpus_and_regressions() {
    for (target, body) in TARGETS {
        fuzz_support::replay_seeds_and_regressions(target, body, 3);
    }
}

/// A seed with some bytes overwritten, inserted or cut: cheap structure-aware mutation.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    fuzz_support::mutated(target, 1)
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
