//! tollgate behind a real nginx: `examples/nginx.conf` and `examples/tollgate.toml` as
//! shipped (only addresses, the key source and file paths moved), nginx's `auth_request` to
//! tollgate's `/auth`, and an application upstream that records what reached it.
//!
//! Clients connect from 127.0.0.2, and tollgate trusts only 127.0.0.1 (nginx) as a proxy,
//! so a client is "on the internet": its own `X-Forwarded-For` must not be believed.
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
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const NGINX_SIDE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// `[auth.admin] secret_env` of examples/tollgate.toml, and the test's secret (handed to the
/// server through `ServerBuilder::env`, not the process environment).
const ADMIN_ENV: &str = "TOLLGATE_ADMIN_SECRET";
const ADMIN_SECRET: &str = "nginx-test-admin-secret-0123456789abcdef";

/// nginx (shipped config) → tollgate (shipped config) → the recording application.
struct Stack {
    nginx: Nginx,
    app: Upstream,
    tollgate: ServerHandle,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let m = auth_support::manifest();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tollgate.toml");
        let mut c = Config::load(&path).unwrap_or_else(|e| panic!("examples/tollgate.toml: {e}"));
        c.server.http = "127.0.0.1:0".into();
        // Only nginx is a trusted proxy; the test's clients (127.0.0.2, .3) are not.
        c.policy.trusted_proxies = vec!["127.0.0.1/32".into()];
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
        let nginx = Nginx::start(tollgate.http_addr(), app.addr).await;
        Stack {
            nginx,
            app,
            tollgate,
            clock,
            _dir: dir,
        }
    }

    /// A request through nginx from `from`, with a bearer token when given.
    async fn send(
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

    async fn get(&self, target: &str, token: Option<&str>) -> Response {
        self.send(CLIENT, "GET", target, token, &[], b"").await
    }

    /// `POST /admin/revoke` on tollgate itself (the admin API is never routed through nginx).
    async fn revoke(&self, json: &str) {
        let auth = format!("Bearer {ADMIN_SECRET}");
        let r = request(
            NGINX_SIDE,
            self.tollgate.http_addr(),
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
    async fn tollgate_connections_accepted(&self) -> u64 {
        let r = request(
            NGINX_SIDE,
            self.tollgate.http_addr(),
            "GET",
            "/metrics",
            &[],
            b"",
        )
        .await;
        assert_eq!(r.status, 200);
        r.text()
            .lines()
            .filter(|l| l.starts_with("tollgate_connections_accepted_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    fn now_secs(&self) -> u64 {
        use tollgate::clock::Clock;
        self.clock.now_millis() / 1000
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

fn token(name: &str) -> String {
    auth_support::token(name)
}

/// A denial rendered by examples/nginx.conf: JSON `{"error": reason}`.
fn assert_denied(r: &Response, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{:?} {}", r.headers, r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.json()["error"], reason, "{}", r.text());
}

fn assert_bearer_challenge(r: &Response) {
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("a 401 without WWW-Authenticate: {:?}", r.headers));
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

#[tokio::test]
async fn no_token_is_401_with_www_authenticate() {
    let s = Stack::start().await;
    let r = s.get("/api/me", None).await;
    assert_denied(&r, 401, "missing_token");
    assert_bearer_challenge(&r);
    assert!(s.app.seen().is_empty(), "the application was reached");
    s.stop().await;
}

#[tokio::test]
async fn valid_token_reaches_the_application_with_identity_headers_not_forged_ones() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth");
    let forged = [
        ("X-User-Id", "admin"),
        ("X-User-Role", "admin"),
        ("X-User-Email", "admin@example.com"),
        ("X-Tier", "premium"),
    ];
    let r = s
        .send(CLIENT, "GET", "/api/me?x=1", Some(&t), &forged, b"")
        .await;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    let seen = s.app.last();
    assert_eq!(seen.target, "/api/me?x=1");
    // Exactly one of each (Seen::header fails on duplicates), and tollgate's, not the client's.
    assert_eq!(seen.header("x-user-id"), Some("user_1"));
    assert_eq!(seen.header("x-user-email"), Some("user_1@example.com"));
    assert_eq!(seen.header("x-user-role"), Some("user"));
    assert_eq!(seen.header("x-tier"), Some("basic"));
    assert_eq!(seen.header("x-real-ip"), Some("127.0.0.2"));
    // The client sees its quota.
    assert_eq!(
        r.header("ratelimit-policy"),
        Some(r#""basic";q=500;w=3600"#),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("x-ratelimit-remaining"), Some("499"));
    // The access log names the user and never the token.
    let log = s.nginx.access_log();
    assert!(log.contains("user=user_1 tier=basic"), "{log}");
    assert!(!log.contains(&t), "the access log holds the token");
    s.stop().await;
}

#[tokio::test]
async fn anonymous_requests_cannot_forge_identity_headers() {
    let s = Stack::start().await;
    // No rule matches `/`: default_auth = optional, anonymous is allowed.
    let forged = [("X-User-Id", "user_1"), ("X-Tier", "premium")];
    let r = s.send(CLIENT, "GET", "/", None, &forged, b"").await;
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    let seen = s.app.last();
    assert_eq!(seen.header("x-user-id"), None, "{:?}", seen.headers);
    assert_eq!(seen.header("x-tier"), Some("anonymous"));
    s.stop().await;
}

#[tokio::test]
async fn expired_token_is_401() {
    let s = Stack::start().await;
    let r = s.get("/api/me", Some(&token("expired"))).await;
    assert_denied(&r, 401, "expired");
    assert_bearer_challenge(&r);
    assert!(s.app.seen().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn another_users_path_is_403() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth"); // user_1
    let r = s.get("/api/users/user_1/tasks", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.get("/api/users/bob/tasks", Some(&t)).await;
    assert_denied(&r, 403, "not_owner");
    assert_eq!(s.app.seen().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn dot_dot_into_another_users_path_is_403_and_encoded_slash_is_400() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth"); // user_1
                                        // nginx normalises $uri for itself but hands tollgate the raw $request_uri: tollgate
                                        // judges bob's path, as the application will see it.
    let r = s.get("/api/users/user_1/../bob/tasks", Some(&t)).await;
    assert_denied(&r, 403, "not_owner");
    let r = s.get("/api/users/user_1/%2e%2e/bob/tasks", Some(&t)).await;
    assert_denied(&r, 403, "not_owner");
    // An encoded slash cannot be judged safely: tollgate's 403 bad_path becomes a 400.
    let r = s.get("/api/users/user_1%2F..%2Fbob/tasks", Some(&t)).await;
    assert_denied(&r, 400, "bad_path");
    assert!(s.app.seen().is_empty(), "{:?}", s.app.seen());
    // The same dance back into one's own path is fine, and reaches the application raw.
    let r = s.get("/api/users/bob/../user_1/tasks", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.app.last().target, "/api/users/bob/../user_1/tasks");
    s.stop().await;
}

#[tokio::test]
async fn the_original_method_is_judged_not_the_subrequests() {
    let s = Stack::start().await;
    // nginx's auth subrequest is always a GET; X-Original-Method carries the real one.
    // /api/feed/** is open to anonymous GETs only (examples/tollgate.toml).
    let r = s.send(CLIENT, "GET", "/api/feed", None, &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.send(CLIENT, "HEAD", "/api/feed", None, &[], b"").await;
    assert_eq!(r.status, 200);
    for method in ["POST", "PUT", "DELETE"] {
        let r = s.send(CLIENT, method, "/api/feed", None, &[], b"{}").await;
        assert_denied(&r, 401, "missing_token");
    }
    assert_eq!(s.app.seen().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn past_the_limit_is_429_with_retry_after() {
    let s = Stack::start().await;
    // Sign-in attempts: 5 per 5 minutes per client address (examples/tollgate.toml), and a
    // client cannot spread them over addresses it makes up in X-Forwarded-For.
    for i in 0..5 {
        let xff = format!("198.51.100.{i}");
        let r = s
            .send(
                CLIENT,
                "POST",
                "/api/auth/sign-in/email",
                None,
                &[
                    ("X-Forwarded-For", &xff),
                    ("Content-Type", "application/json"),
                ],
                br#"{"email":"a@example.com","password":"x"}"#,
            )
            .await;
        assert_eq!(
            r.status,
            200,
            "attempt {}: {:?} {}",
            i + 1,
            r.headers,
            r.text()
        );
        // The body went to the application (and not to tollgate).
        assert_eq!(
            s.app.last().body,
            br#"{"email":"a@example.com","password":"x"}"#
        );
    }
    let r = s
        .send(
            CLIENT,
            "POST",
            "/api/auth/sign-in/email",
            None,
            &[("X-Forwarded-For", "198.51.100.99")],
            b"{}",
        )
        .await;
    assert_denied(&r, 429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers))
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    for h in ["ratelimit-policy", "ratelimit", "x-ratelimit-limit"] {
        assert!(r.header(h).is_some(), "429 without {h}: {:?}", r.headers);
    }
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(s.app.seen().len(), 5);
    // Another client address has its own count.
    let r = s
        .send(
            OTHER_CLIENT,
            "POST",
            "/api/auth/sign-in/email",
            None,
            &[],
            b"{}",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn revoked_jti_is_401() {
    let s = Stack::start().await;
    let t = token("eddsa_with_jti"); // user_jti, jti-0001
    let r = s.get("/api/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Now verified and cached; revocation is checked on every cache hit.
    s.revoke(r#"{"jti":"jti-0001","exp":4102444800}"#).await;
    let r = s.get("/api/me", Some(&t)).await;
    assert_denied(&r, 401, "revoked");
    assert_bearer_challenge(&r);
    // Other tokens are untouched.
    let r = s.get("/api/me", Some(&token("eddsa_better_auth"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn revoking_a_users_tokens_issued_before_t_is_401() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth"); // user_1, issued when the fixtures were made
    let r = s.get("/api/me", Some(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let before = s.now_secs();
    s.revoke(&format!(r#"{{"sub":"user_1","before":{before}}}"#))
        .await;
    let r = s.get("/api/me", Some(&t)).await;
    assert_denied(&r, 401, "revoked");
    assert_bearer_challenge(&r);
    // Another user's token still passes.
    let r = s.get("/api/me", Some(&token("eddsa_with_jti"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await;
}

#[tokio::test]
async fn auth_subrequests_reuse_a_keepalive_connection_allowed_or_denied() {
    let s = Stack::start().await;
    let t = token("eddsa_better_auth");
    let before = s.tollgate_connections_accepted().await;
    for _ in 0..10 {
        assert_eq!(s.get("/api/me", Some(&t)).await.status, 200);
        assert_eq!(s.get("/api/users/bob", Some(&t)).await.status, 403);
        assert_eq!(s.get("/api/me", None).await.status, 401);
    }
    let after = s.tollgate_connections_accepted().await;
    // One nginx process asking one question at a time needs one connection; 30 would mean
    // an answer nginx could not keep alive (a body, or Connection: close). The second
    // /metrics request is one more.
    let opened = after - before - 1;
    assert!(
        opened <= 2,
        "nginx opened {opened} connections to tollgate for 30 auth subrequests"
    );
    s.stop().await;
}
