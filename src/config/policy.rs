//! `[policy]`: settings of the route policy that are not per route — who is a trusted proxy
//! (and so may name the client address), which headers name it, which roles pass owner
//! checks by default, what applies to a path no rule matches, and how IPv6 clients are keyed.
//!
//! The values are the policy's to judge (networks, header names, auth requirements): the
//! gate checks them when it compiles the configuration into a `policy::Policy`, and places
//! each problem at its key here. The defaults are the policy's own (a test of the gate holds
//! the two to the same values).

use serde::Deserialize;

/// Trusted proxies by default: loopback, where nginx normally runs next to tollgate.
pub const DEFAULT_TRUSTED_PROXIES: [&str; 2] = ["127.0.0.1/32", "::1/128"];
/// Client-IP headers by default, in the order they are tried.
pub const DEFAULT_CLIENT_IP_HEADERS: [&str; 2] = ["x-forwarded-for", "x-real-ip"];
/// IPv6 clients are keyed per /64 by default.
pub const DEFAULT_IPV6_KEY_PREFIX: u8 = 64;

/// `[policy]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Networks (CIDR or bare address) whose connections may name the client in a
    /// client-IP header. Default: loopback, where nginx normally runs next to tollgate.
    pub trusted_proxies: Vec<String>,
    /// Whether a Unix-socket peer counts as a trusted proxy.
    pub trust_unix_socket: bool,
    /// Headers naming the client, tried in order; the first present decides.
    /// `x-forwarded-for` is walked from the right; any other holds one address.
    pub client_ip_headers: Vec<String>,
    /// Roles that pass owner checks on every rule that does not set `bypass_roles` itself.
    /// Default: none (an owner path is its owner's only, unless configured).
    pub owner_bypass_roles: Vec<String>,
    /// `required`, `optional` or `none`: the rule for paths no `[[routes]]` entry matches,
    /// and for entries that do not set `auth` and have no role, permission or owner
    /// requirement.
    pub default_auth: String,
    /// IPv6 clients are keyed by this many leading bits in `ip` key parts (1–128).
    pub ipv6_key_prefix: u8,
    /// `pass` (the default) or `judge`: what a CORS preflight request (`OPTIONS` with
    /// `Origin` and `Access-Control-Request-Method`, never credentials) gets. `pass`: it
    /// reaches the application on every route, anonymous, spending no tier quota; `judge`:
    /// its route rule decides, as for any request.
    pub cors_preflight: String,
    /// Names of `[limits.*]` that every passed preflight spends (keyed by their templates,
    /// as an anonymous request), to bound a flood of preflights. Default: none.
    pub cors_preflight_limits: Vec<String>,
    /// Whose reading of a request path rules are judged by: `strict` (refuse every form
    /// the backend families below read differently), `starlette` (also FastAPI), `node`
    /// (also Next.js), `express`, `go` or `servlet`. docs/policy.md has the table.
    pub path_reading: String,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: DEFAULT_TRUSTED_PROXIES.map(String::from).to_vec(),
            trust_unix_socket: true,
            client_ip_headers: DEFAULT_CLIENT_IP_HEADERS.map(String::from).to_vec(),
            owner_bypass_roles: Vec::new(),
            default_auth: "optional".into(),
            ipv6_key_prefix: DEFAULT_IPV6_KEY_PREFIX,
            cors_preflight: "pass".into(),
            cors_preflight_limits: Vec::new(),
            path_reading: "strict".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_from_toml_and_refuses_unknown_keys() {
        let c: PolicyConfig = toml::from_str(
            r#"
            trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]
            trust_unix_socket = false
            client_ip_headers = ["x-real-ip"]
            owner_bypass_roles = ["admin"]
            default_auth = "required"
            ipv6_key_prefix = 56
            cors_preflight = "judge"
            cors_preflight_limits = ["preflight"]
            path_reading = "starlette"
            "#,
        )
        .unwrap();
        assert_eq!(c.owner_bypass_roles, ["admin"]);
        assert_eq!(c.ipv6_key_prefix, 56);
        assert_eq!(c.path_reading, "starlette");
        assert!(!c.trust_unix_socket);
        assert_eq!(c.cors_preflight, "judge");
        assert_eq!(c.cors_preflight_limits, ["preflight"]);
        assert!(toml::from_str::<PolicyConfig>("trusted = []").is_err());
        let d = PolicyConfig::default();
        assert_eq!(d.default_auth, "optional");
        assert_eq!(d.cors_preflight, "pass");
        assert_eq!(d.trusted_proxies, ["127.0.0.1/32", "::1/128"]);
        assert_eq!(d.path_reading, "strict");
    }
}
