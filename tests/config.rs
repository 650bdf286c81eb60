//! Configuration loading through the public API (`gate::compile`, what `check-config`,
//! `serve` and SIGHUP use): the embedded default holds the seeds' tiers, limits and routes;
//! every kind of mistake, found by the configuration's own validation or by the policy's,
//! is reported at the right line and column; the typed accessors read what the file says.

use std::io::Write as _;
use std::time::Duration;

use tollgate::config::{
    parse_duration, Algorithm, Config, ConfigError, ErrorKind, LogFormat, EMBEDDED_DEFAULT,
    EMBEDDED_ORIGIN,
};
use tollgate::gate::compile::{self, Compiled};
use tollgate::limiter::{self, LimitSpec};
use tollgate::policy::key::KeyPart;

/// A valid configuration to which each test adds one mistake.
const BASE: &str = r#"
[server]
http = "127.0.0.1:9090"

[tiers.basic]
limit = 500
window = "1h"

[tiers.anonymous]
limit = 100
window = "60m"

[limits.auth]
limit = 5
window = "5m"
algorithm = "sliding_log"
key = "ip"

[[routes]]
path = "/api/auth/**"
limits = ["auth"]
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    compile::from_toml_str(text, "t.toml").map(|c| std::sync::Arc::unwrap_or_clone(c.config))
}

/// The embedded default, compiled.
fn embedded() -> Compiled {
    compile::compile(&Config::embedded()).unwrap()
}

/// The compiled spec named `name`.
fn spec(specs: &[LimitSpec], name: &str) -> Option<LimitSpec> {
    specs.iter().find(|s| &*s.name == name).cloned()
}

fn fails(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Line and column (1-based, in characters) of the `nth` occurrence of `needle`, computed
/// independently of the code under test.
fn pos_nth(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} not in text"))
        .0;
    let before = &text[..offset];
    let line = before.chars().filter(|c| *c == '\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() + 1;
    (line, column)
}

fn pos(text: &str, needle: &str) -> (usize, usize) {
    pos_nth(text, needle, 0)
}

/// Asserts the first issue is at `needle`, about `path`, and says `says`.
#[track_caller]
fn assert_issue(text: &str, needle: &str, path: &str, says: &str) -> ConfigError {
    let e = fails(text);
    let first = e.first();
    let p = first.position.expect("a position");
    assert_eq!(
        (p.line, p.column),
        pos(text, needle),
        "position of {needle:?} in: {e}"
    );
    assert_eq!(first.path.to_string(), path, "{e}");
    assert!(first.message.contains(says), "{e}");
    let (line, column) = pos(text, needle);
    assert!(
        e.to_string()
            .starts_with(&format!("t.toml:{line}:{column}: ")),
        "{e}"
    );
    e
}

// ------------------------------------------------------------------------------------------
// The embedded default

#[test]
fn embedded_default_has_the_seeds_tiers() {
    let compiled = embedded();
    let c = &compiled.config;
    let tier = |name: &str| {
        let t = &c.tiers[name];
        (
            t.limit,
            t.window(),
            t.algorithm,
            compiled.policy.key_template(name).unwrap().to_string(),
        )
    };
    let hour = Duration::from_secs(3600);
    assert_eq!(
        tier("anonymous"),
        (100, hour, Algorithm::SlidingWindow, "ip".into())
    );
    assert_eq!(
        tier("basic"),
        (500, hour, Algorithm::SlidingWindow, "user".into())
    );
    assert_eq!(
        tier("premium"),
        (2000, hour, Algorithm::SlidingWindow, "user".into())
    );
    assert_eq!(
        tier("api_key"),
        (10_000, hour, Algorithm::SlidingWindow, "user".into())
    );
    assert_eq!(c.tiers.len(), 4);
    assert_eq!(
        spec(&compiled.tiers, "premium"),
        Some(LimitSpec {
            name: "premium".into(),
            limit: 2000,
            window: hour,
            algorithm: limiter::Algorithm::SlidingWindow,
        })
    );
    assert_eq!(spec(&compiled.tiers, "gold"), None);
}

#[test]
fn embedded_default_route_limits() {
    let compiled = embedded();
    let c = &compiled.config;
    let auth = spec(&compiled.limits, "auth").unwrap();
    assert_eq!(
        (auth.limit, auth.window, auth.algorithm),
        (5, Duration::from_secs(300), limiter::Algorithm::SlidingLog)
    );
    let key = |name: &str| compiled.policy.key_template(name).unwrap().parts().to_vec();
    assert_eq!(key("auth"), [KeyPart::Ip]);
    let upload = spec(&compiled.limits, "upload").unwrap();
    assert_eq!(
        (upload.limit, upload.window),
        (10, Duration::from_secs(3600))
    );
    assert_eq!(key("upload"), [KeyPart::User]);

    let route = |path: &str| {
        c.routes
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("no route {path}"))
    };
    // Better Auth's endpoints: no token looked at; the login limit on the credential
    // endpoints only, not on get-session or token (called on every page).
    assert!(route("/api/auth/**").limits.is_empty());
    assert_eq!(route("/api/auth/**").auth.as_deref(), Some("none"));
    // ...and no quota at all: get-session is called on every navigation.
    assert!(!route("/api/auth/**").tier_limit);
    for credential in [
        "/api/auth/sign-in/**",
        "/api/auth/sign-up/**",
        "/api/auth/forget-password**",
        "/api/auth/reset-password**",
        "/api/auth/request-password-reset**",
        "/api/auth/send-verification-email**",
        "/api/auth/verify-email**",
    ] {
        assert_eq!(route(credential).limits, ["auth"], "{credential}");
        assert_eq!(
            route(credential).auth.as_deref(),
            Some("none"),
            "{credential}"
        );
    }
    assert_eq!(route("/api/upload**").limits, ["upload"]);
    assert_eq!(route("/api/upload**").auth.as_deref(), Some("required"));
    assert_eq!(c.routes.len(), 9);
}

