//! Source positions for configuration keys and values.
//!
//! serde's derive gives the schema, but a value that deserialized fine and is still wrong
//! (`limit = 0`, `window = "15x"`) has lost its position by then. So the text is also parsed
//! with `toml_edit` (the parser `toml` itself uses), which keeps the span of every key and
//! value; [`SourceMap::locate`] walks a [`ConfigPath`] to its span, and
//! [`SourceMap::path_at`] goes the other way for serde's own errors, which carry a span but
//! no key path.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

use super::error::{ConfigPath, PathSegment, Position};

/// A parsed document that can answer "where is this key?" and "which key is here?".
pub(crate) struct SourceMap<'a> {
    text: &'a str,
    doc: ImDocument<&'a str>,
}

/// Whether an issue is about a key's value (`limit = 0`) or the key itself (a tier name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Value,
    Key,
}

/// A TOML syntax error: where and what.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub position: Position,
    pub message: String,
}

/// A node of the document: tables, arrays of tables and values are different types in
/// `toml_edit`; this lets one walk treat them alike.
#[derive(Clone, Copy)]
enum Node<'d> {
    Item(&'d Item),
    Value(&'d Value),
    Table(&'d Table),
}

impl<'d> Node<'d> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
            Node::Table(t) => t.span(),
        }
    }

    fn as_table(self) -> Option<&'d Table> {
        match self {
            Node::Table(t) => Some(t),
            Node::Item(Item::Table(t)) => Some(t),
            _ => None,
        }
    }

    fn as_value(self) -> Option<&'d Value> {
        match self {
            Node::Value(v) => Some(v),
            Node::Item(Item::Value(v)) => Some(v),
            _ => None,
        }
    }

    /// The child at `segment`, with the span of its key when it has one.
    fn child(self, segment: &PathSegment) -> Option<(Option<Range<usize>>, Node<'d>)> {
        match segment {
            PathSegment::Key(k) => {
                if let Some(t) = self.as_table() {
                    let (key, item) = t.get_key_value(k)?;
                    return Some((key.span(), Node::Item(item)));
                }
                let t = self.as_value()?.as_inline_table()?;
                let (key, item) = t.get_key_value(k)?;
                Some((key.span(), Node::Item(item)))
            }
            PathSegment::Index(n) => {
                if let Node::Item(Item::ArrayOfTables(a)) = self {
                    return a.get(*n).map(|t| (None, Node::Table(t)));
                }
                let v = self.as_value()?.as_array()?.get(*n)?;
                Some((None, Node::Value(v)))
            }
        }
    }

    /// Every child: its segment, its key's span, the node.
    fn children(self) -> Vec<(PathSegment, Option<Range<usize>>, Node<'d>)> {
        let mut out = Vec::new();
        if let Some(t) = self.as_table() {
            for (k, _) in t.iter() {
                if let Some((key, item)) = t.get_key_value(k) {
                    out.push((
                        PathSegment::Key(k.to_string()),
                        key.span(),
                        Node::Item(item),
                    ));
                }
            }
        } else if let Node::Item(Item::ArrayOfTables(a)) = self {
            for (i, t) in a.iter().enumerate() {
                out.push((PathSegment::Index(i), None, Node::Table(t)));
            }
        } else if let Some(v) = self.as_value() {
            if let Some(t) = v.as_inline_table() {
                for (k, _) in t.iter() {
                    if let Some((key, item)) = t.get_key_value(k) {
                        out.push((
                            PathSegment::Key(k.to_string()),
                            key.span(),
                            Node::Item(item),
                        ));
                    }
                }
            } else if let Some(a) = v.as_array() {
                for (i, v) in a.iter().enumerate() {
                    out.push((PathSegment::Index(i), None, Node::Value(v)));
                }
            }
        }
        out
    }
}

fn contains(span: &Option<Range<usize>>, offset: usize) -> bool {
    span.as_ref()
        .is_some_and(|r| r.start <= offset && offset < r.end.max(r.start + 1))
}

impl<'a> SourceMap<'a> {
    /// Parses `text`; a syntax error comes back with its position.
    pub fn parse(text: &'a str) -> Result<Self, SyntaxError> {
        match ImDocument::parse(text) {
            Ok(doc) => Ok(Self { text, doc }),
            Err(e) => Err(SyntaxError {
                position: Position::of_offset(text, e.span().map_or(0, |r| r.start)),
                message: one_line(e.message()),
            }),
        }
    }

    /// The position of the byte offset.
    pub fn position(&self, offset: usize) -> Position {
        Position::of_offset(self.text, offset)
    }

