//! The counter plane's datagram: what one node tells its peers about its own counts.
//!
//! A datagram carries the sender's identity and a list of cells with this node's absolute
//! count in each ([`CellId`] and a `u64`, as [`crate::limiter::Limiter::drain_changed_cells`]
//! yields them and [`crate::limiter::Limiter::merge_cell`] takes them). Counts are absolute,
//! never increments, so a receiver merges by maximum and a lost, duplicated or reordered
//! datagram costs only staleness.
//!
//! # Layout (version 1)
//!
//! All fixed-width integers are big-endian; `varint` is unsigned LEB128 (7 bits a byte, low
//! group first), in its shortest form only.
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 1 | version | `1` ([`VERSION`]) |
//! | 8 | node | the sender's node id ([`node_id`] of its node name) |
//! | 8 | generation | the sender's generation, chosen at each start |
//! | 8 | sent at | Unix milliseconds when the datagram was encoded |
//! | 8 | sequence | the sender's datagram counter within its generation |
//! | 2 | cells | how many cells follow |
//! | 19–40 each | cell | limit (8), state hash (8), window seconds (varint), window index = window start ÷ window seconds (varint), count (varint) |
//! | 32 | tag | HMAC-SHA256 of every byte before it |
//!
//! **Why this encoding.** The limit fingerprint and the state hash are uniformly random
//! 64-bit values: a varint would make them longer (9–10 bytes), so they are fixed. Window
//! lengths (seconds to a day: 1–3 bytes), window indexes (a minute window today: 4 bytes)
//! and counts (usually under 2¹⁴: 1–2 bytes) are small numbers, so they are varints. The
//! window is sent as its index rather than its start, which is shorter and cannot be
//! misaligned. A typical cell takes 22–26 bytes, so a datagram holds about 45 of them (at
//! worst [`MAX_DATAGRAM_BYTES`] holds 28, at best [`MAX_CELLS_PER_DATAGRAM`]). The header is
//! fixed so that it is read without a parser. Only the shortest varint form is accepted, so
//! every datagram has exactly one encoding and decoding then re-encoding gives back the same
//! bytes (the fuzz target checks this).
//!
//! **Why 1,200 bytes.** It fits in one IPv6 packet over any link (the minimum MTU is 1,280,
//! less 40 + 8 bytes of IPv6 and UDP headers) and in IPv4 over the usual tunnels, so a
//! datagram is never fragmented: one lost fragment would lose the whole datagram.
//!
//! # Authentication
//!
//! The tag is HMAC-SHA256 ([`ring::hmac`]) under a key derived from the cluster secret
//! ([`ClusterKey`], at least [`MIN_SECRET_BYTES`] bytes) with a label naming this plane and
//! version, so that nothing signed for another use of the same secret is ever accepted here.
//! The decoder checks the tag (in constant time, [`ring::hmac::verify`]) before it reads any
//! field past the version: an unauthenticated datagram is never parsed.
//!
//! # Drop reasons
//!
//! [`decode`] returns the datagram or a [`DropReason`], each with a stable metric label
//! ([`DropReason::as_str`], all of them in [`DropReason::LABELS`]), checked in this order:
//! `too_long` (more than [`MAX_DATAGRAM_BYTES`]: refused on its length alone), `too_short`,
//! `bad_version`, `bad_mac`, `stale` (sent longer ago than [`Freshness::max_age_ms`]),
//! `future` (sent more than [`Freshness::max_ahead_ms`] ahead of the receiver's clock), and
//! `malformed` (cells that do not fit, a varint too long or not in shortest form, a cell
//! that is not [`CellId::is_well_formed`], bytes after the last cell; [`Malformation`] says
//! which). The decoder allocates nothing: [`Datagram::cells`] iterates over the validated
//! bytes.
//!
//! # Replays and old generations: the receiver's, and harmless
//!
//! The decoder keeps no state, so it drops neither replays nor datagrams of a sender's past
//! generation. Neither can raise a count above a true one: a replayed datagram re-asserts
//! counts its sender really had, and merging by maximum makes that a no-op; the freshness
//! bound stops a replay from outliving the window it speaks of. Which generation of a node is
//! live is known to the membership, not to the wire, so a receiver merges a datagram directly
//! only into the slot of a generation it knows live; any other generation's counts it merges
//! only when a live peer relays them (the counter plane's relay), and drops (and counts) the
//! rest. A datagram always names the node and generation whose counts it carries, which is
//! not always its sender's: a relay carries a dead generation's counts in that generation's
//! name. The sequence
//! number is for measuring loss and lag, not for filtering: datagrams of one interval carry
//! different cells, so dropping one that arrives after a later one would lose counts.