#[test]
fn embedded_default_serves_loopback_and_shows_every_default() {
    let c = Config::embedded();
    assert_eq!(c.server.http_addr().to_string(), "127.0.0.1:8080");
    // The file doubles as documentation of the defaults: the values it spells out must be
    // the ones a file that leaves them out gets.
    let minimal = parse(
        "[tiers.basic]\nlimit = 1\nwindow = \"1s\"\n[tiers.anonymous]\nlimit = 1\nwindow = \"1s\"\n",
    )
    .unwrap();
    assert_eq!(format!("{:?}", c.server), format!("{:?}", minimal.server));
    assert_eq!(format!("{:?}", c.log), format!("{:?}", minimal.log));
    assert_eq!(format!("{:?}", c.limiter), format!("{:?}", minimal.limiter));
    assert_eq!(c.check, minimal.check);
    assert_eq!(c.server.header_read_timeout(), Duration::from_secs(5));
    assert_eq!(c.server.idle_timeout(), Duration::from_secs(60));
    assert_eq!(c.server.shutdown_grace(), Duration::from_secs(10));
    assert_eq!(c.log.format(), LogFormat::Text);
    // Commented throughout, so it can be handed out as an example.
    let comments = EMBEDDED_DEFAULT
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .count();
    assert!(comments > 60, "{comments} comment lines");
    assert_eq!(
        Config::from_toml_str(EMBEDDED_DEFAULT, EMBEDDED_ORIGIN)
            .unwrap()
            .summary(),
        "4 tiers (anonymous, api_key, basic, premium), 2 limits (auth, upload), 9 routes, \
         0 issuers; HTTP on 127.0.0.1:8080"
    );
}

#[test]
fn the_metrics_listener_is_checked() {
    let with = |server: &str| BASE.replace("[server]\n", &format!("[server]\n{server}\n"));
    assert_issue(
        &with("metrics = \"9090\""),
        "\"9090\"",
        "server.metrics",
        "not a listen address",
    );
    assert_issue(
        &with("metrics = \"127.0.0.1:9090\""),
        "\"127.0.0.1:9090\"\nhttp",
        "server.metrics",
        "port of its own",
    );
    assert_issue(
        &with("metrics_on_http = false"),
        "false",
        "server.metrics_on_http",
        "served nowhere",
    );
    let c = parse(&with("metrics = \"0.0.0.0:9091\"\nmetrics_on_http = false")).unwrap();
    assert_eq!(c.server.metrics_addr().unwrap().port(), 9091);
}

