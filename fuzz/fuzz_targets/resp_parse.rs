#![no_main]
// Body and invariants: fuzz/src/resp_parse.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::resp_parse::run(data));
