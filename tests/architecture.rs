//! The layering rules of docs/architecture.md, enforced: a source file under `src/` that
//! reaches a module its layer may not know fails this test, with the file, the line and the
//! rule it breaks.
//!
//! The check reads the code as text: every `crate::a::b` path, including each item of a
//! `crate::{a, b::c}` group, and every `super::…` path resolved against the file's own module
//! (`super::fastpath` in `src/server/listener.rs` is `server::fastpath`). Comments (`//`,
//! `///`, `//!`, `/* */`) and string literals are not code and do not count. (A
//! `super::` inside an inline `mod` is resolved as if it were written at the file's level,
//! which can only make a path look nearer, never hide one that leaves the module.)
//!
//! To add a rule, add a row to [`RULES`].

use std::path::{Path, PathBuf};

/// What a group of files may reach.
enum Reach {
    /// Only these top-level modules besides its own.
    Only(&'static [&'static str]),
    /// Anything but these module paths (`server::http` forbids it and everything under it).
    Not(&'static [&'static str]),
}

struct Rule {
    /// A folder under `src/` ending in `/` (every file below it), or one file.
    files: &'static str,
    reach: Reach,
    /// Why, as docs/architecture.md says it.
    why: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        files: "config/",
        reach: Reach::Only(&[]),
        why: "config/ is the schema, the embedded default, positions and validation: data; it \
              imports no runtime module (the gate compiles it)",
    },
    Rule {
        files: "policy/",
        reach: Reach::Only(&[]),
        why: "policy/ is pure: it compiles from its own specs and knows neither the \
              configuration, nor the gate, nor auth, nor any door",
    },
    Rule {
        files: "limiter/",
        reach: Reach::Only(&["clock"]),
        why: "limiter/ knows only the clock",
    },
    Rule {
        files: "server/listener.rs",
        reach: Reach::Not(&["server::http", "server::resp"]),
        why: "the listener is shared by every door and knows no protocol",
    },
    Rule {
        files: "gate/",
        reach: Reach::Not(&["server", "cli", "client", "cluster"]),
        why: "layers point one way: doors (the cluster among them) call the gate, never the \
              reverse",
    },
    Rule {
        files: "auth/",
        reach: Reach::Not(&["gate", "server", "cli", "client", "cluster"]),
        why: "auth/ is called by the gate and knows no door, nor the cluster layer above it",
    },
    Rule {
        files: "cluster/",
        reach: Reach::Not(&["server", "cli", "client"]),
        why: "the cluster is a door beside HTTP and RESP: the server starts it, and doors do \
              not reach into each other",
    },
    Rule {
        files: "cluster/counter_plane/",
        reach: Reach::Not(&["gate", "server", "cli", "client", "auth"]),
        why: "the counter plane is sans-I/O over the limiter: only the driver (cluster/node.rs) \
              knows the gate",
    },
    Rule {
        files: "cluster/swim/",
        reach: Reach::Not(&["gate", "server", "cli", "client", "auth", "limiter"]),
        why: "membership carries a few values per node, never counts nor revocations",
    },
    Rule {
        files: "cluster/revocation_plane/",
        reach: Reach::Not(&["gate", "server", "cli", "client", "limiter"]),
        why: "the revocation plane moves revocations between stores: it knows auth's store, \
              not the gate nor the limiter",
    },
    Rule {
        files: "cluster/wire.rs",
        reach: Reach::Only(&["limiter"]),
        why: "the counter plane's datagram is pure: it knows only the limiter's cell types",
    },
];

/// One reference that breaks a rule.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    reached: String,
    rule: usize,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file given relative to `src/`: `server/listener.rs` is
