//! Criterion benchmarks of the rate-limiting engine against `governor`'s keyed rate limiter
//! on the same workloads: 1 and 2 threads; 1,000 and 1,000,000 keys; uniform and
//! Zipf-skewed key choice; the same precomputed `String` keys and key sequences for both.
//!
//! `cargo bench --bench engine` (add a filter such as `engine/2t` to run a subset). One
//! iteration is one check of one hit, whichever thread makes it, so the reported time is
//! wall time per check of the whole run and the throughput is checks per second over all
//! threads. The head-to-head figure with a JSON line is `benches/engine_vs_governor.rs`.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "support/engine_workload.rs"]
mod workload;

use workload::*;

/// Length of each thread's precomputed key sequence (cycled).
const STREAM_LEN: usize = 1 << 20;

/// Runs `iters` operations split over `streams.len()` threads; returns the wall time.
fn timed<F>(streams: &[Vec<u32>], iters: u64, op: &F) -> Duration
where
    F: Fn(u32) -> bool + Sync,
{
    let threads = streams.len() as u64;
    let barrier = Barrier::new(streams.len() + 1);
    std::thread::scope(|s| {
        for (t, stream) in streams.iter().enumerate() {
            let barrier = &barrier;
            // Each thread takes its share; the first takes the remainder.
            let share = iters / threads + if t == 0 { iters % threads } else { 0 };
            s.spawn(move || {
                barrier.wait();
                let mut admitted = 0u64;
                for &i in stream.iter().cycle().take(share as usize) {
                    admitted += u64::from(op(i));
                }
                black_box(admitted);
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn engines(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for key_count in [1_000usize, 1_000_000] {
        let keys = keys(key_count);
        for skew in [Skew::Uniform, Skew::Zipf] {
            for threads in [1usize, 2] {
                let streams: Vec<Vec<u32>> = (0..threads)
                    .map(|t| stream(key_count, STREAM_LEN, skew, 17 + t as u64))
                    .collect();
                let case = format!("{threads}t/{key_count}keys/{}", skew.name());

                let spec = tollgate_spec();
                let tollgate = tollgate_limiter(key_count);
                // Warm: every key tracked, so the map is at its steady size.
                for k in &keys {
                    tollgate_op(&tollgate, &spec, k);
                }
                let op = |i: u32| tollgate_op(&tollgate, &spec, &keys[i as usize]);
                group.bench_function(BenchmarkId::new("tollgate", &case), |b| {
                    b.iter_custom(|iters| timed(&streams, iters, &op))
                });
                drop(tollgate);

                let governor = governor_limiter();
                for k in &keys {
                    governor_op(&governor, k);
                }
                let op = |i: u32| governor_op(&governor, &keys[i as usize]);
                group.bench_function(BenchmarkId::new("governor", &case), |b| {
                    b.iter_custom(|iters| timed(&streams, iters, &op))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, engines);
criterion_main!(benches);
