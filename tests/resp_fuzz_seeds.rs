//! The `resp_parse` fuzz target as an ordinary test, on stable Rust: its body (the file the
//! libFuzzer binary calls) runs over the seed corpus in `fuzz/seeds/resp_parse/`, over any
//! crash reproducer saved in `fuzz/regressions/resp_parse/`, and over mutations of the
//! seeds. The body panics when an invariant breaks, which fails the test.

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;

#[path = "../fuzz/src/resp_parse.rs"]
mod resp_parse;

fn inputs(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join("resp_parse");
    let Ok(entries) = fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let data = fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

#[test]
fn seeds_and_regressions() {
    let seeds = inputs("seeds");
    assert!(
        seeds.len() >= 5,
        "expected a seed corpus in fuzz/seeds/resp_parse/"
    );
    for (path, data) in seeds.iter().chain(inputs("regressions").iter()) {
        let outcome = std::panic::catch_unwind(|| resp_parse::run(data));
        assert!(outcome.is_ok(), "resp_parse failed on {}", path.display());
    }
}

/// The seeds, with bytes overwritten, inserted or removed, and seeds glued together.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = inputs("seeds").into_iter().map(|(_, d)| d).collect();
    let n = seeds.len().max(1);
    (
        proptest::collection::vec(0..n, 1..4),
        proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(move |(picks, edits)| {
            let mut data: Vec<u8> = picks
                .iter()
                .flat_map(|&i| seeds.get(i).cloned().unwrap_or_default())
                .collect();
            for (pos, byte, op) in edits {
                let at = if data.is_empty() { 0 } else { pos % data.len() };
                match op {
                    0 if !data.is_empty() => data[at] = byte,
                    1 => data.insert(at, byte),
                    _ if !data.is_empty() => {
                        data.remove(at);
                    }
                    _ => data.push(byte),
                }
            }
            data
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn seed_mutations(data in mutated()) {
        resp_parse::run(&data);
    }

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        resp_parse::run(&data);
    }
}
