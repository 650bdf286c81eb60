//! The `resp_parse` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/resp_parse/`, over any
//! crash reproducer saved in `fuzz/regressions/resp_parse/`, and over mutations of the
//! seeds. The body panics when an invariant breaks, which fails the test.

mod fuzz_support;

use proptest::prelude::*;

#[path = "../fuzz/src/resp_parse.rs"]
mod resp_parse;

const TARGET: &str = "resp_parse";

#[test]
fn seeds_and_regressions() {
    fuzz_support::replay_seeds_and_regressions(TARGET, resp_parse::run, 5);
}

/// The seeds, with bytes overwritten, inserted or removed, and seeds glued together.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    fuzz_support::mutated(TARGET, 3)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn seed_mutations(data in mutated()) {
        resp_parse::run(&data);
    }

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        resp_parse::run(&data);
    }
}
