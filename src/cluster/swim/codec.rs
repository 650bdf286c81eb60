//! The membership protocol's bytes: foca's messages and member updates, in a compact layout
//! of tollgate's (foca's [`Codec`]).
//!
//! Fixed-width integers are big-endian. Every read is checked against what is left, so the
//! decoder refuses (never panics on) any input; every write checks the room left first, so
//! an item that does not fit leaves the buffer as it was (foca relies on that when it packs
//! members into a datagram).
//!
//! | item | layout |
//! |---|---|
//! | address | `4`, 4 bytes of IPv4, port (2) — or `6`, 16 bytes of IPv6, port (2) |
//! | identity | name length (1, at most 253), name (UTF-8), address, generation (8), renewal (2) |
//! | header | sender identity, sender incarnation (2), recipient identity, message |
//! | message | kind (1), then for `ping`/`ack` a probe number (1); for `ping_req`, `indirect_ping`, `indirect_ack`, `forwarded_ack` an identity and a probe number (1); nothing for the others |
//! | member | identity, incarnation (2), state (1: alive 0, suspect 1, down 2) |
//!
//! A whole datagram, as foca lays it out behind the header: a count of member updates (2) and
//! the updates, then custom broadcasts (each a length (2) and a node-values record,
//! [`super::values`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Member, Message, State};

use super::identity::{SwimIdentity, MAX_NAME_BYTES};
use crate::cluster::membership::Generation;

/// Why bytes were refused (or an item did not fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecError(pub &'static str);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

const TRUNCATED: CodecError = CodecError("truncated");
const NO_ROOM: CodecError = CodecError("no room in the datagram");

/// foca's codec for [`SwimIdentity`]: stateless.
#[derive(Debug, Default, Clone, Copy)]
pub struct SwimCodec;

// ---- reading ----

/// A checked reader over contiguous bytes (foca hands the codec a contiguous buffer).
pub(crate) fn read_u8(buf: &mut impl Buf) -> Result<u8, CodecError> {
    if buf.remaining() < 1 {
        return Err(TRUNCATED);
    }
    Ok(buf.get_u8())
}

pub(crate) fn read_u16(buf: &mut impl Buf) -> Result<u16, CodecError> {
    if buf.remaining() < 2 {
        return Err(TRUNCATED);
    }
    Ok(buf.get_u16())
}

pub(crate) fn read_u64(buf: &mut impl Buf) -> Result<u64, CodecError> {
    if buf.remaining() < 8 {
        return Err(TRUNCATED);
    }
    Ok(buf.get_u64())
}

fn read_bytes<const N: usize>(buf: &mut impl Buf) -> Result<[u8; N], CodecError> {
    if buf.remaining() < N {
        return Err(TRUNCATED);
    }
    let mut out = [0u8; N];
    buf.copy_to_slice(&mut out);
    Ok(out)
}

pub(crate) fn read_addr(buf: &mut impl Buf) -> Result<SocketAddr, CodecError> {
    let ip = match read_u8(buf)? {
        4 => IpAddr::V4(Ipv4Addr::from(read_bytes::<4>(buf)?)),
        6 => IpAddr::V6(Ipv6Addr::from(read_bytes::<16>(buf)?)),
        _ => return Err(CodecError("unknown address family")),
    };
    Ok(SocketAddr::new(ip, read_u16(buf)?))
}

/// A node name: at most [`MAX_NAME_BYTES`] of UTF-8 (possibly empty: the caller decides).
pub(crate) fn read_name(buf: &mut impl Buf) -> Result<Arc<str>, CodecError> {
    let len = usize::from(read_u8(buf)?);
    if len > MAX_NAME_BYTES {
        return Err(CodecError("name too long"));
    }
    if buf.remaining() < len {
        return Err(TRUNCATED);
    }
    let mut bytes = [0u8; MAX_NAME_BYTES];
    buf.copy_to_slice(&mut bytes[..len]);
    std::str::from_utf8(&bytes[..len])
        .map(Arc::from)
        .map_err(|_| CodecError("name not UTF-8"))
}

fn read_identity(buf: &mut impl Buf) -> Result<SwimIdentity, CodecError> {
    let name = read_name(buf)?;
    let gossip = read_addr(buf)?;
    let generation = Generation(read_u64(buf)?);
    let renewal = read_u16(buf)?;
    Ok(SwimIdentity::from_parts(name, gossip, generation, renewal))
}

/// An identity that names a node (every one but an announce's recipient does).
fn read_named_identity(buf: &mut impl Buf) -> Result<SwimIdentity, CodecError> {
    let id = read_identity(buf)?;
    if id.name().is_empty() {
        return Err(CodecError("empty name"));
    }
    Ok(id)
}

