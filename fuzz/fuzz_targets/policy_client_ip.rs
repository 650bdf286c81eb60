#![no_main]
// Body and invariants: fuzz/src/policy_client_ip.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::policy_client_ip::run(data));
