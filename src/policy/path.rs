//! Request-path normalisation: turns the request target nginx forwards (`X-Original-URI`)
//! into the one canonical path that route rules are matched against.
//!
//! The point of normalising is that tollgate must judge the path the application will
//! serve, not the bytes the client happened to send: `/api/users//bob/tasks` and
//! `/api/users/%62ob/tasks` are both bob's path, and so is `/api/users/alice/../bob/tasks`
//! to a backend that resolves dot segments (to one that does not, it is alice's: the default
//! reading refuses it, see below). The rules, in the order they are applied (docs/policy.md
//! has the table):
//!
//! 1. The query string and fragment (from the first `?` or `#`) take no part.
//! 2. The path must start with `/` and be at most [`MAX_PATH_BYTES`] bytes long.
//! 3. Each segment between raw `/`s is percent-decoded exactly once. An invalid escape, a
//!    decoded byte sequence that is not UTF-8, or any ASCII control character (NUL
//!    included, raw or encoded) is an error.
//! 4. An encoded slash (`%2F`) is an error, not a segment separator and not a literal:
//!    applications disagree on what it means (some decode it and route on the result,
//!    some do not), so any reading tollgate picked could differ from the application's.
//! 5. Empty segments (repeated or trailing slashes) are dropped.
//! 6. Under the readings whose backends resolve them (`node`, `go`, `servlet`), `.` segments
//!    are dropped and `..` removes the previous segment, *after* decoding (so `%2e%2e` counts
//!    as `..`, as it does for servers that decode before resolving); a `..` that would climb
//!    above the root is an error, as nginx treats it. Under the others, `strict` included,
//!    a `.` or `..` segment (raw or encoded) is an error.
//! 7. A segment that is `.` or `..` followed by `;` (`..;/`, a path parameter some Java
//!    servers strip before resolving dot segments) is an error: it would be a literal for
//!    tollgate and a parent-directory step for such a server.
//!
//! # Backend readings
//!
//! Application stacks do not all read a request target the same way: a WHATWG URL parser
//! (Node's `new URL()`) turns `\` into `/` and reads `//host/…` as an authority, servlet
//! containers strip `;params` from every segment, Starlette and Express keep `..` as a
//! literal segment, Express matches routes ignoring case. [`PathReading`] names the
//! families; `[policy] path_reading` picks one. Under the default, [`PathReading::Strict`],
//! every form on which the families disagree is refused (a [`PathError`] the gate answers
//! with `bad_path`), dot segments included: WHATWG, Go and servlet containers resolve `..`,
//! Starlette and Express route it as a literal segment, so `/api/users/bob/../alice/x` is
//! alice's path to one and bob's to the other. docs/policy.md has the table: each form, what each family does with it,
//! and what tollgate does under each reading.
//!
//! Case is the one difference decided at matching rather than here: see
//! [`PathReading::case`] and `Policy::evaluate_read`.
//!
//! The result, [`NormalizedPath`], holds the decoded segments joined by `/` (`/` for the
//! root) and their byte offsets, so that the matcher never re-splits or allocates.

use std::fmt;

use smallvec::SmallVec;

/// Longest path (without the query string) accepted, in bytes, before decoding.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// Which application stack's reading of a request target tollgate judges by
/// (`[policy] path_reading`). docs/policy.md tabulates the forms each one changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PathReading {
    /// Refuse every form the families below disagree on (`\`, `%5C`, a leading `//`,
    /// `;` parameters, Unicode look-alikes of `/ \ . ; %`); a path whose rule depends on
    /// letter case is refused too. The default: safe in front of any of them.
    #[default]
    Strict,
    /// Starlette / FastAPI on uvicorn: the percent-decoded path, taken literally (no dot
    /// resolution, `\` and `;` are ordinary characters), case-sensitive. `.`/`..` segments
    /// are refused, since tollgate cannot resolve them the way such a backend does not.
    Starlette,
    /// Node's WHATWG `new URL(req.url, base)` and Next.js: `\` is a `/`, a leading `//`
    /// (or `/\`) starts an authority that is not part of the path, dot segments resolve
    /// (`%2e` included), `;` is ordinary, case-sensitive.
    Node,
    /// Express (`parseurl`, `path-to-regexp`): the path literally (`\`, `;`, `..` are
    /// ordinary; dot segments are refused as for Starlette), routes matched ignoring case.
    Express,
    /// Go's `net/http` `ServeMux`: the decoded path, cleaned (dot segments and repeated
    /// slashes removed, unclean paths answered with a redirect to the clean one); `\` and
    /// `;` ordinary; case-sensitive.
    Go,
    /// Java servlet containers (Tomcat, Jetty): `;params` stripped from every segment
    /// before decoding (so `..;` is `..`), then decoded, dot segments resolved, repeated
    /// slashes merged; `\` raw or encoded refused (Tomcat answers 400); case-sensitive.
    Servlet,
}

