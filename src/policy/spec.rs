//! What a [`Policy`](super::Policy) is compiled from, and everything that can be wrong with it.
//!
//! A [`PolicySpec`] is the policy as written — route rules ([`RouteSpec`]), the key template of
//! every tier and named limit ([`KeySpec`]), the client-IP and default settings — in plain
//! strings, so that whoever holds a policy description (the configuration, a test, a bench)
//! can hand it over without this module knowing where it came from. The grammar of each piece
//! (path patterns, methods, auth requirements, key templates, trusted proxies) is this
//! module's, and so are the errors: [`Policy::compile`](super::Policy::compile) reports every
//! problem it finds as a [`SpecError`] that says which rule, key or setting it is about, so the
//! caller can point at it (the gate places each at its file, line and column).

use serde::Deserialize;

use super::client_ip::{
    ClientIpConfigError, ClientIpResolver, DEFAULT_CLIENT_IP_HEADERS, DEFAULT_TRUSTED_PROXIES,
};
use super::key::{KeyPart, KeyTemplate, KeyTemplateError, DEFAULT_IPV6_KEY_PREFIX};
use super::path::PathReading;
use super::pattern::{PathPattern, PatternError};
use super::preflight::CorsPreflight;
use super::rule::{AuthRequirement, BadMethod, MethodSet};

/// The whole policy as written.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Route rules, in file order (the order breaks ties between equally specific rules).
    pub routes: Vec<RouteSpec>,
    /// The key template of every tier and named limit (they share one namespace).
    pub keys: Vec<KeySpec>,
    /// Networks (CIDR or bare address) whose connections may name the client in a
    /// client-IP header.
    pub trusted_proxies: Vec<String>,
    /// Whether a Unix-socket peer counts as a trusted proxy.
    pub trust_unix_socket: bool,
    /// Headers naming the client, tried in order.
    pub client_ip_headers: Vec<String>,
    /// Roles that pass owner checks on every rule that does not set `bypass_roles`.
    pub owner_bypass_roles: Vec<String>,
    /// `required`, `optional` or `none`: unmatched paths, and rules without `auth` or
    /// requirements.
    pub default_auth: String,
    /// IPv6 clients are keyed by this many leading bits in `ip` key parts (1–128).
    pub ipv6_key_prefix: u8,
    /// Headers that carry credentials besides the well-known ones
    /// ([`SECRET_HEADERS`](super::key::SECRET_HEADERS)), such as the API-key header: no key
    /// template may read them.
    pub credential_headers: Vec<String>,
    /// `pass` or `judge`: what a CORS preflight request gets (see
    /// [`preflight`](super::preflight)).
    pub cors_preflight: String,
    /// Names of the limits a passed preflight spends (keys from their templates, anonymous).
    pub cors_preflight_limits: Vec<String>,
    /// Which backend's reading of request targets paths are judged by (see
    /// [`PathReading`]): `strict`, `starlette`, `node`, `express`, `go` or `servlet`.
    pub path_reading: String,
}

impl Default for PolicySpec {
    /// No rules, no keys; loopback (and a Unix-socket peer) is a trusted proxy,
    /// `X-Forwarded-For` then `X-Real-IP`; `optional` auth; no bypass roles; IPv6 per /64;
    /// CORS preflights pass, spending no limit.
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            keys: Vec::new(),
            trusted_proxies: DEFAULT_TRUSTED_PROXIES.map(String::from).to_vec(),
            trust_unix_socket: true,
            client_ip_headers: DEFAULT_CLIENT_IP_HEADERS.map(String::from).to_vec(),
            owner_bypass_roles: Vec::new(),
            default_auth: AuthRequirement::Optional.as_str().into(),
            ipv6_key_prefix: DEFAULT_IPV6_KEY_PREFIX,
            credential_headers: Vec::new(),
            cors_preflight: CorsPreflight::default().as_str().into(),
            cors_preflight_limits: Vec::new(),
            path_reading: PathReading::default().as_str().into(),
        }
    }
}

