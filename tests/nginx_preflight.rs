//! CORS preflights through a real nginx: `examples/nginx.conf` and `examples/tollgate.toml` as
//! shipped (only addresses, the key source and file paths moved; `nginx_support::stack`). A browser's preflight
//! carries no credentials; nginx's `auth_request` hands its `Origin` and
//! `Access-Control-Request-Method` to tollgate with the rest of the client's headers, and
//! tollgate lets it reach the application — on a required route and on another user's owner
//! path alike — anonymous, without spending any quota.
//!
//! nginx must be installed (`tests/run.sh` installs it); without it these tests fail.

mod auth_support;
mod nginx_support;

use nginx_support::stack::{Stack, CLIENT};
use nginx_support::Response;

const PREFLIGHT: &[(&str, &str)] = &[
    ("Origin", "https://app.example"),
    ("Access-Control-Request-Method", "DELETE"),
    ("Access-Control-Request-Headers", "authorization"),
];

/// An OPTIONS request through nginx from a client.
async fn options(s: &Stack, target: &str, headers: &[(&str, &str)]) -> Response {
    s.send(CLIENT, "OPTIONS", target, None, headers, b"").await
}

#[tokio::test]
async fn a_preflight_reaches_the_application_anonymous_and_spends_nothing() {
    let s = Stack::start().await;
    // A required route, and another user's owner path (more specific than /api/**).
    for target in ["/api/me", "/api/users/user_2/tasks"] {
        let r = options(&s, target, PREFLIGHT).await;
        assert_eq!(r.status, 200, "{target}: {:?} {}", r.headers, r.text());
        let seen = s.api.last();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("OPTIONS", target)
        );
        // The preflight's own headers reach the application's CORS layer …
        assert_eq!(seen.header("origin"), Some("https://app.example"));
        assert_eq!(seen.header("access-control-request-method"), Some("DELETE"));
        // … and no identity or tier: it is anonymous.
        for absent in ["x-user-id", "x-user-role", "x-tier"] {
            assert_eq!(seen.header(absent), None, "{absent}: {:?}", seen.headers);
        }
    }
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"tollgate_access_total{result="preflight"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_tracked_states 0"),
        "a preflight spent quota: {metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_is_judged() {
    let s = Stack::start().await;
    let before = s.reached();
    // Without Access-Control-Request-Method it is an OPTIONS like any other: /api/me
    // requires a token.
    let r = options(&s, "/api/me", &PREFLIGHT[..1]).await;
    assert_eq!(r.status, 401, "{:?} {}", r.headers, r.text());
    assert_eq!(s.reached(), before, "an application was reached");
    s.stop().await;
}
