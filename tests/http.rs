//! The HTTP door end to end, over real loopback sockets: `/check` answers and headers, every
//! problem answer, keep-alive, the Unix socket, reload through the API, `/metrics`, and a
//! multi-limit denial that consumes nothing.

mod http_support;

use http_support::*;
use tollgate::gate::{CheckCaller, CheckCredential, CheckQuery};
use tollgate::policy::Peer;

fn basic(limit_per_hour: u64) -> tollgate::config::Config {
    config(
        &[
            ("basic", limit(limit_per_hour, "1h")),
            ("big", limit(1_000_000, "1h")),
        ],
        &[("login", limit(2, "5m"))],
    )
}

#[tokio::test]
async fn check_admits_then_denies_with_every_header() {
    let (server, _clock) = start(basic(3)).await;
    let mut c = tcp_client(&server).await;

    for expected_remaining in [2u64, 1, 0] {
        let r = c.get("/check?key=ip:203.0.113.7&tier=basic").await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["allowed"], true);
        assert_eq!(v["limit"], 3);
        assert_eq!(v["remaining"], expected_remaining);
        assert_eq!(v["policy"], "basic");
        // Sliding window: the quota is whole again once the latest hit has slid out, one
        // window after it was admitted.
        assert!(v["reset"].as_u64().unwrap() <= 3600);
        assert!(v.get("retry_after").is_none());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("ratelimit-policy"), Some(r#""basic";q=3;w=3600"#));
        let rl = r.header("ratelimit").unwrap();
        assert!(
            rl.starts_with(&format!(r#""basic";r={expected_remaining};t="#)),
            "{rl}"
        );
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
        assert_eq!(
            r.header("x-ratelimit-reset"),
            Some(v["reset"].to_string().as_str())
        );
        assert!(r.header("retry-after").is_none());
    }

    let r = c.get("/check?key=ip:203.0.113.7&tier=basic").await;
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["remaining"], 0);
    let retry = v["retry_after"].as_u64().expect("retry_after on a denial");
    assert!((1..=3600).contains(&retry), "{retry}");
    assert_eq!(r.header("retry-after"), Some(retry.to_string().as_str()));
    assert_eq!(r.header("ratelimit-policy"), Some(r#""basic";q=3;w=3600"#));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));

    // Another key has its own quota.
    let r = c.get("/check?key=ip:203.0.113.8&tier=basic").await;
    assert_eq!(r.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn hits_spend_several_and_zero_peeks() {
    let (server, _clock) = start(basic(10)).await;
    let mut c = tcp_client(&server).await;
    let r = c.get("/check?key=u&tier=basic&hits=4").await;
    assert_eq!(r.json()["remaining"], 6);
    for _ in 0..3 {
        let r = c.get("/check?key=u&tier=basic&hits=0").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["remaining"], 6, "a peek counts nothing");
    }
    // More than what is left is denied and consumes nothing.
    let r = c.get("/check?key=u&tier=basic&hits=7").await;
    assert_eq!(r.status, 429);
    let r = c.get("/check?key=u&tier=basic&hits=6").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["remaining"], 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn query_values_are_percent_decoded_with_plus_as_space() {
    let (server, _clock) = start(basic(3)).await;
    let mut c = tcp_client(&server).await;
    // Three spellings of the key "user 42/é": one quota.
    for (target, remaining) in [
        ("/check?key=user+42%2F%C3%A9&tier=basic", 2),
        ("/check?key=user%2042/%c3%a9&tier=basic", 1),
        ("/check?tier=basic&k%65y=user%2042%2F%C3%A9", 0),
    ] {
        let r = c.get(target).await;
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        assert_eq!(r.json()["remaining"], remaining, "{target}");
    }
    let local = CheckCaller {
        standing: server.gate().check_standing(Some(Peer::Unix)),
        credential: CheckCredential::None,
    };
    let peek = server
        .gate()
        .check(
            &local,
            &CheckQuery {
                key: "user 42/é",
                tier: "basic",
                hits: 0,
                limit: None,
            },
        )
        .unwrap();
    assert_eq!(peek.deciding().remaining, 0);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn multi_limit_denial_consumes_nothing() {
    let (server, _clock) = start(basic(100)).await;
    let mut c = tcp_client(&server).await;
    for remaining in [1, 0] {
        let r = c.get("/check?key=ip:1.2.3.4&tier=basic&limit=login").await;
        assert_eq!(r.status, 200);
        let v = r.json();
        // The deciding limit is the one with the least left: login.
        assert_eq!(v["policy"], "login");
        assert_eq!(v["remaining"], remaining);
        assert_eq!(
            r.header("ratelimit-policy"),
            Some(r#""basic";q=100;w=3600, "login";q=2;w=300"#)
        );
        let rl = r.header("ratelimit").unwrap();
        assert!(rl.contains(&format!(r#""login";r={remaining};"#)), "{rl}");
    }
    let r = c.get("/check?key=ip:1.2.3.4&tier=basic&limit=login").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["policy"], "login");
    assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
    assert!(r.header("retry-after").is_some());

    // Two admitted requests took 2 from the tier; the denied one took nothing from it.
    for _ in 0..3 {
        assert_eq!(
            c.get("/check?key=ip:1.2.3.4&tier=basic&limit=login")
                .await
                .status,
            429
        );
    }
    let r = c.get("/check?key=ip:1.2.3.4&tier=basic&hits=0").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["remaining"], 98);
    server.stop().await.unwrap();
}

/// Every malformed request gets an RFC 9457 problem with the right status and type.
#[tokio::test]
async fn every_problem_has_a_problem_json_body() {
    let mut cfg = basic(3);
    cfg.server.max_uri_bytes = 2048;
    cfg.server.max_hits = 100;
    let (server, _clock) = start(cfg).await;
    let mut c = tcp_client(&server).await;
    let long_key = "k".repeat(513);
    let long_uri = format!("/check?key={}&tier=basic", "x".repeat(3000));
    let cases: Vec<(String, &str, u16, &str, &str)> = vec![
        // (method, target, status, type slug, a word the detail must contain)
        ("GET".into(), "/check?tier=basic", 400, "missing-key", "key"),
        (
            "GET".into(),
            "/check?key=&tier=basic",
            400,
            "missing-key",
            "key",
        ),
        (
            "GET".into(),
            "/check?key=a",
            400,
            "missing-parameter",
            "tier",
        ),
        (
            "GET".into(),
            "/check?key=a&tier=gold",
            400,
            "unknown-tier",
            "gold",
        ),
        (
            "GET".into(),
            "/check?key=a&tier=basic&limit=nope",
            400,
            "unknown-limit",
            "nope",
        ),
        (
            "GET".into(),
            "/check?key=a&tier=basic&hits=abc",
            400,
            "invalid-hits",
            "abc",
        ),
        (
            "GET".into(),
            "/check?key=a&tier=basic&hits=-1",
            400,
            "invalid-hits",
            "-1",
        ),
        (
            "GET".into(),
            "/check?key=a&tier=basic&hits=101",
            400,
            "invalid-hits",
            "100",
        ),
        (
            "GET".into(),
            "/check?key=a&tier=basic&hits=99999999999999999999999",
            400,
            "invalid-hits",
            "whole number",
        ),
        (
            "GET".into(),
            "/check?key=a&tier=basic&key=b",
            400,
            "duplicate-parameter",
            "key",
        ),
        (
            "GET".into(),
            "/check?key=a&tier=basic&tier=big",
            400,
            "duplicate-parameter",
            "tier",
        ),
        (
            "GET".into(),
            "/check?key=%zz&tier=basic",
            400,
            "invalid-parameter",
            "percent",
        ),
        (
            "GET".into(),
            "/check?key=%FF&tier=basic",
            400,
            "invalid-parameter",
            "UTF-8",
        ),
        ("GET".into(), "/nope", 404, "not-found", "/nope"),
        ("GET".into(), "/", 404, "not-found", "/check"),
        ("GET".into(), "/check/", 404, "not-found", "/check/"),
        (
            "POST".into(),
            "/check?key=a&tier=basic",
            405,
            "method-not-allowed",
            "POST",
        ),
        (
            "DELETE".into(),
            "/metrics",
            405,
            "method-not-allowed",
            "DELETE",
        ),
        ("GET".into(), &long_uri, 414, "uri-too-long", "2048"),
    ];
    let key_too_long = format!("/check?key={long_key}&tier=basic");
    let mut all = cases;
    all.push(("GET".into(), &key_too_long, 400, "key-too-long", "513"));
    for (method, target, status, slug, word) in all {
        c.send(&format!(
            "{method} {target} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
        let r = c.read_response().await.expect("an answer");
        assert_eq!(r.status, status, "{method} {target}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{target}"
        );
        let v = r.json();
        assert_eq!(
            v["type"],
            format!("urn:tollgate:problem:{slug}"),
            "{target}"
        );
        assert_eq!(v["status"], status);
        assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()));
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains(word),
            "{target}: detail {detail:?} lacks {word:?}"
        );
        if status == 405 {
            let allow = r.header("allow").expect("405 carries Allow");
            assert!(allow.contains("GET"), "{allow}");
        }
    }
    // The connection survived every problem (all answered on one keep-alive connection).
    assert_eq!(c.get("/healthz").await.status, 200);
    let metrics = c.get("/metrics").await.text();
    assert!(metrics.contains("tollgate_http_problems_total{type=\"invalid-hits\"} 4"));
    assert!(metrics.contains("tollgate_check_errors_total{reason=\"missing_key\"} 2"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_headers_get_431_and_the_server_lives_on() {
    let mut cfg = basic(3);
    cfg.server.max_header_bytes = 10 * 1024;
    let (server, _clock) = start(cfg).await;
    let mut c = tcp_client(&server).await;
    let big = "x".repeat(12 * 1024);
    c.send(&format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n"
    ))
    .await;
    let r = c.read_response().await.expect("an answer before closing");
    assert_eq!(r.status, 431);
    let mut c = tcp_client(&server).await;
    assert_eq!(c.get("/healthz").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn keep_alive_and_pipelining_on_one_connection() {
    let (server, _clock) = start(basic(1000)).await;
    let mut c = tcp_client(&server).await;
    for i in 0..5u64 {
        let r = c.get("/check?key=ka&tier=basic").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["remaining"], 999 - i);
        assert_ne!(r.header("connection"), Some("close"));
    }
    // Ten pipelined requests in one write: ten answers, in order.
    let mut burst = String::new();
    for _ in 0..10 {
        burst.push_str("GET /check?key=pipe&tier=basic HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    c.send(&burst).await;
    for i in 0..10u64 {
        let r = c.read_response().await.unwrap();
        assert_eq!(r.json()["remaining"], 999 - i);
    }
    let open = server
        .gate()
        .render_metrics()
        .iter()
        .map(|&b| b as char)
        .collect::<String>();
    assert!(
        open.contains("tollgate_connections_open{listener=\"http_tcp\"} 1"),
        "{open}"
    );
    // `Connection: close` is honoured.
    c.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(c.read_response().await.unwrap().status, 200);
    c.expect_closed().await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn health_readiness_and_head() {
    let (server, _clock) = start(basic(3)).await;
    let mut c = tcp_client(&server).await;
    let r = c.get("/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");

    let r = c.get("/readyz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ready"], true);
    assert_eq!(r.json()["checks"]["listeners"], true);

    // A component that is not ready yet makes the whole server not ready.
    let keys = server.readiness().register("auth_keys", false);
    let r = c.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["ready"], false);
    assert_eq!(r.json()["checks"]["auth_keys"], false);
    keys.set(true);
    assert_eq!(c.get("/readyz").await.status, 200);

    // HEAD answers the headers only.
    c.send("HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.read_response_head_only().await;
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/healthz").await.status, 200, "stream still in sync");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unix_socket_serves_the_same_and_is_removed_on_shutdown() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.sock");
    // A stale socket file from a previous run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let mut cfg = basic(2);
    cfg.server.unix_socket = Some(path.clone());
    cfg.server.unix_socket_mode = "0600".into();
    let (server, _clock) = start(cfg).await;
    assert_eq!(server.unix_socket(), Some(path.as_path()));
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut u = RawClient::new(stream);
    let r = u.get("/check?key=shared&tier=basic").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["remaining"], 1);
    // Same gate behind both doors: the TCP request sees the Unix one's hit.
    let mut t = tcp_client(&server).await;
    assert_eq!(
        t.get("/check?key=shared&tier=basic").await.json()["remaining"],
        0
    );
    assert_eq!(u.get("/check?key=shared&tier=basic").await.status, 429);
    let metrics = u.get("/metrics").await.text();
    assert!(metrics.contains("tollgate_connections_open{listener=\"http_unix\"} 1"));

    drop(u);
    drop(t);
    server.stop().await.unwrap();
    assert!(!path.exists(), "socket file removed on shutdown");
}

#[tokio::test]
async fn metrics_report_decisions_states_latency_and_build() {
    let (server, _clock) = start(basic(1)).await;
    let mut c = tcp_client(&server).await;
    assert_eq!(c.get("/check?key=m1&tier=basic").await.status, 200);
    assert_eq!(c.get("/check?key=m1&tier=basic").await.status, 429);
    assert_eq!(c.get("/check?key=m2&tier=big").await.status, 200);
    let r = c.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    for needle in [
        "tollgate_decisions_total{outcome=\"allowed\",tier=\"basic\"} 1",
        "tollgate_decisions_total{outcome=\"denied\",tier=\"basic\"} 1",
        "tollgate_decisions_total{outcome=\"allowed\",tier=\"big\"} 1",
        "tollgate_denials_total{limit=\"basic\"} 1",
        "tollgate_decision_seconds_count 3",
        "tollgate_tracked_states 2",
        "tollgate_evictions_total 0",
        "tollgate_config_reloads_total{result=\"failed\"} 0",
        "tollgate_connections_open{listener=\"http_tcp\"} 1",
        "tollgate_connections_accepted_total{listener=\"http_tcp\"} 1",
        "tollgate_abuse_signals_total",
        concat!(
            "tollgate_build_info{version=\"",
            env!("CARGO_PKG_VERSION"),
            "\"} 1"
        ),
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn abuse_signal_is_counted_once_per_key_and_window() {
    let (server, _clock) = start(basic(2)).await;
    let mut c = tcp_client(&server).await;
    // 2 admitted, then denials; past twice the limit (asked for > 4) the signal fires, once.
    for _ in 0..12 {
        c.get("/check?key=flood&tier=basic").await;
    }
    let text = c.get("/metrics").await.text();
    assert!(
        text.contains("tollgate_abuse_signals_total{limit=\"basic\"} 1"),
        "{text}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn reload_through_the_api_keeps_unchanged_counters() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    let write = |basic: u64, extra: &str| {
        std::fs::write(
            &file,
            format!(
                "[server]\nhttp = \"127.0.0.1:0\"\n\n[tiers.anonymous]\nlimit = 100\nwindow = \"1h\"\n\n[tiers.basic]\nlimit = {basic}\nwindow = \"1h\"\n\n[tiers.premium]\nlimit = 10\nwindow = \"1h\"\n{extra}"
            ),
        )
        .unwrap();
    };
    write(2, "");
    let cfg = tollgate::config::Config::load(&file).unwrap();
    let clock = std::sync::Arc::new(tollgate::clock::ManualClock::new(T0_MILLIS));
    let server = tollgate::server::ServerBuilder::new(cfg)
        .clock(clock)
        .config_path(&file)
        .start()
        .await
        .unwrap();
    let mut c = tcp_client(&server).await;
    for _ in 0..2 {
        assert_eq!(c.get("/check?key=r&tier=basic").await.status, 200);
    }
    assert_eq!(
        c.get("/check?key=r&tier=premium").await.json()["remaining"],
        9
    );
    assert_eq!(c.get("/check?key=r&tier=basic").await.status, 429);
    assert_eq!(
        c.get("/check?key=r&tier=basic&limit=burst").await.status,
        400
    );

    // basic changes (its counter starts afresh), premium does not (kept), a limit appears.
    write(5, "\n[limits.burst]\nlimit = 1\nwindow = \"1m\"\n");
    let summary = server.reload_config_file().unwrap();
    assert_eq!(summary.changed, vec!["tiers.basic"]);
    assert_eq!(summary.added, vec!["limits.burst"]);
    assert_eq!(summary.unchanged, 2);
    let r = c.get("/check?key=r&tier=basic").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["remaining"], 4);
    assert_eq!(
        c.get("/check?key=r&tier=premium").await.json()["remaining"],
        8
    );
    assert_eq!(
        c.get("/check?key=r2&tier=basic&limit=burst").await.status,
        200
    );

    // A broken file is refused; the running configuration stays.
    std::fs::write(&file, "[tiers.basic]\nlimit = \"many\"\n").unwrap();
    assert!(server.reload_config_file().is_err());
    assert_eq!(
        c.get("/check?key=r&tier=basic").await.json()["remaining"],
        3
    );
    let text = c.get("/metrics").await.text();
    assert!(text.contains("tollgate_config_reloads_total{result=\"ok\"} 1"));
    assert!(text.contains("tollgate_config_reloads_total{result=\"failed\"} 1"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_on_the_embedded_default_refuses_to_reload_without_a_file() {
    let (server, _clock) = start(basic(3)).await;
    let e = server.reload_config_file().unwrap_err();
    assert!(format!("{e:#}").contains("no configuration file"), "{e:#}");
    server.stop().await.unwrap();
}
