//! `/auth`, the endpoint nginx `auth_request` asks about every request of the protected
//! application, over real sockets: tokens from tests/tokens/ (made with PyJWT), route rules,
//! path normalisation, rate limits, revocation through the admin API, the client address
//! behind trusted proxies, and the fast path and hyper answering alike. Every answer is
//! checked against the `/auth` contract (empty body, reason on every denial, challenge on
//! every 401, the token never echoed).

mod auth_support;
#[path = "http_support/auth.rs"]
mod http_auth_support;
mod http_support;

use auth_support::token;
use http_auth_support::*;
use http_support::{tcp_client, RawClient, RawResponse};
use tollgate::server::ServerHandle;

/// Sends one `/auth` request and checks the contract.
async fn ask<S>(c: &mut RawClient<S>, uri: &str, tok: Option<&str>) -> RawResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ask_with(c, uri, tok, &[]).await
}

async fn ask_with<S>(
    c: &mut RawClient<S>,
    uri: &str,
    tok: Option<&str>,
    extra: &[(&str, &str)],
) -> RawResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    c.send(&auth_request(uri, tok, extra)).await;
    let r = c.read_response().await.expect("an answer");
    assert_auth_contract(&r, tok);
    r
}

fn assert_denied(r: &RawResponse, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{:?}", r.headers);
    assert_eq!(
        r.header("x-tollgate-reason"),
        Some(reason),
        "{:?}",
        r.headers
    );
    assert!(r.header("x-user-id").is_none());
}

async fn server(fast: bool) -> ServerHandle {
    start(config(100, 100, ""), fast).await.0
}