/// One route rule as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Path pattern: exact (`/api/me`), prefix (`/api/upload**`, `/api/auth/**`), with
    /// `{param}` segments or `*` for any one segment (see [`pattern`](super::pattern)).
    pub path: String,
    /// Methods this rule applies to; empty = all. `GET` also covers `HEAD`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// `required`, `optional` or `none`. Unset: `required` when the rule has roles,
    /// permissions or an owner, otherwise the policy's default.
    #[serde(default)]
    pub auth: Option<String>,
    /// Any of these roles is required.
    #[serde(default)]
    pub roles: Vec<String>,
    /// All of these permissions are required.
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Name of a path parameter that must equal the caller's user id.
    #[serde(default)]
    pub owner: Option<String>,
    /// Roles that pass the owner check. Unset: the policy's `owner_bypass_roles`.
    #[serde(default)]
    pub bypass_roles: Option<Vec<String>>,
    /// Names of the limits that apply on this route, besides the tier's limit.
    #[serde(default)]
    pub limits: Vec<String>,
    /// Whether the caller's tier limit applies on this route (default `true`). `false`: a
    /// request this rule governs spends no tier quota; the rule's `limits` still apply.
    #[serde(default = "yes")]
    pub tier_limit: bool,
}

fn yes() -> bool {
    true
}

impl Default for RouteSpec {
    /// A rule for every path and method, with the policy's default auth and the tier's limit.
    fn default() -> Self {
        Self {
            path: String::new(),
            methods: Vec::new(),
            auth: None,
            roles: Vec::new(),
            permissions: Vec::new(),
            owner: None,
            bypass_roles: None,
            limits: Vec::new(),
            tier_limit: true,
        }
    }
}

/// The key template of one tier or named limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// The tier's or limit's name.
    pub name: String,
    /// The template (`ip:user`…); `None` for the default, `user`.
    pub template: Option<String>,
}

/// What is wrong with one route rule on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
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
    #[error(
        "never applies: rule #{earlier} has the same path shape and covers its methods \
         (the first of equally specific rules wins)"
    )]
    Shadowed { earlier: usize },
}

/// What is wrong with a setting that is not per route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// `trusted_proxies` or `client_ip_headers`.
    #[error(transparent)]
    ClientIp(#[from] ClientIpConfigError),
    #[error("default_auth = {0:?}: expected \"required\", \"optional\" or \"none\"")]
    BadDefaultAuth(String),
    #[error("ipv6_key_prefix = {0}: expected 1 to 128")]
    BadIpv6Prefix(u8),
    #[error("owner_bypass_roles: empty role name")]
    EmptyRole,
    #[error("cors_preflight = {0:?}: expected \"pass\" or \"judge\"")]
    BadCorsPreflight(String),
    #[error("cors_preflight_limits: empty limit name")]
    EmptyPreflightLimit,
    #[error("cors_preflight_limits: limit {0:?} is listed twice")]
    DuplicatePreflightLimit(String),
    #[error(
        "path_reading = {0:?}: expected \"strict\", \"starlette\", \"node\", \"express\", \"go\" \
         or \"servlet\""
    )]
    BadPathReading(String),
}

/// One problem in a [`PolicySpec`], with what it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Route rule `index` (0-based; messages count from 1).
    #[error("[[routes]] #{} (path {path:?}): {error}", index + 1)]
    Route {
        index: usize,
        path: String,
        #[source]
        error: RouteError,
    },
    /// `keys[index]`.
    #[error("{name}: key = {template:?}: {error}")]
    Key {
        index: usize,
        name: String,
        template: String,
        #[source]
        error: KeyError,
    },
    #[error("[policy] {0}")]
    Settings(#[source] SettingsError),
}

/// What is wrong with a key template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// It does not parse.
    #[error(transparent)]
    Template(#[from] KeyTemplateError),
    /// It reads a header listed in [`PolicySpec::credential_headers`].
    #[error("the {0} header carries credentials and cannot be part of a key")]
    CredentialHeader(String),
}

/// Why a [`PolicySpec`] cannot be compiled: every problem found, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub Vec<SpecError>);