use std::fmt;

use ring::hmac;

use crate::limiter::CellId;

/// The format version this module writes and reads.
pub const VERSION: u8 = 1;

/// The largest datagram sent or accepted, in bytes (see the module doc for why).
pub const MAX_DATAGRAM_BYTES: usize = 1200;

/// Bytes before the cells: version, node, generation, sent at, sequence, cell count.
pub const HEADER_BYTES: usize = 1 + 8 + 8 + 8 + 8 + 2;

/// Bytes of the HMAC-SHA256 tag that ends a datagram.
pub const TAG_BYTES: usize = 32;

/// The shortest a cluster secret may be, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The fewest bytes a cell takes: two 8-byte hashes and three one-byte varints.
const MIN_CELL_BYTES: usize = 8 + 8 + 1 + 1 + 1;

/// The most bytes a cell takes: a window length up to 2²⁷ s (4 bytes), an index and a count
/// of up to 10 bytes each.
const MAX_CELL_BYTES: usize = 8 + 8 + 4 + 10 + 10;

/// The most cells one datagram can hold (all of them at their shortest).
pub const MAX_CELLS_PER_DATAGRAM: usize =
    (MAX_DATAGRAM_BYTES - HEADER_BYTES - TAG_BYTES) / MIN_CELL_BYTES;

/// Where the cell count sits in the header.
const COUNT_AT: usize = HEADER_BYTES - 2;

/// The label the datagram key is derived under: this plane, this version.
const KEY_LABEL: &[u8] = b"tollgate cluster counter plane v1";

/// The key datagrams are signed and checked with, derived from the cluster secret. A secret
/// shorter than [`MIN_SECRET_BYTES`] cannot make one. Its `Debug` form shows nothing of it.
#[derive(Clone)]
pub struct ClusterKey {
    key: hmac::Key,
}

/// The cluster secret given is too short to sign datagrams with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the cluster secret is {len} bytes long; it must be at least {MIN_SECRET_BYTES} \
     (generate one with `openssl rand -base64 48`)"
)]
pub struct SecretTooShort {
    /// The length of the secret that was given.
    pub len: usize,
}

impl ClusterKey {
    /// The counter plane's key for `secret`: HMAC-SHA256 keyed with the HMAC-SHA256, under the
    /// secret, of the label `tollgate cluster counter plane v1`.
    pub fn new(secret: &[u8]) -> Result<Self, SecretTooShort> {
        Self::for_plane(secret, KEY_LABEL)
    }

    /// The key of another use of the cluster secret, derived under its own `label` (say
    /// `b"tollgate cluster membership v1"`): HMAC-SHA256 keyed with the HMAC-SHA256, under
    /// the secret, of the label. Distinct labels give unrelated keys, so nothing signed for
    /// one plane is ever accepted by another.
    pub fn for_plane(secret: &[u8], label: &[u8]) -> Result<Self, SecretTooShort> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretTooShort { len: secret.len() });
        }
        let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&root, label);
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        })
    }

    /// Appends the tag of everything in `buf`: what the encoder ends a datagram with.
    pub fn append_tag(&self, buf: &mut Vec<u8>) {
        let tag = hmac::sign(&self.key, buf);
        buf.extend_from_slice(tag.as_ref());
    }

    /// Whether `tag` is the tag of `signed`, compared in constant time.
    pub fn verifies(&self, signed: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.key, signed, tag).is_ok()
    }

    /// The signed part of `bytes` when its last [`TAG_BYTES`] are their tag under this key,
    /// checked in constant time; `None` when too short to hold a tag or when it does not
    /// verify.
    pub fn open<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        let cut = bytes.len().checked_sub(TAG_BYTES)?;
        let (signed, tag) = bytes.split_at(cut);
        self.verifies(signed, tag).then_some(signed)
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// The id of the node named `name` in datagrams: the first 8 bytes of its SHA-256, so that
/// every node computes the same id from the same name, in every version of tollgate.
pub fn node_id(name: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// Who sent a datagram, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The sender's node id ([`node_id`]).
    pub node: u64,
    /// The sender's generation: chosen at each start, so that the counts of a restarted node
    /// (which begin again at 0) are told apart from those of its previous life.
    pub generation: u64,
    /// When the sender encoded the datagram, Unix milliseconds.
    pub sent_at_ms: u64,
    /// The sender's datagram counter in this generation (wraps).
    pub sequence: u64,
}

