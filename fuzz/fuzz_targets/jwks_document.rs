#![no_main]
// Body and invariants: fuzz/src/jwks_document.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::jwks_document::run(data));
