//! Who a request is: the [`Identity`] built from a verified token's claims or an API key, and
//! the rules that build it ([`IdentityRules`]: claim names, role → tier map).
//!
//! Identity values end up in headers nginx forwards upstream (`X-User-Id`, `X-User-Email`,
//! `X-User-Role`, `X-Tier`), so they are checked here: no control characters (a newline would
//! split a header) and bounded lengths. A token whose identity claims break those rules is
//! refused rather than silently truncated, since a truncated user id is someone else's id.

use serde_json::{Map, Value};

use super::error::AuthError;
use crate::config::AuthConfig;

/// Longest user id accepted.
pub const MAX_USER_ID_BYTES: usize = 256;
/// Longest email accepted (RFC 5321 path limit, rounded up).
pub const MAX_EMAIL_BYTES: usize = 320;
/// Most roles and permissions kept per identity.
pub const MAX_ROLES: usize = 64;
/// Longest role or permission name accepted.
pub const MAX_ROLE_BYTES: usize = 128;

/// How the request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    Anonymous,
    /// A verified JWT.
    User,
    /// A configured API key.
    ApiKey,
}

/// The registered claims revocation needs, kept with a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `jti`, when the token has one (Better Auth's do not, by default).
    pub jti: Option<String>,
    /// The user id the identity resolved (from `sub`, or the fallbacks): what a subject
    /// revocation names.
    pub subject: String,
    /// `iat`, whole seconds, when present.
    pub iat: Option<i64>,
    /// `exp`, whole seconds.
    pub exp: i64,
}

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub kind: IdentityKind,
    /// The user id (JWT) or key owner (API key). `None` when anonymous.
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    /// The rate-limit tier.
    pub tier: String,
    /// The configured name of the issuer that signed the token.
    pub issuer: Option<String>,
    /// The token's registered claims; `None` for API keys and anonymous callers.
    pub token: Option<TokenClaims>,
}

impl Identity {
    /// A caller without credentials.
    pub fn anonymous(tier: &str) -> Self {
        Self {
            kind: IdentityKind::Anonymous,
            user_id: None,
            email: None,
            roles: Vec::new(),
            permissions: Vec::new(),
            tier: tier.to_string(),
            issuer: None,
            token: None,
        }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn has_permission(&self, perm: &str) -> bool {
        self.permissions.iter().any(|p| p == perm)
    }

    /// Roles joined by `,`, for `X-User-Role`.
    pub fn roles_header(&self) -> String {
        self.roles.join(",")
    }

    /// Token expiry in whole seconds, when the identity came from a token.
    pub fn expires_at(&self) -> Option<i64> {
        self.token.as_ref().map(|t| t.exp)
    }
}

/// What the route policy sees of a caller. An identity without a user id (anonymous) has the
/// empty id, which the policy never takes for an owner.
impl crate::policy::IdentityView for Identity {
    fn user_id(&self) -> &str {
        self.user_id.as_deref().unwrap_or("")
    }
    fn has_role(&self, role: &str) -> bool {
        Identity::has_role(self, role)
    }
    fn has_permission(&self, permission: &str) -> bool {
        Identity::has_permission(self, permission)
    }
}

/// Claim names and the role → tier map, from `[auth]`.
#[derive(Debug, Clone)]
pub struct IdentityRules {
    user_id: Vec<String>,
    email: Vec<String>,
    roles: Vec<String>,
    permissions: Vec<String>,
    role_tiers: Vec<(String, String)>,
    default_tier: String,
    anonymous_tier: String,
}

impl IdentityRules {
    pub fn from_config(c: &AuthConfig) -> Self {
        Self {
            user_id: c.claims.user_id.clone(),
            email: c.claims.email.clone(),
            roles: c.claims.roles.clone(),
            permissions: c.claims.permissions.clone(),
            role_tiers: c
                .role_tiers
                .iter()
                .map(|r| (r.role.clone(), r.tier.clone()))
                .collect(),
            default_tier: c.default_tier.clone(),
            anonymous_tier: c.anonymous_tier.clone(),
        }
    }

