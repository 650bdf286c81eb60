//! The `resp_parse` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/resp_parse/`, over any
//! crash reproducer saved in `fuzz/regressions/resp_parse/`, and over mutations of the
//! seeds. The body panics when an invariant breaks, which fails the test.

mod fuzz_support;

#[path = "../fuzz/src/resp_parse.rs"]
mod resp_parse;

fuzz_target_tests!(resp_parse, min_seeds: 5, cases: 2000);