/// How far a datagram's send time may be from the receiver's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// A datagram sent longer ago than this is `stale`.
    pub max_age_ms: u64,
    /// A datagram sent further than this ahead of the receiver's clock is `future`.
    pub max_ahead_ms: u64,
}

/// Why a datagram was dropped. [`DropReason::as_str`] is its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Longer than [`MAX_DATAGRAM_BYTES`]; refused on its length, unread.
    TooLong,
    /// Shorter than a header and a tag.
    TooShort,
    /// A version this node does not speak.
    BadVersion,
    /// The tag is not the HMAC of the datagram under this cluster's key: another cluster, a
    /// node with another secret, corruption or forgery.
    BadMac,
    /// Sent longer ago than the receiver accepts.
    Stale,
    /// Sent further ahead of the receiver's clock than it accepts.
    Future,
    /// Authentic but not a valid body (a bug or an incompatible sender).
    Malformed(Malformation),
}

/// What is wrong with the body of an authentic datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformation {
    /// The cells counted in the header do not fit in the datagram.
    CellCount,
    /// A varint longer than a `u64`, or not in its shortest form.
    Varint,
    /// A cell that is not [`CellId::is_well_formed`], or whose window start overflows.
    Cell,
    /// Bytes after the last cell counted.
    TrailingBytes,
}

impl DropReason {
    /// Every label [`DropReason::as_str`] returns, for registering a metric's series.
    pub const LABELS: [&'static str; 7] = [
        "too_long",
        "too_short",
        "bad_version",
        "bad_mac",
        "stale",
        "future",
        "malformed",
    ];

    /// The stable metric label of this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::TooLong => "too_long",
            DropReason::TooShort => "too_short",
            DropReason::BadVersion => "bad_version",
            DropReason::BadMac => "bad_mac",
            DropReason::Stale => "stale",
            DropReason::Future => "future",
            DropReason::Malformed(_) => "malformed",
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Malformed(m) => write!(f, "malformed ({m:?})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// What one call of [`Encoder::encode`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Datagrams emitted.
    pub datagrams: usize,
    /// Cells written into them.
    pub cells: usize,
    /// Cells left out because they are not [`CellId::is_well_formed`] (a receiver would drop
    /// the whole datagram for one of them).
    pub skipped: usize,
}

/// Packs cells into datagrams of at most [`MAX_DATAGRAM_BYTES`], in order, never splitting a
/// cell, each signed and numbered. Reuses one buffer: encoding allocates nothing once the
/// buffer has grown to a datagram.
#[derive(Debug)]
pub struct Encoder {
    key: ClusterKey,
    node: u64,
    generation: u64,
    next_sequence: u64,
    buf: Vec<u8>,
}

impl Encoder {
    /// An encoder for the node `node` in its generation `generation`, numbering datagrams
    /// from `first_sequence`.
    pub fn new(key: ClusterKey, node: u64, generation: u64, first_sequence: u64) -> Self {
        Self {
            key,
            node,
            generation,
            next_sequence: first_sequence,
            buf: Vec::with_capacity(MAX_DATAGRAM_BYTES),
        }
    }

    /// The sequence number the next datagram will carry.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Encodes `cells` (each with this node's absolute count) as datagrams sent at
    /// `sent_at_ms`, calling `emit` with each one as soon as it is full. No cells, no
    /// datagram.
    pub fn encode(
        &mut self,
        sent_at_ms: u64,
        cells: impl IntoIterator<Item = (CellId, u64)>,
        mut emit: impl FnMut(&[u8]),
    ) -> Encoded {
        let mut done = Encoded::default();
        let mut in_datagram: u16 = 0;
        let mut cell_bytes = [0u8; MAX_CELL_BYTES];
        for (cell, count) in cells {
            let Some(len) = write_cell(&cell, count, &mut cell_bytes) else {
                done.skipped += 1;
                continue;
            };
            if in_datagram > 0 && self.buf.len() + len + TAG_BYTES > MAX_DATAGRAM_BYTES {
                self.finish(in_datagram, &mut emit);
                done.datagrams += 1;
                in_datagram = 0;
            }
            if in_datagram == 0 {
                self.start(sent_at_ms);
            }
            self.buf.extend_from_slice(&cell_bytes[..len]);
            in_datagram += 1;
            done.cells += 1;
        }
        if in_datagram > 0 {
            self.finish(in_datagram, &mut emit);
            done.datagrams += 1;
        }
        done
    }

