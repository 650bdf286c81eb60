//! Request targets that application stacks read otherwise than tollgate, through a real nginx
//! with `examples/nginx.conf` and `examples/tollgate.toml` as shipped (the default
//! `[policy] path_reading = "strict"`): none of them reaches the application. nginx stops a
//! few itself (400 before asking tollgate); tollgate refuses the rest with `bad_path`, which
//! the shipped config turns into a 400.
//!
//! nginx must be installed (`tests/run.sh` installs it); without it these tests fail.

mod auth_support;
mod nginx_support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use nginx_support::{request, Nginx, Response, Upstream};
use tollgate::clock::ManualClock;
use tollgate::config::Config;
use tollgate::server::{ServerBuilder, ServerHandle};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// nginx (shipped config) → tollgate (shipped config) → the recording application.
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
        assert_eq!(c.policy.path_reading, "strict", "the shipped reading");
        c.server.http = "127.0.0.1:0".into();
        let issuer = &mut c.auth.issuers[0];
        issuer.issuer = Some(m.issuer.clone());
        issuer.audiences = vec![m.audience.clone()];
        issuer.jwks_url = None;
        issuer.jwks_file = Some(auth_support::dir().join("jwks.json"));
        c.auth.revocation.path = Some(dir.path().join("revocations.log"));
        c.validate()
            .unwrap_or_else(|e| panic!("adjusted config: {e}"));
        let clock = Arc::new(ManualClock::new((m.generated_at + 60) * 1000));
        let tollgate = ServerBuilder::new(c)
            .clock(clock)
            .env(|_| Some("nginx-paths-test-admin-secret-0123456789".to_string()))
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

    async fn get(&self, target: &str, token: Option<&str>) -> Response {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", &**b)).collect();
        request(CLIENT, self.nginx.addr(), "GET", target, &headers, b"").await
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
async fn targets_a_backend_reads_otherwise_never_reach_the_application() {
    let s = Stack::start().await;
    let user_1 = auth_support::token("eddsa_better_auth");
    // What Node / Next.js, Express and servlet containers would have routed to a protected
    // route: refused by tollgate (`bad_path`, a 400 from the shipped config).
    for (target, token) in [
        (r"/api\admin\x", None),
        ("/api%5Cadmin%5Cx", None),
        (r"/api/users/user_1/..\bob/tasks", Some(&user_1)),
        ("//app.example/api/users/bob/tasks", Some(&user_1)),
        ("/API/admin/x", None),
        ("/api;/admin/x", None),
        ("/api/users;x=1/bob/tasks", Some(&user_1)),
        // Fullwidth solidi: a stack that folds Unicode would read bob's path.
        (
            "/api/users/user_1%EF%BC%8F..%EF%BC%8Fbob/tasks",
            Some(&user_1),
        ),
    ] {
        let r = s.get(target, token.map(|t| t.as_str())).await;
        assert_eq!(r.status, 400, "{target}: {:?} {}", r.headers, r.text());
        assert_eq!(r.json()["error"], "bad_path", "{target}: {}", r.text());
    }
    // Forms nginx answers 400 itself, before any auth subrequest.
    for target in ["/api/admin%00", "/api/../../x", "/api/%2e%2e/%2e%2e/x"] {
        let r = s.get(target, None).await;
        assert_eq!(r.status, 400, "{target}: {:?} {}", r.headers, r.text());
    }
    assert!(s.app.seen().is_empty(), "{:?}", s.app.seen());
    // Mixed case that changes no rule passes, and the application gets the target as sent.
    let r = s.get("/api/users/user_1/Tasks", Some(&user_1)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.app.last().target, "/api/users/user_1/Tasks");
    s.stop().await;
}
