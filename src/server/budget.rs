//! [`ConnectionBudget`]: one bound on the memory of every connection's buffers together
//! (input and output, both doors), beside each connection's own bounds.
//!
//! Why: each connection's buffers are bounded (`resp.max_pending_reply_bytes`, the HTTP fast
//! path's pending answers, the longest command or head), but ten thousand connections each at
//! their bound are gigabytes. So growth is also admitted against a process-wide budget
//! (`server.connection_buffer_budget`):
//!
//! - Each connection keeps a [`BufferAccount`] of the capacity its buffers hold, and tells the
//!   budget only when that changes: one atomic add per growth or shrink, not per byte or per
//!   request.
//! - Before a buffer grows, the door asks [`BufferAccount::try_grow`], which reserves the new
//!   capacity only if the total stays within the budget. When it does not, the connection
//!   stops executing (and reading) requests and writes what it has first: backpressure, which
//!   TCP carries to a client that pipelines without reading. A connection's base buffers (a
//!   few KiB, allocated when it opens) are always granted and counted, so that a connection
//!   can always make progress.
//! - A buffer that grew past a threshold is replaced by a small one once drained, and every
//!   buffer is returned on close. glibc keeps freed memory in its arenas (the process's
//!   resident memory stayed at its peak after thousands of connections closed: measured in
//!   docs/benchmarks.md, "Connection memory"), so after a large release the budget asks it
//!   to give free pages back (`malloc_trim`), at most once per [`TRIM_INTERVAL`].

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};

/// Bytes released since the last trim that make another trim worth its cost.
const TRIM_AFTER_BYTES: usize = 32 * 1024 * 1024;
/// Fewest time between two trims (a trim walks the allocator's arenas: milliseconds).
pub const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// The series the budget keeps up to date.
#[derive(Clone)]
pub struct BudgetMetrics {
    /// Bytes of connection buffers held now.
    pub held: IntGauge,
    /// The most ever held at once.
    pub peak: IntGauge,
    /// The budget itself.
    pub limit: IntGauge,
    /// Times a connection stopped reading because the budget was exhausted.
    pub backpressure: IntCounter,
    /// Connections closed because the budget was exhausted and they did not read their
    /// replies (or needed more input buffer than was left).
    pub closed: IntCounter,
    /// Times the allocator was asked to return freed memory.
    pub trims: IntCounter,
}

/// The memory budget of every connection's buffers together. Shared by the doors of one
/// server.
pub struct ConnectionBudget {
    limit: usize,
    held: AtomicUsize,
    peak: AtomicUsize,
    released_since_trim: AtomicUsize,
    /// Milliseconds since [`epoch`] of the last trim.
    last_trim_ms: AtomicU64,
    /// A trim is scheduled for the end of the current interval (the release that asked
    /// for it came too soon after the last one).
    trim_pending: std::sync::atomic::AtomicBool,
    metrics: Option<BudgetMetrics>,
}

