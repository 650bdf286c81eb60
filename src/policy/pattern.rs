//! Route path patterns: parsing, matching against a [`NormalizedPath`], and specificity.
//!
//! Syntax (whole segments only, docs/policy.md has examples):
//!
//! | segment     | matches                                                        |
//! |-------------|----------------------------------------------------------------|
//! | `users`     | exactly that segment (patterns are percent-decoded like paths) |
//! | `{user_id}` | any one segment, captured under that name                      |
//! | `*`         | any one segment, not captured                                  |
//! | `**` (last) | zero or more further segments: `/api/auth/**` is `/api/auth` and below |
//! | `upload**` (last) | a segment starting with `upload`, then anything: `/api/upload**` is every path starting with `/api/upload` |
//!
//! Specificity is a key compared segment by segment from the left: at each position a
//! literal beats a prefix (a longer prefix beats a shorter one), which beats a one-segment
//! wildcard (`{param}` and `*` are equal: both match any one segment), which beats `**`;
//! a pattern that ends exactly where the path ends beats one that continues with `**`. Two
//! patterns that match the same path are compared at the same path segments, so the key is
//! a total order that agrees with "more specific" on every path both match.

use std::cmp::Ordering;

use super::path::NormalizedPath;

/// Longest pattern accepted.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Most `{param}`s in one pattern.
pub const MAX_PARAMS: usize = 16;

/// Why a pattern is not valid. Reported by config validation with the rule's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern must start with '/'")]
    NotAbsolute,
    #[error("the pattern is longer than {MAX_PATTERN_BYTES} bytes")]
    TooLong,
    #[error("empty segment ('//' or a trailing '/'): paths are matched without them")]
    EmptySegment,
    #[error("'.' and '..' segments never occur in a normalised path")]
    DotSegment,
    #[error("'**' may only end the pattern (as '/**' or 'prefix**')")]
    DoubleStarNotLast,
    #[error("'*' must be a whole segment ('*') or end the pattern ('prefix**')")]
    MisplacedStar,
    #[error("'{{' and '}}' must enclose a whole segment ('{{name}}')")]
    MisplacedBrace,
    #[error("parameter name {0:?} is not an identifier ([A-Za-z_][A-Za-z0-9_]*)")]
    BadParamName(String),
    #[error("parameter {0:?} appears twice")]
    DuplicateParam(String),
    #[error("more than {MAX_PARAMS} parameters")]
    TooManyParams,
    #[error("bad literal segment: {0}")]
    BadLiteral(&'static str),
}

/// One fixed-position segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// `{name}`: the index into [`PathPattern::param_names`].
    Param,
    /// `*`
    Star,
}

/// What follows the fixed segments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tail {
    /// The path has exactly the fixed segments.
    Exact,
    /// `/**`: zero or more further segments.
    Rest,
    /// `prefix**`: one more segment starting with the prefix, then zero or more.
    PrefixRest(Box<str>),
}

/// One position of a specificity key. Variant order is the ranking (derived `Ord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rank {
    /// `**`, or the rest after a prefix.
    Rest,
    /// `{param}` or `*`.
    OneSegment,
    /// `prefix**`, ranked by the prefix's length in bytes.
    Prefix(u16),
    /// A literal segment.
    Literal,
    /// The pattern ends where the path ends.
    End,
}

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: Box<str>,
    segments: Box<[Segment]>,
    tail: Tail,
    /// Names of the `{param}`s, in order, with the segment position each captures.
    params: Box<[(Box<str>, u16)]>,
    specificity: Box<[Rank]>,
}

