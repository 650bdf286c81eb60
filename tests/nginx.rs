//! tollgate behind a real nginx: `examples/nginx.conf` and `examples/tollgate.toml` as
//! shipped (only addresses, the key source and file paths moved), nginx's `auth_request` to
//! tollgate's `/auth`, and an application upstream that records what reached it.
//!
//! Clients connect from 127.0.0.2, and tollgate trusts only 127.0.0.1 (nginx) as a proxy,
//! so a client is "on the internet": its own `X-Forwarded-For` must not be believed.
//!
//! nginx must be installed (`tests/run.sh` installs it); without it these tests fail.

mod auth_support;
mod nginx_support;

use nginx_support::stack::{Stack, CLIENT, OTHER_CLIENT};
use nginx_support::Response;

/// The shipped nginx file's opt-in for failing open: the Better Auth location asks
/// `/_tollgate/auth_fail_open` instead of `/_tollgate/auth`, as its comment says.
fn opt_into_fail_open(conf: String) -> String {
    let shipped = "            auth_request /_tollgate/auth;\n            \
                   # Opt-in: keep sign-in working while tollgate is down, with no login limit then\n            \
                   # (docs/nginx.md, \"When tollgate is down\"):\n            \
                   # auth_request /_tollgate/auth_fail_open;\n";
    assert_eq!(
        conf.matches(shipped).count(),
        1,
        "examples/nginx.conf: the fail-open opt-in is not where tests/nginx.rs expects it"
    );
    conf.replace(
        shipped,
        "            auth_request /_tollgate/auth_fail_open;\n",
    )
}

fn token(name: &str) -> String {
    auth_support::token(name)
}

/// A denial rendered by examples/nginx.conf: JSON `{"error": reason}`.
fn assert_denied(r: &Response, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{:?} {}", r.headers, r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.json()["error"], reason, "{}", r.text());
}

fn assert_bearer_challenge(r: &Response) {
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("a 401 without WWW-Authenticate: {:?}", r.headers));
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

#[tokio::test]
async fn no_token_is_401_with_www_authenticate() {
    let s = Stack::start().await;
    let r = s.get("/api/me", None).await;
    assert_denied(&r, 401, "missing_token");
    assert_bearer_challenge(&r);
    assert!(s.reached() == 0, "the application was reached");
    s.stop().await;
}