    pub fn anonymous_tier(&self) -> &str {
        &self.anonymous_tier
    }

    /// The tier of a user with these roles: the first `role_tiers` entry naming one of them,
    /// else the default tier.
    pub fn tier_for_roles(&self, roles: &[String]) -> &str {
        self.role_tiers
            .iter()
            .find(|(role, _)| roles.iter().any(|r| r == role))
            .map(|(_, tier)| tier.as_str())
            .unwrap_or(&self.default_tier)
    }

    /// Builds the identity of a verified token. `exp`/`iat` are already validated numbers.
    pub fn identity_from_claims(
        &self,
        claims: &Map<String, Value>,
        issuer: &str,
        exp: i64,
        iat: Option<i64>,
    ) -> Result<Identity, AuthError> {
        let user_id = first_string(claims, &self.user_id)?
            .ok_or(AuthError::BadIdentity("no user id claim"))?;
        check_value(user_id, MAX_USER_ID_BYTES, "user id")?;
        if user_id.is_empty() {
            return Err(AuthError::BadIdentity("empty user id"));
        }
        let email = first_string(claims, &self.email)?;
        if let Some(e) = email {
            check_value(e, MAX_EMAIL_BYTES, "email")?;
        }
        let roles = list_claim(claims, &self.roles, &[','])?;
        let permissions = list_claim(claims, &self.permissions, &[',', ' '])?;
        let jti = match claims.get("jti") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                check_value(s, super::revocation::MAX_ID_BYTES, "jti")?;
                Some(s.clone())
            }
            Some(_) => return Err(AuthError::InvalidClaim("jti")),
        };
        let tier = self.tier_for_roles(&roles).to_string();
        Ok(Identity {
            kind: IdentityKind::User,
            user_id: Some(user_id.to_string()),
            email: email.map(str::to_string),
            roles,
            permissions,
            tier,
            issuer: Some(issuer.to_string()),
            token: Some(TokenClaims {
                jti,
                subject: user_id.to_string(),
                iat,
                exp,
            }),
        })
    }
}

/// The first of `names` present as a string. A present claim of another type is refused:
/// accepting `"id": 42` would let `42` and `"42"` name the same user through different claims.
fn first_string<'a>(
    claims: &'a Map<String, Value>,
    names: &[String],
) -> Result<Option<&'a str>, AuthError> {
    for n in names {
        match claims.get(n) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => return Ok(Some(s)),
            Some(_) => return Err(AuthError::BadIdentity("identity claim is not a string")),
        }
    }
    Ok(None)
}

/// Roles or permissions: a string split on `seps`, or an array of strings.
fn list_claim(
    claims: &Map<String, Value>,
    names: &[String],
    seps: &[char],
) -> Result<Vec<String>, AuthError> {
    let mut out = Vec::new();
    let mut push = |s: &str| -> Result<(), AuthError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(());
        }
        check_value(s, MAX_ROLE_BYTES, "role or permission")?;
        if s.contains(',') {
            // A comma inside one role would be split differently by whoever reads
            // X-User-Role; refuse instead of guessing.
            return Err(AuthError::BadIdentity(
                "role or permission contains a comma",
            ));
        }
        if out.len() >= MAX_ROLES {
            return Err(AuthError::BadIdentity("too many roles or permissions"));
        }
        if !out.iter().any(|r| r == s) {
            out.push(s.to_string());
        }
        Ok(())
    };
    for n in names {
        match claims.get(n) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) => {
                for part in s.split(seps) {
                    push(part)?;
                }
            }
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(s) => push(s)?,
                        _ => return Err(AuthError::BadIdentity("role is not a string")),
                    }
                }
            }
            Some(_) => return Err(AuthError::BadIdentity("roles claim has the wrong type")),
        }
        // The first present claim wins, like the other identity claims.
        break;
    }
    Ok(out)
}

