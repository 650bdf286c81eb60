//! The RESP door over real sockets (TCP on 127.0.0.1 and a Unix socket), driven by tollgate's
//! own client and by raw bytes: commands, pipelining, errors, framing errors and bounds;
//! VERIFY and REVOKE with the PyJWT-made tokens of tests/tokens/, revocations durable across
//! a restart, and a VERIFY that waits for a key rotation without holding up the replies
//! before it.

mod resp_support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use resp_support::auth_support as fixtures;
use resp_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tollgate::auth::{Revocation, RevocationStore};
use tollgate::client::{
    CheckRequest, Client, ClientError, ClientOptions, RevokeRequest, Target, VerifyReply,
};
use tollgate::resp::{parse_frame, Frame, FrameLimits, Protocol};

async fn client(target: Target) -> Client {
    Client::connect(target, ClientOptions::default())
        .await
        .expect("client connects")
}

/// Parses every whole reply in `bytes`.
fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some((f, used)) = parse_frame(&bytes[pos..], &FrameLimits::default()).unwrap() {
        out.push(f);
        pos += used;
    }
    assert_eq!(pos, bytes.len(), "trailing bytes: {:?}", &bytes[pos..]);
    out
}

#[tokio::test]
async fn ping_echo_and_check_over_tcp_and_unix_socket() {
    let s = start();
    for target in [Target::tcp(s.tcp()), Target::unix(s.unix())] {
        let c = client(target.clone()).await;
        c.ping().await.unwrap();
        assert_eq!(
            c.command(&["ECHO", "héllo"]).await.unwrap(),
            Frame::bulk("héllo")
        );
        let key = format!("user:{target}");
        let d = c.check(&key, "basic", 1).await.unwrap();
        assert!(d.allowed);
        assert_eq!((d.limit, d.remaining, d.retry_after_secs), (5, 4, None));
        // Until the quota is whole again: one window, when this hit leaves it.
        assert_eq!(
            d.reset_secs, 3600,
            "a hit leaves one window after it was admitted"
        );
    }
}

#[tokio::test]
async fn check_until_denied_then_allowed_again_after_the_window() {
    let s = start();
    let c = client(Target::tcp(s.tcp())).await;
    for expected_remaining in (0..5).rev() {
        let d = c.check("user:1", "basic", 1).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, expected_remaining);
    }
    let denied = c.check("user:1", "basic", 1).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!((denied.limit, denied.remaining), (5, 0));
    let retry = denied.retry_after_secs.expect("retry-after on a denial");
    // The sliding window weighs the previous window in, so a retry may lie beyond this
    // window's end, never beyond the next one's.
    assert!(retry > 0 && retry <= 3600, "{retry}");
    // Another key is not affected; peeking (HITS 0) counts nothing.
    assert!(c.check("user:2", "basic", 1).await.unwrap().allowed);
    let peek = c.check("user:2", "basic", 0).await.unwrap();
    assert_eq!(peek.remaining, 4);
    // Retry-after is honest: at that time the same request is admitted.
    s.clock.advance_millis(retry * 1000);
    assert!(c.check("user:1", "basic", 1).await.unwrap().allowed);
}

#[tokio::test]
async fn named_limits_and_the_deciding_limits_name() {
    let s = start();
    let c = client(Target::tcp(s.tcp())).await;
    let req = CheckRequest {
        key: "ip:10.0.0.1",
        tier: "anonymous",
        hits: 1,
        limit: Some("login"),
        with_name: true,
    };
    let first = c.check_request(&req).await.unwrap();
    assert!(first.allowed);
    assert_eq!(
        first.limit_name.as_deref(),
        Some("login"),
        "least remaining"
    );
    assert_eq!((first.limit, first.remaining), (2, 1));
    c.check_request(&req).await.unwrap();
    let denied = c.check_request(&req).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.limit_name.as_deref(), Some("login"));
    // The denial consumed nothing from the tier's limit: 98 of 100 left.
    let tier_only = c.check("ip:10.0.0.1", "anonymous", 0).await.unwrap();
    assert_eq!(tier_only.remaining, 98);
}

