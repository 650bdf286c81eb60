//! One server, both doors: with `[resp] enabled`, `ServerBuilder` starts the RESP listener
//! next to HTTP, both ask the same gate (one quota), and a graceful stop drains both.

mod http_support;

use http_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn resp_and_http_share_one_gate_and_stop_together() {
    let mut cfg = config(&[("basic", limit(3, "1h"))], &[]);
    cfg.resp.enabled = true;
    cfg.resp.tcp = "127.0.0.1:0".into();
    let (server, _clock) = start(cfg).await;
    let resp_addr = server.resp_addr().expect("the RESP door listens");

    let mut http = tcp_client(&server).await;
    assert_eq!(
        http.get("/check?key=both&tier=basic").await.json()["remaining"],
        2
    );

    let mut resp = tokio::net::TcpStream::connect(resp_addr).await.unwrap();
    resp.write_all(b"CHECK both basic\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    // The reply is a 5-element array: allowed, limit, remaining, reset, retry-after.
    while got.iter().filter(|&&b| b == b'\n').count() < 6 {
        let n = tokio::time::timeout(WAIT, resp.read(&mut buf))
            .await
            .expect("RESP reply in time")
            .unwrap();
        assert!(
            n > 0,
            "RESP connection closed: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("*5\r\n:1\r\n:3\r\n:1\r\n"), "{text:?}");

    // HTTP sees the hit RESP took.
    assert_eq!(
        http.get("/check?key=both&tier=basic").await.json()["remaining"],
        0
    );

    drop(http);
    drop(resp);
    tokio::time::timeout(WAIT, server.stop())
        .await
        .expect("both doors drain")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(resp_addr).await.is_err());
}
