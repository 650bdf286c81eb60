#![no_main]
// Body and invariants: fuzz/src/http_fastpath.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::http_fastpath::run(data));
