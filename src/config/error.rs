//! Configuration errors: what is wrong, where (file, line, column), and under which key.
//!
//! Every problem found in a file, whether the TOML syntax, the schema (unknown key, wrong
//! type) or a value (`limit = 0`, a window of `15x`), becomes an [`Issue`] with a position,
//! so that `tollgate check-config`, start-up and SIGHUP reload all print lines an editor can
//! jump to:
//!
//! ```text
//! tollgate.toml:12:9: tiers.basic.window: "15x" is not a duration (use e.g. 90s, 15m, 1h, 1d)
//! ```

use std::fmt;

/// A position in a configuration file. Both are 1-based; the column counts characters, not
/// bytes, as editors do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text` (clamped to the text; a mid-character offset
    /// counts as that character).
    pub fn of_offset(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// One step of a [`ConfigPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A table key.
    Key(String),
    /// An array index (0-based, as in the file's order).
    Index(usize),
}

/// Where a value sits in the configuration: `tiers.basic.window`, `routes[1].limits[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConfigPath(Vec<PathSegment>);

impl ConfigPath {
    /// The document root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path followed by a table key.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Key(key.to_string()));
        p
    }

    /// This path followed by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSegment::Index(index));
        p
    }

    /// A path from dotted text (`auth.issuers`); no indices, no quoting.
    pub fn dotted(text: &str) -> Self {
        Self(
            text.split('.')
                .filter(|k| !k.is_empty())
                .map(|k| PathSegment::Key(k.to_string()))
                .collect(),
        )
    }

    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn push(&mut self, segment: PathSegment) {
        self.0.push(segment);
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What kind of failure a [`ConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file could not be read.
    Read,
    /// Not valid TOML.
    Syntax,
    /// Valid TOML, but an unknown key, a missing key or a value of the wrong type.
    Schema,
    /// Well-formed, but a value is not acceptable (`limit = 0`, an unknown limit name…).
    Invalid,
}

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where in the file, when the configuration came from text.
    pub position: Option<Position>,
    /// The key the problem is about; the root when it is about the file as a whole.
    pub path: ConfigPath,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    kind: ErrorKind,
    issues: Vec<Issue>,
}

impl ConfigError {
    pub(crate) fn new(origin: &str, kind: ErrorKind, mut issues: Vec<Issue>) -> Self {
        debug_assert!(!issues.is_empty());
        // Document order, so the first line printed is the first problem in the file.
        // (Stable: issues without a position keep their order, after the others.)
        issues.sort_by_key(|i| (i.position.is_none(), i.position));
        Self {
            origin: origin.to_string(),
            kind,
            issues,
        }
    }

    pub(crate) fn single(origin: &str, kind: ErrorKind, issue: Issue) -> Self {
        Self::new(origin, kind, vec![issue])
    }

    /// The file name (or `<embedded default>`) the configuration came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Every problem found, in file order. Never empty.
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// The first problem in the file.
    pub fn first(&self) -> &Issue {
        &self.issues[0]
    }

    /// Line of the first problem, when known.
    pub fn line(&self) -> Option<usize> {
        self.first().position.map(|p| p.line)
    }

    /// Column of the first problem, when known.
    pub fn column(&self) -> Option<usize> {
        self.first().position.map(|p| p.column)
    }
}

/// One line per issue: `origin:line:column: path: message`.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&self.origin)?;
            if let Some(p) = issue.position {
                write!(f, ":{}:{}", p.line, p.column)?;
            }
            f.write_str(": ")?;
            if !issue.path.is_root() {
                write!(f, "{}: ", issue.path)?;
            }
            f.write_str(&issue.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            Position::of_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::of_offset(text, 4),
            Position { line: 1, column: 5 }
        );
        // "bé = " is 6 bytes (é is two) but 5 characters: the value starts at column 6.
        let value = text.find('"').unwrap();
        assert_eq!(
            Position::of_offset(text, value),
            Position { line: 2, column: 6 }
        );
        assert_eq!(Position::of_offset(text, 10_000).line, 3);
    }

    #[test]
    fn paths_print_like_toml_keys() {
        let p = ConfigPath::root()
            .key("routes")
            .index(1)
            .key("limits")
            .index(0);
        assert_eq!(p.to_string(), "routes[1].limits[0]");
        assert_eq!(
            ConfigPath::root().key("tiers").key("a.b").to_string(),
            r#"tiers."a.b""#
        );
        assert_eq!(ConfigPath::dotted("auth.issuers").segments().len(), 2);
    }

    #[test]
    fn display_is_one_line_per_issue_in_file_order() {
        let at = |line, column| Some(Position { line, column });
        let e = ConfigError::new(
            "t.toml",
            ErrorKind::Invalid,
            vec![
                Issue {
                    position: at(9, 1),
                    path: ConfigPath::dotted("limits.x.limit"),
                    message: "later".into(),
                },
                Issue {
                    position: None,
                    path: ConfigPath::root(),
                    message: "nowhere".into(),
                },
                Issue {
                    position: at(2, 3),
                    path: ConfigPath::dotted("tiers.a.window"),
                    message: "first".into(),
                },
            ],
        );
        assert_eq!(
            e.to_string(),
            "t.toml:2:3: tiers.a.window: first\nt.toml:9:1: limits.x.limit: later\nt.toml: nowhere"
        );
        assert_eq!((e.line(), e.column()), (Some(2), Some(3)));
    }
}
