//! What the door's unit tests share: a door on a manual clock, a connection's state, and
//! running one command through [`cmd::execute`] as the connection loop would; the
//! VERIFY/REVOKE fixtures (the PyJWT-made tokens of tests/tokens/).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;

use super::cmd::{self, Flow};
use super::connection::Conn;
use super::door::RespDoor;
use super::options::RespOptions;
use super::stats::BatchCounts;
use crate::clock::ManualClock;
use crate::config::Algorithm;
use crate::config::{Config, LimitConfig};
use crate::gate::Gate;
use crate::policy::Peer;
use crate::resp::frame::{Frame, Protocol};
use crate::resp::Args;

/// Admin access of a test door (`[auth.admin]`): none, or [`SECRET`] on every socket or on
/// the Unix socket only.
#[derive(Clone, Copy)]
pub(super) enum Admin {
    Disabled,
    Secret,
    SecretUnixSocketOnly,
}

fn admin_config(c: &mut Config, admin: Admin) {
    c.auth.admin = crate::config::auth::AdminConfig {
        enabled: !matches!(admin, Admin::Disabled),
        secret_env: (!matches!(admin, Admin::Disabled)).then(|| "ADMIN".into()),
        unix_socket_only: matches!(admin, Admin::SecretUnixSocketOnly),
    };
}

pub(super) fn door(admin: Admin) -> RespDoor {
    door_with(admin, |_| {})
}

/// The secret of the `[[check.callers]]` entry `api` (variable `API`) a test may configure.
pub(super) const CALLER_SECRET: &str = "resp-check-caller-secret-0123456789abcdef";

/// [`door`], with `configure` changing its configuration first (`[check]`).
pub(super) fn door_with(admin: Admin, configure: impl FnOnce(&mut Config)) -> RespDoor {
    let mut c = Config::default();
    c.tiers.insert(
        "basic".into(),
        LimitConfig {
            limit: 3,
            window: "1h".into(),
            algorithm: Algorithm::SlidingWindow,
            key: None,
        },
    );
    admin_config(&mut c, admin);
    configure(&mut c);
    let env = |v: &str| match v {
        "ADMIN" => Some(SECRET.to_string()),
        "API" => Some(CALLER_SECRET.to_string()),
        _ => None,
    };
    let clock = Arc::new(ManualClock::new(1_000_000));
    let gate = Arc::new(Gate::with_env(&c, clock, &env).unwrap());
    let options = RespOptions::from_config(&c).unwrap();
    RespDoor::new(gate, options)
}

/// Runs one command line (split on spaces) and returns the reply text.
pub(super) fn run(conn: &mut Conn, door: &RespDoor, line: &str) -> String {
    let words: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    run_args(conn, door, &words)
}

/// Runs one command given as its arguments (which may be empty or not UTF-8), settling
/// a command that waits on a runtime of its own, and returns the reply text (lossy).
pub(super) fn run_args(conn: &mut Conn, door: &RespDoor, words: &[&[u8]]) -> String {
    let args: Args<'_> = words.iter().copied().collect();
    let mut out = BytesMut::new();
    let mut counts = BatchCounts::default();
    if let Flow::Await(work) = cmd::execute(conn, &args, &door.0, &mut out, &mut counts) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let settled = rt.block_on(cmd::settle(work, &door.0));
        cmd::reply_settled(conn, settled, &mut out, &mut counts);
    }
    door.0.stats.add(conn.id, &counts);
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection over TCP from loopback (a trusted proxy by default), or over the Unix
/// socket.
pub(super) fn conn(via_unix: bool) -> Conn {
    let peer = if via_unix {
        Peer::Unix
    } else {
        Peer::Ip(IpAddr::from([127, 0, 0, 1]))
    };
    conn_from(Some(peer))
}

pub(super) fn conn_from(peer: Option<Peer>) -> Conn {
    Conn {
        id: 7,
        protocol: Protocol::Resp2,
        admin: None,
        check: None,
        check_proof: None,
        via_unix: peer == Some(Peer::Unix),
        peer,
        name: None,
    }
}

pub(super) const SECRET: &str = "resp-admin-secret-0123456789abcdef";

pub(super) fn fixtures() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tokens/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub(super) fn token(name: &str) -> String {
    let m = fixtures();
    let t = m["tokens"].as_array().unwrap().iter();
    let found = t.clone().find(|t| t["name"] == name);
    found.unwrap()["token"].as_str().unwrap().to_string()
}

