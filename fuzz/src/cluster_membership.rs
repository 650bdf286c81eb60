//! Fuzz body: the cluster membership protocol's receive path
//! (`tollgate::cluster::swim::SwimNode::receive`).
//!
//! The input is used two ways. Invariants checked, beyond "never panics":
//! - as a datagram: refused with a reason among `DROP_REASONS`, and (nothing else can make
//!   a datagram that authenticates) always refused unless it is a seed signed with the key;
//! - as the payload of a datagram signed with the key, so that the codec and foca behind the
//!   tag are reached: never refused for its length, kind or tag, and every datagram the node
//!   sends in answer is a membership datagram of at most `MAX_DATAGRAM_BYTES`.

use std::net::SocketAddr;
use std::time::Instant;

use tollgate::cluster::membership::{Generation, NodeValues};
use tollgate::cluster::swim::{
    membership_key, Outbox, SwimNode, SwimTiming, DROP_REASONS, MEMBERSHIP_KIND,
};
use tollgate::cluster::wire::{MAX_DATAGRAM_BYTES, TAG_BYTES};

const SECRET: &[u8; 32] = b"tollgate fuzz cluster secret 32b";

fn node(now: Instant) -> SwimNode {
    let gossip = SocketAddr::from(([10, 0, 0, 1], 7946));
    let values = NodeValues {
        plane: gossip,
        generation: Generation(1),
        config_hash: 7,
        revocation_digest: 0,
        ready: true,
    };
    let key = membership_key(SECRET).expect("a 32-byte secret");
    SwimNode::new("n0", gossip, values, key, SwimTiming::default(), 1, now).expect("a name")
}

fn check_answers(out: &Outbox) {
    for (_, d) in &out.datagrams {
        assert!(d.len() <= MAX_DATAGRAM_BYTES, "answer of {} bytes", d.len());
        assert_eq!(d[0], MEMBERSHIP_KIND);
    }
}

pub fn run(data: &[u8]) {
    let now = Instant::now();
    let from = SocketAddr::from(([10, 0, 0, 2], 7946));

    // 1. Arbitrary bytes as a datagram.
    let mut n = node(now);
    let mut out = Outbox::new();
    if let Err(reason) = n.receive(data, from, now, &mut out) {
        assert!(DROP_REASONS.contains(&reason), "{reason}");
    }
    check_answers(&out);

    // 2. Arbitrary bytes, signed: the codec and foca behind the tag.
    let mut signed = vec![MEMBERSHIP_KIND];
    signed.extend_from_slice(&data[..data.len().min(MAX_DATAGRAM_BYTES - 1 - TAG_BYTES)]);
    membership_key(SECRET)
        .expect("a 32-byte secret")
        .append_tag(&mut signed);
    let mut n = node(now);
    let mut out = Outbox::new();
    if let Err(reason) = n.receive(&signed, from, now, &mut out) {
        assert!(DROP_REASONS.contains(&reason), "{reason}");
        assert!(
            !matches!(reason, "too_long" | "bad_kind" | "bad_mac")
                && (reason != "too_short" || data.is_empty()),
            "a signed datagram refused as {reason}"
        );
    }
    check_answers(&out);
}
