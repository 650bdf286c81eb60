//! `[[routes]]`: route rules (method, path pattern, auth requirement, roles, permissions,
//! owner parameter, limits).

use serde::Deserialize;

/// One route rule.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path pattern: exact (`/api/me`), prefix (`/api/upload**`, `/api/auth/**`), with
    /// `{param}` segments (`/api/users/{user_id}/**`).
    pub path: String,
    /// Methods this rule applies to; empty = all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `required`, `optional` or `none`.
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
    /// Names of `[limits.*]` that apply on this route, besides the tier's limit.
    #[serde(default)]
    pub limits: Vec<String>,
}
