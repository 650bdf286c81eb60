//! The `[resp]` section: defaults, validation with file positions, and the one admin secret (which
//! `resp.admin_secret_env`, deprecated, still names).

use std::sync::Arc;

use tollgate::clock::ManualClock;
use tollgate::config::Config;
use tollgate::gate::{AdminAccess, AdminCaller, AdminCredential, AdminRefusal, Gate};
use tollgate::resp::RequestLimits;
use tollgate::server::resp::idle_poll::configured_window;
use tollgate::server::resp::RespOptions;

/// A valid base (one tier) followed by `resp`.
fn with_resp(resp: &str) -> String {
    format!(
        "[tiers.basic]\nlimit = 5\nwindow = \"1h\"\n\n[auth]\nanonymous_tier = \"basic\"\n\n{resp}"
    )
}

fn error_of(text: &str) -> String {
    Config::from_toml_str(text, "t.toml")
        .expect_err("refused")
        .to_string()
}

#[test]
fn off_by_default_and_127_0_0_1_7070_once_enabled() {
    let c = Config::embedded();
    assert!(
        !c.resp.enabled,
        "a sidecar opens only the ports it is asked for"
    );
    assert_eq!(c.resp.tcp, "127.0.0.1:7070");
    assert_eq!(c.resp.unix_socket, None);
    let on = Config::from_toml_str(&with_resp("[resp]\nenabled = true\n"), "t.toml").unwrap();
    assert_eq!(on.resp.tcp_addr(), Some("127.0.0.1:7070".parse().unwrap()));
    let limits = RespOptions::from_config(&on).unwrap().limits;
    // The configuration restates the parser's defaults (it may not depend on the parser).
    let d = RequestLimits::default();
    assert_eq!(
        (
            limits.max_bulk_bytes,
            limits.max_args,
            limits.max_inline_bytes,
            limits.max_command_bytes
        ),
        (
            d.max_bulk_bytes,
            d.max_args,
            d.max_inline_bytes,
            d.max_command_bytes
        )
    );
    assert_eq!(
        (
            limits.max_bulk_bytes,
            limits.max_args,
            limits.max_inline_bytes
        ),
        (65536, 64, 65536)
    );
    assert_eq!(on.resp.max_pending_reply_bytes, 1 << 20);
    assert_eq!(on.resp.idle_timeout().as_secs(), 300);
    assert_eq!(
        on.resp.threads, 1,
        "one event loop of its own, as Redis has"
    );
}

#[test]
fn threads_are_0_to_64() {
    for ok in ["0", "1", "64"] {
        let c = Config::from_toml_str(
            &with_resp(&format!(
                "[resp]
enabled = true
threads = {ok}
"
            )),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.resp.threads.to_string(), ok);
    }
    let e = error_of(&with_resp(
        "[resp]
enabled = true
threads = 65
",
    ));
    assert!(
        e.contains("t.toml:10:11: resp.threads: must be between 0 and 64, not 65"),
        "{e}"
    );
}

#[test]
fn idle_poll_is_0_to_1000_microseconds_and_follows_the_cpu_quota_when_unset() {
    use std::time::Duration;
    let set = |us: &str| {
        Config::from_toml_str(
            &with_resp(&format!("[resp]\nenabled = true\nidle_poll_us = {us}\n")),
            "t.toml",
        )
    };
    let off = set("0").unwrap();
    assert_eq!(configured_window(&off.resp, Some(64.0)), Duration::ZERO);
    let long = set("1000").unwrap();
    // Set explicitly, the quota does not matter.
    assert_eq!(
        configured_window(&long.resp, Some(0.5)),
        Duration::from_micros(1000)
    );
    let e = error_of(&with_resp("[resp]\nenabled = true\nidle_poll_us = 1001\n"));
    assert!(
        e.contains("t.toml:10:16: resp.idle_poll_us: must be between 0 and 1000, not 1001"),
        "{e}"
    );
    // Unset: 20 µs, unless the CPU quota is under one core per loop plus one.
    let unset = Config::from_toml_str(&with_resp("[resp]\nenabled = true\n"), "t.toml").unwrap();
    assert_eq!(
        configured_window(&unset.resp, None),
        Duration::from_micros(20)
    );
    assert_eq!(
        configured_window(&unset.resp, Some(4.0)),
        Duration::from_micros(20)
    );
    assert_eq!(configured_window(&unset.resp, Some(1.0)), Duration::ZERO);
}

