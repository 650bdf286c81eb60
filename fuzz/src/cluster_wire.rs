//! Fuzz body: the cluster counter plane's datagram decoder and encoder
//! (`tollgate::cluster::wire`).
//!
//! The input is used three ways. Invariants checked, beyond "never panics":
//! - as a datagram under a fixed key: refused with a reason whose label is one of
//!   `DropReason::LABELS`, or (for a seed signed with the key: nothing else can make a
//!   datagram that authenticates) accepted, and then its header and cells re-encode into
//!   exactly the same bytes;
//! - as the signed part of a datagram (the version byte forced, then signed with the key,
//!   so the parser behind the MAC is reached): never refused for its MAC, and when accepted
//!   its header and cells re-encode into exactly the same bytes (one encoding per datagram);
//! - as a list of cells (36 bytes each: limit, state hash, window, start, count): encoded
//!   into datagrams of at most `MAX_DATAGRAM_BYTES` that decode back to exactly the
//!   well-formed cells, in order, with the ill-formed ones counted as skipped; and a bit of
//!   the first datagram, chosen by the input, flipped: refused.

use tollgate::cluster::wire::{
    decode, ClusterKey, Datagram, DropReason, Encoder, Freshness, HEADER_BYTES, MAX_DATAGRAM_BYTES,
    TAG_BYTES, VERSION,
};
use tollgate::limiter::{CellId, MAX_WINDOW_SECS};

const SECRET: &[u8; 32] = b"tollgate fuzz cluster secret 32b";
const NOW: u64 = 1_750_000_000_000;
const ANY_TIME: Freshness = Freshness {
    max_age_ms: u64::MAX,
    max_ahead_ms: u64::MAX,
};
const RECORD: usize = 36;

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

fn label_known(reason: DropReason) -> bool {
    DropReason::LABELS.contains(&reason.as_str())
}

/// An accepted datagram's header and cells encode into exactly `bytes` again (a datagram of
/// no cells has nothing to encode: the encoder sends none).
fn assert_reencodes(key: &ClusterKey, d: Datagram<'_>, bytes: &[u8]) {
    let cells: Vec<(CellId, u64)> = d.cells.clone().collect();
    assert_eq!(cells.len(), d.cells.len());
    assert!(cells.iter().all(|(c, _)| c.is_well_formed()));
    if cells.is_empty() {
        assert_eq!(bytes.len(), HEADER_BYTES + TAG_BYTES);
        return;
    }
    let h = d.header;
    let mut again = Vec::new();
    let mut enc = Encoder::new(key.clone(), h.node, h.generation, h.sequence);
    enc.encode(h.sent_at_ms, cells, |b| again.push(b.to_vec()));
    assert_eq!(again, vec![bytes.to_vec()], "not the one encoding");
}

pub fn run(data: &[u8]) {
    let key = ClusterKey::new(SECRET).expect("a 32-byte secret");

    // 1. Arbitrary bytes as a datagram.
    let fresh = Freshness {
        max_age_ms: 5_000,
        max_ahead_ms: 1_000,
    };
    match decode(data, &key, NOW, fresh) {
        Ok(d) => assert_reencodes(&key, d, data),
        Err(reason) => assert!(label_known(reason), "{reason:?}"),
    }

    // 2. Arbitrary bytes, signed: the parser behind the MAC.
    let mut signed = data[..data.len().min(MAX_DATAGRAM_BYTES - TAG_BYTES)].to_vec();
    if let Some(first) = signed.first_mut() {
        *first = VERSION;
    }
    key.append_tag(&mut signed);
    match decode(&signed, &key, NOW, ANY_TIME) {
        Ok(d) => assert_reencodes(&key, d, &signed),
        Err(reason) => {
            assert!(label_known(reason), "{reason:?}");
            assert!(
                !matches!(
                    reason,
                    DropReason::BadMac | DropReason::BadVersion | DropReason::TooLong
                ),
                "a signed datagram refused as {reason:?}"
            );
        }
    }

    // 3. Arbitrary cells: encoded, decoded back, and one bit flipped.
    let mut cells = Vec::new();
    for r in data.chunks_exact(RECORD) {
        let window_secs =
            u64::from(u32::from_be_bytes([r[16], r[17], r[18], r[19]])) % (MAX_WINDOW_SECS + 2);
        let start = u64_at(r, 20);
        // Mostly aligned starts; the low bit of the state hash's last byte asks for a
        // raw (possibly misaligned) one.
        let window_start_secs = if r[15] & 1 == 1 || window_secs == 0 {
            start
        } else {
            start / window_secs * window_secs
        };
        let cell = CellId {
            limit: u64_at(r, 0),
            state_hash: u64_at(r, 8),
            window_secs,
            window_start_secs,
        };
        cells.push((cell, u64_at(r, 28)));
    }
    let sent_at = data.first().map_or(NOW, |&b| NOW ^ u64::from(b));
    let mut enc = Encoder::new(key.clone(), 1, 2, u64::MAX - 1);
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let done = enc.encode(sent_at, cells.iter().copied(), |b| {
        datagrams.push(b.to_vec())
    });
    let well_formed: Vec<(CellId, u64)> = cells
        .iter()
        .copied()
        .filter(|(c, _)| c.is_well_formed())
        .collect();
    assert_eq!(done.skipped, cells.len() - well_formed.len());
    assert_eq!(done.cells, well_formed.len());
    assert_eq!(done.datagrams, datagrams.len());
    let mut back = Vec::new();
    for (i, d) in datagrams.iter().enumerate() {
        assert!(
            d.len() <= MAX_DATAGRAM_BYTES,
            "datagram of {} bytes",
            d.len()
        );
        let got = decode(d, &key, sent_at, ANY_TIME).expect("own datagram refused");
        assert_eq!(got.header.sequence, (u64::MAX - 1).wrapping_add(i as u64));
        back.extend(got.cells);
    }
    assert_eq!(back, well_formed);
    if let Some(first) = datagrams.first() {
        let pick = data
            .iter()
            .fold(0usize, |h, &b| h.wrapping_mul(31) ^ usize::from(b));
        let bit = pick % (first.len() * 8);
        let mut flipped = first.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let reason = decode(&flipped, &key, sent_at, ANY_TIME)
            .map(|_| ())
            .expect_err("a flipped bit was accepted");
        let want = if bit < 8 {
            DropReason::BadVersion
        } else {
            DropReason::BadMac
        };
        assert_eq!(reason, want, "bit {bit}");
    }
}
