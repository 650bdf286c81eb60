//! Oversized HTTP input over both paths (fast path and hyper): a head over
//! `server.max_header_bytes` or with more than 100 header fields is 431 and the connection
//! is closed; a target over `server.max_uri_bytes` is a 414 problem; a flood of pipelined
//! requests that are never read is answered in order once the client reads. The admin API's
//! body bound is tested in tests/http_admin.rs.

mod http_support;

use http_support::*;

async fn server(fast: bool) -> tollgate::server::ServerHandle {
    let mut cfg = config(&[("basic", limit(1_000_000, "1h"))], &[]);
    cfg.server.max_header_bytes = 8 * 1024;
    cfg.server.max_uri_bytes = 1024;
    tollgate::server::ServerBuilder::new(cfg)
        .http_fast_path(fast)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn oversized_heads_are_431_and_close_the_connection() {
    for fast in [true, false] {
        let s = server(fast).await;
        let big = "x".repeat(64 * 1024);
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        for raw in [
            // One huge field: refused once the bound is passed, the rest never buffered.
            format!("GET /check?key=a&tier=basic HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n"),
            // A huge target: over the head bound before it is a URI.
            format!("GET /check?key={big} HTTP/1.1\r\nHost: t\r\n\r\n"),
            // More fields than hyper holds.
            format!("GET /check?key=a&tier=basic HTTP/1.1\r\nHost: t\r\n{many}\r\n"),
        ] {
            let mut c = tcp_client(&s).await;
            c.send(&raw).await;
            let r = c.read_response().await.expect("an answer before closing");
            assert_eq!(r.status, 431, "fast path {fast}: {}", &raw[..40]);
            c.expect_closed().await;
        }
        let mut c = tcp_client(&s).await;
        assert_eq!(c.get("/healthz").await.status, 200);
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_target_over_max_uri_bytes_is_a_414_problem() {
    for fast in [true, false] {
        let s = server(fast).await;
        let mut c = tcp_client(&s).await;
        for path in ["/check", "/auth", "/healthz"] {
            let target = format!("{path}?key={}", "k".repeat(1100));
            let r = c.get(&target).await;
            assert_eq!(r.status, 414, "fast path {fast}: {path}");
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
            let v = r.json();
            assert_eq!(v["type"], "urn:tollgate:problem:uri-too-long");
            assert!(v["detail"].as_str().unwrap().contains("1024"), "{v}");
        }
        // A 414 is an answer, not a framing error: the connection goes on.
        assert_eq!(c.get("/healthz").await.status, 200);
        s.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_pipelined_flood_that_is_not_read_is_answered_in_order_when_read() {
    for fast in [true, false] {
        let s = server(fast).await;
        let c = tcp_client(&s).await;
        // 5,000 requests (about 250 KiB) written before a single answer is read: the server
        // stops reading while its answers are unread, and loses none.
        let n = 5_000u64;
        let one = "GET /check?key=flood&tier=basic HTTP/1.1\r\nHost: t\r\n\r\n";
        let burst = one.repeat(n as usize);
        let (mut reader, writer) = tokio::io::split(c.into_inner());
        let write = tokio::spawn(async move {
            let mut writer = writer;
            tokio::io::AsyncWriteExt::write_all(&mut writer, burst.as_bytes())
                .await
                .unwrap();
            writer
        });
        let mut buf = Vec::new();
        let mut seen = 0u64;
        let mut tmp = vec![0u8; 64 * 1024];
        while seen < n {
            let k =
                tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut reader, &mut tmp))
                    .await
                    .expect("answers keep coming")
                    .unwrap();
            assert!(k > 0, "closed after {seen} answers (fast path {fast})");
            buf.extend_from_slice(&tmp[..k]);
            seen = buf.windows(9).filter(|w| w == b"HTTP/1.1 ").count() as u64;
        }
        assert_eq!(seen, n);
        let text = String::from_utf8_lossy(&buf);
        let last = text.rfind("\"remaining\":").unwrap();
        assert!(
            text[last..].starts_with(&format!("\"remaining\":{}", 1_000_000 - n)),
            "in order, none lost: {}",
            &text[last..last + 30]
        );
        drop(write.await.unwrap());
        s.stop().await.unwrap();
    }
}
