//! The revocation plane's frame: one message between two nodes over TCP.
//!
//! # Layout (version 1)
//!
//! Integers are big-endian. A frame is a 4-byte length (of everything after it, at most
//! [`MAX_FRAME_BYTES`]) followed by:
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 1 | version | `1` ([`VERSION`]) |
//! | 1 | kind | `1` push, `2` ack, `3` fetch, `4` entries |
//! | 8 | generation | the sender's generation |
//! | 8 | sent at | Unix milliseconds when the frame was encoded |
//! | 8 | request | the request's number; an ack or an entries frame repeats it |
//! | 1 + n | sender | the sender's node name, 1 to [`MAX_NAME_BYTES`] bytes of UTF-8 |
//! | … | body | push and entries: a flags byte (bit 0 on an entries frame: the last one) and a 4-byte count of the revocations that follow; ack: a 4-byte count acknowledged; fetch: nothing |
//! | 32 | tag | HMAC-SHA256 of every byte from the version on |
//!
//! A revocation is a kind byte (`0` a `jti`, `1` a subject), a 2-byte id length (1 to
//! [`MAX_REVOCATION_ID_BYTES`]), the id (UTF-8), then `exp` (8 bytes, signed) for a `jti` or
//! `before` and `until` (8 bytes each, signed) for a subject. A list holds at most
//! [`MAX_ENTRIES_PER_FRAME`] revocations, which keeps the largest list frame (about 560 KB)
//! under [`MAX_FRAME_BYTES`]: a full list is sent as several entries frames.
//!
//! # Authentication and freshness
//!
//! The tag is HMAC-SHA256 under the revocation plane's own key
//! ([`ClusterKey::for_plane`] with [`KEY_LABEL`]), checked in constant time before any field
//! past the version is read. A frame sent longer ago than [`Freshness::max_age_ms`], or
//! further ahead than [`Freshness::max_ahead_ms`], is refused. Replays within that window are
//! harmless: a replayed push re-asserts revocations the sender really made, and merging is
//! idempotent; a replayed fetch only costs the list it asks for.

use std::fmt;

use crate::auth::{Revocation, MAX_REVOCATION_ID_BYTES};
use crate::cluster::wire::{ClusterKey, Freshness, TAG_BYTES};

/// The format version this module writes and reads.
pub const VERSION: u8 = 1;

/// The label the plane's key is derived under.
pub const KEY_LABEL: &[u8] = b"tollgate cluster revocation plane v1";

/// The largest frame sent or accepted, length prefix excluded (1 MiB).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The most revocations in one push or entries frame.
pub const MAX_ENTRIES_PER_FRAME: usize = 2048;

/// The longest sender name (a DNS name's length).
pub const MAX_NAME_BYTES: usize = 253;

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;

/// Version, kind, generation, sent at, request, name length.
const FIXED_HEADER_BYTES: usize = 1 + 1 + 8 + 8 + 8 + 1;

/// The shortest frame: a fixed header, a one-byte name, no body, a tag.
pub const MIN_FRAME_BYTES: usize = FIXED_HEADER_BYTES + 1 + TAG_BYTES;

const KIND_PUSH: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_FETCH: u8 = 3;
const KIND_ENTRIES: u8 = 4;

/// What a frame asks or answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Revocations made on the sender: merge them, then acknowledge.
    Push { revocations: Vec<Revocation> },
    /// The push with this request number is merged and logged.
    Ack { count: u32 },
    /// Send every live revocation you hold.
    Fetch,
    /// Part of the answer to a fetch; `last` ends it.
    Entries {
        revocations: Vec<Revocation>,
        last: bool,
    },
}

/// One frame: who sent it, when, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub sender: String,
    pub generation: u64,
    pub sent_at_ms: u64,
    /// The request's number: an answer repeats the number of what it answers.
    pub request: u64,
    pub message: Message,
}

/// Why a frame was refused. [`FrameError::as_str`] is its metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Longer than [`MAX_FRAME_BYTES`]: refused on its length prefix, unread.
    TooLong,
    /// Shorter than [`MIN_FRAME_BYTES`].
    TooShort,
    BadVersion,
    BadMac,
    Stale,
    Future,
    /// Authenticated but not well-formed (an unknown kind, a count that does not fit, an id
    /// that is empty, too long or not UTF-8, bytes left over).
    Malformed,
}

