//! The `http_fastpath` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/http_fastpath/`, over any crash
//! reproducer saved in `fuzz/regressions/http_fastpath/`, and over mutations of the seeds. The body
//! panics when an invariant breaks, which fails the test.

mod fuzz_support;

#[path = "../fuzz/src/http_fastpath.rs"]
mod http_fastpath;

fuzz_target_tests!(http_fastpath, min_seeds: 5, cases: 2000);
