//! The HTTP server's life over real sockets: graceful shutdown with a request in flight, the
//! grace period running out, idle and header-read timeouts, and the connection cap.
//!
//! A request is held "in flight" by a clock that blocks when the limiter asks it the time:
//! the request is then genuinely inside the decision, and the test releases it when it wants.

mod http_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use http_support::*;
use tollgate::clock::Clock;
use tollgate::server::ServerBuilder;

/// A clock that, once armed, blocks the next caller until released.
#[derive(Default)]
struct BlockingClock {
    armed: AtomicBool,
    state: Mutex<(bool, bool)>, // (entered, released)
    cv: Condvar,
}

impl BlockingClock {
    fn arm(&self) {
        *self.state.lock().unwrap() = (false, false);
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Waits until a caller is blocked inside the clock.
    fn wait_entered(&self) {
        let guard = self.state.lock().unwrap();
        let (guard, timeout) = self.cv.wait_timeout_while(guard, WAIT, |s| !s.0).unwrap();
        assert!(
            !timeout.timed_out() && guard.0,
            "no request reached the clock"
        );
    }

    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

impl Clock for BlockingClock {
    fn now_millis(&self) -> u64 {
        if self.armed.swap(false, Ordering::SeqCst) {
            let mut s = self.state.lock().unwrap();
            s.0 = true;
            self.cv.notify_all();
            // Bounded, so that a failing test cannot hang the suite.
            let (_s, _) = self.cv.wait_timeout_while(s, WAIT, |s| !s.1).unwrap();
        }
        T0_MILLIS
    }
}

fn cfg() -> tollgate::config::Config {
    config(&[("basic", limit(100, "1h"))], &[])
}

async fn start_blocking(
    c: tollgate::config::Config,
) -> (tollgate::server::ServerHandle, Arc<BlockingClock>) {
    let clock = Arc::new(BlockingClock::default());
    let server = ServerBuilder::new(c)
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    (server, clock)
}

async fn connect_refused(addr: std::net::SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

// Several workers: one of them is held inside the clock while the others run the shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_finishes_the_in_flight_request() {
    let (server, clock) = start_blocking(cfg()).await;
    let addr = server.http_addr();
    let mut idle = tcp_client(&server).await;
    assert_eq!(idle.get("/healthz").await.status, 200);

    let mut busy = tcp_client(&server).await;
    clock.arm();
    busy.send("GET /check?key=k&tier=basic HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let c = clock.clone();
    tokio::task::spawn_blocking(move || c.wait_entered())
        .await
        .unwrap();

    server.shutdown();
    assert!(!server.readiness().is_ready(), "not ready once draining");
    // New connections are refused; the idle keep-alive connection is closed at once.
    let deadline = Instant::now() + WAIT;
    while !connect_refused(addr).await {
        assert!(
            Instant::now() < deadline,
            "the listener still accepts after shutdown began"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    idle.expect_closed().await;

    // The in-flight request completes with its real answer, then the connection closes.
    clock.release();
    let r = busy.read_response().await.expect("the in-flight answer");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["remaining"], 99);
    busy.expect_closed().await;
    tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("server stops once the in-flight request is done")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_grace_bounds_the_wait_for_in_flight_requests() {
    let mut c = cfg();
    c.server.shutdown_grace = "200ms".into();
    let (server, clock) = start_blocking(c).await;
    let mut busy = tcp_client(&server).await;
    clock.arm();
    busy.send("GET /check?key=k&tier=basic HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let c2 = clock.clone();
    tokio::task::spawn_blocking(move || c2.wait_entered())
        .await
        .unwrap();
    let started = Instant::now();
    server.shutdown();
    tokio::time::timeout(WAIT, server.wait())
        .await
        .expect("the grace period bounds the shutdown")
        .unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "stopped after {took:?}");
    clock.release();
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let mut c = cfg();
    c.server.idle_timeout = "300ms".into();
    c.server.header_read_timeout = "10s".into();
    let (server, _clock) = start(c).await;
    let mut client = tcp_client(&server).await;
    assert_eq!(client.get("/healthz").await.status, 200);
    let idle_since = Instant::now();
    client.expect_closed().await;
    let idle_for = idle_since.elapsed();
    assert!(
        idle_for >= Duration::from_millis(300),
        "closed after {idle_for:?}"
    );
    // Only that connection: the server still serves.
    assert_eq!(tcp_client(&server).await.get("/healthz").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    let mut c = cfg();
    c.server.header_read_timeout = "300ms".into();
    c.server.idle_timeout = "60s".into();
    let (server, _clock) = start(c).await;
    let mut client = tcp_client(&server).await;
    let started = Instant::now();
    client
        .send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .await;
    // hyper closes the connection (it may first answer 408).
    match client.read_response().await {
        None => {}
        Some(r) => {
            assert_eq!(r.status, 408);
            client.expect_closed().await;
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    // Not after idle_timeout: a trickle of silent connects would otherwise hold the
    // connection cap full. Both HTTP paths.
    for fast_path in [true, false] {
        let mut c = cfg();
        c.server.header_read_timeout = "300ms".into();
        c.server.idle_timeout = "60s".into();
        let server = tollgate::server::ServerBuilder::new(c)
            .clock(std::sync::Arc::new(tollgate::clock::ManualClock::new(
                T0_MILLIS,
            )))
            .http_fast_path(fast_path)
            .start()
            .await
            .unwrap();
        let mut silent = tcp_client(&server).await;
        let started = Instant::now();
        // Closed (hyper may first answer 408), long before the 60 s idle timeout.
        match silent.read_response().await {
            None => {}
            Some(r) => {
                assert_eq!(r.status, 408, "fast path {fast_path}");
                silent.expect_closed().await;
            }
        }
        let after = started.elapsed();
        assert!(
            after >= Duration::from_millis(300) && after < Duration::from_secs(10),
            "fast path {fast_path}: closed after {after:?}"
        );
        // A client that does send is served as before.
        assert_eq!(tcp_client(&server).await.get("/healthz").await.status, 200);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let mut c = cfg();
    c.server.max_connections = 2;
    let (server, _clock) = start(c).await;
    let mut a = tcp_client(&server).await;
    let mut b = tcp_client(&server).await;
    // Both in the middle of a request (half a head sent behind a whole one, in one write:
    // once the answer is back, the server has read the half): busy, so neither may be closed
    // to make room (tests/connection_cap.rs has the idle case).
    for c in [&mut a, &mut b] {
        c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\n")
            .await;
        assert_eq!(c.read_response().await.expect("answered").status, 200);
    }
    assert_eq!(server.http_idle_connections(), 0);

    let mut third = tcp_client(&server).await;
    third.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await;
    // Accepted and closed without an answer (the write may or may not have landed first).
    assert!(third.read_response().await.is_none());
    let text = String::from_utf8(server.gate().render_metrics()).unwrap();
    assert!(
        text.contains("tollgate_connections_rejected_total{listener=\"http_tcp\"} 1"),
        "{text}"
    );

    // A freed slot is usable again.
    drop(a);
    let gate = server.gate().clone();
    eventually("a connection slot to be freed", || {
        String::from_utf8(gate.render_metrics())
            .unwrap()
            .contains("tollgate_connections_open{listener=\"http_tcp\"} 1")
    })
    .await;
    assert_eq!(tcp_client(&server).await.get("/healthz").await.status, 200);
    drop(b);
    server.stop().await.unwrap();
}
