//! The sliding-window counter's error against an exact sliding log, measured.
//!
//! ```sh
//! cargo run --release --example window_error
//! ```
//!
//! Replays seeded, reproducible request traces — Poisson arrivals at several rates relative to
//! the limit, and bursty ones: random on/off bursts, bursts straddling window edges, and the
//! two constructed worst cases — through the real engine ([`Limiter`] with a [`ManualClock`],
//! one hit per request) and through an exact sliding log of the same limit and window, and
//! prints markdown tables. docs/algorithms.md explains the columns and quotes the output.
//!
//! Arguments (all optional): `--seed N` (default 20261122), `--quick` (fewer windows per
//! trace, for a smoke run).
//!
//! Every row also checks what docs/algorithms.md claims, and the program panics if a claim
//! fails: the exact log never holds more than the limit in any window of its length; the
//! counter never admits more than the limit in an aligned window, nor more than
//! `2·L − ⌈2·L / W_ms⌉` in any window of its length; and for limits of at most 100 the engine's
//! own `sliding_log` decides every request exactly as the log written here.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate::clock::ManualClock;
use tollgate::limiter::{Algorithm, LimitCheck, LimitSpec, Limiter, LimiterOptions};

/// 2026-01-01T00:00:00Z: a whole number of hours since the epoch, so every window length
/// used here has an edge at `T0`.
const T0: u64 = 1_767_225_600_000;

/// Limits measured.
const LIMITS: [u64; 4] = [5, 100, 500, 10_000];

/// SplitMix64: tiny, fast and fully specified, so a seed gives the same traces on every
/// machine and with every version of every crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }

    /// Exponentially distributed with the given mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// The kinds of trace.
#[derive(Debug, Clone, Copy)]
enum Trace {
    /// Poisson arrivals at `rate` × the limit per window.
    Poisson(f64),
    /// Random on/off bursts: on periods (mean W/4) at 8 × L per W, off periods (mean W)
    /// silent.
    OnOff,
    /// At every window edge, a burst of L/2 … 2L requests spread over 1 % of the window,
    /// centred within ±2 % of the window around the edge (so just before, across or just
    /// after it).
    EdgeBursts,
    /// The constructed over-admission worst case, every three windows: one quiet window,
    /// then 2L requests in the last millisecond of the next, then 2L requests two
    /// milliseconds before the end of the one after.
    WorstOver,
    /// The constructed under-admission worst case: 2L requests in the first millisecond of
    /// every window.
    WorstUnder,
}

impl Trace {
    fn name(&self) -> String {
        match self {
            Trace::Poisson(r) => format!("Poisson {r}×"),
            Trace::OnOff => "on/off bursts".into(),
            Trace::EdgeBursts => "edge bursts".into(),
            Trace::WorstOver => "worst case: over".into(),
            Trace::WorstUnder => "worst case: under".into(),
        }
    }

    /// Arrival times (ms since `T0`, sorted) over `windows` windows of `w_ms`.
    fn arrivals(&self, rng: &mut Rng, limit: u64, w_ms: u64, windows: u64) -> Vec<u64> {
        let end = windows * w_ms;
        let l = limit as f64;
        let w = w_ms as f64;
        let mut out = Vec::new();
        match *self {
            Trace::Poisson(rate) => {
                let mean_gap = w / (rate * l);
                let mut t = rng.exp(mean_gap);
                while (t as u64) < end {
                    out.push(t as u64);
                    t += rng.exp(mean_gap);
                }
            }
            Trace::OnOff => {
                let mean_gap = w / (8.0 * l);
                let mut t = 0.0;
                while (t as u64) < end {
                    let on_end = t + rng.exp(w / 4.0);
                    t += rng.exp(mean_gap);
                    while t < on_end && (t as u64) < end {
                        out.push(t as u64);
                        t += rng.exp(mean_gap);
                    }
                    t = on_end + rng.exp(w);
                }
            }
            Trace::EdgeBursts => {
                let spread = (w_ms / 100).max(1);
                let jitter = w_ms / 50;
                for k in 1..windows {
                    let edge = k * w_ms;
                    let centre = edge - jitter + rng.range(0, 2 * jitter + 1);
                    let start = centre.saturating_sub(spread / 2);
                    let n = rng.range(limit / 2, 2 * limit + 1).max(1);
                    for _ in 0..n {
                        out.push(start + rng.range(0, spread));
                    }
                }
            }
            Trace::WorstOver => {
                for k in (0..windows.saturating_sub(2)).step_by(3) {
                    let second_end = (k + 2) * w_ms;
                    let third_end = (k + 3) * w_ms;
                    out.resize(out.len() + 2 * limit as usize, second_end - 1);
                    out.resize(out.len() + 2 * limit as usize, third_end - 2);
                }
            }
            Trace::WorstUnder => {
                for k in 0..windows {
                    out.resize(out.len() + 2 * limit as usize, k * w_ms);
                }
            }
        }
        out.sort_unstable();
        out
    }
}

