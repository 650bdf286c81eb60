//! The stack the nginx tests run: nginx on `examples/nginx.conf` in front of tollgate on
//! `examples/tollgate.toml` (only addresses, the key source and file paths moved) and two
//! recording applications, the Next.js app (`app`) and the FastAPI backend (`api`).
//!
//! Clients connect from 127.0.0.2, and tollgate trusts only 127.0.0.1 (nginx) as a proxy,
//! so a client is "on the internet": its own `X-Forwarded-For` must not be believed.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::{request, Nginx, Response, Upstream, Upstreams};
use crate::auth_support;
use tollgate::clock::ManualClock;
use tollgate::config::Config;
use tollgate::server::{ServerBuilder, ServerHandle};

pub const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
pub const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
pub const NGINX_SIDE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `[auth.admin] secret_env` of examples/tollgate.toml, and the test's secret (handed to the
/// server through `ServerBuilder::env`, not the process environment).
pub const ADMIN_ENV: &str = "TOLLGATE_ADMIN_SECRET";
pub const ADMIN_SECRET: &str = "nginx-test-admin-secret-0123456789abcdef";

/// nginx (shipped config) → tollgate (shipped config) → the recording applications.
pub struct Stack {
    pub nginx: Nginx,
    /// The Next.js app: pages, static assets, Better Auth under /api/auth/.
    pub app: Upstream,
    /// The FastAPI backend: the rest of /api/.
    pub api: Upstream,
    /// `None` once stopped (`stop_tollgate`): the sidecar is down.
    pub tollgate: Option<ServerHandle>,
    pub tollgate_addr: std::net::SocketAddr,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|conf| conf).await
    }

    /// The stack with `edit` applied to the shipped nginx file.
    pub async fn start_with(edit: impl Fn(String) -> String) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let m = auth_support::manifest();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tollgate.toml");
        let mut c = Config::load(&path).unwrap_or_else(|e| panic!("examples/tollgate.toml: {e}"));
        c.server.http = "127.0.0.1:0".into();
        // As shipped: only nginx (127.0.0.1) is a trusted proxy, so the test's clients
        // (127.0.0.2, .3), like a curl from another loopback address, are not.
        assert_eq!(
            c.policy.trusted_proxies,
            ["127.0.0.1/32", "::1/128"],
            "examples/tollgate.toml trusts more than nginx's own address"
        );
        // As shipped: the strict reading of request paths (docs/policy.md).
        assert_eq!(c.policy.path_reading, "strict", "the shipped path reading");
        // The fixtures' issuer and key set in place of the application's JWKS URL.
        let issuer = &mut c.auth.issuers[0];
        assert_eq!(issuer.name, "better-auth");
        issuer.issuer = Some(m.issuer.clone());
        issuer.audiences = vec![m.audience.clone()];
        issuer.jwks_url = None;
        issuer.jwks_file = Some(auth_support::dir().join("jwks.json"));
        c.auth.revocation.path = Some(dir.path().join("revocations.log"));
        c.validate()
            .unwrap_or_else(|e| panic!("adjusted config: {e}"));

        // One minute after the fixtures were made: their tokens are valid, `expired` is not.
        let clock = Arc::new(ManualClock::new((m.generated_at + 60) * 1000));
        let tollgate = ServerBuilder::new(c)
            .clock(clock.clone())
            .env(|var| (var == ADMIN_ENV).then(|| ADMIN_SECRET.to_string()))
            .start()
            .await
            .expect("tollgate starts");
        assert!(tollgate.readiness().is_ready(), "tollgate is not ready");
        let app = Upstream::start().await;
        let api = Upstream::start().await;
        let upstreams = Upstreams {
            app: app.addr,
            api: api.addr,
        };
        let nginx = Nginx::start_with(tollgate.http_addr(), upstreams, edit).await;
        Stack {
            nginx,
            app,
            api,
            tollgate_addr: tollgate.http_addr(),
            tollgate: Some(tollgate),
            clock,
            _dir: dir,
        }
    }

    /// Stops tollgate, as when the sidecar crashed: its port refuses connections.
    pub async fn stop_tollgate(&mut self) {
        let t = self.tollgate.take().expect("tollgate is running");
        t.stop().await.unwrap();
    }

    /// Requests that reached either application.
    pub fn reached(&self) -> usize {
        self.app.seen().len() + self.api.seen().len()
    }

    /// A request through nginx from `from`, with a bearer token when given.
    pub async fn send(
        &self,
        from: IpAddr,
        method: &str,
        target: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(b) = &bearer {
            headers.push(("Authorization", b));
        }
        let r = request(from, self.nginx.addr(), method, target, &headers, body).await;
        if r.status == 500 {
            // nginx's 500 on auth_request: tollgate answered something other than 2xx, 401,
            // 403, or could not be reached. The reason is in nginx's error log.
            eprintln!("nginx error log:\n{}", self.nginx.error_log());
        }
        r
    }

    pub async fn get(&self, target: &str, token: Option<&str>) -> Response {
        self.send(CLIENT, "GET", target, token, &[], b"").await
    }

    /// `POST /admin/revoke` on tollgate itself (the admin API is never routed through nginx).
    pub async fn revoke(&self, json: &str) {
        let auth = format!("Bearer {ADMIN_SECRET}");
        let r = request(
            NGINX_SIDE,
            self.tollgate_addr,
            "POST",
            "/admin/revoke",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            json.as_bytes(),
        )
        .await;
        assert!(
            (200..300).contains(&r.status),
            "revoke {json}: {} {}",
            r.status,
            r.text()
        );
    }

    /// tollgate's accepted connections, from its own /metrics.
    pub async fn tollgate_connections_accepted(&self) -> u64 {
        let r = request(NGINX_SIDE, self.tollgate_addr, "GET", "/metrics", &[], b"").await;
        assert_eq!(r.status, 200);
        r.text()
            .lines()
            .filter(|l| l.starts_with("tollgate_connections_accepted_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    pub fn now_secs(&self) -> u64 {
        use tollgate::clock::Clock;
        self.clock.now_millis() / 1000
    }

    pub async fn stop(self) {
        let Stack {
            nginx,
            app,
            api,
            tollgate,
            ..
        } = self;
        drop(nginx);
        drop(app);
        drop(api);
        if let Some(t) = tollgate {
            t.stop().await.unwrap();
        }
    }
}

impl Stack {
    /// tollgate's own `/metrics` text.
    pub async fn metrics(&self) -> String {
        request(NGINX_SIDE, self.tollgate_addr, "GET", "/metrics", &[], b"")
            .await
            .text()
    }
}
