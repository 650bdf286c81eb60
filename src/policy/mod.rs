//! Route policy: which rule governs a request, what that rule demands of the caller, which
//! limits apply and how their keys are built, and who the client is.
//!
//! Pure and synchronous: no I/O, no clock, no dependency on `auth` (the identity is seen
//! through [`IdentityView`]), no dependency on the configuration (a [`Policy`] is compiled from
//! a [`PolicySpec`], its own description of rules, key templates and client-IP settings; the
//! gate builds one from the configuration). Compiled once per configuration; per request the
//! `/auth` endpoint does:
//!
//! ```
//! # use tollgate::policy::{Policy, PolicySpec, RouteSpec, IdentityRef, Refusal, path::normalize_path};
//! let owner_rule = RouteSpec {
//!     path: "/api/users/{user_id}/**".into(),
//!     owner: Some("user_id".into()),
//!     ..RouteSpec::default()
//! };
//! let policy = Policy::compile(&PolicySpec { routes: vec![owner_rule], ..PolicySpec::default() }).unwrap();
//! let path = normalize_path(b"/api/users/%62ob//tasks?page=2").unwrap(); // Err → 400
//! let m = policy.evaluate("GET", &path);
//! assert_eq!(m.param("user_id"), Some("bob"));
//! let alice = IdentityRef::<String> { user_id: "alice", roles: &[], permissions: &[] };
//! assert_eq!(m.authorize(Some(&alice)), Err(Refusal::NotOwner)); // → 403 not_owner
//! ```
//!
//! Submodules: [`path`] (normalisation), [`pattern`] (patterns and specificity), [`rule`]
//! (compiled rules and authorisation), [`key`] (limit key templates), [`client_ip`]
//! (trusted proxies), [`spec`] (what a policy is compiled from, and its errors), [`headers`]
//! (the header lookup every door provides). docs/policy.md is the user-facing description.

pub mod client_ip;
pub mod headers;
pub mod key;
pub mod path;
pub mod pattern;
pub mod preflight;
pub mod rule;
pub mod spec;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::IpAddr;

pub use client_ip::{ClientIpResolver, Peer};
pub use headers::RequestHeaders;
pub use key::{KeyTemplate, KeyTemplateError, RequestFacts};
pub use path::{
    normalize_path, normalize_path_as, CaseRule, NormalizedPath, PathError, PathReading,
};
pub use pattern::{CaseMatch, PathPattern};
pub use preflight::CorsPreflight;
pub use rule::{
    AuthRequirement, IdentityRef, IdentityView, MethodSet, Refusal, RouteLimit, RouteRule,
};
pub use spec::{KeySpec, PolicyError, PolicySpec, RouteSpec, SpecError};

/// The compiled route policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Rules in configuration order.
    rules: Box<[RouteRule]>,
    /// Indices into `rules`, most specific first: the first rule in this order that matches
    /// a request is the most specific one that matches (see [`Policy::evaluate`]).
    order: Box<[u32]>,
    /// Applies when no rule matches: `/**`, any method, `[policy] default_auth`, no limits.
    fallback: RouteRule,
    client_ip: ClientIpResolver,
    /// Key template of every tier and named limit (they share one namespace).
    keys: HashMap<Box<str>, KeyTemplate>,
    /// What a CORS preflight request gets (see [`preflight`]).
    cors_preflight: CorsPreflight,
    /// The limits a passed preflight spends.
    preflight_limits: Box<[RouteLimit]>,
    /// Which backend's reading of request targets rules are judged by.
    path_reading: PathReading,
    /// Whether some rule has an upper-case letter in a literal (see
    /// [`PathPattern::has_upper_case_literal`]).
    upper_case_literals: bool,
}

/// The rule that governs a request, with the path it matched (for its parameters).
#[derive(Debug, Clone, Copy)]
pub struct Match<'p, 'r> {
    pub rule: &'p RouteRule,
    path: &'r NormalizedPath,
    fallback: bool,
}

