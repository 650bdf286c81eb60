//! Parsing RESP: requests on the server side ([`RequestParser`]), replies on the client side
//! ([`parse_frame`]).
//!
//! Requests come in two forms, as Redis accepts them:
//! - an array of bulk strings, `*3\r\n$5\r\nCHECK\r\n$1\r\nk\r\n$5\r\nbasic\r\n` (what every
//!   client library, `redis-cli` and `redis-benchmark` send);
//! - an inline command, one line of space-separated words with optional quotes
//!   (`CHECK k basic\r\n`, what someone typing into `nc` sends).
//!
//! The request parser is written for the hot path: it works over the connection's read
//! buffer as it is, returns the arguments as slices of it (no copy, and no allocation for a
//! command of up to eight arguments), and is incremental: fed a prefix of a command it says
//! "incomplete" and how many bytes it needs before trying again, so a command arriving in
//! many small reads is not re-scanned on every read. Only inline commands are copied (into a
//! scratch buffer the parser reuses), because quotes and escapes change their bytes.
//!
//! Every length is bounded ([`RequestLimits`]) and checked as soon as its header arrives,
//! before any of the data: a client announcing a 1 GiB bulk string is refused at once rather
//! than buffered. Errors carry Redis's own wording (`Protocol error: invalid bulk length`)
//! so that clients which recognise it do. No input makes either parser panic (property
//! tests below, and the `resp_parse` fuzz target).

use std::ops::Range;

use bytes::Bytes;
use smallvec::SmallVec;

use super::frame::Frame;

/// Bounds on one request. The defaults are what `[resp]` ships with (docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Longest bulk string (one argument).
    pub max_bulk_bytes: usize,
    /// Most arguments in one command, the command name included.
    pub max_args: usize,
    /// Longest inline command line.
    pub max_inline_bytes: usize,
    /// Largest command on the wire, headers included: bounds what one connection can make
    /// tollgate buffer while a command is incomplete.
    pub max_command_bytes: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_bulk_bytes: 64 * 1024,
            max_args: 64,
            max_inline_bytes: 64 * 1024,
            max_command_bytes: 256 * 1024,
        }
    }
}

/// A framing error. The connection cannot continue after one (the stream's position is
/// lost), so the server answers with the error and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Protocol error: invalid multibulk length")]
    BadArrayLength,
    #[error("Protocol error: invalid bulk length")]
    BadBulkLength,
    #[error("Protocol error: expected '$', got '{}'", std::ascii::escape_default(*.0))]
    ExpectedBulk(u8),
    #[error("Protocol error: a bulk string must be followed by CRLF")]
    MissingCrlf,
    #[error("Protocol error: too many arguments (the limit is {0})")]
    TooManyArgs(usize),
    #[error("Protocol error: bulk string of {len} bytes (the limit is {max})")]
    BulkTooLong { len: u64, max: usize },
    #[error("Protocol error: too big inline request (the limit is {0} bytes)")]
    InlineTooLong(usize),
    #[error("Protocol error: command larger than {0} bytes")]
    CommandTooLong(usize),
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("Protocol error: invalid {0} header")]
    BadHeader(&'static str),
    #[error("Protocol error: unknown type byte '{}'", std::ascii::escape_default(*.0))]
    BadType(u8),
    #[error("Protocol error: nesting deeper than {0}")]
    TooDeep(usize),
}

/// The arguments of one command: slices of the read buffer (or of the parser's scratch
/// buffer, for an inline command). Eight fit inline: `CHECK k tier HITS n LIMIT name` has 7.
pub type Args<'a> = SmallVec<[&'a [u8]; 8]>;

/// What one call to [`RequestParser::parse`] found at the start of the input.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A whole command (possibly empty: `*0`, `*-1` or a blank inline line, which the caller
    /// skips), and how many input bytes it took.
    Command { args: Args<'a>, consumed: usize },
    /// The input holds only part of a command; call again with more.
    Incomplete,
}