#[test]
fn the_docs_reproduce_the_embedded_default_verbatim() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let copy = format!("```toml\n{EMBEDDED_DEFAULT}```\n");
    assert!(
        doc.contains(&copy),
        "docs/configuration.md must end with src/config/default.toml in a ```toml block"
    );
}

// ------------------------------------------------------------------------------------------
// Syntax and schema errors (found by the TOML parser and serde)

#[test]
fn syntax_error_points_at_the_line() {
    let text = format!("{BASE}\n[tiers.premium]\nlimit = 2000\nwindow = \"1h\n");
    let e = fails(&text);
    assert_eq!(e.kind(), ErrorKind::Syntax);
    assert_eq!(e.line(), Some(pos(&text, "window = \"1h\n").0));
    assert!(e.to_string().starts_with("t.toml:"), "{e}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");
}

#[test]
fn duplicate_table_points_at_the_second_header() {
    let text = format!("{BASE}\n[tiers.basic]\nlimit = 1\n");
    let e = fails(&text);
    assert_eq!(e.kind(), ErrorKind::Syntax);
    let (line, _) = pos_nth(&text, "[tiers.basic]", 1);
    assert_eq!(e.line(), Some(line), "{e}");
    assert!(e.to_string().contains("duplicate key"), "{e}");
}

#[test]
fn unknown_key_points_at_the_key() {
    let text = BASE.replace("window = \"1h\"", "window = \"1h\"\nwindw = \"2h\"");
    let e = assert_issue(&text, "windw", "tiers.basic.windw", "unknown field `windw`");
    assert_eq!(e.kind(), ErrorKind::Schema);

    let text = format!("{BASE}\n[sever]\nhttp = \"x\"\n");
    assert_issue(&text, "sever", "sever", "unknown field `sever`");

    let text = BASE.replace("[server]\n", "[server]\nport = 80\n");
    assert_issue(&text, "port", "server.port", "unknown field `port`");
}

#[test]
fn wrong_type_points_at_the_value() {
    let text = BASE.replace("limit = 500", "limit = \"500\"");
    let e = assert_issue(&text, "\"500\"", "tiers.basic.limit", "expected u64");
    assert_eq!(e.kind(), ErrorKind::Schema);
    let text = BASE.replace("limit = 500", "limit = -1");
    assert_issue(&text, "-1", "tiers.basic.limit", "expected u64");
}

#[test]
fn unknown_algorithm_points_at_the_value() {
    let text = BASE.replace("\"sliding_log\"", "\"fixed_window\"");
    assert_issue(
        &text,
        "\"fixed_window\"",
        "limits.auth.algorithm",
        "unknown variant `fixed_window`, expected `sliding_window` or `sliding_log`",
    );
}

#[test]
fn missing_field_points_at_the_table() {
    let text = BASE.replace("window = \"1h\"\n", "");
    assert_issue(
        &text,
        "[tiers.basic]",
        "tiers.basic",
        "missing field `window`",
    );
}

// ------------------------------------------------------------------------------------------
// Value errors (found by validation, placed by key path)

#[test]
fn bad_duration_reads_like_the_manual() {
    let text = "\n[tiers.basic]\nlimit = 500\nwindow = \"15x\"\n[tiers.anonymous]\nlimit = 1\nwindow = \"1s\"\n";
    let e = fails(text);
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(
        e.to_string(),
        r#"t.toml:4:10: tiers.basic.window: "15x" is not a duration (use e.g. 90s, 15m, 1h, 1d)"#
    );
}

#[test]
fn limit_zero_points_at_the_value() {
    let text = BASE.replace("limit = 500", "limit = 0");
    assert_issue(&text, "0\n", "tiers.basic.limit", "at least 1");
}

#[test]
fn sliding_log_above_its_cap_is_refused() {
    let text = BASE.replace("limit = 5\n", "limit = 5000\n");
    assert_issue(&text, "5000", "limits.auth.limit", "at most 1000, not 5000");
    // The same limit counted by the sliding window is fine.
    let ok = text.replace("\"sliding_log\"", "\"sliding_window\"");
    parse(&ok).unwrap();
    // And 1000 itself is allowed.
    parse(&BASE.replace("limit = 5\n", "limit = 1000\n")).unwrap();
}

