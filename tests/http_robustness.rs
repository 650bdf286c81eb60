//! Nothing panics on any input: random query strings through the router answer a decision or
//! a problem, and random bytes on real connections (fast path and hyper) leave the server
//! serving.

mod http_support;

use std::sync::Arc;

use http_support::*;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate::gate::Gate;
use tollgate::server::http::HttpShared;

fn shared() -> HttpShared {
    let cfg = config(&[("basic", limit(5, "1h"))], &[("login", limit(2, "5m"))]);
    let clock = Arc::new(tollgate::clock::ManualClock::new(T0_MILLIS));
    HttpShared {
        gate: Arc::new(Gate::new(&cfg, clock).unwrap()),
        readiness: Default::default(),
        max_uri_bytes: 4096,
        endpoints: tollgate::server::http::Endpoints::ALL,
        cluster: None,
    }
}

/// Query-ish text: the parameter names and values that matter, escapes good and bad,
/// separators, and arbitrary characters.
fn query() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("key=".to_string()),
        Just("tier=basic".to_string()),
        Just("tier=".to_string()),
        Just("limit=login".to_string()),
        Just("hits=".to_string()),
        Just("&".to_string()),
        Just("=".to_string()),
        Just("+".to_string()),
        Just("%".to_string()),
        "%[0-9a-fA-FgG]{0,2}",
        "[0-9]{1,25}",
        "[a-z:._-]{0,12}",
        "\\PC{0,8}",
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_query_gets_a_decision_or_a_problem(q in query()) {
        let s = shared();
        let target = format!("/check?{q}");
        // Only what hyper itself would accept as a request target reaches the router.
        if let Ok(uri) = target.parse::<http::Uri>() {
            let caller = tollgate::gate::CheckCaller {
                standing: s.gate.check_standing(Some(tollgate::policy::Peer::Unix)),
                credential: tollgate::gate::CheckCredential::None,
            };
            let resp = s.respond(&http::Method::GET, &uri, &caller);
            let status = resp.status().as_u16();
            prop_assert!(matches!(status, 200 | 400 | 414 | 429), "{status} for {target}");
            let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
            if status == 400 || status == 414 {
                prop_assert_eq!(ct, "application/problem+json");
            } else {
                prop_assert_eq!(ct, "application/json");
                prop_assert!(resp.headers().contains_key("ratelimit-policy"));
            }
        }
    }
}

/// Random bytes, random splits: the server answers or closes, and keeps serving others.
#[tokio::test]
async fn random_bytes_on_the_wire_leave_the_server_serving() {
    use rand::{Rng, SeedableRng};
    for fast in [true, false] {
        let cfg = config(&[("basic", limit(5, "1h"))], &[]);
        let server = tollgate::server::ServerBuilder::new(cfg)
            .http_fast_path(fast)
            .start()
            .await
            .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let seeds: [&[u8]; 6] = [
            b"GET /check?key=a&tier=basic HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
            b"POST /check HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            b"GET /check?key=%ff%fe&tier=basic HTTP/1.1\r\nHost: t\r\n\r\n",
            b"\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
            b"GET /check HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        ];
        for round in 0..150 {
            // A seed request, mutated: bytes flipped, cut, or pure noise.
            let mut bytes = seeds[round % seeds.len()].to_vec();
            match round % 3 {
                0 => {
                    for _ in 0..rng.random_range(1..6) {
                        let i = rng.random_range(0..bytes.len());
                        bytes[i] = rng.random();
                    }
                }
                1 => bytes.truncate(rng.random_range(0..bytes.len())),
                _ => {
                    bytes = (0..rng.random_range(1..300))
                        .map(|_| rng.random())
                        .collect();
                }
            }
            let mut s = tokio::net::TcpStream::connect(server.http_addr())
                .await
                .unwrap();
            let cut = rng.random_range(0..=bytes.len());
            let _ = s.write_all(&bytes[..cut]).await;
            let _ = s.write_all(&bytes[cut..]).await;
            let _ = s.shutdown().await;
            // Read whatever comes until the server closes (bounded by the idle timeout at
            // worst; our own bound makes a hang fail the test).
            let mut sink = Vec::new();
            let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut sink))
                .await
                .expect("the server answers or closes");
        }
        let mut c = tcp_client(&server).await;
        assert_eq!(c.get("/healthz").await.status, 200, "fast path: {fast}");
        server.stop().await.unwrap();
    }
}
