//! `[[routes]]`: route rules (method, path pattern, auth requirement, roles, permissions,
//! owner parameter, limits), as written.
//!
//! This module checks what the configuration alone can judge (that each named limit exists,
//! in `Config::validate`); the grammar of a rule — patterns, methods, auth requirements,
//! owner parameters, rules that could never apply — is the policy's, checked when the gate
//! compiles the configuration into a `policy::Policy` (see docs/policy.md for the matching
//! order).

use serde::Deserialize;

/// One route rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path pattern: exact (`/api/me`), prefix (`/api/upload**`, `/api/auth/**`), with
    /// `{param}` segments (`/api/users/{user_id}/**`) or `*` for any one segment.
    pub path: String,
    /// Methods this rule applies to; empty = all. `GET` also covers `HEAD`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `required`, `optional` or `none`. Unset: `required` when the rule has roles,
    /// permissions or an owner, otherwise `[policy] default_auth`.
    #[serde(default)]
    pub auth: Option<String>,
    /// Any of these roles is required (empty = no role requirement).
    #[serde(default)]
    pub roles: Vec<String>,
    /// All of these permissions are required.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Name of a path parameter that must equal the token's user id.
    #[serde(default)]
    pub owner: Option<String>,
    /// Roles that pass the owner check on any user's path. Unset: `[policy]
    /// owner_bypass_roles`. Only meaningful with `owner`.
    #[serde(default)]
    pub bypass_roles: Option<Vec<String>>,
    /// Names of `[limits.*]` that apply on this route, besides the tier's limit.
    #[serde(default)]
    pub limits: Vec<String>,
    /// Whether the caller's tier limit applies on this route. `false`: requests this rule
    /// governs spend no tier quota (a health check, static files, a public endpoint); the
    /// rule's `limits` still apply, and the rule's `auth` is still enforced.
    #[serde(default = "yes")]
    pub tier_limit: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field_and_refuses_unknown_ones() {
        let r: RouteConfig = toml::from_str(
            r#"
            path = "/api/users/{user_id}/**"
            methods = ["GET", "PUT"]
            auth = "required"
            roles = ["user", "admin"]
            permissions = ["tasks:read"]
            owner = "user_id"
            bypass_roles = ["admin"]
            limits = ["upload"]
            tier_limit = false
            "#,
        )
        .unwrap();
        assert!(!r.tier_limit);
        assert!(
            toml::from_str::<RouteConfig>("path = \"/a\"")
                .unwrap()
                .tier_limit
        );
        assert_eq!(r.bypass_roles.as_deref(), Some(&["admin".to_owned()][..]));
        assert_eq!(r.owner.as_deref(), Some("user_id"));
        assert!(toml::from_str::<RouteConfig>("path = \"/a\"\nfoo = 1").is_err());
    }
}