    fn start(&mut self, sent_at_ms: u64) {
        self.buf.clear();
        self.buf.push(VERSION);
        for field in [self.node, self.generation, sent_at_ms, self.next_sequence] {
            self.buf.extend_from_slice(&field.to_be_bytes());
        }
        self.buf.extend_from_slice(&[0, 0]);
        self.next_sequence = self.next_sequence.wrapping_add(1);
    }

    fn finish(&mut self, cells: u16, emit: &mut impl FnMut(&[u8])) {
        self.buf[COUNT_AT..HEADER_BYTES].copy_from_slice(&cells.to_be_bytes());
        self.key.append_tag(&mut self.buf);
        debug_assert!(self.buf.len() <= MAX_DATAGRAM_BYTES);
        emit(&self.buf);
    }
}

/// Writes one cell into `out`, returning its length; `None` when the cell is not well
/// formed (and so has no encoding).
fn write_cell(cell: &CellId, count: u64, out: &mut [u8; MAX_CELL_BYTES]) -> Option<usize> {
    if !cell.is_well_formed() {
        return None;
    }
    out[..8].copy_from_slice(&cell.limit.to_be_bytes());
    out[8..16].copy_from_slice(&cell.state_hash.to_be_bytes());
    let mut at = 16;
    for v in [
        cell.window_secs,
        cell.window_start_secs / cell.window_secs,
        count,
    ] {
        at += write_varint(v, &mut out[at..]);
    }
    Some(at)
}

/// Writes `v` as a shortest-form LEB128 varint; `out` has room for 10 bytes.
fn write_varint(mut v: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// An authentic, fresh, well-formed datagram.
#[derive(Debug, Clone)]
pub struct Datagram<'a> {
    /// Who sent it, and when.
    pub header: Header,
    /// Its cells, in the order they were encoded.
    pub cells: Cells<'a>,
}

/// The cells of a decoded datagram, read from its already validated bytes.
#[derive(Debug, Clone)]
pub struct Cells<'a> {
    rest: &'a [u8],
    left: usize,
}

impl Iterator for Cells<'_> {
    type Item = (CellId, u64);

    fn next(&mut self) -> Option<(CellId, u64)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // Validated by `decode`: reading again cannot fail, and if it did the iteration
        // would end rather than panic.
        read_cell(&mut self.rest).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Cells<'_> {}

/// Decodes `bytes`, received when the receiver's clock read `now_ms` (Unix milliseconds):
/// the datagram, or why it is dropped. Never panics and allocates nothing, whatever the
/// input; reads nothing of an input longer than [`MAX_DATAGRAM_BYTES`] and nothing past the
/// version before the tag is verified.
pub fn decode<'a>(
    bytes: &'a [u8],
    key: &ClusterKey,
    now_ms: u64,
    freshness: Freshness,
) -> Result<Datagram<'a>, DropReason> {
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(DropReason::TooLong);
    }
    if bytes.len() < HEADER_BYTES + TAG_BYTES {
        return Err(DropReason::TooShort);
    }
    if bytes[0] != VERSION {
        return Err(DropReason::BadVersion);
    }
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
    if !key.verifies(signed, tag) {
        return Err(DropReason::BadMac);
    }
    let (head, body) = signed.split_at(HEADER_BYTES);
    let field = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[1 + 8 * i..9 + 8 * i]);
        u64::from_be_bytes(b)
    };
    let header = Header {
        node: field(0),
        generation: field(1),
        sent_at_ms: field(2),
        sequence: field(3),
    };
    if header.sent_at_ms.saturating_add(freshness.max_age_ms) < now_ms {
        return Err(DropReason::Stale);
    }
    if header.sent_at_ms > now_ms.saturating_add(freshness.max_ahead_ms) {
        return Err(DropReason::Future);
    }
    let count = usize::from(u16::from_be_bytes([head[COUNT_AT], head[COUNT_AT + 1]]));
    if count * MIN_CELL_BYTES > body.len() {
        return Err(DropReason::Malformed(Malformation::CellCount));
    }
    let mut rest = body;
    for _ in 0..count {
        read_cell(&mut rest).map_err(DropReason::Malformed)?;
    }
    if !rest.is_empty() {
        return Err(DropReason::Malformed(Malformation::TrailingBytes));
    }
    Ok(Datagram {
        header,
        cells: Cells {
            rest: body,
            left: count,
        },
    })
}

