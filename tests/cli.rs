//! The `tollgate` binary as an operator runs it: exit codes, messages, `--help`, and `serve`
//! really serving (and reloading) on loopback.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tollgate::config::EMBEDDED_DEFAULT;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn tollgate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TOLLGATE_LOG")
        .output()
        .expect("run tollgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A configuration that is the embedded default listening on `http`.
fn config_on(http: &str) -> String {
    let replaced =
        EMBEDDED_DEFAULT.replace("http = \"127.0.0.1:8080\"", &format!("http = \"{http}\""));
    assert_ne!(
        replaced, EMBEDDED_DEFAULT,
        "the default names its listen address"
    );
    replaced
}

#[test]
fn check_config_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, EMBEDDED_DEFAULT).unwrap();
    let out = tollgate(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{}: ok", path.display()).as_str())
    );
    let summary = lines.next().unwrap();
    assert!(
        summary.starts_with("4 tiers (anonymous, api_key, basic, premium)"),
        "{summary}"
    );
    assert_eq!(lines.next(), None);
}

#[test]
fn check_config_reports_file_line_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let bad = EMBEDDED_DEFAULT.replace("window = \"5m\"", "window = \"5x\"");
    std::fs::write(&path, &bad).unwrap();
    let line = bad.lines().position(|l| l == "window = \"5x\"").unwrap() + 1;

    let out = tollgate(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "{}:{line}:10: limits.auth.window: \"5x\" is not a duration (use e.g. 90s, 15m, 1h, 1d)",
            path.display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_config_of_a_missing_file_exits_1() {
    let out = tollgate(&["check-config", "/nonexistent/tollgate.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("/nonexistent/tollgate.toml: cannot open"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["check-config"][..],
        &["serve", "--bogus"],
        &["frobnicate"],
        &[],
    ] {
        let out = tollgate(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn version_prints_name_and_version() {
    let out = tollgate(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("tollgate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_of_help_and_a_closed_pipe_are_not_errors() {
    let out = tollgate(&["help", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Examples:"));

    // `tollgate check-config FILE | head -1`: the reader is gone before the second line.
    // A pipe whose read end is closed makes every write fail at once (EPIPE).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, EMBEDDED_DEFAULT).unwrap();
    for args in [
        vec!["check-config", path.to_str().unwrap()],
        vec!["print-default-config"],
    ] {
        let mut fds = [0; 2];
        // SAFETY: pipe(2) fills the two descriptors; each is owned once below.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fds[0] and fds[1] are open and owned by nothing else.
        let (read, write) = unsafe {
            use std::os::fd::FromRawFd as _;
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        };
        drop(read);
        let out = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .output()
            .expect("run tollgate");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn help_has_examples() {
    let out = tollgate(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for needle in [
        "Examples:",
        "tollgate serve --config",
        "tollgate check-config",
        "print-default-config",
        "Exit status",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
    let out = tollgate(&["serve", "--help"]);
    assert!(text(&out.stdout).contains("--config <FILE>"));
}

#[test]
fn print_default_config_prints_a_file_check_config_accepts() {
    let out = tollgate(&["print-default-config"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), EMBEDDED_DEFAULT);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("printed.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    assert_eq!(
        tollgate(&["check-config", path.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn serve_refuses_a_bad_file_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[tiers.basic]\nlimit = 0\nwindow = \"1h\"\n").unwrap();
    let out = tollgate(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2:9: tiers.basic.limit: must be at least 1",
            path.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("not starting"), "{stderr}");
}

#[test]
fn serve_on_a_taken_port_names_the_key_the_address_and_the_fix() {
    // Held for the whole test: tollgate's bind must fail with "address in use".
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config_on(&addr)).unwrap();
    let out = tollgate(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("[server] http = \"{addr}\": cannot listen there")),
        "{stderr}"
    );
    assert!(stderr.contains("another process listens on it"), "{stderr}");
    assert!(
        stderr.contains("set [server] http to a free port"),
        "{stderr}"
    );
}

#[test]
fn serve_with_a_unix_socket_in_a_missing_directory_names_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("missing").join("http.sock");
    let path = dir.path().join("tollgate.toml");
    let text_of_file = config_on("127.0.0.1:0").replace(
        "# unix_socket = \"/run/tollgate/http.sock\"",
        &format!("unix_socket = {:?}", socket.display().to_string()),
    );
    assert!(
        text_of_file.contains("unix_socket = \""),
        "the default names the key"
    );
    std::fs::write(&path, text_of_file).unwrap();
    let out = tollgate(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("[server] unix_socket"), "{stderr}");
    assert!(stderr.contains(&socket.display().to_string()), "{stderr}");
    assert!(stderr.contains("mkdir -p"), "{stderr}");
}

// ------------------------------------------------------------------------------------------
// serve, for real, on loopback

/// A running `tollgate serve`, killed on drop if the test did not stop it.
struct Server {
    child: Child,
    /// Lines of stderr, as they come.
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(args: &[&str], log: &str) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env("TOLLGATE_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tollgate serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a stderr line containing every needle.
    fn wait_for_log(&mut self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self
            .seen
            .iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return l.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = needles.iter().all(|n| line.contains(n));
                    self.seen.push(line.clone());
                    if hit {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needles:?} within {timeout:?}; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// SIGTERM, waits (bounded) for the exit, and returns the status and every stderr line.
    fn stop_with_log(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.stop_in_place();
        // The child is gone, so its stderr closes and the reader ends: read to that end.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("stderr did not close"),
            }
        }
        (status, std::mem::take(&mut self.seen))
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        self.stop_in_place()
    }

    fn stop_in_place(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tollgate did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 GET over a fresh connection; the status code, or `None` if nothing answers.
fn http_status(port: u16, target: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// Polls until the server answers `/healthz` (bounded).
fn wait_until_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while http_status(port, "/healthz") != Some(200) {
        assert!(
            Instant::now() < deadline,
            "no /healthz answer on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_runs_a_config_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    let port = free_port();
    std::fs::write(&path, config_on(&format!("127.0.0.1:{port}"))).unwrap();
    let mut server = Server::start(&["serve", "--config", path.to_str().unwrap()], "info");
    server.wait_for_log(&["starting", "4 tiers"], Duration::from_secs(15));
    wait_until_serving(port);
    assert_eq!(http_status(port, "/check?key=k&tier=basic"), Some(200));
    let (status, log) = server.stop_with_log();
    assert!(status.success(), "{status}");
    // No issuer, so no token can be revoked: nothing to warn about.
    assert!(
        !log.iter().any(|l| l.contains("kept in memory")),
        "{}",
        log.join("\n")
    );
}

#[test]
fn serve_without_flags_runs_on_the_embedded_default() {
    // The embedded default listens on 127.0.0.1:8080, which this machine may be using for
    // something else; the start-up line says which configuration was loaded either way.
    let mut server = Server::start(&["serve"], "info");
    let line = server.wait_for_log(&["starting"], Duration::from_secs(15));
    assert!(line.contains("<embedded default>"), "{line}");
    assert!(line.contains("HTTP on 127.0.0.1:8080"), "{line}");
}

/// `TOLLGATE_LOG=debug` says why a token was refused — the detailed reason, the issuer that
/// judged it and the route — and never prints the token.
#[test]
fn a_refused_token_is_explained_at_debug_level_without_the_token() {
    let fixtures: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/tokens/tokens.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let token = fixtures["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "tampered_signature")
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    let port = free_port();
    let config = format!(
        "{}\n[[routes]]\npath = \"/api/**\"\nauth = \"required\"\n\n[[auth.issuers]]\nname = \"better-auth\"\nissuer = \"{iss}\"\naudiences = [\"{iss}\"]\njwks_file = \"{dir}/tests/tokens/jwks.json\"\n",
        config_on(&format!("127.0.0.1:{port}")),
        iss = fixtures["issuer"].as_str().unwrap(),
        dir = env!("CARGO_MANIFEST_DIR"),
    );
    std::fs::write(&path, config).unwrap();
    let mut server = Server::start(&["serve", "--config", path.to_str().unwrap()], "debug");
    wait_until_serving(port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /auth HTTP/1.1\r\nHost: x\r\nX-Original-URI: /api/me\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let auth = server.wait_for_log(&["token refused", "bad_signature"], Duration::from_secs(10));
    assert!(auth.contains("better-auth"), "{auth}");
    let access = server.wait_for_log(
        &["request refused", "invalid_token"],
        Duration::from_secs(10),
    );
    assert!(
        access.contains("/api/**") && access.contains("GET"),
        "{access}"
    );
    let (_, log) = server.stop_with_log();
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !log.iter()
            .any(|l| l.contains(&token) || l.contains(signature)),
        "the token was logged"
    );
}

#[test]
fn sighup_with_a_bad_file_keeps_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    let port = free_port();
    let good = config_on(&format!("127.0.0.1:{port}"));
    std::fs::write(&path, &good).unwrap();
    let mut server = Server::start(&["serve", "--config", path.to_str().unwrap()], "info");
    wait_until_serving(port);

    // A bad file: refused with its position, and the old configuration keeps serving.
    let bad = good.replace("limit = 2000", "limit = 0");
    let line = bad.lines().position(|l| l == "limit = 0").unwrap() + 1;
    std::fs::write(&path, &bad).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log(
        &[&format!("{}:{line}:9: tiers.premium.limit", path.display())],
        Duration::from_secs(15),
    );
    assert_eq!(http_status(port, "/check?key=k&tier=premium"), Some(200));

    // A good file with a new tier: taken.
    let better = format!("{good}\n[tiers.gold]\nlimit = 1\nwindow = \"1m\"\n");
    std::fs::write(&path, &better).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_for_log(&["reloaded"], Duration::from_secs(15));
    assert_eq!(http_status(port, "/check?key=k&tier=gold"), Some(200));
    assert_eq!(http_status(port, "/check?key=k&tier=gold"), Some(429));
    assert!(server.stop().success());
}

#[test]
fn errors_quote_the_offending_value_not_the_file() {
    // A configuration may sit next to secrets, and the TOML parser's own messages reprint
    // the source line; tollgate's messages say what is wrong without echoing the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let file = "[tiers.basic]\nlimit = 1\nwindow = \"1h\"\nnote = \"s3cr3t-value\n";
    std::fs::write(&path, file).unwrap();
    let out = tollgate(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:4:", path.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cr3t"), "{stderr}");
}

// ------------------------------------------------------------------------------------------
// check-config checks what the file names on this machine, and serve says the same

/// The embedded default with a revocation log in `dir` (which may not exist) and an admin
/// secret read from `secret_env`.
fn config_naming(log_dir: &std::path::Path, secret_env: &str) -> String {
    format!(
        "{}\n[auth.revocation]\npath = \"{}\"\n\n[auth.admin]\nenabled = true\nsecret_env = \"{secret_env}\"\n",
        config_on("127.0.0.1:0"),
        log_dir.join("revocations.log").display()
    )
}

#[test]
fn check_config_names_the_key_the_path_and_the_fix_of_a_missing_revocation_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config_naming(&missing, "TOLLGATE_CLI_TEST_ADMIN")).unwrap();
    let secret = "a-32-byte-admin-secret-for-tests";
    let out = Command::new(BIN)
        .args(["check-config", path.to_str().unwrap()])
        .env("TOLLGATE_CLI_TEST_ADMIN", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("[auth.revocation] path"))
        .unwrap_or_else(|| panic!("no line names the key: {stderr}"));
    assert!(line.starts_with(&format!("{}: ", path.display())), "{line}");
    assert!(line.contains(&missing.display().to_string()), "{line}");
    assert!(line.contains("does not exist"), "the cause: {line}");
    assert!(
        line.contains(&format!("mkdir -p {}", missing.display())),
        "the fix: {line}"
    );
    assert!(
        stderr.contains("1 problem the server would refuse at start"),
        "{stderr}"
    );

    // serve stops on the same problem, in the same words, before starting anything.
    let out = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("TOLLGATE_CLI_TEST_ADMIN", secret)
        .env_remove("TOLLGATE_LOG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let serve_err = text(&out.stderr);
    assert!(serve_err.contains(line), "{serve_err}");
    assert!(serve_err.contains("not starting"), "{serve_err}");

    // Once the directory is there, the same file is ok.
    std::fs::create_dir(&missing).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", path.to_str().unwrap()])
        .env("TOLLGATE_CLI_TEST_ADMIN", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("{}: ok\n", path.display())));
}

#[test]
fn check_config_reports_every_problem_an_unset_secret_included() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config_naming(&missing, "TOLLGATE_CLI_TEST_UNSET")).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", path.to_str().unwrap()])
        .env_remove("TOLLGATE_CLI_TEST_UNSET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("[auth.revocation] path"), "{stderr}");
    assert!(
        stderr.contains("[auth.admin]") && stderr.contains("TOLLGATE_CLI_TEST_UNSET"),
        "{stderr}"
    );
    assert!(stderr.contains("not set"), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");

    // --file-only checks the file alone, and says what it left out.
    let out = tollgate(&["check-config", "--file-only", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("not checked (--file-only)"),
        "{}",
        text(&out.stdout)
    );
}
