//! The soak: a three-node cluster under mixed load for SOAK_SECONDS (600 by default), with a
//! configuration reload and a restart of one node in the middle. Run by `benches/soak.sh`
//! (which builds the release binary and this load client, and says what it needs); see that
//! script for the settings and docs/benchmarks.md for figures.
//!
//! Three `tollgate serve` processes on 127.0.0.2 … 127.0.0.4 (tests/cluster_support/, the
//! harness of the cluster tests), each also answering RESP. The load, paced at HTTP_RATE
//! requests/s over HTTP_THREADS threads and RESP_RATE commands/s in pipelines of
//! RESP_PIPELINE, every thread going round the three nodes on keep-alive connections:
//!
//! | share | request | expected answer |
//! |---|---|---|
//! | 45 % | `GET /check` for one of 10,000 addresses, tier `anonymous` (never reached) | 200 |
//! | 5 % | `GET /check` for one hot address, tier `small` (50 per 10 s) | 200 or 429 |
//! | 30 % | `/auth` for `/api/x` with one of 2,000 valid HS256 tokens | 200, 401 once revoked |
//! | 10 % | `/auth` with a garbage or forged token | 401 |
//! | 10 % | `/auth` with a token revoked earlier in the run | 401 |
//! | RESP | pipelined `CHECK <address> anonymous` | `allowed` = 1 |
//!
//! Anything else — a connection error, a 5xx, another status, a malformed reply — is an
//! error. Meanwhile a revoker revokes one more valid token every REVOKE_EVERY seconds on one
//! node (by `jti`, through the admin API), waits until every node refuses it, and only then
//! counts it as revoked for the load (a token in flight may get either answer). At 40 % of
//! the run every node's file changes (the `small` tier's limit, 50 → 60) and gets SIGHUP; the
//! new limit must be in force on every node. At 55 % node 3 is drained (no request in flight
//! to it), gets SIGTERM, and starts again with its own revocation log; it takes load again
//! once every node sees it alive and it is ready.
//!
//! Every RSS_EVERY seconds each node's VmRSS is read from /proc/<pid>/status. Growth after
//! warm-up (WARMUP_SECS, 60 by default, from each process's own start, so the restarted
//! node from its restart) is the last sample against the first after warm-up, in %, the
//! largest over the nodes. Latency is each HTTP request's, and each RESP pipeline's round
//! trip, from the moment it is sent.
//!
//! The last line is JSON:
//! `{"requests":…,"errors":…,"rss_growth_pct_after_warmup":…,"p99_ms":…}`; the exit status
//! is 1 when errors > 0 or the growth is above 5 %.

#[path = "../tests/cluster_support/mod.rs"]
mod cluster_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::*;
use parking_lot::RwLock;

const POOL: usize = 10_000;
const VALID: usize = 2_000;
const HOSTILE: usize = 200;
/// Revoked before the load starts.
const REVOKED_FIRST: usize = 100;
const NODES: usize = 3;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator: the load needs spread, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Where a node answers (HTTP, RESP, and which process: 0, then 1 after its restart), or
/// `None` while it is drained for its restart. A load thread holds the read lock for the whole
/// of a request, so taking the write lock waits until nothing is in flight to that node. A
/// thread drops a connection made to an earlier process of the node (the restarted node
/// listens on the same RESP address).
type Slot = RwLock<Option<(SocketAddr, SocketAddr, u32)>>;

struct Shared {
    stop: AtomicBool,
    slots: Vec<Slot>,
    /// Tokens `valid[..revoked_upto]` are revoked on every node.
    revoked_upto: AtomicUsize,
    valid: Vec<String>,
    hostile: Vec<String>,
    requests: AtomicU64,
    errors: AtomicU64,
    /// The first errors, to print.
    error_samples: Mutex<Vec<String>>,
}

impl Shared {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut s = self.error_samples.lock().unwrap();
        if s.len() < 20 {
            s.push(what);
        }
    }
}

