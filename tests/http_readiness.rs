//! `/readyz` waits for every issuer's key set: while the issuer's JWKS endpoint has not
//! answered, tollgate is not ready (503, `keyset:<issuer>` false) and refuses that issuer's
//! tokens with `keys_unavailable`; once the key set arrives it is ready and the same token
//! passes.

mod auth_support;
mod http_support;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tollgate::config::Config;
use tollgate::server::ServerBuilder;

/// A JWKS endpoint that answers the fixture key set, the first time only after `release`.
/// Reports each request on `asked` (the first one only).
async fn held_back_jwks() -> (String, oneshot::Sender<()>, oneshot::Receiver<()>) {
    let jwks = std::fs::read(auth_support::dir().join("jwks.json")).expect("fixture jwks");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/auth/jwks",
        listener.local_addr().expect("bound")
    );
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (asked_tx, asked_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut release = Some(release_rx);
        let mut asked = Some(asked_tx);
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if let Some(a) = asked.take() {
                let _ = a.send(());
            }
            if let Some(r) = release.take() {
                let _ = r.await;
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                jwks.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.write_all(&jwks).await;
        }
    });
    (url, release_tx, asked_rx)
}

/// One issuer, the fixtures' Better Auth, whose key set is fetched from `jwks_url`; every
/// `/api/**` route needs its token.
fn config_text(jwks_url: &str) -> String {
    let m = auth_support::manifest();
    format!(
        r#"
[server]
http = "127.0.0.1:0"

[tiers.anonymous]
limit = 100
window = "1h"
key = "ip"

[tiers.basic]
limit = 100
window = "1h"

[[routes]]
path = "/api/**"
auth = "required"

[[auth.issuers]]
name = "better-auth"
issuer = "{iss}"
audiences = ["{aud}"]
jwks_url = "{jwks_url}"
fetch_timeout = "30s"
"#,
        iss = m.issuer,
        aud = m.audience,
    )
}

#[tokio::test]
async fn readyz_waits_for_every_issuer_key_set() {
    let (url, release, asked) = held_back_jwks().await;
    let config = Config::from_toml_str(&config_text(&url), "test").expect("test config");
    let server = ServerBuilder::new(config)
        .start()
        .await
        .expect("server starts");
    // The first fetch has reached the issuer and is held there.
    tokio::time::timeout(Duration::from_secs(10), asked)
        .await
        .expect("tollgate fetches the key set at start")
        .expect("the JWKS server runs");

    let token = auth_support::token("eddsa_better_auth");
    let mut c = http_support::tcp_client(&server).await;
    let r = c.get("/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.json();
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["keyset:better-auth"], false, "{body}");
    assert_eq!(body["checks"]["listeners"], true, "{body}");

    c.send(&format!(
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api/tasks\r\nX-Original-Method: GET\r\nAuthorization: Bearer {token}\r\n\r\n"
    ))
    .await;
    let r = c.read_response().await.expect("an answer");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-tollgate-reason"), Some("keys_unavailable"));

    release.send(()).expect("the JWKS server waits");
    assert!(
        server
            .gate()
            .authenticator()
            .wait_ready(Duration::from_secs(10))
            .await,
        "the key set arrives once released"
    );
    // The readiness flag is set by its own task right after the set is stored.
    let readiness = server.readiness().clone();
    http_support::eventually("/readyz condition keyset:better-auth", || {
        readiness.is_ready()
    })
    .await;
    let r = c.get("/readyz").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["checks"]["keyset:better-auth"], true);

    c.send(&format!(
        "GET /auth HTTP/1.1\r\nHost: t\r\nX-Original-URI: /api/tasks\r\nX-Original-Method: GET\r\nAuthorization: Bearer {token}\r\n\r\n"
    ))
    .await;
    let r = c.read_response().await.expect("an answer");
    assert_eq!(r.status, 200, "{:?}", r.headers);
    assert!(r.header("x-user-id").is_some());

    server.stop().await.expect("stops");
}

#[tokio::test]
async fn a_reload_that_replaces_a_waiting_key_set_stops_waiting_for_the_old_one() {
    // Two JWKS endpoints that never answer (their release is never sent).
    let (first, _hold_first, first_asked) = held_back_jwks().await;
    let (second, _hold_second, second_asked) = held_back_jwks().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, config_text(&first)).unwrap();
    let server = ServerBuilder::new(Config::load(&path).expect("test config"))
        .config_path(&path)
        .start()
        .await
        .expect("server starts");
    tokio::time::timeout(Duration::from_secs(10), first_asked)
        .await
        .expect("tollgate fetches the first key set")
        .expect("the JWKS server runs");
    let old_keys = std::sync::Arc::downgrade(
        server
            .gate()
            .authenticator()
            .issuer_keys()
            .next()
            .expect("one issuer"),
    );

    // The same issuer, its keys from elsewhere: a new key set, still not there.
    std::fs::write(&path, config_text(&second)).unwrap();
    server.reload_config_file().expect("the reload applies");
    tokio::time::timeout(Duration::from_secs(10), second_asked)
        .await
        .expect("tollgate fetches the new key set")
        .expect("the JWKS server runs");
    assert!(!server.readiness().is_ready(), "no key set has arrived");

    // Nothing keeps waiting for the replaced key set: its refresh stopped with the old
    // configuration, and the task that would have marked it ready is gone with it.
    http_support::eventually("the replaced key set to be released", || {
        old_keys.upgrade().is_none()
    })
    .await;
    assert!(!server.readiness().is_ready());
    server.stop().await.unwrap();
}
