//! The real binary restarted: a key that spent its quota is still denied after a graceful
//! restart (SIGTERM writes the snapshot after the drain) and after `kill -9` (the periodic
//! snapshot), with a Retry-After that reaches the end of its window, not a fresh quota.

mod http_support;
mod process_support;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use http_support::*;

const HASH_KEY: &str = "a hash key that survives restarts";

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

fn config_text(snapshot: &Path, interval: &str) -> String {
    format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nshutdown_grace = \"5s\"\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n\
         [limiter]\nhash_key_env = \"TOLLGATE_TEST_HASH_KEY\"\nsnapshot_path = {:?}\nsnapshot_interval = \"{interval}\"\n\n\
         [tiers.anonymous]\nlimit = 100\nwindow = \"1h\"\n\n[tiers.basic]\nlimit = 3\nwindow = \"1h\"\n",
        snapshot.display().to_string()
    )
}

fn spawn(config: &Path) -> Tollgate {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .env("TOLLGATE_TEST_HASH_KEY", HASH_KEY);
    let (child, addr) = process_support::spawn_listening(cmd, WAIT).unwrap();
    Tollgate { child, addr }
}

fn signal(t: &Tollgate, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(t.child.id()).unwrap();
    // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

async fn client(t: &Tollgate) -> RawClient<tokio::net::TcpStream> {
    RawClient::new(tokio::net::TcpStream::connect(t.addr).await.unwrap())
}

/// The value of a counter series in `/metrics` (0 when absent).
async fn metric(t: &Tollgate, series: &str) -> u64 {
    let text = client(t).await.get("/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Spends key `k`'s quota of 3 and checks the fourth request is denied. Returns its
/// Retry-After and when it was given.
async fn spend(t: &Tollgate) -> (u64, Instant) {
    let mut c = client(t).await;
    for _ in 0..3 {
        assert_eq!(c.get("/check?key=k&tier=basic").await.status, 200);
    }
    let r = c.get("/check?key=k&tier=basic").await;
    assert_eq!(r.status, 429);
    let retry = r.header("retry-after").unwrap().parse().unwrap();
    (retry, Instant::now())
}

/// After a restart: `k` is still denied, with the Retry-After the first process gave less
/// the time since (the same instant to wait for); another key is not denied; and `/metrics`
/// counts the restored states.
async fn still_denied(t: &Tollgate, (retry_before, at): (u64, Instant)) {
    let mut c = client(t).await;
    let r = c.get("/check?key=k&tier=basic").await;
    assert_eq!(r.status, 429, "a restart handed k a fresh quota");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    let waited = at.elapsed().as_secs();
    assert!(
        retry <= retry_before && retry + waited + 2 >= retry_before,
        "Retry-After {retry} after the restart, {retry_before} before it, {waited} s ago"
    );
    assert_eq!(r.json()["remaining"], 0);
    assert_eq!(c.get("/check?key=other&tier=basic").await.status, 200);
    assert!(
        metric(
            t,
            "tollgate_limiter_snapshot_states_total{outcome=\"restored\"}"
        )
        .await
            >= 1
    );
    assert_eq!(
        metric(
            t,
            "tollgate_limiter_snapshot_states_total{outcome=\"lost\"}"
        )
        .await,
        0
    );
}

async fn wait_exit(t: &mut Tollgate) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = t.child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < WAIT, "tollgate did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_sigterm_restart_keeps_a_spent_quota() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("limiter.snapshot");
    let file = dir.path().join("tollgate.toml");
    // A long interval: only the snapshot written on SIGTERM can carry the counts.
    std::fs::write(&file, config_text(&snapshot, "1h")).unwrap();

    let mut t = spawn(&file);
    let spent = spend(&t).await;
    assert!(!snapshot.exists(), "written before the shutdown");
    signal(&t, libc::SIGTERM);
    assert!(wait_exit(&mut t).await.success());
    let text = std::fs::read_to_string(&snapshot).unwrap();
    assert!(text.starts_with("tollgate-limiter-snapshot 1 "), "{text}");
    // Only the snapshot itself is left in the directory: the temporary file was renamed.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let t = spawn(&file);
    still_denied(&t, spent).await;
}

#[tokio::test]
async fn a_kill_9_after_a_periodic_snapshot_keeps_a_spent_quota() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("limiter.snapshot");
    let file = dir.path().join("tollgate.toml");
    std::fs::write(&file, config_text(&snapshot, "1s")).unwrap();

    let mut t = spawn(&file);
    let spent = spend(&t).await;
    // Two more periodic writes: the second began after the quota was spent.
    let ok = "tollgate_limiter_snapshot_writes_total{result=\"ok\"}";
    let before = metric(&t, ok).await;
    let deadline = Instant::now() + WAIT;
    while metric(&t, ok).await < before + 2 {
        assert!(Instant::now() < deadline, "no periodic snapshot written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&t, libc::SIGKILL);
    let status = wait_exit(&mut t).await;
    assert!(!status.success());

    let t = spawn(&file);
    still_denied(&t, spent).await;
}

#[tokio::test]
async fn a_damaged_snapshot_never_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("limiter.snapshot");
    let file = dir.path().join("tollgate.toml");
    std::fs::write(&file, config_text(&snapshot, "1h")).unwrap();
    std::fs::write(&snapshot, b"\x00\x01 this is not a snapshot\n\xff\xfe").unwrap();
    let t = spawn(&file);
    let mut c = client(&t).await;
    assert_eq!(c.get("/check?key=k&tier=basic").await.status, 200);
    assert_eq!(
        metric(
            &t,
            "tollgate_limiter_snapshot_states_total{outcome=\"restored\"}"
        )
        .await,
        0
    );
}
