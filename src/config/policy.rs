//! `[policy]`: settings of the route policy that are not per route — who is a trusted proxy
//! (and so may name the client address), which headers name it, which roles pass owner
//! checks by default, what applies to a path no rule matches, and how IPv6 clients are keyed.

use serde::Deserialize;

use crate::policy::client_ip::{
    ClientIpConfigError, ClientIpResolver, DEFAULT_CLIENT_IP_HEADERS, DEFAULT_TRUSTED_PROXIES,
};
use crate::policy::key::DEFAULT_IPV6_KEY_PREFIX;
use crate::policy::rule::AuthRequirement;
use crate::policy::PolicySettings;

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
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            trusted_proxies: DEFAULT_TRUSTED_PROXIES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            trust_unix_socket: true,
            client_ip_headers: DEFAULT_CLIENT_IP_HEADERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            owner_bypass_roles: Vec::new(),
            default_auth: "optional".into(),
            ipv6_key_prefix: DEFAULT_IPV6_KEY_PREFIX,
        }
    }
}

/// What is wrong with `[policy]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyConfigError {
    #[error("[policy] {0}")]
    ClientIp(#[from] ClientIpConfigError),
    #[error("[policy] default_auth = {0:?}: expected \"required\", \"optional\" or \"none\"")]
    BadDefaultAuth(String),
    #[error("[policy] ipv6_key_prefix = {0}: expected 1 to 128")]
    BadIpv6Prefix(u8),
    #[error("[policy] owner_bypass_roles: empty role name")]
    EmptyRole,
}

impl PolicyConfig {
    /// Checks every field; the config loader calls this.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        self.client_ip_resolver()?;
        self.default_auth()?;
        if !(1..=128).contains(&self.ipv6_key_prefix) {
            return Err(PolicyConfigError::BadIpv6Prefix(self.ipv6_key_prefix));
        }
        if self.owner_bypass_roles.iter().any(|r| r.is_empty()) {
            return Err(PolicyConfigError::EmptyRole);
        }
        Ok(())
    }

    /// The parsed `default_auth`.
    pub fn default_auth(&self) -> Result<AuthRequirement, PolicyConfigError> {
        AuthRequirement::parse(&self.default_auth)
            .ok_or_else(|| PolicyConfigError::BadDefaultAuth(self.default_auth.clone()))
    }

    /// Validates and converts into the settings `policy::Policy::compile` takes.
    pub fn to_settings(&self) -> Result<PolicySettings, PolicyConfigError> {
        self.validate()?;
        Ok(PolicySettings {
            client_ip: self.client_ip_resolver()?,
            default_auth: self.default_auth()?,
            owner_bypass_roles: self.owner_bypass_roles.clone(),
            ipv6_key_prefix: self.ipv6_key_prefix,
        })
    }

    /// The client-IP resolver these settings describe.
    pub fn client_ip_resolver(&self) -> Result<ClientIpResolver, PolicyConfigError> {
        Ok(ClientIpResolver::new(
            &self.trusted_proxies,
            self.trust_unix_socket,
            &self.client_ip_headers,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_trusts_loopback_only() {
        let c = PolicyConfig::default();
        c.validate().unwrap();
        let r = c.client_ip_resolver().unwrap();
        assert!(r.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(r.is_trusted("::1".parse().unwrap()));
        assert!(!r.is_trusted("10.0.0.1".parse().unwrap()));
        assert_eq!(c.default_auth().unwrap(), AuthRequirement::Optional);
    }

    #[test]
    fn parses_from_toml_and_rejects_mistakes() {
        let c: PolicyConfig = toml::from_str(
            r#"
            trusted_proxies = ["10.0.0.0/8", "192.0.2.1"]
            trust_unix_socket = false
            client_ip_headers = ["x-real-ip"]
            owner_bypass_roles = ["admin"]
            default_auth = "required"
            ipv6_key_prefix = 56
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.owner_bypass_roles, ["admin"]);
        assert!(toml::from_str::<PolicyConfig>("trusted = []").is_err());
        let bad = |f: fn(&mut PolicyConfig)| {
            let mut c = PolicyConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(matches!(
            bad(|c| c.trusted_proxies = vec!["10.0.0.0/40".into()]),
            PolicyConfigError::ClientIp(_)
        ));
        assert!(matches!(
            bad(|c| c.default_auth = "maybe".into()),
            PolicyConfigError::BadDefaultAuth(_)
        ));
        assert_eq!(
            bad(|c| c.ipv6_key_prefix = 0),
            PolicyConfigError::BadIpv6Prefix(0)
        );
        assert_eq!(
            bad(|c| c.owner_bypass_roles = vec![String::new()]),
            PolicyConfigError::EmptyRole
        );
    }
}
