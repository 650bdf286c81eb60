//! RESP values ([`Frame`]) and how they are written on the wire, in RESP2 or RESP3.
//!
//! Two ways to write a reply:
//! - build a [`Frame`] and call [`Frame::encode`]: for the cold commands (`HELLO`, `INFO`,
//!   `COMMAND`) and for the client, which sends and receives frames;
//! - call the `put_*` functions directly: for the hot path (`CHECK`, `PING`), which writes its
//!   five integers into the connection's output buffer without building anything.
//!
//! A connection speaks RESP2 until it sends `HELLO 3`. RESP3-only types are downgraded for
//! RESP2 the way Redis does it: a map becomes a flat array of key, value, key, value…; a set
//! an array; a boolean the integer 0 or 1; a double a bulk string; null the null bulk string.

use bytes::{BufMut, Bytes, BytesMut};

/// The reply dialect of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2: every connection starts here (what `redis-cli`, `redis-benchmark` and most
    /// client libraries speak by default).
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`: maps, booleans, doubles and a distinct null.
    Resp3,
}

impl Protocol {
    /// The number `HELLO` takes and reports: 2 or 3.
    pub fn version(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// One RESP value: a reply a server sends, or a command a client sends (an array of bulk
/// strings).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`: a short status line (no CR or LF inside).
    Simple(String),
    /// `-ERR message`: the first word is the error code (`ERR`, `WRONGPASS`, `NOAUTH`…).
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$5\r\nhello`: binary-safe bytes.
    Bulk(Bytes),
    /// RESP3 `_`; RESP2 writes the null bulk string `$-1`.
    Null,
    /// `*N` followed by N frames.
    Array(Vec<Frame>),
    /// RESP3 `%N` followed by N key/value pairs.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~N`.
    Set(Vec<Frame>),
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,1.5`.
    Double(f64),
    /// RESP3 `(123…`: an integer too large for 64 bits, as its decimal digits.
    BigNumber(String),
    /// RESP3 `=N\r\ntxt:…`: text with a three-letter format (`txt`, `mkd`).
    Verbatim { format: String, text: Bytes },
    /// RESP3 `>N`: out-of-band data (tollgate never sends it; the client reads it).
    Push(Vec<Frame>),
}

impl Frame {
    /// A bulk string from anything byte-like.
    pub fn bulk(b: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(b.as_ref()))
    }

    /// A simple string.
    pub fn simple(s: impl Into<String>) -> Frame {
        Frame::Simple(s.into())
    }

    /// An error reply; `message` starts with the code (`ERR …`).
    pub fn error(message: impl Into<String>) -> Frame {
        Frame::Error(message.into())
    }

    /// A command: an array of bulk strings, the form every request takes.
    pub fn command<I, A>(args: I) -> Frame
    where
        I: IntoIterator<Item = A>,
        A: AsRef<[u8]>,
    {
        Frame::Array(args.into_iter().map(Frame::bulk).collect())
    }

    /// The bytes of a bulk, simple or verbatim string; `None` for other types.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Bulk(b) => Some(b),
            Frame::Simple(s) => Some(s.as_bytes()),
            Frame::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The integer of an integer reply (a RESP2 boolean is one too).
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Frame::Integer(n) => Some(*n),
            Frame::Boolean(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// Writes this frame in `protocol`.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Frame::Simple(s) => put_simple(out, s),
            Frame::Error(e) => put_error(out, e),
            Frame::Integer(n) => put_integer(out, *n),
            Frame::Bulk(b) => put_bulk(out, b),
            Frame::Null => put_null(out, protocol),
            Frame::Array(items) => {
                put_header(out, b'*', items.len() as i64);
                for f in items {
                    f.encode(protocol, out);
                }
            }
            Frame::Map(pairs) => {
                if resp3 {
                    put_header(out, b'%', pairs.len() as i64);
                } else {
                    put_header(out, b'*', 2 * pairs.len() as i64);
                }
                for (k, v) in pairs {
                    k.encode(protocol, out);
                    v.encode(protocol, out);
                }
            }
            Frame::Set(items) | Frame::Push(items) => {
                let tag = match (resp3, self) {
                    (true, Frame::Set(_)) => b'~',
                    (true, _) => b'>',
                    (false, _) => b'*',
                };
                put_header(out, tag, items.len() as i64);
                for f in items {
                    f.encode(protocol, out);
                }
            }
            Frame::Boolean(b) => {
                if resp3 {
                    out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    put_integer(out, i64::from(*b));
                }
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                if resp3 {
                    out.put_u8(b',');
                    out.put_slice(text.as_bytes());
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, text.as_bytes());
                }
            }
            Frame::BigNumber(digits) => {
                if resp3 {
                    out.put_u8(b'(');
                    put_line_text(out, digits);
                } else {
                    put_bulk(out, digits.as_bytes());
                }
            }
            Frame::Verbatim { format, text } => {
                if resp3 {
                    // The format is exactly three bytes on the wire; pad or cut what we were
                    // given rather than write a frame the reader would misparse.
                    let mut f = [b' '; 3];
                    for (d, s) in f.iter_mut().zip(format.bytes()) {
                        *d = s;
                    }
                    put_header(out, b'=', text.len() as i64 + 4);
                    out.put_slice(&f);
                    out.put_u8(b':');
                    out.put_slice(text);
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, text);
                }
            }
        }
    }

    /// This frame's bytes in `protocol`.
    pub fn to_bytes(&self, protocol: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(protocol, &mut out);
        out.freeze()
    }
}

/// RESP3 doubles: `inf`, `-inf`, `nan`, otherwise the shortest decimal that reads back.
fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{d}")
    }
}

/// Writes `text` followed by CRLF, with any CR or LF in it replaced by a space: a line-typed
/// frame (`+`, `-`) cannot carry them, and a message built from client input must not be
/// able to inject a second reply.
fn put_line_text(out: &mut BytesMut, text: &str) {
    let b = text.as_bytes();
    if b.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend(
            b.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    } else {
        out.put_slice(b);
    }
    out.put_slice(b"\r\n");
}

/// `+text\r\n`.
pub fn put_simple(out: &mut BytesMut, text: &str) {
    out.put_u8(b'+');
    put_line_text(out, text);
}

/// `-message\r\n`; `message` starts with the error code (`ERR unknown command 'x'`).
pub fn put_error(out: &mut BytesMut, message: &str) {
    out.put_u8(b'-');
    put_line_text(out, message);
}

/// `:n\r\n`.
#[inline]
pub fn put_integer(out: &mut BytesMut, n: i64) {
    put_header(out, b':', n);
}

/// `$len\r\nbytes\r\n`.
#[inline]
pub fn put_bulk(out: &mut BytesMut, bytes: &[u8]) {
    put_header(out, b'$', bytes.len() as i64);
    out.put_slice(bytes);
    out.put_slice(b"\r\n");
}

/// The null value: `_\r\n` in RESP3, the null bulk string `$-1\r\n` in RESP2.
#[inline]
pub fn put_null(out: &mut BytesMut, protocol: Protocol) {
    out.put_slice(match protocol {
        Protocol::Resp3 => b"_\r\n",
        Protocol::Resp2 => b"$-1\r\n",
    });
}

/// `*n\r\n`: the header of an array of `n` frames.
#[inline]
pub fn put_array_header(out: &mut BytesMut, n: usize) {
    put_header(out, b'*', n as i64);
}

/// An empty map: `%0` in RESP3, `*0` in RESP2.
pub fn put_empty_map(out: &mut BytesMut, protocol: Protocol) {
    out.put_slice(match protocol {
        Protocol::Resp3 => b"%0\r\n",
        Protocol::Resp2 => b"*0\r\n",
    });
}

/// `<tag><n>\r\n`, the shape of every integer-carrying line. The hot path writes five of
/// these per `CHECK`, so no `format!` and no allocation: itoa formats on the stack.
#[inline]
pub fn put_header(out: &mut BytesMut, tag: u8, n: i64) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    out.reserve(digits.len() + 3);
    out.put_u8(tag);
    out.put_slice(digits);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame, p: Protocol) -> String {
        String::from_utf8(f.to_bytes(p).to_vec()).unwrap()
    }

    #[test]
    fn integers_cover_the_whole_range() {
        for (n, text) in [
            (0, ":0\r\n"),
            (7, ":7\r\n"),
            (-1, ":-1\r\n"),
            (1_000_000, ":1000000\r\n"),
            (i64::MAX, ":9223372036854775807\r\n"),
            (i64::MIN, ":-9223372036854775808\r\n"),
        ] {
            assert_eq!(enc(&Frame::Integer(n), Protocol::Resp2), text);
        }
    }

    #[test]
    fn scalar_types_in_both_protocols() {
        let r2 = Protocol::Resp2;
        let r3 = Protocol::Resp3;
        assert_eq!(enc(&Frame::simple("OK"), r2), "+OK\r\n");
        assert_eq!(enc(&Frame::error("ERR x"), r3), "-ERR x\r\n");
        assert_eq!(enc(&Frame::bulk("hé"), r2), "$3\r\nhé\r\n");
        assert_eq!(enc(&Frame::bulk(""), r2), "$0\r\n\r\n");
        assert_eq!(enc(&Frame::Null, r2), "$-1\r\n");
        assert_eq!(enc(&Frame::Null, r3), "_\r\n");
        assert_eq!(enc(&Frame::Boolean(true), r3), "#t\r\n");
        assert_eq!(enc(&Frame::Boolean(false), r2), ":0\r\n");
        assert_eq!(enc(&Frame::Double(1.5), r3), ",1.5\r\n");
        assert_eq!(enc(&Frame::Double(f64::INFINITY), r3), ",inf\r\n");
        assert_eq!(enc(&Frame::Double(-2.0), r2), "$2\r\n-2\r\n");
        assert_eq!(enc(&Frame::BigNumber("12345".into()), r3), "(12345\r\n");
        let v = Frame::Verbatim {
            format: "txt".into(),
            text: Bytes::from_static(b"hi"),
        };
        assert_eq!(enc(&v, r3), "=6\r\ntxt:hi\r\n");
        assert_eq!(enc(&v, r2), "$2\r\nhi\r\n");
    }

    #[test]
    fn aggregates_downgrade_for_resp2() {
        let m = Frame::Map(vec![
            (Frame::bulk("a"), Frame::Integer(1)),
            (Frame::bulk("b"), Frame::Array(vec![])),
        ]);
        assert_eq!(
            enc(&m, Protocol::Resp3),
            "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*0\r\n"
        );
        assert_eq!(
            enc(&m, Protocol::Resp2),
            "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n*0\r\n"
        );
        let s = Frame::Set(vec![Frame::Integer(1)]);
        assert_eq!(enc(&s, Protocol::Resp3), "~1\r\n:1\r\n");
        assert_eq!(enc(&s, Protocol::Resp2), "*1\r\n:1\r\n");
        let mut out = BytesMut::new();
        put_empty_map(&mut out, Protocol::Resp3);
        put_empty_map(&mut out, Protocol::Resp2);
        assert_eq!(&out[..], b"%0\r\n*0\r\n");
    }

    #[test]
    fn line_frames_cannot_smuggle_a_second_reply() {
        assert_eq!(
            enc(&Frame::error("ERR bad\r\n+OK"), Protocol::Resp2),
            "-ERR bad  +OK\r\n"
        );
        assert_eq!(enc(&Frame::simple("a\nb"), Protocol::Resp2), "+a b\r\n");
    }

    #[test]
    fn command_is_an_array_of_bulks() {
        let c = Frame::command(["CHECK", "k", "basic"]);
        assert_eq!(
            enc(&c, Protocol::Resp2),
            "*3\r\n$5\r\nCHECK\r\n$1\r\nk\r\n$5\r\nbasic\r\n"
        );
        assert_eq!(Frame::bulk("x").as_bytes(), Some(&b"x"[..]));
        assert_eq!(Frame::Boolean(true).as_integer(), Some(1));
        assert_eq!(Frame::Null.as_bytes(), None);
    }
}