/// Reads one cell from the front of `input`, advancing it.
fn read_cell(input: &mut &[u8]) -> Result<(CellId, u64), Malformation> {
    let limit = read_u64(input)?;
    let state_hash = read_u64(input)?;
    let window_secs = read_varint(input)?;
    let index = read_varint(input)?;
    let count = read_varint(input)?;
    let window_start_secs = index.checked_mul(window_secs).ok_or(Malformation::Cell)?;
    let cell = CellId {
        limit,
        state_hash,
        window_secs,
        window_start_secs,
    };
    if !cell.is_well_formed() {
        return Err(Malformation::Cell);
    }
    Ok((cell, count))
}

fn read_u64(input: &mut &[u8]) -> Result<u64, Malformation> {
    let (first, rest) = input
        .split_first_chunk::<8>()
        .ok_or(Malformation::CellCount)?;
    *input = rest;
    Ok(u64::from_be_bytes(*first))
}

/// Reads a shortest-form LEB128 varint of at most 10 bytes (64 bits).
fn read_varint(input: &mut &[u8]) -> Result<u64, Malformation> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = input.split_first().ok_or(Malformation::CellCount)?;
        *input = rest;
        if i == 9 && b > 1 {
            // The tenth byte holds only bit 63, and nothing may follow it.
            return Err(Malformation::Varint);
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                // A zero last group: a longer form of a shorter varint.
                return Err(Malformation::Varint);
            }
            return Ok(value);
        }
    }
    Err(Malformation::Varint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::MAX_WINDOW_SECS;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_750_000_000_000;
    const OPEN: Freshness = Freshness {
        max_age_ms: 5_000,
        max_ahead_ms: 1_000,
    };

    fn key() -> ClusterKey {
        ClusterKey::new(SECRET).unwrap()
    }

    fn cell(n: u64, window_secs: u64) -> CellId {
        CellId {
            limit: 0x1111_2222_3333_4444 ^ n,
            state_hash: n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            window_secs,
            window_start_secs: NOW / 1000 / window_secs * window_secs,
        }
    }

    fn encode_all(cells: &[(CellId, u64)]) -> (Vec<Vec<u8>>, Encoded) {
        let mut out = Vec::new();
        let mut enc = Encoder::new(key(), node_id("node-a"), 7, 100);
        let done = enc.encode(NOW, cells.iter().copied(), |d| out.push(d.to_vec()));
        (out, done)
    }

    /// One full datagram, and the cells in it.
    fn full_datagram() -> Vec<u8> {
        let cells: Vec<(CellId, u64)> = (1..200).map(|n| (cell(n, 60), n * 37)).collect();
        let (datagrams, _) = encode_all(&cells);
        assert!(datagrams.len() > 1);
        datagrams[0].clone()
    }

    /// A signed datagram with `body` after a header counting `count` cells.
    fn signed(count: u16, body: &[u8]) -> Vec<u8> {
        let mut d = vec![VERSION];
        for f in [1u64, 2, NOW, 3] {
            d.extend_from_slice(&f.to_be_bytes());
        }
        d.extend_from_slice(&count.to_be_bytes());
        d.extend_from_slice(body);
        key().append_tag(&mut d);
        d
    }

    fn cell_bytes(limit: u64, state: u64, varints: &[&[u8]]) -> Vec<u8> {
        let mut b = limit.to_be_bytes().to_vec();
        b.extend_from_slice(&state.to_be_bytes());
        for v in varints {
            b.extend_from_slice(v);
        }
        b
    }

    #[test]
    fn a_short_secret_cannot_make_a_key() {
        assert_eq!(
            ClusterKey::new(&SECRET[..31]).unwrap_err(),
            SecretTooShort { len: 31 }
        );
        assert!(ClusterKey::new(&[]).is_err());
        let e = ClusterKey::new(b"short").unwrap_err().to_string();
        assert!(e.contains("5 bytes") && e.contains("at least 32"), "{e}");
        assert_eq!(format!("{:?}", key()), "ClusterKey(..)");
    }

    #[test]
    fn a_datagram_decodes_to_what_was_encoded() {
        let cells = vec![
            (cell(1, 60), 5),
            (cell(2, 1), 0),
            (cell(3, 86_400), u64::MAX),
        ];
        let (datagrams, done) = encode_all(&cells);
        assert_eq!(
            done,
            Encoded {
                datagrams: 1,
                cells: 3,
                skipped: 0
            }
        );
        let d = decode(&datagrams[0], &key(), NOW, OPEN).unwrap();
        assert_eq!(
            d.header,
            Header {
                node: node_id("node-a"),
                generation: 7,
                sent_at_ms: NOW,
                sequence: 100
            }
        );
        assert_eq!(d.cells.len(), 3);
        assert_eq!(d.cells.collect::<Vec<_>>(), cells);
        // Typical cells are small: a minute window, a count under 2^14.
        assert_eq!(
            HEADER_BYTES + TAG_BYTES + 2 * (16 + 1 + 4 + 2),
            encode_all(&[(cell(1, 60), 300), (cell(2, 60), 300)]).0[0].len()
        );
    }

    #[test]
    fn node_ids_are_stable() {
        assert_eq!(node_id("node-a"), node_id("node-a"));
        assert_ne!(node_id("node-a"), node_id("node-b"));
        // SHA-256("") begins e3b0c442 98fc1c14.
        assert_eq!(node_id(""), 0xe3b0_c442_98fc_1c14);
    }

    #[test]
    fn ill_formed_cells_are_left_out_and_counted() {
        let mut zero_hash = cell(1, 60);
        zero_hash.state_hash = 0;
        let mut misaligned = cell(2, 60);
        misaligned.window_start_secs += 1;
        let mut too_long = cell(3, 60);
        too_long.window_secs = MAX_WINDOW_SECS + 1;
        too_long.window_start_secs = 0;
        let good = (cell(4, 60), 9);
        let (datagrams, done) = encode_all(&[(zero_hash, 1), (misaligned, 1), good, (too_long, 1)]);
        assert_eq!((done.datagrams, done.cells, done.skipped), (1, 1, 3));
        let d = decode(&datagrams[0], &key(), NOW, OPEN).unwrap();
        assert_eq!(d.cells.collect::<Vec<_>>(), vec![good]);
        assert_eq!(
            encode_all(&[]).1,
            Encoded::default(),
            "no cells, no datagram"
        );
    }

    #[test]
    fn datagrams_are_numbered_and_packed_full() {
        let cells: Vec<(CellId, u64)> = (1..500).map(|n| (cell(n, 60 + n % 3), n)).collect();
        let (datagrams, done) = encode_all(&cells);
        assert_eq!(done.cells, cells.len());
        let mut next = 0;
        for (i, d) in datagrams.iter().enumerate() {
            assert!(d.len() <= MAX_DATAGRAM_BYTES);
            let got = decode(d, &key(), NOW, OPEN).unwrap();
            assert_eq!(got.header.sequence, 100 + i as u64);
            let n = got.cells.len();
            assert!(n <= MAX_CELLS_PER_DATAGRAM);
            // Greedy: the first cell of the next datagram would not have fitted.
            if let Some(&(c, count)) = cells.get(next + n) {
                let mut b = [0u8; MAX_CELL_BYTES];
                let len = write_cell(&c, count, &mut b).unwrap();
                assert!(d.len() + len > MAX_DATAGRAM_BYTES, "datagram {i} not full");
            }
            next += n;
        }
        assert_eq!(next, cells.len());
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let d = full_datagram();
        assert!(d.len() > MAX_DATAGRAM_BYTES - MAX_CELL_BYTES);
        for bit in 0..d.len() * 8 {
            let mut flipped = d.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let want = if bit < 8 {
                DropReason::BadVersion
            } else {
                DropReason::BadMac
            };
            assert_eq!(
                decode(&flipped, &key(), NOW, OPEN).unwrap_err(),
                want,
                "bit {bit}"
            );
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let d = full_datagram();
        for len in 0..d.len() {
            let want = if len < HEADER_BYTES + TAG_BYTES {
                DropReason::TooShort
            } else {
                DropReason::BadMac
            };
            assert_eq!(
                decode(&d[..len], &key(), NOW, OPEN).unwrap_err(),
                want,
                "{len}"
            );
        }
    }

    #[test]
    fn another_key_is_refused() {
        let d = full_datagram();
        let other = ClusterKey::new(b"0123456789abcdef0123456789abcdeF").unwrap();
        assert_eq!(
            decode(&d, &other, NOW, OPEN).unwrap_err(),
            DropReason::BadMac
        );
        // The secret itself, used as the key, is not the derived key either.
        let mut raw = d[..d.len() - TAG_BYTES].to_vec();
        let t = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), &raw);
        raw.extend_from_slice(t.as_ref());
        assert_eq!(
            decode(&raw, &key(), NOW, OPEN).unwrap_err(),
            DropReason::BadMac
        );
    }

    #[test]
    fn stale_and_future_datagrams_are_refused_at_their_bounds() {
        let d = full_datagram();
        let at = |now| decode(&d, &key(), now, OPEN).map(|_| ());
        assert_eq!(at(NOW + OPEN.max_age_ms), Ok(()));
        assert_eq!(at(NOW + OPEN.max_age_ms + 1), Err(DropReason::Stale));
        assert_eq!(at(u64::MAX), Err(DropReason::Stale));
        assert_eq!(at(NOW - OPEN.max_ahead_ms), Ok(()));
        assert_eq!(at(NOW - OPEN.max_ahead_ms - 1), Err(DropReason::Future));
        assert_eq!(at(0), Err(DropReason::Future));
        let wide = Freshness {
            max_age_ms: u64::MAX,
            max_ahead_ms: u64::MAX,
        };
        assert!(decode(&d, &key(), 0, wide).is_ok());
        assert!(decode(&d, &key(), u64::MAX, wide).is_ok());
    }

    #[test]
    fn an_oversized_input_is_refused_on_its_length() {
        // A valid datagram with one byte more is refused before its tag is even looked at.
        let mut d = full_datagram();
        d.resize(MAX_DATAGRAM_BYTES + 1, 0);
        assert_eq!(
            decode(&d, &key(), NOW, OPEN).unwrap_err(),
            DropReason::TooLong
        );
        let huge = vec![VERSION; 1 << 20];
        assert_eq!(
            decode(&huge, &key(), NOW, OPEN).unwrap_err(),
            DropReason::TooLong
        );
    }

    #[test]
    fn a_foreign_version_is_refused() {
        let mut d = full_datagram();
        d[0] = 2;
        assert_eq!(
            decode(&d, &key(), NOW, OPEN).unwrap_err(),
            DropReason::BadVersion
        );
    }

    #[test]
    fn authentic_but_malformed_bodies_are_refused() {
        let m = |d: Vec<u8>| match decode(&d, &key(), NOW, OPEN) {
            Err(DropReason::Malformed(m)) => m,
            other => panic!("{other:?}"),
        };
        let good = cell_bytes(1, 2, &[&[60], &[0x80, 0x01], &[5]]);
        assert_eq!(
            decode(&signed(1, &good), &key(), NOW, OPEN)
                .unwrap()
                .cells
                .collect::<Vec<_>>(),
            vec![(
                CellId {
                    limit: 1,
                    state_hash: 2,
                    window_secs: 60,
                    window_start_secs: 128 * 60
                },
                5
            )]
        );
        assert!(decode(&signed(0, &[]), &key(), NOW, OPEN).is_ok());
        // A count that cannot fit, a count that almost fits, a count too small.
        assert_eq!(m(signed(u16::MAX, &good)), Malformation::CellCount);
        let two = [good.clone(), good.clone()].concat();
        assert_eq!(m(signed(3, &two[..two.len() - 1])), Malformation::CellCount);
        assert_eq!(m(signed(1, &two)), Malformation::TrailingBytes);
        assert_eq!(m(signed(0, &[0])), Malformation::TrailingBytes);
        // Cells that are not well formed.
        let zero_hash = cell_bytes(1, 0, &[&[60], &[1], &[5]]);
        assert_eq!(m(signed(1, &zero_hash)), Malformation::Cell);
        let zero_window = cell_bytes(1, 2, &[&[0], &[1], &[5]]);
        assert_eq!(m(signed(1, &zero_window)), Malformation::Cell);
        let mut w = [0u8; 10];
        let n = write_varint(MAX_WINDOW_SECS + 1, &mut w);
        let long_window = cell_bytes(1, 2, &[&w[..n], &[1], &[5]]);
        assert_eq!(m(signed(1, &long_window)), Malformation::Cell);
        let overflow = [0xff; 9].iter().chain(&[0x01]).copied().collect::<Vec<_>>();
        let start_overflows = cell_bytes(1, 2, &[&[60], &overflow, &[5]]);
        assert_eq!(m(signed(1, &start_overflows)), Malformation::Cell);
        // Varints: not in shortest form, longer than 64 bits.
        let padded = cell_bytes(1, 2, &[&[60], &[1], &[0x85, 0x00]]);
        assert_eq!(m(signed(1, &padded)), Malformation::Varint);
        let wide = [0xff; 9].iter().chain(&[0x02]).copied().collect::<Vec<_>>();
        let too_wide = cell_bytes(1, 2, &[&[60], &[1], &wide]);
        assert_eq!(m(signed(1, &too_wide)), Malformation::Varint);
        let endless = cell_bytes(1, 2, &[&[60], &[1], &[0x80; 11]]);
        assert_eq!(m(signed(1, &endless)), Malformation::Varint);
    }

    #[test]
    fn varints_round_trip_at_their_edges() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 2, u64::MAX] {
            let mut b = [0u8; 10];
            let n = write_varint(v, &mut b);
            let mut r = &b[..n];
            assert_eq!(read_varint(&mut r), Ok(v));
            assert!(r.is_empty());
        }
    }

    #[test]
    fn labels_are_stable_and_distinct() {
        let reasons = [
            DropReason::TooLong,
            DropReason::TooShort,
            DropReason::BadVersion,
            DropReason::BadMac,
            DropReason::Stale,
            DropReason::Future,
            DropReason::Malformed(Malformation::Varint),
        ];
        let labels: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels, DropReason::LABELS);
        assert_eq!(
            DropReason::Malformed(Malformation::Cell).to_string(),
            "malformed (Cell)"
        );
    }

    fn any_cell() -> impl Strategy<Value = (CellId, u64)> {
        let window = prop_oneof![1u64..=86_400, 1..=MAX_WINDOW_SECS];
        (any::<u64>(), 1u64.., window, any::<u64>(), any::<u64>()).prop_map(
            |(limit, state_hash, window_secs, start, count)| {
                let cell = CellId {
                    limit,
                    state_hash,
                    window_secs,
                    window_start_secs: start / window_secs * window_secs,
                };
                let count = if count % 2 == 0 {
                    count % 20_000
                } else {
                    count
                };
                (cell, count)
            },
        )
    }

    proptest! {
        #[test]
        fn any_cells_round_trip_in_datagrams_within_the_bound(
            cells in proptest::collection::vec(any_cell(), 0..300),
            sent_at in any::<u64>(),
            first_sequence in any::<u64>(),
        ) {
            let mut enc = Encoder::new(key(), 42, 9, first_sequence);
            let mut datagrams = Vec::new();
            let done = enc.encode(sent_at, cells.iter().copied(), |d| datagrams.push(d.to_vec()));
            prop_assert_eq!(done.skipped, 0);
            prop_assert_eq!(done.datagrams, datagrams.len());
            let any_time = Freshness { max_age_ms: u64::MAX, max_ahead_ms: u64::MAX };
            let mut back = Vec::new();
            for (i, d) in datagrams.iter().enumerate() {
                prop_assert!(d.len() <= MAX_DATAGRAM_BYTES);
                let got = decode(d, &key(), sent_at, any_time).unwrap();
                prop_assert_eq!(got.header, Header {
                    node: 42,
                    generation: 9,
                    sent_at_ms: sent_at,
                    sequence: first_sequence.wrapping_add(i as u64),
                });
                back.extend(got.cells);
            }
            prop_assert_eq!(back, cells);
        }

        #[test]
        fn arbitrary_bytes_never_decode(data in proptest::collection::vec(any::<u8>(), 0..1300)) {
            prop_assert!(decode(&data, &key(), NOW, OPEN).is_err());
        }
    }
}