/// How route patterns' literal segments are compared with a path's under a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseRule {
    /// Exactly (every family but Express).
    Sensitive,
    /// Ignoring case, as Express's default router does.
    Insensitive,
    /// Both ways, and a path whose rule differs between the two is refused
    /// ([`PathError::CaseDecidesRule`]).
    Both,
}

impl PathReading {
    /// Every reading, in the order the documentation lists them.
    pub const ALL: [PathReading; 6] = [
        PathReading::Strict,
        PathReading::Starlette,
        PathReading::Node,
        PathReading::Express,
        PathReading::Go,
        PathReading::Servlet,
    ];

    /// The reading named `s` in the configuration.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            PathReading::Strict => "strict",
            PathReading::Starlette => "starlette",
            PathReading::Node => "node",
            PathReading::Express => "express",
            PathReading::Go => "go",
            PathReading::Servlet => "servlet",
        }
    }

    /// How rule patterns are compared with paths under this reading.
    pub fn case(self) -> CaseRule {
        match self {
            PathReading::Strict => CaseRule::Both,
            PathReading::Express => CaseRule::Insensitive,
            _ => CaseRule::Sensitive,
        }
    }

    fn rules(self) -> Rules {
        let strict = self == PathReading::Strict;
        Rules {
            split_on_backslash: self == PathReading::Node,
            refuse_backslash: matches!(self, PathReading::Strict | PathReading::Servlet),
            refuse_semicolon: strict,
            strip_parameters: self == PathReading::Servlet,
            leading_double_slash: match self {
                PathReading::Strict => LeadingSlashes::Refuse,
                PathReading::Node => LeadingSlashes::Authority,
                _ => LeadingSlashes::Collapse,
            },
            refuse_dot_segments: matches!(
                self,
                PathReading::Strict | PathReading::Starlette | PathReading::Express
            ),
            refuse_lookalikes: strict,
        }
    }
}

impl fmt::Display for PathReading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The byte-level rules of a reading, looked up once per request.
#[derive(Clone, Copy)]
struct Rules {
    /// `\` separates segments like `/` (WHATWG, special schemes).
    split_on_backslash: bool,
    /// `\`, raw or decoded from `%5C`, is an error.
    refuse_backslash: bool,
    /// A raw `;` is an error.
    refuse_semicolon: bool,
    /// A raw `;` ends the segment's name: the rest, up to the next `/`, is dropped.
    strip_parameters: bool,
    leading_double_slash: LeadingSlashes,
    /// `.` and `..` segments (decoded) are errors rather than resolved.
    refuse_dot_segments: bool,
    /// Non-ASCII characters that Unicode compatibility folding turns into `/ \ . ; %` are
    /// errors.
    refuse_lookalikes: bool,
}

/// What a target starting with two or more slashes means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LeadingSlashes {
    /// An error ([`PathError::LeadingDoubleSlash`]).
    Refuse,
    /// `//host/path`: the host is an authority, the path starts at the next slash.
    Authority,
    /// Empty segments, dropped like any other.
    Collapse,
}

