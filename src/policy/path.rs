//! Request-path normalisation: turns the request target nginx forwards (`X-Original-URI`)
//! into the one canonical path that route rules are matched against.
//!
//! The point of normalising is that tollgate must judge the path the application will
//! serve, not the bytes the client happened to send: `/api/users/alice/../bob/tasks`,
//! `/api/users//bob/tasks` and `/api/users/%62ob/tasks` are all bob's path. The rules, in
//! the order they are applied (docs/policy.md has the table):
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
//! 6. `.` segments are dropped and `..` removes the previous segment, *after* decoding
//!    (so `%2e%2e` counts as `..`, as it does for servers that decode before resolving).
//!    A `..` that would climb above the root is an error, as nginx treats it.
//! 7. A segment that is `.` or `..` followed by `;` (`..;/`, a path parameter some Java
//!    servers strip before resolving dot segments) is an error: it would be a literal for
//!    tollgate and a parent-directory step for such a server.
//!
//! The result, [`NormalizedPath`], holds the decoded segments joined by `/` (`/` for the
//! root) and their byte offsets, so that the matcher never re-splits or allocates.

use std::fmt;

use smallvec::SmallVec;

/// Longest path (without the query string) accepted, in bytes, before decoding.
pub const MAX_PATH_BYTES: usize = 8 * 1024;

/// Why a request target cannot be normalised. The `/auth` endpoint answers 400.
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
        }
    }
}

/// A normalised request path: decoded segments joined by `/`, with their offsets.
///
/// Invariants (checked by the property tests): it starts with `/`; it is `/` alone or has no
/// trailing `/`; it contains no `//`; no segment is `.` or `..`; no segment contains a
/// control character; every segment is non-empty.
#[derive(Clone, PartialEq, Eq)]
pub struct NormalizedPath {
    path: String,
    /// `(start, end)` byte offsets of each segment in `path`. Paths are at most
    /// [`MAX_PATH_BYTES`] long before decoding and decoding only shrinks, so `u16` fits.
    segments: SmallVec<[(u16, u16); 12]>,
}

impl NormalizedPath {
    /// The decoded path, `/` for the root.
    pub fn as_str(&self) -> &str {
        &self.path
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
    /// `%`, `?`, `#`, space, controls and non-ASCII bytes are escaped; `/` separates segments.
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
    !(0x21..=0x7e).contains(&b) || matches!(b, b'%' | b'?' | b'#')
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

/// Normalises a request target (path, optionally followed by `?query` and `#fragment`).
///
/// ```
/// use tollgate::policy::path::normalize_path;
/// let p = normalize_path(b"/api/users/alice/../bob//tasks/?page=2").unwrap();
/// assert_eq!(p.as_str(), "/api/users/bob/tasks");
/// ```
pub fn normalize_path(target: &[u8]) -> Result<NormalizedPath, PathError> {
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

    // Decoding never lengthens a segment, so `raw.len()` bytes always suffice.
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut segments: SmallVec<[(u16, u16); 12]> = SmallVec::new();

    for raw_seg in raw[1..].split(|&b| b == b'/') {
        if raw_seg.is_empty() {
            continue;
        }
        let sep = out.len();
        out.push(b'/');
        let start = out.len();
        decode_segment_into(raw_seg, &mut out)?;
        let seg = &out[start..];
        match seg {
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
    Ok(NormalizedPath { path, segments })
}

/// Appends the percent-decoded `raw` segment to `out`, enforcing the byte rules.
fn decode_segment_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let decoded = if b == b'%' {
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
        } else {
            i += 1;
            b
        };
        if is_control(decoded) {
            return Err(PathError::ControlCharacter);
        }
        out.push(decoded);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, PathError> {
        normalize_path(s.as_bytes()).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn dot_dot_is_resolved_before_matching() {
        assert_eq!(
            norm("/api/users/alice/../bob/tasks").unwrap(),
            "/api/users/bob/tasks"
        );
        assert_eq!(
            norm("/api/users/alice/%2e%2E/bob/tasks").unwrap(),
            "/api/users/bob/tasks"
        );
        assert_eq!(norm("/a/./b/.").unwrap(), "/a/b");
        assert_eq!(norm("/a/b/..").unwrap(), "/a");
        assert_eq!(norm("/a/..").unwrap(), "/");
    }

    #[test]
    fn above_root_is_refused() {
        assert_eq!(norm("/.."), Err(PathError::AboveRoot));
        assert_eq!(norm("/a/../../b"), Err(PathError::AboveRoot));
        assert_eq!(norm("/%2e%2e/etc"), Err(PathError::AboveRoot));
    }

    #[test]
    fn slashes_query_and_fragment() {
        assert_eq!(norm("//api///me//").unwrap(), "/api/me");
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("///").unwrap(), "/");
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
    }
}
