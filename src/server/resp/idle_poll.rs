//! Idle polling for the RESP event loops: a loop that is busy at least half the time and
//! runs out of work polls for more, for a few microseconds, before it sleeps.
//!
//! Why: when an event loop sleeps in `epoll_wait`, the next command must wake it, and the
//! wake-up is paid on the *client's* CPU — the client's kernel delivers the segment and
//! wakes the loop's thread on another core (on a virtual machine, an inter-processor
//! interrupt and an exit to the hypervisor). Measured with `redis-benchmark -c 64 -P 1` on a
//! 2-core VM (docs/benchmarks.md): tollgate's loop, which needs less CPU per command than
//! redis-server, slept about once every 5.5 commands against Redis's once every 8, and the
//! load generator paid for each wake-up in system time. Under such load the next command
//! arrives within microseconds: polling for it costs the loop about what sleeping and being
//! woken would, and spares every client the wake-up. At low load a poll would mostly find
//! nothing, so the loop sleeps at once, as before.
//!
//! The rule, per loop thread ([`IdlePoll`], which takes the time as an argument so that it
//! is tested without a clock):
//!
//! - The loop keeps two sums: its *work* time (from finding work to running out of it) and
//!   its *idle* time (asleep, or polling without finding anything). Both are halved whenever
//!   together they pass [`HORIZON`] ×2, so they describe the last millisecond or two.
//! - Each time it runs out of work, it polls once more without blocking if its work time is
//!   at least its idle time (it is at least half busy) and it has found nothing for less
//!   than the window (`resp.idle_poll_us`, default 20 µs). Otherwise it sleeps.
//!
//! So polling never takes more of a core than the work does (it is off below half load),
//! one idle stretch costs at most one window, and a loop with nothing to do sleeps.
//!
//! How it hooks in: the loop is a current-thread tokio runtime. Its park hook
//! ([`tokio::runtime::Builder::on_thread_park`]) runs when the runtime has no task to run
//! and is about to block; to poll instead, the hook wakes a do-nothing task ([`poke`]), and
//! the runtime, which looks for work again after the hook, polls its I/O driver with a zero
//! timeout rather than blocking (the test `a_runtime_polls_under_load_and_sleeps_when_idle`
//! fails if a tokio upgrade changes that). Connection
//! tasks call [`note_work`] once per batch, which is how the hook tells work from an empty
//! poll.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use prometheus::IntCounter;

/// The sums of work and idle time are halved when together they pass twice this.
pub const HORIZON: Duration = Duration::from_millis(1);

/// Largest `resp.idle_poll_us`.
pub const MAX_WINDOW_US: u64 = 1_000;

/// The window when `resp.idle_poll_us` is not set and the CPU allows it ([`default_window`]).
pub const DEFAULT_WINDOW: Duration = Duration::from_micros(20);

/// The window when `resp.idle_poll_us` is not set: [`DEFAULT_WINDOW`], unless the process's
/// CPU quota (`quota_cores`, from its cgroup) is below one core per event loop plus one for
/// the rest of the server. Under a quota, time spent polling is quota not left for work:
/// the kernel would throttle the process later, when a command is waiting.
pub fn default_window(loops: usize, quota_cores: Option<f64>) -> Duration {
    match quota_cores {
        Some(q) if q < loops as f64 + 1.0 => Duration::ZERO,
        _ => DEFAULT_WINDOW,
    }
}