/// A keep-alive HTTP/1.1 connection.
struct Http {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Http {
    fn open(addr: SocketAddr) -> std::io::Result<Http> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Http {
            addr,
            reader: BufReader::new(s),
        })
    }

    /// GET `path` with `headers`: the status and the `X-RateLimit-Limit` header.
    fn get(&mut self, path: &str, headers: &str) -> Result<(u16, Option<u64>), String> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{headers}\r\n",
            self.addr
        );
        self.reader
            .get_mut()
            .write_all(req.as_bytes())
            .map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status line: {line:?}"))?;
        let (mut len, mut limit) = (0usize, None);
        loop {
            line.clear();
            self.reader
                .read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().map_err(|_| "bad content-length")?;
                } else if k.eq_ignore_ascii_case("x-ratelimit-limit") {
                    limit = v.trim().parse().ok();
                }
            }
        }
        let mut body = vec![0; len];
        self.reader
            .read_exact(&mut body)
            .map_err(|e| format!("read body: {e}"))?;
        Ok((status, limit))
    }
}

/// A free TCP port on `ip`.
fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .expect("bind a probe")
        .local_addr()
        .unwrap()
        .port()
}

/// Paces a loop at `rate` iterations a second.
struct Pacer {
    start: Instant,
    every: Duration,
    n: u32,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        Pacer {
            start: Instant::now(),
            every: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            n: 0,
        }
    }
    fn wait(&mut self) {
        self.n += 1;
        let due = self.start + self.every * self.n;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// One HTTP load thread: latencies in µs.
fn http_load(shared: &Shared, seed: u64, rate: f64) -> Vec<u32> {
    let mut rng = Rng(seed | 1);
    let mut conns: Vec<Option<(u32, Http)>> = (0..NODES).map(|_| None).collect();
    let mut lat = Vec::new();
    let mut pacer = Pacer::new(rate);
    let mut turn = seed as usize;
    while !shared.stop.load(Ordering::Relaxed) {
        pacer.wait();
        turn += 1;
        let node = turn % NODES;
        let slot = shared.slots[node].read();
        let Some((http, _, process)) = *slot else {
            conns[node] = None;
            continue;
        };
        if conns[node].as_ref().is_some_and(|(p, _)| *p != process) {
            conns[node] = None;
        }
        if conns[node].is_none() {
            match Http::open(http) {
                Ok(c) => conns[node] = Some((process, c)),
                Err(e) => {
                    shared.requests.fetch_add(1, Ordering::Relaxed);
                    shared.error(format!("node{}: connect: {e}", node + 1));
                    continue;
                }
            }
        }
        let (_, conn) = conns[node].as_mut().unwrap();
        let roll = rng.below(100);
        let revoked = shared.revoked_upto.load(Ordering::Acquire);
        let (path, token, expect): (String, Option<&str>, &[u16]) = match roll {
            0..=44 => {
                let i = rng.below(POOL);
                (
                    format!("/check?key=ip:10.0.{}.{}&tier=anonymous", i / 256, i % 256),
                    None,
                    &[200, 204],
                )
            }
            45..=49 => (
                "/check?key=ip:10.9.9.9&tier=small".into(),
                None,
                &[200, 204, 429],
            ),
            50..=79 => {
                let i = rng.below(VALID);
                let expect: &[u16] = if i < revoked {
                    &[401]
                } else if i == revoked {
                    // Being revoked right now: either answer is right.
                    &[200, 204, 401]
                } else {
                    &[200, 204]
                };
                ("/auth".into(), Some(shared.valid[i].as_str()), expect)
            }
            80..=89 => {
                let t = &shared.hostile[rng.below(HOSTILE)];
                ("/auth".into(), Some(t.as_str()), &[401])
            }
            _ => {
                let i = if revoked > 0 { rng.below(revoked) } else { 0 };
                let expect: &[u16] = if revoked > 0 { &[401] } else { &[200, 204] };
                ("/auth".into(), Some(shared.valid[i].as_str()), expect)
            }
        };
        let headers = match token {
            Some(t) => format!(
                "X-Original-URI: /api/x\r\nX-Original-Method: GET\r\nAuthorization: Bearer {t}\r\n"
            ),
            None => String::new(),
        };
        let t0 = Instant::now();
        let answer = conn.get(&path, &headers);
        lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        shared.requests.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok((status, _)) if expect.contains(&status) => {}
            Ok((status, _)) => shared.error(format!(
                "node{}: {path} answered {status}, expected {expect:?}",
                node + 1
            )),
            Err(e) => {
                conns[node] = None;
                shared.error(format!("node{}: {path}: {e}", node + 1));
            }
        }
    }
    lat
}

