//! One compiled route rule ([`RouteRule`]) and what it demands of a caller: the auth
//! requirement, roles (any of), permissions (all of), and the owner check.
//!
//! The identity is seen through [`IdentityView`], a three-method trait, so that this module
//! does not depend on how `auth` represents a verified token and authorising costs no
//! allocation: the `/auth` endpoint passes its own identity type.

use std::fmt;

use super::key::KeyTemplate;
use super::pattern::PathPattern;

/// Whether a route needs a verified identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthRequirement {
    /// A valid token (or API key) is required; none → 401 `missing_token`.
    Required,
    /// A token is verified when present and its identity used (tier, `user` keys); a request
    /// without one is anonymous. An *invalid* token is still refused (401): a client that
    /// sends a broken token wants to know, and silently downgrading it would hide the error.
    Optional,
    /// The token is not looked at; every request is anonymous.
    None,
}

impl AuthRequirement {
    /// Parses `required`, `optional` or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "required" => Some(Self::Required),
            "optional" => Some(Self::Optional),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// Whether a presented token must be verified.
    pub fn verifies_token(self) -> bool {
        !matches!(self, Self::None)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Optional => "optional",
            Self::None => "none",
        }
    }
}

/// What the policy needs to know about a verified caller.
pub trait IdentityView {
    /// The user id (`sub`), compared byte for byte with owner path parameters.
    fn user_id(&self) -> &str;
    /// Whether the caller has this role.
    fn has_role(&self, role: &str) -> bool;
    /// Whether the caller has this permission.
    fn has_permission(&self, permission: &str) -> bool;
}

/// A borrowed identity, for callers that hold the parts as slices.
#[derive(Debug, Clone, Copy)]
pub struct IdentityRef<'a, S: AsRef<str> = String> {
    pub user_id: &'a str,
    pub roles: &'a [S],
    pub permissions: &'a [S],
}

impl<S: AsRef<str>> IdentityView for IdentityRef<'_, S> {
    fn user_id(&self) -> &str {
        self.user_id
    }
    fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.as_ref() == role)
    }
    fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p.as_ref() == permission)
    }
}

/// Why the policy refuses a request. The `/auth` endpoint renders [`Refusal::status`] and
/// puts [`Refusal::reason`] in `X-Tollgate-Reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The rule requires an identity and the request has none.
    MissingToken,
    /// A required role or permission is missing.
    Forbidden,
    /// The owner path parameter is another user's id and the caller has no bypass role.
    NotOwner,
}

impl Refusal {
    /// `missing_token`, `forbidden` or `not_owner`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::MissingToken => "missing_token",
            Refusal::Forbidden => "forbidden",
            Refusal::NotOwner => "not_owner",
        }
    }

    /// 401 for a missing identity, 403 for a refused one.
    pub fn status(self) -> u16 {
        match self {
            Refusal::MissingToken => 401,
            Refusal::Forbidden | Refusal::NotOwner => 403,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The standard methods, one bit each.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];
const GET_BIT: u16 = 1 << 0;
const HEAD_BIT: u16 = 1 << 1;

/// The methods a rule applies to. `GET` implies `HEAD`: a HEAD is a GET without the body, and
/// a rule protecting GET must not be bypassed by asking for the headers only. Methods are
/// compared ASCII-case-insensitively, so that a backend that accepts `get` cannot be reached
/// past a `GET` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodSet {
    any: bool,
    mask: u16,
    extension: Box<[Box<str>]>,
}

/// Why a method list is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid method {0:?}: a method is an HTTP token such as GET or PURGE")]
pub struct BadMethod(pub String);

impl MethodSet {
    /// Every method.
    pub fn any() -> Self {
        Self {
            any: true,
            mask: 0,
            extension: Box::new([]),
        }
    }

    /// Builds the set; an empty list or `*` means every method.
    pub fn parse<S: AsRef<str>>(methods: &[S]) -> Result<Self, BadMethod> {
        let mut set = Self {
            any: methods.is_empty(),
            mask: 0,
            extension: Box::new([]),
        };
        let mut extension = Vec::new();
        for m in methods {
            let m = m.as_ref();
            if m == "*" {
                set.any = true;
                continue;
            }
            if m.is_empty() || m.len() > 32 || !m.bytes().all(is_token_byte) {
                return Err(BadMethod(m.to_owned()));
            }
            match standard_bit(m) {
                Some(bit) => set.mask |= bit,
                None => extension.push(m.to_ascii_uppercase().into_boxed_str()),
            }
        }
        if set.mask & GET_BIT != 0 {
            set.mask |= HEAD_BIT;
        }
        set.extension = extension.into();
        Ok(set)
    }

    /// Whether the set is "every method".
    pub fn is_any(&self) -> bool {
        self.any
    }

    /// Whether `method` is in the set. Does not allocate.
    #[inline]
    pub fn contains(&self, method: &str) -> bool {
        self.contains_probe(&MethodProbe::new(method))
    }

    /// Whether the probed method is in the set: what [`MethodSet::contains`] does, with the
    /// method classified once per request instead of once per rule.
    #[inline]
    pub fn contains_probe(&self, probe: &MethodProbe<'_>) -> bool {
        if self.any {
            return true;
        }
        match probe {
            MethodProbe::Standard(bit) => self.mask & bit != 0,
            MethodProbe::Extension(method) => self
                .extension
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method)),
        }
    }

    /// Whether every method of `other` is in `self`.
    pub fn covers(&self, other: &Self) -> bool {
        self.any
            || (!other.any
                && other.mask & !self.mask == 0
                && other.extension.iter().all(|m| self.contains(m)))
    }
}

