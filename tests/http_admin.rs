//! The admin API over real sockets: `POST /admin/revoke` and `GET /admin/revocations`, who
//! may call them (`[auth.admin]`: disabled by default, a bearer secret from the environment,
//! or the Unix socket only), and every refusal (404, 405, 401, 403, 413, 400), each an RFC
//! 9457 problem.

mod auth_support;
#[path = "http_support/auth.rs"]
mod http_auth_support;
mod http_support;

use http_auth_support::*;
use http_support::{tcp_client, RawClient, RawResponse};
use tollgate::server::ServerHandle;

const ENABLED: &str = "[auth.admin]\nenabled = true\nsecret_env = \"TOLLGATE_TEST_ADMIN_SECRET\"\n";

fn post(path: &str, auth: Option<&str>, body: &str) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn bearer() -> String {
    format!("Bearer {ADMIN_SECRET}")
}

async fn exchange<S>(c: &mut RawClient<S>, raw: &str) -> RawResponse
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    c.send(raw).await;
    c.read_response().await.expect("an answer")
}

fn assert_problem(r: &RawResponse, status: u16, slug: &str) -> String {
    assert_eq!(r.status, status, "{:?} {}", r.headers, r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let v = r.json();
    assert_eq!(v["type"], format!("urn:tollgate:problem:{slug}"));
    assert_eq!(v["status"], status);
    v["detail"].as_str().unwrap().to_string()
}

async fn server(extra: &str) -> ServerHandle {
    start(config(100, 100, extra), true).await.0
}

#[tokio::test]
async fn the_admin_api_is_not_served_by_default() {
    let s = server("").await;
    let mut c = tcp_client(&s).await;
    let b = bearer();
    for raw in [
        post("/admin/revoke", Some(&b), r#"{"jti":"a","exp":4102444800}"#),
        "GET /admin/revocations HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        format!("GET /admin/revocations HTTP/1.1\r\nHost: t\r\nAuthorization: {b}\r\n\r\n"),
        "DELETE /admin/revoke HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
    ] {
        let r = exchange(&mut c, &raw).await;
        let detail = assert_problem(&r, 404, "not-found");
        assert!(detail.contains("disabled"), "{detail}");
    }
    assert!(s.gate().authenticator().revocations().is_empty());
    s.stop().await.unwrap();
}

#[tokio::test]
async fn the_secret_is_required_and_checked() {
    let s = server(ENABLED).await;
    let mut c = tcp_client(&s).await;
    let body = r#"{"jti":"a","exp":4102444800}"#;
    let r = exchange(&mut c, &post("/admin/revoke", None, body)).await;
    assert_problem(&r, 401, "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="tollgate-admin""#)
    );
    for wrong in [
        format!("Bearer {}", &ADMIN_SECRET[..ADMIN_SECRET.len() - 1]),
        format!("Bearer {ADMIN_SECRET}x"),
        format!("Basic {ADMIN_SECRET}"),
        ADMIN_SECRET.to_string(),
    ] {
        let r = exchange(&mut c, &post("/admin/revoke", Some(&wrong), body)).await;
        let detail = assert_problem(&r, 401, "unauthorized");
        assert!(!detail.contains(ADMIN_SECRET), "the secret is never echoed");
        assert_eq!(
            r.header("www-authenticate"),
            Some(r#"Bearer realm="tollgate-admin", error="invalid_token""#)
        );
    }
    let r = exchange(
        &mut c,
        "GET /admin/revocations HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer nope\r\n\r\n",
    )
    .await;
    assert_problem(&r, 401, "unauthorized");
    assert!(s.gate().authenticator().revocations().is_empty());

    // The right secret: recorded (201), then already there (200).
    let b = bearer();
    let r = exchange(&mut c, &post("/admin/revoke", Some(&b), body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["recorded"], true);
    assert_eq!(v["durable"], false);
    assert_eq!(
        v["revocation"],
        serde_json::json!({"jti": "a", "exp": 4102444800i64})
    );
    let r = exchange(&mut c, &post("/admin/revoke", Some(&b), body)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["recorded"], false);

    let r = exchange(
        &mut c,
        &format!("GET /admin/revocations HTTP/1.1\r\nHost: t\r\nAuthorization: {b}\r\n\r\n"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["count"], 1);
    assert_eq!(
        v["revocations"],
        serde_json::json!([{"jti": "a", "exp": 4102444800i64}])
    );
    let m = c.get("/metrics").await.text();
    assert!(
        m.contains(r#"tollgate_http_problems_total{type="unauthorized"} 6"#),
        "{m}"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn ten_wrong_secrets_from_one_address_lock_it_out_for_a_minute() {
    let (s, clock) = start(config(100, 100, ENABLED), true).await;
    let mut c = tcp_client(&s).await;
    let list = |auth: &str| {
        format!("GET /admin/revocations HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n\r\n")
    };
    for _ in 0..10 {
        let r = exchange(&mut c, &list("Bearer wrong")).await;
        assert_problem(&r, 401, "unauthorized");
    }
    // The eleventh attempt is refused before the secret is looked at, even the right one.
    for auth in ["Bearer wrong".to_string(), bearer()] {
        let r = exchange(&mut c, &list(&auth)).await;
        let detail = assert_problem(&r, 429, "too-many-attempts");
        assert!(detail.contains("too many wrong admin secrets"), "{detail}");
        assert_eq!(r.header("retry-after"), Some("60"));
    }
    // A minute later the right secret is admitted, and the count starts over.
    clock.advance_millis(60_000);
    assert_eq!(exchange(&mut c, &list(&bearer())).await.status, 200);
    let r = exchange(&mut c, &list("Bearer wrong")).await;
    assert_problem(&r, 401, "unauthorized");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_methods_and_paths() {
    let s = server(ENABLED).await;
    let mut c = tcp_client(&s).await;
    let b = bearer();
    for (method, path, allow) in [
        ("GET", "/admin/revoke", "POST"),
        ("PUT", "/admin/revoke", "POST"),
        ("POST", "/admin/revocations", "GET, HEAD"),
        ("DELETE", "/admin/revocations", "GET, HEAD"),
    ] {
        let r = exchange(
            &mut c,
            &format!("{method} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: {b}\r\nContent-Length: 0\r\n\r\n"),
        )
        .await;
        assert_problem(&r, 405, "method-not-allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    let r = exchange(
        &mut c,
        &format!("GET /admin/nope HTTP/1.1\r\nHost: t\r\nAuthorization: {b}\r\n\r\n"),
    )
    .await;
    let detail = assert_problem(&r, 404, "not-found");
    assert!(detail.contains("/admin/revoke"), "{detail}");
    // HEAD: the head of the list's answer.
    c.send(&format!(
        "HEAD /admin/revocations HTTP/1.1\r\nHost: t\r\nAuthorization: {b}\r\n\r\n"
    ))
    .await;
    let r = c.read_response_head_only().await;
    assert_eq!(r.status, 200);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn bodies_are_bounded_and_must_be_a_revocation() {
    let s = server(ENABLED).await;
    let b = bearer();

    // Declared too large: refused before reading.
    let mut c = tcp_client(&s).await;
    c.send(&format!(
        "POST /admin/revoke HTTP/1.1\r\nHost: t\r\nAuthorization: {b}\r\nContent-Length: 20000\r\n\r\n"
    ))
    .await;
    let r = c.read_response().await.unwrap();
    let detail = assert_problem(&r, 413, "body-too-large");
    assert!(detail.contains("16384"), "{detail}");

    // A length far over the bound: refused on the prefix, nothing read or allocated for it.
    // (A length hyper cannot hold at all, such as 2^64 - 1, is hyper's own bodyless 431.)
    let mut c = tcp_client(&s).await;
    c.send(&format!(
        "POST /admin/revoke HTTP/1.1\r\nHost: t\r\nAuthorization: {b}\r\nContent-Length: 99999999999\r\n\r\n"
    ))
    .await;
    let r = c.read_response().await.unwrap();
    assert_problem(&r, 413, "body-too-large");

    // Too large without a declared length (chunked): refused once the bound is passed.
    let mut c = tcp_client(&s).await;
    let chunk = "x".repeat(4096);
    let mut raw = format!(
        "POST /admin/revoke HTTP/1.1\r\nHost: t\r\nAuthorization: {b}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..5 {
        raw.push_str(&format!("1000\r\n{chunk}\r\n"));
    }
    raw.push_str("0\r\n\r\n");
    c.send(&raw).await;
    let r = c.read_response().await.unwrap();
    assert_problem(&r, 413, "body-too-large");

    let mut c = tcp_client(&s).await;
    for (body, word) in [
        ("", "JSON"),
        ("{", "JSON"),
        ("[1,2]", "object"),
        (r#"{"jti":"a"}"#, "exp"),
        (r#"{"jti":"a","exp":"soon"}"#, "exp"),
        (r#"{"jti":"a","exp":4102444800,"sub":"u"}"#, "sub"),
        (r#"{"sub":"u","before":1,"reason":"x"}"#, "before"),
        (r#"{"sub":"","before":1900000000}"#, "subject"),
        (r#"{"jti":"a","exp":99999999999999999}"#, "time"),
    ] {
        let r = exchange(&mut c, &post("/admin/revoke", Some(&b), body)).await;
        let detail = assert_problem(&r, 400, "invalid-body");
        assert!(detail.contains(word), "{body}: {detail}");
    }
    // Nothing of it was recorded; a good request on the same connection still works.
    assert!(s.gate().authenticator().revocations().is_empty());
    let r = exchange(
        &mut c,
        &post(
            "/admin/revoke",
            Some(&b),
            r#"{"sub":"u","before":1900000000}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["revocation"],
        serde_json::json!({"sub": "u", "before": 1900000000})
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_revocation_is_in_the_log_before_it_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("revocations.log");
    let extra = format!(
        "{ENABLED}\n[auth.revocation]\npath = \"{}\"\n",
        log.display()
    );
    let s = server(&extra).await;
    let mut c = tcp_client(&s).await;
    let r = exchange(
        &mut c,
        &post(
            "/admin/revoke",
            Some(&bearer()),
            r#"{"jti":"jti-0001","exp":4102444800}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["durable"], true);
    // Acknowledged means written: the line is in the file now.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(r#""jti":"jti-0001""#), "{text:?}");
    s.stop().await.unwrap();

    // And a new process starts with it.
    let s = server(&extra).await;
    let mut c = tcp_client(&s).await;
    let t = auth_support::token("eddsa_with_jti");
    c.send(&auth_request("/api/me", Some(&t), &[])).await;
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-tollgate-reason"), Some("revoked"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn unix_socket_only_is_refused_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let mut cfg = config(
        100,
        100,
        "[auth.admin]\nenabled = true\nunix_socket_only = true\n",
    );
    cfg.server.unix_socket = Some(path.clone());
    let s = start(cfg, true).await.0;
    let body = r#"{"sub":"user_1","before":1900000000}"#;

    let mut tcp = tcp_client(&s).await;
    let r = exchange(&mut tcp, &post("/admin/revoke", Some(&bearer()), body)).await;
    let detail = assert_problem(&r, 403, "forbidden");
    assert!(detail.contains("Unix socket"), "{detail}");

    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut unix = RawClient::new(stream);
    let r = exchange(&mut unix, &post("/admin/revoke", None, body)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = exchange(
        &mut unix,
        "GET /admin/revocations HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["count"], 1);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_missing_admin_secret_stops_the_start() {
    let cfg = config(
        100,
        100,
        "[auth.admin]\nenabled = true\nsecret_env = \"TOLLGATE_TEST_UNSET_VARIABLE\"\n",
    );
    let err = tollgate::server::ServerBuilder::new(cfg)
        .env(env)
        .start()
        .await
        .err()
        .expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("TOLLGATE_TEST_UNSET_VARIABLE"), "{text}");
}