#[tokio::test]
async fn command_errors_leave_the_connection_usable() {
    let s = start();
    let opts = ClientOptions {
        pool_size: 1,
        ..ClientOptions::default()
    };
    let c = Client::connect(Target::tcp(s.tcp()), opts).await.unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["CHECK", "k"],
            "ERR wrong number of arguments for 'check' command",
        ),
        (&["CHECK", "k", "gold"], "ERR unknown tier \"gold\""),
        (&["CHECK", "", "basic"], "ERR the key is missing or empty"),
        (
            &["CHECK", "k", "basic", "HITS", "many"],
            "ERR HITS must be an integer of at least 0",
        ),
        (
            &["CHECK", "k", "basic", "HITS", "2000000"],
            "ERR hits must be between 0 and 1000000",
        ),
        (
            &["NOPE", "a"],
            "ERR unknown command 'NOPE', with args beginning with: 'a'",
        ),
    ];
    for (args, want) in cases {
        match c.command(args).await {
            Err(ClientError::Server(msg)) => assert_eq!(msg, want, "{args:?}"),
            other => panic!("{args:?}: {other:?}"),
        }
        c.ping().await.expect("still usable");
    }
    let long_key = "k".repeat(513);
    match c.check(&long_key, "basic", 1).await {
        Err(ClientError::Server(msg)) => assert!(msg.contains("512"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_hundred_pipelined_commands_in_one_write_answer_in_order() {
    let s = start();
    let mut wire = Vec::new();
    for i in 0..100 {
        let f = if i % 2 == 0 {
            Frame::command(["ECHO".to_string(), format!("m{i}")])
        } else {
            Frame::command(["CHECK", "user:pipe", "anonymous"])
        };
        wire.extend_from_slice(&f.to_bytes(Protocol::Resp2));
    }
    let mut sock = TcpStream::connect(s.tcp()).await.unwrap();
    send(&mut sock, &wire).await;
    sock.shutdown().await.unwrap(); // nothing more: the server answers, then sees EOF
    let replies = frames(&read_to_eof(&mut sock).await);
    assert_eq!(replies.len(), 100);
    let mut remaining = 100;
    for (i, r) in replies.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(r, &Frame::bulk(format!("m{i}")));
        } else {
            remaining -= 1;
            let Frame::Array(items) = r else {
                panic!("{r:?}")
            };
            assert_eq!(
                items[2],
                Frame::Integer(remaining),
                "reply {i} out of order"
            );
        }
    }
}

#[tokio::test]
async fn the_client_pipelines_batches_and_concurrent_callers() {
    let s = start();
    let c = client(Target::unix(s.unix())).await;
    let mut p = c.pipeline();
    for _ in 0..100 {
        p.check("user:batch", "anonymous", 1);
    }
    p.command(&["PING"]);
    let replies = p.execute().await.unwrap();
    assert_eq!(replies.len(), 101);
    for (i, r) in replies[..100].iter().enumerate() {
        let d = tollgate::client::CheckReply::from_frame(r).unwrap();
        assert_eq!(d.allowed, i < 100);
        assert_eq!(d.remaining, 99 - i as u64);
    }
    assert_eq!(replies[100], Frame::Simple("PONG".into()));

    // Many tasks sharing one client: each sees its own answers.
    let mut tasks = Vec::new();
    for t in 0..20 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let msg = format!("{t}-{i}");
                let r = c.command(&["ECHO", msg.as_str()]).await.unwrap();
                assert_eq!(r, Frame::bulk(&msg));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn inline_commands_work_like_arrays() {
    let s = start();
    let mut sock = TcpStream::connect(s.tcp()).await.unwrap();
    send(
        &mut sock,
        b"PING\r\nCHECK user:inline basic HITS 2\r\nECHO \"a b\"\r\nQUIT\r\n",
    )
    .await;
    let replies = frames(&read_to_eof(&mut sock).await);
    assert_eq!(replies[0], Frame::Simple("PONG".into()));
    let d = tollgate::client::CheckReply::from_frame(&replies[1]).unwrap();
    assert_eq!(d.remaining, 3);
    assert_eq!(replies[2], Frame::bulk("a b"));
    assert_eq!(
        replies[3],
        Frame::Simple("OK".into()),
        "QUIT answers, then closes"
    );
    assert_eq!(replies.len(), 4);
}

#[tokio::test]
async fn a_framing_error_is_answered_after_earlier_replies_then_the_connection_closes() {
    let s = start();
    for (input, error) in [
        (
            &b"PING\r\n*1\r\n+PING\r\n"[..],
            "ERR Protocol error: expected '$', got '+'",
        ),
        (
            b"PING\r\n*1\r\n$x\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"PING\r\n*abc\r\n",
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            b"PING\r\n*1\r\n$4\r\nPINGxx",
            "ERR Protocol error: a bulk string must be followed by CRLF",
        ),
    ] {
        let mut sock = TcpStream::connect(s.tcp()).await.unwrap();
        send(&mut sock, input).await;
        let replies = frames(&read_to_eof(&mut sock).await);
        assert_eq!(
            replies,
            vec![Frame::Simple("PONG".into()), Frame::Error(error.into())],
            "{input:?}"
        );
    }
}

#[tokio::test]
async fn bounds_on_bulk_args_inline_and_command_size() {
    let s = start_with(|o| {
        o.limits.max_bulk_bytes = 8192;
        o.limits.max_args = 8;
        o.limits.max_inline_bytes = 1024;
        o.limits.max_command_bytes = 16 * 1024;
    });
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Refused from the header alone: the 8193 bytes are never sent.
        (
            b"*2\r\n$4\r\nECHO\r\n$8193\r\n".to_vec(),
            "ERR Protocol error: bulk string of 8193 bytes (the limit is 8192)",
        ),
        (
            b"*9\r\n".to_vec(),
            "ERR Protocol error: too many arguments (the limit is 8)",
        ),
        // Length prefixes far over the limits: refused from the prefix, nothing allocated
        // for them, and the connection closed.
        (
            b"*2147483647\r\n".to_vec(),
            "ERR Protocol error: too many arguments (the limit is 8)",
        ),
        (
            b"*1\r\n$9999999999\r\n".to_vec(),
            "ERR Protocol error: bulk string of 9999999999 bytes (the limit is 8192)",
        ),
        (
            b"*1\r\n$99999999999999999999\r\n".to_vec(),
            "ERR Protocol error: invalid bulk length",
        ),
        (
            vec![b'a'; 1025],
            "ERR Protocol error: too big inline request (the limit is 1024 bytes)",
        ),
        (
            {
                // Two 8000-byte arguments fit in 16 KiB; the header of a third does not.
                let mut v = b"*4\r\n$4\r\nECHO\r\n".to_vec();
                for _ in 0..2 {
                    v.extend_from_slice(b"$8000\r\n");
                    v.extend_from_slice(&[b'x'; 8000]);
                    v.extend_from_slice(b"\r\n");
                }
                v.extend_from_slice(b"$8000\r\n");
                v
            },
            "ERR Protocol error: command larger than 16384 bytes",
        ),
    ];
    for (input, error) in cases {
        let mut sock = TcpStream::connect(s.tcp()).await.unwrap();
        send(&mut sock, &input).await;
        let replies = frames(&read_to_eof(&mut sock).await);
        assert_eq!(replies, vec![Frame::Error(error.into())]);
    }
    // Just inside the bounds works.
    let c = client(Target::tcp(s.tcp())).await;
    let big = "y".repeat(8192);
    assert_eq!(
        c.command(&["ECHO", big.as_str()]).await.unwrap(),
        Frame::bulk(&big)
    );
}

#[tokio::test]
async fn the_connection_cap_closes_connections_beyond_it() {
    let s = start_with(|o| o.max_connections = 2);
    let opts = ClientOptions {
        pool_size: 1,
        ..ClientOptions::default()
    };
    // Two connections in the middle of a command (half of it sent): busy, so neither may be
    // closed to make room (tests/connection_cap.rs has the idle case).
    let mut a = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(s.tcp()).await.unwrap();
        // One write: once PONG is back, the server has read the half command behind it.
        c.write_all(b"PING\r\n*1\r\n$4\r\nPI").await.unwrap();
        let mut pong = [0u8; 7];
        c.read_exact(&mut pong).await.unwrap();
        a.push(c);
    }
    assert_eq!(s.server.door().occupancy().idle(), 0);
    let b = Client::connect(Target::tcp(s.tcp()), opts.clone()).await;
    // A third is accepted and closed at once.
    let mut third = TcpStream::connect(s.tcp()).await.unwrap();
    assert!(read_to_eof(&mut third).await.is_empty());
    assert!(b.is_err() || b.unwrap().ping().await.is_err());
    drop(a);
    // Slots come back when connections close: wait (bounded) until a new one is served.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(c) = Client::connect(Target::tcp(s.tcp()), opts.clone()).await {
            if c.ping().await.is_ok() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "slots never came back");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let idle = Duration::from_millis(300);
    let s = start_with(|o| o.idle_timeout = idle);
    let mut sock = TcpStream::connect(s.tcp()).await.unwrap();
    send(&mut sock, b"PING\r\n").await;
    let started = Instant::now();
    let got = read_to_eof(&mut sock).await;
    assert_eq!(got, b"+PONG\r\n");
    assert!(started.elapsed() >= idle - Duration::from_millis(50));
    // A half-sent command is no activity either.
    let mut sock = TcpStream::connect(s.tcp()).await.unwrap();
    send(&mut sock, b"*2\r\n$4\r\nECHO\r\n").await;
    assert!(read_to_eof(&mut sock).await.is_empty());
}