/// `[server, listener]`, `config/mod.rs` is `[config]`, `lib.rs` is `[]`.
fn module_of(relative: &str) -> Vec<String> {
    let mut parts: Vec<String> = relative.split('/').map(str::to_owned).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The text with every comment and the contents of every string literal blanked out (line
/// breaks kept, so offsets still map to lines): `//` comments of every kind, `/* … */`,
/// `"…"` with its escapes, raw strings `r#"…"#`, and the char literal `'"'`.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let after_ident = i > 0 && is_ident(b[i - 1]);
        if rest.starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            for &c in &b[i..end] {
                blank(&mut out, c);
            }
            i = end;
        } else if rest.starts_with(b"'\"'") {
            out.extend_from_slice(b"' '");
            i += 3;
        } else if !after_ident && (rest.starts_with(b"r#") || rest.starts_with(b"r\"")) {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let open = 2 + hashes;
            let end = text[i + open..]
                .find(&close)
                .map_or(b.len(), |e| i + open + e + close.len());
            for &c in &b[i..end] {
                blank(&mut out, c);
            }
            i = end;
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                let step = if b[i] == b'\\' { 2 } else { 1 };
                for &c in &b[i..(i + step).min(b.len())] {
                    blank(&mut out, c);
                }
                i += step;
            }
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every module path the code reaches, as `a::b::c` from the crate root, with its line.
fn references(relative: &str, text: &str) -> Vec<(usize, String)> {
    let module = module_of(relative);
    let code = code_only(text);
    let line_at = |offset: usize| code[..offset].matches('\n').count() + 1;
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b'$';
        let rest = &code[i..];
        let (base, after) = if starts_word && rest.starts_with("crate::") {
            (Vec::new(), i + "crate::".len())
        } else if starts_word && rest.starts_with("super::") {
            let mut ups = 0;
            let mut j = i;
            while code[j..].starts_with("super::") {
                ups += 1;
                j += "super::".len();
            }
            let keep = module.len().saturating_sub(ups);
            (module[..keep].to_vec(), j)
        } else {
            i += 1;
            continue;
        };
        for (offset, tail) in paths_at(&code, after) {
            let mut full = base.clone();
            full.extend(tail);
            if !full.is_empty() {
                found.push((line_at(offset), full.join("::")));
            }
        }
        i = after;
    }
    found
}

/// The path segments written from `at` on: `a::b::c`, or each item of a `{a, b::c}` group
/// (nested groups included), with the offset each starts at.
fn paths_at(code: &str, at: usize) -> Vec<(usize, Vec<String>)> {
    let bytes = code.as_bytes();
    let skip_blank = |mut k: usize| {
        while k < bytes.len() && bytes[k].is_ascii_whitespace() {
            k += 1;
        }
        k
    };
    let mut k = skip_blank(at);
    if k < bytes.len() && bytes[k] == b'{' {
        let mut out = Vec::new();
        k += 1;
        loop {
            k = skip_blank(k);
            if k >= bytes.len() || bytes[k] == b'}' {
                return out;
            }
            let start = k;
            let (segments, end) = segments_at(code, k);
            if end < bytes.len() && bytes[end] == b'{' {
                for (o, tail) in paths_at(code, end) {
                    let mut full = segments.clone();
                    full.extend(tail);
                    out.push((o, full));
                }
            } else if !segments.is_empty() {
                out.push((start, segments));
            }
            // On to the next item of this group, past any nested group.
            let mut depth = 0;
            k = end;
            while k < bytes.len() {
                match bytes[k] {
                    b'{' => depth += 1,
                    b'}' if depth == 0 => break,
                    b'}' => depth -= 1,
                    b',' if depth == 0 => {
                        k += 1;
                        break;
                    }
                    _ => {}
                }
                k += 1;
            }
        }
    }
    let (segments, _) = segments_at(code, k);
    vec![(at, segments)]
}

/// `a::b::c` from `at`: the identifiers, and where they stop (at a `{` when a group follows).
fn segments_at(code: &str, mut k: usize) -> (Vec<String>, usize) {
    let bytes = code.as_bytes();
    let mut segments = Vec::new();
    loop {
        let start = k;
        while k < bytes.len() && is_ident(bytes[k]) {
            k += 1;
        }
        if k == start {
            break;
        }
        segments.push(code[start..k].to_owned());
        if code[k..].starts_with("::") && k + 2 < bytes.len() && is_ident(bytes[k + 2]) {
            k += 2;
        } else {
            if code[k..].starts_with("::{") {
                k += 2;
            }
            break;
        }
    }
    (segments, k)
}

/// Whether `reached` (a path from the crate root) breaks `rule` for a file of `own` module.
fn breaks(rule: &Rule, own: &str, reached: &str) -> bool {
    let top = reached.split("::").next().unwrap_or("");
    match rule.reach {
        Reach::Only(allowed) => {
            top_level_modules().contains(&top.to_owned()) && top != own && !allowed.contains(&top)
        }
        Reach::Not(forbidden) => forbidden
            .iter()
            .any(|f| reached == *f || reached.starts_with(&format!("{f}::"))),
    }
}

/// The crate's top-level modules, as `src/lib.rs` declares them.
fn top_level_modules() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_owned())
        .collect()
}

fn applies(rule: &Rule, relative: &str) -> bool {
    if rule.files.ends_with('/') {
        relative.starts_with(rule.files)
    } else {
        relative == rule.files
    }
}

