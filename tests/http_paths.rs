//! The fast path and hyper answer alike: the same requests, sent to one server with the fast
//! path and one without, get the same status, headers (but `date`) and body — including
//! requests the fast path hands over to hyper in the middle of a pipelined batch.

mod http_support;

use http_support::*;
use tollgate::server::{ServerBuilder, ServerHandle};

async fn start_with(fast: bool) -> ServerHandle {
    let cfg = config(&[("basic", limit(3, "1h"))], &[("login", limit(1, "5m"))]);
    let clock = std::sync::Arc::new(tollgate::clock::ManualClock::new(T0_MILLIS));
    ServerBuilder::new(cfg)
        .clock(clock)
        .http_fast_path(fast)
        .start()
        .await
        .unwrap()
}

/// Status, sorted headers without `date`, body.
type Seen = (u16, Vec<(String, String)>, Vec<u8>);

fn normalise(r: RawResponse) -> Seen {
    let mut h: Vec<_> = r.headers.into_iter().filter(|(n, _)| n != "date").collect();
    h.sort();
    (r.status, h, r.body)
}

/// Sends `requests` (raw bytes, several per write where they are glued together) and reads
/// `answers` responses.
async fn exchange(server: &ServerHandle, writes: &[&str], answers: usize) -> Vec<Seen> {
    let mut c = tcp_client(server).await;
    for w in writes {
        c.send(w).await;
    }
    let mut seen = Vec::new();
    for _ in 0..answers {
        seen.push(normalise(c.read_response().await.expect("an answer")));
    }
    seen
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n")
}

#[tokio::test]
async fn fast_path_and_hyper_give_identical_answers() {
    let fast = start_with(true).await;
    let hyper = start_with(false).await;

    let long = format!("/check?key={}&tier=basic", "k".repeat(5000));
    let too_long_key = format!("/check?key={}&tier=basic", "k".repeat(600));
    let singles: Vec<String> = vec![
        get("/check?key=a&tier=basic"),
        get("/check?key=a&tier=basic&hits=2"),
        get("/check?key=a&tier=basic"), // denied
        get("/check?key=b&tier=basic&limit=login"),
        get("/check?key=b&tier=basic&limit=login"), // denied by login
        get("/check?key=c+d&tier=basic&hits=0"),
        get("/check?tier=basic"),
        get("/check?key=a"),
        get("/check?key=a&tier=gold"),
        get("/check?key=a&tier=basic&hits=x"),
        get("/check?key=a&key=b&tier=basic"),
        get("/check?key=%zz&tier=basic"),
        get(&too_long_key),
        get(&long),
        get("/check"),
        get("/healthz"),
        get("/readyz"),
        get("/nope"),
        get("/check/"),
        "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        "POST /check?key=a&tier=basic HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n".to_string(),
        "GET /check?key=e&tier=basic HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_string(),
        // /auth (tests/http_auth.rs has the full set) and the admin API (off: 404).
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /x\r\n\r\n".to_string(),
        "POST /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /x\r\n\r\n".to_string(),
        // Paths a backend reads otherwise than tollgate by default (tests/http_path_readings.rs).
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api\\admin\\x\r\n\r\n".to_string(),
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: //h/api/x\r\n\r\n".to_string(),
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api;/admin\r\n\r\n".to_string(),
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /API/x\r\n\r\n".to_string(),
        get("/auth"),
        get("/admin/revocations"),
    ];
    for req in &singles {
        let head_only = req.starts_with("HEAD");
        let mut a = tcp_client(&fast).await;
        let mut b = tcp_client(&hyper).await;
        a.send(req).await;
        b.send(req).await;
        let (ra, rb) = if head_only {
            (
                a.read_response_head_only().await,
                b.read_response_head_only().await,
            )
        } else {
            (
                a.read_response().await.unwrap(),
                b.read_response().await.unwrap(),
            )
        };
        assert_eq!(
            normalise(ra),
            normalise(rb),
            "{}",
            req.lines().next().unwrap()
        );
    }

    // A pipelined batch mixing plain requests and ones the fast path hands to hyper.
    let batch = [
        get("/check?key=p&tier=basic"),
        "POST /check HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi".to_string(),
        get("/check?key=p&tier=basic"),
        get("/healthz"),
    ]
    .concat();
    let a = exchange(&fast, &[&batch], 4).await;
    let b = exchange(&hyper, &[&batch], 4).await;
    assert_eq!(a, b);
    assert_eq!(
        a.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![200, 405, 200, 200]
    );

    // A head split across writes (the fast path waits for the rest).
    let req = get("/check?key=split&tier=basic");
    let (x, y) = req.split_at(17);
    let a = exchange(&fast, &[x, y], 1).await;
    let b = exchange(&hyper, &[x, y], 1).await;
    assert_eq!(a, b);

    fast.stop().await.unwrap();
    hyper.stop().await.unwrap();
}

#[tokio::test]
async fn fast_path_honours_connection_close_and_pipelining() {
    let server = start_with(true).await;
    let mut c = tcp_client(&server).await;
    c.send(&get("/check?key=q&tier=basic").repeat(3)).await;
    for remaining in [2, 1, 0] {
        let r = c.read_response().await.unwrap();
        assert_eq!(r.json()["remaining"], remaining);
    }
    c.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    c.expect_closed().await;
    server.stop().await.unwrap();
}