#[tokio::test]
async fn no_token_on_a_required_route_is_401_with_a_challenge() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;
        let r = ask(&mut c, "/api/me", None).await;
        assert_denied(&r, 401, "missing_token");
        let w = r.header("www-authenticate").unwrap();
        assert!(w.contains("error_description=\""), "{w}");
        // The same on an owner path and a role path: the identity is missing first.
        for uri in ["/api/users/user_1/tasks", "/api/admin/stats"] {
            assert_denied(&ask(&mut c, uri, None).await, 401, "missing_token");
        }
        // An anonymous request on an optional route passes as the anonymous tier, without
        // identity headers.
        let r = ask(&mut c, "/home", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-tier"), Some("anonymous"));
        for h in ["x-user-id", "x-user-email", "x-user-role"] {
            assert!(r.header(h).is_none(), "{h}: {:?}", r.headers);
        }
        assert_eq!(
            r.header("ratelimit-policy"),
            Some(r#""anonymous";q=100;w=3600"#)
        );
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn valid_tokens_get_200_with_identity_and_rate_limit_headers() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;

        let t = token("eddsa_better_auth");
        let r = ask(&mut c, "/api/me", Some(&t)).await;
        assert_eq!(r.status, 200, "{:?}", r.headers);
        assert_eq!(r.header("x-user-id"), Some("user_1"));
        assert_eq!(r.header("x-user-email"), Some("user_1@example.com"));
        assert_eq!(r.header("x-user-role"), Some("user"));
        assert_eq!(r.header("x-tier"), Some("basic"));
        assert_eq!(
            r.header("ratelimit-policy"),
            Some(r#""basic";q=100;w=3600"#)
        );
        assert!(r
            .header("ratelimit")
            .is_some_and(|v| v.starts_with(r#""basic";r=99;t="#)));
        assert_eq!(r.header("x-ratelimit-limit"), Some("100"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some("99"));
        assert!(r.header("x-ratelimit-reset").is_some());
        assert!(r.header("retry-after").is_none());

        // Roles joined by ",", and the tier a role maps to.
        let r = ask(&mut c, "/api/me", Some(&token("eddsa_premium_roles"))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-user-id"), Some("user_premium"));
        assert_eq!(r.header("x-user-role"), Some("user,premium"));
        assert_eq!(r.header("x-tier"), Some("premium"));

        // The FastAPI HS256 shape has no email and no role: those headers are left out.
        let r = ask(&mut c, "/api/me", Some(&token("hs256"))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-user-id"), Some("user_hs"));
        assert!(r.header("x-user-email").is_none() && r.header("x-user-role").is_none());
        assert_eq!(r.header("x-tier"), Some("basic"));

        // Every algorithm of the fixtures.
        for (name, user) in [
            ("es256", "user_es256"),
            ("es512", "user_es512"),
            ("rs256", "user_rs256"),
            ("ps256", "user_ps256"),
        ] {
            let r = ask(&mut c, "/api/me", Some(&token(name))).await;
            assert_eq!(r.status, 200, "{name}");
            assert_eq!(r.header("x-user-id"), Some(user));
        }
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn bad_credentials_are_401_with_their_reason() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;
        for (name, reason, described) in [
            ("expired", "expired", "the token has expired"),
            ("hs256_expired", "expired", "the token has expired"),
            ("tampered_signature", "invalid_token", "signature"),
            ("tampered_payload", "invalid_token", "signature"),
            ("hs256_wrong_secret", "invalid_token", "signature"),
            ("alg_none", "invalid_token", "unsigned"),
            ("wrong_aud", "invalid_token", "audience"),
            (
                "hs256_signed_with_rsa_public_key",
                "invalid_token",
                "algorithm",
            ),
        ] {
            let t = token(name);
            let r = ask(&mut c, "/api/me", Some(&t)).await;
            assert_denied(&r, 401, reason);
            let w = r.header("www-authenticate").unwrap();
            assert!(w.contains(described), "{name}: {w}");
        }
        // A bad token on an optional route is still refused: it is not downgraded to
        // anonymous.
        let r = ask(&mut c, "/home", Some(&token("expired"))).await;
        assert_denied(&r, 401, "expired");
        // Where credentials are not looked at, a bad token does not matter.
        let r = ask(&mut c, "/public/logo.png", Some(&token("expired"))).await;
        assert_eq!(r.status, 200);
        assert!(r.header("x-user-id").is_none());
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn owner_paths_are_judged_after_normalisation() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;
        let t = token("eddsa_better_auth"); // user_1
        for (uri, want) in [
            ("/api/users/user_1/tasks", None),
            ("/api/users/user_1/tasks?page=2", None),
            ("/api/users/bob/tasks", Some((403, "not_owner"))),
            // Dot segments: bob's path to a backend that resolves them, user_1's to one
            // that does not (Starlette, Express), so the default reading refuses them.
            ("/api/users/user_1/../bob/tasks", Some((403, "bad_path"))),
            ("/api/users/bob/../user_1/tasks", Some((403, "bad_path"))),
            ("/api/users//user_1/./tasks", Some((403, "bad_path"))),
            ("/api/users//user_1/tasks", None),
            ("/api/users/%75ser_1/tasks", None),
            // An encoded slash, or `..` above the root, cannot be judged safely.
            (
                "/api/users/user_1%2F..%2Fbob/tasks",
                Some((403, "bad_path")),
            ),
            ("/api/users/user_1%2fx/tasks", Some((403, "bad_path"))),
            ("/../etc/passwd", Some((403, "bad_path"))),
            // Role rules.
            ("/api/admin/stats", Some((403, "forbidden"))),
        ] {
            let r = ask(&mut c, uri, Some(&t)).await;
            match want {
                None => {
                    assert_eq!(r.status, 200, "{uri}: {:?}", r.headers);
                    assert_eq!(r.header("x-user-id"), Some("user_1"));
                }
                Some((status, reason)) => {
                    assert_eq!(r.status, status, "{uri}");
                    assert_eq!(r.header("x-tollgate-reason"), Some(reason), "{uri}");
                }
            }
        }
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn the_original_method_decides_and_defaults_to_the_requests_own() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;
        let t = token("eddsa_better_auth");
        let bearer = format!("Bearer {t}");
        // DELETE /api/reports/** needs the admin role; GET is any signed-in user.
        let r = ask(&mut c, "/api/reports/7", Some(&t)).await;
        assert_eq!(r.status, 200);
        let r = ask_with(
            &mut c,
            "/api/reports/7",
            None,
            &[("X-Original-Method", "DELETE"), ("Authorization", &bearer)],
        )
        .await;
        // `auth_request` sent X-Original-Method: GET first; the first line counts.
        assert_eq!(r.status, 200);
        // Without X-Original-Method the /auth request's own method is the original one
        // (nginx's auth subrequest carries it).
        for (method, status) in [("DELETE", 403), ("GET", 200), ("POST", 200), ("HEAD", 200)] {
            c.send(&format!(
                "{method} /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api/reports/7\r\n\
                 Authorization: {bearer}\r\n\r\n"
            ))
            .await;
            let r = c.read_response().await.unwrap();
            if method == "HEAD" {
                assert_head_contract(&r, Some(&t));
            } else {
                assert_auth_contract(&r, Some(&t));
            }
            assert_eq!(r.status, status, "{method}");
        }
        // With X-Original-Method, the request's own method does not matter.
        c.send(&format!(
            "POST /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api/reports/7\r\n\
             X-Original-Method: DELETE\r\nAuthorization: {bearer}\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
        let r = c.read_response().await.unwrap();
        assert_denied(&r, 403, "forbidden");
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn requests_nginx_did_not_describe_are_400_problems() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;
        c.send("GET /auth HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer x\r\n\r\n")
            .await;
        let r = c.read_response().await.unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let v = r.json();
        assert_eq!(v["type"], "urn:tollgate:problem:missing-header");
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains("X-Original-URI") && detail.contains("proxy_set_header"),
            "{detail}"
        );
        c.send(
            "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /home\r\nX-Original-Method: G(T\r\n\r\n",
        )
        .await;
        let r = c.read_response().await.unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["type"], "urn:tollgate:problem:invalid-header");
        // The connection lives on.
        let r = ask(&mut c, "/home", None).await;
        assert_eq!(r.status, 200);
        let m = c.get("/metrics").await.text();
        assert!(m.contains(r#"tollgate_http_problems_total{type="missing-header"} 1"#));
        assert!(m.contains(r#"tollgate_access_total{result="allowed"} 1"#));
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn past_the_limit_is_403_rate_limited_and_a_denial_consumes_nothing() {
    for fast in [true, false] {
        // basic: 5 per hour per user; upload: 2 per hour per user, on top.
        let (s, _clock) = start(config(5, 100, ""), fast).await;
        let mut c = tcp_client(&s).await;
        let t = token("eddsa_better_auth");
        for remaining in [1, 0] {
            let r = ask(&mut c, "/api/upload/photo", Some(&t)).await;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.header("ratelimit-policy"),
                Some(r#""basic";q=5;w=3600, "upload";q=2;w=3600"#)
            );
            assert_eq!(
                r.header("x-ratelimit-remaining"),
                Some(remaining.to_string().as_str())
            );
        }
        // The upload limit denies: 403 (not 429, which nginx would turn into a 500) with
        // Retry-After and the rate-limit fields, for nginx to turn into a real 429.
        for _ in 0..3 {
            let r = ask(&mut c, "/api/upload/photo", Some(&t)).await;
            assert_denied(&r, 403, "rate_limited");
            assert_eq!(r.header("x-tier"), Some("basic"));
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=3600).contains(&retry), "{retry}");
            assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
            assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
            assert!(r.header("ratelimit").unwrap().contains(r#""basic";r=3;"#));
        }
        // The three denied uploads spent nothing of the basic tier: 5 − 2 − this one.
        let r = ask(&mut c, "/api/me", Some(&t)).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
        for _ in 0..2 {
            assert_eq!(ask(&mut c, "/api/me", Some(&t)).await.status, 200);
        }
        let r = ask(&mut c, "/api/me", Some(&t)).await;
        assert_denied(&r, 403, "rate_limited");
        assert!(r.header("retry-after").is_some());
        // Another user has a quota of their own.
        let r = ask(&mut c, "/api/me", Some(&token("es256"))).await;
        assert_eq!(r.status, 200);
        let m = c.get("/metrics").await.text();
        assert!(m.contains(r#"tollgate_access_total{result="rate_limited"} 4"#));
        s.stop().await.unwrap();
    }
}

async fn admin_revoke(s: &ServerHandle, json: &str) -> RawResponse {
    let mut c = tcp_client(s).await;
    c.send(&format!(
        "POST /admin/revoke HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN_SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    ))
    .await;
    c.read_response().await.unwrap()
}

#[tokio::test]
async fn tokens_revoked_through_the_admin_api_are_401_revoked() {
    let admin = "[auth.admin]\nenabled = true\nsecret_env = \"TOLLGATE_TEST_ADMIN_SECRET\"\n";
    for fast in [true, false] {
        let s = start(config(100, 100, admin), fast).await.0;
        let mut c = tcp_client(&s).await;
        let with_jti = token("eddsa_with_jti");
        let user_1 = token("eddsa_better_auth");
        // Both verified once, so the next answers come from the token cache: revocation is
        // checked on cache hits too.
        assert_eq!(ask(&mut c, "/api/me", Some(&with_jti)).await.status, 200);
        assert_eq!(ask(&mut c, "/api/me", Some(&user_1)).await.status, 200);

        let r = admin_revoke(&s, r#"{"jti":"jti-0001","exp":4102444800}"#).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let r = ask(&mut c, "/api/me", Some(&with_jti)).await;
        assert_denied(&r, 401, "revoked");
        assert!(r.header("www-authenticate").unwrap().contains("revoked"));
        // Revocation is about the token, so optional routes refuse it too.
        assert_denied(&ask(&mut c, "/home", Some(&with_jti)).await, 401, "revoked");
        assert_eq!(ask(&mut c, "/api/me", Some(&user_1)).await.status, 200);

        // Every token of user_1 issued before now + 1 s (logout everywhere).
        let before = auth_support::manifest().generated_at + 61;
        let r = admin_revoke(&s, &format!(r#"{{"sub":"user_1","before":{before}}}"#)).await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_denied(&ask(&mut c, "/api/me", Some(&user_1)).await, 401, "revoked");
        // Other users are unaffected.
        assert_eq!(
            ask(&mut c, "/api/me", Some(&token("es256"))).await.status,
            200
        );
        let m = c.get("/metrics").await.text();
        assert!(
            m.contains(r#"tollgate_access_total{result="revoked"} 3"#),
            "{m}"
        );
        // The authenticator's own figures, copied in at scrape time.
        for line in [
            r#"tollgate_auth_outcomes_total{reason="revoked"} 3"#,
            "tollgate_revocations 2",
            "tollgate_revocations_recorded_total 2",
            "tollgate_revoked_tokens_refused_total 3",
            r#"tollgate_keyset_ready{issuer="better-auth"} 1"#,
        ] {
            assert!(m.contains(line), "missing {line:?} in\n{m}");
        }
        // user_1's token was asked about four times: verified once, then served from the
        // cache (a revoked token is still a hit: revocation is checked on every hit).
        let hits: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("tollgate_token_cache_hits_total "))
            .and_then(|v| v.parse().ok())
            .expect("tollgate_token_cache_hits_total is exported");
        assert!(hits >= 3, "{m}");
        assert!(m.contains("tollgate_token_cache_hit_ratio 0."), "{m}");
        s.stop().await.unwrap();
    }
}

/// Which client address a server saw: the anonymous tier is keyed per IP with a limit of
/// 100, so the remaining quota tells whose counter a request was counted against.
async fn remaining_after<S>(c: &mut RawClient<S>, extra: &[(&str, &str)]) -> u64
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let r = ask_with(c, "/home", None, extra).await;
    assert_eq!(r.status, 200);
    r.header("x-ratelimit-remaining").unwrap().parse().unwrap()
}

#[tokio::test]
async fn client_ip_headers_are_believed_only_from_a_trusted_peer() {
    for fast in [true, false] {
        // Loopback is a trusted proxy (the default): its X-Forwarded-For names the client,
        // read from the right, and X-Real-IP when there is no X-Forwarded-For.
        let s = start(config(100, 100, ""), fast).await.0;
        let mut c = tcp_client(&s).await;
        let xff = |v| [("X-Forwarded-For", v)];
        assert_eq!(remaining_after(&mut c, &xff("203.0.113.7")).await, 99);
        assert_eq!(remaining_after(&mut c, &xff("203.0.113.7")).await, 98);
        assert_eq!(remaining_after(&mut c, &xff("203.0.113.8")).await, 99);
        // A client-forged entry left of the one nginx appended is not the client.
        assert_eq!(
            remaining_after(&mut c, &xff("198.51.100.1, 203.0.113.8")).await,
            98
        );
        // Several lines form one list.
        let two_lines = [
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-For", "203.0.113.8"),
        ];
        assert_eq!(remaining_after(&mut c, &two_lines).await, 97);
        assert_eq!(
            remaining_after(&mut c, &[("X-Real-IP", "203.0.113.9")]).await,
            99
        );
        // Without a header: the socket peer.
        assert_eq!(remaining_after(&mut c, &[]).await, 99);
        assert_eq!(remaining_after(&mut c, &[]).await, 98);
        s.stop().await.unwrap();

        // Trusting only 10.0.0.0/8: the loopback peer's headers are its own word, ignored.
        let (s, _) = start(
            config(100, 100, "[policy]\ntrusted_proxies = [\"10.0.0.0/8\"]\n"),
            fast,
        )
        .await;
        let mut c = tcp_client(&s).await;
        assert_eq!(remaining_after(&mut c, &xff("203.0.113.7")).await, 99);
        assert_eq!(remaining_after(&mut c, &xff("203.0.113.8")).await, 98);
        assert_eq!(
            remaining_after(&mut c, &[("X-Real-IP", "203.0.113.9")]).await,
            97
        );
        assert_eq!(remaining_after(&mut c, &[]).await, 96);
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_unix_socket_peer_is_trusted_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    for (trust, fast) in [(true, true), (true, false), (false, true), (false, false)] {
        let path = dir.path().join(format!("t-{trust}-{fast}.sock"));
        let mut cfg = config(
            100,
            100,
            &format!("[policy]\ntrust_unix_socket = {trust}\n"),
        );
        cfg.server.unix_socket = Some(path.clone());
        let s = start(cfg, fast).await.0;
        let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut c = RawClient::new(stream);
        let xff = |v| [("X-Forwarded-For", v)];
        let a = remaining_after(&mut c, &xff("203.0.113.7")).await;
        let b = remaining_after(&mut c, &xff("203.0.113.8")).await;
        if trust {
            assert_eq!((a, b), (99, 99), "each address its own counter");
        } else {
            // Headers ignored; a Unix peer has no address: one counter for all.
            assert_eq!((a, b), (99, 98));
        }
        s.stop().await.unwrap();
    }
}

/// Status, headers but `date` (sorted), body.
type Seen = (u16, Vec<(String, String)>, Vec<u8>);

fn normalise(r: RawResponse) -> Seen {
    let mut h: Vec<_> = r.headers.into_iter().filter(|(n, _)| n != "date").collect();
    h.sort();
    (r.status, h, r.body)
}

#[tokio::test]
async fn fast_path_and_hyper_give_identical_auth_answers() {
    let (fast, _) = start(config(3, 10, ""), true).await;
    let (hyper, _) = start(config(3, 10, ""), false).await;
    let user_1 = token("eddsa_better_auth");
    let premium = token("eddsa_premium_roles");
    let expired = token("expired");
    let tampered = token("tampered_signature");
    let bearer = format!("Bearer {user_1}");
    let mut requests: Vec<String> = Vec::new();
    for (uri, tok) in [
        ("/api/me", Some(user_1.as_str())),
        ("/api/me", Some(premium.as_str())),
        ("/api/me", None),
        ("/api/me", Some(expired.as_str())),
        ("/api/me", Some(tampered.as_str())),
        ("/api/users/bob/tasks", Some(user_1.as_str())),
        ("/api/users/user_1/../bob/tasks", Some(user_1.as_str())),
        ("/api/users/user_1%2Fx", Some(user_1.as_str())),
        ("/api/upload/a", Some(user_1.as_str())),
        ("/api/upload/a", Some(user_1.as_str())),
        ("/api/upload/a", Some(user_1.as_str())), // rate-limited by upload
        ("/api/me", Some(user_1.as_str())),       // rate-limited by basic
        ("/public/x", Some("garbage")),
    ] {
        requests.push(auth_request(uri, tok, &[]));
    }
    // One anonymous client past its limit (10), the last one rate-limited.
    for _ in 0..11 {
        requests.push(auth_request(
            "/home",
            None,
            &[("X-Real-IP", "198.51.100.9")],
        ));
    }
    requests.extend([
        auth_request("/home", None, &[("X-Forwarded-For", "203.0.113.7")]),
        auth_request("/home", None, &[("X-Real-IP", "203.0.113.8")]),
        auth_request("/home", None, &[("X-Original-Method", "GET")]),
        format!("POST /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api/reports/1\r\nAuthorization: {bearer}\r\n\r\n"),
        format!("DELETE /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api/reports/1\r\nAuthorization: {bearer}\r\n\r\n"),
        format!("HEAD /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /public/1\r\nAuthorization: {bearer}\r\n\r\n"),
        "GET /auth?from=nginx HTTP/1.1\r\nHost: t\r\nX-Original-URI: /public/2\r\n\r\n".into(),
        "GET /auth HTTP/1.1\r\nHost: t\r\n\r\n".into(),
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /x\r\nX-Original-Method: ??\r\n\r\n".into(),
        "GET /auth HTTP/1.1\r\nHost: t\r\nx-original-uri: /public/3\r\nAUTHORIZATION: Basic abc\r\n\r\n".into(),
        format!("GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /public/{}\r\n\r\n", "a".repeat(9000)),
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /public/4\r\nConnection: close\r\n\r\n".into(),
    ]);
    let mut statuses = Vec::new();
    for req in &requests {
        let mut a = tcp_client(&fast).await;
        let mut b = tcp_client(&hyper).await;
        a.send(req).await;
        b.send(req).await;
        let (ra, rb) = (
            a.read_response().await.unwrap(),
            b.read_response().await.unwrap(),
        );
        if req.starts_with("HEAD") {
            assert_head_contract(&ra, None);
        } else if ra.status != 400 {
            assert_auth_contract(&ra, None);
        }
        statuses.push((ra.status, ra.header("x-tollgate-reason").map(str::to_owned)));
        assert_eq!(
            normalise(ra),
            normalise(rb),
            "{}",
            req.lines().take(3).collect::<Vec<_>>().join(" | ")
        );
    }

    // The sequence covers every kind of answer.
    for want in [
        (200, None),
        (401, Some("missing_token")),
        (401, Some("expired")),
        (401, Some("invalid_token")),
        (403, Some("not_owner")),
        (403, Some("bad_path")),
        (403, Some("forbidden")),
        (403, Some("rate_limited")),
        (400, None),
    ] {
        let want = (want.0, want.1.map(str::to_owned));
        assert!(statuses.contains(&want), "{want:?} not in {statuses:?}");
    }
    // A pipelined batch on one connection: /auth answers mixed with /check and a request
    // the fast path hands to hyper mid-batch.
    let elsewhere = [("X-Forwarded-For", "192.0.2.50")];
    let batch = [
        auth_request("/public/p", None, &elsewhere),
        "GET /check?key=p&tier=basic HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        auth_request("/api/me", None, &elsewhere),
        "POST /check HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi".to_string(),
        auth_request("/public/q", Some(&premium), &elsewhere),
    ]
    .concat();
    let mut seen = Vec::new();
    for server in [&fast, &hyper] {
        let mut c = tcp_client(server).await;
        c.send(&batch).await;
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(normalise(c.read_response().await.unwrap()));
        }
        seen.push(answers);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(
        seen[0].iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![200, 200, 401, 405, 200]
    );
    fast.stop().await.unwrap();
    hyper.stop().await.unwrap();
}

#[tokio::test]
async fn many_auth_requests_share_one_keep_alive_connection() {
    let s = server(true).await;
    let mut c = tcp_client(&s).await;
    let t = token("eddsa_better_auth");
    // Pipelined: 50 requests in one write, 50 answers in order.
    let one = auth_request("/api/me", Some(&t), &[]);
    c.send(&one.repeat(50)).await;
    for i in 0..50 {
        let r = c.read_response().await.unwrap();
        assert_auth_contract(&r, Some(&t));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((99 - i).to_string().as_str())
        );
    }
    s.stop().await.unwrap();
}

/// Hostile header values (any bytes a header value may carry, oversized tokens, long and
/// malformed forwarding lists) on both paths: every answer is a decision or a problem, both
/// paths agree, and the server keeps serving.
#[tokio::test]
async fn hostile_header_values_get_an_answer_never_a_crash() {
    use rand::{Rng, SeedableRng};
    let (fast, _) = start(config(1000, 1000, ""), true).await;
    let (hyper, _) = start(config(1000, 1000, ""), false).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let good = token("eddsa_better_auth");
    let pieces: [&str; 14] = [
        "/", "..", ".", "%2F", "%2f", "%", "%zz", "%00", "?", "#", "users", "user_1", "\u{e9}", ",",
    ];
    for round in 0..300 {
        // Visible ASCII, spaces and UTF-8: what a header value may carry.
        fn random_value(rng: &mut rand::rngs::StdRng, pieces: &[&str], max: usize) -> String {
            let n = rng.random_range(0..max);
            (0..n)
                .map(|_| match rng.random_range(0..10) {
                    0 => pieces[rng.random_range(0..pieces.len())].to_string(),
                    1 => ' '.to_string(),
                    _ => (rng.random_range(0x21u8..0x7f) as char).to_string(),
                })
                .collect()
        }
        let mut random_value = |max: usize| random_value(&mut rng, &pieces, max);
        let uri = match round % 4 {
            0 => format!("/api/users/{}", random_value(12)),
            1 => random_value(40),
            2 => format!("/{}", random_value(20)),
            _ => "/api/me".to_string(),
        };
        let auth = match round % 5 {
            0 => format!("Bearer {good}"),
            1 => format!("Bearer {}", random_value(60)),
            2 => format!("Bearer {}{}", &good[..good.len() / 2], random_value(10)),
            3 => random_value(30),
            _ => format!("Bearer {}", "A".repeat(8000 + round)),
        };
        let xff = match round % 3 {
            0 => random_value(30),
            1 => "1.2.3.4, ".repeat(round % 40),
            _ => "[::1]:80, 203.0.113.7".to_string(),
        };
        let method = ["GET", "get", "", "DELETE", "P\u{c3}ST", "x"][round % 6];
        let mut req = format!(
            "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: {}\r\nAuthorization: {}\r\nX-Forwarded-For: {}\r\n",
            uri.trim(),
            auth.trim(),
            xff.trim()
        );
        if !method.is_empty() {
            req.push_str(&format!("X-Original-Method: {method}\r\n"));
        }
        req.push_str("\r\n");
        let mut answers = Vec::new();
        for server in [&fast, &hyper] {
            let mut c = tcp_client(server).await;
            c.send(&req).await;
            match c.read_response().await {
                Some(r) => {
                    assert!(
                        matches!(r.status, 200 | 400 | 401 | 403),
                        "{} for {req:?}",
                        r.status
                    );
                    if r.status != 400 {
                        assert_auth_contract(&r, None);
                    }
                    answers.push(Some(normalise(r)));
                }
                // hyper closes on a head it refuses outright; so does the fast path, which
                // hands such heads to hyper.
                None => answers.push(None),
            }
        }
        assert_eq!(answers[0], answers[1], "{req:?}");
    }
    for server in [&fast, &hyper] {
        let mut c = tcp_client(server).await;
        assert_eq!(ask(&mut c, "/api/me", Some(&good)).await.status, 200);
    }
    fast.stop().await.unwrap();
    hyper.stop().await.unwrap();
}

/// nginx is told not to send the original body (`proxy_pass_request_body off`); when one
/// comes anyway, hyper answers (the body is not read) and the connection stays usable.
#[tokio::test]
async fn an_auth_request_with_a_body_is_answered_by_hyper() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;
        c.send(
            "POST /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /home\r\nContent-Length: 5\r\n\r\nhello",
        )
        .await;
        let r = c.read_response().await.unwrap();
        assert_auth_contract(&r, None);
        assert_eq!(r.status, 200);
        let r = ask(&mut c, "/api/me", None).await;
        assert_eq!(r.status, 401);
        s.stop().await.unwrap();
    }
}