fn check_value(s: &str, max: usize, _what: &'static str) -> Result<(), AuthError> {
    if s.len() > max {
        return Err(AuthError::BadIdentity("identity claim too long"));
    }
    if s.chars().any(char::is_control) {
        return Err(AuthError::BadIdentity(
            "identity claim contains control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::auth::RoleTier;
    use serde_json::json;

    fn rules() -> IdentityRules {
        let c = AuthConfig {
            role_tiers: vec![
                RoleTier {
                    role: "admin".into(),
                    tier: "premium".into(),
                },
                RoleTier {
                    role: "premium".into(),
                    tier: "premium".into(),
                },
            ],
            ..AuthConfig::default()
        };
        IdentityRules::from_config(&c)
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn better_auth_claims_make_an_identity() {
        let c = claims(json!({
            "sub": "u1", "id": "u1", "email": "a@example.com", "role": "user,premium",
            "exp": 100, "iat": 10
        }));
        let id = rules()
            .identity_from_claims(&c, "ba", 100, Some(10))
            .unwrap();
        assert_eq!(id.user_id.as_deref(), Some("u1"));
        assert_eq!(id.email.as_deref(), Some("a@example.com"));
        assert_eq!(id.roles, ["user", "premium"]);
        assert_eq!(id.tier, "premium");
        assert_eq!(id.roles_header(), "user,premium");
        assert_eq!(id.token.as_ref().unwrap().subject, "u1");
        assert_eq!(id.issuer.as_deref(), Some("ba"));
    }

    #[test]
    fn user_id_falls_back_to_id_then_user_id() {
        let r = rules();
        let id = r
            .identity_from_claims(&claims(json!({"userId": "u9"})), "i", 1, None)
            .unwrap();
        assert_eq!(id.user_id.as_deref(), Some("u9"));
        let id = r
            .identity_from_claims(&claims(json!({"id": "u8", "userId": "u9"})), "i", 1, None)
            .unwrap();
        assert_eq!(id.user_id.as_deref(), Some("u8"));
        assert_eq!(
            r.identity_from_claims(&claims(json!({"email": "x"})), "i", 1, None),
            Err(AuthError::BadIdentity("no user id claim"))
        );
    }

    #[test]
    fn unmapped_roles_get_the_default_tier_and_arrays_work() {
        let id = rules()
            .identity_from_claims(
                &claims(json!({"sub": "u", "roles": ["a", "b"], "permissions": "read write"})),
                "i",
                1,
                None,
            )
            .unwrap();
        assert_eq!(id.tier, "basic");
        assert_eq!(id.roles, ["a", "b"]);
        assert_eq!(id.permissions, ["read", "write"]);
        assert!(id.has_permission("write") && !id.has_role("admin"));
        assert_eq!(Identity::anonymous("anonymous").tier, "anonymous");
    }

    #[test]
    fn header_breaking_values_are_refused() {
        let r = rules();
        for bad in [
            json!({"sub": "u\r\nX-Admin: 1"}),
            json!({"sub": "u", "email": "a\n@b"}),
            json!({"sub": "u", "role": ["ad,min"]}),
            json!({"sub": 42}),
            json!({"sub": ""}),
            json!({"sub": "x".repeat(MAX_USER_ID_BYTES + 1)}),
            json!({"sub": "u", "role": {"a": 1}}),
            json!({"sub": "u", "jti": 5}),
        ] {
            assert!(
                r.identity_from_claims(&claims(bad.clone()), "i", 1, None)
                    .is_err(),
                "{bad}"
            );
        }
        let many: Vec<String> = (0..=MAX_ROLES).map(|i| format!("r{i}")).collect();
        assert!(r
            .identity_from_claims(&claims(json!({"sub": "u", "role": many})), "i", 1, None)
            .is_err());
    }
}
