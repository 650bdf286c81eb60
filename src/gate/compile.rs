//! The one place a [`Config`] becomes what the gate runs on: the engine's [`LimitSpec`]s of
//! every tier and named limit, and the route [`Policy`].
//!
//! The configuration is data and checks what its own vocabulary decides (names, bounds,
//! durations, references between sections); the policy owns the grammar of route rules, key
//! templates and client-IP settings and reports what is wrong with a [`PolicySpec`] as
//! [`SpecError`]s. This module hands the policy its spec, built from the configuration, and
//! turns each [`SpecError`] back into a [`Problem`] at the key it is about, so that every
//! problem, whoever found it, is printed as `file:line:column: key: what is wrong`.
//!
//! Everything that loads a configuration to run it goes through here: `tollgate
//! check-config` and `serve` ([`load`]), SIGHUP ([`load`], then
//! [`Gate::reload_compiled`](super::Gate::reload_compiled)), and [`Gate::new`](super::Gate::new)
//! / [`Gate::reload`](super::Gate::reload) for a configuration built in code ([`compile`]).

use std::path::Path;
use std::sync::Arc;

use crate::config::{self, Config, ConfigError, ConfigPath, LimitConfig, Problem, RouteConfig};
use crate::limiter::{self, Algorithm, LimitSpec};
use crate::policy::spec::{KeyError, RouteError, SettingsError};
use crate::policy::{KeySpec, Policy, PolicySpec, RouteSpec, SpecError};

// The configuration bounds its values by the engine's limits without depending on the engine;
// these keep the two the same.
const _: () = assert!(config::MAX_LIMIT == limiter::MAX_LIMIT);
const _: () = assert!(config::MAX_WINDOW_SECS == limiter::MAX_WINDOW_SECS);
const _: () = assert!(config::SLIDING_LOG_MAX == limiter::SLIDING_LOG_MAX);
// A rendered key is handed to the limiter through the gate, which refuses longer keys.
const _: () = assert!(crate::policy::key::MAX_RENDERED_KEY_BYTES <= super::MAX_KEY_BYTES);

/// A configuration compiled: what the gate swaps in as one.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The configuration it was compiled from.
    pub config: Arc<Config>,
    /// Every tier's limit, sorted by name.
    pub tiers: Vec<LimitSpec>,
    /// Every named limit, sorted by name.
    pub limits: Vec<LimitSpec>,
    /// The route policy: rules, key templates, trusted proxies.
    pub policy: Policy,
}

/// Reads, validates and compiles a configuration file; every problem is placed at its file,
/// line and column.
pub fn load(path: impl AsRef<Path>) -> Result<Compiled, ConfigError> {
    let path = path.as_ref();
    from_toml_str(&Config::read(path)?, &path.display().to_string())
}

/// [`load`] for configuration text; `origin` names it in errors.
pub fn from_toml_str(text: &str, origin: &str) -> Result<Compiled, ConfigError> {
    let (config, source) = Config::parse(text, origin)?;
    let mut problems = config.problems();
    let policy = compile_policy(&config).map_err(|more| problems.extend(more));
    match policy {
        Ok(policy) if problems.is_empty() => Ok(assemble(config, policy)),
        _ => Err(source.invalid(problems)),
    }
}

/// Compiles a configuration built in code. Checks what running it needs — every limit's
/// values, the routes' references to limits, everything the policy checks — but not the
/// rest of [`Config::validate`]; problems come without positions.
pub fn compile(config: &Config) -> Result<Compiled, ConfigError> {
    let mut problems = config.limit_problems();
    let policy = compile_policy(config).map_err(|more| problems.extend(more));
    match policy {
        Ok(policy) if problems.is_empty() => Ok(assemble(config.clone(), policy)),
        _ => Err(Config::unplaced(problems)),
    }
}

/// A limit of the configuration as the engine's spec, named `name` (the tier's or the
/// limit's). Every component that fingerprints a limit builds it here.
pub fn limit_spec(name: &str, lc: &LimitConfig) -> LimitSpec {
    LimitSpec {
        name: name.into(),
        limit: lc.limit,
        window: lc.window(),
        algorithm: match lc.algorithm {
            config::Algorithm::SlidingWindow => Algorithm::SlidingWindow,
            config::Algorithm::SlidingLog => Algorithm::SlidingLog,
        },
    }
}

fn assemble(config: Config, policy: Policy) -> Compiled {
    let specs = |m: &std::collections::BTreeMap<String, LimitConfig>| {
        m.iter().map(|(n, lc)| limit_spec(n, lc)).collect()
    };
    Compiled {
        tiers: specs(&config.tiers),
        limits: specs(&config.limits),
        config: Arc::new(config),
        policy,
    }
}