impl FrameError {
    /// Every label, for metrics and tests.
    pub const LABELS: [&'static str; 7] = [
        "too_long",
        "too_short",
        "bad_version",
        "bad_mac",
        "stale",
        "future",
        "malformed",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::TooLong => "too_long",
            FrameError::TooShort => "too_short",
            FrameError::BadVersion => "bad_version",
            FrameError::BadMac => "bad_mac",
            FrameError::Stale => "stale",
            FrameError::Future => "future",
            FrameError::Malformed => "malformed",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Encodes `frame`, length prefix first, signed with `key`. Revocations whose id cannot be
/// carried (empty or longer than [`MAX_REVOCATION_ID_BYTES`]: a store never holds one) are
/// left out, and a list is cut at [`MAX_ENTRIES_PER_FRAME`]; callers send lists in chunks of
/// that size. A sender name longer than [`MAX_NAME_BYTES`] is cut (configuration refuses
/// one).
pub fn encode(frame: &Frame, key: &ClusterKey) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&[0; LENGTH_BYTES]);
    buf.push(VERSION);
    buf.push(match frame.message {
        Message::Push { .. } => KIND_PUSH,
        Message::Ack { .. } => KIND_ACK,
        Message::Fetch => KIND_FETCH,
        Message::Entries { .. } => KIND_ENTRIES,
    });
    buf.extend_from_slice(&frame.generation.to_be_bytes());
    buf.extend_from_slice(&frame.sent_at_ms.to_be_bytes());
    buf.extend_from_slice(&frame.request.to_be_bytes());
    let name = cut_name(&frame.sender);
    buf.push(name.len() as u8);
    buf.extend_from_slice(name.as_bytes());
    match &frame.message {
        Message::Push { revocations } => put_list(&mut buf, revocations, 0),
        Message::Entries { revocations, last } => put_list(&mut buf, revocations, u8::from(*last)),
        Message::Ack { count } => buf.extend_from_slice(&count.to_be_bytes()),
        Message::Fetch => {}
    }
    let mut signed = buf.split_off(LENGTH_BYTES);
    key.append_tag(&mut signed);
    buf.clear();
    buf.extend_from_slice(&(signed.len() as u32).to_be_bytes());
    buf.extend_from_slice(&signed);
    buf
}

/// The longest prefix of `name` within [`MAX_NAME_BYTES`] that ends on a character
/// boundary (at least one byte: an empty name is sent as `?`).
fn cut_name(name: &str) -> &str {
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        "?"
    } else {
        &name[..end]
    }
}

fn carriable(r: &Revocation) -> bool {
    let id = match r {
        Revocation::Jti { jti, .. } => jti,
        Revocation::Subject { sub, .. } => sub,
    };
    !id.is_empty() && id.len() <= MAX_REVOCATION_ID_BYTES
}