fn violations(relative: &str, text: &str) -> Vec<Violation> {
    let own = module_of(relative).first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for (index, rule) in RULES.iter().enumerate() {
        if !applies(rule, relative) {
            continue;
        }
        for (line, reached) in references(relative, text) {
            if breaks(rule, &own, &reached) {
                out.push(Violation {
                    file: relative.to_owned(),
                    line,
                    reached,
                    rule: index,
                });
            }
        }
    }
    out
}

#[test]
fn every_layer_imports_only_what_it_may() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    assert!(files.len() > 20, "read {} files under src/", files.len());
    let mut report = Vec::new();
    for path in &files {
        let relative = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(path).unwrap();
        for v in violations(&relative, &text) {
            let rule = &RULES[v.rule];
            report.push(format!(
                "src/{}:{}: reaches `{}`, which files under `{}` may not: {}",
                v.file, v.line, v.reached, rule.files, rule.why
            ));
        }
    }
    assert!(
        report.is_empty(),
        "layering rules broken (docs/architecture.md, \"Layering rules\"):\n{}",
        report.join("\n")
    );
}

// The checker itself: it must find what it is there to find, and nothing in comments.

#[test]
fn finds_plain_grouped_and_relative_paths() {
    let text = "use std::fmt;\n\
                use crate::policy::key::KeyTemplate;\n\
                use crate::{\n    error::X,\n    gate::{self, Gate},\n};\n\
                fn f() { super::super::auth::go(); }\n";
    let reached: Vec<(usize, String)> = references("config/routes.rs", text);
    assert_eq!(
        reached,
        [
            (2, "policy::key::KeyTemplate".to_owned()),
            (4, "error::X".to_owned()),
            (5, "gate::self".to_owned()),
            (5, "gate::Gate".to_owned()),
            (7, "auth::go".to_owned()),
        ]
    );
    let v = violations("config/routes.rs", text);
    let lines: Vec<usize> = v.iter().map(|v| v.line).collect();
    assert_eq!(lines, [2, 5, 5, 7], "{v:?}");
}

#[test]
fn comments_do_not_count() {
    let text = "//! See [`crate::gate`].\n\
                /// Compiled by `crate::gate::compile`.\n\
                // use crate::policy;\n\
                let url = \"http://x//crate::gate\"; // crate::auth\n\
                let s = r#\"crate::server \"quoted\"\"#; /* crate::gate */ let q = '\"';\n\
                use super::duration::parse; // own module\n";
    assert!(violations("config/mod.rs", text).is_empty());
    assert_eq!(
        references("config/resp.rs", text),
        [(6, "config::duration::parse".to_owned())]
    );
}

#[test]
fn super_paths_resolve_against_the_file() {
    assert_eq!(
        references("server/listener.rs", "super::fastpath::serve_fast(s);"),
        [(1, "server::fastpath::serve_fast".to_owned())]
    );
    assert_eq!(
        references("limiter/tests.rs", "use super::hash::resolve;"),
        [(1, "limiter::hash::resolve".to_owned())]
    );
    let listener = Rule {
        files: "server/listener.rs",
        reach: Reach::Not(&["server::http", "server::fastpath"]),
        why: "",
    };
    assert!(breaks(&listener, "server", "server::fastpath::serve_fast"));
    assert!(!breaks(&listener, "server", "server::fastpathology"));
    assert!(!breaks(&listener, "server", "metrics::ConnectionMetrics"));
    // The limiter may use the clock and itself, nothing else.
    let limiter = &RULES[2];
    assert!(!breaks(limiter, "limiter", "clock::Clock"));
    assert!(!breaks(limiter, "limiter", "limiter::hash"));
    assert!(breaks(limiter, "limiter", "metrics::Metrics"));
    assert!(breaks(limiter, "limiter", "cluster::wire"));
    // The datagram format knows the limiter's cells and nothing else of tollgate.
    let wire = RULES.iter().find(|r| r.files == "cluster/wire.rs").unwrap();
    assert!(!breaks(wire, "cluster", "limiter::CellId"));
    assert!(!breaks(wire, "cluster", "cluster::wire"));
    assert!(breaks(wire, "cluster", "clock::Clock"));
    assert!(breaks(wire, "cluster", "metrics::Metrics"));
    // Nothing below the cluster layer reaches it.
    let auth = RULES.iter().find(|r| r.files == "auth/").unwrap();
    assert!(breaks(auth, "auth", "cluster::wire::decode"));
    for below in ["config/", "policy/"] {
        let rule = RULES.iter().find(|r| r.files == below).unwrap();
        assert!(breaks(rule, below.trim_end_matches('/'), "cluster"));
    }
}