/// A request method classified for [`MethodSet::contains_probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodProbe<'a> {
    /// One of the standard methods, as its bit.
    Standard(u16),
    /// Any other method.
    Extension(&'a str),
}

impl<'a> MethodProbe<'a> {
    /// Classifies `method` (ASCII case-insensitively).
    #[inline]
    pub fn new(method: &'a str) -> Self {
        match standard_bit(method) {
            Some(bit) => Self::Standard(bit),
            None => Self::Extension(method),
        }
    }
}

#[inline]
fn standard_bit(method: &str) -> Option<u16> {
    METHODS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(method))
        .map(|i| 1u16 << i)
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A named limit a rule applies, with the key template its counter is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLimit {
    /// The `[limits.<name>]` entry.
    pub name: Box<str>,
    /// How the limiter key is built for this limit.
    pub key: KeyTemplate,
}

/// A compiled `[[routes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Position in the configuration (0-based); the last tie-break.
    pub index: usize,
    pub pattern: PathPattern,
    pub methods: MethodSet,
    pub auth: AuthRequirement,
    /// Any one of these roles is required (empty: no role requirement).
    pub roles: Box<[Box<str>]>,
    /// Every one of these permissions is required.
    pub permissions: Box<[Box<str>]>,
    /// The path parameter that must equal the caller's user id.
    pub owner: Option<Box<str>>,
    /// Roles that pass the owner check for any user's path (e.g. `admin`).
    pub bypass_roles: Box<[Box<str>]>,
    /// Limits applied besides the tier's.
    pub limits: Box<[RouteLimit]>,
    /// Whether the caller's tier limit applies (`tier_limit`, default true): `false` for a
    /// route whose requests spend no tier quota (a health check, static files).
    pub tier_limit: bool,
}

impl RouteRule {
    /// The pattern as configured (what the `route` key part renders).
    pub fn route(&self) -> &str {
        self.pattern.as_str()
    }

    /// Checks the caller against the rule. `params` looks up path parameters of the matched
    /// path (see `Match::authorize`, which supplies it). Checks, in order: identity present
    /// when required, roles, permissions, owner. Does not allocate.
    pub fn authorize_with<'p, I, F>(&self, identity: Option<&I>, param: F) -> Result<(), Refusal>
    where
        I: IdentityView + ?Sized,
        F: FnOnce(&str) -> Option<&'p str>,
    {
        let identity = match (self.auth, identity) {
            (AuthRequirement::None, _) => return Ok(()),
            (AuthRequirement::Required, None) => return Err(Refusal::MissingToken),
            // Config validation forbids roles, permissions and owner on optional rules, so an
            // anonymous request on one has nothing left to check.
            (AuthRequirement::Optional, None) => return Ok(()),
            (_, Some(id)) => id,
        };
        if !self.roles.is_empty() && !self.roles.iter().any(|r| identity.has_role(r)) {
            return Err(Refusal::Forbidden);
        }
        if !self.permissions.iter().all(|p| identity.has_permission(p)) {
            return Err(Refusal::Forbidden);
        }
        if let Some(owner) = &self.owner {
            // The pattern is validated to have this parameter, so a matched path has a value;
            // a missing one is refused rather than waved through.
            // An identity without a user id has the empty id: never an owner.
            let is_owner = param(owner).is_some_and(|v| !v.is_empty() && v == identity.user_id());
            if !is_owner && !self.bypass_roles.iter().any(|r| identity.has_role(r)) {
                return Err(Refusal::NotOwner);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_sets() {
        let get = MethodSet::parse(&["get"]).unwrap();
        assert!(get.contains("GET"));
        assert!(get.contains("HEAD"), "GET implies HEAD");
        assert!(get.contains("get"));
        assert!(!get.contains("POST"));
        let purge = MethodSet::parse(&["PURGE", "post"]).unwrap();
        assert!(purge.contains("purge"));
        assert!(purge.contains("POST"));
        assert!(!purge.contains("GET"));
        assert!(MethodSet::parse::<&str>(&[]).unwrap().contains("ANYTHING"));
        assert!(MethodSet::parse(&["*"]).unwrap().is_any());
        assert!(MethodSet::parse(&["GE T"]).is_err());
        assert!(MethodSet::parse(&[""]).is_err());
        assert!(MethodSet::any().covers(&get));
        assert!(!get.covers(&MethodSet::any()));
        assert!(MethodSet::parse(&["GET", "POST"]).unwrap().covers(&get));
        assert!(!get.covers(&purge));
        assert!(purge.covers(&MethodSet::parse(&["purge"]).unwrap()));
    }

    #[test]
    fn auth_requirement_parse() {
        assert_eq!(
            AuthRequirement::parse("required"),
            Some(AuthRequirement::Required)
        );
        assert_eq!(AuthRequirement::parse("Required"), None);
        assert!(!AuthRequirement::None.verifies_token());
        assert!(AuthRequirement::Optional.verifies_token());
    }

    #[test]
    fn refusal_rendering() {
        assert_eq!(Refusal::MissingToken.status(), 401);
        assert_eq!(Refusal::NotOwner.status(), 403);
        assert_eq!(Refusal::Forbidden.to_string(), "forbidden");
    }
}
