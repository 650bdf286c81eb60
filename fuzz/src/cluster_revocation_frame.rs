//! Fuzz body: the cluster revocation plane's frame decoder and encoder
//! (`tollgate::cluster::revocation_plane::frame`).
//!
//! The input is used two ways. Invariants checked, beyond "never panics":
//! - as a frame (the bytes after its length prefix) under a fixed key: refused with a reason
//!   whose label is one of `FrameError::LABELS`, or (for a seed signed with the key: nothing
//!   else authenticates) accepted, and then it re-encodes into exactly the same bytes;
//! - as the signed part of a frame (the version byte forced, then signed with the key, so the
//!   parser behind the MAC is reached): never refused for its MAC, and when accepted it
//!   re-encodes into exactly the same bytes (one encoding per frame).

use tollgate::cluster::revocation_plane::frame::{
    decode, encode, FrameError, KEY_LABEL, LENGTH_BYTES, VERSION,
};
use tollgate::cluster::wire::{ClusterKey, Freshness};

const SECRET: &[u8; 32] = b"tollgate fuzz cluster secret 32b";
const ANY_TIME: Freshness = Freshness {
    max_age_ms: u64::MAX,
    max_ahead_ms: u64::MAX,
};

pub fn run(data: &[u8]) {
    let key = ClusterKey::for_plane(SECRET, KEY_LABEL).expect("a long enough secret");
    match decode(data, &key, 0, ANY_TIME) {
        Ok(f) => assert_eq!(&encode(&f, &key)[LENGTH_BYTES..], data, "one encoding"),
        Err(e) => assert!(FrameError::LABELS.contains(&e.as_str())),
    }
    if data.len() > 1 << 16 {
        return;
    }
    let mut signed = data.to_vec();
    if let Some(b) = signed.first_mut() {
        *b = VERSION;
    }
    key.append_tag(&mut signed);
    match decode(&signed, &key, 0, ANY_TIME) {
        Ok(f) => assert_eq!(
            &encode(&f, &key)[LENGTH_BYTES..],
            &signed[..],
            "one encoding"
        ),
        Err(e) => assert!(
            e != FrameError::BadMac,
            "a frame signed with the key authenticates"
        ),
    }
}
