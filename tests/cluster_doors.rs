//! The cluster through the doors, in one process: two servers joined by gossip on loopback.
//! `GET /admin/cluster` and `INFO cluster` list the peer with its state, generation and
//! last-heard age; `/readyz` carries the `cluster` condition; a count spent on one server is
//! counted by the other; with `[cluster]` off both doors say so.

mod http_support;

use std::time::Duration;

use http_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tollgate::config::Config;
use tollgate::server::{ServerBuilder, ServerHandle};

const ADMIN: &str = "admin-secret-for-the-cluster-door-tests-0123";

fn env(var: &str) -> Option<String> {
    match var {
        "TG_DOORS_CLUSTER" => Some("cluster-secret-for-the-door-tests-0123456789".into()),
        "TG_DOORS_HASH" => Some("hash-key-for-the-door-tests".into()),
        "TG_DOORS_ADMIN" => Some(ADMIN.into()),
        _ => None,
    }
}

fn node_config(name: &str, seeds: &[String], clustered: bool) -> Config {
    let mut c = config(&[("basic", limit(10, "1h"))], &[]);
    c.resp.enabled = true;
    c.resp.tcp = "127.0.0.1:0".into();
    c.auth.admin.enabled = true;
    c.auth.admin.secret_env = Some("TG_DOORS_ADMIN".into());
    c.limiter.hash_key_env = Some("TG_DOORS_HASH".into());
    c.cluster.enabled = clustered;
    if clustered {
        c.cluster.node_name = Some(name.into());
        c.cluster.gossip = Some("127.0.0.1:0".into());
        c.cluster.seeds = seeds.to_vec();
        c.cluster.secret_env = Some("TG_DOORS_CLUSTER".into());
        c.cluster.join_timeout = "200ms".into();
    }
    c
}

async fn start_node(c: Config) -> ServerHandle {
    ServerBuilder::new(c)
        .env(env)
        .start()
        .await
        .expect("server starts")
}

async fn admin_cluster(server: &ServerHandle) -> serde_json::Value {
    let mut http = tcp_client(server).await;
    http.send(&format!(
        "GET /admin/cluster HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
    ))
    .await;
    let r = http.read_response().await.expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn info_cluster(server: &ServerHandle) -> String {
    let mut resp = tokio::net::TcpStream::connect(server.resp_addr().unwrap())
        .await
        .unwrap();
    resp.write_all(b"INFO cluster\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // A bulk string: `$<len>\r\n<text>\r\n`.
    loop {
        let n = tokio::time::timeout(WAIT, resp.read(&mut buf))
            .await
            .expect("INFO in time")
            .unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n") {
            let len: usize = head.trim_start_matches('$').parse().unwrap();
            if body.len() >= len + 2 {
                return body[..len].to_string();
            }
        }
    }
}

async fn remaining(server: &ServerHandle, key: &str, hits: u64) -> u64 {
    let mut http = tcp_client(server).await;
    http.get(&format!("/check?key={key}&tier=basic&hits={hits}"))
        .await
        .json()["remaining"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_join_and_every_door_shows_the_cluster() {
    let a = start_node(node_config("door-a", &[], true)).await;
    let a_gossip = a.cluster_addr().expect("a cluster address");
    let b = start_node(node_config("door-b", &[a_gossip.to_string()], true)).await;

    // Each lists the other, alive, with its generation and a recent last word.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (ra, rb) = loop {
        let (ra, rb) = (admin_cluster(&a).await, admin_cluster(&b).await);
        let alive = |r: &serde_json::Value, peer: &str| {
            r["peers"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == peer && p["state"] == "alive"))
        };
        if alive(&ra, "door-b")
            && alive(&rb, "door-a")
            && ra["ready"] == true
            && rb["ready"] == true
        {
            break (ra, rb);
        }
        assert!(tokio::time::Instant::now() < deadline, "no join: {ra} {rb}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ra["enabled"], true);
    assert_eq!(ra["node"], "door-a");
    assert_eq!(ra["gossip"], a_gossip.to_string());
    assert_eq!(ra["live_peers"], 1);
    let peer = &ra["peers"][0];
    assert_eq!(peer["generation"], rb["generation"]);
    assert_eq!(peer["address"], rb["gossip"]);
    assert_eq!(peer["config_match"], true);
    assert!(peer["last_heard_ms"].as_u64().unwrap() < 10_000);
    assert_ne!(ra["generation"], rb["generation"]);

    // /readyz carries the cluster condition.
    let mut http = tcp_client(&b).await;
    let ready = http.get("/readyz").await.json();
    assert_eq!(ready["checks"]["cluster"], true, "{ready}");

    // A count spent on one server is counted by the other.
    assert_eq!(remaining(&a, "user:shared", 4).await, 6);
    eventually_async("b counts a's 4 hits", || async {
        remaining(&b, "user:shared", 0).await == 6
    })
    .await;

    // INFO cluster says the same as the admin API.
    let info = info_cluster(&a).await;
    assert!(
        info.starts_with("# Cluster\r\ncluster_enabled:1\r\nnode:door-a\r\n"),
        "{info}"
    );
    assert!(info.contains("live_peers:1\r\n"), "{info}");
    assert!(
        info.contains("peer0:name=door-b,state=alive,generation="),
        "{info}"
    );
    // b merged a's counts, so it knows a's merge lag (the report is rebuilt every interval:
    // wait for the one after the merge).
    eventually_async("b's report shows a's merge lag", || async {
        admin_cluster(&b).await["peers"][0]["merge_lag_ms"].is_u64()
    })
    .await;

    tokio::time::timeout(WAIT, b.stop()).await.unwrap().unwrap();
    // b left gracefully: a drops it from its list rather than waiting to suspect it.
    eventually_async("a forgets b after its leave", || async {
        admin_cluster(&a).await["peers"]
            .as_array()
            .is_some_and(|p| p.iter().all(|p| p["name"] != "door-b"))
    })
    .await;
    tokio::time::timeout(WAIT, a.stop()).await.unwrap().unwrap();
}

#[tokio::test]
async fn without_a_cluster_both_doors_say_so() {
    let s = start_node(node_config("alone", &[], false)).await;
    assert!(s.cluster_addr().is_none());
    assert_eq!(
        admin_cluster(&s).await,
        serde_json::json!({ "enabled": false })
    );
    assert_eq!(info_cluster(&s).await, "# Cluster\r\ncluster_enabled:0\r\n");
    tokio::time::timeout(WAIT, s.stop()).await.unwrap().unwrap();
}

/// Polls an async condition until it holds, failing after [`WAIT`].
async fn eventually_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