/// Longest integer header accepted (`*`/`$` line): a sign and 19 digits, then CRLF.
const MAX_HEADER_DIGITS: usize = 20;

/// The request parser of one connection. Holds no command between calls, only the scratch
/// buffer inline commands are unescaped into and a hint of how much input the last
/// incomplete command needs.
#[derive(Debug)]
pub struct RequestParser {
    limits: RequestLimits,
    scratch: Vec<u8>,
    /// After `Incomplete`: the input length below which parsing again cannot succeed. The
    /// caller always passes input starting at the same command until it completes, so the
    /// hint stays valid; it is cleared by every other outcome.
    need: usize,
}

impl RequestParser {
    pub fn new(limits: RequestLimits) -> Self {
        Self {
            limits,
            scratch: Vec::new(),
            need: 0,
        }
    }

    pub fn limits(&self) -> &RequestLimits {
        &self.limits
    }

    /// Parses the command at the start of `input`. After `Incomplete`, the next call must
    /// pass the same bytes followed by more (the server's read buffer does exactly that).
    pub fn parse<'a>(&'a mut self, input: &'a [u8]) -> Result<Parsed<'a>, ParseError> {
        if input.len() < self.need || input.is_empty() {
            return Ok(Parsed::Incomplete);
        }
        // Every `Incomplete` below sets the hint again; any other outcome leaves it cleared.
        self.need = 0;
        if input[0] == b'*' {
            self.parse_array(input)
        } else {
            self.parse_inline(input)
        }
    }

    fn incomplete<'a>(&mut self, need: usize) -> Result<Parsed<'a>, ParseError> {
        self.need = need;
        Ok(Parsed::Incomplete)
    }

    fn parse_array<'a>(&mut self, input: &'a [u8]) -> Result<Parsed<'a>, ParseError> {
        let limits = self.limits;
        let (n, mut pos) = match read_int_line(input, 1) {
            Line::Int(n, next) => (n, next),
            Line::Incomplete => return self.incomplete(input.len() + 1),
            Line::Bad => return Err(ParseError::BadArrayLength),
        };
        if n < -1 {
            // -1 is RESP's null array; any other negative length is no length at all.
            return Err(ParseError::BadArrayLength);
        }
        if n <= 0 {
            // `*0` and `*-1`: nothing to do; Redis skips them too.
            return Ok(Parsed::Command {
                args: Args::new(),
                consumed: pos,
            });
        }
        if n as u64 > limits.max_args as u64 {
            return Err(ParseError::TooManyArgs(limits.max_args));
        }
        let n = n as usize;
        let mut args = Args::new();
        for _ in 0..n {
            let Some(&tag) = input.get(pos) else {
                return self.incomplete(pos + 1);
            };
            if tag != b'$' {
                return Err(ParseError::ExpectedBulk(tag));
            }
            let (len, start) = match read_int_line(input, pos + 1) {
                Line::Int(len, next) => (len, next),
                Line::Incomplete => return self.incomplete(input.len() + 1),
                Line::Bad => return Err(ParseError::BadBulkLength),
            };
            if len < 0 {
                return Err(ParseError::BadBulkLength);
            }
            let len = len as u64;
            if len > limits.max_bulk_bytes as u64 {
                return Err(ParseError::BulkTooLong {
                    len,
                    max: limits.max_bulk_bytes,
                });
            }
            let end = start + len as usize;
            // Refuse before the data arrives: this is what bounds the buffer.
            if end + 2 > limits.max_command_bytes {
                return Err(ParseError::CommandTooLong(limits.max_command_bytes));
            }
            if input.len() < end + 2 {
                return self.incomplete(end + 2);
            }
            if &input[end..end + 2] != b"\r\n" {
                return Err(ParseError::MissingCrlf);
            }
            args.push(&input[start..end]);
            pos = end + 2;
        }
        Ok(Parsed::Command {
            args,
            consumed: pos,
        })
    }

    fn parse_inline<'a>(&'a mut self, input: &'a [u8]) -> Result<Parsed<'a>, ParseError> {
        let max = self.limits.max_inline_bytes;
        let window = &input[..input.len().min(max + 1)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            if input.len() > max {
                return Err(ParseError::InlineTooLong(max));
            }
            return self.incomplete(input.len() + 1);
        };
        let mut line = &input[..nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let mut ranges: SmallVec<[Range<usize>; 8]> = SmallVec::new();
        split_inline(line, &mut self.scratch, &mut ranges, self.limits.max_args)?;
        let scratch = &self.scratch;
        Ok(Parsed::Command {
            args: ranges.into_iter().map(|r| &scratch[r]).collect(),
            consumed: nl + 1,
        })
    }
}

