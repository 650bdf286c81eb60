//! The `jwks_document` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/jwks_document/`, over any crash
//! reproducer saved in `fuzz/regressions/jwks_document/`, and over mutations of the seeds. The body
//! panics when an invariant breaks, which fails the test.

mod fuzz_support;

#[path = "../fuzz/src/jwks_document.rs"]
mod jwks_document;

fuzz_target_tests!(jwks_document, min_seeds: 5, cases: 2000);