impl std::fmt::Display for PolicyError {
    /// One problem a line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// The settings of a spec, parsed; every unusable one is reported into `errors` and replaced
/// by its default so that compiling can go on and find the other problems.
pub(super) struct Settings {
    pub client_ip: ClientIpResolver,
    pub default_auth: AuthRequirement,
    pub ipv6_key_prefix: u8,
    pub cors_preflight: CorsPreflight,
    pub path_reading: PathReading,
}

impl PolicySpec {
    pub(super) fn settings(&self, errors: &mut Vec<SpecError>) -> Settings {
        let mut bad = |e: SettingsError| errors.push(SpecError::Settings(e));
        let client_ip = ClientIpResolver::new(
            &self.trusted_proxies,
            self.trust_unix_socket,
            &self.client_ip_headers,
        )
        .unwrap_or_else(|e| {
            bad(e.into());
            ClientIpResolver::socket_only()
        });
        let default_auth = AuthRequirement::parse(&self.default_auth).unwrap_or_else(|| {
            bad(SettingsError::BadDefaultAuth(self.default_auth.clone()));
            AuthRequirement::Optional
        });
        if !(1..=128).contains(&self.ipv6_key_prefix) {
            bad(SettingsError::BadIpv6Prefix(self.ipv6_key_prefix));
        }
        if self.owner_bypass_roles.iter().any(|r| r.is_empty()) {
            bad(SettingsError::EmptyRole);
        }
        let cors_preflight = CorsPreflight::parse(&self.cors_preflight).unwrap_or_else(|| {
            bad(SettingsError::BadCorsPreflight(self.cors_preflight.clone()));
            CorsPreflight::default()
        });
        let limits = &self.cors_preflight_limits;
        if limits.iter().any(|l| l.is_empty()) {
            bad(SettingsError::EmptyPreflightLimit);
        } else if let Some((_, twice)) = limits
            .iter()
            .enumerate()
            .find(|(i, l)| limits[..*i].contains(l))
        {
            bad(SettingsError::DuplicatePreflightLimit(twice.clone()));
        }
        let path_reading = PathReading::parse(&self.path_reading).unwrap_or_else(|| {
            bad(SettingsError::BadPathReading(self.path_reading.clone()));
            PathReading::default()
        });
        Settings {
            client_ip,
            default_auth,
            ipv6_key_prefix: self.ipv6_key_prefix,
            cors_preflight,
            path_reading,
        }
    }

    /// Parses `keys[index]`'s template (the default, `user`, when unset) and refuses one
    /// that reads a credential header.
    pub(super) fn key_template(&self, index: usize) -> Result<KeyTemplate, SpecError> {
        let spec = &self.keys[index];
        let Some(text) = &spec.template else {
            return Ok(KeyTemplate::default());
        };
        let fail = |error: KeyError| SpecError::Key {
            index,
            name: spec.name.clone(),
            template: text.clone(),
            error,
        };
        let template = KeyTemplate::parse(text).map_err(|e| fail(e.into()))?;
        for part in template.parts() {
            if let KeyPart::Header(h) = part {
                let secret = self
                    .credential_headers
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(h.as_str()));
                if secret {
                    return Err(fail(KeyError::CredentialHeader(h.as_str().to_owned())));
                }
            }
        }
        Ok(template)
    }
}

impl RouteSpec {
    /// The parsed path pattern.
    pub fn pattern(&self) -> Result<PathPattern, RouteError> {
        PathPattern::parse(&self.path).map_err(|source| RouteError::Pattern {
            path: self.path.clone(),
            source,
        })
    }

    /// Whether the rule demands anything of the identity.
    pub fn has_requirements(&self) -> bool {
        !self.roles.is_empty() || !self.permissions.is_empty() || self.owner.is_some()
    }

    /// Checks the rule on its own and parses it: pattern, methods, the auth requirement in
    /// force (as written, else `required` when the rule has requirements, else `default`),
    /// names, the owner parameter. The first problem found is the rule's error.
    pub(super) fn parse(
        &self,
        default: AuthRequirement,
    ) -> Result<(PathPattern, MethodSet, AuthRequirement), RouteError> {
        let pattern = self.pattern()?;
        let methods = MethodSet::parse(&self.methods)?;
        let auth = match &self.auth {
            Some(a) => {
                let parsed =
                    AuthRequirement::parse(a).ok_or_else(|| RouteError::BadAuth(a.clone()))?;
                if self.has_requirements() && parsed != AuthRequirement::Required {
                    return Err(RouteError::RequirementsWithoutAuth(parsed.as_str()));
                }
                parsed
            }
            None if self.has_requirements() => AuthRequirement::Required,
            None => default,
        };
        if self.roles.iter().any(|r| r.is_empty()) {
            return Err(RouteError::EmptyName("roles"));
        }
        if self.permissions.iter().any(|p| p.is_empty()) {
            return Err(RouteError::EmptyName("permissions"));
        }
        match (&self.owner, &self.bypass_roles) {
            (Some(owner), _) if !pattern.has_param(owner) => {
                return Err(RouteError::UnknownOwnerParam {
                    owner: owner.clone(),
                    path: self.path.clone(),
                })
            }
            (None, Some(_)) => return Err(RouteError::BypassWithoutOwner),
            (Some(_), Some(roles)) if roles.iter().any(|r| r.is_empty()) => {
                return Err(RouteError::EmptyName("bypass_roles"))
            }
            _ => {}
        }
        for (i, name) in self.limits.iter().enumerate() {
            if name.is_empty() {
                return Err(RouteError::EmptyName("limits"));
            }
            if self.limits[..i].contains(name) {
                return Err(RouteError::DuplicateLimit(name.clone()));
            }
        }
        Ok((pattern, methods, auth))
    }
}