fn put_list(buf: &mut Vec<u8>, revocations: &[Revocation], flags: u8) {
    buf.push(flags);
    let count_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for r in revocations
        .iter()
        .filter(|r| carriable(r))
        .take(MAX_ENTRIES_PER_FRAME)
    {
        count += 1;
        match r {
            Revocation::Jti { jti, exp } => {
                buf.push(0);
                buf.extend_from_slice(&(jti.len() as u16).to_be_bytes());
                buf.extend_from_slice(jti.as_bytes());
                buf.extend_from_slice(&exp.to_be_bytes());
            }
            Revocation::Subject { sub, before, until } => {
                buf.push(1);
                buf.extend_from_slice(&(sub.len() as u16).to_be_bytes());
                buf.extend_from_slice(sub.as_bytes());
                buf.extend_from_slice(&before.to_be_bytes());
                buf.extend_from_slice(&until.to_be_bytes());
            }
        }
    }
    buf[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
}

/// Decodes a frame (the bytes after its length prefix), checking, in this order: its
/// length, its version, its tag under `key`, its send time against `now_ms`, then its
/// fields. Never panics; allocates only for what an authenticated frame holds.
pub fn decode(
    bytes: &[u8],
    key: &ClusterKey,
    now_ms: u64,
    freshness: Freshness,
) -> Result<Frame, FrameError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLong);
    }
    if bytes.len() < MIN_FRAME_BYTES {
        return Err(FrameError::TooShort);
    }
    if bytes[0] != VERSION {
        return Err(FrameError::BadVersion);
    }
    let signed = key.open(bytes).ok_or(FrameError::BadMac)?;
    let mut r = Reader { bytes: signed };
    r.take(1)?;
    let kind = r.u8()?;
    let generation = r.u64()?;
    let sent_at_ms = r.u64()?;
    let request = r.u64()?;
    if now_ms.saturating_sub(sent_at_ms) > freshness.max_age_ms {
        return Err(FrameError::Stale);
    }
    if sent_at_ms.saturating_sub(now_ms) > freshness.max_ahead_ms {
        return Err(FrameError::Future);
    }
    let name_len = usize::from(r.u8()?);
    if name_len == 0 || name_len > MAX_NAME_BYTES {
        return Err(FrameError::Malformed);
    }
    let sender = std::str::from_utf8(r.take(name_len)?)
        .map_err(|_| FrameError::Malformed)?
        .to_string();
    let message = match kind {
        KIND_PUSH => {
            let (revocations, flags) = r.list()?;
            if flags != 0 {
                return Err(FrameError::Malformed);
            }
            Message::Push { revocations }
        }
        KIND_ENTRIES => {
            let (revocations, flags) = r.list()?;
            if flags > 1 {
                return Err(FrameError::Malformed);
            }
            Message::Entries {
                revocations,
                last: flags == 1,
            }
        }
        KIND_ACK => Message::Ack { count: r.u32()? },
        KIND_FETCH => Message::Fetch,
        _ => return Err(FrameError::Malformed),
    };
    if !r.bytes.is_empty() {
        return Err(FrameError::Malformed);
    }
    Ok(Frame {
        sender,
        generation,
        sent_at_ms,
        request,
        message,
    })
}

