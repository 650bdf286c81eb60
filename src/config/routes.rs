//! `[[routes]]`: route rules (method, path pattern, auth requirement, roles, permissions,
//! owner parameter, limits), and their validation.
//!
//! [`RouteConfig::validate`] checks one rule on its own; [`validate_routes`] checks the list
//! against the named limits and for rules that could never apply. The compiled form, used
//! per request, is `policy::RouteRule` (see docs/policy.md for the matching order).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::LimitConfig;
use crate::policy::pattern::{PathPattern, PatternError};
use crate::policy::rule::{AuthRequirement, BadMethod, MethodSet};

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
}

/// What is wrong with one rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteConfigError {
    #[error("path {path:?}: {source}")]
    Pattern {
        path: String,
        #[source]
        source: PatternError,
    },
    #[error("{0}")]
    Method(#[from] BadMethod),
    #[error("auth = {0:?}: expected \"required\", \"optional\" or \"none\"")]
    BadAuth(String),
    #[error("roles, permissions and owner need auth = \"required\" (this rule says {0:?})")]
    RequirementsWithoutAuth(&'static str),
    #[error("owner = {owner:?}, but the path {path:?} has no {{{owner}}} parameter")]
    UnknownOwnerParam { owner: String, path: String },
    #[error("bypass_roles without owner has no effect")]
    BypassWithoutOwner,
    #[error("empty name in {0}")]
    EmptyName(&'static str),
    #[error("limit {0:?} is listed twice")]
    DuplicateLimit(String),
    #[error("limit {0:?} is not defined in [limits]")]
    UnknownLimit(String),
    #[error(
        "never applies: rule #{earlier} has the same path shape and covers its methods \
         (the first of equally specific rules wins)"
    )]
    Shadowed { earlier: usize },
}

/// A rule's error with its position, as the config loader reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[[routes]] #{number} (path {path:?}): {error}")]
pub struct RoutesError {
    /// 1-based position of the rule in the file.
    pub number: usize,
    pub path: String,
    #[source]
    pub error: RouteConfigError,
}

impl RouteConfig {
    /// Checks the rule on its own: pattern syntax, methods, auth, the owner parameter.
    pub fn validate(&self) -> Result<(), RouteConfigError> {
        let pattern = self.pattern()?;
        self.method_set()?;
        if let Some(auth) = &self.auth {
            let parsed = AuthRequirement::parse(auth)
                .ok_or_else(|| RouteConfigError::BadAuth(auth.clone()))?;
            if self.has_requirements() && parsed != AuthRequirement::Required {
                return Err(RouteConfigError::RequirementsWithoutAuth(parsed.as_str()));
            }
        }
        if self.roles.iter().any(|r| r.is_empty()) {
            return Err(RouteConfigError::EmptyName("roles"));
        }
        if self.permissions.iter().any(|p| p.is_empty()) {
            return Err(RouteConfigError::EmptyName("permissions"));
        }
        match (&self.owner, &self.bypass_roles) {
            (Some(owner), _) if !pattern.has_param(owner) => {
                return Err(RouteConfigError::UnknownOwnerParam {
                    owner: owner.clone(),
                    path: self.path.clone(),
                })
            }
            (None, Some(_)) => return Err(RouteConfigError::BypassWithoutOwner),
            (Some(_), Some(roles)) if roles.iter().any(|r| r.is_empty()) => {
                return Err(RouteConfigError::EmptyName("bypass_roles"))
            }
            _ => {}
        }
        for (i, name) in self.limits.iter().enumerate() {
            if name.is_empty() {
                return Err(RouteConfigError::EmptyName("limits"));
            }
            if self.limits[..i].contains(name) {
                return Err(RouteConfigError::DuplicateLimit(name.clone()));
            }
        }
        Ok(())
    }

    /// The compiled path pattern.
    pub fn pattern(&self) -> Result<PathPattern, RouteConfigError> {
        PathPattern::parse(&self.path).map_err(|source| RouteConfigError::Pattern {
            path: self.path.clone(),
            source,
        })
    }

    /// The compiled method set.
    pub fn method_set(&self) -> Result<MethodSet, RouteConfigError> {
        Ok(MethodSet::parse(&self.methods)?)
    }

    /// Whether the rule demands anything of the identity.
    pub fn has_requirements(&self) -> bool {
        !self.roles.is_empty() || !self.permissions.is_empty() || self.owner.is_some()
    }

    /// The auth requirement in force: as written, else `required` when the rule has
    /// requirements, else `default`.
    pub fn effective_auth(
        &self,
        default: AuthRequirement,
    ) -> Result<AuthRequirement, RouteConfigError> {
        match &self.auth {
            Some(a) => {
                AuthRequirement::parse(a).ok_or_else(|| RouteConfigError::BadAuth(a.clone()))
            }
            None if self.has_requirements() => Ok(AuthRequirement::Required),
            None => Ok(default),
        }
    }
}