impl<'p, 'r> Match<'p, 'r> {
    /// Whether no configured rule matched and the default applies.
    pub fn is_fallback(&self) -> bool {
        self.fallback
    }

    /// The normalised path that was matched.
    pub fn path(&self) -> &'r NormalizedPath {
        self.path
    }

    /// The value of a `{name}` parameter.
    pub fn param(&self, name: &str) -> Option<&'r str> {
        self.rule.pattern.param(name, self.path)
    }

    /// Every `(name, value)` parameter.
    pub fn params(&self) -> impl Iterator<Item = (&'p str, &'r str)> + 'p
    where
        'r: 'p,
    {
        self.rule.pattern.params(self.path)
    }

    /// Checks the caller (`None`: no verified identity) against the rule: identity present
    /// when required, roles (any of), permissions (all of), owner (the owner parameter must
    /// equal the user id unless the caller has a bypass role). Does not allocate.
    pub fn authorize<I: IdentityView + ?Sized>(&self, identity: Option<&I>) -> Result<(), Refusal> {
        self.rule
            .authorize_with(identity, |name| self.rule.pattern.param(name, self.path))
    }
}

impl Policy {
    /// Compiles a policy from its description. Every rule, key template and setting is
    /// checked first, and every problem found is reported (each rule's first); a rule that
    /// could never apply because an earlier one shadows it is refused too.
    pub fn compile(spec: &PolicySpec) -> Result<Self, PolicyError> {
        let mut errors = Vec::new();
        let settings = spec.settings(&mut errors);
        let default_auth = settings.default_auth;

        let mut keys = HashMap::with_capacity(spec.keys.len());
        for (index, key) in spec.keys.iter().enumerate() {
            match spec.key_template(index) {
                Ok(template) => {
                    keys.insert(
                        key.name.as_str().into(),
                        template.with_ipv6_prefix(settings.ipv6_key_prefix),
                    );
                }
                Err(e) => errors.push(e),
            }
        }

        let boxed =
            |v: &[String]| -> Box<[Box<str>]> { v.iter().map(|s| s.as_str().into()).collect() };
        let mut rules: Vec<RouteRule> = Vec::with_capacity(spec.routes.len());
        let mut rules_ok = true;
        for (index, route) in spec.routes.iter().enumerate() {
            let at = |error| SpecError::Route {
                index,
                path: route.path.clone(),
                error,
            };
            let (pattern, methods, auth) = match route.parse(default_auth) {
                Ok(parsed) => parsed,
                Err(e) => {
                    rules_ok = false;
                    errors.push(at(e));
                    continue;
                }
            };
            if rules_ok {
                let earlier = rules.iter().map(|r| (&r.pattern, &r.methods));
                if let Some(j) = spec::shadowed_by(earlier, &pattern, &methods) {
                    errors.push(at(spec::RouteError::Shadowed { earlier: j + 1 }));
                }
            }
            let route_limits = route_limits(&route.limits, &keys);
            rules.push(RouteRule {
                index,
                pattern,
                methods,
                auth,
                roles: boxed(&route.roles),
                permissions: boxed(&route.permissions),
                owner: route.owner.as_deref().map(Into::into),
                bypass_roles: boxed(
                    route
                        .bypass_roles
                        .as_deref()
                        .unwrap_or(&spec.owner_bypass_roles),
                ),
                limits: route_limits,
                tier_limit: route.tier_limit,
            });
        }
        if !errors.is_empty() {
            return Err(PolicyError(errors));
        }
        let client_ip = settings.client_ip;

        let mut order: Vec<u32> = (0..rules.len() as u32).collect();
        // Stable sort: equal keys keep configuration order, the last tie-break.
        order.sort_by(|&a, &b| match_priority(&rules[b as usize], &rules[a as usize]));

        let fallback = RouteRule {
            index: usize::MAX,
            pattern: PathPattern::parse("/**").expect("\"/**\" is a valid pattern"),
            methods: MethodSet::any(),
            auth: default_auth,
            roles: Box::new([]),
            permissions: Box::new([]),
            owner: None,
            bypass_roles: Box::new([]),
            limits: Box::new([]),
            tier_limit: true,
        };

        let upper_case_literals = rules.iter().any(|r| r.pattern.has_upper_case_literal());
        Ok(Self {
            rules: rules.into(),
            order: order.into(),
            fallback,
            client_ip,
            preflight_limits: route_limits(&spec.cors_preflight_limits, &keys),
            cors_preflight: settings.cors_preflight,
            keys,
            path_reading: settings.path_reading,
            upper_case_literals,
        })
    }