impl PathPattern {
    /// Parses a pattern such as `/api/users/{user_id}/**`.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        if source.len() > MAX_PATTERN_BYTES {
            return Err(PatternError::TooLong);
        }
        let rest = source.strip_prefix('/').ok_or(PatternError::NotAbsolute)?;
        let mut segments = Vec::new();
        let mut params: Vec<(Box<str>, u16)> = Vec::new();
        let mut tail = Tail::Exact;
        if !rest.is_empty() {
            let raw: Vec<&str> = rest.split('/').collect();
            let last = raw.len() - 1;
            for (i, seg) in raw.iter().enumerate() {
                if seg.is_empty() {
                    return Err(PatternError::EmptySegment);
                }
                if let Some(prefix) = seg.strip_suffix("**") {
                    if i != last {
                        return Err(PatternError::DoubleStarNotLast);
                    }
                    if prefix.is_empty() {
                        tail = Tail::Rest;
                    } else {
                        tail = Tail::PrefixRest(decode_literal(prefix)?);
                    }
                    break;
                }
                if *seg == "*" {
                    segments.push(Segment::Star);
                    continue;
                }
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if !is_identifier(name) {
                        return Err(PatternError::BadParamName(name.to_owned()));
                    }
                    if params.iter().any(|(n, _)| &**n == name) {
                        return Err(PatternError::DuplicateParam(name.to_owned()));
                    }
                    if params.len() == MAX_PARAMS {
                        return Err(PatternError::TooManyParams);
                    }
                    // At most MAX_PATTERN_BYTES / 2 segments, so the position fits in u16.
                    params.push((name.into(), segments.len() as u16));
                    segments.push(Segment::Param);
                    continue;
                }
                let literal = decode_literal(seg)?;
                if &*literal == "." || &*literal == ".." {
                    return Err(PatternError::DotSegment);
                }
                segments.push(Segment::Literal(literal));
            }
        }
        let mut specificity: Vec<Rank> = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(_) => Rank::Literal,
                Segment::Param | Segment::Star => Rank::OneSegment,
            })
            .collect();
        match &tail {
            Tail::Exact => specificity.push(Rank::End),
            Tail::Rest => specificity.push(Rank::Rest),
            Tail::PrefixRest(p) => {
                // Bounded by MAX_PATTERN_BYTES, so the cast cannot truncate.
                specificity.push(Rank::Prefix(p.len() as u16));
                specificity.push(Rank::Rest);
            }
        }
        Ok(Self {
            source: source.into(),
            segments: segments.into(),
            tail,
            params: params.into(),
            specificity: specificity.into(),
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The specificity key; larger is more specific (see the module doc).
    pub fn specificity(&self) -> &[Rank] {
        &self.specificity
    }

    /// Compares specificity: `Greater` means `self` is more specific.
    pub fn cmp_specificity(&self, other: &Self) -> Ordering {
        self.specificity.cmp(&other.specificity)
    }

    /// Parameter names, in the order they appear.
    pub fn param_names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.params.iter().map(|(n, _)| &**n)
    }

    /// Whether the pattern has a `{name}` parameter.
    pub fn has_param(&self, name: &str) -> bool {
        self.params.iter().any(|(n, _)| &**n == name)
    }

    /// Two patterns have the same shape when they match exactly the same paths (parameter
    /// names aside).
    pub fn same_shape(&self, other: &Self) -> bool {
        self.tail == other.tail
            && self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(other.segments.iter())
                .all(|(a, b)| match (a, b) {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    (Segment::Literal(_), _) | (_, Segment::Literal(_)) => false,
                    _ => true,
                })
    }

    /// Whether the path has as many segments as the pattern needs: exactly its own for an
    /// exact pattern, at least as many for `/**`, one more for a prefix (`/api/upload**`).
    #[inline]
    fn fits(&self, path: &NormalizedPath) -> bool {
        let (n, k) = (path.segment_count(), self.segments.len());
        match self.tail {
            Tail::Exact => n == k,
            Tail::Rest => n >= k,
            Tail::PrefixRest(_) => n > k,
        }
    }

    /// Whether the pattern matches the path. Does not allocate.
    #[inline]
    pub fn matches(&self, path: &NormalizedPath) -> bool {
        let k = self.segments.len();
        if !self.fits(path) {
            return false;
        }
        // Literals are compared from the deepest one back: rules of one application share
        // their leading segments (`/api/…`) and differ further down, so a mismatch shows
        // up sooner this way.
        for (i, seg) in self.segments.iter().enumerate().rev() {
            if let Segment::Literal(lit) = seg {
                if path.segment(i) != Some(&**lit) {
                    return false;
                }
            }
        }
        match &self.tail {
            Tail::PrefixRest(prefix) => path.segment(k).is_some_and(|s| s.starts_with(&**prefix)),
            _ => true,
        }
    }

    /// Whether the pattern matches the path exactly, only when letter case is ignored (the
    /// way Express's default router compares: see [`eq_ignoring_case`]), or not at all.
    /// Does not allocate; costs more than [`matches`](Self::matches) only where a literal
    /// differs from the path's segment.
    pub fn match_ignoring_case(&self, path: &NormalizedPath) -> CaseMatch {
        let k = self.segments.len();
        if !self.fits(path) {
            return CaseMatch::No;
        }
        let mut folded = false;
        for (i, seg) in self.segments.iter().enumerate().rev() {
            if let Segment::Literal(lit) = seg {
                let Some(s) = path.segment(i) else {
                    return CaseMatch::No;
                };
                if s != &**lit {
                    if !eq_ignoring_case(s, lit) {
                        return CaseMatch::No;
                    }
                    folded = true;
                }
            }
        }
        if let Tail::PrefixRest(prefix) = &self.tail {
            let s = path.segment(k).unwrap_or_default();
            if !s.starts_with(&**prefix) {
                if !starts_with_ignoring_case(s, prefix) {
                    return CaseMatch::No;
                }
                folded = true;
            }
        }
        if folded {
            CaseMatch::IgnoringCase
        } else {
            CaseMatch::Exact
        }
    }

    /// Whether a literal segment or prefix has an ASCII upper-case letter: only then can a
    /// path without upper-case and non-ASCII letters match it differently once case is
    /// ignored (a non-ASCII letter never folds to an ASCII one).
    pub fn has_upper_case_literal(&self) -> bool {
        let upper = |s: &str| s.bytes().any(|b| b.is_ascii_uppercase());
        self.segments.iter().any(|seg| match seg {
            Segment::Literal(lit) => upper(lit),
            _ => false,
        }) || matches!(&self.tail, Tail::PrefixRest(prefix) if upper(prefix))
    }

    /// The value of parameter `name` in `path`, which must be a path this pattern matches.
    pub fn param<'a>(&self, name: &str, path: &'a NormalizedPath) -> Option<&'a str> {
        let &(_, pos) = self.params.iter().find(|(n, _)| &**n == name)?;
        path.segment(pos as usize)
    }

    /// All `(name, value)` parameters of `path`, which must be a path this pattern matches.
    pub fn params<'s, 'a>(
        &'s self,
        path: &'a NormalizedPath,
    ) -> impl Iterator<Item = (&'s str, &'a str)> + 's
    where
        'a: 's,
    {
        self.params
            .iter()
            .filter_map(move |(n, pos)| Some((&**n, path.segment(*pos as usize)?)))
    }
}