fn read_message(buf: &mut impl Buf) -> Result<Message<SwimIdentity>, CodecError> {
    Ok(match read_u8(buf)? {
        0 => Message::Ping(read_u8(buf)?),
        1 => Message::Ack(read_u8(buf)?),
        2 => Message::PingReq {
            target: read_named_identity(buf)?,
            probe_number: read_u8(buf)?,
        },
        3 => Message::IndirectPing {
            origin: read_named_identity(buf)?,
            probe_number: read_u8(buf)?,
        },
        4 => Message::IndirectAck {
            target: read_named_identity(buf)?,
            probe_number: read_u8(buf)?,
        },
        5 => Message::ForwardedAck {
            origin: read_named_identity(buf)?,
            probe_number: read_u8(buf)?,
        },
        6 => Message::Announce,
        7 => Message::Feed,
        8 => Message::Gossip,
        9 => Message::Broadcast,
        10 => Message::TurnUndead,
        _ => return Err(CodecError("unknown message")),
    })
}

// ---- writing ----

pub(crate) fn addr_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 1 + 4 + 2,
        SocketAddr::V6(_) => 1 + 16 + 2,
    }
}

pub(crate) fn put_addr(buf: &mut impl BufMut, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            buf.put_u8(4);
            buf.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            buf.put_u8(6);
            buf.put_slice(&ip.octets());
        }
    }
    buf.put_u16(addr.port());
}

/// Bytes a name takes; `None` when it is too long to carry.
pub(crate) fn name_len(name: &str) -> Option<usize> {
    (name.len() <= MAX_NAME_BYTES).then_some(1 + name.len())
}

pub(crate) fn put_name(buf: &mut impl BufMut, name: &str) {
    // Checked by name_len before any write.
    buf.put_u8(name.len() as u8);
    buf.put_slice(name.as_bytes());
}

fn identity_len(id: &SwimIdentity) -> Result<usize, CodecError> {
    let name = name_len(id.name()).ok_or(CodecError("name too long"))?;
    Ok(name + addr_len(&id.gossip()) + 8 + 2)
}

fn put_identity(buf: &mut impl BufMut, id: &SwimIdentity) {
    put_name(buf, id.name());
    put_addr(buf, &id.gossip());
    buf.put_u64(id.generation().0);
    buf.put_u16(id.renewal());
}

fn message_len(m: &Message<SwimIdentity>) -> Result<usize, CodecError> {
    Ok(match m {
        Message::Ping(_) | Message::Ack(_) => 2,
        Message::PingReq { target: id, .. }
        | Message::IndirectPing { origin: id, .. }
        | Message::IndirectAck { target: id, .. }
        | Message::ForwardedAck { origin: id, .. } => 1 + identity_len(id)? + 1,
        Message::Announce
        | Message::Feed
        | Message::Gossip
        | Message::Broadcast
        | Message::TurnUndead => 1,
    })
}

fn put_message(buf: &mut impl BufMut, m: &Message<SwimIdentity>) {
    match m {
        Message::Ping(n) => {
            buf.put_u8(0);
            buf.put_u8(*n);
        }
        Message::Ack(n) => {
            buf.put_u8(1);
            buf.put_u8(*n);
        }
        Message::PingReq {
            target,
            probe_number,
        } => {
            buf.put_u8(2);
            put_identity(buf, target);
            buf.put_u8(*probe_number);
        }
        Message::IndirectPing {
            origin,
            probe_number,
        } => {
            buf.put_u8(3);
            put_identity(buf, origin);
            buf.put_u8(*probe_number);
        }
        Message::IndirectAck {
            target,
            probe_number,
        } => {
            buf.put_u8(4);
            put_identity(buf, target);
            buf.put_u8(*probe_number);
        }
        Message::ForwardedAck {
            origin,
            probe_number,
        } => {
            buf.put_u8(5);
            put_identity(buf, origin);
            buf.put_u8(*probe_number);
        }
        Message::Announce => buf.put_u8(6),
        Message::Feed => buf.put_u8(7),
        Message::Gossip => buf.put_u8(8),
        Message::Broadcast => buf.put_u8(9),
        Message::TurnUndead => buf.put_u8(10),
    }
}

fn state_byte(state: State) -> u8 {
    match state {
        State::Alive => 0,
        State::Suspect => 1,
        State::Down => 2,
    }
}

