//! Fuzz body: request-target normalisation and route matching.
//!
//! Input: one byte choosing the method (low three bits) and the backend reading
//! (`[policy] path_reading`, the rest), then the request target. Checks the normalised
//! path's invariants (and the default reading's refusals: no `\`, no look-alike of a
//! separator), that the canonical form is a fixed point under the same reading, that the
//! matched rule really matches (ignoring case where the reading does) and that no rule tried
//! before it matches, and that an owner check passes for the owner and fails for someone
//! else.

use std::sync::OnceLock;

use tollgate::gate::compile;
use tollgate::policy::{CaseMatch, CaseRule, IdentityRef, PathReading, Policy, Refusal};

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
path = "/api/Admin/**"
roles = ["admin"]
[[routes]]
path = "/**"
methods = ["DELETE"]
roles = ["admin"]
"#;

fn policy(reading: PathReading) -> &'static Policy {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    let all = POLICIES.get_or_init(|| {
        PathReading::ALL
            .iter()
            .map(|r| {
                let text = format!("[policy]\npath_reading = \"{r}\"\n{RULES}");
                compile::from_toml_str(&text, "fuzz policy")
                    .expect("the fuzz rules are valid")
                    .policy
            })
            .collect()
    });
    let i = PathReading::ALL.iter().position(|&r| r == reading).unwrap();
    &all[i]
}

pub fn run(data: &[u8]) {
    let Some((&m, target)) = data.split_first() else {
        return;
    };
    let method = METHODS[m as usize % METHODS.len()];
    let reading = PathReading::ALL[(m as usize / METHODS.len()) % PathReading::ALL.len()];
    let policy = policy(reading);
    assert_eq!(policy.path_reading(), reading);
    let path = match policy.normalize(target) {
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
    if reading == PathReading::Strict {
        for c in ['\\', '\u{FF0F}', '\u{FF3C}', '\u{FF0E}'] {
            assert!(!s.contains(c), "{s:?}");
        }
    }
    let canonical = path.to_uri_string();
    let again = policy
        .normalize(canonical.as_bytes())
        .expect("the canonical form normalises");
    assert_eq!(again, path, "{canonical:?}");

    let case = reading.case();
    let m = match policy.evaluate_read(method, &path) {
        Ok(m) => m,
        Err(e) => {
            // Only the default reading refuses a path for its case, and only where a rule
            // matches once case is ignored.
            assert_eq!(case, CaseRule::Both, "{e} under {reading}");
            assert!(policy
                .rules_by_priority()
                .any(|r| r.methods.contains(method)
                    && r.pattern.match_ignoring_case(&path) == CaseMatch::IgnoringCase));
            return;
        }
    };
    let matches = |rule: &tollgate::policy::RouteRule| match case {
        CaseRule::Sensitive => rule.pattern.matches(&path),
        CaseRule::Insensitive | CaseRule::Both => {
            rule.pattern.match_ignoring_case(&path) != CaseMatch::No
        }
    };
    assert!(matches(m.rule));
    if case != CaseRule::Insensitive {
        assert!(m.rule.pattern.matches(&path));
    }
    assert!(m.rule.methods.contains(method));
    if !m.is_fallback() {
        for rule in policy.rules_by_priority() {
            if rule.index == m.rule.index {
                break;
            }
            assert!(
                !(rule.methods.contains(method) && matches(rule)),
                "{} tried before {} also matches {s:?}",
                rule.route(),
                m.rule.route()
            );
        }
    } else {
        assert!(!policy
            .rules_by_priority()
            .any(|r| r.methods.contains(method) && matches(r)));
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
