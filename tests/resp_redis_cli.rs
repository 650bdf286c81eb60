//! The RESP door driven by a real Redis client: `redis-cli` (Debian `redis-tools`, which
//! tests/run.sh installs). PING, CHECK until denied, errors, VERIFY with the PyJWT-made tokens
//! of tests/tokens/ (valid, anonymous, refused), AUTH + REVOKE then VERIFY refused,
//! pipelining with `--pipe`, RESP3 with `-3`, INFO, over TCP and the Unix socket.

mod resp_support;

use std::process::Stdio;
use std::time::Duration;

use resp_support::*;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

struct Output {
    stdout: String,
    stderr: String,
}

/// Runs `redis-cli ARGS` (bounded: 20 s), feeding `stdin` when given.
async fn redis_cli(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new("redis-cli");
    cmd.args(args)
        .env_remove("REDISCLI_AUTH")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run redis-cli ({e}): install redis-tools (tests/run.sh does)")
    });
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("redis-cli finishes within 20 s")
        .unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    Output {
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `redis-cli -p PORT ARGS…`, stdout only.
async fn cli(s: &TestServer, args: &[&str]) -> String {
    let port = s.port().to_string();
    let mut all = vec!["-p", port.as_str()];
    all.extend_from_slice(args);
    redis_cli(&all, &[], None).await.stdout
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| !l.is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_over_tcp_and_the_unix_socket() {
    let s = start();
    assert_eq!(cli(&s, &["PING"]).await, "PONG\n");
    assert_eq!(cli(&s, &["PING", "hello there"]).await, "hello there\n");
    let sock = s.unix();
    let out = redis_cli(&["-s", sock.to_str().unwrap(), "PING"], &[], None).await;
    assert_eq!(out.stdout, "PONG\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_until_denied() {
    let s = start();
    // basic: 5 per hour. redis-cli prints an array reply one element per line.
    for remaining in (0..5).rev() {
        let out = cli(&s, &["CHECK", "user:cli", "basic"]).await;
        assert_eq!(
            lines(&out),
            ["1", "5", &remaining.to_string(), "3600", "-1"],
            "{out}"
        );
    }
    let out = cli(&s, &["CHECK", "user:cli", "basic"]).await;
    let l = lines(&out);
    assert_eq!(l[..3], ["0", "5", "0"], "{out}");
    let retry: u64 = l[4].parse().unwrap();
    assert!(retry > 0, "{out}");
    // With the limit's name.
    let out = cli(&s, &["CHECK", "user:cli", "basic", "HITS", "0", "WITHNAME"]).await;
    assert_eq!(lines(&out).last(), Some(&"basic"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_shown_and_the_connection_stays_usable() {
    let s = start();
    assert_eq!(
        lines(&cli(&s, &["CHECK", "k"]).await),
        ["ERR wrong number of arguments for 'check' command"]
    );
    assert_eq!(
        lines(&cli(&s, &["CHECK", "k", "gold"]).await),
        ["ERR unknown tier \"gold\""]
    );
    // Several commands on one connection (redis-cli reads them from stdin): an error in
    // the middle does not end it.
    let port = s.port().to_string();
    let out = redis_cli(
        &["-p", &port],
        &[],
        Some(b"CHECK k\nFLUSHALL\nPING\nCHECK k basic\n"),
    )
    .await;
    let l = lines(&out.stdout);
    assert_eq!(l[0], "ERR wrong number of arguments for 'check' command");
    assert_eq!(
        l[1],
        "ERR unknown command 'FLUSHALL', with args beginning with:"
    );
    assert_eq!(l[2], "PONG");
    assert_eq!(l[3..], ["1", "5", "4", "3600", "-1"]);
}

/// Every line of redis-cli's output, empty ones included: a null inside an array reply
/// prints as an empty line when stdout is not a terminal.
fn reply_lines(out: &str) -> Vec<&str> {
    out.strip_suffix('\n').unwrap_or(out).split('\n').collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_valid_anonymous_refused_and_errors() {
    let s = start_auth();
    let token = auth_support::token("eddsa_better_auth");
    // [status, reason, user id, role, tier, remaining, retry-after]; the null reason is
    // the empty line.
    let out = cli(&s, &["VERIFY", &token, "GET", "/api/items", "203.0.113.7"]).await;
    assert_eq!(
        reply_lines(&out),
        ["200", "", "user_1", "user", "basic", "4", "-1"],
        "{out}"
    );
    // The whole Authorization value works too.
    let bearer = format!("Bearer {token}");
    let out = cli(&s, &["VERIFY", &bearer, "GET", "/api/me", "203.0.113.7"]).await;
    assert_eq!(reply_lines(&out)[..3], ["200", "", "user_1"], "{out}");
    // No token: an empty argument.
    let out = cli(&s, &["VERIFY", "", "GET", "/api/items", "203.0.113.7"]).await;
    assert_eq!(
        reply_lines(&out),
        ["200", "", "", "", "anonymous", "99", "-1"],
        "{out}"
    );
    let out = cli(&s, &["VERIFY", "", "GET", "/api/me", "203.0.113.7"]).await;
    assert_eq!(
        reply_lines(&out),
        ["401", "missing_token", "", "", "", "-1", "-1"],
        "{out}"
    );
    let expired = auth_support::token("expired");
    let out = cli(&s, &["VERIFY", &expired, "GET", "/x", "203.0.113.7"]).await;
    assert_eq!(reply_lines(&out)[..2], ["401", "expired"], "{out}");
    // Errors.
    assert_eq!(
        lines(&cli(&s, &["VERIFY", &token, "GET", "/x", "not-an-ip"]).await),
        ["ERR the client-ip must be an IPv4 or IPv6 address"]
    );
    assert_eq!(
        lines(&cli(&s, &["VERIFY", &token, "GET", "/x"]).await),
        ["ERR wrong number of arguments for 'verify' command"]
    );
    // RESP3 (`-3`): the same reply.
    let out = cli(&s, &["-3", "VERIFY", &token, "GET", "/x", "::1"]).await;
    assert_eq!(reply_lines(&out)[..3], ["200", "", "user_1"], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_revoke_then_verify_refuses() {
    let s = start_auth();
    let port = s.port().to_string();
    let with_jti = auth_support::token("eddsa_with_jti");
    let verify = |t: &str| {
        vec![
            "VERIFY".to_string(),
            t.to_string(),
            "GET".into(),
            "/api/items".into(),
            "10.0.0.1".into(),
        ]
    };
    let run = |args: Vec<String>| {
        let s = &s;
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            cli(s, &a).await
        }
    };
    let out = run(verify(&with_jti)).await;
    assert_eq!(reply_lines(&out)[..3], ["200", "", "user_jti"], "{out}");

    let revoke = [
        "-p",
        port.as_str(),
        "REVOKE",
        "JTI",
        "jti-0001",
        "4102444800",
    ];
    // No password: refused.
    let out = redis_cli(&revoke, &[], None).await;
    assert_eq!(lines(&out.stdout), ["NOAUTH Authentication required."]);
    // A wrong password: redis-cli reports the failed AUTH, and the command is refused.
    let out = redis_cli(&revoke, &[("REDISCLI_AUTH", "not-the-secret")], None).await;
    assert!(
        out.stderr.contains("AUTH failed: WRONGPASS"),
        "{}",
        out.stderr
    );
    assert_eq!(lines(&out.stdout), ["NOAUTH Authentication required."]);
    // The secret (as `redis-cli -a` sends it, through REDISCLI_AUTH to keep it off the
    // command line): recorded, durably, before OK.
    let out = redis_cli(&revoke, &[("REDISCLI_AUTH", ADMIN_SECRET)], None).await;
    assert_eq!(lines(&out.stdout), ["OK"]);
    let log = std::fs::read_to_string(s.dir.path().join("revocations.log")).unwrap();
    assert!(log.contains("jti-0001"), "{log}");
    // The token (verified and cached a moment ago) is refused now.
    let out = run(verify(&with_jti)).await;
    assert_eq!(
        reply_lines(&out),
        ["401", "revoked", "", "", "", "-1", "-1"],
        "{out}"
    );

    // `AUTH default <secret>` (redis-cli --user default --pass …) over the Unix socket:
    // every token of user_1 issued before now.
    let user_1 = auth_support::token("eddsa_better_auth");
    let out = run(verify(&user_1)).await;
    assert_eq!(reply_lines(&out)[0], "200", "{out}");
    let now = (auth_support::manifest().generated_at + 60).to_string();
    let sock = s.unix();
    let out = redis_cli(
        &[
            "-s",
            sock.to_str().unwrap(),
            "--user",
            "default",
            "--pass",
            ADMIN_SECRET,
            "--no-auth-warning",
            "REVOKE",
            "SUB",
            "user_1",
            &now,
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(lines(&out.stdout), ["OK"]);
    let out = run(verify(&user_1)).await;
    assert_eq!(reply_lines(&out)[..2], ["401", "revoked"], "{out}");
    // A bad value is an error, and nothing is recorded.
    let out = redis_cli(
        &["-p", &port, "REVOKE", "SUB", "user_2", "yesterday"],
        &[("REDISCLI_AUTH", ADMIN_SECRET)],
        None,
    )
    .await;
    assert_eq!(
        lines(&out.stdout),
        ["ERR before must be an integer (seconds since the epoch)"]
    );
    assert_eq!(s.gate.authenticator().revocations().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_with_redis_cli_pipe() {
    let s = start();
    let mut wire = Vec::new();
    for _ in 0..100 {
        wire.extend_from_slice(b"*3\r\n$5\r\nCHECK\r\n$7\r\nip:pipe\r\n$9\r\nanonymous\r\n");
    }
    let port = s.port().to_string();
    let out = redis_cli(&["-p", &port, "--pipe"], &[], Some(&wire)).await;
    assert!(
        out.stdout.contains("errors: 0, replies: 100"),
        "{}",
        out.stdout
    );
    // All 100 were counted: the anonymous quota (100/h) is used up.
    let after = cli(&s, &["CHECK", "ip:pipe", "anonymous"]).await;
    assert_eq!(lines(&after)[..3], ["0", "100", "0"], "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_and_info() {
    let s = start();
    let out = cli(&s, &["-3", "HELLO"]).await;
    assert!(out.contains("server tollgate"), "{out}");
    assert!(out.contains("proto 3"), "{out}");
    let out = cli(&s, &["-3", "CHECK", "k", "basic"]).await;
    assert_eq!(lines(&out), ["1", "5", "4", "3600", "-1"]);
    let info = cli(&s, &["INFO", "stats"]).await;
    assert!(info.starts_with("# Stats"), "{info}");
    assert!(info.contains("checks_allowed:1"), "{info}");
}