/// Why a request target cannot be normalised. The gate answers `403` with `bad_path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the request path is empty")]
    Empty,
    #[error("the request path does not start with '/'")]
    NotAbsolute,
    #[error("the request path is {len} bytes long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("the request path has an invalid percent-encoding")]
    InvalidPercentEncoding,
    #[error("the request path is not valid UTF-8 after percent-decoding")]
    InvalidUtf8,
    #[error("the request path contains a control character")]
    ControlCharacter,
    #[error("the request path contains an encoded '/' (%2F)")]
    EncodedSlash,
    #[error("the request path climbs above the root with '..'")]
    AboveRoot,
    #[error("the request path has a '.' or '..' segment with ';' parameters")]
    DotSegmentWithParameters,
    #[error("the request path contains a backslash (raw or %5C), which some backends read as '/'")]
    Backslash,
    #[error("the request path starts with '//', which URL parsers read as a host name")]
    LeadingDoubleSlash,
    #[error("the request path has ';' parameters, which servlet containers strip")]
    PathParameters,
    #[error(
        "the request path has a '.' or '..' segment, which some backends resolve and others \
         keep as a literal segment"
    )]
    DotSegment,
    #[error("the request path contains a Unicode look-alike of '/', '\\', '.', ';' or '%'")]
    LookalikeCharacter,
    #[error("letter case decides which rule governs the request path")]
    CaseDecidesRule,
}

impl PathError {
    /// A short machine-readable name, for metrics and the `X-Tollgate-Reason` header.
    pub fn code(&self) -> &'static str {
        match self {
            PathError::Empty => "empty_path",
            PathError::NotAbsolute => "path_not_absolute",
            PathError::TooLong { .. } => "path_too_long",
            PathError::InvalidPercentEncoding => "invalid_percent_encoding",
            PathError::InvalidUtf8 => "invalid_utf8",
            PathError::ControlCharacter => "control_character",
            PathError::EncodedSlash => "encoded_slash",
            PathError::AboveRoot => "above_root",
            PathError::DotSegmentWithParameters => "dot_segment_parameters",
            PathError::Backslash => "backslash",
            PathError::LeadingDoubleSlash => "leading_double_slash",
            PathError::PathParameters => "path_parameters",
            PathError::DotSegment => "dot_segment",
            PathError::LookalikeCharacter => "lookalike_character",
            PathError::CaseDecidesRule => "case_decides_rule",
        }
    }
}

/// A normalised request path: decoded segments joined by `/`, with their offsets.
///
/// Invariants (checked by the property tests): it starts with `/`; it is `/` alone or has no
/// trailing `/`; it contains no `//`; no segment is `.` or `..`; no segment contains a
/// control character; every segment is non-empty.
#[derive(Clone)]
pub struct NormalizedPath {
    path: String,
    /// `(start, end)` byte offsets of each segment in `path`. Paths are at most
    /// [`MAX_PATH_BYTES`] long before decoding and decoding only shrinks, so `u16` fits.
    segments: SmallVec<[(u16, u16); 12]>,
    /// Whether a decoded byte was an ASCII upper-case letter or non-ASCII (possibly in a
    /// segment `..` removed since): only such a path can match a lower-case pattern
    /// differently once case is ignored.
    may_fold: bool,
}

impl NormalizedPath {
    /// The decoded path, `/` for the root.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Whether the path may have letters whose case folds (ASCII upper case, or anything
    /// non-ASCII); `false` means all its letters are lower-case ASCII.
    pub fn may_fold(&self) -> bool {
        self.may_fold
    }

    /// Number of segments (0 for the root).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The `i`th decoded segment, if there is one.
    pub fn segment(&self, i: usize) -> Option<&str> {
        self.segments
            .get(i)
            .map(|&(s, e)| &self.path[s as usize..e as usize])
    }

    /// The decoded segments in order.
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.segments
            .iter()
            .map(|&(s, e)| &self.path[s as usize..e as usize])
    }

    /// The canonical percent-encoded form: the path an application should be given, and a
    /// fixed point of [`normalize_path`] (normalising it again yields the same path).
    /// `%`, `?`, `#`, `;`, `\`, space, controls and non-ASCII bytes are escaped; `/` separates
    /// segments. The canonical form is read the same way under every [`PathReading`].
    pub fn to_uri_string(&self) -> String {
        let mut out = String::with_capacity(self.path.len() + 8);
        if self.segments.is_empty() {
            out.push('/');
        }
        for seg in self.segments() {
            out.push('/');
            for &b in seg.as_bytes() {
                if needs_escape_in_uri(b) {
                    push_percent(&mut out, b);
                } else {
                    out.push(b as char);
                }
            }
        }
        out
    }
}

