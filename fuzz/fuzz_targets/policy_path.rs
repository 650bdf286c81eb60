#![no_main]
// Body and invariants: fuzz/src/policy_path.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::policy_path::run(data));
