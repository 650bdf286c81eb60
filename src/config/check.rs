//! `[check]`: who may call `GET /check` and RESP `CHECK`, which spend and read any key's
//! quota (the same counters `/auth` spends).
//!
//! A caller is admitted when it comes over a Unix socket (`unix_socket`, on by default: the
//! socket file's permissions are the access control), or from an address inside `networks`
//! (loopback by default: the sidecar's own pod), or when it presents the secret of one of
//! the named `callers`. The gate builds its `CheckAccess` from this section (reading each
//! secret from the environment) and decides there; this module only says what is
//! well-formed.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::Deserialize;

use super::{ConfigPath, Validation};

/// The networks admitted by default: loopback, the sidecar's own pod.
pub const DEFAULT_CHECK_NETWORKS: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Most named callers (`[[check.callers]]`): every secret presented over HTTP is compared
/// with each of them.
pub const MAX_CHECK_CALLERS: usize = 16;

/// Shortest caller secret, in bytes (as for the admin secret).
pub const MIN_CHECK_SECRET_BYTES: usize = 32;

/// `[check]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CheckConfig {
    /// Networks (CIDR or bare address) whose connections may call `/check` and `CHECK`
    /// without a secret. Default: loopback. `[]`: no network is trusted (only the Unix
    /// socket and the named callers' secrets admit).
    pub networks: Vec<String>,
    /// Whether callers on a Unix socket (HTTP's `server.unix_socket`, RESP's
    /// `resp.unix_socket`) are admitted without a secret.
    pub unix_socket: bool,
    /// Named callers admitted from anywhere by their secret.
    pub callers: Vec<CheckCallerConfig>,
}

/// `[[check.callers]]`: one caller and the environment variable that holds its secret.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CheckCallerConfig {
    /// The caller's name: RESP's `AUTH <name> <secret>` user name, and how logs name it.
    pub name: String,
    /// The environment variable holding the caller's secret (at least 32 bytes).
    pub secret_env: String,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            networks: DEFAULT_CHECK_NETWORKS.map(String::from).to_vec(),
            unix_socket: true,
            callers: Vec::new(),
        }
    }
}

/// A network as `networks` may write it: a CIDR (`10.0.0.0/8`) or a bare address (a /32 or
/// /128). IPv4-mapped IPv6 peers are compared as IPv4.
pub fn parse_network(text: &str) -> Option<IpNet> {
    let t = text.trim();
    t.parse::<IpNet>()
        .ok()
        .or_else(|| t.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

impl CheckConfig {
    /// The networks, parsed (those that do not parse are left out: validation refuses them).
    pub fn parsed_networks(&self) -> Vec<IpNet> {
        self.networks
            .iter()
            .filter_map(|n| parse_network(n))
            .collect()
    }

    pub(super) fn validate(&self, at: &ConfigPath, v: &mut Validation<'_>) {
        for (i, n) in self.networks.iter().enumerate() {
            if parse_network(n).is_none() {
                v.invalid(
                    at.key("networks").index(i),
                    format!(
                        "{n:?} is not a network: write an address or a CIDR such as \
                         \"10.0.0.0/8\" or \"::1/128\""
                    ),
                );
            }
        }
        if self.callers.len() > MAX_CHECK_CALLERS {
            v.invalid(
                at.key("callers"),
                format!(
                    "{} callers; at most {MAX_CHECK_CALLERS} may be named",
                    self.callers.len()
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, c) in self.callers.iter().enumerate() {
            let here = at.key("callers").index(i);
            let name_ok = !c.name.is_empty()
                && c.name.len() <= 64
                && c.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !name_ok {
                v.invalid(
                    here.key("name"),
                    format!(
                        "{:?} is not a usable caller name: use 1 to 64 letters, digits, '_', \
                         '-' or '.'",
                        c.name
                    ),
                );
            } else if c.name == "default" {
                // RESP's `AUTH default <secret>` (and `AUTH <secret>`) is the admin secret.
                v.invalid(
                    here.key("name"),
                    "\"default\" is RESP's name of the admin user ([auth.admin]); pick \
                     another name",
                );
            } else if !seen.insert(c.name.as_str()) {
                v.invalid(
                    here.key("name"),
                    format!("the caller {:?} is named twice", c.name),
                );
            }
            v.env_var_name(here.key("secret_env"), &c.secret_env);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(text: &str) -> Result<Config, String> {
        let base = "[tiers.anonymous]\nlimit = 5\nwindow = \"1h\"\n[tiers.basic]\nlimit = 5\nwindow = \"1h\"\n";
        Config::from_toml_str(&format!("{base}{text}"), "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_admit_loopback_and_the_socket() {
        let c = CheckConfig::default();
        assert_eq!(c.networks, ["127.0.0.0/8", "::1/128"]);
        assert!(c.unix_socket);
        assert!(c.callers.is_empty());
        assert_eq!(load("").unwrap().check, c);
    }

    #[test]
    fn parses_networks_and_callers() {
        let c = load(
            "[check]\nnetworks = [\"10.0.0.0/8\", \"192.0.2.1\"]\nunix_socket = false\n\
             [[check.callers]]\nname = \"api\"\nsecret_env = \"API_SECRET\"\n",
        )
        .unwrap()
        .check;
        assert_eq!(c.parsed_networks().len(), 2);
        assert!(!c.unix_socket);
        assert_eq!(c.callers[0].name, "api");
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let e = load("[check]\nnetworks = [\"10.0.0.0/8\", \"nope\"]\n").unwrap_err();
        assert!(
            e.contains("t.toml:8:27:") && e.contains("check.networks[1]"),
            "{e}"
        );
        assert!(e.contains("CIDR"), "{e}");
        let e = load(
            "[[check.callers]]\nname = \"api\"\nsecret_env = \"A\"\n\
             [[check.callers]]\nname = \"api\"\nsecret_env = \"1B\"\n\
             [[check.callers]]\nname = \"default\"\nsecret_env = \"C\"\n",
        )
        .unwrap_err();
        assert!(e.contains("named twice"), "{e}");
        assert!(e.contains("check.callers[1].secret_env"), "{e}");
        assert!(e.contains("admin user"), "{e}");
        assert!(load("[check]\nbogus = 1\n").is_err());
    }
}