/// Two paths are equal when their segments are: `may_fold` is a hint about how they were
/// written, not part of the path.
impl PartialEq for NormalizedPath {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.segments == other.segments
    }
}

impl Eq for NormalizedPath {}

impl fmt::Debug for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NormalizedPath").field(&self.path).finish()
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl AsRef<str> for NormalizedPath {
    fn as_ref(&self) -> &str {
        &self.path
    }
}

fn needs_escape_in_uri(b: u8) -> bool {
    // `;` and `\` too: servlet containers strip a raw `;…`, WHATWG parsers split on `\`.
    !(0x21..=0x7e).contains(&b) || matches!(b, b'%' | b'?' | b'#' | b';' | b'\\')
}

fn push_percent(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 0xf) as usize] as char);
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Normalises a request target (path, optionally followed by `?query` and `#fragment`) under
/// the default reading, [`PathReading::Strict`].
///
/// ```
/// use tollgate::policy::path::normalize_path;
/// let p = normalize_path(b"/api/users/%62ob//tasks/?page=2").unwrap();
/// assert_eq!(p.as_str(), "/api/users/bob/tasks");
/// assert!(normalize_path(b"/api\\admin").is_err()); // `\` is `/` for some backends
/// assert!(normalize_path(b"/api/users/alice/../bob").is_err()); // `..` is literal for others
/// ```
pub fn normalize_path(target: &[u8]) -> Result<NormalizedPath, PathError> {
    normalize_path_as(target, PathReading::Strict)
}