enum Line {
    /// The integer and the offset just past its CRLF.
    Int(i64, usize),
    Incomplete,
    Bad,
}

/// Reads `[-]digits\r\n` starting at `from`. Redis's own rules: no `+`, no spaces, no empty
/// number; we also cap the length so that a header cannot be an unbounded line.
fn read_int_line(input: &[u8], from: usize) -> Line {
    let rest = input.get(from..).unwrap_or_default();
    let (negative, digits_from) = match rest.first() {
        None => return Line::Incomplete,
        Some(b'-') => (true, 1),
        Some(_) => (false, 0),
    };
    let mut value: i64 = 0;
    let mut i = digits_from;
    loop {
        let Some(&b) = rest.get(i) else {
            return if i > MAX_HEADER_DIGITS {
                Line::Bad
            } else {
                Line::Incomplete
            };
        };
        match b {
            b'0'..=b'9' => {
                if i >= MAX_HEADER_DIGITS {
                    return Line::Bad;
                }
                let d = i64::from(b - b'0');
                value = match value.checked_mul(10).and_then(|v| v.checked_add(d)) {
                    Some(v) => v,
                    None => return Line::Bad,
                };
                i += 1;
            }
            b'\r' => {
                if i == digits_from {
                    return Line::Bad;
                }
                return match rest.get(i + 1) {
                    None => Line::Incomplete,
                    Some(b'\n') => Line::Int(if negative { -value } else { value }, from + i + 2),
                    Some(_) => Line::Bad,
                };
            }
            _ => return Line::Bad,
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline line into words the way `redis-cli` and Redis do: whitespace separates
/// words; `"…"` may hold `\n \r \t \b \a \\ \" \xHH`; `'…'` may hold `\'`; a closing quote
/// must be followed by whitespace or the end of the line.
fn split_inline(
    line: &[u8],
    scratch: &mut Vec<u8>,
    ranges: &mut SmallVec<[Range<usize>; 8]>,
    max_args: usize,
) -> Result<(), ParseError> {
    scratch.clear();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(());
        }
        if ranges.len() == max_args {
            return Err(ParseError::TooManyArgs(max_args));
        }
        let start = scratch.len();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let Some(&c) = line.get(i) else {
                if in_double || in_single {
                    return Err(ParseError::UnbalancedQuotes);
                }
                break;
            };
            if in_double {
                if c == b'\\' && line.get(i + 1) == Some(&b'x') {
                    if let (Some(h), Some(l)) = (
                        line.get(i + 2).copied().and_then(hex_value),
                        line.get(i + 3).copied().and_then(hex_value),
                    ) {
                        scratch.push(h * 16 + l);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < line.len() {
                    scratch.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 2;
                    continue;
                }
                if c == b'"' {
                    // The closing quote must end the word.
                    if line.get(i + 1).is_some_and(|&n| !is_space(n)) {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                scratch.push(c);
                i += 1;
            } else if in_single {
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    scratch.push(b'\'');
                    i += 2;
                    continue;
                }
                if c == b'\'' {
                    if line.get(i + 1).is_some_and(|&n| !is_space(n)) {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                scratch.push(c);
                i += 1;
            } else {
                match c {
                    _ if is_space(c) => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => scratch.push(c),
                }
                i += 1;
            }
        }
        ranges.push(start..scratch.len());
    }
}

// ------------------------------------------------------------------------------------------
// Replies (the client side)

/// Bounds on one reply the client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Longest bulk, verbatim or line string.
    pub max_bulk_bytes: usize,
    /// Most elements in one aggregate (array, map, set, push).
    pub max_elements: usize,
    /// Deepest nesting of aggregates.
    pub max_depth: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_bulk_bytes: 16 * 1024 * 1024,
            max_elements: 1 << 20,
            max_depth: 32,
        }
    }
}

/// Longest `+`, `-`, `:` … line accepted in a reply.
const MAX_LINE: usize = 64 * 1024;

/// Parses one complete RESP2 or RESP3 frame from the start of `input`: `Ok(None)` when the
/// input holds only part of one, else the frame and the bytes it took. Attributes (`|`) are
/// read and dropped: they annotate the frame that follows.
pub fn parse_frame(
    input: &[u8],
    limits: &FrameLimits,
) -> Result<Option<(Frame, usize)>, ParseError> {
    let mut pos = 0;
    match frame_at(input, &mut pos, limits, 0)? {
        Some(f) => Ok(Some((f, pos))),
        None => Ok(None),
    }
}

/// The line starting at `*pos` (without its CRLF); advances past the CRLF.
fn line_at<'a>(input: &'a [u8], pos: &mut usize) -> Result<Option<&'a [u8]>, ParseError> {
    let rest = &input[*pos..];
    let window = &rest[..rest.len().min(MAX_LINE + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => {
            *pos += i + 2;
            Ok(Some(&rest[..i]))
        }
        None if rest.len() > MAX_LINE + 1 => Err(ParseError::BadHeader("line")),
        None => Ok(None),
    }
}

fn int_of(line: &[u8], what: &'static str) -> Result<i64, ParseError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::BadHeader(what))
}

fn text_of(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn frame_at(
    input: &[u8],
    pos: &mut usize,
    limits: &FrameLimits,
    depth: usize,
) -> Result<Option<Frame>, ParseError> {
    if depth > limits.max_depth {
        return Err(ParseError::TooDeep(limits.max_depth));
    }
    let Some(&tag) = input.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let Some(line) = line_at(input, pos)? else {
        return Ok(None);
    };
    let count = |what: &'static str| -> Result<Option<usize>, ParseError> {
        let n = int_of(line, what)?;
        if n < 0 {
            return Ok(None);
        }
        if n as u64 > limits.max_elements as u64 {
            return Err(ParseError::BadHeader(what));
        }
        Ok(Some(n as usize))
    };
    let frame = match tag {
        b'+' => Frame::Simple(text_of(line)),
        b'-' => Frame::Error(text_of(line)),
        b':' => Frame::Integer(int_of(line, "integer")?),
        b'_' => Frame::Null,
        b'#' => match line {
            b"t" => Frame::Boolean(true),
            b"f" => Frame::Boolean(false),
            _ => return Err(ParseError::BadHeader("boolean")),
        },
        b',' => {
            let text = std::str::from_utf8(line).map_err(|_| ParseError::BadHeader("double"))?;
            let d = match text {
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                "nan" => f64::NAN,
                _ => text.parse().map_err(|_| ParseError::BadHeader("double"))?,
            };
            Frame::Double(d)
        }
        b'(' => {
            let ok = !line.is_empty()
                && line
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b.is_ascii_digit() || (i == 0 && b == b'-' && line.len() > 1));
            if !ok {
                return Err(ParseError::BadHeader("big number"));
            }
            Frame::BigNumber(text_of(line))
        }
        b'$' | b'=' | b'!' => {
            let n = int_of(line, "bulk")?;
            if n < 0 {
                if tag == b'$' {
                    return Ok(Some(Frame::Null));
                }
                return Err(ParseError::BadBulkLength);
            }
            if n as u64 > limits.max_bulk_bytes as u64 {
                return Err(ParseError::BulkTooLong {
                    len: n as u64,
                    max: limits.max_bulk_bytes,
                });
            }
            let n = n as usize;
            if input.len() < *pos + n + 2 {
                return Ok(None);
            }
            let data = &input[*pos..*pos + n];
            if &input[*pos + n..*pos + n + 2] != b"\r\n" {
                return Err(ParseError::MissingCrlf);
            }
            *pos += n + 2;
            match tag {
                b'$' => Frame::Bulk(Bytes::copy_from_slice(data)),
                b'!' => Frame::Error(text_of(data)),
                _ => {
                    if data.len() < 4 || data[3] != b':' {
                        return Err(ParseError::BadHeader("verbatim"));
                    }
                    Frame::Verbatim {
                        format: text_of(&data[..3]),
                        text: Bytes::copy_from_slice(&data[4..]),
                    }
                }
            }
        }
        b'*' | b'~' | b'>' => {
            let Some(n) = count("aggregate")? else {
                return Ok(Some(Frame::Null));
            };
            // Each element takes at least 3 bytes: do not reserve for elements that the
            // input cannot hold yet.
            let mut items = Vec::with_capacity(n.min(input.len() / 3 + 1));
            for _ in 0..n {
                match frame_at(input, pos, limits, depth + 1)? {
                    Some(f) => items.push(f),
                    None => return Ok(None),
                }
            }
            match tag {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                _ => Frame::Push(items),
            }
        }
        b'%' | b'|' => {
            let Some(n) = count("map")? else {
                return Ok(Some(Frame::Null));
            };
            let mut pairs = Vec::with_capacity(n.min(input.len() / 6 + 1));
            for _ in 0..n {
                let Some(k) = frame_at(input, pos, limits, depth + 1)? else {
                    return Ok(None);
                };
                let Some(v) = frame_at(input, pos, limits, depth + 1)? else {
                    return Ok(None);
                };
                pairs.push((k, v));
            }
            if tag == b'|' {
                // An attribute annotates the next frame; keep the frame.
                return frame_at(input, pos, limits, depth);
            }
            Frame::Map(pairs)
        }
        other => return Err(ParseError::BadType(other)),
    };
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::super::frame::Protocol;
    use super::*;
    use proptest::prelude::*;

    fn owned(args: &Args<'_>) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.to_vec()).collect()
    }

    /// Parses every command in `input` at once; returns the commands (empty ones skipped)
    /// and the unconsumed tail, or the first error.
    fn parse_all(
        p: &mut RequestParser,
        input: &[u8],
    ) -> (Vec<Vec<Vec<u8>>>, usize, Option<ParseError>) {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match p.parse(&input[pos..]) {
                Ok(Parsed::Command { args, consumed }) => {
                    assert!(consumed > 0, "progress");
                    if !args.is_empty() {
                        out.push(owned(&args));
                    }
                    pos += consumed;
                }
                Ok(Parsed::Incomplete) => return (out, pos, None),
                Err(e) => return (out, pos, Some(e)),
            }
        }
    }

    fn cmd(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    fn parser() -> RequestParser {
        RequestParser::new(RequestLimits::default())
    }

    #[test]
    fn arrays_of_bulk_strings() {
        let mut p = parser();
        let input = b"*3\r\n$5\r\nCHECK\r\n$1\r\nk\r\n$5\r\nbasic\r\n*1\r\n$4\r\nPING\r\n";
        let (cmds, used, err) = parse_all(&mut p, input);
        assert_eq!(cmds, vec![cmd(&["CHECK", "k", "basic"]), cmd(&["PING"])]);
        assert_eq!(used, input.len());
        assert!(err.is_none());
    }

    #[test]
    fn binary_safe_and_empty_arguments() {
        let mut p = parser();
        let input = b"*2\r\n$4\r\na\r\nb\r\n$0\r\n\r\n";
        let (cmds, _, err) = parse_all(&mut p, input);
        assert!(err.is_none());
        assert_eq!(cmds, vec![vec![b"a\r\nb".to_vec(), Vec::new()]]);
    }

    #[test]
    fn empty_arrays_are_skipped() {
        let mut p = parser();
        let (cmds, used, err) = parse_all(&mut p, b"*0\r\n*-1\r\n*1\r\n$1\r\nx\r\n");
        assert!(err.is_none());
        assert_eq!(used, 20);
        assert_eq!(cmds, vec![cmd(&["x"])]);
    }

    #[test]
    fn inline_commands_with_quotes() {
        let mut p = parser();
        let input =
            b"PING\r\n  check  k basic \r\nECHO \"a b\\n\\x41\" 'it\\'s' \"\"\n\r\n\nQUIT\n";
        let (cmds, used, err) = parse_all(&mut p, input);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(used, input.len());
        assert_eq!(
            cmds,
            vec![
                cmd(&["PING"]),
                cmd(&["check", "k", "basic"]),
                vec![
                    b"ECHO".to_vec(),
                    b"a b\nA".to_vec(),
                    b"it's".to_vec(),
                    vec![]
                ],
                cmd(&["QUIT"]),
            ]
        );
    }

    #[test]
    fn inline_errors() {
        for bad in [
            &b"ECHO \"abc\n"[..],
            b"ECHO 'abc\n",
            b"ECHO \"a\"b\n",
            b"ECHO 'a'b\n",
        ] {
            let mut p = parser();
            let (_, _, err) = parse_all(&mut p, bad);
            assert_eq!(err, Some(ParseError::UnbalancedQuotes), "{bad:?}");
        }
        let limits = RequestLimits {
            max_inline_bytes: 16,
            max_args: 3,
            ..RequestLimits::default()
        };
        let mut p = RequestParser::new(limits);
        assert!(matches!(
            p.parse(b"0123456789abcdef"),
            Ok(Parsed::Incomplete)
        ));
        assert_eq!(
            p.parse(b"0123456789abcdefg").unwrap_err(),
            ParseError::InlineTooLong(16)
        );
        let mut p = RequestParser::new(limits);
        assert_eq!(
            p.parse(b"a b c d\n").unwrap_err(),
            ParseError::TooManyArgs(3)
        );
    }

    #[test]
    fn framing_errors() {
        let cases: [(&[u8], ParseError); 14] = [
            (b"*x\r\n", ParseError::BadArrayLength),
            (b"*-2\r\n", ParseError::BadArrayLength),
            (b"*-9223372036854775808\r\n", ParseError::BadArrayLength),
            (b"*\r\n", ParseError::BadArrayLength),
            (b"*+1\r\n", ParseError::BadArrayLength),
            (b"*1\n", ParseError::BadArrayLength),
            (b"*1\rx", ParseError::BadArrayLength),
            (b"*99999999999999999999999\r\n", ParseError::BadArrayLength),
            (b"*1\r\n+PING\r\n", ParseError::ExpectedBulk(b'+')),
            (b"*1\r\n$-1\r\n", ParseError::BadBulkLength),
            (b"*1\r\n$x\r\n", ParseError::BadBulkLength),
            (b"*1\r\n$4\r\nPINGxx", ParseError::MissingCrlf),
            (b"*65\r\n", ParseError::TooManyArgs(64)),
            (
                b"*1\r\n$65537\r\n",
                ParseError::BulkTooLong {
                    len: 65537,
                    max: 65536,
                },
            ),
        ];
        for (input, want) in cases {
            let mut p = parser();
            assert_eq!(p.parse(input).unwrap_err(), want, "{input:?}");
        }
        assert_eq!(
            ParseError::ExpectedBulk(b'\n').to_string(),
            "Protocol error: expected '$', got '\\n'"
        );
    }

    #[test]
    fn command_size_is_refused_before_its_data_arrives() {
        let limits = RequestLimits {
            max_command_bytes: 100,
            ..RequestLimits::default()
        };
        let mut p = RequestParser::new(limits);
        // 2 × 60-byte bulks: the second header announces more than fits; refused with only
        // the headers received.
        let mut input = b"*2\r\n$60\r\n".to_vec();
        input.extend_from_slice(&[b'a'; 60]);
        input.extend_from_slice(b"\r\n$60\r\n");
        assert_eq!(
            p.parse(&input).unwrap_err(),
            ParseError::CommandTooLong(100)
        );
    }

    #[test]
    fn incomplete_waits_for_the_bytes_it_needs() {
        let mut p = parser();
        let input = b"*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n";
        // Cut right after the last header: the parser needs the whole bulk plus CRLF.
        let cut = input.len() - 12;
        assert!(matches!(p.parse(&input[..cut]), Ok(Parsed::Incomplete)));
        assert_eq!(p.need, input.len());
        // One byte more is not enough and is answered from the hint alone.
        assert!(matches!(p.parse(&input[..cut + 1]), Ok(Parsed::Incomplete)));
        match p.parse(input).unwrap() {
            Parsed::Command { args, consumed } => {
                assert_eq!(consumed, input.len());
                assert_eq!(owned(&args), cmd(&["ECHO", "0123456789"]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.need, 0);
    }

    #[test]
    fn reply_frames_roundtrip() {
        let frames = vec![
            Frame::simple("OK"),
            Frame::error("ERR x"),
            Frame::Integer(-5),
            Frame::bulk("a\r\nb"),
            Frame::Null,
            Frame::Array(vec![Frame::Integer(1), Frame::Array(vec![])]),
            Frame::Map(vec![(Frame::bulk("k"), Frame::Boolean(true))]),
            Frame::Set(vec![Frame::Double(2.5)]),
            Frame::BigNumber("-123456789012345678901234567890".into()),
            Frame::Verbatim {
                format: "txt".into(),
                text: Bytes::from_static(b"x\r\ny"),
            },
            Frame::Push(vec![Frame::simple("message")]),
        ];
        for f in frames {
            let bytes = f.to_bytes(Protocol::Resp3);
            let (back, used) = parse_frame(&bytes, &FrameLimits::default())
                .unwrap()
                .unwrap();
            assert_eq!(back, f);
            assert_eq!(used, bytes.len());
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse_frame(&bytes[..cut], &FrameLimits::default()).unwrap(),
                    None,
                    "{f:?} cut at {cut}"
                );
            }
        }
        // RESP2 nulls and attributes.
        let l = FrameLimits::default();
        assert_eq!(parse_frame(b"*-1\r\n", &l).unwrap().unwrap().0, Frame::Null);
        assert_eq!(
            parse_frame(b"|1\r\n+a\r\n:1\r\n:7\r\n", &l)
                .unwrap()
                .unwrap(),
            (Frame::Integer(7), 16)
        );
        assert_eq!(
            parse_frame(b"!5\r\nERR x\r\n", &l).unwrap().unwrap().0,
            Frame::Error("ERR x".into())
        );
    }

    #[test]
    fn reply_bounds() {
        let l = FrameLimits {
            max_bulk_bytes: 4,
            max_elements: 2,
            max_depth: 2,
        };
        assert!(parse_frame(b"$5\r\n", &l).is_err());
        assert!(parse_frame(b"*3\r\n", &l).is_err());
        assert!(parse_frame(b"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", &l).is_err());
        assert!(parse_frame(b"?\r\n", &l).is_err());
        assert!(parse_frame(b"#x\r\n", &l).is_err());
        assert!(parse_frame(b":1x\r\n", &l).is_err());
    }

    /// An encoded command: array form.
    fn encode_command(args: &[Vec<u8>]) -> Vec<u8> {
        Frame::command(args).to_bytes(Protocol::Resp2).to_vec()
    }

    fn arg_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "[a-zA-Z0-9:_]{1,12}".prop_map(|s| s.into_bytes()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Random bytes never panic, never report a consumed length beyond the input, and
        /// every argument is a slice of the input (arrays) or no longer than the line.
        #[test]
        fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut p = RequestParser::new(RequestLimits {
                max_bulk_bytes: 64, max_args: 8, max_inline_bytes: 64, max_command_bytes: 200,
            });
            let mut pos = 0;
            while pos < input.len() {
                match p.parse(&input[pos..]) {
                    Ok(Parsed::Command { args, consumed }) => {
                        prop_assert!(consumed > 0 && pos + consumed <= input.len());
                        prop_assert!(args.len() <= 8);
                        for a in &args {
                            prop_assert!(a.len() <= 64);
                        }
                        pos += consumed;
                    }
                    Ok(Parsed::Incomplete) | Err(_) => break,
                }
            }
            let _ = parse_frame(&input, &FrameLimits::default());
        }

        /// RESP-looking noise: valid prefixes with corrupted bytes, which reaches deeper
        /// branches than uniform random bytes.
        #[test]
        fn corrupted_commands_never_panic(
            cmds in proptest::collection::vec(proptest::collection::vec(arg_strategy(), 0..5), 1..4),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        ) {
            let mut input: Vec<u8> = cmds.iter().flat_map(|c| encode_command(c)).collect();
            for (at, b) in flips {
                if !input.is_empty() {
                    let i = at % input.len();
                    input[i] = b;
                }
            }
            let mut p = parser();
            let _ = parse_all(&mut p, &input);
            let _ = parse_frame(&input, &FrameLimits::default());
        }

        /// Feeding the same bytes split at arbitrary points (as reads deliver them) yields
        /// exactly the commands parsed from the whole input, in order.
        #[test]
        fn split_feeding_matches_whole_input(
            cmds in proptest::collection::vec(proptest::collection::vec(arg_strategy(), 1..6), 1..8),
            inline_too in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let mut input = Vec::new();
            for c in &cmds {
                input.extend_from_slice(&encode_command(c));
            }
            if inline_too {
                input.extend_from_slice(b"CHECK \"a b\" basic\r\n");
            }
            let mut whole_parser = parser();
            let (whole, used, err) = parse_all(&mut whole_parser, &input);
            prop_assert!(err.is_none());
            prop_assert_eq!(used, input.len());
            let mut expected: Vec<Vec<Vec<u8>>> =
                cmds.iter().filter(|c| !c.is_empty()).cloned().collect();
            if inline_too {
                expected.push(cmd(&["CHECK", "a b", "basic"]));
            }
            prop_assert_eq!(&whole, &expected);

            // Incremental: a growing buffer, consumed from the front, as the server does.
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (input.len() + 1)).collect();
            cuts.push(input.len());
            cuts.sort_unstable();
            let mut p = parser();
            let mut buf: Vec<u8> = Vec::new();
            let mut fed = 0;
            let mut got = Vec::new();
            for cut in cuts {
                buf.extend_from_slice(&input[fed..cut]);
                fed = cut;
                let (cmds, used, err) = parse_all(&mut p, &buf);
                prop_assert!(err.is_none());
                got.extend(cmds);
                buf.drain(..used);
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, expected);
        }

        /// Any frame the encoder writes, cut anywhere, parses as incomplete, and whole as
        /// itself.
        #[test]
        fn encoded_commands_parse_back(args in proptest::collection::vec(arg_strategy(), 1..6)) {
            let bytes = encode_command(&args);
            let (f, used) = parse_frame(&bytes, &FrameLimits::default()).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(f, Frame::command(&args));
        }
    }
}
