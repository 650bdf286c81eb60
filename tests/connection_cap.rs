//! At the connection cap, the connection idle longest is closed to make room for a new one;
//! connections in the middle of a request are never closed for it. Real sockets, both doors.

mod http_support;
#[path = "resp_support/mod.rs"]
mod resp_support;

use std::time::{Duration, Instant};

use http_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A new client at the cap must be served within this.
const SERVED_WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn http_at_the_cap_the_oldest_idle_connection_makes_room() {
    let mut c = config(&[], &[]);
    c.server.max_connections = 4;
    let (server, _clock) = start(c).await;

    // Oldest first: two kept-alive connections that finished a request, one in the middle of
    // a request (half a head), and a fresh one that has sent nothing.
    let mut oldest = tcp_client(&server).await;
    assert_eq!(oldest.get("/healthz").await.status, 200);
    let mut second = tcp_client(&server).await;
    assert_eq!(second.get("/healthz").await.status, 200);
    let mut busy = tcp_client(&server).await;
    assert_eq!(busy.get("/healthz").await.status, 200);
    busy.send("GET /healthz HTTP/1.1\r\n").await;
    let mut fresh = tcp_client(&server).await;
    eventually("three idle connections and one busy", || {
        server.http_idle_connections() == 3
    })
    .await;

    // A new client is served at once: the oldest idle connection made room.
    let started = Instant::now();
    let mut newcomer = tcp_client(&server).await;
    assert_eq!(newcomer.get("/healthz").await.status, 200);
    assert!(started.elapsed() < SERVED_WITHIN, "{:?}", started.elapsed());
    oldest.expect_closed().await;

    // The busy one finishes its request; the others are still served.
    busy.send("Host: t\r\n\r\n").await;
    assert_eq!(busy.read_response().await.expect("answered").status, 200);
    assert_eq!(second.get("/healthz").await.status, 200);
    fresh.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(fresh.read_response().await.expect("answered").status, 200);

    let text = String::from_utf8(server.gate().render_metrics()).unwrap();
    assert!(
        text.contains("tollgate_connections_evicted_total{listener=\"http_tcp\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("tollgate_connections_rejected_total{listener=\"http_tcp\"} 0"),
        "{text}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn http_a_fresh_silent_connection_is_idle_and_makes_room() {
    let mut c = config(&[], &[]);
    c.server.max_connections = 2;
    let (server, _clock) = start(c).await;
    let mut silent = tcp_client(&server).await;
    let mut kept = tcp_client(&server).await;
    assert_eq!(kept.get("/healthz").await.status, 200);
    eventually("both idle", || server.http_idle_connections() == 2).await;
    let mut newcomer = tcp_client(&server).await;
    assert_eq!(newcomer.get("/healthz").await.status, 200);
    silent.expect_closed().await;
    assert_eq!(kept.get("/healthz").await.status, 200);
    server.stop().await.unwrap();
}

async fn ping(c: &mut TcpStream) {
    c.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    c.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_at_the_cap_the_oldest_idle_connection_makes_room() {
    let s = resp_support::start_with(|o| o.max_connections = 3);
    let door = s.server.door().clone();
    let mut oldest = TcpStream::connect(s.tcp()).await.unwrap();
    ping(&mut oldest).await;
    let mut younger = TcpStream::connect(s.tcp()).await.unwrap();
    ping(&mut younger).await;
    let mut busy = TcpStream::connect(s.tcp()).await.unwrap();
    ping(&mut busy).await;
    busy.write_all(b"*1\r\n$4\r\nPI").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while door.occupancy().idle() != 2 || door.open_connections() != 3 {
        assert!(Instant::now() < deadline, "never settled");
        tokio::task::yield_now().await;
    }

    let started = Instant::now();
    let mut newcomer = TcpStream::connect(s.tcp()).await.unwrap();
    ping(&mut newcomer).await;
    assert!(started.elapsed() < SERVED_WITHIN, "{:?}", started.elapsed());
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), oldest.read_to_end(&mut rest))
        .await
        .expect("the oldest idle connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a word: {rest:?}");

    busy.write_all(b"NG\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    busy.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    ping(&mut younger).await;

    let text = String::from_utf8(s.gate.render_metrics()).unwrap();
    assert!(
        text.contains("tollgate_connections_evicted_total{listener=\"resp_tcp\"} 1"),
        "{text}"
    );
}