/// Reads fields off the front of the signed bytes; running out is `Malformed`.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.bytes.len() < n {
            return Err(FrameError::Malformed);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FrameError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let mut x = [0u8; 4];
        x.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(x))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        let mut x = [0u8; 8];
        x.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(x))
    }

    fn i64(&mut self) -> Result<i64, FrameError> {
        Ok(self.u64()? as i64)
    }

    fn list(&mut self) -> Result<(Vec<Revocation>, u8), FrameError> {
        let flags = self.u8()?;
        let count = self.u32()? as usize;
        if count > MAX_ENTRIES_PER_FRAME {
            return Err(FrameError::Malformed);
        }
        // Each revocation takes at least 12 bytes: a count that cannot fit is refused
        // before anything is allocated for it.
        if count > self.bytes.len() / 12 {
            return Err(FrameError::Malformed);
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let kind = self.u8()?;
            let len = usize::from(self.u16()?);
            if len == 0 || len > MAX_REVOCATION_ID_BYTES {
                return Err(FrameError::Malformed);
            }
            let id = std::str::from_utf8(self.take(len)?)
                .map_err(|_| FrameError::Malformed)?
                .to_string();
            out.push(match kind {
                0 => Revocation::Jti {
                    jti: id,
                    exp: self.i64()?,
                },
                1 => Revocation::Subject {
                    sub: id,
                    before: self.i64()?,
                    until: self.i64()?,
                },
                _ => return Err(FrameError::Malformed),
            });
        }
        Ok((out, flags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_750_000_000_000;
    const WINDOW: Freshness = Freshness {
        max_age_ms: 30_000,
        max_ahead_ms: 30_000,
    };

    fn key() -> ClusterKey {
        ClusterKey::for_plane(SECRET, KEY_LABEL).unwrap()
    }

    fn frame(message: Message) -> Frame {
        Frame {
            sender: "node-a".into(),
            generation: 7,
            sent_at_ms: NOW,
            request: 42,
            message,
        }
    }

    fn some_revocations() -> Vec<Revocation> {
        vec![
            Revocation::Jti {
                jti: "j1".into(),
                exp: 2_000_000_000,
            },
            Revocation::Subject {
                sub: "alice".into(),
                before: -5,
                until: i64::MAX,
            },
        ]
    }

    fn round_trip(f: &Frame) -> Result<Frame, FrameError> {
        let bytes = encode(f, &key());
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - LENGTH_BYTES);
        decode(&bytes[LENGTH_BYTES..], &key(), NOW, WINDOW)
    }

    #[test]
    fn every_message_decodes_to_what_was_encoded() {
        for m in [
            Message::Push {
                revocations: some_revocations(),
            },
            Message::Ack { count: 2 },
            Message::Fetch,
            Message::Entries {
                revocations: some_revocations(),
                last: true,
            },
            Message::Entries {
                revocations: vec![],
                last: false,
            },
        ] {
            let f = frame(m);
            assert_eq!(round_trip(&f).unwrap(), f);
        }
    }

    #[test]
    fn a_full_list_fits_in_a_frame_and_longer_ones_are_cut() {
        let long_id = "x".repeat(MAX_REVOCATION_ID_BYTES);
        let many: Vec<Revocation> = (0..MAX_ENTRIES_PER_FRAME + 5)
            .map(|i| Revocation::Subject {
                sub: format!("{long_id}{i}")[..MAX_REVOCATION_ID_BYTES].to_string(),
                before: i as i64,
                until: 1,
            })
            .collect();
        let f = frame(Message::Push { revocations: many });
        let bytes = encode(&f, &key());
        assert!(bytes.len() - LENGTH_BYTES <= MAX_FRAME_BYTES);
        let Message::Push { revocations } = round_trip(&f).unwrap().message else {
            panic!("a push");
        };
        assert_eq!(revocations.len(), MAX_ENTRIES_PER_FRAME);
    }

    #[test]
    fn refusals_have_reasons() {
        let f = frame(Message::Fetch);
        let bytes = encode(&f, &key());
        let body = &bytes[LENGTH_BYTES..];
        let other = ClusterKey::for_plane(SECRET, b"tollgate cluster counter plane v1").unwrap();
        assert_eq!(decode(body, &other, NOW, WINDOW), Err(FrameError::BadMac));
        let mut flipped = body.to_vec();
        flipped[12] ^= 1;
        assert_eq!(
            decode(&flipped, &key(), NOW, WINDOW),
            Err(FrameError::BadMac)
        );
        let mut v2 = body.to_vec();
        v2[0] = 2;
        assert_eq!(
            decode(&v2, &key(), NOW, WINDOW),
            Err(FrameError::BadVersion)
        );
        assert_eq!(
            decode(&body[..10], &key(), NOW, WINDOW),
            Err(FrameError::TooShort)
        );
        let huge = vec![VERSION; MAX_FRAME_BYTES + 1];
        assert_eq!(decode(&huge, &key(), NOW, WINDOW), Err(FrameError::TooLong));
        assert_eq!(
            decode(body, &key(), NOW + 30_001, WINDOW),
            Err(FrameError::Stale)
        );
        assert_eq!(
            decode(body, &key(), NOW - 30_001, WINDOW),
            Err(FrameError::Future)
        );
        assert!(decode(body, &key(), NOW + 30_000, WINDOW).is_ok());
        // Authenticated but ill-formed: an unknown kind, trailing bytes.
        let signed = |mut s: Vec<u8>| {
            key().append_tag(&mut s);
            s
        };
        let mut unknown = body[..body.len() - TAG_BYTES].to_vec();
        unknown[1] = 9;
        assert_eq!(
            decode(&signed(unknown), &key(), NOW, WINDOW),
            Err(FrameError::Malformed)
        );
        let mut trailing = body[..body.len() - TAG_BYTES].to_vec();
        trailing.push(0);
        assert_eq!(
            decode(&signed(trailing), &key(), NOW, WINDOW),
            Err(FrameError::Malformed)
        );
        for e in [FrameError::TooLong, FrameError::Malformed] {
            assert!(FrameError::LABELS.contains(&e.as_str()));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&data, &key(), NOW, WINDOW);
            // Behind the MAC: the same bytes signed, so the parser is reached.
            let mut s = data.clone();
            if let Some(b) = s.first_mut() { *b = VERSION; }
            key().append_tag(&mut s);
            match decode(&s, &key(), NOW, Freshness { max_age_ms: u64::MAX, max_ahead_ms: u64::MAX }) {
                Ok(f) => prop_assert_eq!(&encode(&f, &key())[LENGTH_BYTES..], &s[..]),
                Err(e) => prop_assert!(e != FrameError::BadMac),
            }
        }
    }
}
