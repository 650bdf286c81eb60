//! A partitioned cluster of real processes: five `tollgate serve` children inside a network
//! namespace this test creates (its own loopback, so the rules touch nothing else), split
//! two ways by nftables rules on the namespace's output hook: {node1, node2} | {node3, node4,
//! node5}, then one way, then healed.
//!
//! Asserts what docs/cluster.md states: split k ways, the cluster admits at most (k − 1)·L
//! more than the limit (plus the connected bound on each side); a revocation made on one side
//! is refused on that side at once and on the other once healed; after healing every node
//! agrees on the count.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables): without them it prints why and passes
//! without running (tests/run.sh installs nftables). Bounded in time; the namespace and every
//! process are removed at the end, also on failure.

mod cluster_support;

use std::process::Command;
use std::time::Instant;

use cluster_support::*;

const LIMITS: Limits = Limits::HUNDRED_AN_HOUR;

/// The network namespace, deleted when dropped.
struct Netns(String);

impl Netns {
    /// Runs a command inside the namespace.
    fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["ip", "netns", "exec", &self.0];
        all.extend_from_slice(args);
        run(&all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates the namespace with its loopback up and an empty nftables table, or says why not.
fn namespace() -> Result<Netns, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: network namespaces need CAP_SYS_ADMIN".into());
    }
    for tool in ["ip", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Err(format!(
                "{tool} is not installed (apt-get install iproute2 nftables)"
            ));
        }
    }
    let name = format!("tollgate-part-{}", std::process::id());
    run(&["ip", "netns", "add", &name])?;
    let ns = Netns(name);
    ns.exec(&["ip", "link", "set", "lo", "up"])?;
    ns.exec(&["nft", "add", "table", "inet", "tollgate_test"])?;
    ns.exec(&[
        "nft",
        "add chain inet tollgate_test out { type filter hook output priority 0; }",
    ])?;
    Ok(ns)
}

/// Enters the namespace on this thread: its sockets are then the namespace's.
fn enter(ns: &Netns) {
    let path = std::ffi::CString::new(format!("/var/run/netns/{}", ns.0)).unwrap();
    // SAFETY: a valid C string; the descriptor is closed after setns.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    assert!(fd >= 0, "open {}", ns.0);
    // SAFETY: fd is a network-namespace descriptor; CLONE_NEWNET moves this thread only.
    let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    assert_eq!(rc, 0, "setns into {}", ns.0);
}

/// Drops every packet from a node of `from` to a node of `to` (gossip, counter datagrams
/// and revocation pushes alike; the test's own requests come from 127.0.0.1 and pass).
fn block(ns: &Netns, from: &[&Node], to: &[&Node]) {
    let set = |nodes: &[&Node]| {
        nodes
            .iter()
            .map(|n| n.ip.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    ns.exec(&[
        "nft",
        &format!(
            "add rule inet tollgate_test out ip saddr {{ {} }} ip daddr {{ {} }} drop",
            set(from),
            set(to)
        ),
    ])
    .unwrap();
}

fn heal(ns: &Netns) {
    ns.exec(&["nft", "flush", "chain", "inet", "tollgate_test", "out"])
        .unwrap();
}

/// Sends `total` checks of `user` round-robin over `nodes`, paced at about 200/s.
fn spread(nodes: &[&Node], user: &str, total: usize) -> u64 {
    let gap = std::time::Duration::from_millis(5);
    let start = Instant::now();
    let mut admitted = 0;
    for i in 0..total {
        if let Some(w) = (start + gap * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(w); // pacing the load, not synchronisation
        }
        if nodes[i % nodes.len()].check(user, 1).0 {
            admitted += 1;
        }
    }
    admitted
}

#[test]
fn a_partition_admits_at_most_one_limit_per_side_and_heals() {
    let ns = match namespace() {
        Ok(ns) => ns,
        Err(why) => {
            println!("skipped: cannot make a network namespace with nftables here: {why}");
            return;
        }
    };
    // Everything below runs on one thread inside the namespace.
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&ns);
            scenario(&ns);
        })
        .join()
        .unwrap();
    });
}

fn scenario(ns: &Netns) {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_cluster(dir.path(), 5, LIMITS, Some(&ns.0));
    let all: Vec<&Node> = nodes.iter().collect();
    let (a, b) = (&all[..2], &all[2..]);

    // Two ways: each side shares the limit within itself only.
    block(ns, a, b);
    block(ns, b, a);
    wait_until("each side sees the other down", || {
        nodes.iter().all(|n| {
            let c = n.cluster();
            c["live_peers"].as_u64()
                == Some(if a.iter().any(|m| m.name == n.name) {
                    1
                } else {
                    2
                })
        })
    });
    let admitted = spread(&all, "split", 600);
    let l = LIMITS.limit;
    // k = 2: at most (k − 1)·L extra, plus the connected bound on each side (R·D + θ per
    // other node of the side; D two intervals plus slack, R at most 200/s).
    let per_side = 200.0 * 0.2 + 4.0;
    println!(
        "two-way partition: admitted {admitted} (limit {l}, stated at most {} + {per_side})",
        2 * l
    );
    assert!(admitted >= l);
    assert!(
        admitted as f64 <= (2 * l) as f64 + per_side,
        "a two-way partition admitted {admitted}, more than 2·L + the connected bound"
    );

    // A revocation on one side is refused there, and on the other side once healed.
    let (token, exp) = token("u-split", "jti-split-1");
    nodes[0].revoke_jti("jti-split-1", exp);
    wait_until("the revoking side refuses the token", || {
        a.iter().all(|n| n.auth(&token) == 401)
    });
    assert!(
        b.iter().all(|n| n.auth(&token) == 200),
        "the other side cannot know of it while partitioned"
    );

    // One way: node1's datagrams reach nobody. What it admits stays its own until the heal.
    heal(ns);
    block(ns, &all[..1], &all[1..]);
    for _ in 0..20 {
        assert!(nodes[0].check("one-way", 1).0);
    }
    for _ in 0..10 {
        assert!(nodes[1].check("one-way", 1).0);
    }
    // (Whether node1 hears node2's hits meanwhile depends on whether node2 still sends to a
    // peer it cannot hear from; only the heal is asserted.)
    assert_eq!(
        nodes[1].check("one-way", 0).1,
        Some(l - 10),
        "node2 cannot hear of node1's hits"
    );
    // Healed: every node agrees, and the revocation is everywhere.
    heal(ns);
    wait_converged_membership(&nodes);
    wait_until("every node refuses the token after the heal", || {
        all.iter().all(|n| n.auth(&token) == 401)
    });
    wait_until(
        "every node counts node1's one-way hits after the heal",
        || all.iter().all(|n| n.check("one-way", 0).1 == Some(l - 30)),
    );
    wait_until(
        "every node agrees on the split key's count after the heal",
        || {
            let r: Vec<Option<u64>> = all.iter().map(|n| n.check("split", 0).1).collect();
            r.iter().all(|x| *x == Some(0))
        },
    );
}
