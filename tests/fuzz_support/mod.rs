//! What the fuzz-seed tests share (`tests/*_fuzz_seeds.rs`): a target's body — the same
//! file the libFuzzer binary calls — run on stable Rust over its seed corpus in
//! `fuzz/seeds/<target>/`, over every crash reproducer saved in `fuzz/regressions/<target>/`,
//! and over proptest mutations of the seeds. A body panics when an invariant breaks, which
//! fails the test. docs/fuzzing.md describes the real fuzzing runs.

#![allow(dead_code)] // not every test binary uses every helper

use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;

/// Every file of `fuzz/<dir>/<target>/`, sorted; an absent directory has none.
pub fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(dir)
        .join(target);
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

/// Runs `body` over `target`'s seeds (at least `min_seeds` of them must exist) and its saved
/// regressions.
pub fn replay_seeds_and_regressions(target: &str, body: fn(&[u8]), min_seeds: usize) {
    let seeds = inputs("seeds", target);
    assert!(
        seeds.len() >= min_seeds,
        "{target}: expected a seed corpus in fuzz/seeds/{target}/"
    );
    for (path, data) in seeds.iter().chain(inputs("regressions", target).iter()) {
        let outcome = std::panic::catch_unwind(|| body(data));
        assert!(outcome.is_ok(), "{target} failed on {}", path.display());
    }
}

/// Up to `max_glued` of `target`'s seeds glued together, then some bytes overwritten,
/// inserted or cut: cheap structure-aware mutation.
pub fn mutated(target: &'static str, max_glued: usize) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = inputs("seeds", target)
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    let n = seeds.len().max(1);
    (
        proptest::collection::vec(0..n, 1..max_glued + 1),
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

/// The tests of one fuzz target whose body is the module `$body` (included by the test file
/// with `#[path]`, under the target's own name): its seeds and regressions replayed (at least
/// `$min_seeds` seeds), `$cases` proptest mutations of the seeds, and as many random inputs
/// of up to 512 bytes.
#[macro_export]
macro_rules! fuzz_target_tests {
    ($body:ident, min_seeds: $min_seeds:expr, cases: $cases:expr) => {
        const TARGET: &str = stringify!($body);

        #[test]
        fn seeds_and_regressions() {
            fuzz_support::replay_seeds_and_regressions(TARGET, $body::run, $min_seeds);
        }

        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig::with_cases($cases))]

            #[test]
            fn seed_mutations(data in fuzz_support::mutated(TARGET, 3)) {
                $body::run(&data);
            }

            #[test]
            fn random_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
                $body::run(&data);
            }
        }
    };
}
