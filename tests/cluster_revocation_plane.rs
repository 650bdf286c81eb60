//! The revocation plane between three in-process nodes on real loopback TCP sockets, with an
//! in-memory membership: a revocation made on one node is in force on all; one that no push
//! carried is repaired by digest; a node that was away gets what it missed when it comes
//! back; a joining node is not ready until it has its peers' revocations, and a lone node is
//! ready after the join timeout; bad frames are dropped and counted and the plane carries
//! on; a merge never weakens a revocation.
//!
//! Every wait is on a condition, with a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use tollgate::auth::{Revocation, RevocationOptions, RevocationStore};
use tollgate::clock::{ManualClock, SystemClock};
use tollgate::cluster::membership::{Generation, Membership, MemoryNetwork, NodeValues, Timeouts};
use tollgate::cluster::metrics::ClusterMetrics;
use tollgate::cluster::revocation_plane::frame::{self, Frame, Message, KEY_LABEL};
use tollgate::cluster::revocation_plane::{
    RevocationPlane, RevocationPlaneOptions, FEED_CAPACITY, PLANE,
};
use tollgate::cluster::wire::ClusterKey;
use tollgate::readiness::ReadinessFlag;

const SECRET: &[u8] = b"tollgate test cluster secret, 32+ bytes";
const DEADLINE: Duration = Duration::from_secs(15);

fn key() -> ClusterKey {
    ClusterKey::for_plane(SECRET, KEY_LABEL).unwrap()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn jti(id: &str) -> Revocation {
    Revocation::Jti {
        jti: id.into(),
        exp: now_secs() + 3600,
    }
}

/// Waits until `cond` holds, failing the test with `what` past the deadline.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn options(join_timeout_ms: u64) -> RevocationPlaneOptions {
    let mut o = RevocationPlaneOptions::new(
        Duration::from_millis(20),
        Duration::from_millis(join_timeout_ms),
    );
    o.read_timeout = Duration::from_millis(300);
    o.min_fetch_spacing = Duration::from_millis(100);
    o
}

struct Node {
    name: String,
    store: Arc<RevocationStore>,
    ready: ReadinessFlag,
    metrics: ClusterMetrics,
    addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    membership: Arc<tollgate::cluster::membership::MemoryMembership>,
}

