#![no_main]
// Body and invariants: fuzz/src/jwt_token.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::jwt_token::run(data));
