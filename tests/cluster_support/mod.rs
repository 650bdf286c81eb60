//! Real tollgate processes in a cluster, for tests/cluster_processes.rs,
//! tests/cluster_partition.rs, tests/revocation_crash.rs (one node, `[cluster]` off) and the
//! cluster benchmark (benches/cluster_load.rs): each node
//! a `tollgate serve` child on its own loopback address (127.0.0.2, 127.0.0.3, …) with its
//! own configuration file and revocation log, all sharing one cluster secret, one hash key and
//! one HS256 issuer; a blocking HTTP/1.1 client to ask them; tokens minted for the real clock.
//!
//! Every wait is bounded ([`WAIT`]); a node is stopped by its own PID, and every child this
//! harness started is killed when its [`Node`] is dropped, so a failing test leaves nothing
//! running.

#![allow(dead_code)]

#[path = "../process_support/mod.rs"]
mod process_support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(20);

pub const CLUSTER_SECRET: &str = "cluster-secret-for-the-process-tests-0123456789abcdef";
pub const HASH_KEY: &str = "hash-key-for-the-process-tests-0123";
pub const HS256_SECRET: &str = "hs256-secret-for-the-process-tests-0123456789";
pub const ADMIN_SECRET: &str = "admin-secret-for-the-process-tests-0123456789";

/// The limits every node runs with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The `basic` tier's limit per window (the key under test: `user:<id>`).
    pub limit: u64,
    pub window_secs: u64,
    /// The gossip interval T, milliseconds.
    pub interval_ms: u64,
    /// `[cluster] threshold` when fixed; `None`: the default.
    pub threshold: Option<u64>,
    /// Whether `[cluster]` is enabled at all (off: a lone sidecar, for comparisons).
    pub cluster: bool,
}

impl Limits {
    /// The tests' setting: 100 per hour (so a test's few seconds stay in one window, and the
    /// sliding window's decay adds nothing measurable), T = 50 ms, θ by default.
    pub const HUNDRED_AN_HOUR: Limits = Limits {
        limit: 100,
        window_secs: 3600,
        interval_ms: 50,
        threshold: None,
        cluster: true,
    };
}

/// One tollgate process.
pub struct Node {
    pub name: String,
    pub ip: Ipv4Addr,
    pub gossip: SocketAddr,
    pub http: SocketAddr,
    config: PathBuf,
    child: Option<Child>,
    /// Run inside this network namespace (`ip netns exec`), when set.
    netns: Option<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A free UDP and TCP port on every one of `ips`, to gossip on.
pub fn free_gossip_port(ips: &[Ipv4Addr]) -> u16 {
    'search: for _ in 0..100 {
        let probe = std::net::UdpSocket::bind((ips[0], 0)).expect("bind a probe");
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        for ip in ips {
            let udp = std::net::UdpSocket::bind((*ip, port));
            let tcp = std::net::TcpListener::bind((*ip, port));
            if udp.is_err() || tcp.is_err() {
                continue 'search;
            }
        }
        return port;
    }
    panic!("no port free on every node address");
}

/// The configuration of node `i` of `ips` (all gossiping on `port`).
pub fn config_text(dir: &Path, ips: &[Ipv4Addr], i: usize, port: u16, limits: Limits) -> String {
    let seeds: Vec<String> = ips.iter().map(|ip| format!("\"{ip}:{port}\"")).collect();
    let threshold = limits
        .threshold
        .map_or(String::new(), |t| format!("threshold = {t}\n"));
    let enabled = limits.cluster;
    format!(
        r#"[server]
http = "{ip}:0"
shutdown_grace = "2s"

[log]
format = "json"
level = "info"

[limiter]
hash_key_env = "TG_TEST_HASH_KEY"

[tiers.anonymous]
limit = 1000000
window = "1h"

[tiers.basic]
limit = {limit}
window = "{window}s"
key = "user"

[[routes]]
path = "/api/**"
auth = "required"

[auth]
anonymous_tier = "anonymous"
default_tier = "basic"

[[auth.issuers]]
name = "backend"
hs256_secret_env = "TG_TEST_HS256"

[auth.revocation]
path = "{log}"

[auth.admin]
enabled = true
secret_env = "TG_TEST_ADMIN"

[cluster]
enabled = {enabled}
node_name = "node{n}"
gossip = "{ip}:{port}"
seeds = [{seeds}]
secret_env = "TG_TEST_CLUSTER"
interval = "{interval}ms"
{threshold}"#,
        ip = ips[i],
        n = i + 1,
        limit = limits.limit,
        window = limits.window_secs,
        log = dir.join(format!("node{}.revocations", i + 1)).display(),
        seeds = seeds.join(", "),
        interval = limits.interval_ms,
    )
}

impl Node {
    /// Writes node `i`'s configuration and starts it; returns once it listens.
    pub fn start(
        dir: &Path,
        ips: &[Ipv4Addr],
        i: usize,
        port: u16,
        limits: Limits,
        netns: Option<&str>,
    ) -> Node {
        Node::start_with(dir, ips, i, port, limits, netns, "")
    }

    /// [`Node::start`], with `extra` (whole TOML sections, such as `[resp]`) appended to the
    /// configuration.
    pub fn start_with(
        dir: &Path,
        ips: &[Ipv4Addr],
        i: usize,
        port: u16,
        limits: Limits,
        netns: Option<&str>,
        extra: &str,
    ) -> Node {
        let config = dir.join(format!("node{}.toml", i + 1));
        let text = config_text(dir, ips, i, port, limits) + "\n" + extra;
        std::fs::write(&config, text).unwrap();
        let mut node = Node {
            name: format!("node{}", i + 1),
            ip: ips[i],
            gossip: SocketAddr::from((ips[i], port)),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            config,
            child: None,
            netns: netns.map(str::to_string),
        };
        node.spawn();
        node
    }