impl Node {
    /// Starts the plane of `name` on a fresh loopback port, joins it to `net`, and publishes
    /// its digest and readiness every few milliseconds (the cluster driver's part).
    async fn start(
        net: &MemoryNetwork,
        name: &str,
        store: Arc<RevocationStore>,
        options: RevocationPlaneOptions,
    ) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let generation = Generation::at_start(now_secs() as u64 * 1000);
        let ready = ReadinessFlag::default();
        let values = move |store: &RevocationStore, ready: bool| NodeValues {
            plane: addr,
            generation,
            config_hash: 0,
            revocation_digest: store.digest_u64(),
            ready,
        };
        let membership = Arc::new(net.join(name, values(&store, false)));
        let metrics = ClusterMetrics::new(&prometheus::Registry::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let plane = RevocationPlane {
            feed: store.subscribe(FEED_CAPACITY),
            store: store.clone(),
            membership: membership.clone(),
            key: key(),
            name: name.into(),
            generation,
            ready: ready.clone(),
            metrics: metrics.clone(),
            options,
        };
        let task = plane.spawn(listener, shutdown_rx);
        assert!(!ready.get(), "not ready before the join");
        let view = membership.clone();
        let publisher = {
            let (store, ready) = (store.clone(), ready.clone());
            tokio::spawn(async move {
                loop {
                    membership.publish(values(&store, ready.get()));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        Node {
            name: name.into(),
            store,
            ready,
            metrics,
            addr,
            shutdown,
            tasks: vec![task, publisher],
            membership: view,
        }
    }

    /// Whether this node's membership view shows `peer` ready (its published value).
    fn sees_ready(&self, peer: &str) -> bool {
        self.membership
            .peers()
            .iter()
            .any(|p| &*p.name == peer && p.values.ready)
    }

    fn has(&self, r: &Revocation) -> bool {
        self.store.list().contains(r)
    }

    fn events(&self, event: &str) -> u64 {
        self.metrics.revocations.with_label_values(&[event]).get()
    }

    fn dropped(&self, reason: &str) -> u64 {
        self.metrics
            .dropped
            .with_label_values(&[PLANE, reason])
            .get()
    }

    async fn revoke(&self, r: Revocation) {
        let store = self.store.clone();
        assert!(tokio::task::spawn_blocking(move || store.apply(r))
            .await
            .unwrap()
            .unwrap());
    }

    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

fn network() -> MemoryNetwork {
    // Peers never age into suspicion here: the tests say who leaves.
    MemoryNetwork::new(Arc::new(ManualClock::new(1_000)), Timeouts::default())
}

fn store() -> Arc<RevocationStore> {
    Arc::new(RevocationStore::in_memory(
        Arc::new(SystemClock),
        RevocationOptions::default(),
    ))
}

async fn three(net: &MemoryNetwork) -> Vec<Node> {
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        nodes.push(Node::start(net, name, store(), options(200)).await);
    }
    for n in &nodes {
        until(&format!("{} ready", n.name), || n.ready.get()).await;
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_on_one_node_is_in_force_on_every_node() {
    let net = network();
    let nodes = three(&net).await;
    let mut latencies = Vec::new();
    for i in 0..60 {
        let from = &nodes[i % 3];
        let r = jti(&format!("token-{i}"));
        let start = Instant::now();
        from.revoke(r.clone()).await;
        until("the revocation on every node", || {
            nodes.iter().all(|n| n.has(&r))
        })
        .await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "revocation effective on all 3 nodes: p50 {:?}, p99 {:?}, max {:?}",
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
    let pushed: u64 = nodes.iter().map(|n| n.events("pushed")).sum();
    assert!(
        pushed >= 120,
        "each revocation pushed to two peers: {pushed}"
    );
    until("every push acknowledged", || {
        nodes.iter().map(|n| n.events("acked")).sum::<u64>() >= 120
    })
    .await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_push_carried_is_repaired_by_digest() {
    let net = network();
    let nodes = three(&net).await;
    // Taken in by a merge, so never announced to the plane: only the digest can spread it.
    let r = jti("merged-quietly");
    nodes[0].store.merge([r.clone()]).unwrap();
    until("the repair on b and c", || nodes.iter().all(|n| n.has(&r))).await;
    // A merge puts a revocation in force before it returns and is counted: wait for the count
    // rather than read it the moment the revocation shows.
    until("b and c count a repair", || {
        nodes[1].events("repaired") >= 1 && nodes[2].events("repaired") >= 1
    })
    .await;
    until("equal digests", || {
        nodes
            .iter()
            .all(|n| n.store.digest() == nodes[0].store.digest())
    })
    .await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_away_when_a_revocation_was_made_gets_it_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.log");
    let durable = || {
        Arc::new(
            RevocationStore::open_with(
                Some(&path),
                Arc::new(SystemClock),
                RevocationOptions::default(),
            )
            .unwrap(),
        )
    };
    let net = network();
    let mut nodes = three(&net).await;
    nodes.pop().unwrap().stop().await;
    net.leave("c");
    let r = jti("while-c-was-away");
    nodes[0].revoke(r.clone()).await;
    until("b has it", || nodes[1].has(&r)).await;
    // c comes back, its log replayed, on a new port, and joins with a long join timeout: it
    // is ready only once it has fetched what it missed.
    let c = Node::start(&net, "c", durable(), options(60_000)).await;
    until("c ready", || c.ready.get()).await;
    assert!(c.has(&r), "ready only with what it missed");
    assert!(c.events("repaired") >= 1);
    // A revocation made on c now reaches the others by push.
    let s = jti("made-on-c");
    c.revoke(s.clone()).await;
    until("a and b have it", || nodes.iter().all(|n| n.has(&s))).await;
    c.stop().await;
    // What c received outlives it: its log holds it.
    let reopened = durable();
    assert!(reopened.list().contains(&r));
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_is_ready_only_once_it_has_fetched_every_revocation() {
    let net = network();
    let a = Node::start(&net, "a", store(), options(50)).await;
    until("a ready alone", || a.ready.get()).await;
    // More than one frame's worth, so the list comes in chunks.
    let many: Vec<Revocation> = (0..frame::MAX_ENTRIES_PER_FRAME + 500)
        .map(|i| jti(&format!("j{i}")))
        .collect();
    a.store.merge(many.clone()).unwrap();
    let b = Node::start(&net, "b", store(), options(60_000)).await;
    until("b ready", || b.ready.get()).await;
    assert_eq!(b.store.len(), many.len(), "ready only with the whole list");
    assert_eq!(b.events("repaired"), many.len() as u64);
    // At least the join's fetch (a digest repair may follow on a loaded machine, when an
    // interval's digest arrives late; it learns nothing more).
    assert!(
        b.metrics
            .snapshot_transfers
            .with_label_values(&[PLANE, "in"])
            .get()
            >= 1
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_gets_what_only_one_of_its_peers_holds() {
    // No digest repair during the test (an hour's grace), so what a joiner has at ready it
    // got from its join fetches. A revocation acknowledged by its recorder is for a moment
    // held by that node alone (its pushes are in flight): here each of a and b holds one the
    // other does not, and the joiner must have both.
    let quiet = || {
        let mut o = options(60_000);
        o.repair_grace = Duration::from_secs(3600);
        o
    };
    let net = network();
    let a = Node::start(&net, "a", store(), options(50)).await;
    until("a ready alone", || a.ready.get()).await;
    let b = Node::start(&net, "b", store(), quiet()).await;
    until("b ready", || b.ready.get()).await;
    // Its readiness published, so that a joiner sees it among the ready peers.
    until("a sees b ready", || a.sees_ready("b")).await;
    let (only_a, only_b) = (jti("only-on-a"), jti("only-on-b"));
    a.store.merge([only_a.clone()]).unwrap();
    b.store.merge([only_b.clone()]).unwrap();
    let c = Node::start(&net, "c", store(), quiet()).await;
    until("c ready", || c.ready.get()).await;
    assert!(c.has(&only_a), "the joiner has what only a held");
    assert!(c.has(&only_b), "the joiner has what only b held");
    for n in [a, b, c] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_alone_is_ready_after_the_join_timeout() {
    let net = network();
    let start = Instant::now();
    let a = Node::start(&net, "a", store(), options(300)).await;
    until("a ready", || a.ready.get()).await;
    assert!(start.elapsed() >= Duration::from_millis(300));
    a.stop().await;
}

/// Sends `body` as one frame (with its length prefix) and waits for the peer to close.
async fn send_raw(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut buf = [0u8; 64];
    let _ = tokio::time::timeout(DEADLINE, tokio::io::AsyncReadExt::read(&mut s, &mut buf)).await;
}

fn prefixed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_are_dropped_and_counted_and_the_plane_carries_on() {
    let net = network();
    let nodes = three(&net).await;
    let a = &nodes[0];
    let push = Frame {
        sender: "mallory".into(),
        generation: 1,
        sent_at_ms: now_secs() as u64 * 1000,
        request: 1,
        message: Message::Push {
            revocations: vec![jti("forged")],
        },
    };
    // Signed with another plane's key.
    let other = ClusterKey::for_plane(SECRET, b"tollgate cluster counter plane v1").unwrap();
    send_raw(a.addr, &frame::encode(&push, &other)).await;
    until("bad_mac counted", || a.dropped("bad_mac") == 1).await;
    // Garbage of a plausible length.
    send_raw(a.addr, &prefixed(&[7u8; 100])).await;
    until("bad_version counted", || a.dropped("bad_version") == 1).await;
    // A length over the limit: refused unread.
    send_raw(a.addr, &(frame::MAX_FRAME_BYTES as u32 + 1).to_be_bytes()).await;
    until("too_long counted", || a.dropped("too_long") == 1).await;
    // A frame begun and never finished.
    send_raw(a.addr, &[0, 0, 1]).await;
    until("timeout counted", || a.dropped("timeout") == 1).await;
    // Stale: sent long ago.
    let mut old = push.clone();
    old.sent_at_ms -= 10 * 60 * 1000;
    send_raw(a.addr, &frame::encode(&old, &key())).await;
    until("stale counted", || a.dropped("stale") == 1).await;
    assert!(!a.has(&jti("forged")));
    // The plane still works.
    let r = jti("after-the-noise");
    a.revoke(r.clone()).await;
    until("every node has it", || nodes.iter().all(|n| n.has(&r))).await;
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weaker_revocation_from_a_peer_never_weakens_one_held() {
    let net = network();
    let nodes = three(&net).await;
    let t = now_secs();
    let strong = Revocation::Subject {
        sub: "alice".into(),
        before: t,
        until: t + 100_000,
    };
    nodes[0].revoke(strong.clone()).await;
    until("everyone has it", || nodes.iter().all(|n| n.has(&strong))).await;
    // b records a weaker one of its own (an earlier `before`, a shorter retention)... it
    // changes nothing on b, so nothing is pushed; a stronger `before` with a shorter `until`
    // is pushed, and every node keeps the later of each.
    let mixed = Revocation::Subject {
        sub: "alice".into(),
        before: t + 10,
        until: t + 50,
    };
    nodes[1].revoke(mixed).await;
    let joined = Revocation::Subject {
        sub: "alice".into(),
        before: t + 10,
        until: t + 100_000,
    };
    until("the join on every node", || {
        nodes.iter().all(|n| n.has(&joined))
    })
    .await;
    for n in &nodes {
        assert_eq!(n.store.len(), 1);
    }
    for n in nodes {
        n.stop().await;
    }
}
