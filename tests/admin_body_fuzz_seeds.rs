//! The `admin_body` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/admin_body/`, over any crash
//! reproducer saved in `fuzz/regressions/admin_body/`, and over mutations of the seeds. The body
//! panics when an invariant breaks, which fails the test.

mod fuzz_support;

#[path = "../fuzz/src/admin_body.rs"]
mod admin_body;

fuzz_target_tests!(admin_body, min_seeds: 5, cases: 2000);