#[tokio::test]
async fn valid_token_reaches_the_application_with_identity_headers_not_forged_ones() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth");
    let forged = [
        ("X-User-Id", "admin"),
        ("X-User-Role", "admin"),
        ("X-User-Email", "admin@example.com"),
        ("X-Tier", "premium"),
    ];
    let r = s
        .send(CLIENT, "GET", "/api/me?x=1", Some(&t), &forged, b"")
        .await;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    let seen = s.api.last();
    assert_eq!(seen.target, "/api/me?x=1");
    // Exactly one of each (Seen::header fails on duplicates), and tollgate's, not the client's.
    assert_eq!(seen.header("x-user-id"), Some("user_1"));
    assert_eq!(seen.header("x-user-email"), Some("user_1@example.com"));
    assert_eq!(seen.header("x-user-role"), Some("user"));
    assert_eq!(seen.header("x-tier"), Some("basic"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.2"));
    // The client sees its quota.
    assert_eq!(
        r.header("ratelimit-policy"),
        Some(r#""basic";q=500;w=3600"#),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-ratelimit-remaining"), Some("499"));
    // The access log names the user and never the token.
    let log = s.nginx.access_log();
    assert!(log.contains("user=user_1 tier=basic"), "{log}");
    assert!(!log.contains(&t), "the access log holds the token");
    s.stop().await;
}

#[tokio::test]
async fn anonymous_requests_cannot_forge_identity_headers() {
    let s = Stack::start().await;
    let forged = [("X-User-Id", "user_1"), ("X-Tier", "premium")];
    // A page: tollgate is not asked, and the forged headers are dropped all the same.
    let r = s.send(CLIENT, "GET", "/", None, &forged, b"").await;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    let seen = s.app.last();
    assert_eq!(seen.header("x-user-id"), None, "{:?}", seen.headers);
    assert_eq!(seen.header("x-tier"), None, "{:?}", seen.headers);
    // An API route open to anonymous GETs: tollgate's answer, not the client's.
    let r = s.send(CLIENT, "GET", "/api/feed", None, &forged, b"").await;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    let seen = s.api.last();
    assert_eq!(seen.header("x-user-id"), None, "{:?}", seen.headers);
    assert_eq!(seen.header("x-tier"), Some("anonymous"));
    s.stop().await;
}

#[tokio::test]
async fn pages_and_static_assets_are_not_asked_and_spend_no_quota() {
    let s = Stack::start().await;
    // More than the anonymous tier's 100 per hour: none of them counts.
    for i in 0..120 {
        let target = if i % 2 == 0 {
            "/_next/static/chunks/main.js".to_string()
        } else {
            format!("/tasks/{i}")
        };
        let r = s.get(&target, None).await;
        assert_eq!(r.status, 200, "{target}: {:?} {}", r.headers, r.text());
        assert_eq!(r.header("ratelimit"), None, "{target} carries a quota");
    }
    assert_eq!(s.app.seen().len(), 120);
    // The same client's first API request still has the whole anonymous quota.
    let r = s.get("/api/feed", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("x-ratelimit-remaining"),
        Some("99"),
        "{:?}",
        r.headers
    );
    s.stop().await;
}

#[tokio::test]
async fn better_auth_session_calls_spend_no_login_attempts() {
    let s = Stack::start().await;
    // A Next.js client asks get-session on every navigation, with its session cookie: more
    // often than the anonymous tier's 100 per hour, and none of it is counted.
    for _ in 0..120 {
        let r = s
            .send(
                CLIENT,
                "GET",
                "/api/auth/get-session",
                None,
                &[("Cookie", "better-auth.session_token=opaque")],
                b"",
            )
            .await;
        assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
        assert_eq!(r.header("ratelimit"), None, "{:?}", r.headers);
        // Better Auth's own endpoint, in the Next.js app, with the cookie it reads.
        let seen = s.app.last();
        assert_eq!(seen.target, "/api/auth/get-session");
        assert_eq!(
            seen.header("cookie"),
            Some("better-auth.session_token=opaque")
        );
    }
    // The login limit is untouched: five sign-in attempts still pass.
    for _ in 0..5 {
        let r = s
            .send(CLIENT, "POST", "/api/auth/sign-in/email", None, &[], b"{}")
            .await;
        assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    }
    assert_eq!(s.api.seen().len(), 0);
    s.stop().await;
}

#[tokio::test]
async fn ambiguous_targets_are_refused_and_every_spelling_of_api_is_asked() {
    let s = Stack::start().await;
    // Read as /api/... by URL parsers (Next.js's included), not by nginx's locations.
    for target in [
        "/api\\admin\\x",
        "/api%5Cadmin%5cx",
        "/api/auth\\sign-in\\email",
        "//app.example/api/users/user_b/tasks",
        "//app.example/api/auth/sign-in/email",
    ] {
        let r = s.send(CLIENT, "POST", target, None, &[], b"{}").await;
        assert_eq!(r.status, 400, "{target}: {:?} {}", r.headers, r.text());
        assert_eq!(r.json()["error"], "bad_path", "{target}");
    }
    assert_eq!(s.reached(), 0, "{:?} {:?}", s.app.seen(), s.api.seen());
    // An /api prefix encoded, in another case, or ended by `;` still goes through tollgate.
    for target in [
        "/%61pi/admin/x",
        "/API/admin/x",
        "/Api/Me",
        "/api;x=1/admin/x",
    ] {
        let r = s.get(target, None).await;
        assert_ne!(r.status, 200, "{target} reached the application unasked");
    }
    assert_eq!(s.reached(), 0, "{:?} {:?}", s.app.seen(), s.api.seen());
    s.stop().await;
}

#[tokio::test]
async fn when_tollgate_is_down_pages_work_and_the_api_fails_closed_with_503() {
    let mut s = Stack::start().await;
    let t = token("eddsa_better_auth");
    assert_eq!(s.get("/api/me", Some(&t)).await.status, 200);
    s.stop_tollgate().await;
    assert_eq!(s.get("/", None).await.status, 200);
    assert_eq!(
        s.get("/_next/static/chunks/main.js", None).await.status,
        200
    );
    for (target, token) in [
        ("/api/me", Some(t.as_str())),
        ("/api/feed", None),
        ("/api/auth/get-session", None),
        ("/api/auth/sign-in/email", None),
    ] {
        let r = s.get(target, token).await;
        assert_eq!(r.status, 503, "{target}: {:?} {}", r.headers, r.text());
        assert_eq!(r.json()["error"], "auth_unavailable", "{target}");
        assert_eq!(r.header("retry-after"), Some("5"), "{target}");
    }
    // Only the first API request and the two pages reached an application.
    assert_eq!(s.api.seen().len(), 1);
    assert_eq!(s.app.seen().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn opted_into_fail_open_better_auth_serves_anonymous_calls_while_tollgate_is_down() {
    let mut s = Stack::start_with(opt_into_fail_open).await;
    // While tollgate is up, nothing changes: the login limit holds.
    for i in 0..6 {
        let r = s
            .send(CLIENT, "POST", "/api/auth/sign-in/email", None, &[], b"{}")
            .await;
        let want = if i < 5 { 200 } else { 429 };
        assert_eq!(r.status, want, "attempt {}: {}", i + 1, r.text());
    }
    s.stop_tollgate().await;
    // Down: a call without credentials passes, anonymous and uncounted...
    let forged = [("X-User-Id", "user_1")];
    for target in ["/api/auth/get-session", "/api/auth/sign-in/email"] {
        let r = s.send(CLIENT, "POST", target, None, &forged, b"{}").await;
        assert_eq!(r.status, 200, "{target}: {:?} {}", r.headers, r.text());
        let seen = s.app.last();
        assert_eq!(seen.target, target);
        assert_eq!(seen.header("x-user-id"), None, "{:?}", seen.headers);
    }
    // ...a call with credentials fails closed: nobody can check them...
    let t = token("eddsa_better_auth");
    let r = s.get("/api/auth/get-session", Some(&t)).await;
    assert_eq!(r.status, 503, "{:?} {}", r.headers, r.text());
    let r = s
        .send(
            CLIENT,
            "GET",
            "/api/auth/get-session",
            None,
            &[("X-Api-Key", "tg_whatever")],
            b"",
        )
        .await;
    assert_eq!(r.status, 503, "{:?} {}", r.headers, r.text());
    // ...and locations that did not opt in fail closed as before.
    let r = s.get("/api/feed", None).await;
    assert_eq!(r.status, 503, "{:?} {}", r.headers, r.text());
    assert_eq!(s.app.seen().len(), 5 + 2);
    assert_eq!(s.api.seen().len(), 0);
    s.stop().await;
}

#[tokio::test]
async fn expired_token_is_401() {
    let s = Stack::start().await;
    let r = s.get("/api/me", Some(&token("expired"))).await;
    assert_denied(&r, 401, "expired");
    assert_bearer_challenge(&r);
    assert!(s.reached() == 0);
    s.stop().await;
}

#[tokio::test]
async fn another_users_path_is_403() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth"); // user_1
    let r = s.get("/api/users/user_1/tasks", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.get("/api/users/bob/tasks", Some(&t)).await;
    assert_denied(&r, 403, "not_owner");
    assert_eq!(s.api.seen().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn dot_segments_and_encoded_slashes_are_400() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth"); // user_1
                                        // nginx normalises $uri for its own location matching but hands tollgate the raw
                                        // $request_uri, and the application gets the raw target too. `..` is bob's path to a
                                        // backend that resolves it and user_1's to FastAPI (Starlette routes it literally), so
                                        // tollgate refuses it whichever way it points: 403 bad_path, which nginx makes a 400.
    for target in [
        "/api/users/user_1/../bob/tasks",
        "/api/users/user_1/%2e%2e/bob/tasks",
        "/api/users/bob/../user_1/tasks",
        "/api/users/user_1/./tasks",
        // An encoded slash cannot be judged safely either.
        "/api/users/user_1%2F..%2Fbob/tasks",
    ] {
        let r = s.get(target, Some(&t)).await;
        assert_denied(&r, 400, "bad_path");
    }
    assert_eq!(s.reached(), 0, "{:?}", s.api.seen());
    // Repeated slashes are one path to every backend: user_1's, reaching the API raw.
    let r = s.get("/api/users//user_1/tasks", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.api.last().target, "/api/users//user_1/tasks");
    s.stop().await;
}

#[tokio::test]
async fn the_original_method_is_judged_not_the_subrequests() {
    let s = Stack::start().await;
    // nginx's auth subrequest is always a GET; X-Original-Method carries the real one.
    // /api/feed/** is open to anonymous GETs only (examples/tollgate.toml).
    let r = s.send(CLIENT, "GET", "/api/feed", None, &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.send(CLIENT, "HEAD", "/api/feed", None, &[], b"").await;
    assert_eq!(r.status, 200);
    for method in ["POST", "PUT", "DELETE"] {
        let r = s.send(CLIENT, method, "/api/feed", None, &[], b"{}").await;
        assert_denied(&r, 401, "missing_token");
    }
    assert_eq!(s.api.seen().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn past_the_limit_is_429_with_retry_after() {
    let s = Stack::start().await;
    // Sign-in attempts: 5 per 5 minutes per client address (examples/tollgate.toml), and a
    // client cannot spread them over addresses it makes up in X-Forwarded-For.
    for i in 0..5 {
        let xff = format!("198.51.100.{i}");
        let r = s
            .send(
                CLIENT,
                "POST",
                "/api/auth/sign-in/email",
                None,
                &[
                    ("X-Forwarded-For", &xff),
                    ("Content-Type", "application/json"),
                ],
                br#"{"email":"a@example.com","password":"x"}"#,
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "attempt {}: {:?} {}",
            i + 1,
            r.headers,
            r.text()
        );
        // The body went to the application (and not to tollgate).
        assert_eq!(
            s.app.last().body,
            br#"{"email":"a@example.com","password":"x"}"#
        );
    }
    let r = s
        .send(
            CLIENT,
            "POST",
            "/api/auth/sign-in/email",
            None,
            &[("X-Forwarded-For", "198.51.100.99")],
            b"{}",
        )
        .await;
    assert_denied(&r, 429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers))
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    for h in ["ratelimit-policy", "ratelimit", "x-ratelimit-limit"] {
        assert!(r.header(h).is_some(), "429 without {h}: {:?}", r.headers);
    }
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(s.app.seen().len(), 5);
    // Another client address has its own count.
    let r = s
        .send(
            OTHER_CLIENT,
            "POST",
            "/api/auth/sign-in/email",
            None,
            &[],
            b"{}",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn revoked_jti_is_401() {
    let s = Stack::start().await;
    let t = token("eddsa_with_jti"); // user_jti, jti-0001
    let r = s.get("/api/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Now verified and cached; revocation is checked on every cache hit.
    s.revoke(r#"{"jti":"jti-0001","exp":4102444800}"#).await;
    let r = s.get("/api/me", Some(&t)).await;
    assert_denied(&r, 401, "revoked");
    assert_bearer_challenge(&r);
    // Other tokens are untouched.
    let r = s.get("/api/me", Some(&token("eddsa_better_auth"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn revoking_a_users_tokens_issued_before_t_is_401() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth"); // user_1, issued when the fixtures were made
    let r = s.get("/api/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let before = s.now_secs();
    s.revoke(&format!(r#"{{"sub":"user_1","before":{before}}}"#))
        .await;
    let r = s.get("/api/me", Some(&t)).await;
    assert_denied(&r, 401, "revoked");
    assert_bearer_challenge(&r);
    // Another user's token still passes.
    let r = s.get("/api/me", Some(&token("eddsa_with_jti"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn auth_subrequests_reuse_a_keepalive_connection_allowed_or_denied() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth");
    let before = s.tollgate_connections_accepted().await;
    for _ in 0..10 {
        assert_eq!(s.get("/api/me", Some(&t)).await.status, 200);
        assert_eq!(s.get("/api/users/bob", Some(&t)).await.status, 403);
        assert_eq!(s.get("/api/me", None).await.status, 401);
    }
    let after = s.tollgate_connections_accepted().await;
    // One nginx process asking one question at a time needs one connection; 30 would mean
    // an answer nginx could not keep alive (a body, or Connection: close). The second
    // /metrics request is one more.
    let opened = after - before - 1;
    assert!(
        opened <= 2,
        "nginx opened {opened} connections to tollgate for 30 auth subrequests"
    );
    s.stop().await;
}
