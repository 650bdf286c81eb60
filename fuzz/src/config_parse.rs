//! Fuzz body: configuration loading (`Config::from_toml_str`) on arbitrary text.
//!
//! A configuration the loader accepts must compile into a route policy without error:
//! validation is the only gate, so nothing it lets through may fail later at startup or on
//! reload.

use tollgate::config::Config;
use tollgate::policy::Policy;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml_str(text, "fuzz") else {
        return;
    };
    if let Err(e) = Policy::from_config(&config) {
        panic!("a validated configuration does not compile into a policy: {e}");
    }
}
