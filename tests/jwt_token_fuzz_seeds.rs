//! The `jwt_token` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/jwt_token/`, over any crash
//! reproducer saved in `fuzz/regressions/jwt_token/`, and over mutations of the seeds. The body
//! panics when an invariant breaks, which fails the test.

mod fuzz_support;

#[path = "../fuzz/src/jwt_token.rs"]
mod jwt_token;

fuzz_target_tests!(jwt_token, min_seeds: 5, cases: 2000);

/// The `valid_…` seeds were signed outside tollgate (HMAC-SHA256 under the body's
/// secrets) and are accepted, so the fuzzer starts from tokens that reach the end of
/// verification; every other `…_signed` seed is refused for its claims, not its signature.
#[test]
fn the_signed_seeds_verify() {
    let seeds = fuzz_support::inputs("seeds", TARGET);
    let mut valid = 0;
    for (path, data) in &seeds {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let auth = jwt_token::authenticator();
        let r = auth.authenticate_now(&jwt_token::input_of(data));
        if name.starts_with("valid_") {
            assert!(r.is_ok(), "{name}: {r:?}");
            valid += 1;
        } else if name.ends_with("_signed") {
            let e = r.expect_err(&name);
            assert_ne!(e.detail(), "bad_signature", "{name}");
        } else {
            assert!(r.is_err(), "{name}");
        }
    }
    assert!(valid >= 5);
}