#[test]
fn windows_are_at_least_a_whole_second() {
    let text = BASE.replace("\"5m\"", "\"500ms\"");
    assert_issue(
        &text,
        "\"500ms\"",
        "limits.auth.window",
        "too short: at least 1s",
    );
    let text = BASE.replace("\"5m\"", "\"1s500ms\"");
    assert_issue(&text, "\"1s500ms\"", "limits.auth.window", "whole seconds");
    let text = BASE.replace("\"5m\"", "\"0s\"");
    assert_issue(&text, "\"0s\"", "limits.auth.window", "too short");
    parse(&BASE.replace("\"5m\"", "\"1s\"")).unwrap();
    parse(&BASE.replace("\"5m\"", "\"1h30m\"")).unwrap();
}

#[test]
fn unknown_limit_in_a_route_points_at_the_name() {
    let text = BASE.replace("limits = [\"auth\"]", "limits = [\"auth\", \"uplaod\"]");
    assert_issue(
        &text,
        "\"uplaod\"",
        "routes[0].limits[1]",
        "unknown limit \"uplaod\"; [limits] defines: auth",
    );
    // A tier named as a route limit gets a hint.
    let text = BASE.replace("limits = [\"auth\"]", "limits = [\"basic\"]");
    let e = assert_issue(&text, "\"basic\"]", "routes[0].limits[0]", "unknown limit");
    assert!(e.to_string().contains("is a tier"), "{e}");
}

#[test]
fn bad_listen_address_points_at_the_value() {
    for bad in ["localhost:8080", "127.0.0.1", "127.0.0.1:99999", ""] {
        let text = BASE.replace("\"127.0.0.1:9090\"", &format!("{bad:?}"));
        assert_issue(
            &text,
            &format!("{bad:?}"),
            "server.http",
            "is not a listen address",
        );
    }
    parse(&BASE.replace("\"127.0.0.1:9090\"", "\"[::1]:0\"")).unwrap();
}

#[test]
fn bad_key_template_points_at_the_value() {
    let text = BASE.replace("key = \"ip\"", "key = \"ip:usr\"");
    assert_issue(
        &text,
        "\"ip:usr\"",
        "limits.auth.key",
        "unknown key part \"usr\"",
    );
    let text = BASE.replace("key = \"ip\"", "key = \"header=Authorization\"");
    assert_issue(
        &text,
        "\"header=Authorization\"",
        "limits.auth.key",
        "carries credentials",
    );
    parse(&BASE.replace("key = \"ip\"", "key = \"ip:header=x-tenant\"")).unwrap();
}

#[test]
fn bad_names_point_at_the_key() {
    let text = BASE
        .replace("[limits.auth]", "[limits.\"log in\"]")
        .replace("limits = [\"auth\"]", "limits = [\"log in\"]");
    assert_issue(
        &text,
        "\"log in\"]",
        "limits.\"log in\"",
        "not a usable name",
    );
    // A limit may not share a tier's name.
    let text = format!("{BASE}\n[limits.basic]\nlimit = 1\nwindow = \"1m\"\n");
    assert_issue(&text, "basic]\nlimit = 1", "limits.basic", "is also a tier");
}

#[test]
fn inline_tables_are_located_too() {
    let text = "[tiers]\nbasic = { limit = 0, window = \"1h\" }\nanonymous = { limit = 1, window = \"1h\" }\n";
    assert_issue(text, "0,", "tiers.basic.limit", "at least 1");
}

#[test]
fn at_least_one_tier() {
    let e = fails("[server]\nhttp = \"127.0.0.1:1\"\n");
    assert_eq!(e.first().path.to_string(), "tiers");
    assert!(e.first().message.contains("at least one tier"), "{e}");
    assert_eq!(e.line(), Some(1));
}

#[test]
fn log_settings_are_checked() {
    let text = format!("{BASE}\n[log]\nformat = \"xml\"\nlevel = \"infoo\"\n");
    let e = assert_issue(&text, "\"xml\"", "log.format", "not a log format");
    assert_eq!(e.issues()[1].path.to_string(), "log.level");
    assert!(e.issues()[1].message.contains("is not a level"), "{e}");
    parse(&format!(
        "{BASE}\n[log]\nformat = \"json\"\nlevel = \"info,tollgate=debug\"\n"
    ))
    .unwrap();
}

