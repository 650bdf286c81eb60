//! `/auth` and requests that spend no tier quota: CORS preflights (passed unjudged by
//! default, on every route) and routes with `tier_limit = false`, on the fast path and on
//! hyper alike, with the headers an answer carries when no limit applies.

mod auth_support;
#[path = "http_support/auth.rs"]
mod http_auth_support;
mod http_support;

use auth_support::token;
use http_auth_support::*;
use http_support::{tcp_client, RawClient, RawResponse};
use tollgate::config::Config;
use tollgate::server::ServerHandle;

const ORIGIN: &str = "Origin: https://app.example\r\n";
const ACRM: &str = "Access-Control-Request-Method: DELETE\r\n";

/// Routes besides the shared ones: a health check that spends nothing, and public files
/// limited per address by a named limit only.
const UNLIMITED: &str = r#"
[limits.files]
limit = 1
window = "1h"
key = "ip"

[[routes]]
path = "/healthz"
auth = "none"
tier_limit = false

[[routes]]
path = "/assets/**"
tier_limit = false
limits = ["files"]
"#;

/// The anonymous tier allows one request an hour, so any quota spent shows at once.
fn tight() -> Config {
    config(100, 1, UNLIMITED)
}

/// `/auth` for `method` on `uri`; `lines` are header lines (each ending in CRLF) placed
/// before and after `X-Original-Method`, so that the fast path meets the preflight headers
/// on either side of the method.
async fn ask<S>(
    c: &mut RawClient<S>,
    method: &str,
    uri: &str,
    before: &str,
    after: &str,
) -> RawResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    c.send(&format!(
        "GET /auth HTTP/1.1\r\nHost: tollgate\r\nX-Original-URI: {uri}\r\n{before}\
         X-Original-Method: {method}\r\n{after}X-Forwarded-For: 203.0.113.7\r\n\r\n"
    ))
    .await;
    let r = c.read_response().await.expect("an answer");
    assert_auth_contract(&r, None);
    r
}

/// A passed preflight: 200, anonymous, no tier, no rate-limit fields, no reason.
fn assert_passed(r: &RawResponse, what: &str) {
    assert_eq!(r.status, 200, "{what}: {:?}", r.headers);
    for absent in [
        "x-user-id",
        "x-tier",
        "x-tollgate-reason",
        "ratelimit",
        "ratelimit-policy",
        "x-ratelimit-remaining",
        "retry-after",
    ] {
        assert!(
            r.header(absent).is_none(),
            "{what}: {absent} in {:?}",
            r.headers
        );
    }
}

