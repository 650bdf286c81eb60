//! The `cluster_membership` fuzz target as an ordinary test, on stable Rust: its body (the
//! file the libFuzzer binary calls) runs over the seed corpus in
//! `fuzz/seeds/cluster_membership/`, over any crash reproducer saved in
//! `fuzz/regressions/cluster_membership/`, and over mutations of the seeds. The body panics
//! when an invariant breaks, which fails the test.

mod fuzz_support;

#[path = "../fuzz/src/cluster_membership.rs"]
mod cluster_membership;

fuzz_target_tests!(cluster_membership, min_seeds: 4, cases: 1000);
