//! The route policy end to end, as the `/auth` endpoint uses it: request target →
//! normalised path → rule → authorisation → limit keys, on the embedded default
//! configuration and on the owner-only-path examples of the issue and the seeds.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue};
use tollgate::config::Config;
use tollgate::gate::compile::compile;
use tollgate::policy::{IdentityRef, Peer, Policy, RequestFacts};

/// What `/auth` would answer, reduced to what the policy decides.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// 400: the target cannot be normalised.
    BadPath(&'static str),
    /// 401/403 with this reason.
    Refused(u16, &'static str),
    /// Allowed: the matched route and every `(limit, key)` to check.
    Allowed {
        route: String,
        limits: Vec<(String, String)>,
    },
}

struct Request<'a> {
    method: &'a str,
    uri: &'a str,
    peer: Peer,
    headers: HeaderMap,
    user: Option<(&'a str, &'a [&'a str])>,
}

fn request<'a>(method: &'a str, uri: &'a str) -> Request<'a> {
    Request {
        method,
        uri,
        peer: Peer::Ip("127.0.0.1".parse().unwrap()),
        headers: HeaderMap::new(),
        user: None,
    }
}

impl<'a> Request<'a> {
    fn via_nginx_for(mut self, ip: &str) -> Self {
        // What nginx sends with `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`
        // when the client forged an X-Forwarded-For of its own.
        let v = format!("6.6.6.6, {ip}");
        self.headers
            .insert("x-forwarded-for", HeaderValue::from_str(&v).unwrap());
        self
    }
    fn by(mut self, user: &'a str, roles: &'a [&'a str]) -> Self {
        self.user = Some((user, roles));
        self
    }
}

fn decide(policy: &Policy, req: &Request<'_>) -> Outcome {
    // As the gate reads a path: under the policy's `path_reading`.
    let path = match policy.normalize(req.uri.as_bytes()) {
        Ok(p) => p,
        Err(e) => return Outcome::BadPath(e.code()),
    };
    let m = match policy.evaluate_read(req.method, &path) {
        Ok(m) => m,
        Err(e) => return Outcome::BadPath(e.code()),
    };
    let identity = req.user.map(|(user_id, roles)| IdentityRef {
        user_id,
        roles,
        permissions: &[],
    });
    if let Err(refusal) = m.authorize(identity.as_ref()) {
        return Outcome::Refused(refusal.status(), refusal.reason());
    }
    let facts = RequestFacts {
        client_ip: policy.client_ip(req.peer, &req.headers),
        user: req.user.map(|(u, _)| u),
        route: m.rule.route(),
        method: req.method,
        tier: if req.user.is_some() {
            "basic"
        } else {
            "anonymous"
        },
        headers: Some(&req.headers),
    };
    Outcome::Allowed {
        route: m.rule.route().to_owned(),
        limits: m
            .rule
            .limits
            .iter()
            .map(|l| (l.name.to_string(), l.key.render(&facts)))
            .collect(),
    }
}

fn allowed(route: &str, limits: &[(&str, &str)]) -> Outcome {
    Outcome::Allowed {
        route: route.into(),
        limits: limits
            .iter()
            .map(|(a, b)| ((*a).into(), (*b).into()))
            .collect(),
    }
}

#[test]
fn embedded_default_routes() {
    let policy = compile(&Config::embedded()).unwrap().policy;
    // Sign-in, sign-up, password reset, e-mail verification: the login limit, per client IP
    // (the real one, behind the trusted local nginx).
    for (path, rule) in [
        ("/api/auth/sign-in/email", "/api/auth/sign-in/**"),
        ("/api/auth/sign-up/email", "/api/auth/sign-up/**"),
        ("/api/auth/forget-password", "/api/auth/forget-password**"),
        ("/api/auth/reset-password", "/api/auth/reset-password**"),
        (
            "/api/auth/request-password-reset",
            "/api/auth/request-password-reset**",
        ),
        (
            "/api/auth/send-verification-email",
            "/api/auth/send-verification-email**",
        ),
        ("/api/auth/verify-email", "/api/auth/verify-email**"),
    ] {
        assert_eq!(
            decide(&policy, &request("POST", path).via_nginx_for("203.0.113.7")),
            allowed(rule, &[("auth", "ip:203.0.113.7")]),
            "{path}"
        );
    }
    // The session calls a Next.js client makes on every page spend no login quota, and a
    // stale token sent along does not block them.
    for path in ["/api/auth/get-session", "/api/auth/token"] {
        assert_eq!(
            decide(&policy, &request("GET", path).via_nginx_for("203.0.113.7")),
            allowed("/api/auth/**", &[]),
            "{path}"
        );
    }
    // The base of a `/**` rule belongs to it. A `..` is refused by default: backends
    // disagree on whether it is a step up.
    assert_eq!(
        decide(
            &policy,
            &request("GET", "/api/auth?next=/").via_nginx_for("203.0.113.7")
        ),
        allowed("/api/auth/**", &[])
    );
    assert_eq!(
        decide(
            &policy,
            &request("GET", "/api/x/../auth?next=/").via_nginx_for("203.0.113.7")
        ),
        Outcome::BadPath("dot_segment")
    );
    // Uploads need a user and are counted per user.
    assert_eq!(
        decide(&policy, &request("POST", "/api/upload")),
        Outcome::Refused(401, "missing_token")
    );
    assert_eq!(
        decide(&policy, &request("POST", "/api/uploads/big").by("u1", &[])),
        allowed("/api/upload**", &[("upload", "user:u1")])
    );
    // Anything else: the fallback (optional auth, tier limit only).
    assert_eq!(
        decide(&policy, &request("GET", "/api/public/data")),
        allowed("/**", &[])
    );
    // Tier keys as configured.
    assert_eq!(policy.key_template("anonymous").unwrap().to_string(), "ip");
    assert_eq!(policy.key_template("basic").unwrap().to_string(), "user");
}

const OWNER_CONFIG: &str = r#"
[tiers.anonymous]
limit = 100
window = "1h"
key = "ip"

[tiers.basic]
limit = 500
window = "1h"

[limits.writes]
limit = 50
window = "1m"
key = "user:method"

[[routes]]
path = "/api/users/{user_id}/**"
owner = "user_id"
bypass_roles = ["admin"]

[[routes]]
path = "/api/users/{user_id}/**"
methods = ["PUT", "DELETE"]
owner = "user_id"
limits = ["writes"]

[[routes]]
path = "/api/admin/**"
roles = ["admin"]

[[routes]]
path = "/api/me"
auth = "required"

[[routes]]
path = "/healthz"
auth = "none"
"#;

fn owner_policy() -> Policy {
    owner_policy_reading("strict")
}

/// The same rules under another `[policy] path_reading`.
fn owner_policy_reading(reading: &str) -> Policy {
    let mut config = Config::from_toml_str(OWNER_CONFIG, "owner-test").unwrap();
    config.policy.path_reading = reading.into();
    compile(&config).unwrap().policy
}

#[test]
fn owner_only_paths() {
    let p = owner_policy();
    let owner_rule = "/api/users/{user_id}/**";
    assert_eq!(
        decide(
            &p,
            &request("GET", "/api/users/alice/tasks").by("alice", &[])
        ),
        allowed(owner_rule, &[])
    );
    assert_eq!(
        decide(&p, &request("GET", "/api/users/bob/tasks").by("alice", &[])),
        Outcome::Refused(403, "not_owner")
    );
    // `..`: bob's path to a backend that resolves it (Go, Node, servlets), alice's to one
    // that routes it literally (Starlette, Express): refused by default, judged as the
    // backend reads it under its reading.
    for who in ["alice", "bob"] {
        assert_eq!(
            decide(
                &p,
                &request("GET", "/api/users/alice/../bob/tasks").by(who, &[])
            ),
            Outcome::BadPath("dot_segment"),
            "{who}"
        );
    }
    let go = owner_policy_reading("go");
    assert_eq!(
        decide(
            &go,
            &request("GET", "/api/users/alice/../bob/tasks").by("alice", &[])
        ),
        Outcome::Refused(403, "not_owner")
    );
    assert_eq!(
        decide(
            &go,
            &request("GET", "/api/users/alice/../bob/tasks").by("bob", &[])
        ),
        allowed(owner_rule, &[])
    );
    assert_eq!(
        decide(
            &owner_policy_reading("starlette"),
            &request("GET", "/api/users/alice/../bob/tasks").by("alice", &[])
        ),
        Outcome::BadPath("dot_segment")
    );
    // Encoded dots are dots; repeated slashes and the query change nothing.
    assert_eq!(
        decide(
            &go,
            &request("GET", "/api/users/alice/%2E%2E/bob//tasks?as=alice").by("alice", &[])
        ),
        Outcome::Refused(403, "not_owner")
    );
    assert_eq!(
        decide(
            &p,
            &request("GET", "/api/users/alice/%2E%2E/bob//tasks?as=alice").by("alice", &[])
        ),
        Outcome::BadPath("dot_segment")
    );
    assert_eq!(
        decide(
            &p,
            &request("GET", "/api/users/%61lice/tasks").by("alice", &[])
        ),
        allowed(owner_rule, &[])
    );
    // An encoded slash cannot smuggle a segment boundary.
    assert_eq!(
        decide(
            &p,
            &request("GET", "/api/users/alice%2F..%2Fbob/tasks").by("alice", &[])
        ),
        Outcome::BadPath("encoded_slash")
    );
    // Climbing out of the owner subtree lands on another rule (where `..` is resolved).
    assert_eq!(
        decide(
            &go,
            &request("GET", "/api/users/alice/../../admin/x").by("alice", &[])
        ),
        Outcome::Refused(403, "forbidden")
    );
    // The bypass role; the base path; no identity.
    assert_eq!(
        decide(&p, &request("GET", "/api/users/bob").by("root", &["admin"])),
        allowed(owner_rule, &[])
    );
    assert_eq!(
        decide(&p, &request("GET", "/api/users/bob")),
        Outcome::Refused(401, "missing_token")
    );
    // HEAD is covered by GET-any rules and the method-specific rule wins for DELETE.
    assert_eq!(
        decide(&p, &request("HEAD", "/api/users/bob").by("alice", &[])),
        Outcome::Refused(403, "not_owner")
    );
    assert_eq!(
        decide(
            &p,
            &request("DELETE", "/api/users/alice/tasks/1").by("alice", &[])
        ),
        allowed(owner_rule, &[("writes", "user:alice:method:DELETE")])
    );
    // The method-specific rule sets no bypass_roles and [policy] has none: admins are
    // owners only where a rule says so.
    assert_eq!(
        decide(
            &p,
            &request("DELETE", "/api/users/bob/tasks/1").by("root", &["admin"])
        ),
        Outcome::Refused(403, "not_owner")
    );
}

#[test]
fn other_rules_and_bad_targets() {
    let p = owner_policy();
    assert_eq!(
        decide(&p, &request("GET", "/api/me/")),
        Outcome::Refused(401, "missing_token")
    );
    assert_eq!(
        decide(
            &p,
            &request("GET", "/api/admin/users").by("alice", &["user"])
        ),
        Outcome::Refused(403, "forbidden")
    );
    assert_eq!(
        decide(
            &p,
            &request("GET", "/api/admin/users").by("root", &["admin"])
        ),
        allowed("/api/admin/**", &[])
    );
    assert_eq!(
        decide(&p, &request("GET", "/healthz")),
        allowed("/healthz", &[])
    );
    for (uri, code) in [
        ("/api/../..", "dot_segment"),
        ("/api/%zz", "invalid_percent_encoding"),
        ("/api/%00", "control_character"),
        ("/api/%FF", "invalid_utf8"),
        ("api", "path_not_absolute"),
        ("", "empty_path"),
        ("/..;/api/admin", "dot_segment_parameters"),
    ] {
        assert_eq!(
            decide(&p, &request("GET", uri)),
            Outcome::BadPath(code),
            "{uri:?}"
        );
    }
    // Where the backend resolves `..`, climbing above the root is the error.
    assert_eq!(
        decide(&owner_policy_reading("go"), &request("GET", "/api/../..")),
        Outcome::BadPath("above_root")
    );
}

#[test]
fn client_ip_and_anonymous_keys() {
    let config = Config::from_toml_str(
        r#"
        [tiers.anonymous]
        limit = 100
        window = "1h"
        [tiers.basic]
        limit = 500
        window = "1h"
        [limits.login]
        limit = 5
        window = "5m"
        key = "user"
        [[routes]]
        path = "/login"
        limits = ["login"]
        [policy]
        trusted_proxies = ["10.0.0.0/8"]
        "#,
        "ip-test",
    )
    .unwrap();
    let p = compile(&config).unwrap().policy;
    // A trusted proxy names the client; anonymous `user` keys are per address.
    let mut req = request("POST", "/login").via_nginx_for("203.0.113.9");
    req.peer = Peer::Ip("10.1.2.3".parse().unwrap());
    assert_eq!(
        decide(&p, &req),
        allowed("/login", &[("login", "ip:203.0.113.9")])
    );
    // Loopback is not trusted in this configuration: its header is ignored.
    let req = request("POST", "/login").via_nginx_for("203.0.113.9");
    assert_eq!(
        decide(&p, &req),
        allowed("/login", &[("login", "ip:127.0.0.1")])
    );
    // A Unix-socket peer is trusted by default.
    let mut req = request("POST", "/login").via_nginx_for("203.0.113.9");
    req.peer = Peer::Unix;
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    assert_eq!(p.client_ip(Peer::Unix, &req.headers), Some(ip));
}

#[test]
fn config_errors_name_the_rule() {
    let bad = |routes: &str| {
        let text = format!("[tiers.anonymous]\nlimit = 1\nwindow = \"1h\"\n{routes}");
        tollgate::gate::compile::from_toml_str(&text, "bad")
            .unwrap_err()
            .to_string()
    };
    let e = bad("[[routes]]\npath = \"/u/{id}\"\nowner = \"user_id\"\n");
    assert!(e.contains("no {user_id} parameter"), "{e}");
    let e = bad("[[routes]]\npath = \"/a/**/b\"\n");
    assert!(e.contains("'**' may only end the pattern"), "{e}");
    let e = bad("[[routes]]\npath = \"/a\"\n[[routes]]\npath = \"/a\"\n");
    assert!(e.contains("never applies"), "{e}");
}
