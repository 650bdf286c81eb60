//! Fuzz body: configuration loading (`gate::compile::from_toml_str`) on arbitrary text.
//!
//! A configuration the loader accepts must compile again, as the gate does at startup and on
//! reload, without error: loading is the only gate, so nothing it lets through may fail
//! later.

use tollgate::gate::compile;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(loaded) = compile::from_toml_str(text, "fuzz") else {
        return;
    };
    if let Err(e) = compile::compile(&loaded.config) {
        panic!("a validated configuration does not compile: {e}");
    }
}