/// One RESP load thread: pipelines of `pipeline` `CHECK`s; latencies (per pipeline) in µs.
fn resp_load(shared: &Shared, seed: u64, rate: f64, pipeline: usize) -> Vec<u32> {
    let mut rng = Rng(seed | 1);
    let mut conns: Vec<Option<(u32, BufReader<TcpStream>)>> = (0..NODES).map(|_| None).collect();
    let mut lat = Vec::new();
    let mut pacer = Pacer::new(rate / pipeline as f64);
    let mut turn = seed as usize;
    let mut batch = Vec::new();
    let mut line = String::new();
    while !shared.stop.load(Ordering::Relaxed) {
        pacer.wait();
        turn += 1;
        let node = turn % NODES;
        let slot = shared.slots[node].read();
        let Some((_, resp, process)) = *slot else {
            conns[node] = None;
            continue;
        };
        if conns[node].as_ref().is_some_and(|(p, _)| *p != process) {
            conns[node] = None;
        }
        if conns[node].is_none() {
            let opened = TcpStream::connect_timeout(&resp, Duration::from_secs(5)).and_then(|s| {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(10)))?;
                Ok(s)
            });
            match opened {
                Ok(s) => conns[node] = Some((process, BufReader::new(s))),
                Err(e) => {
                    shared
                        .requests
                        .fetch_add(pipeline as u64, Ordering::Relaxed);
                    shared.error(format!("node{} RESP: connect: {e}", node + 1));
                    continue;
                }
            }
        }
        let (_, reader) = conns[node].as_mut().unwrap();
        batch.clear();
        for _ in 0..pipeline {
            let i = rng.below(POOL);
            let key = format!("ip:10.0.{}.{}", i / 256, i % 256);
            write!(
                batch,
                "*3\r\n$5\r\nCHECK\r\n${}\r\n{key}\r\n$9\r\nanonymous\r\n",
                key.len()
            )
            .unwrap();
        }
        let t0 = Instant::now();
        let result = (|| -> Result<(), String> {
            reader
                .get_mut()
                .write_all(&batch)
                .map_err(|e| format!("write: {e}"))?;
            for _ in 0..pipeline {
                line.clear();
                reader
                    .read_line(&mut line)
                    .map_err(|e| format!("read: {e}"))?;
                if line != "*5\r\n" {
                    return Err(format!("reply {line:?}, expected an array of five"));
                }
                for field in 0..5 {
                    line.clear();
                    reader
                        .read_line(&mut line)
                        .map_err(|e| format!("read: {e}"))?;
                    if field == 0 && line != ":1\r\n" {
                        return Err(format!("allowed is {line:?}, expected :1"));
                    }
                }
            }
            Ok(())
        })();
        lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        shared
            .requests
            .fetch_add(pipeline as u64, Ordering::Relaxed);
        if let Err(e) = result {
            conns[node] = None;
            shared.error(format!("node{} RESP CHECK: {e}", node + 1));
        }
    }
    lat
}

/// One process's RSS samples: (node index, its start in seconds since the load began,
/// [(seconds since the load began, kB)]).
type RssSeries = (usize, f64, Vec<(f64, u64)>);

/// VmRSS of `pid`, kB.
fn rss_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Records each node's PID in `SOAK_PID_FILE`, so the script can stop it even if this
/// process is killed before its nodes are.
fn record_pid(pid: i32) {
    if let Ok(path) = std::env::var("SOAK_PID_FILE") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("the PID file");
        writeln!(f, "{pid}").unwrap();
    }
}