/// Normalises a request target as the backend family `reading` reads it (see
/// [`PathReading`]).
///
/// ```
/// use tollgate::policy::path::{normalize_path_as, PathReading};
/// let p = normalize_path_as(b"/api/users/a/..\\b/tasks", PathReading::Node).unwrap();
/// assert_eq!(p.as_str(), "/api/users/b/tasks");
/// let p = normalize_path_as(b"/api;x=1/admin", PathReading::Servlet).unwrap();
/// assert_eq!(p.as_str(), "/api/admin");
/// ```
pub fn normalize_path_as(target: &[u8], reading: PathReading) -> Result<NormalizedPath, PathError> {
    let rules = reading.rules();
    let path_end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let raw = &target[..path_end];
    if raw.is_empty() {
        return Err(if target.is_empty() {
            PathError::Empty
        } else {
            PathError::NotAbsolute
        });
    }
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong {
            len: raw.len(),
            max: MAX_PATH_BYTES,
        });
    }
    if raw[0] != b'/' {
        return Err(PathError::NotAbsolute);
    }
    let is_separator = |b: u8| b == b'/' || (rules.split_on_backslash && b == b'\\');
    let mut rest = &raw[1..];
    if rest.first().is_some_and(|&b| is_separator(b)) {
        match rules.leading_double_slash {
            LeadingSlashes::Refuse => return Err(PathError::LeadingDoubleSlash),
            LeadingSlashes::Collapse => {}
            LeadingSlashes::Authority => {
                // WHATWG: any run of slashes after the first starts the authority, which
                // ends at the next slash; what follows is the path (the root if nothing).
                let host = rest
                    .iter()
                    .position(|&b| !is_separator(b))
                    .unwrap_or(rest.len());
                rest = &rest[host..];
                let path = rest
                    .iter()
                    .position(|&b| is_separator(b))
                    .unwrap_or(rest.len());
                rest = &rest[path..];
            }
        }
    }

    // Decoding never lengthens a segment, so `raw.len()` bytes always suffice.
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut segments: SmallVec<[(u16, u16); 12]> = SmallVec::new();
    let mut may_fold = false;

    for raw_seg in rest.split(|&b| is_separator(b)) {
        let raw_seg = if rules.strip_parameters {
            // Tomcat and Jetty drop `;…` from each segment before decoding.
            match raw_seg.iter().position(|&b| b == b';') {
                Some(i) => &raw_seg[..i],
                None => raw_seg,
            }
        } else {
            raw_seg
        };
        if raw_seg.is_empty() {
            continue;
        }
        let sep = out.len();
        out.push(b'/');
        let start = out.len();
        let seen = decode_segment_into(raw_seg, &mut out, rules)?;
        may_fold |= seen.may_fold;
        let seg = &out[start..];
        match seg {
            b"." | b".." if rules.refuse_dot_segments => return Err(PathError::DotSegment),
            b"." => out.truncate(sep),
            b".." => {
                out.truncate(sep);
                let (prev_start, _) = segments.pop().ok_or(PathError::AboveRoot)?;
                // `prev_start` is just after the previous segment's separator.
                out.truncate(prev_start as usize - 1);
            }
            _ => {
                if seg.starts_with(b".;") || seg.starts_with(b"..;") {
                    return Err(PathError::DotSegmentWithParameters);
                }
                if seen.raw_semicolon && rules.refuse_semicolon {
                    return Err(PathError::PathParameters);
                }
                if seen.non_ascii && rules.refuse_lookalikes && has_lookalike(seg)? {
                    return Err(PathError::LookalikeCharacter);
                }
                // Bounded by MAX_PATH_BYTES (checked above), so the casts cannot truncate.
                segments.push((start as u16, out.len() as u16));
            }
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    // Separators are ASCII and can never be part of a multi-byte sequence, so the whole is
    // valid UTF-8 exactly when every segment is.
    let path = String::from_utf8(out).map_err(|_| PathError::InvalidUtf8)?;
    Ok(NormalizedPath {
        path,
        segments,
        may_fold,
    })
}

/// What decoding a segment came across, for the checks made on the whole segment.
#[derive(Default)]
struct Seen {
    raw_semicolon: bool,
    non_ascii: bool,
    may_fold: bool,
}

/// Appends the percent-decoded `raw` segment to `out`, enforcing the byte rules.
fn decode_segment_into(raw: &[u8], out: &mut Vec<u8>, rules: Rules) -> Result<Seen, PathError> {
    let mut seen = Seen::default();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let decoded = match b {
            b'%' => {
                let hi = raw.get(i + 1).copied().and_then(hex_value);
                let lo = raw.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        i += 3;
                        let v = (hi << 4) | lo;
                        if v == b'/' {
                            return Err(PathError::EncodedSlash);
                        }
                        v
                    }
                    _ => return Err(PathError::InvalidPercentEncoding),
                }
            }
            b';' => {
                seen.raw_semicolon = true;
                i += 1;
                b
            }
            _ => {
                i += 1;
                b
            }
        };
        if is_control(decoded) {
            return Err(PathError::ControlCharacter);
        }
        if decoded == b'\\' && rules.refuse_backslash {
            return Err(PathError::Backslash);
        }
        seen.non_ascii |= decoded >= 0x80;
        seen.may_fold |= decoded.is_ascii_uppercase();
        out.push(decoded);
    }
    seen.may_fold |= seen.non_ascii;
    Ok(seen)
}

/// Characters that Unicode compatibility (NFKC) or canonical folding turns into `/`, `\`,
/// `.`, `;` or `%`: FULLWIDTH SOLIDUS, REVERSE SOLIDUS, FULL STOP, SEMICOLON and PERCENT
/// SIGN, SMALL FULL STOP, SMALL REVERSE SOLIDUS, SMALL SEMICOLON, SMALL PERCENT SIGN, ONE
/// DOT LEADER, GREEK QUESTION MARK (canonically `;`).
const LOOKALIKES: [char; 11] = [
    '\u{FF0F}', '\u{FF3C}', '\u{FF0E}', '\u{FF1B}', '\u{FF05}', '\u{FE52}', '\u{FE68}', '\u{FE54}',
    '\u{FE6A}', '\u{2024}', '\u{037E}',
];