/// Tiers anonymous (2/h per IP), basic (3/h per user), premium (10/h); routes `/api/me`
/// (required) and `/api/users/{user_id}/**` (owner); the fixtures' Better Auth and
/// HS256 issuers; revocations logged to `log` when given; the admin secret.
pub(super) fn auth_door(log: Option<&Path>) -> RespDoor {
    use crate::config::auth::{IssuerConfig, RoleTier};
    use crate::config::routes::RouteConfig;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tokens");
    let m = fixtures();
    let generated_at = m["generated_at"].as_u64().unwrap();
    let origin = m["issuer"].as_str().unwrap().to_string();
    let lim = |limit: u64, key: &str| LimitConfig {
        limit,
        window: "1h".into(),
        algorithm: Algorithm::SlidingWindow,
        key: Some(key.into()),
    };
    let mut c = Config::default();
    c.tiers.insert("anonymous".into(), lim(2, "ip"));
    c.tiers.insert("basic".into(), lim(3, "user"));
    c.tiers.insert("premium".into(), lim(10, "user"));
    let route = |path: &str, auth: Option<&str>, owner: Option<&str>| RouteConfig {
        path: path.into(),
        methods: Vec::new(),
        auth: auth.map(Into::into),
        roles: Vec::new(),
        permissions: Vec::new(),
        owner: owner.map(Into::into),
        bypass_roles: None,
        limits: Vec::new(),
        tier_limit: true,
    };
    c.routes = vec![
        route("/api/me", Some("required"), None),
        route("/api/users/{user_id}/**", None, Some("user_id")),
    ];
    let mut ba = IssuerConfig::new("better-auth");
    ba.issuer = Some(origin.clone());
    ba.audiences = vec![origin];
    ba.jwks_file = Some(dir.join("jwks.json"));
    let mut hs = IssuerConfig::new("fastapi");
    hs.hs256_secret_env = Some("HS".into());
    c.auth.issuers = vec![ba, hs];
    c.auth.role_tiers = vec![RoleTier {
        role: "premium".into(),
        tier: "premium".into(),
    }];
    c.auth.revocation.path = log.map(Path::to_path_buf);
    admin_config(&mut c, Admin::Secret);
    let hs_secret = std::fs::read_to_string(dir.join("hs256_secret.txt")).unwrap();
    let env = move |v: &str| match v {
        "HS" => Some(hs_secret.clone()),
        "ADMIN" => Some(SECRET.to_string()),
        _ => None,
    };
    let clock = Arc::new(ManualClock::new((generated_at + 60) * 1000));
    let gate = Arc::new(Gate::with_env(&c, clock, &env).unwrap());
    let options = RespOptions::from_config(&c).unwrap();
    RespDoor::new(gate, options)
}

/// Parses a RESP2/RESP3 reply into frames.
pub(super) fn parsed(reply: &str) -> Frame {
    let (f, used) = crate::resp::parse_frame(reply.as_bytes(), &Default::default())
        .unwrap()
        .unwrap();
    assert_eq!(used, reply.len(), "one reply: {reply:?}");
    f
}

/// A VERIFY reply as (status, reason, user, role, tier, remaining, retry_after).
pub(super) type Verdict = (
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

pub(super) fn verdict(reply: &str) -> Verdict {
    let Frame::Array(v) = parsed(reply) else {
        panic!("not an array: {reply:?}")
    };
    assert_eq!(v.len(), 7, "{reply:?}");
    let s = |f: &Frame| match f {
        Frame::Null => None,
        f => Some(String::from_utf8(f.as_bytes().unwrap().to_vec()).unwrap()),
    };
    (
        v[0].as_integer().unwrap(),
        s(&v[1]),
        s(&v[2]),
        s(&v[3]),
        s(&v[4]),
        v[5].as_integer().unwrap(),
        v[6].as_integer().unwrap(),
    )
}

pub(super) fn verify(c: &mut Conn, d: &RespDoor, token: &str, path: &str, ip: &str) -> String {
    run_args(
        c,
        d,
        &[
            b"VERIFY",
            token.as_bytes(),
            b"GET",
            path.as_bytes(),
            ip.as_bytes(),
        ],
    )
}

pub(super) fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}
