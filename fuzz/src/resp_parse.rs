//! Fuzz body: the RESP request parser (`RequestParser`) and reply parser (`parse_frame`) on
//! arbitrary bytes.
//!
//! Invariants checked, beyond "never panics":
//! - every command consumes at least one byte and never more than the input holds, and its
//!   arguments respect the bounds;
//! - feeding the input in pieces (split at a point the input chooses, and byte by byte)
//!   yields exactly the commands and the error of feeding it whole: what a read happens to
//!   deliver never changes what a connection executes;
//! - a reply frame that parses re-encodes (RESP2 and RESP3) into bytes that parse again,
//!   taking exactly all of them.

use tollgate::resp::{
    parse_frame, FrameLimits, ParseError, Parsed, Protocol, RequestLimits, RequestParser,
};

const LIMITS: RequestLimits = RequestLimits {
    max_bulk_bytes: 256,
    max_args: 16,
    max_inline_bytes: 256,
    max_command_bytes: 1024,
};

type Outcome = (Vec<Vec<Vec<u8>>>, Option<ParseError>);

/// Feeds `pieces` one after the other into a growing buffer consumed from the front, as the
/// server's read loop does.
fn parse_pieces(pieces: &[&[u8]]) -> Outcome {
    let mut parser = RequestParser::new(LIMITS);
    let mut buf: Vec<u8> = Vec::new();
    let mut commands = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            let consumed = match parser.parse(&buf) {
                Ok(Parsed::Command { args, consumed }) => {
                    assert!(consumed > 0, "a command consumed nothing");
                    assert!(consumed <= buf.len(), "consumed past the input");
                    assert!(args.len() <= LIMITS.max_args, "too many arguments");
                    for a in &args {
                        assert!(a.len() <= LIMITS.max_bulk_bytes.max(LIMITS.max_inline_bytes));
                    }
                    if !args.is_empty() {
                        commands.push(args.iter().map(|a| a.to_vec()).collect());
                    }
                    consumed
                }
                Ok(Parsed::Incomplete) => break,
                Err(e) => return (commands, Some(e)),
            };
            buf.drain(..consumed);
        }
    }
    (commands, None)
}

pub fn run(data: &[u8]) {
    let whole = parse_pieces(&[data]);
    if let Some(&first) = data.first() {
        let cut = (usize::from(first) * 31 + data.len() / 2) % (data.len() + 1);
        let split = parse_pieces(&[&data[..cut], &data[cut..]]);
        assert_eq!(whole, split, "split at {cut} changed the outcome");
        if data.len() <= 2048 {
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(
                whole,
                parse_pieces(&bytes),
                "byte-by-byte changed the outcome"
            );
        }
    }

    let limits = FrameLimits {
        max_bulk_bytes: 4096,
        max_elements: 256,
        max_depth: 8,
    };
    if let Ok(Some((frame, used))) = parse_frame(data, &limits) {
        assert!(used > 0 && used <= data.len());
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let bytes = frame.to_bytes(protocol);
            match parse_frame(&bytes, &FrameLimits::default()) {
                Ok(Some((_, n))) => assert_eq!(n, bytes.len(), "re-encoded frame not whole"),
                other => panic!("re-encoded {frame:?} as {protocol:?} does not parse: {other:?}"),
            }
        }
    }
}