/// This process's CPU quota in cores, from its cgroup (v2 `cpu.max`, or v1
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us`); `None` when unlimited or unreadable.
pub fn cpu_quota_cores() -> Option<f64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    // cgroup v2: the process's own group ("0::/path"), then the namespace's root.
    let own = read("/proc/self/cgroup").and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("0::").map(|p| p.trim().to_string()))
    });
    let mut v2 = Vec::new();
    if let Some(path) = own.filter(|p| p != "/") {
        v2.push(format!("/sys/fs/cgroup{path}/cpu.max"));
    }
    v2.push("/sys/fs/cgroup/cpu.max".to_string());
    for p in v2 {
        if let Some(t) = read(&p) {
            return parse_cpu_max(&t);
        }
    }
    for dir in ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"] {
        if let (Some(q), Some(p)) = (
            read(&format!("{dir}/cpu.cfs_quota_us")),
            read(&format!("{dir}/cpu.cfs_period_us")),
        ) {
            return parse_cfs(&q, &p);
        }
    }
    None
}

/// cgroup v2 `cpu.max`: "max 100000" (unlimited) or "50000 100000" (half a core).
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period: f64 = it.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    Some(quota.parse::<f64>().ok()? / period)
}

/// cgroup v1: `cpu.cfs_quota_us` ("-1": unlimited) over `cpu.cfs_period_us`.
pub fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// The decision one loop makes each time it runs out of work.
#[derive(Debug)]
pub struct IdlePoll {
    window: Duration,
    /// Work and idle time in nanoseconds, decayed (see the module docs).
    work_ns: u64,
    idle_ns: u64,
    /// When the loop last ran out of work, or woke.
    last: Instant,
    /// The work counter ([`note_work`]) when the loop last ran out of work.
    seen_work: u64,
    /// Since when the loop has found no work.
    idle_since: Instant,
    /// Asleep since `last`.
    asleep: bool,
}

/// What the loop does when it runs out of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Poll for events again without blocking.
    Poll,
    /// Block until an event arrives.
    Sleep,
}

impl IdlePoll {
    /// A loop that has just started: counted as idle for a whole horizon, so that it polls
    /// only once it has been busy.
    pub fn new(window: Duration, now: Instant) -> Self {
        Self {
            window,
            work_ns: 0,
            idle_ns: nanos(HORIZON),
            last: now,
            seen_work: 0,
            idle_since: now,
            asleep: false,
        }
    }

    /// The loop ran out of work at `now`; `work` is its work counter ([`note_work`]).
    pub fn out_of_work(&mut self, now: Instant, work: u64) -> Idle {
        let span = nanos(now.saturating_duration_since(self.last));
        self.last = now;
        if work != self.seen_work {
            // Work was found since the last check: that stretch was work, and the idle
            // stretch starts now.
            self.seen_work = work;
            self.work_ns += span;
            self.idle_since = now;
        } else {
            self.idle_ns += span;
        }
        if self.work_ns + self.idle_ns > 2 * nanos(HORIZON) {
            self.work_ns /= 2;
            self.idle_ns /= 2;
        }
        let busy = self.work_ns >= self.idle_ns;
        if busy && now.saturating_duration_since(self.idle_since) < self.window {
            Idle::Poll
        } else {
            self.asleep = true;
            Idle::Sleep
        }
    }

    /// The loop blocks although [`out_of_work`](Self::out_of_work) said to poll.
    pub fn sleep_anyway(&mut self) {
        self.asleep = true;
    }

    /// The loop woke at `now` (after a sleep, or after a poll).
    pub fn woke(&mut self, now: Instant) {
        if self.asleep {
            self.asleep = false;
            self.idle_ns += nanos(now.saturating_duration_since(self.last));
            self.last = now;
        }
    }

    /// The loop's share of time spent working, over the last millisecond or two.
    pub fn utilisation(&self) -> f64 {
        let total = self.work_ns + self.idle_ns;
        if total == 0 {
            0.0
        } else {
            self.work_ns as f64 / total as f64
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4)
}

/// What the event loops of one door report (`INFO stats`, and `/metrics` as
/// `tollgate_resp_event_loop_sleeps_total` and `…_idle_polls_total`:
/// [`crate::metrics::Metrics::event_loop_stats`]).
#[derive(Debug, Clone)]
pub struct LoopStats {
    /// Times a loop blocked waiting for events.
    pub sleeps: IntCounter,
    /// Times a loop polled again instead of blocking.
    pub idle_polls: IntCounter,
}

// ------------------------------------------------------------------------------------------
// The glue to one current-thread runtime

thread_local! {
    /// Batches served on this thread.
    static WORK: Cell<u64> = const { Cell::new(0) };
    /// This thread's loop, once its park hook first ran.
    static LOOP: RefCell<Option<IdlePoll>> = const { RefCell::new(None) };
    /// The waker of this thread's [`poke`] task.
    static POKE: RefCell<Option<Waker>> = const { RefCell::new(None) };
}

/// A connection served a batch on this thread. Cheap (a thread-local increment); harmless
/// on threads without idle polling.
#[inline]
pub fn note_work() {
    WORK.with(|w| w.set(w.get().wrapping_add(1)));
}

/// Adds idle polling with `window` to a current-thread runtime: its park and unpark hooks.
/// The runtime must also run [`poke`] as a task. With a zero window the loop always sleeps,
/// and the hooks only count its sleeps.
pub fn install(
    builder: &mut tokio::runtime::Builder,
    window: Duration,
    stats: Arc<LoopStats>,
) -> &mut tokio::runtime::Builder {
    builder
        .on_thread_park(move || {
            let now = Instant::now();
            let work = WORK.with(Cell::get);
            LOOP.with(|l| {
                let mut l = l.borrow_mut();
                let poll = l.get_or_insert_with(|| IdlePoll::new(window, now));
                if poll.out_of_work(now, work) == Idle::Poll {
                    // Waking the poke task gives the runtime a task to run: it polls with a
                    // zero timeout instead of blocking.
                    let poked = POKE.with(|p| p.borrow().as_ref().map(Waker::wake_by_ref));
                    if poked.is_some() {
                        stats.idle_polls.inc();
                        return;
                    }
                    // The poke task has not run yet: this once, the runtime blocks.
                    poll.sleep_anyway();
                }
                stats.sleeps.inc();
            });
        })
        .on_thread_unpark(|| {
            LOOP.with(|l| {
                if let Some(poll) = l.borrow_mut().as_mut() {
                    poll.woke(Instant::now());
                }
            });
        })
}

/// The task a park hook wakes to make the runtime poll instead of block: it only keeps its
/// waker where the hook finds it. Runs forever; ends with its runtime.
pub async fn poke() {
    std::future::poll_fn(|cx| {
        POKE.with(|p| {
            let mut p = p.borrow_mut();
            match p.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *p = Some(cx.waker().clone()),
            }
        });
        Poll::<()>::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    /// A loop driven through simulated time: window 20 µs, polls in steps of 1 µs.
    struct Sim {
        p: IdlePoll,
        t: Instant,
        work: u64,
    }

    impl Sim {
        fn new() -> Self {
            let t = Instant::now();
            Self {
                p: IdlePoll::new(20 * US, t),
                t,
                work: 0,
            }
        }

        /// Works `work` then is idle `gap`, `n` times, polling or sleeping as told; returns
        /// the last decision and the number of sleeps.
        fn run(&mut self, work: Duration, gap: Duration, n: usize) -> (Idle, usize) {
            let mut last = Idle::Sleep;
            let mut sleeps = 0;
            for _ in 0..n {
                self.t += work;
                self.work += 1;
                last = self.p.out_of_work(self.t, self.work);
                let end = self.t + gap;
                while last == Idle::Poll && self.t + US < end {
                    self.t += US;
                    last = self.p.out_of_work(self.t, self.work);
                }
                if last == Idle::Sleep {
                    sleeps += 1;
                }
                self.t = end;
                self.p.woke(self.t);
            }
            (last, sleeps)
        }

        /// 8 µs of work, 2 µs gaps, 1,000 times: a loop 80 % busy, polling.
        fn busy() -> Self {
            let mut sim = Self::new();
            sim.run(8 * US, 2 * US, 1000);
            sim
        }

        /// One last batch, then no more work: polls until told to sleep. Returns how long
        /// it polled.
        fn last_batch(&mut self) -> Duration {
            self.t += 8 * US;
            self.work += 1;
            let start = self.t;
            while self.p.out_of_work(self.t, self.work) == Idle::Poll {
                self.t += US;
            }
            self.t - start
        }
    }

    /// Busy-waits `d`: work that keeps the loop's thread running.
    fn work_for(d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            std::hint::spin_loop();
        }
    }

    /// A real runtime with the hooks: fed commands that keep it busy with short gaps, it
    /// polls; left alone, it sleeps.
    #[test]
    fn a_runtime_polls_under_load_and_sleeps_when_idle() {
        let stats = Arc::new(crate::metrics::Metrics::new().event_loop_stats());
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        // The longest window, and commands of 50 µs: the loop stays well over half busy even
        // when the client's thread is slow to run on a loaded machine.
        let rt = install(
            &mut builder,
            Duration::from_micros(MAX_WINDOW_US),
            stats.clone(),
        )
        .build()
        .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
        let (ack_tx, ack_rx) = std::sync::mpsc::channel::<()>();
        // The client: one command at a time, the next a few microseconds after the answer;
        // then a pause, then one last command (`true`).
        let client = std::thread::spawn(move || {
            for _ in 0..3_000 {
                tx.send(false).unwrap();
                ack_rx.recv().unwrap();
                work_for(Duration::from_micros(2));
            }
            ack_rx.recv_timeout(Duration::from_millis(10)).unwrap_err();
            tx.send(true).unwrap();
        });
        let (polls_under_load, sleeps_before_pause, sleeps_after_pause) = rt.block_on(async {
            tokio::spawn(poke());
            let mut sleeps_before_pause = 0;
            while let Some(last) = rx.recv().await {
                note_work();
                if last {
                    break;
                }
                // The command's work: the loop is busy most of the time.
                work_for(Duration::from_micros(50));
                sleeps_before_pause = stats.sleeps.get();
                ack_tx.send(()).unwrap();
            }
            (
                stats.idle_polls.get(),
                sleeps_before_pause,
                stats.sleeps.get(),
            )
        });
        client.join().unwrap();
        assert!(polls_under_load > 0, "the busy loop never polled");
        assert!(
            sleeps_after_pause > sleeps_before_pause,
            "the loop did not sleep through a 10 ms pause"
        );
    }

    #[test]
    fn cpu_quotas() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("400000 100000"), Some(4.0));
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("150000\n", "100000\n"), Some(1.5));
        // One loop needs two cores of quota: one for it, one for the rest.
        assert_eq!(default_window(1, None), DEFAULT_WINDOW);
        assert_eq!(default_window(1, Some(2.0)), DEFAULT_WINDOW);
        assert_eq!(default_window(1, Some(1.5)), Duration::ZERO);
        assert_eq!(default_window(2, Some(2.5)), Duration::ZERO);
    }

    #[test]
    fn a_fresh_loop_sleeps() {
        let mut sim = Sim::new();
        assert_eq!(sim.p.out_of_work(sim.t + US, 1), Idle::Sleep);
    }

    #[test]
    fn a_busy_loop_polls_through_short_gaps() {
        let mut sim = Sim::new();
        // 8 µs of work, 3 µs gaps: ~73 % busy. It starts sleeping, then polls.
        sim.run(8 * US, 3 * US, 500);
        let (_, sleeps) = sim.run(8 * US, 3 * US, 500);
        assert_eq!(sleeps, 0, "utilisation {}", sim.p.utilisation());
        assert!(sim.p.utilisation() > 0.6);
    }

    #[test]
    fn a_loop_under_half_busy_sleeps_every_time() {
        let mut sim = Sim::new();
        // 5 µs of work, 10 µs gaps: a third busy. Gaps shorter than the window, still no poll.
        let (_, sleeps) = sim.run(5 * US, 10 * US, 1000);
        assert_eq!(sleeps, 1000);
        assert!(sim.p.utilisation() < 0.5);
    }

    #[test]
    fn an_idle_stretch_polls_at_most_one_window() {
        let mut sim = Sim::busy();
        // The work stops: polls for under 20 µs, then sleeps.
        let polled = sim.last_batch();
        assert!(polled <= 20 * US, "{polled:?}");
        assert!(polled >= 19 * US, "{polled:?}");
    }

    #[test]
    fn polling_time_counts_as_idle_and_turns_polling_off() {
        let mut sim = Sim::busy();
        assert!(sim.p.utilisation() > 0.7);
        // The load falls: 2 µs of work every 19 µs, each gap polled through (under the
        // window). The polled time is idle time, so the loop soon stops polling.
        let (last, sleeps) = sim.run(2 * US, 19 * US, 1000);
        assert_eq!(last, Idle::Sleep);
        assert!(sleeps > 900, "{sleeps}");
        assert!(sim.p.utilisation() < 0.5);
    }

    #[test]
    fn a_long_sleep_is_idle_time() {
        let mut sim = Sim::busy();
        sim.last_batch();
        sim.t += Duration::from_millis(50);
        sim.p.woke(sim.t);
        // One request after a long sleep: not busy, so no polling.
        sim.t += 8 * US;
        assert_eq!(sim.p.out_of_work(sim.t, sim.work + 1), Idle::Sleep);
    }
}
