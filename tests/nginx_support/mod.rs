//! A real nginx for the nginx tests (`tests/nginx*.rs`): started from `examples/nginx.conf` itself, with only its
//! addresses, access log and temporary directories moved into a temporary directory; an
//! upstream application that records and echoes what it received; and a raw HTTP/1.1 client
//! that sends request targets byte for byte (no `..` resolution) from a chosen loopback
//! address.
//!
//! Every process started here is stopped by its PID when its handle is dropped, and every
//! wait is bounded.

#![allow(dead_code)]

/// The whole stack (nginx, tollgate, the applications) the tests drive.
pub mod stack;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Upper bound for anything a test waits on.
pub const WAIT: Duration = Duration::from_secs(10);

/// The configuration the tests run: the file operators copy.
pub fn shipped_config_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/nginx.conf")
}

/// The nginx binary: `$TOLLGATE_NGINX`, else `nginx` on `PATH`, else Debian's
/// `/usr/sbin/nginx` (not on a non-root user's `PATH`). Fails, never skips, without one.
pub fn nginx_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TOLLGATE_NGINX") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nginx"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    if let Some(p) = on_path {
        return p;
    }
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.is_file() {
        return debian;
    }
    panic!(
        "nginx is not installed: these tests run a real nginx. Run tests/run.sh, which \
         installs it (apt-get install nginx), or set TOLLGATE_NGINX to an nginx binary"
    );
}

/// `examples/nginx.conf` made runnable by the current user in `dir`: each rewrite must match
/// the shipped file exactly as many times as expected, so the test cannot drift from it.
pub fn rewrite_shipped_config(
    shipped: &str,
    listen_port: u16,
    tollgate: SocketAddr,
    upstreams: Upstreams,
    dir: &Path,
) -> String {
    fn replace(text: String, from: &str, to: &str, times: usize) -> String {
        let found = text.matches(from).count();
        assert_eq!(
            found, times,
            "examples/nginx.conf: expected {from:?} {times} time(s), found {found}; \
             update tests/nginx_support/mod.rs with the file"
        );
        text.replace(from, to)
    }
    let d = dir.display();
    let temp_paths = format!(
        "http {{\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    \
         scgi_temp_path {d}/scgi;\n"
    );
    let mut t = shipped.to_string();
    t = replace(t, "\nhttp {\n", &format!("\n{temp_paths}"), 1);
    t = replace(
        t,
        "listen 80;",
        &format!("listen 127.0.0.1:{listen_port};"),
        1,
    );
    t = replace(
        t,
        "server 127.0.0.1:8080;",
        &format!("server {tollgate};"),
        1,
    );
    t = replace(
        t,
        "server 127.0.0.1:3000;",
        &format!("server {};", upstreams.app),
        1,
    );
    t = replace(
        t,
        "server 127.0.0.1:8000;",
        &format!("server {};", upstreams.api),
        1,
    );
    t = replace(
        t,
        "/var/log/nginx/access.log",
        &format!("{d}/access.log"),
        1,
    );
    t
}

/// Where the shipped file's two application upstreams point: `app` (the Next.js app: pages,
/// static assets, Better Auth under /api/auth/) and `api` (the FastAPI backend: the rest of
/// /api/).
#[derive(Debug, Clone, Copy)]
pub struct Upstreams {
    pub app: SocketAddr,
    pub api: SocketAddr,
}

