#![no_main]
// Body and invariants: fuzz/src/admin_body.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::admin_body::run(data));