#[test]
fn server_bounds_are_checked() {
    for (line, path, says) in [
        (
            "max_header_bytes = 100",
            "server.max_header_bytes",
            "between 8192",
        ),
        ("max_connections = 0", "server.max_connections", "between 1"),
        (
            "header_read_timeout = \"0s\"",
            "server.header_read_timeout",
            "too short",
        ),
        (
            "idle_timeout = \"soon\"",
            "server.idle_timeout",
            "not a duration",
        ),
        (
            "unix_socket_mode = \"0999\"",
            "server.unix_socket_mode",
            "octal",
        ),
        ("max_hits = 0", "server.max_hits", "between 1"),
    ] {
        let text = BASE.replace("[server]\n", &format!("[server]\n{line}\n"));
        let value = line.split(" = ").nth(1).unwrap();
        assert_issue(&text, value, path, says);
    }
    let long = format!("unix_socket = \"/{}\"", "s".repeat(120));
    let text = BASE.replace("[server]\n", &format!("[server]\n{long}\n"));
    assert_issue(&text, "\"/sss", "server.unix_socket", "at most 107");
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = BASE
        .replace("limit = 500", "limit = 0")
        .replace("\"5m\"", "\"5 minutes\"")
        .replace("\"127.0.0.1:9090\"", "\"nowhere\"");
    let e = fails(&text);
    let paths: Vec<String> = e.issues().iter().map(|i| i.path.to_string()).collect();
    assert_eq!(
        paths,
        ["server.http", "tiers.basic.limit", "limits.auth.window"],
        "{e}"
    );
    let lines: Vec<usize> = e
        .issues()
        .iter()
        .map(|i| i.position.unwrap().line)
        .collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
    assert_eq!(e.to_string().lines().count(), 3);
}

// ------------------------------------------------------------------------------------------
// Sections owned elsewhere, checked through the hooks

#[test]
fn tiers_named_by_auth_must_exist() {
    let text = format!("{BASE}\n[auth]\nanonymous_tier = \"basic\"\ndefault_tier = \"gold\"\n");
    assert_issue(
        &text,
        "\"gold\"",
        "auth.default_tier",
        "names tier \"gold\"",
    );
    // The defaults name `anonymous` and `basic`: a file without them must say otherwise.
    let text = BASE.replace("[tiers.anonymous]", "[tiers.guest]");
    let e = fails(&text);
    assert_eq!(e.first().path.to_string(), "auth.anonymous_tier", "{e}");
    assert!(
        e.first().message.contains("names tier \"anonymous\""),
        "{e}"
    );
    parse(&format!("{text}\n[auth]\nanonymous_tier = \"guest\"\n")).unwrap();
}

#[test]
fn auth_errors_are_placed_on_their_field() {
    let text = format!(
        "{BASE}\n[[auth.issuers]]\nname = \"ba\"\nissuer = \"https://app.example\"\n\
         jwks_url = \"https://app.example/api/auth/jwks\"\nleeway = \"10m\"\n"
    );
    assert_issue(&text, "\"10m\"", "auth.issuers[0].leeway", "above 5m");
    parse(&text.replace("\"10m\"", "\"1m\"")).unwrap();
}