#[tokio::test]
async fn unread_replies_stop_the_server_reading_until_the_client_catches_up() {
    // Each INFO reply is ~1 KiB for 6 bytes of request: a client that pipelines thousands
    // without reading would make the server buffer megabytes. With a 4 KiB bound the server
    // stops, the client's writes stall on TCP flow control, and once it reads, everything
    // arrives, in order.
    let s = start_with(|o| o.max_pending_reply_bytes = 4096);
    let n = 3000;
    let mut wire = Vec::new();
    for i in 0..n {
        wire.extend_from_slice(b"INFO clients\r\n");
        wire.extend_from_slice(format!("ECHO {i}\r\n").as_bytes());
    }
    let sock = TcpStream::connect(s.tcp()).await.unwrap();
    let (mut r, mut w) = sock.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&wire).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut all = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut all),
    )
    .await
    .expect("all replies within 20 s")
    .unwrap();
    writer.await.unwrap();
    let replies = frames(&all);
    assert_eq!(replies.len(), 2 * n);
    for i in 0..n {
        let info = replies[2 * i].as_bytes().unwrap();
        assert!(info.starts_with(b"# Clients"), "{i}");
        assert_eq!(replies[2 * i + 1], Frame::bulk(i.to_string()));
    }
}

#[tokio::test]
async fn resp3_after_hello_3_and_back() {
    let s = start();
    let opts = ClientOptions {
        protocol: Protocol::Resp3,
        pool_size: 1,
        ..ClientOptions::default()
    };
    let c = Client::connect(Target::tcp(s.tcp()), opts).await.unwrap();
    match c.command(&["HELLO"]).await.unwrap() {
        Frame::Map(pairs) => {
            assert!(pairs.contains(&(Frame::bulk("proto"), Frame::Integer(3))));
            assert!(pairs.contains(&(Frame::bulk("server"), Frame::bulk("tollgate"))));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.command(&["CLIENT", "GETNAME"]).await.unwrap(),
        Frame::Null
    );
    assert!(c.check("k", "basic", 1).await.unwrap().allowed);
    match c.command(&["HELLO", "2"]).await.unwrap() {
        Frame::Array(items) => assert_eq!(items.len(), 14),
        other => panic!("{other:?}"),
    }
    match c.command(&["HELLO", "4"]).await {
        Err(ClientError::Server(m)) => assert_eq!(m, "NOPROTO unsupported protocol version"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn auth_unlocks_revoke_and_wrong_passwords_are_refused() {
    let s = start();
    // Without AUTH.
    let anon = client(Target::tcp(s.tcp())).await;
    match anon.command(&["REVOKE", "JTI", "j1", "1893459600"]).await {
        Err(ClientError::Server(m)) => assert_eq!(m, "NOAUTH Authentication required."),
        other => panic!("{other:?}"),
    }
    // A wrong password fails at connect.
    let wrong = ClientOptions {
        password: Some("not-the-secret".into()),
        ..ClientOptions::default()
    };
    match Client::connect(Target::tcp(s.tcp()), wrong).await {
        Err(ClientError::Server(m)) => assert!(m.starts_with("WRONGPASS"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("connected with a wrong password"),
    }
    // The right one passes the admin gate.
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let admin = Client::connect(
            Target::unix(s.unix()),
            ClientOptions {
                password: Some(ADMIN_SECRET.into()),
                protocol,
                ..ClientOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            admin
                .command(&["REVOKE", "SUB", "user-1", "1893459600"])
                .await,
            Ok(Frame::simple("OK"))
        );
        match admin
            .command(&["REVOKE", "SUB", "user-1", "yesterday"])
            .await
        {
            Err(ClientError::Server(m)) => assert!(m.contains("before must be an integer"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    let info = anon.command(&["INFO", "stats"]).await.unwrap();
    let text = String::from_utf8(info.as_bytes().unwrap().to_vec()).unwrap();
    assert!(text.contains("auth_failures:1\r\n"), "{text}");
}

#[tokio::test]
async fn info_reports_counters_and_configuration() {
    let s = start();
    let c = client(Target::tcp(s.tcp())).await;
    for _ in 0..6 {
        c.check("user:info", "basic", 1).await.unwrap();
    }
    let _ = c.command(&["NOPE"]).await;
    let info = c.command(&["INFO"]).await.unwrap();
    let text = String::from_utf8(info.as_bytes().unwrap().to_vec()).unwrap();
    for needle in [
        "# Server\r\n",
        "tollgate_version:",
        &format!("listeners:tcp:{},unix:{}", s.tcp(), s.unix().display()),
        "connected_clients:2\r\n",
        "checks_allowed:5\r\n",
        "checks_denied:1\r\n",
        "command_errors:1\r\n",
        "tiers:anonymous=100/3600s,basic=5/3600s\r\n",
        "limits:login=2/300s\r\n",
        "admin:secret\r\n",
        "threads:1\r\n",
        // 20 on a machine without a CPU quota; 0 under a small one.
        "idle_poll_us:",
    ] {
        assert!(text.contains(needle), "{needle:?} not in\n{text}");
    }
    // The event loop waited for each command: it slept, and INFO and /metrics say so.
    let field = |name: &str| -> u64 {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} not in\n{text}"));
        line.trim().parse().unwrap()
    };
    let sleeps = field("event_loop_sleeps:");
    assert!(sleeps > 0, "{text}");
    field("event_loop_idle_polls:");
    // The gate's metrics count RESP decisions like HTTP ones.
    let metrics = String::from_utf8(s.gate.render_metrics()).unwrap();
    assert!(metrics.contains("tollgate_decisions_total{outcome=\"denied\",tier=\"basic\"} 1"));
    assert!(metrics.contains("listener=\"resp_tcp\""));
    let metric_sleeps: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_resp_event_loop_sleeps_total "))
        .expect("the event-loop sleeps metric")
        .parse()
        .unwrap();
    assert!(metric_sleeps >= sleeps, "{metric_sleeps} < {sleeps}");
    assert!(metrics.contains("tollgate_resp_event_loop_idle_polls_total "));
}

#[tokio::test]
async fn on_the_shared_runtime_or_several_event_loops_alike() {
    for threads in [0, 3] {
        let s = start_with(|o| o.threads = threads);
        let mut clients = Vec::new();
        for target in [Target::tcp(s.tcp()), Target::unix(s.unix())] {
            // Several connections, so that more than one event loop has some.
            for _ in 0..4 {
                clients.push(client(target.clone()).await);
            }
        }
        for (i, c) in clients.iter().enumerate() {
            c.ping().await.unwrap();
            let d = c.check("user:threads", "basic", 1).await.unwrap();
            assert_eq!(
                d.remaining,
                4u64.saturating_sub(i as u64),
                "threads = {threads}"
            );
        }
        let info = clients[0].command(&["INFO", "config"]).await.unwrap();
        let text = String::from_utf8(info.as_bytes().unwrap().to_vec()).unwrap();
        assert!(text.contains(&format!("threads:{threads}\r\n")), "{text}");
        let TestServer { server, dir, .. } = s;
        tokio::time::timeout(Duration::from_secs(10), server.stop())
            .await
            .expect("stops within 10 s");
        for c in &clients {
            assert!(c.ping().await.is_err(), "threads = {threads}: closed");
        }
        drop(dir);
    }
}

#[tokio::test]
async fn stop_closes_idle_connections_and_removes_the_socket_file() {
    let s = start();
    let path = s.unix();
    let c = client(Target::tcp(s.tcp())).await;
    c.ping().await.unwrap();
    let TestServer { server, dir, .. } = s;
    tokio::time::timeout(Duration::from_secs(10), server.stop())
        .await
        .expect("stops within 10 s");
    assert!(!path.exists());
    match c.command(&["PING"]).await {
        Err(ClientError::Connect { .. }) | Err(ClientError::ConnectionLost(_)) => {}
        other => panic!("{other:?}"),
    }
    drop(dir);
}

// ------------------------------------------------------------------------------------------
// VERIFY and REVOKE

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn admin(target: Target) -> Client {
    Client::connect(
        target,
        ClientOptions {
            password: Some(ADMIN_SECRET.into()),
            pool_size: 1,
            ..ClientOptions::default()
        },
    )
    .await
    .expect("admin client connects")
}

#[tokio::test]
async fn verify_over_tcp_and_the_unix_socket() {
    let s = start_auth();
    let user_1 = fixtures::token("eddsa_better_auth");
    let premium = fixtures::token("eddsa_premium_roles");
    let hs = fixtures::token("hs256");
    for (i, target) in [Target::tcp(s.tcp()), Target::unix(s.unix())]
        .into_iter()
        .enumerate()
    {
        let c = client(target).await;
        let client_ip = ip(&format!("198.51.100.{i}"));
        // basic is 5 an hour, per user: both doors count the same user.
        let v = c
            .verify(Some(&user_1), "GET", "/api/items?page=2", client_ip)
            .await
            .unwrap();
        assert_eq!(
            v,
            VerifyReply {
                status: 200,
                reason: None,
                user_id: Some("user_1".into()),
                role: Some("user".into()),
                tier: Some("basic".into()),
                remaining: Some(4 - i as u64),
                retry_after_secs: None,
            }
        );
        let v = c
            .verify(Some(&premium), "POST", "/api/me", client_ip)
            .await
            .unwrap();
        assert_eq!(v.tier.as_deref(), Some("premium"));
        assert_eq!(v.roles().collect::<Vec<_>>(), ["user", "premium"]);
        let v = c.verify(Some(&hs), "GET", "/x", client_ip).await.unwrap();
        assert_eq!(v.user_id.as_deref(), Some("user_hs"));
        // Anonymous: counted per client IP in the anonymous tier.
        let v = c.verify(None, "GET", "/x", client_ip).await.unwrap();
        assert_eq!(
            (v.status, v.tier.as_deref(), v.remaining),
            (200, Some("anonymous"), Some(99))
        );
        // Refusals are replies.
        let v = c.verify(None, "GET", "/api/me", client_ip).await.unwrap();
        assert_eq!(
            (v.status, v.reason.as_deref()),
            (401, Some("missing_token"))
        );
        let expired = fixtures::token("expired");
        let v = c
            .verify(Some(&expired), "GET", "/x", client_ip)
            .await
            .unwrap();
        assert_eq!((v.status, v.reason.as_deref()), (401, Some("expired")));
        assert_eq!((v.user_id, v.tier, v.remaining), (None, None, None));
        // A malformed client address is an error.
        match c
            .command(&["VERIFY", "", "GET", "/x", "198.51.100.300"])
            .await
        {
            Err(ClientError::Server(m)) => {
                assert_eq!(m, "ERR the client-ip must be an IPv4 or IPv6 address")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn verify_until_rate_limited_in_a_pipeline_mixed_with_checks() {
    let s = start_auth();
    let c = client(Target::tcp(s.tcp())).await;
    let t = fixtures::token("eddsa_better_auth");
    let mut p = c.pipeline();
    for _ in 0..6 {
        p.verify(Some(&t), "GET", "/api/items", ip("10.0.0.1"));
        p.check("user:other", "basic", 1);
    }
    let replies = p.execute().await.unwrap();
    assert_eq!(replies.len(), 12);
    for (n, pair) in replies.chunks(2).enumerate() {
        let v = VerifyReply::from_frame(&pair[0]).unwrap();
        let ch = tollgate::client::CheckReply::from_frame(&pair[1]).unwrap();
        if n < 5 {
            assert_eq!((v.status, v.remaining), (200, Some(4 - n as u64)), "{n}");
        } else {
            assert_eq!((v.status, v.reason.as_deref()), (403, Some("rate_limited")));
            assert_eq!(
                (v.user_id.as_deref(), v.remaining),
                (Some("user_1"), Some(0))
            );
            assert!(v.retry_after_secs.unwrap() > 0);
        }
        // CHECK's counter is another key: its replies interleave in order.
        assert_eq!(ch.remaining, 4u64.saturating_sub(n as u64), "{n}");
    }
}

#[tokio::test]
async fn the_client_ip_of_an_untrusted_peer_is_not_believed() {
    // Only a network this test is not in is trusted: 127.0.0.1 is an ordinary client, and
    // so is the Unix socket.
    let s = start_auth_with(fixtures::static_issuer("jwks.json"), |c| {
        c.tiers.insert("anonymous".into(), limit(2, "1h"));
        c.tiers.get_mut("anonymous").unwrap().key = Some("ip".into());
        c.policy.trusted_proxies = vec!["192.0.2.0/24".into()];
        c.policy.trust_unix_socket = false;
    });
    for target in [Target::tcp(s.tcp()), Target::unix(s.unix())] {
        let c = client(target).await;
        // Two different claimed addresses, one counter: the peer's.
        let a = c.verify(None, "GET", "/", ip("10.0.0.1")).await.unwrap();
        let b = c.verify(None, "GET", "/", ip("10.0.0.2")).await.unwrap();
        let d = c.verify(None, "GET", "/", ip("10.0.0.3")).await.unwrap();
        assert_eq!(
            (a.remaining, b.remaining, d.reason.as_deref()),
            (Some(1), Some(0), Some("rate_limited"))
        );
    }
}

#[tokio::test]
async fn revoke_is_admin_only_durable_and_refuses_the_token_at_once() {
    let s = start_auth();
    let log = s.dir.path().join("revocations.log");
    let with_jti = fixtures::token("eddsa_with_jti");
    let user_1 = fixtures::token("eddsa_better_auth");
    let c = client(Target::tcp(s.tcp())).await;
    let at = ip("10.0.0.1");
    // Verified once, so both tokens sit in the verified-token cache.
    assert!(c
        .verify(Some(&with_jti), "GET", "/x", at)
        .await
        .unwrap()
        .allowed());
    assert!(c
        .verify(Some(&user_1), "GET", "/x", at)
        .await
        .unwrap()
        .allowed());

    // Not without the admin secret.
    assert_eq!(
        c.revoke_jti("jti-0001", 4102444800).await,
        Err(ClientError::Server(
            "NOAUTH Authentication required.".into()
        ))
    );
    let iat = fixtures::manifest().generated_at as i64;
    for target in [Target::tcp(s.tcp()), Target::unix(s.unix())] {
        let a = admin(target).await;
        a.revoke_jti("jti-0001", 4102444800).await.unwrap();
        a.revoke(&RevokeRequest::Subject {
            sub: "user_1".into(),
            before: iat + 1,
        })
        .await
        .unwrap();
        match a.revoke_sub("user_1", 1 << 50).await {
            Err(ClientError::Server(m)) => assert_eq!(
                m,
                "ERR before is out of range: a time in seconds since the epoch"
            ),
            other => panic!("{other:?}"),
        }
    }
    // In the log once +OK came back (the store fsyncs before it answers).
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("jti-0001") && text.contains("user_1"),
        "{text}"
    );
    // Cached or not, both tokens are refused now.
    for t in [&with_jti, &user_1] {
        let v = c.verify(Some(t), "GET", "/x", at).await.unwrap();
        assert_eq!(
            (v.status, v.reason.as_deref(), v.user_id),
            (401, Some("revoked"), None)
        );
    }
    // Another user's token still passes.
    let hs = fixtures::token("hs256");
    assert!(c
        .verify(Some(&hs), "GET", "/x", at)
        .await
        .unwrap()
        .allowed());

    // After a restart the log brings them back.
    let TestServer {
        server, clock, dir, ..
    } = s;
    server.stop().await;
    let reopened = RevocationStore::open(&log, clock).unwrap();
    let list = reopened.list();
    assert!(list.contains(&Revocation::Jti {
        jti: "jti-0001".into(),
        exp: 4102444800
    }));
    assert!(list
        .iter()
        .any(|r| matches!(r, Revocation::Subject { sub, before, .. } if sub == "user_1" && *before == iat + 1)));
    drop(dir);
}

/// A key-set endpoint that answers each request only once the test allows it.
struct GatedJwks {
    body: parking_lot::Mutex<Vec<u8>>,
    release: Notify,
    hold: std::sync::atomic::AtomicBool,
    requests: AtomicUsize,
    arrived: Notify,
}

async fn serve_jwks(file: &str) -> (std::net::SocketAddr, Arc<GatedJwks>) {
    let st = Arc::new(GatedJwks {
        body: parking_lot::Mutex::new(std::fs::read(fixtures::dir().join(file)).unwrap()),
        release: Notify::new(),
        hold: std::sync::atomic::AtomicBool::new(false),
        requests: AtomicUsize::new(0),
        arrived: Notify::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st2 = st.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let st = st2.clone();
            tokio::spawn(async move {
                // Read the request head (a GET has no body).
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let released = st.release.notified();
                st.requests.fetch_add(1, Ordering::SeqCst);
                st.arrived.notify_waiters();
                if st.hold.load(Ordering::SeqCst) {
                    released.await;
                }
                let body = st.body.lock().clone();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, st)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_waiting_for_a_key_rotation_keeps_order_and_holds_nothing_before_it() {
    let (addr, jwks) = serve_jwks("jwks.json").await;
    let mut issuer = tollgate::config::auth::IssuerConfig::new("better-auth");
    issuer.jwks_url = Some(format!("http://{addr}/api/auth/jwks"));
    issuer.unknown_kid_cooldown = "0s".into();
    let s = start_auth_with(issuer, |_| {});
    assert!(
        s.gate
            .authenticator()
            .wait_ready(Duration::from_secs(10))
            .await,
        "the first key-set fetch"
    );
    assert_eq!(jwks.requests.load(Ordering::SeqCst), 1);

    // The issuer rotates its key; its endpoint answers only when the test says so.
    *jwks.body.lock() = std::fs::read(fixtures::dir().join("jwks_rotated.json")).unwrap();
    jwks.hold.store(true, Ordering::SeqCst);
    let rotated = fixtures::token("eddsa_rotated_key");
    let mut conn = TcpStream::connect(s.tcp()).await.unwrap();
    let mut wire = Vec::new();
    for cmd in [
        vec!["PING", "before"],
        vec!["VERIFY", &rotated, "GET", "/x", "10.0.0.1"],
        vec!["PING", "after"],
    ] {
        wire.extend_from_slice(&Frame::command(cmd).to_bytes(Protocol::Resp2));
    }
    let arrived = jwks.arrived.notified();
    tokio::pin!(arrived);
    arrived.as_mut().enable();
    send(&mut conn, &wire).await;
    // The reply before the VERIFY arrives while the VERIFY waits for the key set.
    assert_eq!(read_exactly(&mut conn, 12).await, b"$6\r\nbefore\r\n");
    tokio::time::timeout(Duration::from_secs(10), arrived)
        .await
        .expect("the unknown kid makes tollgate refetch the key set");
    jwks.release.notify_waiters();
    // Then the VERIFY, decided on the new key set, and what came after it.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut replies = Vec::new();
    while replies.len() < 2 {
        assert!(Instant::now() < deadline, "replies within 10 s: {got:?}");
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&buf[..n]);
        replies.clear();
        let mut pos = 0;
        while let Some((f, used)) = parse_frame(&got[pos..], &FrameLimits::default()).unwrap() {
            replies.push(f);
            pos += used;
        }
    }
    let v = VerifyReply::from_frame(&replies[0]).unwrap();
    assert_eq!(
        (v.status, v.user_id.as_deref()),
        (200, Some("user_rotated"))
    );
    assert_eq!(replies[1], Frame::bulk("after"));
    assert_eq!(jwks.requests.load(Ordering::SeqCst), 2);
}