fn compile_policy(config: &Config) -> Result<Policy, Vec<Problem>> {
    Policy::compile(&policy_spec(config))
        .map_err(|e| e.0.into_iter().map(|e| place(config, e)).collect())
}

/// The policy's description of itself, from `[[routes]]`, the tiers' and limits' `key`s,
/// `[policy]`, and the API-key header (a credential no key may read).
fn policy_spec(config: &Config) -> PolicySpec {
    let p = &config.policy;
    PolicySpec {
        routes: config.routes.iter().map(route_spec).collect(),
        keys: config
            .tiers
            .iter()
            .chain(&config.limits)
            .map(|(name, lc)| KeySpec {
                name: name.clone(),
                template: lc.key.clone(),
            })
            .collect(),
        trusted_proxies: p.trusted_proxies.clone(),
        trust_unix_socket: p.trust_unix_socket,
        client_ip_headers: p.client_ip_headers.clone(),
        owner_bypass_roles: p.owner_bypass_roles.clone(),
        default_auth: p.default_auth.clone(),
        ipv6_key_prefix: p.ipv6_key_prefix,
        credential_headers: vec![config.auth.api_key_header.clone()],
        cors_preflight: p.cors_preflight.clone(),
        cors_preflight_limits: p.cors_preflight_limits.clone(),
        path_reading: p.path_reading.clone(),
    }
}

fn route_spec(r: &RouteConfig) -> RouteSpec {
    RouteSpec {
        path: r.path.clone(),
        methods: r.methods.clone(),
        auth: r.auth.clone(),
        roles: r.roles.clone(),
        permissions: r.permissions.clone(),
        owner: r.owner.clone(),
        bypass_roles: r.bypass_roles.clone(),
        limits: r.limits.clone(),
        tier_limit: r.tier_limit,
    }
}

/// The key a policy problem is about, and what to say there.
fn place(config: &Config, e: SpecError) -> Problem {
    let root = ConfigPath::root();
    match e {
        SpecError::Route { index, error, .. } => {
            let at = root.key("routes").index(index);
            let path = match config.routes.get(index) {
                Some(route) => route_error_path(route, &at, &error),
                None => at,
            };
            Problem::value(path, error)
        }
        SpecError::Key {
            index,
            template,
            error,
            ..
        } => {
            let (section, name) = match config.tiers.keys().nth(index) {
                Some(name) => ("tiers", name.as_str()),
                None => (
                    "limits",
                    config
                        .limits
                        .keys()
                        .nth(index - config.tiers.len())
                        .map_or("", String::as_str),
                ),
            };
            let path = root.key(section).key(name).key("key");
            match error {
                KeyError::CredentialHeader(h) => Problem::value(
                    path,
                    format!(
                        "{h} is the API-key header (auth.api_key_header); a credential cannot \
                         be part of a key"
                    ),
                ),
                KeyError::Template(e) => Problem::value(path, format!("{template:?}: {e}")),
            }
        }
        SpecError::Settings(e) => {
            use crate::policy::client_ip::ClientIpConfigError;
            let at = root.key("policy");
            let path = match &e {
                SettingsError::ClientIp(ClientIpConfigError::BadNetwork(_)) => {
                    at.key("trusted_proxies")
                }
                SettingsError::ClientIp(_) => at.key("client_ip_headers"),
                SettingsError::BadDefaultAuth(_) => at.key("default_auth"),
                SettingsError::BadIpv6Prefix(_) => at.key("ipv6_key_prefix"),
                SettingsError::EmptyRole => at.key("owner_bypass_roles"),
                SettingsError::BadCorsPreflight(_) => at.key("cors_preflight"),
                SettingsError::EmptyPreflightLimit => at.key("cors_preflight_limits"),
                SettingsError::DuplicatePreflightLimit(name) => {
                    let limits = at.key("cors_preflight_limits");
                    match config
                        .policy
                        .cors_preflight_limits
                        .iter()
                        .rposition(|l| l == name)
                    {
                        Some(j) => limits.index(j),
                        None => limits,
                    }
                }
                SettingsError::BadPathReading(_) => at.key("path_reading"),
            };
            Problem::value(path, e)
        }
    }
}

