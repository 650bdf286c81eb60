//! Remote key sets against a real HTTP server on 127.0.0.1 (hyper) that serves the fixture
//! JWKS and counts fetches: readiness, refetch on an unknown kid once per cooldown, the
//! negative cache, keeping the last good set, size and time bounds, redirects, and the
//! background refresh following `Cache-Control: max-age` within bounds; and HTTPS with a
//! configured CA file (a rustls server with the fixtures' test CA).

mod auth_support;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use auth_support as s;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use hyper::body::{Body, Frame};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tollgate::auth::{AuthError, AuthInput, Authenticator};
use tollgate::config::auth::IssuerConfig;

/// What the test server answers; changed by the tests while it runs.
#[derive(Default)]
struct Served {
    body: Mutex<Vec<u8>>,
    cache_control: Mutex<Option<String>>,
    status: AtomicU16,
    /// Send the body in chunks without Content-Length.
    chunked: AtomicBool,
    /// Accept the request and never answer.
    hang: AtomicBool,
    redirect_to: Mutex<Option<String>>,
    fetches: AtomicUsize,
    fetched: Notify,
}

/// A body of several chunks and unknown length (sent with chunked transfer-encoding).
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

async fn handle(
    st: Arc<Served>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Chunks>, Infallible> {
    assert_eq!(req.uri().path(), "/api/auth/jwks");
    st.fetches.fetch_add(1, Ordering::SeqCst);
    st.fetched.notify_waiters();
    if st.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let mut resp = Response::builder().status(match st.status.load(Ordering::SeqCst) {
        0 => 200,
        s => s,
    });
    if let Some(loc) = st.redirect_to.lock().clone() {
        resp = resp.status(302).header("location", loc);
    }
    if let Some(cc) = st.cache_control.lock().clone() {
        resp = resp.header("cache-control", cc);
    }
    let body = Bytes::from(st.body.lock().clone());
    let chunks: VecDeque<Bytes> = if st.chunked.load(Ordering::SeqCst) {
        body.chunks(256).map(Bytes::copy_from_slice).collect()
    } else {
        resp = resp.header("content-length", body.len());
        VecDeque::from([body])
    };
    Ok(resp
        .header("content-type", "application/json")
        .body(Chunks(chunks))
        .unwrap())
}

async fn serve(jwks_file: &str) -> (SocketAddr, Arc<Served>) {
    serve_with(jwks_file, None).await
}

/// The same server behind TLS, with the certificate `tests/tokens/gen.py` made for
/// 127.0.0.1 and localhost.
async fn serve_tls(jwks_file: &str) -> (SocketAddr, Arc<Served>) {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(s::dir().join("tls_server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(s::dir().join("tls_server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    serve_with(
        jwks_file,
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
    )
    .await
}

async fn serve_with(
    jwks_file: &str,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (SocketAddr, Arc<Served>) {
    let st = Arc::new(Served::default());
    *st.body.lock() = std::fs::read(s::dir().join(jwks_file)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st2 = Arc::clone(&st);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let st = Arc::clone(&st2);
            let tls = tls.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(Arc::clone(&st), req));
                let http = hyper::server::conn::http1::Builder::new();
                let _ = match tls {
                    None => http.serve_connection(TokioIo::new(stream), svc).await,
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls_stream) => {
                            http.serve_connection(TokioIo::new(tls_stream), svc).await
                        }
                        Err(_) => return,
                    },
                };
            });
        }
    });
    (addr, st)
}

