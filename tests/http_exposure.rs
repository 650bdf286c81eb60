//! What each listener exposes, over real sockets.
//!
//! - `/check` spends and reads any key's quota, so it is served only to callers `[check]`
//!   admits: the Unix socket and `networks` (loopback by default), or a named caller's
//!   secret. Here the server listens on loopback and trusts only `10.0.0.0/8`, so that the
//!   test's own connection is an outsider; each case runs on the fast path and on hyper.
//! - The metrics listener (`server.metrics`) serves `/metrics`, `/healthz` and `/readyz` and
//!   nothing else; `server.metrics_on_http = false` takes them off the main listener.

mod http_support;

use std::sync::Arc;

use http_support::*;
use tollgate::clock::ManualClock;
use tollgate::config::{CheckCallerConfig, Config};
use tollgate::server::{ServerBuilder, ServerHandle};

const CALLER_ENV: &str = "TOLLGATE_TEST_CHECK_API";
const CALLER_SECRET: &str = "exposure-test-caller-secret-0123456789ab";

async fn start_with(config: Config, fast: bool) -> ServerHandle {
    ServerBuilder::new(config)
        .clock(Arc::new(ManualClock::new(T0_MILLIS)))
        .http_fast_path(fast)
        .env(|v| (v == CALLER_ENV).then(|| CALLER_SECRET.to_string()))
        .start()
        .await
        .expect("server starts")
}

/// Loopback is not trusted: only `10.0.0.0/8` and, when given, the caller `api`.
fn outsider_config(with_caller: bool) -> Config {
    let mut c = config(&[("basic", limit(5, "1h"))], &[]);
    c.check.networks = vec!["10.0.0.0/8".into()];
    if with_caller {
        c.check.callers = vec![CheckCallerConfig {
            name: "api".into(),
            secret_env: CALLER_ENV.into(),
        }];
    }
    c
}

fn get_with(target: &str, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n{auth}\r\n")
}