/// An exact sliding log of one-hit requests: admits at `t` when fewer than `limit` of its
/// admissions lie in `(t − W, t]`.
struct ExactLog {
    limit: u64,
    w_ms: u64,
    admitted: VecDeque<u64>,
    peak: u64,
}

impl ExactLog {
    fn new(limit: u64, w_ms: u64) -> Self {
        ExactLog {
            limit,
            w_ms,
            admitted: VecDeque::new(),
            peak: 0,
        }
    }

    /// Admissions in `(t − W, t]`.
    fn in_window(&mut self, t: u64) -> u64 {
        while self.admitted.front().is_some_and(|&ts| ts + self.w_ms <= t) {
            self.admitted.pop_front();
        }
        self.admitted.len() as u64
    }

    fn would_admit(&mut self, t: u64) -> bool {
        self.in_window(t) < self.limit
    }

    /// Records an admission at `t` (whoever decided it).
    fn record(&mut self, t: u64) {
        self.admitted.push_back(t);
        self.peak = self.peak.max(self.admitted.len() as u64);
    }
}

/// What one trace gave for one (limit, window).
struct Row {
    trace: String,
    limit: u64,
    window_secs: u64,
    offered: u64,
    log_admitted: u64,
    counter_admitted: u64,
    /// Most counter admissions in any window `(t − W, t]`.
    counter_peak: u64,
    /// Counter admissions that an exact log holding the counter's own admissions would have
    /// refused: the window `(t − W, t]` already held L of them.
    over: u64,
    /// Requests the exact log admitted and the counter denied (each running on its own
    /// history): under-admission, printed as a share of the log's admissions.
    log_only: u64,
    /// Requests the counter admitted and the exact log denied, printed as a share of the
    /// counter's admissions.
    counter_only: u64,
}

fn engine(clock: Arc<ManualClock>) -> Limiter {
    Limiter::new(
        LimiterOptions {
            max_states: 64,
            shards: 1,
            hash_key: *b"window-error-key",
        },
        clock,
    )
}

/// The largest number of hits the counter can admit in a window of its length (see
/// docs/algorithms.md, "The worst case").
fn bound(limit: u64, w_ms: u64) -> u64 {
    2 * limit - (2 * limit).div_ceil(w_ms)
}

fn run(trace: Trace, limit: u64, window_secs: u64, windows: u64, seed: u64) -> Row {
    let w_ms = window_secs * 1000;
    let mut rng = Rng::new(seed ^ limit.wrapping_mul(0x9E37) ^ window_secs.rotate_left(32));
    let arrivals = trace.arrivals(&mut rng, limit, w_ms, windows);

    let clock = Arc::new(ManualClock::new(T0));
    let limiter = engine(clock.clone());
    let counter = LimitSpec {
        name: Arc::from("counter"),
        limit,
        window: Duration::from_secs(window_secs),
        algorithm: Algorithm::SlidingWindow,
    };
    let log_spec = LimitSpec {
        name: Arc::from("log"),
        algorithm: Algorithm::SlidingLog,
        ..counter.clone()
    };
    // The engine's sliding_log costs O(live records) per decision; cross-check it where that
    // stays cheap.
    let cross_check = limit <= 100;

    let mut log = ExactLog::new(limit, w_ms);
    // The counter's own admissions, seen by an exact log (for peak, over and under).
    let mut shadow = ExactLog::new(limit, w_ms);
    let mut per_aligned = (u64::MAX, 0u64);
    let mut row = Row {
        trace: trace.name(),
        limit,
        window_secs,
        offered: arrivals.len() as u64,
        log_admitted: 0,
        counter_admitted: 0,
        counter_peak: 0,
        over: 0,
        log_only: 0,
        counter_only: 0,
    };

    for &t in &arrivals {
        clock.set_millis(T0 + t);

        let log_admits = log.would_admit(t);
        if log_admits {
            log.record(t);
            row.log_admitted += 1;
        }
        if cross_check {
            let d = limiter.check(
                &[LimitCheck {
                    limit: &log_spec,
                    key: "k",
                }],
                1,
            );
            assert_eq!(
                d.allowed, log_admits,
                "{}: tollgate's sliding_log and the exact log disagree at T0 + {t} ms",
                row.trace
            );
        }

        let admitted = limiter
            .check(
                &[LimitCheck {
                    limit: &counter,
                    key: "k",
                }],
                1,
            )
            .allowed;
        match (log_admits, admitted) {
            (true, false) => row.log_only += 1,
            (false, true) => row.counter_only += 1,
            _ => {}
        }
        if admitted {
            row.counter_admitted += 1;
            if !shadow.would_admit(t) {
                row.over += 1;
            }
            shadow.record(t);
            let aligned = t / w_ms;
            if per_aligned.0 != aligned {
                per_aligned = (aligned, 0);
            }
            per_aligned.1 += 1;
            assert!(
                per_aligned.1 <= limit,
                "{}: aligned window {aligned} admitted more than {limit}",
                row.trace
            );
        }
    }
    row.counter_peak = shadow.peak;
    assert!(log.peak <= limit, "the exact log passed its limit");
    assert!(
        row.counter_peak <= bound(limit, w_ms),
        "{} L={limit} W={window_secs}s: {} admitted in one window, bound {}",
        row.trace,
        row.counter_peak,
        bound(limit, w_ms)
    );
    row
}