/// A token that is not one: random bytes, wrong shapes, or a well-formed HS256 token with a
/// bad signature and a random `kid`.
fn hostile_token(rng: &mut Rng, i: usize) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let bytes: Vec<u8> = (0..32 + rng.below(64)).map(|_| rng.next() as u8).collect();
    match i % 4 {
        0 => b64.encode(&bytes),
        1 => format!("{}.{}", b64.encode(&bytes[..8]), b64.encode(&bytes[8..])),
        2 => format!("a.b.c.{}", b64.encode(&bytes)),
        _ => {
            let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"k{}"}}"#, rng.next());
            let claims = format!(
                r#"{{"sub":"u{}","jti":"forged{i}","iat":{},"exp":{}}}"#,
                rng.below(VALID),
                now_secs(),
                now_secs() + 3600
            );
            format!(
                "{}.{}.{}",
                b64.encode(header),
                b64.encode(claims),
                b64.encode(&bytes[..32])
            )
        }
    }
}

/// Polls `/auth` with `token` on every running node until each refuses it.
fn wait_refused_everywhere(shared: &Shared, token: &str) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    for (n, slot) in shared.slots.iter().enumerate() {
        loop {
            let Some((http, _, _)) = *slot.read() else {
                break;
            };
            let r = try_request(
                http,
                "GET",
                "/auth",
                &[
                    ("X-Original-URI", "/api/x"),
                    ("X-Original-Method", "GET"),
                    ("Authorization", &format!("Bearer {token}")),
                ],
                b"",
            )?;
            if r.status == 401 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("node{} still admits a revoked token", n + 1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// The revoker: one more token every `every`, on node 1 (node 2 while node 1 is drained).
fn revoker(shared: &Shared, nodes: &Mutex<Vec<Node>>, exps: &[u64], every: Duration) {
    let mut pacer = Pacer::new(1.0 / every.as_secs_f64());
    while !shared.stop.load(Ordering::Relaxed) {
        pacer.wait();
        let k = shared.revoked_upto.load(Ordering::Acquire);
        if k + 1 >= VALID || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        {
            let nodes = nodes.lock().unwrap();
            let Some(n) = nodes.iter().find(|n| n.is_running()) else {
                continue;
            };
            n.revoke_jti(&format!("j{k}"), exps[k]);
        }
        match wait_refused_everywhere(shared, &shared.valid[k]) {
            Ok(()) => shared.revoked_upto.store(k + 1, Ordering::Release),
            Err(e) => {
                shared.error(format!("revocation of j{k}: {e}"));
                shared.revoked_upto.store(k + 1, Ordering::Release);
            }
        }
    }
}

/// Rewrites every node's `small` limit from `from` to `to`, sends SIGHUP, and waits until each
/// node reports the new limit.
fn reload(shared: &Shared, nodes: &[Node], from: u64, to: u64) -> Result<(), String> {
    for n in nodes {
        let path = n.config_path();
        let text = std::fs::read_to_string(path).unwrap();
        let old = format!("[tiers.small]\nlimit = {from}\n");
        assert!(text.contains(&old), "{}: no {old:?}", n.name);
        std::fs::write(
            path,
            text.replace(&old, &format!("[tiers.small]\nlimit = {to}\n")),
        )
        .unwrap();
        n.signal(libc::SIGHUP);
    }
    let deadline = Instant::now() + WAIT;
    for (i, n) in nodes.iter().enumerate() {
        let Some((http, _, _)) = *shared.slots[i].read() else {
            continue;
        };
        loop {
            let r = get(http, "/check?key=ip:10.8.8.8&tier=small&hits=0", &[]);
            let limit: Option<u64> = r.header("x-ratelimit-limit").and_then(|v| v.parse().ok());
            if limit == Some(to) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("{}: the limit after SIGHUP is {limit:?}", n.name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

fn main() {
    let secs = env_num("SOAK_SECONDS", 600);
    let warmup = env_num("WARMUP_SECS", 60.min(secs / 4));
    let http_rate = env_num("HTTP_RATE", 2000) as f64;
    let http_threads = env_num("HTTP_THREADS", 4).max(1);
    let resp_rate = env_num("RESP_RATE", 2000) as f64;
    let pipeline = env_num("RESP_PIPELINE", 20).max(1) as usize;
    let rss_every = Duration::from_secs(env_num("RSS_EVERY", 5).max(1));
    let revoke_every = Duration::from_secs(env_num("REVOKE_EVERY", 2).max(1));

    let dir = tempfile::tempdir().unwrap();
    let ips: Vec<Ipv4Addr> = (0..NODES)
        .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
        .collect();
    let port = free_gossip_port(&ips);
    let resp_ports: Vec<SocketAddr> = ips
        .iter()
        .map(|ip| SocketAddr::from((*ip, free_port(*ip))))
        .collect();
    let limits = Limits {
        // `user:<sub>` through /auth: never reached, so a valid token is admitted.
        limit: 1_000_000_000,
        window_secs: 3600,
        interval_ms: 50,
        threshold: None,
        cluster: true,
    };
    let nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            let extra = format!(
                "[tiers.small]\nlimit = 50\nwindow = \"10s\"\n\n[resp]\nenabled = true\ntcp = \"{}\"\n",
                resp_ports[i]
            );
            let n = Node::start_with(dir.path(), &ips, i, port, limits, None, &extra);
            record_pid(n.pid());
            n
        })
        .collect();
    wait_converged_membership(&nodes);

    let mut rng = Rng(0x5eed_50a6);
    let mut valid = Vec::with_capacity(VALID);
    let mut exps = Vec::with_capacity(VALID);
    for i in 0..VALID {
        let (t, exp) = token(&format!("u{i}"), &format!("j{i}"));
        valid.push(t);
        exps.push(exp);
    }
    let hostile = (0..HOSTILE).map(|i| hostile_token(&mut rng, i)).collect();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        slots: (0..NODES)
            .map(|i| RwLock::new(Some((nodes[i].http, resp_ports[i], 0))))
            .collect(),
        revoked_upto: AtomicUsize::new(0),
        valid,
        hostile,
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        error_samples: Mutex::new(Vec::new()),
    });
    for (k, exp) in exps.iter().enumerate().take(REVOKED_FIRST) {
        nodes[0].revoke_jti(&format!("j{k}"), *exp);
    }
    for k in 0..REVOKED_FIRST {
        if let Err(e) = wait_refused_everywhere(&shared, &shared.valid[k]) {
            shared.error(format!("revocation of j{k} before the load: {e}"));
        }
    }
    shared.revoked_upto.store(REVOKED_FIRST, Ordering::Release);
    eprintln!(
        "soak: {NODES} nodes, {secs} s, warm-up {warmup} s, HTTP {http_rate}/s over {http_threads} threads, RESP {resp_rate}/s in pipelines of {pipeline}; load {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );

    let nodes = Arc::new(Mutex::new(nodes));
    let start = Instant::now();
    let mut workers = Vec::new();
    for t in 0..http_threads {
        let shared = Arc::clone(&shared);
        let rate = http_rate / http_threads as f64;
        workers.push(std::thread::spawn(move || {
            http_load(&shared, 0x1234_5678 + t * 7919, rate)
        }));
    }
    if resp_rate > 0.0 {
        let shared = Arc::clone(&shared);
        workers.push(std::thread::spawn(move || {
            resp_load(&shared, 0xabcd_ef01, resp_rate, pipeline)
        }));
    }
    let revoker_thread = {
        let (shared, nodes, exps) = (Arc::clone(&shared), Arc::clone(&nodes), exps.clone());
        std::thread::spawn(move || revoker(&shared, &nodes, &exps, revoke_every))
    };

    let mut rss: Vec<RssSeries> = (0..NODES).map(|i| (i, 0.0, Vec::new())).collect();
    let (reload_at, restart_at) = (secs as f64 * 0.40, secs as f64 * 0.55);
    let (mut reloaded, mut restarted) = (false, false);
    let mut next_sample = Duration::ZERO;
    let mut last_report = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let t = start.elapsed().as_secs_f64();
        if start.elapsed() >= next_sample {
            next_sample += rss_every;
            let nodes = nodes.lock().unwrap();
            for (i, n) in nodes.iter().enumerate() {
                if !n.is_running() {
                    continue;
                }
                let series = rss.iter_mut().rev().find(|s| s.0 == i).unwrap();
                if let Some(kb) = rss_kb(n.pid()) {
                    series.2.push((t, kb));
                }
            }
        }
        if !reloaded && t >= reload_at {
            reloaded = true;
            let nodes = nodes.lock().unwrap();
            match reload(&shared, &nodes, 50, 60) {
                Ok(()) => eprintln!("soak: {t:.0} s: every node reloaded (small: 50 → 60)"),
                Err(e) => shared.error(format!("reload: {e}")),
            }
        }
        if !restarted && t >= restart_at {
            restarted = true;
            let mut nodes = nodes.lock().unwrap();
            let last = NODES - 1;
            let t0 = Instant::now();
            *shared.slots[last].write() = None;
            nodes[last].terminate();
            nodes[last].spawn();
            record_pid(nodes[last].pid());
            wait_converged_membership(&nodes);
            *shared.slots[last].write() = Some((nodes[last].http, resp_ports[last], 1));
            rss.push((last, start.elapsed().as_secs_f64(), Vec::new()));
            eprintln!(
                "soak: {t:.0} s: node{} drained, stopped, started again and taking load after {} ms",
                last + 1,
                t0.elapsed().as_millis()
            );
        }
        let s = start.elapsed().as_secs();
        if s >= last_report + 60 {
            last_report = s;
            eprintln!(
                "soak: {s} s: {} requests, {} errors, {} revoked",
                shared.requests.load(Ordering::Relaxed),
                shared.errors.load(Ordering::Relaxed),
                shared.revoked_upto.load(Ordering::Relaxed)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<u32> = Vec::new();
    for w in workers {
        lat.extend(w.join().expect("a load thread"));
    }
    revoker_thread.join().expect("the revoker");
    let elapsed = start.elapsed().as_secs_f64();

    let mut growth_max = f64::NEG_INFINITY;
    for (i, born, series) in &rss {
        let after: Vec<&(f64, u64)> = series
            .iter()
            .filter(|(t, _)| *t >= born + warmup as f64)
            .collect();
        let (Some(first), Some(last)) = (after.first(), after.last()) else {
            eprintln!(
                "soak: node{} (from {born:.0} s): no sample after warm-up",
                i + 1
            );
            continue;
        };
        let growth = (last.1 as f64 - first.1 as f64) / first.1 as f64 * 100.0;
        let peak = series.iter().map(|s| s.1).max().unwrap_or(0);
        eprintln!(
            "soak: node{} (process from {born:.0} s): RSS {} kB at {:.0} s → {} kB at {:.0} s ({growth:+.2} %), peak {peak} kB",
            i + 1,
            first.1,
            first.0,
            last.1,
            last.0
        );
        growth_max = growth_max.max(growth);
    }
    if !growth_max.is_finite() {
        growth_max = 0.0;
    }
    lat.sort_unstable();
    let p99_ms = lat
        .get(((lat.len() as f64 * 0.99) as usize).min(lat.len().saturating_sub(1)))
        .map_or(0.0, |&us| us as f64 / 1000.0);
    let p50_ms = lat.get(lat.len() / 2).map_or(0.0, |&us| us as f64 / 1000.0);
    let requests = shared.requests.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    for e in shared.error_samples.lock().unwrap().iter() {
        eprintln!("soak: error: {e}");
    }
    // Stop the nodes by SIGTERM (each by its own PID) before the summary.
    for n in nodes.lock().unwrap().iter_mut() {
        n.terminate();
    }
    println!(
        "soak: {:.0} requests/s, p50 {p50_ms:.3} ms, {} revoked by the end",
        requests as f64 / elapsed,
        shared.revoked_upto.load(Ordering::Relaxed)
    );
    println!(
        "{{\"requests\":{requests},\"errors\":{errors},\"rss_growth_pct_after_warmup\":{growth_max:.2},\"p99_ms\":{p99_ms:.3}}}"
    );
    if errors > 0 || growth_max > 5.0 {
        std::process::exit(1);
    }
}
