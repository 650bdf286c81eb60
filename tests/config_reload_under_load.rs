//! Reloading the configuration under load drops no request: a real `tollgate serve` answers a
//! steady stream of concurrent HTTP `/check` requests (some on a fresh connection each, some
//! on keep-alive connections) and RESP `CHECK`s while it is sent SIGHUP after SIGHUP, the
//! file alternating between two valid configurations (the `basic` tier's limit differs) with
//! a broken one in between. Every request must get a valid decision — no refused or cut
//! connection, no 5xx, no error reply — the broken file must be reported with the old
//! configuration left in force, and each valid reload must show in the answers.
//!
//! Every wait is on observed state (the reload's log line, the answers, the reload counters
//! in `/metrics`) and bounded by [`WAIT`]; nothing sleeps.

mod process_support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tollgate::client::{Client, ClientOptions, Target};

/// Upper bound for anything the test waits on.
const WAIT: Duration = Duration::from_secs(20);
/// The `basic` tier's limit in the two valid configurations.
const LIMIT_A: u64 = 1_000_000;
const LIMIT_B: u64 = 2_000_000;
/// Requests the load must complete between two reloads, so each lands amid traffic.
const BETWEEN_RELOADS: u64 = 300;

struct Tollgate {
    child: Child,
    http: SocketAddr,
    resp: SocketAddr,
    log: mpsc::Receiver<String>,
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        // This PID only, whether the test passed or not.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tollgate {
    fn start(config: &Path) -> Tollgate {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.arg("serve").arg("--config").arg(config);
        let started = process_support::spawn_logged(cmd, WAIT).unwrap();
        let resp = started
            .early_log
            .iter()
            .filter(|l| l.contains("RESP protocol listening"))
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                v["fields"]["tcp"]
                    .as_str()
                    .or(v["tcp"].as_str())?
                    .parse()
                    .ok()
            })
            .expect("the RESP door says where it listens");
        Tollgate {
            child: started.child,
            http: started.http,
            resp,
            log: started.log,
        }
    }

    fn sighup(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    }

    /// Reads the log until a line contains `needle`; that line.
    fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?} within {WAIT:?}"),
            }
        }
    }
}

fn config_text(limit: u64) -> String {
    format!(
        r#"[server]
http = "127.0.0.1:0"

[log]
format = "json"
level = "info"

[resp]
enabled = true
tcp = "127.0.0.1:0"

[tiers.anonymous]
limit = 100
window = "1h"

[tiers.basic]
limit = {limit}
window = "1h"
"#
    )
}

/// Valid TOML, refused by validation: a limit of 0.
const BROKEN: &str =
    "[server]\nhttp = \"127.0.0.1:0\"\n\n[tiers.basic]\nlimit = 0\nwindow = \"1h\"\n";

/// Writes the file whole (a temporary file renamed over it), so a reload never reads half.
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One HTTP/1.1 answer: status, body.
fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, String)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(std::io::Error::other)?;
            }
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A connection that sends GETs and reads their answers.
struct Http(BufReader<TcpStream>);

impl Http {
    fn connect(addr: SocketAddr) -> std::io::Result<Http> {
        let s = TcpStream::connect_timeout(&addr, WAIT)?;
        s.set_read_timeout(Some(WAIT))?;
        s.set_nodelay(true)?;
        Ok(Http(BufReader::new(s)))
    }

    fn get(&mut self, target: &str) -> std::io::Result<(u16, String)> {
        write!(
            self.0.get_mut(),
            "GET {target} HTTP/1.1\r\nHost: tollgate\r\n\r\n"
        )?;
        read_response(&mut self.0)
    }
}

/// What the load saw.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    /// Requests answered with a valid decision.
    answered: AtomicU64,
    /// Requests that got anything else.
    failed: AtomicU64,
    /// The first 20 of them, described.
    failures: Mutex<Vec<String>>,
    /// The `basic` limits the answers named.
    limits: Mutex<BTreeSet<u64>>,
}

impl Load {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock().unwrap();
        if f.len() < 20 {
            f.push(what);
        }
    }

    fn answered(&self, limit: u64) {
        if limit != LIMIT_A && limit != LIMIT_B {
            return self.fail(format!("a decision names limit {limit}"));
        }
        self.limits.lock().unwrap().insert(limit);
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// Judges one `/check` answer: 200 or 429 with a JSON decision.
    fn judge_http(&self, who: &str, answer: std::io::Result<(u16, String)>) {
        match answer {
            Ok((status @ (200 | 429), body)) => {
                let v: serde_json::Value = match serde_json::from_str(&body) {
                    Ok(v) => v,
                    Err(e) => return self.fail(format!("{who}: {status} with {body:?}: {e}")),
                };
                match (v["allowed"].as_bool(), v["limit"].as_u64()) {
                    (Some(allowed), Some(limit)) if allowed == (status == 200) => {
                        self.answered(limit)
                    }
                    _ => self.fail(format!("{who}: {status} with {body:?}")),
                }
            }
            Ok((status, body)) => self.fail(format!("{who}: {status} {body:?}")),
            Err(e) => self.fail(format!("{who}: {e}")),
        }
    }

    /// Waits until `n` more requests have been answered (or something failed).
    fn wait_for_progress(&self, n: u64) {
        let goal = self.answered.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + WAIT;
        while self.answered.load(Ordering::Relaxed) < goal
            && self.failed.load(Ordering::Relaxed) == 0
        {
            assert!(Instant::now() < deadline, "the load stalled");
            std::thread::yield_now();
        }
    }
}