/// A running nginx (one process: `master_process off`), stopped by PID on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on `examples/nginx.conf` in front of `tollgate`, with both application
    /// upstreams pointing at `app`, listening on a free loopback port. Returns once it
    /// accepts connections.
    pub async fn start(tollgate: SocketAddr, app: SocketAddr) -> Nginx {
        Self::start_with(tollgate, Upstreams { app, api: app }, |conf| conf).await
    }

    /// Starts nginx on `examples/nginx.conf` in front of `tollgate` and `upstreams`, after
    /// `edit` (an opt-in the file describes, made the way an operator would make it).
    pub async fn start_with(
        tollgate: SocketAddr,
        upstreams: Upstreams,
        edit: impl Fn(String) -> String,
    ) -> Nginx {
        let bin = nginx_binary();
        let shipped =
            edit(std::fs::read_to_string(shipped_config_path()).expect("examples/nginx.conf"));
        // A port another process takes between our probe and nginx's bind makes nginx exit
        // at once with EADDRINUSE; try again with another.
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("tollgate-nginx-test")
                .tempdir()
                .expect("temporary directory");
            let port = free_port();
            let conf = rewrite_shipped_config(&shipped, port, tollgate, upstreams, dir.path());
            let conf_path = dir.path().join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let error_log = dir.path().join("error.log");
            let globals = format!(
                "daemon off; master_process off; pid {}/nginx.pid;",
                dir.path().display()
            );
            let args = |cmd: &mut Command| {
                cmd.arg("-p")
                    .arg(dir.path())
                    .arg("-c")
                    .arg(&conf_path)
                    .arg("-e")
                    .arg(&error_log)
                    .arg("-g")
                    .arg(&globals)
                    .stdin(Stdio::null());
            };
            let mut test = Command::new(&bin);
            args(&mut test);
            let out = test
                .arg("-t")
                .arg("-q")
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            assert!(
                out.status.success(),
                "nginx -t refuses the configuration:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let mut cmd = Command::new(&bin);
            args(&mut cmd);
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut nginx = Nginx { child, port, dir };
            match nginx.wait_listening().await {
                Ok(()) => return nginx,
                Err(e) => last_error = e, // dropped: stopped by PID
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    async fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("nginx exited ({status}): {}", self.error_log()));
            }
            if TcpStream::connect(self.addr()).await.is_ok() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "not listening after {WAIT:?}: {}",
                    self.error_log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signalling the child we spawned and have not reaped (so the PID is ours).
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ------------------------------------------------------------------------------ upstream

/// Every value of header `name` (lower-case) in `headers`, in order.
fn all_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The one value of header `name`; fails when it appears more than once.
fn one_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let all = all_values(headers, name);
    assert!(
        all.len() <= 1,
        "{name} appears {} times: {all:?}",
        all.len()
    );
    all.first().copied()
}

/// One request as the application received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Lower-cased names, in order, every line (duplicates kept).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn all(&self, name: &str) -> Vec<&str> {
        all_values(&self.headers, name)
    }

    /// The one value of `name`; fails when it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        one_value(&self.headers, name)
    }
}

/// The protected application: answers every request 200 with its request head as the body,
/// and records it.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_upstream(stream, Arc::clone(&seen2)));
            }
        });
        Upstream { addr, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .last()
            .cloned()
            .expect("the application received a request")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keep-alive HTTP/1.1, Content-Length bodies (what nginx sends to a `proxy_http_version 1.1`
/// upstream for these tests' requests).
async fn serve_upstream(mut stream: TcpStream, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(
            req.parse(&buf[..head_end]),
            Ok(httparse::Status::Complete(_))
        ) {
            return;
        }
        let hs: Vec<(String, String)> = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let len: usize = hs
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap_or(0))
            .unwrap_or(0);
        let method = req.method.unwrap_or("").to_string();
        let target = req.path.unwrap_or("").to_string();
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let echo = buf[..head_end].to_vec();
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        seen.lock().push(Seen {
            method,
            target,
            headers: hs,
            body,
        });
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            echo.len()
        )
        .into_bytes();
        out.extend_from_slice(&echo);
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// -------------------------------------------------------------------------------- client

/// One response as the client received it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Lower-cased names, in order, every line.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn all(&self, name: &str) -> Vec<&str> {
        all_values(&self.headers, name)
    }

    /// The one value of `name`; fails when it appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        one_value(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Sends one request on a new connection from `from` (a loopback address: 127.0.0.2 is
/// "a client on the internet" when tollgate trusts only 127.0.0.1) and reads the answer.
/// `target` goes on the request line exactly as given.
pub async fn request(
    from: IpAddr,
    to: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut stream = tokio::time::timeout(WAIT, socket.connect(to))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("connect to {to} failed: {e}"));
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: app.example.com\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("Connection: close\r\n\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    let mut all = Vec::new();
    tokio::time::timeout(WAIT, async {
        stream.write_all(&bytes).await.unwrap();
        stream.read_to_end(&mut all).await.unwrap();
    })
    .await
    .expect("response timed out");
    parse_response(&all, method == "HEAD")
}

fn parse_response(all: &[u8], head_only: bool) -> Response {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(all) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "not a complete HTTP response ({other:?}): {:?}",
            String::from_utf8_lossy(all)
        ),
    };
    let hs: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let status = resp.code.unwrap();
    let rest = &all[head_len..];
    let chunked = hs
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if head_only {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else if let Some((_, v)) = hs.iter().find(|(n, _)| n == "content-length") {
        let n: usize = v.parse().unwrap();
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    Response {
        status,
        headers: hs,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").expect("chunk size line");
        let size_text = std::str::from_utf8(&rest[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}