    /// The backend reading paths are normalised and matched by (`[policy] path_reading`).
    pub fn path_reading(&self) -> PathReading {
        self.path_reading
    }

    /// Normalises a request target under this policy's [`PathReading`].
    pub fn normalize(&self, target: &[u8]) -> Result<NormalizedPath, PathError> {
        normalize_path_as(target, self.path_reading)
    }

    /// The rule governing `method` on `path` as this policy's backend reading routes it:
    /// [`evaluate`](Self::evaluate) where the backend compares case, the most specific rule
    /// matching while ignoring case where it does not (Express), and under
    /// [`PathReading::Strict`] the exact rule unless a rule tried before it matches once case
    /// is ignored, which is [`PathError::CaseDecidesRule`]: then which rule governs the path
    /// depends on the backend. Does not allocate.
    pub fn evaluate_read<'p, 'r>(
        &'p self,
        method: &str,
        path: &'r NormalizedPath,
    ) -> Result<Match<'p, 'r>, PathError> {
        let case = self.path_reading.case();
        // Lower-case literals and a path without upper-case or non-ASCII letters match the
        // same ignoring case or not: the common case costs one flag test.
        if case == CaseRule::Sensitive || (!self.upper_case_literals && !path.may_fold()) {
            return Ok(self.evaluate(method, path));
        }
        let probe = rule::MethodProbe::new(method);
        for &i in self.order.iter() {
            let rule = &self.rules[i as usize];
            let how = rule.pattern.match_ignoring_case(path);
            if how == CaseMatch::No || !rule.methods.contains_probe(&probe) {
                continue;
            }
            match how {
                CaseMatch::No => continue,
                CaseMatch::IgnoringCase if case == CaseRule::Both => {
                    return Err(PathError::CaseDecidesRule)
                }
                CaseMatch::Exact | CaseMatch::IgnoringCase => {
                    return Ok(Match {
                        rule,
                        path,
                        fallback: false,
                    })
                }
            }
        }
        Ok(Match {
            rule: &self.fallback,
            path,
            fallback: true,
        })
    }

    /// The rule governing `method` on `path`: the most specific matching rule, where
    /// specificity is (1) the path pattern's specificity key (see [`pattern`]), then (2) a
    /// rule listing methods beats an any-method rule, then (3) the earlier rule in the file.
    /// When no rule matches, the fallback (`/**`, `[policy] default_auth`, no limits).
    /// Does not allocate.
    pub fn evaluate<'p, 'r>(&'p self, method: &str, path: &'r NormalizedPath) -> Match<'p, 'r> {
        let probe = rule::MethodProbe::new(method);
        for &i in self.order.iter() {
            let rule = &self.rules[i as usize];
            if rule.pattern.matches(path) && rule.methods.contains_probe(&probe) {
                return Match {
                    rule,
                    path,
                    fallback: false,
                };
            }
        }
        Match {
            rule: &self.fallback,
            path,
            fallback: true,
        }
    }

