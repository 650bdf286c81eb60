//! Shared by tests/http_auth.rs and tests/http_admin.rs (included with `#[path]`, next to
//! `mod http_support;` and `mod auth_support;`): a server whose `[auth]` accepts the PyJWT
//! fixtures of tests/tokens/ (the EdDSA key set from a static JWKS file, the HS256 secret and
//! the admin secret from an injected environment, never the process's), route rules that
//! exercise every refusal, and `/auth` requests as nginx sends them.
#![allow(dead_code)]

use std::sync::Arc;

use tollgate::clock::ManualClock;
use tollgate::config::Config;
use tollgate::server::{ServerBuilder, ServerHandle};

use crate::auth_support as fixtures;
use crate::http_support::RawResponse;

/// The variable `[auth.admin] secret_env` names in these tests, and its value.
pub const ADMIN_ENV: &str = "TOLLGATE_TEST_ADMIN_SECRET";
pub const ADMIN_SECRET: &str = "admin-secret-for-the-http-tests-0123456789";

/// The environment the servers of these tests see.
pub fn env(var: &str) -> Option<String> {
    match var {
        fixtures::HS256_ENV => Some(fixtures::hs256_secret()),
        ADMIN_ENV => Some(ADMIN_SECRET.to_string()),
        _ => None,
    }
}

/// A configuration with the fixtures' issuers, `basic` at `basic_limit` per hour (keyed per
/// user), `anonymous` at `anonymous_limit` per hour keyed per client IP, and these routes:
///
/// | path | rule |
/// |---|---|
/// | `/api/**` | a token is required |
/// | `/api/users/{user_id}/**` | the owner only |
/// | `/api/admin/**` | role `admin` |
/// | `/api/upload**` | a token, and the `upload` limit (2 per hour per user) |
/// | `/public/**` | credentials are not looked at |
/// | `DELETE /api/reports/**` | role `admin` (other methods: `/api/**`) |
/// | anything else | optional (the default) |
///
/// `extra` is TOML appended at the end (`[policy]`, `[auth.admin]`, `[auth.revocation]`,
/// `[server]` keys are not allowed there: use the returned value).
pub fn config(basic_limit: u64, anonymous_limit: u64, extra: &str) -> Config {
    let m = fixtures::manifest();
    let jwks = fixtures::dir().join("jwks.json");
    let text = format!(
        r#"
[server]
http = "127.0.0.1:0"

[tiers.anonymous]
limit = {anonymous_limit}
window = "1h"
key = "ip"

[tiers.basic]
limit = {basic_limit}
window = "1h"
key = "user"

[tiers.premium]
limit = 1000
window = "1h"
key = "user"

[limits.upload]
limit = 2
window = "1h"
key = "user"

[[routes]]
path = "/api/**"
auth = "required"

[[routes]]
path = "/api/users/{{user_id}}/**"
owner = "user_id"

[[routes]]
path = "/api/admin/**"
roles = ["admin"]

[[routes]]
path = "/api/upload**"
auth = "required"
limits = ["upload"]

[[routes]]
path = "/public/**"
auth = "none"

[[routes]]
path = "/api/reports/**"
methods = ["DELETE"]
roles = ["admin"]

[auth]
anonymous_tier = "anonymous"
default_tier = "basic"
role_tiers = [{{ role = "premium", tier = "premium" }}]

[[auth.issuers]]
name = "better-auth"
issuer = "{iss}"
audiences = ["{aud}"]
jwks_file = "{jwks}"

[[auth.issuers]]
name = "fastapi"
hs256_secret_env = "{hs}"

{extra}
"#,
        iss = m.issuer,
        aud = m.audience,
        jwks = jwks.display(),
        hs = fixtures::HS256_ENV,
    );
    Config::from_toml_str(&text, "test").unwrap_or_else(|e| panic!("test config: {e}"))
}

/// Starts a server on a manual clock one minute after the fixtures were made.
pub async fn start(config: Config, fast_path: bool) -> (ServerHandle, Arc<ManualClock>) {
    let clock = fixtures::clock();
    let server = ServerBuilder::new(config)
        .clock(clock.clone())
        .env(env)
        .http_fast_path(fast_path)
        .start()
        .await
        .expect("server starts");
    (server, clock)
}

/// An `/auth` request as nginx sends it (`X-Original-URI`, `X-Original-Method`, the
/// client's `Authorization` when `token` is given), plus `extra` header lines.
pub fn auth_request(uri: &str, token: Option<&str>, extra: &[(&str, &str)]) -> String {
    let mut r = format!(
        "GET /auth HTTP/1.1\r\nHost: tollgate\r\nX-Original-URI: {uri}\r\nX-Original-Method: GET\r\n"
    );
    if let Some(t) = token {
        r.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (n, v) in extra {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r
}

/// Checks what every `/auth` decision must look like: 200, 401 or 403, an empty body with
/// `Content-Length: 0`, `X-Tollgate-Reason` on every denial, `WWW-Authenticate` on 401, and
/// the token nowhere in the answer.
pub fn assert_auth_contract(r: &RawResponse, token: Option<&str>) {
    assert_eq!(r.header("content-length"), Some("0"), "{:?}", r.headers);
    assert_head_contract(r, token);
}

/// [`assert_auth_contract`] for the answer to a HEAD request, which has no body by
/// definition and whose `Content-Length` hyper leaves out.
pub fn assert_head_contract(r: &RawResponse, token: Option<&str>) {
    assert!(
        matches!(r.status, 200 | 401 | 403),
        "/auth answered {}: {:?} {}",
        r.status,
        r.headers,
        r.text()
    );
    assert!(matches!(r.header("content-length"), None | Some("0")));
    assert!(r.body.is_empty());
    assert!(r.header("content-type").is_none(), "{:?}", r.headers);
    if r.status != 200 {
        assert!(
            r.header("x-tollgate-reason").is_some(),
            "a denial without X-Tollgate-Reason: {:?}",
            r.headers
        );
    } else {
        assert!(r.header("x-tollgate-reason").is_none());
    }
    if r.status == 401 {
        let w = r
            .header("www-authenticate")
            .expect("401 has WWW-Authenticate");
        assert!(
            w.starts_with("Bearer ") && w.contains(r#"error="invalid_token""#),
            "{w}"
        );
        assert!(w.contains("error_description=\""), "{w}");
    }
    if let Some(t) = token {
        // A prefix long enough to be the token's own, not a common header's.
        let probe = &t[..t.len().min(24)];
        for (n, v) in &r.headers {
            assert!(!v.contains(probe), "the token leaked into {n}: {v}");
        }
    }
}