#[test]
fn a_secret_encoding_on_a_key_set_issuer_is_an_error_at_its_line() {
    for source in [
        "jwks_url = \"https://app.example/api/auth/jwks\"",
        "jwks_file = \"/etc/tollgate/jwks.json\"",
    ] {
        for encoding in ["\"base64url\"", "\"text\""] {
            let text = format!(
                "{BASE}\n[[auth.issuers]]\nname = \"ba\"\n{source}\n\
                 hs256_secret_encoding = {encoding}\n"
            );
            assert_issue(
                &text,
                encoding,
                "auth.issuers[0].hs256_secret_encoding",
                "only applies to hs256_secret_env",
            );
            parse(&text.replace(&format!("hs256_secret_encoding = {encoding}\n"), "")).unwrap();
        }
    }
    // With a secret it is what it was: read, and checked.
    let text = format!(
        "{BASE}\n[[auth.issuers]]\nname = \"ba\"\nhs256_secret_env = \"S\"\n\
         hs256_secret_encoding = \"base64url\"\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.auth.issuers[0].secret_encoding(), "base64url");
}

#[test]
fn route_rule_errors_are_placed_on_their_field() {
    let text = BASE.replace(
        "limits = [\"auth\"]",
        "limits = [\"auth\"]\nauth = \"maybe\"",
    );
    assert_issue(&text, "\"maybe\"", "routes[0].auth", "\"maybe\"");
}

#[test]
fn policy_errors_are_placed_on_their_field() {
    let text = format!("{BASE}\n[policy]\ndefault_auth = \"sometimes\"\n");
    assert_issue(&text, "\"sometimes\"", "policy.default_auth", "sometimes");
}

// ------------------------------------------------------------------------------------------
// Files

#[test]
fn load_names_the_file_in_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, "[tiers.basic]\nlimit = 5\nwindow = \"15x\"\n[tiers.anonymous]\nlimit = 1\nwindow = \"1s\"\n").unwrap();
    let e = compile::load(&path).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:3:10: tiers.basic.window:", path.display())),
        "{e}"
    );

    let missing = dir.path().join("absent.toml");
    let e = compile::load(&missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Read);
    assert_eq!(e.line(), None);
    assert!(e
        .to_string()
        .starts_with(&format!("{}: cannot open", missing.display())));

    let binary = dir.path().join("binary.toml");
    std::fs::File::create(&binary)
        .unwrap()
        .write_all(b"[tiers]\n\xff\xfe")
        .unwrap();
    let e = compile::load(&binary).unwrap_err();
    assert!(
        e.to_string()
            .contains("not UTF-8 text (invalid byte at line 2, column 1)"),
        "{e}"
    );
}

#[test]
fn load_reads_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, EMBEDDED_DEFAULT).unwrap();
    let c = compile::load(&path).unwrap();
    assert_eq!(c.tiers.len(), 4);
    assert_eq!(Config::load(&path).unwrap().tiers.len(), 4);
}

#[test]
fn hand_built_configs_validate_without_positions() {
    let e = Config::default().validate().unwrap_err();
    assert_eq!(e.line(), None);
    assert!(e.to_string().contains("tiers: at least one tier"), "{e}");
    Config::embedded().validate().unwrap();
}

// ------------------------------------------------------------------------------------------
// Durations

#[test]
fn durations_as_documented() {
    let secs = |s: &str| parse_duration(s).unwrap().as_secs();
    assert_eq!(secs("90s"), 90);
    assert_eq!(secs("15m"), 900);
    assert_eq!(secs("1h"), 3600);
    assert_eq!(secs("1d"), 86_400);
    assert_eq!(secs("1h30m"), 5400);
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    for bad in ["15x", "90", "1.5h", "30m1h", "", "h1"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn limiter_snapshot_settings_are_checked() {
    for (line, needle, path, says) in [
        (
            "snapshot_interval = \"10ms\"",
            "\"10ms\"",
            "limiter.snapshot_interval",
            "too short",
        ),
        (
            "snapshot_interval = \"2h\"",
            "\"2h\"",
            "limiter.snapshot_interval",
            "too long",
        ),
        (
            "snapshot_path = \"\"",
            "\"\"",
            "limiter.snapshot_path",
            "is empty",
        ),
        (
            "snapshot_path = \"/var/lib/tollgate/counts\"",
            "\"/var/lib/tollgate/counts\"",
            "limiter.snapshot_path",
            "set limiter.hash_key_env",
        ),
    ] {
        let text = format!("{BASE}\n[limiter]\n{line}\n");
        assert_issue(&text, needle, path, says);
    }
    let c = parse(&format!(
        "{BASE}\n[limiter]\nhash_key_env = \"K\"\nsnapshot_path = \"/tmp/c\"\nsnapshot_interval = \"5s\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.limiter.snapshot_interval(),
        std::time::Duration::from_secs(5)
    );
    // Off by default.
    assert!(parse(BASE).unwrap().limiter.snapshot_path.is_none());
}