async fn anonymous_remaining<S>(c: &mut RawClient<S>) -> Option<u64>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let r = ask(c, "GET", "/other", "", "").await;
    r.header("x-ratelimit-remaining")
        .map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn a_preflight_passes_every_route_unjudged_and_spends_nothing() {
    for fast in [true, false] {
        let (s, _clock) = start(tight(), fast).await;
        let mut c = tcp_client(&s).await;
        // A required route, another user's owner path, an admin route, the default rule.
        for uri in [
            "/api/me",
            "/api/users/bob/tasks",
            "/api/admin/stats",
            "/other",
            "/assets/app.js",
        ] {
            let what = format!("fast={fast} {uri}");
            assert_passed(&ask(&mut c, "OPTIONS", uri, ORIGIN, ACRM).await, &what);
            // The headers before the method, or after it: the same.
            let both = format!("{ORIGIN}{ACRM}");
            assert_passed(&ask(&mut c, "OPTIONS", uri, &both, "").await, &what);
            assert_passed(&ask(&mut c, "OPTIONS", uri, "", &both).await, &what);
        }
        // Fifteen preflights later, the anonymous tier's one request is still there.
        assert_eq!(anonymous_remaining(&mut c).await, Some(0), "fast={fast}");
        let metrics = c.get("/metrics").await.text();
        assert!(
            metrics.contains(r#"tollgate_access_total{result="preflight"} 15"#),
            "{metrics}"
        );
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn what_is_not_a_preflight_is_judged_by_its_rule() {
    for fast in [true, false] {
        let (s, _clock) = start(tight(), fast).await;
        let mut c = tcp_client(&s).await;
        for (method, before, after) in [
            ("OPTIONS", ORIGIN, ""),           // no requested method
            ("OPTIONS", ACRM, ""),             // no origin
            ("OPTIONS", "", ""),               // a plain OPTIONS
            ("OPTIONS", "Origin: \r\n", ACRM), // an empty origin
            ("options", ORIGIN, ACRM),         // not a browser's method
            ("DELETE", ORIGIN, ACRM),          // the real request
        ] {
            let r = ask(&mut c, method, "/api/me", before, after).await;
            assert_eq!(
                (r.status, r.header("x-tollgate-reason")),
                (401, Some("missing_token")),
                "fast={fast} {method} {before:?} {after:?}"
            );
        }
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn preflights_are_judged_when_configured_so() {
    for fast in [true, false] {
        let mut config = tight();
        config.policy.cors_preflight = "judge".into();
        let (s, _clock) = start(config, fast).await;
        let mut c = tcp_client(&s).await;
        let r = ask(&mut c, "OPTIONS", "/api/me", ORIGIN, ACRM).await;
        assert_eq!(
            (r.status, r.header("x-tollgate-reason")),
            (401, Some("missing_token"))
        );
        // Judged on the default rule, it spends the anonymous tier's one request.
        let r = ask(&mut c, "OPTIONS", "/other", ORIGIN, ACRM).await;
        assert_eq!((r.status, r.header("x-tier")), (200, Some("anonymous")));
        assert_eq!(anonymous_remaining(&mut c).await, Some(0));
        assert_eq!(
            ask(&mut c, "GET", "/other", "", "")
                .await
                .header("x-tollgate-reason"),
            Some("rate_limited")
        );
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_preflight_limit_bounds_a_flood_of_preflights() {
    for fast in [true, false] {
        let mut config = config(
            100,
            1,
            "[limits.preflight]\nlimit = 2\nwindow = \"1m\"\nkey = \"ip\"\n",
        );
        config.policy.cors_preflight_limits = vec!["preflight".into()];
        let (s, _clock) = start(config, fast).await;
        let mut c = tcp_client(&s).await;
        for remaining in ["1", "0"] {
            let r = ask(&mut c, "OPTIONS", "/api/me", ORIGIN, ACRM).await;
            assert_eq!(r.status, 200);
            assert!(r.header("x-tier").is_none() && r.header("x-user-id").is_none());
            assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining));
        }
        let r = ask(&mut c, "OPTIONS", "/api/me", ORIGIN, ACRM).await;
        assert_eq!(
            (r.status, r.header("x-tollgate-reason")),
            (403, Some("rate_limited"))
        );
        assert!(r.header("retry-after").is_some());
        // The anonymous tier is untouched.
        assert_eq!(anonymous_remaining(&mut c).await, Some(0));
        s.stop().await.unwrap();
    }
}

async fn server(fast: bool) -> ServerHandle {
    start(tight(), fast).await.0
}

#[tokio::test]
async fn a_route_without_the_tier_limit_answers_without_rate_limit_fields() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;
        let t = token("eddsa_better_auth");
        for _ in 0..3 {
            let r = ask(&mut c, "GET", "/healthz", "", "").await;
            assert_eq!((r.status, r.header("x-tier")), (200, Some("anonymous")));
            for absent in [
                "ratelimit",
                "ratelimit-policy",
                "x-ratelimit-limit",
                "retry-after",
            ] {
                assert!(r.header(absent).is_none(), "{absent}: {:?}", r.headers);
            }
            // auth = "none": a token is not looked at.
            let auth = format!("Authorization: Bearer {t}\r\n");
            let r = ask(&mut c, "GET", "/healthz", &auth, "").await;
            assert_eq!((r.status, r.header("x-tier")), (200, Some("anonymous")));
        }
        // A named limit still answers with its fields, and alone decides.
        let r = ask(&mut c, "GET", "/assets/app.js", "", "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        assert!(r.header("ratelimit-policy").unwrap().contains("\"files\""));
        let r = ask(&mut c, "GET", "/assets/app.css", "", "").await;
        assert_eq!(
            (r.status, r.header("x-tollgate-reason")),
            (403, Some("rate_limited"))
        );
        // And the anonymous tier's one request is still there.
        assert_eq!(anonymous_remaining(&mut c).await, Some(0));
        s.stop().await.unwrap();
    }
}