impl fmt::Debug for ConnectionBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionBudget")
            .field("limit", &self.limit)
            .field("held", &self.held())
            .finish()
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl ConnectionBudget {
    /// A budget of `limit` bytes, reporting to `metrics` when given.
    pub fn new(limit: usize, metrics: Option<BudgetMetrics>) -> Self {
        if let Some(m) = &metrics {
            m.limit.set(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        Self {
            limit,
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            released_since_trim: AtomicUsize::new(0),
            last_trim_ms: AtomicU64::new(0),
            trim_pending: std::sync::atomic::AtomicBool::new(false),
            metrics,
        }
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of connection buffers held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// The most ever held at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Whether the buffers already hold the whole budget or more.
    pub fn exhausted(&self) -> bool {
        self.held() >= self.limit
    }

    /// Counts a connection that stopped reading because the budget is exhausted.
    pub fn note_backpressure(&self) {
        if let Some(m) = &self.metrics {
            m.backpressure.inc();
        }
    }

    /// Counts a connection closed because of the budget.
    pub fn note_closed(&self) {
        if let Some(m) = &self.metrics {
            m.closed.inc();
        }
    }

    /// Adds `bytes` unconditionally (a connection's base buffers, or growth already made).
    fn add(&self, bytes: usize) {
        let now = self.held.fetch_add(bytes, Ordering::AcqRel) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
        self.report(now);
    }

    /// Adds `bytes` if the total stays within the budget.
    fn try_add(&self, bytes: usize) -> bool {
        let mut cur = self.held.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(bytes).filter(|&n| n <= self.limit) else {
                return false;
            };
            match self
                .held
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    self.report(next);
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn sub(self: &Arc<Self>, bytes: usize) {
        let now = self.held.fetch_sub(bytes, Ordering::AcqRel) - bytes;
        self.report(now);
        let released = self.released_since_trim.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if released >= TRIM_AFTER_BYTES {
            self.maybe_trim();
        }
    }

    fn report(&self, held: usize) {
        if let Some(m) = &self.metrics {
            m.held.set(i64::try_from(held).unwrap_or(i64::MAX));
            m.peak.set(i64::try_from(self.peak()).unwrap_or(i64::MAX));
        }
    }

    /// Asks the allocator to return freed memory to the system, at most once per
    /// [`TRIM_INTERVAL`], on a blocking thread (a trim takes milliseconds).
    fn maybe_trim(self: &Arc<Self>) {
        let now_ms = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_trim_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < TRIM_INTERVAL.as_millis() as u64 {
            // Too soon: trim at the end of the interval instead (once), so that the last
            // large release of a burst is given back too.
            if !self.trim_pending.swap(true, Ordering::AcqRel) {
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let me = self.clone();
                    rt.spawn(async move {
                        tokio::time::sleep(TRIM_INTERVAL).await;
                        me.trim_pending.store(false, Ordering::Release);
                        me.maybe_trim();
                    });
                } else {
                    self.trim_pending.store(false, Ordering::Release);
                }
            }
            return;
        }
        if self
            .last_trim_ms
            .compare_exchange(last, now_ms.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return; // another connection is trimming
        }
        self.released_since_trim.store(0, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.trims.inc();
        }
        let trim = || {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only returns free pages of the allocator's arenas to the
            // system; it takes the arenas' locks itself and touches no live allocation.
            unsafe {
                libc::malloc_trim(0);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(trim)),
            Err(_) => trim(),
        }
    }
}

/// What one connection's buffers hold, as told to the budget. Returns it all when dropped.
pub struct BufferAccount {
    budget: Arc<ConnectionBudget>,
    held: usize,
}

impl BufferAccount {
    /// An account of `base` bytes (the buffers a connection opens with, always granted).
    pub fn open(budget: Arc<ConnectionBudget>, base: usize) -> Self {
        budget.add(base);
        Self { budget, held: base }
    }

    /// The budget this account draws on.
    pub fn budget(&self) -> &ConnectionBudget {
        &self.budget
    }

    /// Records that the buffers hold `bytes` now (after a growth that was not reserved, or
    /// a shrink). One atomic add when it changed, nothing otherwise.
    #[inline]
    pub fn hold(&mut self, bytes: usize) {
        if bytes != self.held {
            self.change(bytes);
        }
    }

    #[cold]
    fn change(&mut self, bytes: usize) {
        if bytes > self.held {
            self.budget.add(bytes - self.held);
        } else {
            self.budget.sub(self.held - bytes);
        }
        self.held = bytes;
    }

    /// Reserves `more` bytes of growth if the budget has room for them; false otherwise (the
    /// caller writes what it has before growing).
    pub fn try_grow(&mut self, more: usize) -> bool {
        if self.budget.try_add(more) {
            self.held += more;
            true
        } else {
            false
        }
    }
}

impl Drop for BufferAccount {
    fn drop(&mut self) {
        if self.held > 0 {
            self.budget.sub(self.held);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_admitted_within_the_budget_and_everything_returns_on_close() {
        let budget = Arc::new(ConnectionBudget::new(100, None));
        let mut a = BufferAccount::open(budget.clone(), 30);
        let mut b = BufferAccount::open(budget.clone(), 30);
        assert!(a.try_grow(40));
        assert_eq!(budget.held(), 100);
        assert!(budget.exhausted());
        assert!(!b.try_grow(1), "nothing left");
        a.hold(50); // drained and shrunk
        assert!(b.try_grow(20));
        assert_eq!(budget.peak(), 100);
        drop(a);
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