/// The problem's `detail`, after checking its status and type.
fn problem(r: &RawResponse, status: u16, slug: &str) -> String {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    let v = r.json();
    assert_eq!(v["type"], format!("urn:tollgate:problem:{slug}"), "{v}");
    v["detail"].as_str().unwrap().to_string()
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn check_from_an_untrusted_peer_is_refused_and_spends_nothing() {
    for fast in [true, false] {
        let s = start_with(outsider_config(false), fast).await;
        let mut c = tcp_client(&s).await;
        for _ in 0..2 {
            let r = c.get("/check?key=user:victim&tier=basic&hits=5").await;
            let detail = problem(&r, 403, "check-forbidden");
            assert!(detail.contains("[check] networks"), "{detail}");
        }
        // A refused caller learns nothing about the configuration either.
        let r = c.get("/check?key=k&tier=no-such-tier").await;
        problem(&r, 403, "check-forbidden");
        // /auth is nginx's door and keeps answering whoever calls it.
        c.send("GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /x\r\n\r\n")
            .await;
        assert_eq!(c.read_response().await.unwrap().status, 200, "fast={fast}");
        let m = String::from_utf8(s.gate().render_metrics()).unwrap();
        assert_eq!(
            metric(
                &m,
                "tollgate_check_refusals_total{reason=\"untrusted_peer\"}"
            ),
            Some(3.0),
            "fast={fast}"
        );
        // Nothing was spent: the victim's quota is whole for a trusted caller.
        let local = tollgate::gate::CheckCaller {
            standing: s.gate().check_standing(Some(tollgate::policy::Peer::Unix)),
            credential: tollgate::gate::CheckCredential::None,
        };
        let q = tollgate::gate::CheckQuery {
            key: "user:victim",
            tier: "basic",
            hits: 0,
            limit: None,
        };
        assert_eq!(s.gate().check(&local, &q).unwrap().deciding().remaining, 5);
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn the_unix_socket_is_admitted_unless_configured_otherwise() {
    for unix_allowed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("http.sock");
        let mut cfg = outsider_config(false);
        cfg.server.unix_socket = Some(path.clone());
        cfg.check.unix_socket = unix_allowed;
        let s = start_with(cfg, true).await;
        let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut unix = RawClient::new(stream);
        let r = unix.get("/check?key=k&tier=basic").await;
        if unix_allowed {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["remaining"], 4);
        } else {
            problem(&r, 403, "check-forbidden");
        }
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_named_caller_is_admitted_by_its_secret() {
    for fast in [true, false] {
        let s = start_with(outsider_config(true), fast).await;
        let mut c = tcp_client(&s).await;
        let target = "/check?key=k&tier=basic";
        for (auth, want) in [
            (None, Some("secret_required")),
            (
                Some("Bearer not-the-secret".to_string()),
                Some("secret_invalid"),
            ),
            (
                Some(format!("Basic {CALLER_SECRET}")),
                Some("secret_invalid"),
            ),
            (Some(format!("Bearer {CALLER_SECRET}")), None),
            (Some(format!("bearer {CALLER_SECRET}")), None),
        ] {
            c.send(&get_with(target, auth.as_deref())).await;
            let r = c.read_response().await.unwrap();
            match want {
                None => assert_eq!(r.status, 200, "fast={fast} {auth:?}: {}", r.text()),
                Some(reason) => {
                    let detail = problem(&r, 403, "check-forbidden");
                    assert!(detail.contains("secret"), "{detail}");
                    let m = String::from_utf8(s.gate().render_metrics()).unwrap();
                    let series = format!("tollgate_check_refusals_total{{reason=\"{reason}\"}}");
                    assert!(metric(&m, &series).unwrap() >= 1.0, "{series}");
                }
            }
        }
        // The secret never appears in what tollgate answers.
        c.send(&get_with(target, Some("Bearer wrong"))).await;
        let r = c.read_response().await.unwrap();
        assert!(!r.text().contains(CALLER_SECRET));
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_caller_whose_secret_is_unset_stops_the_start_naming_the_variable() {
    let mut cfg = outsider_config(true);
    cfg.check.callers[0].secret_env = "TOLLGATE_TEST_UNSET".into();
    let e = ServerBuilder::new(cfg)
        .env(|_| None)
        .start()
        .await
        .err()
        .expect("the start fails");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("TOLLGATE_TEST_UNSET") && msg.contains("check.callers[0]"),
        "{msg}"
    );
}

fn with_metrics_listener(on_http: bool) -> Config {
    let mut c = config(&[("basic", limit(5, "1h"))], &[]);
    c.server.metrics = Some("127.0.0.1:0".into());
    c.server.metrics_on_http = on_http;
    c
}

#[tokio::test]
async fn the_metrics_listener_serves_metrics_and_health_only() {
    let s = start_with(with_metrics_listener(true), true).await;
    let addr = s.metrics_addr().expect("a metrics listener");
    assert_ne!(addr, s.http_addr());
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut m = RawClient::new(stream);

    let r = m.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = r.text();
    // Parsable: every sample line is `name{labels} value`, with a number for the value.
    let mut samples = 0;
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        samples += 1;
    }
    assert!(samples > 10, "{text}");
    assert!(
        metric(
            &text,
            "tollgate_connections_accepted_total{listener=\"http_metrics\"}"
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    #[cfg(target_os = "linux")]
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
    assert_eq!(m.get("/healthz").await.status, 200);
    let r = m.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ready"], true);

    for target in [
        "/check?key=k&tier=basic",
        "/auth",
        "/admin/revocations",
        "/admin/revoke",
        "/",
    ] {
        let r = m.get(target).await;
        let detail = problem(&r, 404, "not-found");
        assert!(detail.contains("metrics listener"), "{target}: {detail}");
    }
    // Not even with the headers nginx sends, or as a POST with a body.
    m.send("GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /x\r\n\r\n")
        .await;
    problem(&m.read_response().await.unwrap(), 404, "not-found");
    m.send("POST /admin/revoke HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
        .await;
    problem(&m.read_response().await.unwrap(), 404, "not-found");
    // Nothing was counted against any key.
    assert_eq!(s.gate().limiter().tracked_states(), 0);

    // The main listener still serves everything by default.
    let mut c = tcp_client(&s).await;
    assert_eq!(c.get("/metrics").await.status, 200);
    assert_eq!(c.get("/healthz").await.status, 200);
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 200);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_can_be_taken_off_the_main_listener() {
    for fast in [true, false] {
        let s = start_with(with_metrics_listener(false), fast).await;
        let mut c = tcp_client(&s).await;
        for target in ["/metrics", "/healthz", "/readyz"] {
            let r = c.get(target).await;
            let detail = problem(&r, 404, "not-found");
            assert!(detail.contains("server.metrics"), "{detail}");
        }
        assert_eq!(c.get("/check?key=k&tier=basic").await.status, 200);
        let stream = tokio::net::TcpStream::connect(s.metrics_addr().unwrap())
            .await
            .unwrap();
        let mut m = RawClient::new(stream);
        assert_eq!(m.get("/metrics").await.status, 200);
        assert_eq!(m.get("/readyz").await.status, 200);
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn no_metrics_listener_by_default() {
    let s = start_with(config(&[("basic", limit(5, "1h"))], &[]), true).await;
    assert_eq!(s.metrics_addr(), None);
    s.stop().await.unwrap();
}
