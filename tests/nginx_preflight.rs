//! CORS preflights through a real nginx: `examples/nginx.conf` and `examples/tollgate.toml` as
//! shipped (only addresses, the key source and file paths moved). A browser's preflight
//! carries no credentials; nginx's `auth_request` hands its `Origin` and
//! `Access-Control-Request-Method` to tollgate with the rest of the client's headers, and
//! tollgate lets it reach the application — on a required route and on another user's owner
//! path alike — anonymous, without spending any quota.
//!
//! nginx must be installed (`tests/run.sh` installs it); without it these tests fail.

mod auth_support;
mod nginx_support;

use std::net::{IpAddr, Ipv4Addr};

use nginx_support::{request, Nginx, Response, Upstream};
use tollgate::clock::ManualClock;
use tollgate::config::Config;
use tollgate::server::{ServerBuilder, ServerHandle};

/// A client "on the internet": tollgate trusts only 127.0.0.1 (nginx) as a proxy.
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const NGINX_SIDE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const PREFLIGHT: &[(&str, &str)] = &[
    ("Origin", "https://app.example"),
    ("Access-Control-Request-Method", "DELETE"),
    ("Access-Control-Request-Headers", "authorization"),
];

struct Stack {
    nginx: Nginx,
    app: Upstream,
    tollgate: ServerHandle,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let m = auth_support::manifest();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tollgate.toml");
        let mut c = Config::load(&path).unwrap_or_else(|e| panic!("examples/tollgate.toml: {e}"));
        c.server.http = "127.0.0.1:0".into();
        let issuer = &mut c.auth.issuers[0];
        issuer.issuer = Some(m.issuer.clone());
        issuer.audiences = vec![m.audience.clone()];
        issuer.jwks_url = None;
        issuer.jwks_file = Some(auth_support::dir().join("jwks.json"));
        c.auth.revocation.path = Some(dir.path().join("revocations.log"));
        c.validate()
            .unwrap_or_else(|e| panic!("adjusted config: {e}"));
        let clock = std::sync::Arc::new(ManualClock::new((m.generated_at + 60) * 1000));
        let tollgate = ServerBuilder::new(c)
            .clock(clock)
            .env(|var| {
                (var == "TOLLGATE_ADMIN_SECRET")
                    .then(|| "nginx-preflight-admin-secret-0123456789abcdef".to_string())
            })
            .start()
            .await
            .expect("tollgate starts");
        let app = Upstream::start().await;
        let nginx = Nginx::start(tollgate.http_addr(), app.addr).await;
        Stack {
            nginx,
            app,
            tollgate,
            _dir: dir,
        }
    }

    async fn options(&self, target: &str, headers: &[(&str, &str)]) -> Response {
        let r = request(CLIENT, self.nginx.addr(), "OPTIONS", target, headers, b"").await;
        if r.status == 500 {
            eprintln!("nginx error log:\n{}", self.nginx.error_log());
        }
        r
    }

    async fn metrics(&self) -> String {
        request(
            NGINX_SIDE,
            self.tollgate.http_addr(),
            "GET",
            "/metrics",
            &[],
            b"",
        )
        .await
        .text()
    }

    async fn stop(self) {
        let Stack {
            nginx,
            app,
            tollgate,
            ..
        } = self;
        drop(nginx);
        drop(app);
        tollgate.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_preflight_reaches_the_application_anonymous_and_spends_nothing() {
    let s = Stack::start().await;
    // A required route, and another user's owner path (more specific than /api/**).
    for target in ["/api/me", "/api/users/user_2/tasks"] {
        let r = s.options(target, PREFLIGHT).await;
        assert_eq!(r.status, 200, "{target}: {:?} {}", r.headers, r.text());
        let seen = s.app.last();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("OPTIONS", target)
        );
        // The preflight's own headers reach the application's CORS layer …
        assert_eq!(seen.header("origin"), Some("https://app.example"));
        assert_eq!(seen.header("access-control-request-method"), Some("DELETE"));
        // … and no identity or tier: it is anonymous.
        for absent in ["x-user-id", "x-user-role", "x-tier"] {
            assert_eq!(seen.header(absent), None, "{absent}: {:?}", seen.headers);
        }
    }
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(r#"tollgate_access_total{result="preflight"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_tracked_states 0"),
        "a preflight spent quota: {metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_is_judged() {
    let s = Stack::start().await;
    let before = s.app.seen().len();
    // Without Access-Control-Request-Method it is an OPTIONS like any other: /api/me
    // requires a token.
    let r = s.options("/api/me", &PREFLIGHT[..1]).await;
    assert_eq!(r.status, 401, "{:?} {}", r.headers, r.text());
    assert_eq!(s.app.seen().len(), before, "the application was reached");
    s.stop().await;
}
