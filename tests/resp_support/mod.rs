//! Shared by the RESP integration tests: a RESP server started in-process on an ephemeral
//! loopback port and a Unix socket in a temporary directory, deciding on a manual clock;
//! with [`start_auth`], also verifying the PyJWT-made tokens of tests/tokens/ (through
//! `auth_support`, shared with the auth tests).

#![allow(dead_code)]

#[path = "../auth_support/mod.rs"]
pub mod auth_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate::clock::ManualClock;
use tollgate::config::auth::IssuerConfig;
use tollgate::config::routes::RouteConfig;
use tollgate::config::Algorithm;
use tollgate::config::{AuthConfig, Config, LimitConfig};
use tollgate::gate::Gate;
use tollgate::server::resp::{RespOptions, RespServer};

/// 2030-01-01T00:00:00Z, on a window boundary of every usual window.
pub const T0_MILLIS: u64 = 1_893_456_000_000;

/// The admin secret the tests configure (≥ 32 bytes).
pub const ADMIN_SECRET: &str = "resp-test-admin-secret-0123456789abcdef";

pub fn limit(limit: u64, window: &str) -> LimitConfig {
    LimitConfig {
        limit,
        window: window.to_string(),
        algorithm: Algorithm::SlidingWindow,
        key: None,
    }
}

/// Tiers `basic` (5/h) and `anonymous` (100/h), limit `login` (2/5m); RESP on
/// 127.0.0.1:0 and `sock` in `dir`; the admin secret in `RESP_TEST_ADMIN` (looked up by
/// the test's own env function, not the process environment).
pub fn config(dir: &tempfile::TempDir) -> Config {
    let mut c = Config::default();
    c.server.http = "127.0.0.1:0".into();
    c.tiers = BTreeMap::from([
        ("basic".to_string(), limit(5, "1h")),
        ("anonymous".to_string(), limit(100, "1h")),
    ]);
    c.limits = BTreeMap::from([("login".to_string(), limit(2, "5m"))]);
    c.resp.enabled = true;
    c.resp.tcp = "127.0.0.1:0".into();
    c.resp.unix_socket = Some(dir.path().join("resp.sock"));
    c.auth.admin.enabled = true;
    c.auth.admin.secret_env = Some("RESP_TEST_ADMIN".into());
    c.validate().expect("the test configuration validates");
    c
}

pub struct TestServer {
    pub server: RespServer,
    pub gate: Arc<Gate>,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn tcp(&self) -> String {
        self.server.tcp_addr().expect("a TCP listener").to_string()
    }

    pub fn port(&self) -> u16 {
        self.server.tcp_addr().expect("a TCP listener").port()
    }

    pub fn unix(&self) -> PathBuf {
        self.server
            .unix_socket()
            .expect("a Unix socket")
            .to_path_buf()
    }
}

/// Starts a server on [`config`], with `tweak` applied to the options (bounds, timeouts).
pub fn start_with(tweak: impl FnOnce(&mut RespOptions)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir);
    let clock = Arc::new(ManualClock::new(T0_MILLIS));
    let env = |k: &str| (k == "RESP_TEST_ADMIN").then(|| ADMIN_SECRET.to_string());
    let gate = Arc::new(Gate::with_env(&config, clock.clone(), &env).unwrap());
    let mut options = RespOptions::from_config(&config).unwrap();
    tweak(&mut options);
    let server = RespServer::start(gate.clone(), options).expect("RESP server starts");
    TestServer {
        server,
        gate,
        clock,
        dir,
    }
}

pub fn start() -> TestServer {
    start_with(|_| {})
}

/// [`config`] plus a `premium` tier (10/h), the route `/api/me` (a token required), `[auth]`
/// accepting the fixtures (the Better Auth issuer from `issuer`, and HS256), and
/// revocations logged to `dir/revocations.log`.
pub fn auth_config(dir: &tempfile::TempDir, issuer: IssuerConfig) -> Config {
    let mut c = config(dir);
    c.tiers.insert("premium".to_string(), limit(10, "1h"));
    c.routes = vec![RouteConfig {
        path: "/api/me".into(),
        methods: Vec::new(),
        auth: Some("required".into()),
        roles: Vec::new(),
        permissions: Vec::new(),
        owner: None,
        bypass_roles: None,
        limits: Vec::new(),
        tier_limit: true,
    }];
    c.auth = AuthConfig {
        admin: c.auth.admin.clone(),
        ..auth_support::config(issuer)
    };
    c.auth.revocation.path = Some(dir.path().join("revocations.log"));
    c
}

/// A server on [`auth_config`] with the fixtures' key set from a file; its clock is a
/// minute after the fixtures were made.
pub fn start_auth() -> TestServer {
    start_auth_with(auth_support::static_issuer("jwks.json"), |_| {})
}

/// A server on [`auth_config`] with `issuer`, `tweak` applied to the configuration first.
/// The authenticator is started (remote key sets fetched in the background).
pub fn start_auth_with(issuer: IssuerConfig, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = auth_config(&dir, issuer);
    tweak(&mut config);
    config.validate().expect("the test configuration validates");
    let clock = auth_support::clock();
    let auth = Arc::new(auth_support::build(&config.auth, clock.clone()));
    auth.start();
    let env = |k: &str| (k == "RESP_TEST_ADMIN").then(|| ADMIN_SECRET.to_string());
    let gate = Arc::new(Gate::with_authenticator(&config, clock.clone(), auth, &env).unwrap());
    let options = RespOptions::from_config(&config).unwrap();
    let server = RespServer::start(gate.clone(), options).expect("RESP server starts");
    TestServer {
        server,
        gate,
        clock,
        dir,
    }
}

/// Reads from `s` until `want` replies' worth of bytes match `expected`, EOF, or 10 s.
pub async fn read_exactly(s: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
        .await
        .expect("reply within 10 s")
        .expect("read");
    buf
}

/// Reads until the server closes the connection (bounded: 10 s); returns everything read.
pub async fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server closes within 10 s")
        .expect("read");
    buf
}

/// Sends raw bytes in one write.
pub async fn send(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).await.expect("write");
}