#[test]
fn each_problem_is_reported_at_its_key() {
    let text = with_resp(
        "[resp]\nenabled = true\ntcp = \"localhost\"\nmax_bulk_bytes = 10\nmax_args = 2\nidle_timeout = \"0s\"\nunix_socket_mode = \"999\"\nadmin_secret_env = \"1BAD\"\n",
    );
    let e = error_of(&text);
    for needle in [
        "t.toml:10:7: resp.tcp: \"localhost\" is not a listen address",
        "t.toml:11:18: resp.max_bulk_bytes: must be between 8192 and 16777216, not 10",
        "t.toml:12:12: resp.max_args: must be between 8 and 4096, not 2",
        "t.toml:13:16: resp.idle_timeout:",
        "t.toml:14:20: resp.unix_socket_mode:",
        "t.toml:15:20: resp.admin_secret_env:",
    ] {
        assert!(e.contains(needle), "{needle:?} not in:\n{e}");
    }
}

#[test]
fn listeners_must_exist_and_not_collide_with_http() {
    let nowhere = error_of(&with_resp("[resp]\nenabled = true\ntcp = \"\"\n"));
    assert!(nowhere.contains("would listen nowhere"), "{nowhere}");
    // The same only-a-Unix-socket section is fine.
    Config::from_toml_str(
        &with_resp("[resp]\nenabled = true\ntcp = \"\"\nunix_socket = \"/tmp/t.sock\"\n"),
        "t.toml",
    )
    .unwrap();
    let clash = error_of(&format!(
        "[server]\nhttp = \"127.0.0.1:9000\"\n\n{}",
        with_resp("[resp]\nenabled = true\ntcp = \"127.0.0.1:9000\"\n")
    ));
    assert!(clash.contains("is also server.http"), "{clash}");
    let sock = error_of(&format!(
        "[server]\nunix_socket = \"/tmp/a.sock\"\n\n{}",
        with_resp("[resp]\nunix_socket = \"/tmp/a.sock\"\n")
    ));
    assert!(sock.contains("is also server.unix_socket"), "{sock}");
    // A disabled section is not held to its listener settings…
    Config::from_toml_str(&with_resp("[resp]\ntcp = \"later\"\n"), "t.toml").unwrap();
    // …but unknown keys are always refused.
    let unknown = error_of(&with_resp("[resp]\nport = 7070\n"));
    assert!(unknown.contains("unknown field `port`"), "{unknown}");
}

#[test]
fn one_admin_secret_for_every_door_and_resp_admin_secret_env_is_its_deprecated_alias() {
    const SECRET: &str = "admin-secret-0123456789abcdef-0123456789";
    let env = |k: &str| match k {
        "RESP_SECRET" | "ADMIN_SECRET" => Some(SECRET.to_string()),
        "SHORT" => Some("short".to_string()),
        _ => None,
    };
    let load = |resp: &str| Config::from_toml_str(&with_resp(resp), "t.toml").unwrap();
    let gate = |c: &Config| Gate::with_env(c, Arc::new(ManualClock::new(0)), &env);
    let admitted = |a: &AdminAccess, via_unix_socket: bool, secret: &str| {
        let h = format!("Bearer {secret}");
        a.admit(&AdminCaller {
            via_unix_socket,
            credential: AdminCredential::Authorization(h.as_bytes()),
        })
    };

    let none = gate(&load("[resp]\nenabled = true\n")).unwrap();
    assert!(matches!(*none.admin(), AdminAccess::Disabled));

    // The deprecated RESP setting enables the one admin access, with its secret, on every
    // door and every socket.
    let own = gate(&load(
        "[resp]\nenabled = true\nadmin_secret_env = \"RESP_SECRET\"\n",
    ))
    .unwrap();
    assert_eq!(own.admin().describe(), "secret");
    assert_eq!(admitted(&own.admin(), false, SECRET), Ok(()));
    assert_eq!(
        admitted(&own.admin(), false, "guess"),
        Err(AdminRefusal::SecretInvalid)
    );
    assert!(own.admin().prove(SECRET.as_bytes()).is_ok());

    let from_admin = gate(&load(
        "[auth.admin]\nenabled = true\nsecret_env = \"ADMIN_SECRET\"\nunix_socket_only = true\n\n[resp]\nenabled = true\n",
    ))
    .unwrap();
    assert_eq!(from_admin.admin().describe(), "secret,unix_socket_only");
    assert_eq!(
        admitted(&from_admin.admin(), false, SECRET),
        Err(AdminRefusal::UnixSocketOnly)
    );
    assert_eq!(admitted(&from_admin.admin(), true, SECRET), Ok(()));

    for (resp, why) in [
        ("[resp]\nadmin_secret_env = \"UNSET\"\n", "UNSET"),
        (
            "[resp]\nadmin_secret_env = \"SHORT\"\n",
            "at least 32 bytes",
        ),
    ] {
        let e = gate(&load(resp)).err().expect("refused");
        let e = format!("{e:#}");
        assert!(
            e.contains(why) && e.contains("not set") == (why == "UNSET"),
            "{e}"
        );
        assert!(!e.contains(SECRET), "{e}");
    }
}
