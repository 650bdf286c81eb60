#![no_main]
// Body and invariants: fuzz/src/cluster_revocation_frame.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::cluster_revocation_frame::run(data));