impl Served {
    fn count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` fetches have been served.
    async fn wait_fetches(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.fetched.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() >= n;
            }
        }
    }
}

fn remote_issuer(addr: SocketAddr) -> IssuerConfig {
    let mut i = IssuerConfig::new("better-auth");
    i.jwks_url = Some(format!("http://{addr}/api/auth/jwks"));
    i
}

async fn auth(a: &Authenticator, token: &str) -> Result<String, AuthError> {
    let h = s::header(token);
    a.authenticate(&s::input(&h))
        .await
        .map(|id| id.user_id.clone().unwrap_or_default())
}

/// The fixture's payload and signature under a header naming `kid`.
fn with_kid(token: &str, kid: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#));
    let rest = token.split_once('.').unwrap().1;
    format!("{header}.{rest}")
}

#[tokio::test]
async fn readiness_then_unknown_kids_refetch_at_most_once_per_cooldown() {
    let (addr, served) = serve("jwks.json").await;
    let clock = s::clock();
    let a = s::build(&s::config(remote_issuer(addr)), clock.clone());
    assert!(!a.is_ready());
    assert_eq!(a.not_ready(), ["better-auth"]);
    let good = s::token("eddsa_better_auth");
    assert_eq!(auth(&a, &good).await, Err(AuthError::KeysUnavailable));
    assert_eq!(AuthError::KeysUnavailable.reason(), "keys_unavailable");

    a.start();
    assert!(a.wait_ready(Duration::from_secs(10)).await, "first fetch");
    assert_eq!(served.count(), 1);
    assert_eq!(auth(&a, &good).await.unwrap(), "user_1");

    // The rotated key is unknown and the first fetch was just now: no refetch yet.
    let rotated = s::token("eddsa_rotated_key");
    assert_eq!(auth(&a, &rotated).await, Err(AuthError::UnknownKey));
    assert_eq!(served.count(), 1, "within the cooldown of the first fetch");

    // After the cooldown one refetch happens; the server still has the old set.
    clock.advance_millis(31_000);
    assert_eq!(auth(&a, &rotated).await, Err(AuthError::UnknownKey));
    assert_eq!(served.count(), 2);
    // Now the kid is negatively cached and other kids are inside the cooldown: a flood of
    // random kids does not reach the issuer.
    for i in 0..200 {
        let t = with_kid(&good, &format!("random-kid-{i}"));
        assert_eq!(auth(&a, &t).await, Err(AuthError::UnknownKey));
    }
    assert_eq!(auth(&a, &rotated).await, Err(AuthError::UnknownKey));
    assert_eq!(
        served.count(),
        2,
        "no fetch for random kids within the cooldown"
    );

    // The issuer rotates; once the cooldown has passed the next token with the new kid
    // triggers one fetch and verifies, in the same request.
    *served.body.lock() = std::fs::read(s::dir().join("jwks_rotated.json")).unwrap();
    clock.advance_millis(31_000);
    assert_eq!(auth(&a, &rotated).await.unwrap(), "user_rotated");
    assert_eq!(served.count(), 3);
    assert_eq!(auth(&a, &rotated).await.unwrap(), "user_rotated");
    assert_eq!(served.count(), 3, "then served from the cache");
    let ks = a.issuer_keys().next().unwrap();
    assert_eq!(ks.stats.kid_refetches.load(Ordering::Relaxed), 2);
    assert!(ks.stats.kid_refetches_suppressed.load(Ordering::Relaxed) >= 200);
}

#[tokio::test]
async fn concurrent_requests_with_one_new_kid_share_one_fetch() {
    let (addr, served) = serve("jwks.json").await;
    let clock = s::clock();
    let a = Arc::new(s::build(&s::config(remote_issuer(addr)), clock.clone()));
    a.start();
    assert!(a.wait_ready(Duration::from_secs(10)).await);
    *served.body.lock() = std::fs::read(s::dir().join("jwks_rotated.json")).unwrap();
    clock.advance_millis(31_000);
    let rotated = s::token("eddsa_rotated_key");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (a, t) = (Arc::clone(&a), rotated.clone());
        tasks.push(tokio::spawn(async move { auth(&a, &t).await }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "user_rotated");
    }
    assert_eq!(served.count(), 2);
}

#[tokio::test]
async fn authenticate_now_refetches_in_the_background() {
    let (addr, served) = serve("jwks_rotated.json").await;
    let clock = s::clock();
    let mut iss = remote_issuer(addr);
    iss.unknown_kid_cooldown = "0s".into();
    let a = s::build(&s::config(iss), clock);
    // Not started: nothing loaded yet, so load once by hand with the old set.
    *served.body.lock() = std::fs::read(s::dir().join("jwks.json")).unwrap();
    a.issuer_keys().next().unwrap().fetch_now().await.unwrap();
    *served.body.lock() = std::fs::read(s::dir().join("jwks_rotated.json")).unwrap();
    let h = s::header(&s::token("eddsa_rotated_key"));
    assert_eq!(
        a.authenticate_now(&s::input(&h)),
        Err(AuthError::UnknownKey)
    );
    assert!(served.wait_fetches(2, Duration::from_secs(10)).await);
    // The background fetch installs the set; the retry succeeds.
    let ks = a.issuer_keys().next().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ks
        .current()
        .unwrap()
        .contains_kid(&s::manifest().kids["ed25519_new"])
    {
        assert!(Instant::now() < deadline, "background refetch did not land");
        tokio::task::yield_now().await;
    }
    assert!(a.authenticate_now(&s::input(&h)).is_ok());
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_last_good_set() {
    let (addr, served) = serve("jwks.json").await;
    let a = s::build(&s::config(remote_issuer(addr)), s::clock());
    let keys = a.issuer_keys().next().unwrap();
    keys.fetch_now().await.unwrap();
    assert!(a.is_ready());

    served.status.store(500, Ordering::SeqCst);
    assert!(keys.fetch_now().await.is_err());
    served.status.store(0, Ordering::SeqCst);
    *served.body.lock() = b"<html>maintenance</html>".to_vec();
    assert!(keys.fetch_now().await.is_err());
    *served.body.lock() = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}"#.to_vec();
    assert!(keys
        .fetch_now()
        .await
        .unwrap_err()
        .contains("no usable key"));

    assert_eq!(keys.stats.fetches.load(Ordering::Relaxed), 4);
    assert_eq!(keys.stats.failures.load(Ordering::Relaxed), 3);
    assert!(a.is_ready());
    // Tokens not seen before still verify with the last good keys.
    for (name, sub) in [
        ("es256", "user_es256"),
        ("rs256", "user_rs256"),
        ("es512", "user_es512"),
    ] {
        assert_eq!(auth(&a, &s::token(name)).await.unwrap(), sub);
    }
}

#[tokio::test]
async fn size_time_and_redirect_bounds() {
    // Larger than max_jwks_bytes, announced by Content-Length.
    let (addr, served) = serve("jwks.json").await;
    let mut iss = remote_issuer(addr);
    iss.max_jwks_bytes = 1024;
    let a = s::build(&s::config(iss), s::clock());
    let keys = a.issuer_keys().next().unwrap();
    let e = keys.fetch_now().await.unwrap_err();
    assert!(e.contains("larger than 1024"), "{e}");
    // The same without Content-Length: the bound holds while reading.
    served.chunked.store(true, Ordering::SeqCst);
    let e = keys.fetch_now().await.unwrap_err();
    assert!(e.contains("larger than 1024"), "{e}");
    assert!(!a.is_ready());
    // Chunked but small enough: accepted.
    let mut iss = remote_issuer(addr);
    iss.max_jwks_bytes = 4096;
    let ok = s::build(&s::config(iss), s::clock());
    ok.issuer_keys().next().unwrap().fetch_now().await.unwrap();
    assert!(ok.is_ready());

    // A server that never answers: the fetch gives up after fetch_timeout.
    let (addr, served) = serve("jwks.json").await;
    served.hang.store(true, Ordering::SeqCst);
    let mut iss = remote_issuer(addr);
    iss.fetch_timeout = "300ms".into();
    let a = s::build(&s::config(iss), s::clock());
    let started = Instant::now();
    assert!(a.issuer_keys().next().unwrap().fetch_now().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!a.wait_ready(Duration::from_millis(50)).await);

    // A redirect is not followed, even to a server with good keys.
    let (good_addr, good_served) = serve("jwks.json").await;
    let (addr, served) = serve("jwks.json").await;
    *served.redirect_to.lock() = Some(format!("http://{good_addr}/api/auth/jwks"));
    let a = s::build(&s::config(remote_issuer(addr)), s::clock());
    let e = a
        .issuer_keys()
        .next()
        .unwrap()
        .fetch_now()
        .await
        .unwrap_err();
    assert!(e.contains("302"), "{e}");
    assert_eq!(good_served.count(), 0);
}

#[tokio::test]
async fn background_refresh_follows_max_age_within_bounds() {
    // max-age=0 with a one-hour interval: the minimum bound (100 ms) decides.
    let (addr, served) = serve("jwks.json").await;
    *served.cache_control.lock() = Some("public, max-age=0".into());
    let mut iss = remote_issuer(addr);
    iss.refresh_interval = "1h".into();
    iss.min_refresh = "100ms".into();
    let a = s::build(&s::config(iss), s::clock());
    a.start();
    assert!(
        served.wait_fetches(4, Duration::from_secs(15)).await,
        "max-age=0 clamped to min_refresh: {} fetches",
        served.count()
    );
    drop(a);

    // max-age=3600 with max_refresh=200ms: the maximum bound decides.
    let (addr, served) = serve("jwks.json").await;
    *served.cache_control.lock() = Some("max-age=3600".into());
    let mut iss = remote_issuer(addr);
    iss.min_refresh = "50ms".into();
    iss.max_refresh = "200ms".into();
    let a = s::build(&s::config(iss), s::clock());
    a.start();
    assert!(
        served.wait_fetches(4, Duration::from_secs(15)).await,
        "max-age clamped to max_refresh: {} fetches",
        served.count()
    );
    drop(a);

    // No Cache-Control: the refresh interval.
    let (addr, served) = serve("jwks.json").await;
    let mut iss = remote_issuer(addr);
    iss.refresh_interval = "150ms".into();
    iss.min_refresh = "50ms".into();
    let a = s::build(&s::config(iss), s::clock());
    a.start();
    assert!(served.wait_fetches(4, Duration::from_secs(15)).await);

    // After a failure the refresh retries on its own.
    let (addr, served) = serve("jwks.json").await;
    served.status.store(503, Ordering::SeqCst);
    let mut iss = remote_issuer(addr);
    iss.min_refresh = "100ms".into();
    let b = s::build(&s::config(iss), s::clock());
    b.start();
    assert!(served.wait_fetches(2, Duration::from_secs(15)).await);
    assert!(!b.is_ready());
    served.status.store(0, Ordering::SeqCst);
    assert!(
        b.wait_ready(Duration::from_secs(15)).await,
        "recovers after failures"
    );
    let tok = s::token("eddsa_better_auth");
    assert!(b.authenticate(&AuthInput::bearer(&tok)).await.is_ok());
}

#[tokio::test]
async fn https_with_a_configured_ca_file() {
    let (addr, served) = serve_tls("jwks.json").await;
    let mut iss = IssuerConfig::new("better-auth");
    iss.jwks_url = Some(format!("https://{addr}/api/auth/jwks"));
    iss.ca_file = Some(s::dir().join("tls_ca.pem"));
    let a = s::build(&s::config(iss.clone()), s::clock());
    a.issuer_keys().next().unwrap().fetch_now().await.unwrap();
    assert_eq!(served.count(), 1);
    assert_eq!(auth(&a, &s::token("es256")).await.unwrap(), "user_es256");

    // The same server by name.
    iss.jwks_url = Some(format!("https://localhost:{}/api/auth/jwks", addr.port()));
    let by_name = s::build(&s::config(iss.clone()), s::clock());
    by_name
        .issuer_keys()
        .next()
        .unwrap()
        .fetch_now()
        .await
        .unwrap();

    // Without the CA file the test CA is not trusted: no handshake, no keys.
    iss.ca_file = None;
    let untrusted = s::build(&s::config(iss), s::clock());
    let e = untrusted
        .issuer_keys()
        .next()
        .unwrap()
        .fetch_now()
        .await
        .unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert!(!untrusted.is_ready());
}

#[tokio::test]
async fn a_key_removed_from_the_set_stops_its_cached_tokens() {
    let (addr, served) = serve("jwks.json").await;
    let a = s::build(&s::config(remote_issuer(addr)), s::clock());
    let keys = a.issuer_keys().next().unwrap();
    keys.fetch_now().await.unwrap();
    let ed = s::token("eddsa_better_auth");
    let es = s::token("es256");
    assert_eq!(auth(&a, &ed).await.unwrap(), "user_1");
    assert_eq!(auth(&a, &es).await.unwrap(), "user_es256");
    assert_eq!(a.cache().len(), 2);

    // An unchanged refresh keeps the cache's answers.
    keys.fetch_now().await.unwrap();
    let hits = a.cache().stats.hits.load(Ordering::Relaxed);
    assert_eq!(auth(&a, &ed).await.unwrap(), "user_1");
    assert_eq!(a.cache().stats.hits.load(Ordering::Relaxed), hits + 1);
    assert_eq!(keys.generation(), 0);

    // The issuer drops its Ed25519 key (say it leaked): tokens it signed stop working at
    // once, even those in the cache; tokens of the other keys are verified again and pass.
    let mut doc: serde_json::Value = serde_json::from_slice(&served.body.lock()).unwrap();
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kty"] != "OKP");
    *served.body.lock() = serde_json::to_vec(&doc).unwrap();
    keys.fetch_now().await.unwrap();
    assert_eq!(keys.generation(), 1);
    assert_eq!(auth(&a, &ed).await, Err(AuthError::UnknownKey));
    assert_eq!(auth(&a, &es).await.unwrap(), "user_es256");
    assert_eq!(a.cache().len(), 1);
}

/// The value of one series in a Prometheus text exposition (0 when absent).
fn series(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// A request whose token names a key id the issuer's set lacks is authenticated once: it
/// waits for the one refetch, the token is verified from its one parse, and every counter
/// sees one request — the access decision, the credential check, and the refetch or its
/// suppression.
#[tokio::test]
async fn an_unknown_kid_is_authenticated_once_and_counted_once() {
    use tollgate::gate::{AccessOutcome, AccessQuery, Gate};

    let (addr, served) = serve("jwks.json").await;
    let clock = s::clock();
    let text = format!(
        "[tiers.anonymous]\nlimit = 100\nwindow = \"1h\"\n[tiers.basic]\nlimit = 100\nwindow = \"1h\"\n\
         [[routes]]\npath = \"/api/**\"\nauth = \"required\"\n\
         [[auth.issuers]]\nname = \"better-auth\"\nissuer = \"{iss}\"\naudiences = [\"{aud}\"]\n\
         jwks_url = \"http://{addr}/api/auth/jwks\"\n",
        iss = s::manifest().issuer,
        aud = s::manifest().audience,
    );
    let config = tollgate::config::Config::from_toml_str(&text, "test.toml").unwrap();
    let auth = Arc::new(s::build(&config.auth, clock.clone()));
    auth.start();
    assert!(auth.wait_ready(Duration::from_secs(10)).await);
    let gate = Gate::with_authenticator(&config, clock.clone(), auth, &s::env).unwrap();
    let rotated = s::header(&s::token("eddsa_rotated_key"));
    let query = AccessQuery {
        method: "GET",
        uri: b"/api/me",
        credentials: s::input(&rotated),
        client_ip: None,
        headers: None,
    };

    // Past the first fetch's cooldown: the first request refetches (the issuer still has
    // the old set), the next five find the kid in the negative cache.
    clock.advance_millis(31_000);
    for _ in 0..6 {
        let d = gate.authorize(&query).await.unwrap();
        assert_eq!(d.reason(), Some("invalid_token"));
    }
    assert_eq!(served.count(), 2, "one refetch for six requests");
    let m = String::from_utf8(gate.render_metrics()).unwrap();
    assert_eq!(
        series(&m, r#"tollgate_access_total{result="invalid_token"}"#),
        6
    );
    assert_eq!(
        series(
            &m,
            r#"tollgate_auth_outcomes_total{reason="invalid_token"}"#
        ),
        6
    );
    assert_eq!(
        series(&m, r#"tollgate_auth_outcomes_total{reason="ok"}"#),
        0
    );
    let issuer = r#"{issuer="better-auth"}"#;
    assert_eq!(
        series(
            &m,
            &format!("tollgate_keyset_unknown_kid_refetches_total{issuer}")
        ),
        1
    );
    assert_eq!(
        series(
            &m,
            &format!("tollgate_keyset_unknown_kid_suppressed_total{issuer}")
        ),
        5,
        "every request that did not refetch is a suppression"
    );

    // The issuer rotates: after the cooldown, one request waits for the refetch and is
    // admitted, counted once as allowed and once as a good credential.
    *served.body.lock() = std::fs::read(s::dir().join("jwks_rotated.json")).unwrap();
    clock.advance_millis(31_000);
    let d = gate.authorize(&query).await.unwrap();
    assert_eq!(d.outcome, AccessOutcome::Allowed);
    assert_eq!(served.count(), 3);
    let m = String::from_utf8(gate.render_metrics()).unwrap();
    assert_eq!(series(&m, r#"tollgate_access_total{result="allowed"}"#), 1);
    assert_eq!(
        series(&m, r#"tollgate_auth_outcomes_total{reason="ok"}"#),
        1
    );
    assert_eq!(
        series(
            &m,
            r#"tollgate_auth_outcomes_total{reason="invalid_token"}"#
        ),
        6
    );
    assert_eq!(
        series(
            &m,
            &format!("tollgate_keyset_unknown_kid_refetches_total{issuer}")
        ),
        2
    );
    assert_eq!(
        gate.limiter().tracked_states(),
        1,
        "counted against one limit once"
    );
}

#[tokio::test]
async fn a_key_published_just_after_a_fetch_verifies_within_a_second_while_random_kids_fetch_once_per_cooldown(
) {
    let (addr, served) = serve("jwks.json").await;
    let clock = s::clock();
    let a = s::build(&s::config(remote_issuer(addr)), clock.clone());
    a.start();
    assert!(a.wait_ready(Duration::from_secs(10)).await, "first fetch");
    assert_eq!(served.count(), 1);

    // The issuer rotates right after tollgate's fetch: the first token naming the new key is
    // refused, within the default cooldown (1 s) of that fetch…
    *served.body.lock() = std::fs::read(s::dir().join("jwks_rotated.json")).unwrap();
    let rotated = s::token("eddsa_rotated_key");
    assert_eq!(auth(&a, &rotated).await, Err(AuthError::UnknownKey));
    // …and a second later the next one fetches the set and verifies: the refusal window is at
    // most the cooldown, not the 30 s it used to be.
    clock.advance_millis(1_000);
    assert_eq!(auth(&a, &rotated).await.unwrap(), "user_rotated");
    assert_eq!(served.count(), 2);

    // 10,000 tokens with random kids in the same second: no fetch (the last one was now);
    // a second later, 10,000 more: exactly one.
    let good = s::token("eddsa_better_auth");
    for round in 0..2 {
        for i in 0..10_000 {
            let t = with_kid(&good, &format!("flood-{round}-{i}"));
            assert_eq!(auth(&a, &t).await, Err(AuthError::UnknownKey));
        }
        assert_eq!(served.count(), 2 + round, "round {round}");
        clock.advance_millis(1_000);
    }
    // The rotated key still verifies throughout, from the set it was fetched with.
    assert_eq!(auth(&a, &rotated).await.unwrap(), "user_rotated");
}