/// `/check` on a new connection each time, closed after the answer.
fn fresh_connections(load: &Load, addr: SocketAddr, worker: usize) {
    let mut i = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        let target = format!("/check?key=fresh-{worker}-{}&tier=basic", i % 64);
        let who = format!("fresh connection {worker}, request {i}");
        load.judge_http(&who, Http::connect(addr).and_then(|mut c| c.get(&target)));
        i += 1;
    }
}

/// `/check` on one keep-alive connection.
fn keep_alive(load: &Load, addr: SocketAddr, worker: usize) {
    let mut c = match Http::connect(addr) {
        Ok(c) => c,
        Err(e) => return load.fail(format!("keep-alive {worker}: connect: {e}")),
    };
    let mut i = 0u64;
    while !load.stop.load(Ordering::Relaxed) {
        let target = format!("/check?key=kept-{worker}-{}&tier=basic", i % 64);
        let answer = c.get(&target);
        let broken = answer.is_err();
        load.judge_http(&format!("keep-alive {worker}, request {i}"), answer);
        if broken {
            // Judged as a failure; go on with a new connection so the rest still counts.
            match Http::connect(addr) {
                Ok(n) => c = n,
                Err(_) => return,
            }
        }
        i += 1;
    }
}

/// RESP `CHECK`s, a few at a time (pipelined by the client).
fn resp_checks(load: &Load, addr: SocketAddr, worker: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = match Client::connect(Target::tcp(addr), ClientOptions::default()).await {
            Ok(c) => c,
            Err(e) => return load.fail(format!("RESP {worker}: connect: {e}")),
        };
        let mut i = 0u64;
        while !load.stop.load(Ordering::Relaxed) {
            let key = format!("resp-{worker}-{}", i % 64);
            match client.check(&key, "basic", 1).await {
                Ok(reply) => load.answered(reply.limit),
                Err(e) => load.fail(format!("RESP {worker}, CHECK {i}: {e}")),
            }
            i += 1;
        }
    });
}

/// The limit a fresh `/check` (spending nothing) names now.
fn limit_now(addr: SocketAddr) -> u64 {
    let (status, body) = Http::connect(addr)
        .and_then(|mut c| c.get("/check?key=probe&tier=basic&hits=0"))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["limit"].as_u64().unwrap()
}

/// `tollgate_config_reloads_total{result}` from `/metrics`.
fn reloads(addr: SocketAddr, result: &str) -> u64 {
    let (status, body) = Http::connect(addr)
        .and_then(|mut c| c.get("/metrics"))
        .unwrap();
    assert_eq!(status, 200);
    let series = format!("tollgate_config_reloads_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn reloads_under_load_drop_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tollgate.toml");
    write_config(&file, &config_text(LIMIT_A));
    let t = Tollgate::start(&file);
    assert_eq!(limit_now(t.http), LIMIT_A);

    let load = Arc::new(Load::default());
    let mut workers = Vec::new();
    for w in 0..2 {
        let (load, addr) = (Arc::clone(&load), t.http);
        workers.push(std::thread::spawn(move || {
            fresh_connections(&load, addr, w)
        }));
    }
    for w in 0..3 {
        let (load, addr) = (Arc::clone(&load), t.http);
        workers.push(std::thread::spawn(move || keep_alive(&load, addr, w)));
    }
    for w in 0..2 {
        let (load, addr) = (Arc::clone(&load), t.resp);
        workers.push(std::thread::spawn(move || resp_checks(&load, addr, w)));
    }

    // B, the broken file, A, B, A: every reload lands amid traffic.
    let steps = [
        Some(LIMIT_B),
        None,
        Some(LIMIT_A),
        Some(LIMIT_B),
        Some(LIMIT_A),
    ];
    let mut in_force = LIMIT_A;
    let (mut ok, mut failed) = (0, 0);
    for step in steps {
        load.wait_for_progress(BETWEEN_RELOADS);
        match step {
            Some(limit) => {
                write_config(&file, &config_text(limit));
                t.sighup();
                t.wait_for_log("SIGHUP: configuration reloaded");
                ok += 1;
                in_force = limit;
            }
            None => {
                write_config(&file, BROKEN);
                t.sighup();
                let line = t.wait_for_log("SIGHUP: configuration refused");
                assert!(
                    line.contains("limit") && line.contains("the running configuration stays"),
                    "the refusal names the problem: {line}"
                );
                failed += 1;
            }
        }
        // The swap is done once the line is logged: a new request sees what is in force.
        assert_eq!(limit_now(t.http), in_force, "after step {step:?}");
        assert_eq!(
            (reloads(t.http, "ok"), reloads(t.http, "failed")),
            (ok, failed)
        );
    }
    load.wait_for_progress(BETWEEN_RELOADS);
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("a load worker panicked");
    }

    let failures = load.failures.lock().unwrap();
    let answered = load.answered.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed across the reloads; the first: {failures:#?}",
        load.failed.load(Ordering::Relaxed),
        answered + load.failed.load(Ordering::Relaxed)
    );
    let limits = load.limits.lock().unwrap();
    assert_eq!(
        *limits,
        BTreeSet::from([LIMIT_A, LIMIT_B]),
        "the load saw both configurations"
    );
    println!(
        "{answered} requests answered across {ok} reloads and {failed} refused one, none failed"
    );
}
