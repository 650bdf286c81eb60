//! The revocation log under `kill -9`: a stream of `POST /admin/revoke` to a real `tollgate
//! serve`, killed in the middle of it; after a restart on the same log, every revocation that
//! was acknowledged is in force (listed, and its token refused). An answer is sent only once
//! the revocation is fsynced, so nothing acknowledged may be lost; what was in flight at the
//! kill may or may not be there. Then the log is damaged by hand (one `exp` digit changed):
//! the next start still comes up, keeps every other revocation, refuses to honour the changed
//! record, and reports the loss in `/metrics`.

mod cluster_support;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cluster_support::*;

#[test]
fn every_acknowledged_revocation_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let ip = [Ipv4Addr::new(127, 0, 0, 2)];
    let alone = Limits {
        cluster: false,
        ..Limits::HUNDRED_AN_HOUR
    };
    let mut node = Node::start(dir.path(), &ip, 0, free_gossip_port(&ip), alone, None);
    let exp = now_secs() + 3600;

    // Revoke as fast as answers come, recording each acknowledged jti, until told to stop.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let http = node.http;
    let streamer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let jti = format!("crash-{i}");
                let body = format!(r#"{{"jti":"{jti}","exp":{exp}}}"#);
                let r = try_request(
                    http,
                    "POST",
                    "/admin/revoke",
                    &[
                        ("Authorization", &format!("Bearer {ADMIN_SECRET}")),
                        ("Content-Type", "application/json"),
                    ],
                    body.as_bytes(),
                );
                match r {
                    Ok(resp) if resp.status == 201 || resp.status == 200 => {
                        acked.lock().unwrap().push(jti)
                    }
                    // The kill: connection refused or cut mid-answer.
                    _ => return,
                }
                i += 1;
            }
        })
    };
    // Kill once a good number are acknowledged, while the stream is running.
    wait_until("200 revocations acknowledged", || {
        acked.lock().unwrap().len() >= 200
    });
    node.kill9();
    stop.store(true, Ordering::Relaxed);
    streamer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);

    node.spawn();
    let r = get(
        node.http,
        "/admin/revocations",
        &[("Authorization", &format!("Bearer {ADMIN_SECRET}"))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let listed: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let held: std::collections::HashSet<&str> = listed["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["jti"].as_str())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|j| !held.contains(j.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged revocations lost after kill -9: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    // And in force: the last acknowledged one's token is refused.
    let (token, _) = token("u-crash", acked.last().unwrap());
    assert_eq!(node.auth(&token), 401);
    // Every record the restart read verified by its checksum; at most an unacknowledged tail
    // was cut off.
    let records = log_records(&node);
    assert_eq!(records("corrupt"), 0);
    assert!(records("verified") >= acked.len() as i64);
    println!(
        "{} acknowledged revocations, all in force after kill -9 and restart",
        acked.len()
    );
    node.terminate();

    // One changed `exp` digit in the first acknowledged revocation's record: JSON that still
    // parses, a revocation nobody made.
    let log = dir.path().join("node1.revocations");
    let text = std::fs::read_to_string(&log).unwrap();
    let first = format!("\"jti\":\"{}\"", acked[0]);
    let line_start = text
        .find(&first)
        .map(|at| text[..at].rfind('\n').map_or(0, |n| n + 1));
    let line_start = line_start.expect("the first acknowledged revocation is in the log");
    let digit = line_start + text[line_start..].find("}\n").unwrap() - 1;
    let mut bytes = text.into_bytes();
    bytes[digit] = if bytes[digit] == b'9' {
        b'0'
    } else {
        bytes[digit] + 1
    };
    std::fs::write(&log, bytes).unwrap();

    node.spawn();
    let records = log_records(&node);
    assert_eq!(records("corrupt"), 1, "the changed record is detected");
    let held = listed_jtis(&node);
    assert!(
        !held.contains(&acked[0]),
        "a record failing its checksum is not honoured"
    );
    assert!(
        acked[1..].iter().all(|j| held.contains(j)),
        "every intact record is kept"
    );
    assert!(dir.path().join("node1.revocations.damaged").exists());
    node.terminate();
}

/// The jtis `/admin/revocations` lists.
fn listed_jtis(node: &Node) -> std::collections::HashSet<String> {
    let r = get(
        node.http,
        "/admin/revocations",
        &[("Authorization", &format!("Bearer {ADMIN_SECRET}"))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let listed: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    listed["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| Some(v["jti"].as_str()?.to_string()))
        .collect()
}

/// `tollgate_revocation_log_records{state}` from `/metrics`: what the last start read.
fn log_records(node: &Node) -> impl Fn(&str) -> i64 {
    let r = get(node.http, "/metrics", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.body;
    move |state| {
        let series = format!("tollgate_revocation_log_records{{state=\"{state}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in /metrics"))
            .trim()
            .parse()
            .unwrap()
    }
}
