//! The RESP door driven by a real Redis client: `redis-cli` (Debian `redis-tools`, which
//! tests/run.sh installs). PING, CHECK until denied, errors, AUTH + REVOKE, pipelining with
//! `--pipe`, RESP3 with `-3`, INFO, over TCP and the Unix socket.

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
            ["1", "5", &remaining.to_string(), "7200", "-1"],
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
    assert_eq!(l[3..], ["1", "5", "4", "7200", "-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_then_revoke() {
    let s = start();
    let port = s.port().to_string();
    let revoke = ["-p", port.as_str(), "REVOKE", "JTI", "jti-1", "1893459600"];
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
    // command line): the admin gate opens. Applying the revocation waits for the gate's
    // auth core, and says so rather than pretending.
    let out = redis_cli(&revoke, &[("REDISCLI_AUTH", ADMIN_SECRET)], None).await;
    assert_eq!(lines(&out.stdout), ["ERR REVOKE is not available yet"]);
    // `AUTH default <secret>` (redis-cli --user default --pass …) works the same.
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
            "user-1",
            "1893459600",
        ],
        &[],
        None,
    )
    .await;
    assert_eq!(lines(&out.stdout), ["ERR REVOKE is not available yet"]);
    // VERIFY likewise waits for the auth core.
    assert_eq!(
        lines(&cli(&s, &["VERIFY", "t", "GET", "/api/x", "10.0.0.1"]).await),
        ["ERR VERIFY is not available yet"]
    );
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
    assert_eq!(lines(&out), ["1", "5", "4", "7200", "-1"]);
    let info = cli(&s, &["INFO", "stats"]).await;
    assert!(info.starts_with("# Stats"), "{info}");
    assert!(info.contains("checks_allowed:1"), "{info}");
}