    /// Whether a request is a CORS preflight that passes without being judged: `[policy]
    /// cors_preflight = "pass"` and the request is one ([`preflight::is_preflight`]). For
    /// any method but `OPTIONS` this costs one comparison.
    #[inline]
    pub fn passes_as_preflight(&self, method: &str, headers: Option<&dyn RequestHeaders>) -> bool {
        // The method first: for any other request this is the one comparison made.
        preflight::may_be_preflight(method.as_bytes())
            && self.cors_preflight == CorsPreflight::Pass
            && preflight::is_preflight(method, headers)
    }

    /// The limits a passed preflight spends (`[policy] cors_preflight_limits`), with their
    /// key templates.
    pub fn preflight_limits(&self) -> &[RouteLimit] {
        &self.preflight_limits
    }

    /// The client address of a request from `peer` (see [`client_ip`]).
    pub fn client_ip(&self, peer: Peer, headers: &dyn RequestHeaders) -> Option<IpAddr> {
        self.client_ip.resolve(peer, headers)
    }

    /// The client-IP resolver.
    pub fn client_ip_resolver(&self) -> &ClientIpResolver {
        &self.client_ip
    }

    /// The key template of a tier or named limit.
    pub fn key_template(&self, name: &str) -> Option<&KeyTemplate> {
        self.keys.get(name)
    }

    /// The key template of every tier and named limit (route limits use these too).
    pub fn key_templates(&self) -> impl Iterator<Item = &KeyTemplate> + '_ {
        self.keys.values()
    }

    /// The rules in configuration order.
    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    /// The rules in the order they are tried, most specific first.
    pub fn rules_by_priority(&self) -> impl Iterator<Item = &RouteRule> + '_ {
        self.order.iter().map(|&i| &self.rules[i as usize])
    }
}

/// Named limits with their key templates (an unknown name gets the default template; the
/// configuration refuses unknown names before this).
fn route_limits(names: &[String], keys: &HashMap<Box<str>, KeyTemplate>) -> Box<[RouteLimit]> {
    names
        .iter()
        .map(|name| RouteLimit {
            name: name.as_str().into(),
            key: keys.get(name.as_str()).cloned().unwrap_or_default(),
        })
        .collect()
}

