//! Fuzz body: request-target normalisation and route matching.
//!
//! Input: one byte choosing the method, then the request target. Checks the normalised
//! path's invariants, that the canonical form is a fixed point, that the matched rule really
//! matches and that no rule tried before it matches, and that an owner check passes for the
//! owner and fails for someone else.

use std::sync::OnceLock;

use tollgate::gate::compile;
use tollgate::policy::{normalize_path, IdentityRef, Policy, Refusal};

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "get", "PURGE",
];

const RULES: &str = r#"
[tiers.anonymous]
limit = 10
window = "1m"
[tiers.basic]
limit = 10
window = "1m"
[limits.auth]
limit = 5
window = "5m"
key = "ip"

[[routes]]
path = "/api/users/{user_id}/**"
owner = "user_id"
[[routes]]
path = "/api/users/{user_id}/tasks/{task_id}"
methods = ["PUT", "DELETE"]
owner = "user_id"
[[routes]]
path = "/api/auth/**"
limits = ["auth"]
[[routes]]
path = "/api/upload**"
auth = "required"
[[routes]]
path = "/api/*/public"
auth = "none"
[[routes]]
path = "/api/me"
auth = "required"
[[routes]]
path = "/caf%C3%A9/{x}"
[[routes]]
path = "/**"
methods = ["DELETE"]
roles = ["admin"]
"#;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        compile::from_toml_str(RULES, "fuzz policy")
            .expect("the fuzz rules are valid")
            .policy
    })
}

pub fn run(data: &[u8]) {
    let Some((&m, target)) = data.split_first() else {
        return;
    };
    let method = METHODS[m as usize % METHODS.len()];
    let path = match normalize_path(target) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.code().is_empty());
            return;
        }
    };

    let s = path.as_str();
    assert!(s.starts_with('/'), "{s:?}");
    assert!(!s.contains("//"), "{s:?}");
    assert!(s == "/" || !s.ends_with('/'), "{s:?}");
    assert!(!s.bytes().any(|b| b < 0x20 || b == 0x7f), "{s:?}");
    for seg in path.segments() {
        assert!(!seg.is_empty() && seg != "." && seg != "..", "{s:?}");
    }
    let canonical = path.to_uri_string();
    let again = normalize_path(canonical.as_bytes()).expect("the canonical form normalises");
    assert_eq!(again, path, "{canonical:?}");

    let policy = policy();
    let m = policy.evaluate(method, &path);
    assert!(m.rule.pattern.matches(&path));
    assert!(m.rule.methods.contains(method));
    if !m.is_fallback() {
        for rule in policy.rules_by_priority() {
            if rule.index == m.rule.index {
                break;
            }
            assert!(
                !(rule.methods.contains(method) && rule.pattern.matches(&path)),
                "{} tried before {} also matches {s:?}",
                rule.route(),
                m.rule.route()
            );
        }
    }
    for (name, value) in m.params() {
        assert!(
            path.segments().any(|seg| seg == value),
            "{name}={value:?} in {s:?}"
        );
    }

    if let Some(owner) = m.rule.owner.as_deref() {
        let value = m
            .param(owner)
            .expect("a matched owner rule has its parameter");
        let roles = ["admin"];
        let me = IdentityRef::<&str> {
            user_id: value,
            roles: &roles[..],
            permissions: &[],
        };
        let before_owner = m.authorize(Some(&me));
        assert_ne!(before_owner, Err(Refusal::NotOwner));
        let other_id = format!("{value}x");
        let other = IdentityRef::<&str> {
            user_id: &other_id,
            roles: &[][..],
            permissions: &[],
        };
        assert_eq!(m.authorize(Some(&other)), Err(Refusal::NotOwner));
    }
}