    /// Where `path` is written: its value (or its key, per `target`). A path that is not in
    /// the file (a default value, a missing key) is placed at the nearest ancestor that is.
    pub fn locate(&self, path: &ConfigPath, target: Target) -> Position {
        let mut node = Node::Table(self.doc.as_table());
        let mut best = 0;
        let mut key_span = None;
        let mut complete = true;
        for segment in path.segments() {
            match node.child(segment) {
                Some((key, child)) => {
                    // Implicit tables (`tiers` in `[tiers.basic]`) have no span of their own;
                    // their key does.
                    if let Some(start) = child.span().or_else(|| key.clone()).map(|r| r.start) {
                        best = start;
                    }
                    key_span = key;
                    node = child;
                }
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete && target == Target::Key {
            if let Some(k) = key_span {
                best = k.start;
            }
        }
        self.position(best)
    }

    /// The deepest key whose key or value spans `offset`: the path serde's error was about.
    pub fn path_at(&self, offset: usize) -> ConfigPath {
        let mut path = ConfigPath::root();
        descend(Node::Table(self.doc.as_table()), offset, &mut path);
        path
    }
}

/// Pushes onto `path` the child of `node` holding `offset`, and recurses. Returns whether one
/// was found. Containers without a span (implicit tables, arrays of tables split by other
/// tables) are searched anyway.
fn descend(node: Node<'_>, offset: usize, path: &mut ConfigPath) -> bool {
    for (segment, key, child) in node.children() {
        if contains(&key, offset) {
            path.push(segment);
            return true;
        }
        let span = child.span();
        if contains(&span, offset) {
            path.push(segment);
            descend(child, offset, path);
            return true;
        }
        let mut sub = path.clone();
        sub.push(segment);
        if descend(child, offset, &mut sub) {
            *path = sub;
            return true;
        }
    }
    false
}

/// toml_edit's messages may span lines ("invalid table header\nduplicate key …"); a
/// configuration error is one line per issue.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"# comment
[tiers.basic]
limit = 5
window = "1h"

[limits]
auth = { limit = 5, window = "5m" }

[[routes]]
path = "/a"
limits = ["x", "y"]

[[routes]]
path = "/b"
"#;

    fn at(line: usize, column: usize) -> Position {
        Position { line, column }
    }

    fn p(parts: &[&str]) -> ConfigPath {
        let mut path = ConfigPath::root();
        for part in parts {
            path = match part.parse::<usize>() {
                Ok(i) => path.index(i),
                Err(_) => path.key(part),
            };
        }
        path
    }

    #[test]
    fn locates_values_keys_and_missing_paths() {
        let m = SourceMap::parse(DOC).unwrap();
        assert_eq!(
            m.locate(&p(&["tiers", "basic", "window"]), Target::Value),
            at(4, 10)
        );
        assert_eq!(
            m.locate(&p(&["tiers", "basic", "window"]), Target::Key),
            at(4, 1)
        );
        assert_eq!(m.locate(&p(&["tiers", "basic"]), Target::Key), at(2, 8));
        assert_eq!(
            m.locate(&p(&["limits", "auth", "window"]), Target::Value),
            at(7, 30)
        );
        assert_eq!(
            m.locate(&p(&["routes", "0", "limits", "1"]), Target::Value),
            at(11, 16)
        );
        assert_eq!(
            m.locate(&p(&["routes", "1", "path"]), Target::Value),
            at(14, 8)
        );
        // Not in the file: the nearest ancestor that is.
        assert_eq!(
            m.locate(&p(&["tiers", "basic", "key"]), Target::Value),
            at(2, 1)
        );
        assert_eq!(m.locate(&p(&["server", "http"]), Target::Value), at(1, 1));
    }

    #[test]
    fn finds_the_path_at_an_offset() {
        let m = SourceMap::parse(DOC).unwrap();
        let off = |needle: &str| DOC.find(needle).unwrap();
        assert_eq!(m.path_at(off("\"1h\"")).to_string(), "tiers.basic.window");
        assert_eq!(
            m.path_at(off("limit = 5\n")).to_string(),
            "tiers.basic.limit"
        );
        assert_eq!(m.path_at(off("\"5m\"")).to_string(), "limits.auth.window");
        assert_eq!(m.path_at(off("\"y\"")).to_string(), "routes[0].limits[1]");
        assert_eq!(m.path_at(off("\"/b\"")).to_string(), "routes[1].path");
        assert!(m.path_at(0).is_root());
    }

    #[test]
    fn syntax_errors_have_a_position_and_one_line() {
        let e = SourceMap::parse("[a]\nx = \"open\n").err().unwrap();
        assert_eq!(e.position.line, 2);
        let e = SourceMap::parse("[a]\nx = 1\n[a]\n").err().unwrap();
        assert_eq!(e.position, at(3, 1));
        assert!(!e.message.contains('\n'));
        assert!(e.message.contains("duplicate key"), "{}", e.message);
    }
}