    /// Starts (or starts again, with a new generation) the process.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let bin = env!("CARGO_BIN_EXE_tollgate");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("TG_TEST_HASH_KEY", HASH_KEY)
            .env("TG_TEST_HS256", HS256_SECRET)
            .env("TG_TEST_ADMIN", ADMIN_SECRET)
            .env("TG_TEST_CLUSTER", CLUSTER_SECRET)
            .env("RUST_LOG", "info");
        let (child, http) = process_support::spawn_listening(cmd, WAIT)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name));
        self.http = http;
        self.child = Some(child);
    }

    /// The PID of the process (of `ip netns exec`, which execs tollgate: the same process).
    pub fn pid(&self) -> libc::pid_t {
        let child = self.child.as_ref().expect("running");
        libc::pid_t::try_from(child.id()).unwrap()
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on the PID of a child this harness spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the exit.
    pub fn terminate(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
            let _ = self.child.take().unwrap().wait();
        }
    }

    /// The configuration file this node reads (at start and on SIGHUP).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `GET /check?key=user:<user>&tier=basic&hits=<hits>`: whether admitted, and the
    /// remaining quota it reports.
    pub fn check(&self, user: &str, hits: u64) -> (bool, Option<u64>) {
        let r = get(
            self.http,
            &format!("/check?key=user:{user}&tier=basic&hits={hits}"),
            &[],
        );
        let remaining = r
            .header("x-ratelimit-remaining")
            .and_then(|v| v.parse().ok());
        match r.status {
            200 | 204 => (true, remaining),
            429 => (false, remaining),
            other => panic!("{}: /check answered {other}: {}", self.name, r.body),
        }
    }

    /// `GET /admin/cluster`, as JSON.
    pub fn cluster(&self) -> serde_json::Value {
        let r = get(
            self.http,
            "/admin/cluster",
            &[("Authorization", &format!("Bearer {ADMIN_SECRET}"))],
        );
        assert_eq!(r.status, 200, "{}: /admin/cluster: {}", self.name, r.body);
        serde_json::from_str(&r.body).expect("JSON")
    }

    /// The generation this node lists for its peer `name`, if it lists it.
    pub fn peer_generation(&self, name: &str) -> Option<u64> {
        self.cluster()["peers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)?["generation"]
            .as_u64()
    }

    /// Whether `/readyz` says ready.
    pub fn ready(&self) -> bool {
        get(self.http, "/readyz", &[]).status == 200
    }

    /// `POST /admin/revoke` of the token with `jti`.
    pub fn revoke_jti(&self, jti: &str, exp: u64) {
        let body = format!(r#"{{"jti":"{jti}","exp":{exp}}}"#);
        let r = request(
            self.http,
            "POST",
            "/admin/revoke",
            &[
                ("Authorization", &format!("Bearer {ADMIN_SECRET}")),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        );
        assert!(
            r.status == 200 || r.status == 201,
            "{}: revoke answered {}: {}",
            self.name,
            r.status,
            r.body
        );
    }

    /// `/auth` for `GET /api/x` with `token`: the status nginx would act on.
    pub fn auth(&self, token: &str) -> u16 {
        get(
            self.http,
            "/auth",
            &[
                ("X-Original-URI", "/api/x"),
                ("X-Original-Method", "GET"),
                ("Authorization", &format!("Bearer {token}")),
            ],
        )
        .status
    }
}

/// Starts `n` nodes on 127.0.0.2 … (at most 5), and waits until every node sees every other
/// alive with the same configuration and is ready.
pub fn start_cluster(dir: &Path, n: usize, limits: Limits, netns: Option<&str>) -> Vec<Node> {
    let ips: Vec<Ipv4Addr> = (0..n)
        .map(|i| Ipv4Addr::new(127, 0, 0, 2 + i as u8))
        .collect();
    let port = free_gossip_port(&ips);
    let nodes: Vec<Node> = (0..n)
        .map(|i| Node::start(dir, &ips, i, port, limits, netns))
        .collect();
    wait_converged_membership(&nodes);
    nodes
}

/// Waits until every running node lists every other running one as alive, with a matching
/// configuration, and all of them are ready.
pub fn wait_converged_membership(nodes: &[Node]) {
    let running: Vec<&Node> = nodes.iter().filter(|n| n.is_running()).collect();
    wait_until("every node sees every other alive and ready", || {
        running.iter().all(|n| {
            let c = n.cluster();
            let peers = c["peers"].as_array().cloned().unwrap_or_default();
            n.ready()
                && running.iter().filter(|m| m.name != n.name).all(|m| {
                    peers.iter().any(|p| {
                        p["name"] == m.name.as_str()
                            && p["state"] == "alive"
                            && p["config_match"] == true
                    })
                })
        })
    });
}

/// Polls `cond` until it holds; panics with `what` after [`WAIT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Unix seconds now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token for `sub` with `jti`, valid for an hour from now.
pub fn token(sub: &str, jti: &str) -> (String, u64) {
    let now = now_secs();
    let exp = now + 3600;
    let claims = serde_json::json!({ "sub": sub, "jti": jti, "iat": now, "exp": exp });
    let t = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    )
    .expect("a token");
    (t, exp)
}

/// An answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, b"")
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), read to EOF; panics on a
/// connection error.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// [`request`], with a connection error (refused, cut, no status line) as an `Err`.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line: {text:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_string(),
    })
}
