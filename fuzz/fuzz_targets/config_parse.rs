#![no_main]
// Body and invariants: fuzz/src/config_parse.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_fuzz::config_parse::run(data));