fn window_label(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn percent(n: u64, of: u64) -> String {
    if of == 0 {
        "–".into()
    } else {
        format!("{:.2} %", 100.0 * n as f64 / of as f64)
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| trace | L | W | offered | log admits | counter admits | counter ÷ log | peak ÷ L \
         | over-limit admits | log ✓ counter ✗ | counter ✓ log ✗ |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {} | {} |",
            r.trace,
            r.limit,
            window_label(r.window_secs),
            r.offered,
            r.log_admitted,
            r.counter_admitted,
            r.counter_admitted as f64 / r.log_admitted.max(1) as f64,
            r.counter_peak as f64 / r.limit as f64,
            percent(r.over, r.counter_admitted),
            percent(r.log_only, r.log_admitted),
            percent(r.counter_only, r.counter_admitted),
        );
    }
}

/// Windows replayed per trace: enough for small limits to show their spread, few enough
/// that the largest limit at 10× (100,000 requests per window) stays quick.
fn windows_for(limit: u64, quick: bool) -> u64 {
    let n = (2_000_000 / limit).clamp(100, 1000);
    if quick {
        (n / 10).max(9)
    } else {
        n
    }
}

fn main() {
    let mut seed = 20_261_122u64;
    let mut quick = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seed" => {
                seed = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seed takes a number")
            }
            "--quick" => quick = true,
            other => {
                eprintln!("unknown argument {other:?}; usage: window_error [--seed N] [--quick]");
                std::process::exit(2);
            }
        }
    }
    let started = Instant::now();
    let traces = [
        Trace::Poisson(0.5),
        Trace::Poisson(1.0),
        Trace::Poisson(2.0),
        Trace::Poisson(10.0),
        Trace::OnOff,
        Trace::EdgeBursts,
        Trace::WorstOver,
        Trace::WorstUnder,
    ];

    println!("seed {seed}; one hit per request; windows per trace: {}", {
        LIMITS
            .iter()
            .map(|&l| format!("L={l}: {}", windows_for(l, quick)))
            .collect::<Vec<_>>()
            .join(", ")
    });

    println!("\n### Every trace, W = 1 min\n");
    let mut rows = Vec::new();
    for trace in traces {
        for limit in LIMITS {
            rows.push(run(trace, limit, 60, windows_for(limit, quick), seed));
        }
    }
    print_table(&rows);

    println!("\n### The window length, W = 1 s and 1 h\n");
    let mut rows = Vec::new();
    for trace in traces {
        for window_secs in [1, 3600] {
            for limit in [5, 10_000] {
                rows.push(run(
                    trace,
                    limit,
                    window_secs,
                    windows_for(limit, quick),
                    seed,
                ));
            }
        }
    }
    print_table(&rows);

    println!("\n### The worst case against its bound 2L − ⌈2L / W_ms⌉\n");
    println!("| L | W | bound | ÷ L | measured peak | ÷ L |");
    println!("|---:|---|---:|---:|---:|---:|");
    for window_secs in [1, 60, 3600] {
        for limit in LIMITS {
            let r = run(Trace::WorstOver, limit, window_secs, 9, seed);
            let b = bound(limit, window_secs * 1000);
            println!(
                "| {limit} | {} | {b} | {:.4} | {} | {:.4} |",
                window_label(window_secs),
                b as f64 / limit as f64,
                r.counter_peak,
                r.counter_peak as f64 / limit as f64
            );
        }
    }

    println!();
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}
