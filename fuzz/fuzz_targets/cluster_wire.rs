#![no_main]
// Body and invariants: fuzz/src/cluster_wire.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::cluster_wire::run(data));