/// Whether a decoded segment holds a [`LOOKALIKES`] character; an error if it is not UTF-8.
fn has_lookalike(seg: &[u8]) -> Result<bool, PathError> {
    let s = std::str::from_utf8(seg).map_err(|_| PathError::InvalidUtf8)?;
    Ok(s.chars().any(|c| LOOKALIKES.contains(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, PathError> {
        normalize_path(s.as_bytes()).map(|p| p.as_str().to_owned())
    }

    fn read(s: &str, reading: PathReading) -> Result<String, PathError> {
        normalize_path_as(s.as_bytes(), reading).map(|p| p.as_str().to_owned())
    }

    use PathReading::{Express, Go, Node, Servlet, Starlette, Strict};

    /// One row of docs/policy.md's backend-readings table: the target, then what each
    /// reading makes of it (`Ok(path)` or `Err(code)`), in [`PathReading::ALL`]'s order.
    type Row = (&'static str, [Result<&'static str, &'static str>; 6]);

    #[rustfmt::skip]
    const ROWS: &[Row] = &[
        // Backslash, raw: WHATWG parsers (Node, Next.js) read `/`, Tomcat answers 400,
        // the others keep a literal character.
        (r"/api\admin\x", [Err("backslash"), Ok(r"/api\admin\x"), Ok("/api/admin/x"),
            Ok(r"/api\admin\x"), Ok(r"/api\admin\x"), Err("backslash")]),
        // Encoded: WHATWG keeps `%5C` as is; Tomcat decodes, then refuses.
        ("/api%5Cadmin%5cx", [Err("backslash"), Ok(r"/api\admin\x"), Ok(r"/api\admin\x"),
            Ok(r"/api\admin\x"), Ok(r"/api\admin\x"), Err("backslash")]),
        // `..\` mixed: a parent step only where `\` is a separator.
        (r"/api/users/a/..\b/tasks", [Err("backslash"), Ok(r"/api/users/a/..\b/tasks"),
            Ok("/api/users/b/tasks"), Ok(r"/api/users/a/..\b/tasks"),
            Ok(r"/api/users/a/..\b/tasks"), Err("backslash")]),
        // A leading `//`: an authority for WHATWG parsers, merged slashes elsewhere.
        ("//app.example/api/users/b/tasks", [Err("leading_double_slash"),
            Ok("/app.example/api/users/b/tasks"), Ok("/api/users/b/tasks"),
            Ok("/app.example/api/users/b/tasks"), Ok("/app.example/api/users/b/tasks"),
            Ok("/app.example/api/users/b/tasks")]),
        (r"/\app.example/api/x", [Err("backslash"), Ok(r"/\app.example/api/x"),
            Ok("/api/x"), Ok(r"/\app.example/api/x"), Ok(r"/\app.example/api/x"),
            Err("backslash")]),
        ("///app.example", [Err("leading_double_slash"), Ok("/app.example"), Ok("/"),
            Ok("/app.example"), Ok("/app.example"), Ok("/app.example")]),
        // Absolute form: nginx hands tollgate only the path; anything else is refused.
        ("http://app.example/api/admin", [Err("path_not_absolute"); 6]),
        // `;` parameters: stripped per segment by servlet containers, literal elsewhere.
        ("/api;/admin/x", [Err("path_parameters"), Ok("/api;/admin/x"), Ok("/api;/admin/x"),
            Ok("/api;/admin/x"), Ok("/api;/admin/x"), Ok("/api/admin/x")]),
        ("/api/users;x=1/u1/tasks", [Err("path_parameters"), Ok("/api/users;x=1/u1/tasks"),
            Ok("/api/users;x=1/u1/tasks"), Ok("/api/users;x=1/u1/tasks"),
            Ok("/api/users;x=1/u1/tasks"), Ok("/api/users/u1/tasks")]),
        ("/a/..;/admin", [Err("dot_segment_parameters"), Err("dot_segment_parameters"),
            Err("dot_segment_parameters"), Err("dot_segment_parameters"),
            Err("dot_segment_parameters"), Ok("/admin")]),
        // An encoded `;` is a literal for every family (Tomcat decodes after stripping).
        ("/api%3B/admin/x", [Ok("/api;/admin/x"); 6]),
        // Dot segments, raw and encoded: resolved by WHATWG, Go and servlet containers,
        // literal for Starlette and Express; the families disagree, so strict refuses.
        ("/a/b/../c", [Err("dot_segment"), Err("dot_segment"), Ok("/a/c"), Err("dot_segment"),
            Ok("/a/c"), Ok("/a/c")]),
        ("/a/b/.%2E/c/%2e", [Err("dot_segment"), Err("dot_segment"), Ok("/a/c"),
            Err("dot_segment"), Ok("/a/c"), Ok("/a/c")]),
        // Overlong UTF-8 (`%C0%AE` is an overlong `.`): never UTF-8.
        ("/%C0%AE%C0%AE/admin", [Err("invalid_utf8"); 6]),
        // Fullwidth solidus and full stop: folded by no family; refused by default.
        ("/api%EF%BC%8Fadmin", [Err("lookalike_character"), Ok("/api\u{FF0F}admin"),
            Ok("/api\u{FF0F}admin"), Ok("/api\u{FF0F}admin"), Ok("/api\u{FF0F}admin"),
            Ok("/api\u{FF0F}admin")]),
        ("/a/\u{FF0E}\u{FF0E}/b", [Err("lookalike_character"), Ok("/a/\u{FF0E}\u{FF0E}/b"),
            Ok("/a/\u{FF0E}\u{FF0E}/b"), Ok("/a/\u{FF0E}\u{FF0E}/b"),
            Ok("/a/\u{FF0E}\u{FF0E}/b"), Ok("/a/\u{FF0E}\u{FF0E}/b")]),
        // Trailing dots and spaces: stripped only by Windows file systems; literal here.
        ("/api/admin./x%20", [Ok("/api/admin./x "); 6]),
        // Tab and newline (stripped by WHATWG parsers), NUL: control characters.
        ("/api/ad\tmin", [Err("control_character"); 6]),
        ("/api/ad%0Amin", [Err("control_character"); 6]),
        ("/api/admin%00", [Err("control_character"); 6]),
    ];

    #[test]
    fn every_form_is_read_as_each_backend_reads_it() {
        for (target, want) in ROWS {
            for (reading, want) in PathReading::ALL.into_iter().zip(want) {
                let got = normalize_path_as(target.as_bytes(), reading);
                let got = got.as_ref().map(|p| p.as_str()).map_err(|e| e.code());
                assert_eq!(got, want.map(|s| s), "{target:?} read as {reading}");
                if let Ok(p) = normalize_path_as(target.as_bytes(), reading) {
                    // The canonical form reads the same under the same reading.
                    let again = normalize_path_as(p.to_uri_string().as_bytes(), reading);
                    assert_eq!(again.as_ref(), Ok(&p), "{target:?} read as {reading}");
                }
            }
        }
        assert_eq!(read(r"/api\x", Strict), read(r"/api\x", Servlet));
        assert_eq!(read("/a", Starlette), read("/a", Express));
        assert_eq!(read("/a", Node), read("/a", Go));
    }

    #[test]
    fn readings_have_names() {
        for r in PathReading::ALL {
            assert_eq!(PathReading::parse(r.as_str()), Some(r));
        }
        assert_eq!(PathReading::parse("fastapi"), None);
        assert_eq!(PathReading::default(), Strict);
        assert_eq!(Strict.case(), CaseRule::Both);
        assert_eq!(Express.case(), CaseRule::Insensitive);
        assert_eq!(Starlette.case(), CaseRule::Sensitive);
    }

    #[test]
    fn dot_dot_is_resolved_before_matching_where_the_backend_resolves_it() {
        let go = |s: &str| read(s, Go);
        assert_eq!(
            go("/api/users/alice/../bob/tasks").unwrap(),
            "/api/users/bob/tasks"
        );
        assert_eq!(
            go("/api/users/alice/%2e%2E/bob/tasks").unwrap(),
            "/api/users/bob/tasks"
        );
        assert_eq!(go("/a/./b/.").unwrap(), "/a/b");
        assert_eq!(go("/a/b/..").unwrap(), "/a");
        assert_eq!(go("/a/..").unwrap(), "/");
        // Starlette and Express keep them literal: by default they are refused, raw or
        // encoded (browsers resolve them before sending, so no real page sends one).
        for target in [
            "/api/users/alice/../bob/tasks",
            "/a/%2e%2E/b",
            "/a/./b",
            "/a/b/..",
        ] {
            assert_eq!(norm(target), Err(PathError::DotSegment), "{target}");
        }
    }

    #[test]
    fn above_root_is_refused() {
        for reading in [Go, Node, Servlet] {
            assert_eq!(read("/..", reading), Err(PathError::AboveRoot));
            assert_eq!(read("/a/../../b", reading), Err(PathError::AboveRoot));
            assert_eq!(read("/%2e%2e/etc", reading), Err(PathError::AboveRoot));
        }
        assert_eq!(norm("/%2e%2e/etc"), Err(PathError::DotSegment));
    }

    #[test]
    fn slashes_query_and_fragment() {
        assert_eq!(norm("/api///me//").unwrap(), "/api/me");
        // A leading `//` is an authority to URL parsers: refused by default, collapsed as
        // before by the readings whose backends merge slashes.
        assert_eq!(norm("//api///me//"), Err(PathError::LeadingDoubleSlash));
        assert_eq!(read("//api///me//", PathReading::Go), Ok("/api/me".into()));
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("///"), Err(PathError::LeadingDoubleSlash));
        assert_eq!(read("///", PathReading::Servlet), Ok("/".into()));
        assert_eq!(norm("/api/me?x=/../admin").unwrap(), "/api/me");
        assert_eq!(norm("/api/me#frag/../x").unwrap(), "/api/me");
        assert_eq!(norm("?x"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::Empty));
        assert_eq!(norm("api/me"), Err(PathError::NotAbsolute));
        assert_eq!(norm("http://example.com/api"), Err(PathError::NotAbsolute));
    }

    #[test]
    fn percent_decoding_happens_once() {
        assert_eq!(norm("/api/users/%62ob").unwrap(), "/api/users/bob");
        // `%2561` decodes once to the three characters `%61`, not to `a`.
        assert_eq!(norm("/x/%2561").unwrap(), "/x/%61");
        assert_eq!(norm("/caf%C3%A9").unwrap(), "/café");
        assert_eq!(norm("/café").unwrap(), "/café");
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert_eq!(norm("/a%2Fb"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a%2fb"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a%zz"), Err(PathError::InvalidPercentEncoding));
        assert_eq!(norm("/a%4"), Err(PathError::InvalidPercentEncoding));
        assert_eq!(norm("/a%"), Err(PathError::InvalidPercentEncoding));
        assert_eq!(norm("/a%00"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a\0b"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%0d%0aX: y"), Err(PathError::ControlCharacter));
        assert_eq!(norm("/a%C3"), Err(PathError::InvalidUtf8));
        assert_eq!(normalize_path(b"/a\xff"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/..;/admin"), Err(PathError::DotSegmentWithParameters));
        assert_eq!(norm("/a/.;x"), Err(PathError::DotSegmentWithParameters));
        // `..x` and `...` are ordinary names.
        assert_eq!(norm("/a/..x/...").unwrap(), "/a/..x/...");
    }

    #[test]
    fn length_is_bounded_on_the_path_only() {
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(
            norm(&long),
            Err(PathError::TooLong {
                len: MAX_PATH_BYTES + 1,
                max: MAX_PATH_BYTES
            })
        );
        let ok = format!("/{}?{}", "a".repeat(MAX_PATH_BYTES - 1), "q".repeat(20_000));
        assert_eq!(norm(&ok).unwrap().len(), MAX_PATH_BYTES);
    }

    #[test]
    fn segments_and_canonical_form() {
        let p = normalize_path(b"/a/%3F%23%25%20b/c%C3%A9").unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["a", "?#% b", "cé"]);
        assert_eq!(p.segment(2), Some("cé"));
        assert_eq!(p.segment(3), None);
        let uri = p.to_uri_string();
        assert_eq!(uri, "/a/%3F%23%25%20b/c%C3%A9");
        assert_eq!(normalize_path(uri.as_bytes()).unwrap(), p);
        let root = normalize_path(b"/").unwrap();
        assert_eq!(root.segment_count(), 0);
        assert_eq!(root.to_uri_string(), "/");
        // `may_fold` may be set by a segment `..` removed, and takes no part in equality.
        let p = normalize_path_as(b"/A/../b", Go).unwrap();
        assert!(p.may_fold());
        assert!(!normalize_path(b"/b").unwrap().may_fold());
        assert_eq!(p, normalize_path(b"/b").unwrap());
        assert!(normalize_path(b"/caf%C3%A9").unwrap().may_fold());
    }
}
