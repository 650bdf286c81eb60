//! The `cluster_membership` fuzz target as an ordinary test, on stable Rust: its body (the
//! file the libFuzzer binary calls) runs over the seed corpus in
//! `fuzz/seeds/cluster_membership/`, over any crash reproducer saved in
//! `fuzz/regressions/cluster_membership/`, and over mutations of the seeds. The body panics
//! when an invariant breaks, which fails the test.

mod fuzz_support;

use proptest::prelude::*;

#[path = "../fuzz/src/cluster_membership.rs"]
mod cluster_membership;

const TARGET: &str = "cluster_membership";

#[test]
fn seeds_and_regressions() {
    fuzz_support::replay_seeds_and_regressions(TARGET, cluster_membership::run, 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn seed_mutations(data in fuzz_support::mutated(TARGET, 3)) {
        cluster_membership::run(&data);
    }
}
