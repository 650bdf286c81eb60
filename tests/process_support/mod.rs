//! A `tollgate serve` child process, for the tests that run the real binary
//! (tests/http_signals.rs, and through tests/cluster_support/ the cluster tests and benchmark):
//! start it with its output piped, and read its JSON log until it says where it listens.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Spawns `cmd` (a `tollgate serve` with `[log] format = "json"`) and waits up to `wait` for
/// its "tollgate listening" line: the child and its HTTP address. The log is read from both
/// streams (where it goes depends on the logging setup) and drained for the child's whole
/// life, so it never blocks on a full pipe. A child that does not say it listens in time is
/// killed, and the error says so.
pub fn spawn_listening(cmd: Command, wait: Duration) -> Result<(Child, SocketAddr), String> {
    let started = spawn_logged(cmd, wait)?;
    let rx = started.log;
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Ok((started.child, started.http))
}

/// A child started by [`spawn_logged`].
pub struct Started {
    pub child: Child,
    pub http: SocketAddr,
    /// The log lines up to "tollgate listening", that one included.
    pub early_log: Vec<String>,
    /// Every later log line. The caller must keep reading it (or drop it) so the child never
    /// blocks on a full pipe: an unread channel grows, a dropped one is drained.
    pub log: mpsc::Receiver<String>,
}

/// Like [`spawn_listening`], keeping the log: what came before the listening line, and a
/// channel of what comes after, for a test that waits on a log line.
pub fn spawn_logged(mut cmd: Command, wait: Duration) -> Result<Started, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("tollgate does not start: {e}"))?;
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            // Once the receiver is gone, lines are read and dropped: the pipe never fills.
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + wait;
    let mut early_log = Vec::new();
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("tollgate did not say it listens within {wait:?}"));
        };
        early_log.push(line);
        let line = early_log.last().unwrap();
        if !line.contains("tollgate listening") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not a JSON log line ({e}): {line}"))?;
        let http = v["fields"]["http"]
            .as_str()
            .or_else(|| v["http"].as_str())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("no http address in {line}"))?;
        return Ok(Started {
            child,
            http,
            early_log,
            log: rx,
        });
    }
}
