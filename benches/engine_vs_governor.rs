//! Head-to-head: tollgate's engine against `governor`'s keyed rate limiter in one process,
//! on the same workload (2 threads, 1,000,000 keys, Zipf-skewed, the same precomputed
//! `String` keys), in interleaved rounds; then the resident memory each tracked state costs.
//!
//! `cargo bench --bench engine_vs_governor`. The last line printed is one JSON object:
//! `{"tollgate_ops_per_s":…, "governor_ops_per_s":…, "ratio":…, "bytes_per_state":…}`
//! (medians of the rounds; `bytes_per_state` = resident memory growth after tracking
//! 1,000,000 states, divided by 1,000,000).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::Instant;

#[path = "support/engine_workload.rs"]
mod workload;

use workload::*;

const KEYS: usize = 1_000_000;
const THREADS: usize = 2;
const OPS_PER_THREAD: usize = 2_000_000;
const ROUNDS: usize = 7;

/// Runs `op` over each thread's stream on its own thread; returns operations per second.
fn run<F>(streams: &[Vec<u32>], op: F) -> f64
where
    F: Fn(u32) -> bool + Sync,
{
    let barrier = Barrier::new(streams.len() + 1);
    let (start, end) = std::thread::scope(|s| {
        let handles: Vec<_> = streams
            .iter()
            .map(|stream| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let mut admitted = 0u64;
                    for &i in stream {
                        admitted += u64::from(op(i));
                    }
                    black_box(admitted);
                    Instant::now()
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let end = handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or(start);
        (start, end)
    });
    let ops: usize = streams.iter().map(Vec::len).sum();
    ops as f64 / (end - start).as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Resident growth per state when `n` distinct keys are tracked by a fresh engine.
fn bytes_per_state(keys: &[String]) -> (f64, f64) {
    let spec = tollgate_spec();
    let before = rss_bytes();
    let t = tollgate_limiter(keys.len());
    for k in keys {
        tollgate_op(&t, &spec, k);
    }
    let tollgate = (rss_bytes().saturating_sub(before)) as f64 / keys.len() as f64;
    assert_eq!(t.tracked_states(), keys.len(), "every key tracked");
    // governor's keyed store clones the key into its map, so it pays for the String too.
    let before = rss_bytes();
    let g = governor_limiter();
    for k in keys {
        governor_op(&g, k);
    }
    let governor = (rss_bytes().saturating_sub(before)) as f64 / keys.len() as f64;
    black_box((&t, &g));
    drop(g);
    drop(t);
    (tollgate, governor)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let keys = keys(KEYS);
    let streams: Vec<Vec<u32>> = (0..THREADS)
        .map(|t| stream(KEYS, OPS_PER_THREAD, Skew::Zipf, 0x5eed + t as u64))
        .collect();
    let distinct = {
        let mut seen = vec![false; KEYS];
        streams
            .iter()
            .flatten()
            .for_each(|&i| seen[i as usize] = true);
        seen.iter().filter(|&&s| s).count()
    };

    // For profiling one side alone: ENGINE_BENCH_ONLY=tollgate (or governor) runs only its
    // rounds and prints no JSON.
    let only = std::env::var("ENGINE_BENCH_ONLY").ok();
    if let Some(only) = only.as_deref() {
        let spec = tollgate_spec();
        let tollgate = tollgate_limiter(KEYS);
        let governor = governor_limiter();
        for _ in 0..=ROUNDS {
            let ops = if only == "governor" {
                run(&streams, |i| governor_op(&governor, &keys[i as usize]))
            } else {
                run(&streams, |i| {
                    tollgate_op(&tollgate, &spec, &keys[i as usize])
                })
            };
            eprintln!("{only}: {ops:.0} ops/s");
        }
        return;
    }

    // Memory first, on a quiet heap.
    let (bytes_per_state, governor_bytes_per_state) = bytes_per_state(&keys);

    let spec = tollgate_spec();
    let tollgate = tollgate_limiter(KEYS);
    let governor = governor_limiter();
    // Warm-up: both maps reach their steady size before anything is timed.
    run(&streams, |i| {
        tollgate_op(&tollgate, &spec, &keys[i as usize])
    });
    run(&streams, |i| governor_op(&governor, &keys[i as usize]));

    let (mut t_rounds, mut g_rounds) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Alternate who goes first so that neither always runs on a warmer machine.
        let mut t = || {
            t_rounds.push(run(&streams, |i| {
                tollgate_op(&tollgate, &spec, &keys[i as usize])
            }))
        };
        if round % 2 == 0 {
            t();
            g_rounds.push(run(&streams, |i| governor_op(&governor, &keys[i as usize])));
        } else {
            g_rounds.push(run(&streams, |i| governor_op(&governor, &keys[i as usize])));
            t_rounds.push(run(&streams, |i| {
                tollgate_op(&tollgate, &spec, &keys[i as usize])
            }));
        }
        eprintln!(
            "round {round}: tollgate {:.0} ops/s, governor {:.0} ops/s",
            t_rounds[round], g_rounds[round]
        );
    }
    let tollgate_ops = median(t_rounds);
    let governor_ops = median(g_rounds);
    println!(
        "workload: {THREADS} threads x {OPS_PER_THREAD} ops, {KEYS} keys, Zipf s={ZIPF_EXPONENT} ({distinct} distinct keys touched), {ROUNDS} interleaved rounds, medians"
    );
    println!(
        "tollgate engine states tracked: {}, evictions: {}",
        tollgate.tracked_states(),
        tollgate.evictions()
    );
    println!("governor bytes per state (key String included): {governor_bytes_per_state:.1}");
    println!(
        "{{\"tollgate_ops_per_s\":{:.0},\"governor_ops_per_s\":{:.0},\"ratio\":{:.3},\"bytes_per_state\":{:.1}}}",
        tollgate_ops,
        governor_ops,
        tollgate_ops / governor_ops,
        bytes_per_state
    );
}