/// Checks every rule, that every listed limit exists, and that no rule is shadowed by an
/// earlier one with the same path shape whose methods cover its own (it could never apply).
pub fn validate_routes(
    routes: &[RouteConfig],
    limits: &BTreeMap<String, LimitConfig>,
) -> Result<(), RoutesError> {
    let mut compiled: Vec<(PathPattern, MethodSet)> = Vec::with_capacity(routes.len());
    for (i, route) in routes.iter().enumerate() {
        let at = |error| RoutesError {
            number: i + 1,
            path: route.path.clone(),
            error,
        };
        route.validate().map_err(at)?;
        if let Some(name) = route.limits.iter().find(|n| !limits.contains_key(*n)) {
            return Err(at(RouteConfigError::UnknownLimit(name.clone())));
        }
        let pattern = route.pattern().map_err(at)?;
        let methods = route.method_set().map_err(at)?;
        let shadow = compiled.iter().position(|(p, m)| {
            // A method-specific rule beats an any-method one whatever the order, so only a
            // rule of the same kind can shadow.
            p.same_shape(&pattern) && m.is_any() == methods.is_any() && m.covers(&methods)
        });
        if let Some(j) = shadow {
            return Err(at(RouteConfigError::Shadowed { earlier: j + 1 }));
        }
        compiled.push((pattern, methods));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(toml_text: &str) -> RouteConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn limits(names: &[&str]) -> BTreeMap<String, LimitConfig> {
        names
            .iter()
            .map(|n| {
                (
                    (*n).to_owned(),
                    LimitConfig {
                        limit: 5,
                        window: "5m".into(),
                        algorithm: Default::default(),
                        key: None,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn parses_every_field() {
        let r = route(
            r#"
            path = "/api/users/{user_id}/**"
            methods = ["GET", "PUT"]
            auth = "required"
            roles = ["user", "admin"]
            permissions = ["tasks:read"]
            owner = "user_id"
            bypass_roles = ["admin"]
            limits = ["upload"]
            "#,
        );
        r.validate().unwrap();
        assert_eq!(r.bypass_roles.as_deref(), Some(&["admin".to_owned()][..]));
        assert!(toml::from_str::<RouteConfig>("path = \"/x\"\nowner_param = \"x\"").is_err());
    }

    #[test]
    fn single_rule_errors() {
        let err = |t: &str| route(t).validate().unwrap_err();
        assert!(matches!(
            err("path = \"api\""),
            RouteConfigError::Pattern { .. }
        ));
        assert!(matches!(
            err("path = \"/a\"\nmethods = [\"G T\"]"),
            RouteConfigError::Method(_)
        ));
        assert_eq!(
            err("path = \"/a\"\nauth = \"yes\""),
            RouteConfigError::BadAuth("yes".into())
        );
        assert_eq!(
            err("path = \"/a\"\nauth = \"optional\"\nroles = [\"admin\"]"),
            RouteConfigError::RequirementsWithoutAuth("optional")
        );
        assert_eq!(
            err("path = \"/u/{id}\"\nauth = \"none\"\nowner = \"id\""),
            RouteConfigError::RequirementsWithoutAuth("none")
        );
        assert_eq!(
            err("path = \"/u/{id}\"\nowner = \"user_id\""),
            RouteConfigError::UnknownOwnerParam {
                owner: "user_id".into(),
                path: "/u/{id}".into()
            }
        );
        assert_eq!(
            err("path = \"/u\"\nbypass_roles = [\"admin\"]"),
            RouteConfigError::BypassWithoutOwner
        );
        assert_eq!(
            err("path = \"/u\"\nroles = [\"\"]"),
            RouteConfigError::EmptyName("roles")
        );
        assert_eq!(
            err("path = \"/u\"\nlimits = [\"a\", \"a\"]"),
            RouteConfigError::DuplicateLimit("a".into())
        );
    }

    #[test]
    fn effective_auth_defaults() {
        let r = route("path = \"/u/{id}\"\nowner = \"id\"");
        assert_eq!(
            r.effective_auth(AuthRequirement::None).unwrap(),
            AuthRequirement::Required
        );
        let r = route("path = \"/p\"");
        assert_eq!(
            r.effective_auth(AuthRequirement::Optional).unwrap(),
            AuthRequirement::Optional
        );
        let r = route("path = \"/p\"\nauth = \"none\"");
        assert_eq!(
            r.effective_auth(AuthRequirement::Required).unwrap(),
            AuthRequirement::None
        );
    }

    #[test]
    fn list_checks() {
        let rules = |t: &str| -> Vec<RouteConfig> {
            #[derive(Deserialize)]
            struct W {
                routes: Vec<RouteConfig>,
            }
            toml::from_str::<W>(t).unwrap().routes
        };
        let ok = rules(
            r#"
            [[routes]]
            path = "/api/auth/**"
            limits = ["auth"]
            [[routes]]
            path = "/api/users/{id}/**"
            owner = "id"
            [[routes]]
            path = "/api/users/{id}/**"
            methods = ["DELETE"]
            roles = ["admin"]
            "#,
        );
        validate_routes(&ok, &limits(&["auth"])).unwrap();
        let e = validate_routes(&ok, &limits(&[])).unwrap_err();
        assert_eq!(e.number, 1);
        assert_eq!(e.error, RouteConfigError::UnknownLimit("auth".into()));
        assert!(e
            .to_string()
            .starts_with("[[routes]] #1 (path \"/api/auth/**\"): limit"));

        let shadowed = rules(
            r#"
            [[routes]]
            path = "/api/users/{id}"
            methods = ["GET", "POST"]
            [[routes]]
            path = "/api/users/*"
            methods = ["GET"]
            "#,
        );
        let e = validate_routes(&shadowed, &limits(&[])).unwrap_err();
        assert_eq!(e.number, 2);
        assert_eq!(e.error, RouteConfigError::Shadowed { earlier: 1 });

        // A later method-specific rule is not shadowed by an earlier any-method one.
        let fine = rules(
            r#"
            [[routes]]
            path = "/a/**"
            [[routes]]
            path = "/a/**"
            methods = ["POST"]
            "#,
        );
        validate_routes(&fine, &limits(&[])).unwrap();
        let dup = rules(
            r#"
            [[routes]]
            path = "/a/**"
            [[routes]]
            path = "/a/**"
            auth = "none"
            "#,
        );
        assert!(validate_routes(&dup, &limits(&[])).is_err());
    }
}