/// How a pattern matches a path when letter case may be ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseMatch {
    /// Not even ignoring case.
    No,
    /// Byte for byte.
    Exact,
    /// Only when letter case is ignored.
    IgnoringCase,
}

/// Case-insensitive equality as a JavaScript `i` regular expression without the `u` flag
/// (Express's `path-to-regexp`) sees it: each character compared by its upper case, except
/// that a non-ASCII character never folds to an ASCII one (`ſ` is not `s`, the Kelvin sign
/// is not `k`).
pub fn eq_ignoring_case(a: &str, b: &str) -> bool {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if x.len() == y.len() && x.eq_ignore_ascii_case(y) {
        return true;
    }
    // A non-ASCII character folds only to a non-ASCII one, so an ASCII string equals only
    // ASCII strings, and two strings differing in a leading ASCII letter differ.
    match (x.first(), y.first()) {
        (Some(p), Some(q)) if p.is_ascii() && q.is_ascii() && !p.eq_ignore_ascii_case(q) => {
            return false
        }
        _ => {}
    }
    if a.is_ascii() || b.is_ascii() {
        return false;
    }
    a.chars().map(fold_char).eq(b.chars().map(fold_char))
}

fn starts_with_ignoring_case(s: &str, prefix: &str) -> bool {
    let mut chars = s.chars();
    prefix
        .chars()
        .all(|p| chars.next().is_some_and(|c| fold_char(c) == fold_char(p)))
}

fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if !u.is_ascii() => u,
        _ => c,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Decodes a literal segment the way request paths are decoded, so that a pattern written
/// with escapes (`caf%C3%A9`) matches the decoded request path.
fn decode_literal(seg: &str) -> Result<Box<str>, PatternError> {
    if seg.contains('*') {
        return Err(PatternError::MisplacedStar);
    }
    if seg.contains(['{', '}']) {
        return Err(PatternError::MisplacedBrace);
    }
    if seg.contains(['?', '#']) {
        return Err(PatternError::BadLiteral(
            "'?' and '#' end a path; escape them",
        ));
    }
    // Reuse the path normaliser on a one-segment path: identical decoding rules.
    let mut probe = String::with_capacity(seg.len() + 1);
    probe.push('/');
    probe.push_str(seg);
    // Go's reading keeps `\` and `;` literal and refuses nothing the others accept, so a
    // literal means the same under every reading that can produce it.
    match super::path::normalize_path_as(probe.as_bytes(), super::path::PathReading::Go) {
        Ok(p) if p.segment_count() == 1 => Ok(p.as_str()[1..].into()),
        Ok(_) => Err(PatternError::DotSegment),
        Err(super::path::PathError::AboveRoot) => Err(PatternError::DotSegment),
        Err(e) => Err(PatternError::BadLiteral(e.code())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::path::{normalize_path, normalize_path_as, PathReading};

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }
    fn m(pattern: &str, path: &str) -> bool {
        p(pattern).matches(&normalize_path(path.as_bytes()).unwrap())
    }

    #[test]
    fn exact_patterns() {
        assert!(m("/api/me", "/api/me"));
        assert!(m("/api/me", "/api/me/"));
        assert!(!m("/api/me", "/api/me/x"));
        assert!(!m("/api/me", "/api"));
        assert!(!m("/api/me", "/api/mex"));
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
    }

    #[test]
    fn rest_patterns_include_the_base() {
        assert!(m("/api/auth/**", "/api/auth"));
        assert!(m("/api/auth/**", "/api/auth/sign-in/email"));
        assert!(!m("/api/auth/**", "/api/authx"));
        assert!(!m("/api/auth/**", "/api"));
        assert!(m("/**", "/"));
        assert!(m("/**", "/anything/at/all"));
    }

    #[test]
    fn prefix_patterns_are_string_prefixes() {
        assert!(m("/api/upload**", "/api/upload"));
        assert!(m("/api/upload**", "/api/uploads"));
        assert!(m("/api/upload**", "/api/upload-big/part/2"));
        assert!(m("/api/upload**", "/api/upload/x"));
        assert!(!m("/api/upload**", "/api/uplo"));
        assert!(!m("/api/upload**", "/api"));
        assert!(!m("/api/upload**", "/api/x/upload"));
    }

    #[test]
    fn params_and_stars() {
        let pat = p("/api/users/{user_id}/**");
        // Under a reading that resolves `..` (strict refuses it).
        let path = normalize_path_as(b"/api/users/alice/../bob/tasks", PathReading::Go).unwrap();
        assert!(pat.matches(&path));
        assert_eq!(pat.param("user_id", &path), Some("bob"));
        assert_eq!(pat.param("nope", &path), None);
        assert!(!m("/api/users/{user_id}/**", "/api/users"));
        assert!(m("/api/*/x", "/api/a/x"));
        assert!(!m("/api/*/x", "/api/x"));
        let two = p("/o/{org}/r/{repo}");
        let path = normalize_path(b"/o/acme/r/%77eb").unwrap();
        assert_eq!(
            two.params(&path).collect::<Vec<_>>(),
            [("org", "acme"), ("repo", "web")]
        );
    }

    #[test]
    fn literals_are_decoded_like_paths() {
        assert!(m("/caf%C3%A9", "/café"));
        assert!(m("/café", "/caf%c3%a9"));
    }

    #[test]
    fn invalid_patterns() {
        use PatternError::*;
        let e = |s: &str| PathPattern::parse(s).unwrap_err();
        assert_eq!(e("api"), NotAbsolute);
        assert_eq!(e("/api//x"), EmptySegment);
        assert_eq!(e("/api/"), EmptySegment);
        assert_eq!(e("/api/../x"), DotSegment);
        assert_eq!(e("/api/./x"), DotSegment);
        assert_eq!(e("/api/**/x"), DoubleStarNotLast);
        assert_eq!(e("/api/a*b"), MisplacedStar);
        assert_eq!(e("/api/*x"), MisplacedStar);
        assert_eq!(e("/api/{id}x"), MisplacedBrace);
        assert_eq!(e("/api/{id}**"), MisplacedBrace);
        assert_eq!(e("/api/{}"), BadParamName(String::new()));
        assert_eq!(e("/api/{1a}"), BadParamName("1a".into()));
        assert_eq!(e("/{a}/{a}"), DuplicateParam("a".into()));
        assert_eq!(e("/a%2Fb"), BadLiteral("encoded_slash"));
        assert_eq!(e("/a?b"), BadLiteral("'?' and '#' end a path; escape them"));
        let many: String = (0..=MAX_PARAMS).map(|i| format!("/{{p{i}}}")).collect();
        assert_eq!(e(&many), TooManyParams);
        assert_eq!(e(&format!("/{}", "a".repeat(MAX_PATTERN_BYTES))), TooLong);
    }

    #[test]
    fn specificity_order() {
        // Each pattern matches /api/users/alice; listed from most to least specific.
        let ordered = [
            "/api/users/alice",
            "/api/users/alice/**",
            "/api/users/ali**",
            "/api/users/a**",
            "/api/users/{id}",
            "/api/users/*",
            "/api/users/{id}/**",
            "/api/users/**",
            "/api/user**",
            "/api/{x}/alice",
            "/api/**",
            "/**",
        ];
        let path = normalize_path(b"/api/users/alice").unwrap();
        for w in ordered.windows(2) {
            let (a, b) = (p(w[0]), p(w[1]));
            assert!(a.matches(&path) && b.matches(&path), "{w:?}");
            assert!(
                a.cmp_specificity(&b) != Ordering::Less,
                "{} should be at least as specific as {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(
            p("/api/users/{id}").cmp_specificity(&p("/api/users/*")),
            Ordering::Equal
        );
        assert_eq!(
            p("/api/auth").cmp_specificity(&p("/api/auth/**")),
            Ordering::Greater
        );
    }

    #[test]
    fn shapes() {
        assert!(p("/a/{x}/**").same_shape(&p("/a/{y}/**")));
        assert!(p("/a/{x}").same_shape(&p("/a/*")));
        assert!(!p("/a/{x}").same_shape(&p("/a/b")));
        assert!(!p("/a/**").same_shape(&p("/a/b**")));
        assert!(!p("/a").same_shape(&p("/a/**")));
    }
}