/// `Greater` when `a` wins over `b` on a path both match (ignoring file order).
fn match_priority(a: &RouteRule, b: &RouteRule) -> Ordering {
    a.pattern
        .cmp_specificity(&b.pattern)
        .then_with(|| (!a.methods.is_any()).cmp(&!b.methods.is_any()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(routes_toml: &str) -> Policy {
        #[derive(serde::Deserialize)]
        struct W {
            routes: Vec<RouteSpec>,
        }
        let routes = toml::from_str::<W>(routes_toml).unwrap().routes;
        let keys = [("auth", "ip"), ("upload", "user")]
            .map(|(name, key)| KeySpec {
                name: name.into(),
                template: Some(key.into()),
            })
            .to_vec();
        Policy::compile(&PolicySpec {
            routes,
            keys,
            ..PolicySpec::default()
        })
        .unwrap()
    }

    fn route_of(p: &Policy, method: &str, path: &str) -> String {
        let path = normalize_path(path.as_bytes()).unwrap();
        let m = p.evaluate(method, &path);
        if m.is_fallback() {
            "fallback".into()
        } else {
            format!("#{} {}", m.rule.index + 1, m.rule.route())
        }
    }

    #[test]
    fn most_specific_wins_regardless_of_order() {
        let p = policy(
            r#"
            [[routes]]
            path = "/api/**"
            [[routes]]
            path = "/api/users/{id}/**"
            owner = "id"
            [[routes]]
            path = "/api/users/{id}/**"
            methods = ["DELETE"]
            roles = ["admin"]
            [[routes]]
            path = "/api/upload**"
            limits = ["upload"]
            [[routes]]
            path = "/api/auth/**"
            limits = ["auth"]
            [[routes]]
            path = "/api/auth/session"
            auth = "required"
            "#,
        );
        assert_eq!(route_of(&p, "GET", "/api/x"), "#1 /api/**");
        assert_eq!(
            route_of(&p, "GET", "/api/users/bob/tasks"),
            "#2 /api/users/{id}/**"
        );
        assert_eq!(
            route_of(&p, "DELETE", "/api/users/bob"),
            "#3 /api/users/{id}/**"
        );
        assert_eq!(
            route_of(&p, "delete", "/api/users/bob"),
            "#3 /api/users/{id}/**"
        );
        assert_eq!(route_of(&p, "POST", "/api/uploads/1"), "#4 /api/upload**");
        assert_eq!(
            route_of(&p, "POST", "/api/auth/sign-in/email"),
            "#5 /api/auth/**"
        );
        assert_eq!(
            route_of(&p, "GET", "/api/auth/session"),
            "#6 /api/auth/session"
        );
        assert_eq!(
            route_of(&p, "GET", "/api/auth/session/"),
            "#6 /api/auth/session"
        );
        assert_eq!(route_of(&p, "GET", "/other"), "fallback");
        let order: Vec<usize> = p.rules_by_priority().map(|r| r.index + 1).collect();
        // Rules that never match the same path are still totally ordered by their keys.
        assert_eq!(order, [6, 3, 2, 5, 4, 1]);
    }

    #[test]
    fn owner_paths_refuse_everyone_but_the_owner_and_bypass_roles() {
        let p = policy(
            r#"
            [[routes]]
            path = "/api/users/{user_id}/**"
            owner = "user_id"
            bypass_roles = ["admin"]
            "#,
        );
        let id = |user: &'static str, roles: &'static [&'static str]| IdentityRef {
            user_id: user,
            roles,
            permissions: &[],
        };
        // Read as a backend that resolves `..` would (strict refuses it before matching).
        let check = |raw: &str, who: Option<IdentityRef<'static, &'static str>>| {
            let path = normalize_path_as(raw.as_bytes(), PathReading::Go).unwrap();
            p.evaluate("GET", &path).authorize(who.as_ref())
        };
        assert_eq!(
            check("/api/users/alice/tasks", Some(id("alice", &[]))),
            Ok(())
        );
        assert_eq!(
            check("/api/users/bob/tasks", Some(id("alice", &[]))),
            Err(Refusal::NotOwner)
        );
        assert_eq!(
            check("/api/users/alice/../bob/tasks", Some(id("alice", &[]))),
            Err(Refusal::NotOwner)
        );
        assert_eq!(
            check("/api/users/alice/../bob/tasks", Some(id("bob", &[]))),
            Ok(())
        );
        assert_eq!(
            check("/api/users/bob/tasks", Some(id("alice", &["admin"]))),
            Ok(())
        );
        assert_eq!(check("/api/users/bob", None), Err(Refusal::MissingToken));
    }

    #[test]
    fn roles_and_permissions() {
        let p = policy(
            r#"
            [[routes]]
            path = "/admin/**"
            roles = ["admin", "ops"]
            permissions = ["audit:read", "audit:export"]
            "#,
        );
        let path = normalize_path(b"/admin/audit").unwrap();
        let m = p.evaluate("GET", &path);
        let who = |roles: &'static [&'static str], perms: &'static [&'static str]| IdentityRef {
            user_id: "u",
            roles,
            permissions: perms,
        };
        let all = &["audit:read", "audit:export"][..];
        assert_eq!(m.authorize(Some(&who(&["ops"], all))), Ok(()));
        assert_eq!(
            m.authorize(Some(&who(&["user"], all))),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            m.authorize(Some(&who(&["admin"], &["audit:read"]))),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            m.authorize(None::<&IdentityRef>),
            Err(Refusal::MissingToken)
        );
    }

    #[test]
    fn limits_carry_their_key_templates() {
        let p = policy(
            r#"
            [[routes]]
            path = "/api/auth/**"
            limits = ["auth", "upload"]
            "#,
        );
        let path = normalize_path(b"/api/auth/sign-in").unwrap();
        let m = p.evaluate("POST", &path);
        let names: Vec<String> = m
            .rule
            .limits
            .iter()
            .map(|l| format!("{}={}", l.name, l.key))
            .collect();
        assert_eq!(names, ["auth=ip", "upload=user"]);
        assert_eq!(p.key_template("auth").unwrap().to_string(), "ip");
        assert!(p.key_template("nope").is_none());
    }

    /// The rule `path` is judged by under `reading` (`Err(code)` when refused).
    fn route_read(reading: &str, method: &str, path: &str) -> Result<String, &'static str> {
        let routes = r#"
            [[routes]]
            path = "/api/admin/**"
            roles = ["admin"]
            [[routes]]
            path = "/api/users/{user_id}/**"
            owner = "user_id"
            [[routes]]
            path = "/api/Upload**"
            auth = "required"
            [[routes]]
            path = "/caf%C3%A9/x"
            auth = "required"
            [[routes]]
            path = "/api/**"
            auth = "optional"
        "#;
        #[derive(serde::Deserialize)]
        struct W {
            routes: Vec<RouteSpec>,
        }
        let p = Policy::compile(&PolicySpec {
            routes: toml::from_str::<W>(routes).unwrap().routes,
            path_reading: reading.into(),
            ..PolicySpec::default()
        })
        .unwrap();
        let path = p.normalize(path.as_bytes()).map_err(|e| e.code())?;
        let m = p.evaluate_read(method, &path).map_err(|e| e.code())?;
        Ok(if m.is_fallback() {
            "fallback".into()
        } else {
            m.rule.route().to_string()
        })
    }

    #[test]
    fn case_is_judged_as_the_backend_routes_it() {
        let r = |reading, path| route_read(reading, "GET", path);
        // Express routes `/API/admin/x` to the admin route; so does tollgate under its
        // reading. Case-sensitive backends serve no admin route there.
        assert_eq!(r("express", "/API/admin/x").unwrap(), "/api/admin/**");
        assert_eq!(r("starlette", "/API/admin/x").unwrap(), "fallback");
        assert_eq!(r("go", "/api/ADMIN/x").unwrap(), "/api/**");
        // Strict: the rule depends on case, so the path is refused ...
        assert_eq!(r("strict", "/API/admin/x"), Err("case_decides_rule"));
        assert_eq!(r("strict", "/api/Admin/x"), Err("case_decides_rule"));
        assert_eq!(r("strict", "/api/upload-x"), Err("case_decides_rule"));
        assert_eq!(r("strict", "/CAF%C3%89/x"), Err("case_decides_rule"));
        // ... but mixed case that decides nothing passes: ids, and exact matches.
        assert_eq!(
            r("strict", "/api/users/User_AbC/tasks").unwrap(),
            "/api/users/{user_id}/**"
        );
        assert_eq!(r("strict", "/api/Upload-1").unwrap(), "/api/Upload**");
        assert_eq!(r("strict", "/api/admin/X").unwrap(), "/api/admin/**");
        assert_eq!(r("strict", "/Static/Logo.png").unwrap(), "fallback");
        // Express folds prefixes and non-ASCII letters like a JavaScript `i` regex.
        assert_eq!(r("express", "/api/UPLOAD-1").unwrap(), "/api/Upload**");
        assert_eq!(r("express", "/CAF%C3%89/X").unwrap(), "/caf%C3%A9/x");
        assert!(pattern::eq_ignoring_case("Straße", "STRAßE"));
        // A non-ASCII letter never folds to an ASCII one (the Kelvin sign is not `k`).
        assert!(!pattern::eq_ignoring_case("\u{212A}ey", "key"));
        assert!(!pattern::eq_ignoring_case("\u{17F}", "s"));
    }
}
