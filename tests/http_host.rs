//! RFC 9112 §3.2: an HTTP/1.1 request without a `Host` header, or any request with two, is
//! answered 400 with an `invalid-host` problem — over the fast path and hyper, on TCP and the
//! Unix socket, for `/check`, `/auth`, the admin API and `/healthz` alike. HTTP/1.0 may omit
//! `Host`. Nothing is spent on a refused request.

mod http_support;

use http_support::*;
use tokio::io::{AsyncRead, AsyncWrite};

const TARGETS: [&str; 4] = [
    "/check?key=k&tier=basic",
    "/auth",
    "/admin/revocations",
    "/healthz",
];

async fn refused<S: AsyncRead + AsyncWrite + Unpin>(c: &mut RawClient<S>, raw: &str) {
    c.send(raw).await;
    let r = c.read_response().await.expect("an answer");
    assert_eq!(r.status, 400, "{raw:?}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{raw:?}"
    );
    let v = r.json();
    assert_eq!(
        v["type"], "urn:tollgate:problem:invalid-host",
        "{raw:?}: {v}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("Host"),
        "the detail names the header: {v}"
    );
}

async fn check_all<S: AsyncRead + AsyncWrite + Unpin>(c: &mut RawClient<S>) {
    for target in TARGETS {
        refused(
            c,
            &format!("GET {target} HTTP/1.1\r\nX-Original-URI: /x\r\n\r\n"),
        )
        .await;
        refused(
            c,
            &format!("GET {target} HTTP/1.1\r\nHost: a\r\nX-Original-URI: /x\r\nhost: b\r\n\r\n"),
        )
        .await;
        refused(
            c,
            &format!(
                "GET {target} HTTP/1.0\r\nHost: a\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
            ),
        )
        .await;
    }
    // The connection still serves, and HTTP/1.0 without Host is answered.
    assert_eq!(c.get("/healthz").await.status, 200);
    c.send("GET /check?key=k&tier=basic HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let r = c.read_response().await.expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
    // Only that request spent a hit: the refused ones spent nothing.
    assert_eq!(r.header("x-ratelimit-remaining"), Some("4"));
}

#[tokio::test]
async fn host_missing_or_repeated_is_400_on_every_path_and_socket() {
    for fast in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("http.sock");
        let mut cfg = config(&[("basic", limit(5, "1h"))], &[]);
        cfg.server.unix_socket = Some(path.clone());
        let server = tollgate::server::ServerBuilder::new(cfg)
            .http_fast_path(fast)
            .start()
            .await
            .unwrap();
        let mut tcp = tcp_client(&server).await;
        check_all(&mut tcp).await;
        let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut unix = RawClient::new(stream);
        // A fresh key on the Unix socket: the TCP round spent one hit of `k`.
        for target in TARGETS {
            refused(&mut unix, &format!("GET {target} HTTP/1.1\r\n\r\n")).await;
            refused(
                &mut unix,
                &format!("GET {target} HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            )
            .await;
        }
        assert_eq!(unix.get("/healthz").await.status, 200, "fast path: {fast}");
        let text = String::from_utf8(server.gate().render_metrics()).unwrap();
        assert!(
            text.contains(r#"tollgate_http_problems_total{type="invalid-host"} 20"#),
            "each refusal counted once (fast path: {fast})"
        );
        server.stop().await.unwrap();
    }
}
