#![no_main]
// Body and invariants: fuzz/src/cluster_membership.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::cluster_membership::run(data));
