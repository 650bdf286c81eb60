//! The `tollgate serve` binary under real signals: SIGHUP reloads the file (and refuses a bad
//! one, keeping the running configuration), SIGTERM drains and exits 0.

mod http_support;
mod process_support;

use std::process::{Child, Command};
use std::time::Instant;

use http_support::*;

struct Tollgate {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        // Only if a test failed before stopping it: this PID, nothing else.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_text(basic: u64) -> String {
    format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n\
         [tiers.anonymous]\nlimit = 100\nwindow = \"1h\"\n\n[tiers.basic]\nlimit = {basic}\nwindow = \"1h\"\n"
    )
}

/// Starts the binary and reads its log until it says where it listens.
fn spawn(config: &std::path::Path) -> Tollgate {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.arg("serve").arg("--config").arg(config);
    let (child, addr) = process_support::spawn_listening(cmd, WAIT).unwrap();
    Tollgate { child, addr }
}

fn signal(t: &Tollgate, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(t.child.id()).unwrap();
    // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    RawClient::new(s).get("/metrics").await.text()
}

/// Polls `/metrics` until it contains `needle` (the signal is handled asynchronously).
async fn wait_for_metric(addr: std::net::SocketAddr, needle: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if metrics(addr).await.contains(needle) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {needle}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    std::fs::write(&file, config_text(2)).unwrap();
    let mut t = spawn(&file);

    let s = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let mut c = RawClient::new(s);
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 200);
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 200);
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 429);

    // A bad file is refused: the running configuration stays.
    std::fs::write(&file, "[tiers.basic]\nlimit = 0\nwindow = \"1h\"\n").unwrap();
    signal(&t, libc::SIGHUP);
    wait_for_metric(t.addr, "tollgate_config_reloads_total{result=\"failed\"} 1").await;
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 429);

    // A good one is taken: basic changed, so its counters start afresh.
    std::fs::write(&file, config_text(5)).unwrap();
    signal(&t, libc::SIGHUP);
    wait_for_metric(t.addr, "tollgate_config_reloads_total{result=\"ok\"} 1").await;
    let r = c.get("/check?key=k&tier=basic").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["limit"], 5);

    drop(c);
    signal(&t, libc::SIGTERM);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = t.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < WAIT, "tollgate did not exit on SIGTERM");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}

/// SIGHUP applies `[auth]` too: an API key added to the file is admitted by `/auth` without a
/// restart, and the counters `/check` kept before the reload are still there.
#[tokio::test]
async fn sighup_adds_an_api_key_without_a_restart() {
    const KEY: &str = "sighup-test-key-0123456789abcdef";
    // printf %s "$KEY" | sha256sum
    let sha = ring::digest::digest(&ring::digest::SHA256, KEY.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let base = format!(
        "{}\n[tiers.api_key]\nlimit = 100\nwindow = \"1h\"\n\n[[routes]]\npath = \"/api/**\"\nauth = \"required\"\n",
        config_text(2)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    std::fs::write(&file, &base).unwrap();
    let t = spawn(&file);

    let s = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let mut c = RawClient::new(s);
    let auth = format!(
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api/tasks\r\nX-Original-Method: GET\r\nX-Api-Key: {KEY}\r\n\r\n"
    );
    c.send(&auth).await;
    assert_eq!(c.read_response().await.unwrap().status, 401);
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 200);

    std::fs::write(
        &file,
        format!("{base}\n[[auth.api_keys]]\nsha256 = \"{sha}\"\nowner = \"svc\"\n"),
    )
    .unwrap();
    signal(&t, libc::SIGHUP);
    wait_for_metric(t.addr, "tollgate_config_reloads_total{result=\"ok\"} 1").await;

    c.send(&auth).await;
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-user-id"), Some("svc"));
    // basic (2 per hour) kept its count: one left.
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 200);
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 429);
}