/// The key of a route rule a [`RouteError`] is about.
fn route_error_path(route: &RouteConfig, at: &ConfigPath, error: &RouteError) -> ConfigPath {
    match error {
        RouteError::Pattern { .. } | RouteError::Shadowed { .. } => at.key("path"),
        RouteError::Method(_) => at.key("methods"),
        RouteError::BadAuth(_) | RouteError::RequirementsWithoutAuth(_) => at.key("auth"),
        RouteError::UnknownOwnerParam { .. } => at.key("owner"),
        RouteError::BypassWithoutOwner => at.key("bypass_roles"),
        RouteError::EmptyName(field) => at.key(field),
        RouteError::DuplicateLimit(name) => {
            let limits = at.key("limits");
            match route.limits.iter().rposition(|l| l == name) {
                Some(j) => limits.index(j),
                None => limits,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AuthConfig;
    use crate::policy::key::KeyPart;

    #[test]
    fn the_embedded_default_compiles_with_the_documented_keys() {
        let c = compile(&Config::embedded()).unwrap();
        assert_eq!(
            c.tiers.iter().map(|t| &*t.name).collect::<Vec<_>>(),
            ["anonymous", "api_key", "basic", "premium"]
        );
        assert_eq!(
            c.policy.key_template("anonymous").unwrap().parts(),
            [KeyPart::Ip]
        );
        assert_eq!(
            c.policy.key_template("basic").unwrap().parts(),
            [KeyPart::User]
        );
        assert_eq!(c.policy.rules().len(), 9);
    }

    #[test]
    fn the_configuration_defaults_are_the_policy_defaults() {
        // config/policy.rs restates the policy's defaults (it may not depend on the policy).
        let spec = policy_spec(&Config::default());
        let want = PolicySpec {
            credential_headers: vec![AuthConfig::default().api_key_header],
            ..PolicySpec::default()
        };
        assert_eq!(spec, want);
    }

    #[test]
    fn a_hand_built_configuration_is_checked_without_positions() {
        let mut c = Config::embedded();
        c.limits.get_mut("auth").unwrap().key = Some("ip:usr".into());
        c.routes[0].path = "api".into();
        let e = compile(&c).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.line(), None);
        assert!(
            text.contains("limits.auth.key: \"ip:usr\": unknown key part \"usr\""),
            "{text}"
        );
        assert!(text.contains("routes[0].path: path \"api\""), "{text}");
    }

    #[test]
    fn preflight_and_tier_limit_mistakes_are_placed_at_their_keys() {
        let base = "[tiers.anonymous]\nlimit = 1\nwindow = \"1h\"\n\
                    [tiers.basic]\nlimit = 1\nwindow = \"1h\"\n";
        let err = |extra: &str| {
            from_toml_str(&format!("{base}{extra}"), "t.toml")
                .unwrap_err()
                .to_string()
        };
        let e = err("[policy]\ncors_preflight = \"allow\"\n");
        assert!(
            e.contains("t.toml:8:18: policy.cors_preflight: cors_preflight = \"allow\": expected \"pass\" or \"judge\""),
            "{e}"
        );
        let e = err("[policy]\ncors_preflight_limits = [\"nope\"]\n");
        assert!(
            e.contains("t.toml:8:26: policy.cors_preflight_limits[0]: unknown limit \"nope\""),
            "{e}"
        );
        let e = err("[policy]\ncors_preflight_limits = [\"anonymous\"]\n");
        assert!(e.contains("is a tier"), "{e}");
        let e = err("[[routes]]\npath = \"/healthz\"\ntier_limit = \"no\"\n");
        assert!(e.contains("t.toml:9:14") && e.contains("boolean"), "{e}");
        let ok = from_toml_str(
            &format!(
                "{base}[limits.pre]\nlimit = 9\nwindow = \"1m\"\n[policy]\n\
                 cors_preflight = \"judge\"\ncors_preflight_limits = [\"pre\"]\n\
                 [[routes]]\npath = \"/healthz\"\ntier_limit = false\n"
            ),
            "t.toml",
        )
        .unwrap();
        assert!(!ok.policy.rules()[0].tier_limit);
        assert_eq!(&*ok.policy.preflight_limits()[0].name, "pre");
    }

    #[test]
    fn a_key_may_not_read_the_api_key_header() {
        let text = format!(
            "{}\n[auth]\napi_key_header = \"x-token\"\n",
            config::EMBEDDED_DEFAULT.replace("key = \"ip\"\n", "key = \"ip:header=X-Token\"\n")
        );
        let e = from_toml_str(&text, "t.toml").unwrap_err();
        assert!(
            e.to_string().contains(
                "tiers.anonymous.key: x-token is the API-key header (auth.api_key_header)"
            ),
            "{e}"
        );
    }
}