/// The rule a rule at `pattern`/`methods` can never win against: the first earlier one with
/// the same path shape whose methods cover its own. A method-specific rule beats an
/// any-method one whatever the order, so only a rule of the same kind can shadow.
pub(super) fn shadowed_by<'a>(
    mut earlier: impl Iterator<Item = (&'a PathPattern, &'a MethodSet)>,
    pattern: &PathPattern,
    methods: &MethodSet,
) -> Option<usize> {
    earlier.position(|(p, m)| {
        p.same_shape(pattern) && m.is_any() == methods.is_any() && m.covers(methods)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn route(toml_text: &str) -> RouteSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn rules(t: &str) -> Vec<RouteSpec> {
        #[derive(Deserialize)]
        struct W {
            routes: Vec<RouteSpec>,
        }
        toml::from_str::<W>(t).unwrap().routes
    }

    fn errors(spec: PolicySpec) -> Vec<SpecError> {
        Policy::compile(&spec).map_or_else(|e| e.0, |_| Vec::new())
    }

    /// The errors of a policy of `routes` alone (none when it compiles).
    fn route_errors(routes: Vec<RouteSpec>) -> Vec<SpecError> {
        errors(PolicySpec {
            routes,
            ..PolicySpec::default()
        })
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
        r.parse(AuthRequirement::Optional).unwrap();
        assert_eq!(r.bypass_roles.as_deref(), Some(&["admin".to_owned()][..]));
        assert!(toml::from_str::<RouteSpec>("path = \"/a\"\nfoo = 1").is_err());
    }

    #[test]
    fn each_mistake_in_a_rule_is_named() {
        let err = |t: &str| route(t).parse(AuthRequirement::Optional).unwrap_err();
        assert!(matches!(err("path = \"a\""), RouteError::Pattern { .. }));
        assert!(matches!(
            err("path = \"/a\"\nmethods = [\"G T\"]"),
            RouteError::Method(_)
        ));
        assert_eq!(
            err("path = \"/a\"\nauth = \"maybe\""),
            RouteError::BadAuth("maybe".into())
        );
        assert_eq!(
            err("path = \"/a\"\nauth = \"optional\"\nroles = [\"admin\"]"),
            RouteError::RequirementsWithoutAuth("optional")
        );
        assert_eq!(
            err("path = \"/u/{id}\"\nauth = \"none\"\nowner = \"id\""),
            RouteError::RequirementsWithoutAuth("none")
        );
        assert_eq!(
            err("path = \"/u/{id}\"\nowner = \"user_id\""),
            RouteError::UnknownOwnerParam {
                owner: "user_id".into(),
                path: "/u/{id}".into()
            }
        );
        assert_eq!(
            err("path = \"/u\"\nbypass_roles = [\"admin\"]"),
            RouteError::BypassWithoutOwner
        );
        assert_eq!(
            err("path = \"/u\"\nroles = [\"\"]"),
            RouteError::EmptyName("roles")
        );
        assert_eq!(
            err("path = \"/u\"\nlimits = [\"a\", \"a\"]"),
            RouteError::DuplicateLimit("a".into())
        );
    }

    #[test]
    fn effective_auth_defaults() {
        let auth = |t: &str, default| route(t).parse(default).unwrap().2;
        assert_eq!(
            auth("path = \"/u/{id}\"\nowner = \"id\"", AuthRequirement::None),
            AuthRequirement::Required
        );
        assert_eq!(
            auth("path = \"/p\"", AuthRequirement::Optional),
            AuthRequirement::Optional
        );
        assert_eq!(
            auth("path = \"/p\"\nauth = \"none\"", AuthRequirement::Required),
            AuthRequirement::None
        );
    }

    #[test]
    fn shadowed_rules_are_refused() {
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
        assert_eq!(route_errors(ok), []);

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
        let e = route_errors(shadowed);
        assert_eq!(
            e,
            [SpecError::Route {
                index: 1,
                path: "/api/users/*".into(),
                error: RouteError::Shadowed { earlier: 1 }
            }]
        );
        assert!(e[0]
            .to_string()
            .starts_with("[[routes]] #2 (path \"/api/users/*\"): never applies"));

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
        assert_eq!(route_errors(fine), []);
        let dup = rules(
            r#"
            [[routes]]
            path = "/a/**"
            [[routes]]
            path = "/a/**"
            auth = "none"
            "#,
        );
        assert!(matches!(
            route_errors(dup)[..],
            [SpecError::Route {
                index: 1,
                error: RouteError::Shadowed { earlier: 1 },
                ..
            }]
        ));
    }

    #[test]
    fn every_problem_is_reported() {
        let spec = PolicySpec {
            routes: rules(
                r#"
                [[routes]]
                path = "nope"
                [[routes]]
                path = "/ok"
                auth = "maybe"
                "#,
            ),
            keys: vec![
                KeySpec {
                    name: "basic".into(),
                    template: Some("ip:usr".into()),
                },
                KeySpec {
                    name: "auth".into(),
                    template: Some("ip:header=X-Api-Token".into()),
                },
            ],
            trusted_proxies: vec!["10.0.0.0/40".into()],
            default_auth: "maybe".into(),
            ipv6_key_prefix: 0,
            owner_bypass_roles: vec![String::new()],
            credential_headers: vec!["x-api-token".into()],
            ..PolicySpec::default()
        };
        let e = errors(spec);
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert_eq!(e.len(), 8, "{text:#?}");
        assert!(matches!(
            e[0],
            SpecError::Settings(SettingsError::ClientIp(_))
        ));
        assert_eq!(
            text[1],
            "[policy] default_auth = \"maybe\": expected \"required\", \"optional\" or \"none\""
        );
        assert_eq!(text[2], "[policy] ipv6_key_prefix = 0: expected 1 to 128");
        assert_eq!(text[3], "[policy] owner_bypass_roles: empty role name");
        assert!(text[4].starts_with("basic: key = \"ip:usr\": unknown key part \"usr\""));
        assert_eq!(
            e[5],
            SpecError::Key {
                index: 1,
                name: "auth".into(),
                template: "ip:header=X-Api-Token".into(),
                error: KeyError::CredentialHeader("x-api-token".into())
            }
        );
        assert!(text[6].starts_with("[[routes]] #1 (path \"nope\"): path"));
        assert!(text[7].starts_with("[[routes]] #2 (path \"/ok\"): auth = \"maybe\""));
    }

    #[test]
    fn tier_limit_is_on_unless_a_rule_turns_it_off() {
        assert!(route("path = \"/a\"").tier_limit);
        assert!(RouteSpec::default().tier_limit);
        assert!(!route("path = \"/healthz\"\ntier_limit = false").tier_limit);
        assert!(toml::from_str::<RouteSpec>("path = \"/a\"\ntier_limit = \"no\"").is_err());
    }

    #[test]
    fn each_mistake_in_the_preflight_settings_is_named() {
        let text = |cors: &str, limits: &[&str]| {
            errors(PolicySpec {
                cors_preflight: cors.into(),
                cors_preflight_limits: limits.iter().map(|l| l.to_string()).collect(),
                ..PolicySpec::default()
            })
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
        };
        assert!(text("pass", &["a", "b"]).is_empty());
        assert!(text("judge", &[]).is_empty());
        assert_eq!(
            text("allow", &[]),
            ["[policy] cors_preflight = \"allow\": expected \"pass\" or \"judge\""]
        );
        assert_eq!(
            text("pass", &["a", ""]),
            ["[policy] cors_preflight_limits: empty limit name"]
        );
        assert_eq!(
            text("pass", &["a", "b", "a"]),
            ["[policy] cors_preflight_limits: limit \"a\" is listed twice"]
        );
    }

    #[test]
    fn the_default_trusts_loopback_only() {
        let spec = PolicySpec::default();
        let p = Policy::compile(&spec).unwrap();
        let r = p.client_ip_resolver();
        assert!(r.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(r.is_trusted("::1".parse().unwrap()));
        assert!(!r.is_trusted("10.0.0.1".parse().unwrap()));
    }
}