impl Codec<SwimIdentity> for SwimCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<SwimIdentity>,
        mut buf: impl BufMut,
    ) -> Result<(), CodecError> {
        let len = identity_len(&header.src)?
            + 2
            + identity_len(&header.dst)?
            + message_len(&header.message)?;
        if buf.remaining_mut() < len {
            return Err(NO_ROOM);
        }
        put_identity(&mut buf, &header.src);
        buf.put_u16(header.src_incarnation);
        put_identity(&mut buf, &header.dst);
        put_message(&mut buf, &header.message);
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<SwimIdentity>, CodecError> {
        let src = read_named_identity(&mut buf)?;
        let src_incarnation = read_u16(&mut buf)?;
        // An announce may be addressed to a seed whose name the sender does not know.
        let dst = read_identity(&mut buf)?;
        let message = read_message(&mut buf)?;
        if dst.name().is_empty() && message != Message::Announce {
            return Err(CodecError("empty name"));
        }
        Ok(Header {
            src,
            src_incarnation,
            dst,
            message,
        })
    }

    fn encode_member(
        &mut self,
        member: &Member<SwimIdentity>,
        mut buf: impl BufMut,
    ) -> Result<(), CodecError> {
        let len = identity_len(member.id())? + 2 + 1;
        if buf.remaining_mut() < len {
            return Err(NO_ROOM);
        }
        put_identity(&mut buf, member.id());
        buf.put_u16(member.incarnation());
        buf.put_u8(state_byte(member.state()));
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<SwimIdentity>, CodecError> {
        let id = read_named_identity(&mut buf)?;
        let incarnation = read_u16(&mut buf)?;
        let state = match read_u8(&mut buf)? {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            _ => return Err(CodecError("unknown member state")),
        };
        Ok(Member::new(id, incarnation, state))
    }
}

/// What a datagram's foca payload says, read ahead of foca: its header and its member
/// updates, with where each lies in the payload (the custom broadcasts behind them are left
/// to foca). Reads as foca reads a datagram, so that anything refused here would be refused
/// there.
pub(crate) struct Preview {
    pub header: Header<SwimIdentity>,
    /// Where the header ends (and the update count begins, when there is one).
    pub header_len: usize,
    /// Each update, and the bytes it came from.
    pub updates: Vec<(Member<SwimIdentity>, Range<usize>)>,
    /// Where the updates end (and the custom broadcasts begin).
    pub tail: usize,
}

/// Reads a payload's header and updates; refuses what does not parse.
pub(crate) fn preview(payload: &[u8]) -> Result<Preview, CodecError> {
    let mut codec = SwimCodec;
    let mut data = payload;
    let header = codec.decode_header(&mut data)?;
    let header_len = payload.len() - data.len();
    let mut updates = Vec::new();
    if data.len() >= 2 && header.message != Message::Broadcast {
        let count = usize::from(read_u16(&mut data)?);
        // Each update takes at least 16 bytes: a count past what the bytes could hold is
        // refused before anything is allocated for it.
        if count > data.len() / 16 {
            return Err(CodecError("update count past the datagram"));
        }
        updates.reserve(count);
        for _ in 0..count {
            let start = payload.len() - data.len();
            let member = codec.decode_member(&mut data)?;
            updates.push((member, start..payload.len() - data.len()));
        }
    }
    Ok(Preview {
        header,
        header_len,
        updates,
        tail: payload.len() - data.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, ip: [u8; 4]) -> SwimIdentity {
        SwimIdentity::from_parts(
            Arc::from(name),
            SocketAddr::from((ip, 7946)),
            Generation(0x0102_0304_0506_0708),
            3,
        )
    }

    fn every_message() -> Vec<Message<SwimIdentity>> {
        let t = id("target", [10, 0, 0, 3]);
        vec![
            Message::Ping(1),
            Message::Ack(2),
            Message::PingReq {
                target: t.clone(),
                probe_number: 3,
            },
            Message::IndirectPing {
                origin: t.clone(),
                probe_number: 4,
            },
            Message::IndirectAck {
                target: t.clone(),
                probe_number: 5,
            },
            Message::ForwardedAck {
                origin: t,
                probe_number: 6,
            },
            Message::Announce,
            Message::Feed,
            Message::Gossip,
            Message::Broadcast,
            Message::TurnUndead,
        ]
    }

    #[test]
    fn headers_round_trip_for_every_message() {
        for message in every_message() {
            let header = Header {
                src: id("a", [10, 0, 0, 1]),
                src_incarnation: 513,
                dst: SwimIdentity::from_parts(
                    Arc::from("b"),
                    "[fd00::2]:7946".parse().unwrap(),
                    Generation(9),
                    0,
                ),
                message,
            };
            let mut buf = Vec::new();
            SwimCodec.encode_header(&header, &mut buf).unwrap();
            let mut read = &buf[..];
            assert_eq!(SwimCodec.decode_header(&mut read).unwrap(), header);
            assert!(read.is_empty());
            // Every strict prefix is refused.
            for cut in 0..buf.len() {
                assert!(SwimCodec.decode_header(&buf[..cut]).is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn members_round_trip_and_a_member_that_does_not_fit_leaves_the_buffer_clean() {
        for state in [State::Alive, State::Suspect, State::Down] {
            let member = Member::new(id("node-1", [10, 0, 0, 1]), 7, state);
            let mut buf = Vec::new();
            SwimCodec.encode_member(&member, &mut buf).unwrap();
            assert_eq!(buf.len(), 1 + 6 + 7 + 8 + 2 + 2 + 1);
            assert_eq!(SwimCodec.decode_member(&buf[..]).unwrap(), member);
            let mut small = Vec::new();
            let limited = (&mut small).limit(buf.len() - 1);
            assert_eq!(SwimCodec.encode_member(&member, limited), Err(NO_ROOM));
            assert!(small.is_empty());
        }
    }

    #[test]
    fn names_are_bounded_and_must_be_utf8() {
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        let member = Member::new(id(&long, [10, 0, 0, 1]), 0, State::Alive);
        assert!(SwimCodec.encode_member(&member, Vec::new()).is_err());
        let longest = "n".repeat(MAX_NAME_BYTES);
        let member = Member::new(id(&longest, [10, 0, 0, 1]), 0, State::Alive);
        let mut buf = Vec::new();
        SwimCodec.encode_member(&member, &mut buf).unwrap();
        assert_eq!(SwimCodec.decode_member(&buf[..]).unwrap(), member);
        // A length byte past the bound, and a name that is not UTF-8.
        buf[0] = 254;
        assert_eq!(
            SwimCodec.decode_member(&buf[..]),
            Err(CodecError("name too long"))
        );
        let mut bad = Vec::new();
        SwimCodec
            .encode_member(
                &Member::new(id("ab", [1, 2, 3, 4]), 0, State::Alive),
                &mut bad,
            )
            .unwrap();
        bad[1] = 0xff;
        assert_eq!(
            SwimCodec.decode_member(&bad[..]),
            Err(CodecError("name not UTF-8"))
        );
    }

    #[test]
    fn only_an_announce_may_be_addressed_to_an_unnamed_seed() {
        let seed = SwimIdentity::seed(SocketAddr::from(([10, 0, 0, 9], 7946)));
        for message in [Message::Announce, Message::Gossip] {
            let header = Header {
                src: id("a", [10, 0, 0, 1]),
                src_incarnation: 0,
                dst: seed.clone(),
                message: message.clone(),
            };
            let mut buf = Vec::new();
            SwimCodec.encode_header(&header, &mut buf).unwrap();
            let got = SwimCodec.decode_header(&buf[..]);
            assert_eq!(got.is_ok(), message == Message::Announce, "{message:?}");
        }
    }

    #[test]
    fn preview_reads_updates_and_refuses_impossible_counts() {
        let header = Header {
            src: id("a", [10, 0, 0, 1]),
            src_incarnation: 0,
            dst: id("b", [10, 0, 0, 2]),
            message: Message::Gossip,
        };
        let mut buf = Vec::new();
        SwimCodec.encode_header(&header, &mut buf).unwrap();
        let at = buf.len();
        buf.put_u16(1);
        SwimCodec
            .encode_member(&Member::alive(id("c", [10, 0, 0, 3])), &mut buf)
            .unwrap();
        let p = preview(&buf).unwrap();
        assert_eq!(p.header, header);
        assert_eq!(p.header_len, at);
        assert_eq!(p.updates.len(), 1);
        assert_eq!(p.updates[0].0, Member::alive(id("c", [10, 0, 0, 3])));
        assert_eq!(p.updates[0].1, at + 2..buf.len());
        assert_eq!(p.tail, buf.len());
        buf[at..at + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(preview(&buf).is_err());
    }

    #[test]
    fn unknown_kinds_and_families_are_refused() {
        let header = Header {
            src: id("a", [10, 0, 0, 1]),
            src_incarnation: 0,
            dst: id("b", [10, 0, 0, 2]),
            message: Message::Gossip,
        };
        let mut buf = Vec::new();
        SwimCodec.encode_header(&header, &mut buf).unwrap();
        let mut kind = buf.clone();
        *kind.last_mut().unwrap() = 11;
        assert_eq!(
            SwimCodec.decode_header(&kind[..]),
            Err(CodecError("unknown message"))
        );
        let mut family = buf;
        family[2] = 5; // after the name length and the one-byte name
        assert_eq!(
            SwimCodec.decode_header(&family[..]),
            Err(CodecError("unknown address family"))
        );
    }
}
