//! Which open connections are waiting for their client, and since when: at the connection
//! cap the accept loop closes the connection that has been idle longest to make room for a
//! new one ([`Occupancy::evict_oldest_idle`]).
//!
//! Why: a cap that only refuses lets anyone who can open sockets lock everyone else out by
//! holding connections that send nothing, or send a request a byte at a time. Idle
//! connections (a keep-alive connection waiting for its next request, a fresh one that has
//! sent nothing yet) are the cheapest to lose: the client has nothing outstanding and
//! reconnects. So they go first, the oldest first. Only when none is idle does a **stalled**
//! connection go: one whose client sent part of a request (a partial head or command) and
//! then made it wait, the one whose request has been in progress longest first — that is what
//! a slow-sending attack holds, and a real client whose request takes that long at a full
//! cap is the least harmed by a retry. A connection whose request is complete (being
//! decided, or its answer written) is never evicted.
//!
//! Each connection has one [`Presence`]: an atomic word that is either busy, evicted, or the
//! instant it began waiting (with a bit that says stalled). The door marks it waiting only
//! when a read would wait ([`Presence::idle_until_evicted`] or
//! [`Presence::stalled_until_evicted`] is polled only then, after the read), and busy again
//! when bytes arrive ([`Presence::busy`]: one relaxed load when it is already busy), so a
//! pipelined connection pays nothing per request. The registry's lock is taken when a
//! connection opens or closes, and by an eviction, which scans the open connections: that
//! happens only at the cap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::Notify;

/// The state word of a connection that is serving (or has not yet waited for a read).
const BUSY: u64 = 0;
/// The state word of a connection chosen for eviction: it closes at its next look.
const EVICTED: u64 = u64::MAX;
/// Set in the state word of a waiting connection with part of a request read: evicted only
/// when no connection is idle.
const STALLED: u64 = 1 << 62;

/// One connection's state word, and how it is woken when evicted.
#[derive(Default)]
struct Entry {
    /// [`BUSY`], [`EVICTED`], or the instant it began waiting ([`stamp`]), with [`STALLED`]
    /// when part of a request has been read.
    state: AtomicU64,
    evicted: Notify,
}

/// Nanoseconds since the first call in this process, plus one: a word that is neither
/// [`BUSY`] nor [`EVICTED`] and has no [`STALLED`] bit, and orders connections by when they
/// began waiting.
fn stamp() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let nanos = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(nanos)
        .unwrap_or(STALLED - 1)
        .clamp(1, STALLED - 1)
}

/// The eviction order of a waiting connection's state word: idle before stalled, then the
/// one waiting (or, stalled, with its request in progress) longest.
fn eviction_order(state: u64) -> (bool, u64) {
    (state & STALLED != 0, state & !STALLED)
}

/// The open connections of one connection cap, and which of them are idle.
#[derive(Default)]
pub struct Occupancy {
    entries: parking_lot::Mutex<Entries>,
}

/// A slab: a connection's index stays valid until it closes, and freed indexes are reused.
#[derive(Default)]
struct Entries {
    slots: Vec<Option<Arc<Entry>>>,
    free: Vec<usize>,
}

impl Occupancy {
    /// Registers a connection that has just been accepted (busy until it first waits).
    pub fn register(self: &Arc<Self>) -> Presence {
        let entry = Arc::new(Entry::default());
        let mut e = self.entries.lock();
        let index = match e.free.pop() {
            Some(i) => {
                e.slots[i] = Some(entry.clone());
                i
            }
            None => {
                e.slots.push(Some(entry.clone()));
                e.slots.len() - 1
            }
        };
        drop(e);
        Presence {
            registry: self.clone(),
            index,
            entry,
            stalled_since: AtomicU64::new(0),
        }
    }

    /// Tells the connection that has been idle longest to close, or, when none is idle, the
    /// stalled one whose request has been in progress longest. False when no connection is
    /// waiting (every one is busy, or already evicted and closing).
    pub fn evict_oldest_idle(&self) -> bool {
        // A connection that becomes busy between the scan and the exchange is skipped: the
        // next scan sees it busy.
        for _ in 0..8 {
            let oldest = {
                let e = self.entries.lock();
                e.slots
                    .iter()
                    .flatten()
                    .filter_map(|entry| {
                        let s = entry.state.load(Ordering::Relaxed);
                        (s != BUSY && s != EVICTED).then(|| (s, entry.clone()))
                    })
                    .min_by_key(|(state, _)| eviction_order(*state))
            };
            let Some((since, entry)) = oldest else {
                return false;
            };
            if entry
                .state
                .compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                entry.evicted.notify_one();
                return true;
            }
        }
        false
    }

    /// Connections idle now, not counting stalled ones (for tests and diagnostics; scans
    /// every connection).
    pub fn idle(&self) -> usize {
        self.count(|s| s & STALLED == 0)
    }

    /// Connections stalled now: part of a request read, waiting for the rest (for tests and
    /// diagnostics; scans every connection).
    pub fn stalled(&self) -> usize {
        self.count(|s| s & STALLED != 0)
    }

    fn count(&self, waiting: impl Fn(u64) -> bool) -> usize {
        let e = self.entries.lock();
        e.slots
            .iter()
            .flatten()
            .filter(|entry| {
                let s = entry.state.load(Ordering::Relaxed);
                s != BUSY && s != EVICTED && waiting(s)
            })
            .count()
    }
}

/// One open connection's place in its [`Occupancy`]; leaves it when dropped.
pub struct Presence {
    registry: Arc<Occupancy>,
    index: usize,
    entry: Arc<Entry>,
    /// When the request now half-read began to wait ([`stamp`]), or 0: a stalled
    /// connection's place in the eviction order is kept while its bytes trickle in.
    stalled_since: AtomicU64,
}

impl Presence {
    /// Marks the connection idle (since now, unless it already was) and resolves once it is
    /// evicted. Poll it only while the connection waits for bytes with nothing half-read,
    /// and call [`busy`](Self::busy) when bytes arrive.
    pub async fn idle_until_evicted(&self) {
        self.stalled_since.store(0, Ordering::Relaxed);
        let _ =
            self.entry
                .state
                .compare_exchange(BUSY, stamp(), Ordering::AcqRel, Ordering::Relaxed);
        self.entry.evicted.notified().await
    }

    /// Marks the connection stalled (part of a request read, waiting for the rest) since the
    /// request first waited, and resolves once it is evicted. Poll it only while the
    /// connection waits for bytes with part of a request read, and call
    /// [`busy`](Self::busy) when bytes arrive. A client that sends its request a byte at a
    /// time keeps the place of the request's first wait, not of its last byte.
    pub async fn stalled_until_evicted(&self) {
        let since = match self.stalled_since.load(Ordering::Relaxed) {
            0 => {
                let now = stamp();
                self.stalled_since.store(now, Ordering::Relaxed);
                now
            }
            since => since,
        };
        let _ = self.entry.state.compare_exchange(
            BUSY,
            since | STALLED,
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        self.entry.evicted.notified().await
    }

    /// [`idle_until_evicted`](Self::idle_until_evicted) when nothing is half-read, else
    /// [`stalled_until_evicted`](Self::stalled_until_evicted).
    pub async fn waiting_until_evicted(&self, half_read: bool) {
        if half_read {
            self.stalled_until_evicted().await
        } else {
            self.idle_until_evicted().await
        }
    }

    /// Marks the connection busy: bytes arrived. False when it was evicted meanwhile (then
    /// it must close without serving them).
    #[inline]
    pub fn busy(&self) -> bool {
        match self.entry.state.load(Ordering::Relaxed) {
            BUSY => true,
            EVICTED => false,
            _ => self.entry.state.swap(BUSY, Ordering::AcqRel) != EVICTED,
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        let mut e = self.registry.entries.lock();
        e.slots[self.index] = None;
        e.free.push(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_oldest_idle_connection_is_evicted_and_busy_ones_never() {
        let occupancy = Arc::new(Occupancy::default());
        let busy = occupancy.register();
        let old = occupancy.register();
        let young = occupancy.register();
        // Only a connection waiting for bytes is idle.
        assert!(!occupancy.evict_oldest_idle(), "no idle connection yet");
        let old_wait = tokio::spawn({
            let old = Arc::new(old);
            let o = old.clone();
            async move {
                o.idle_until_evicted().await;
                o
            }
        });
        while occupancy.idle() < 1 {
            tokio::task::yield_now().await;
        }
        let young_waiting = young.idle_until_evicted();
        tokio::pin!(young_waiting);
        assert!(futures_poll(young_waiting.as_mut()).is_pending());
        assert_eq!(occupancy.idle(), 2);
        assert!(occupancy.evict_oldest_idle());
        let old = old_wait.await.unwrap();
        assert!(!old.busy(), "an evicted connection learns it");
        assert!(futures_poll(young_waiting.as_mut()).is_pending());
        assert!(young.busy(), "bytes arrived: busy again");
        assert!(busy.busy());
        assert!(!occupancy.evict_oldest_idle(), "nothing idle is left");
        drop(old);
        assert_eq!(occupancy.entries.lock().free.len(), 1);
    }

    #[tokio::test]
    async fn stalled_connections_go_only_when_none_is_idle_the_longest_stalled_first() {
        let occupancy = Arc::new(Occupancy::default());
        let first = occupancy.register();
        let second = occupancy.register();
        let idle = occupancy.register();
        let mut first_wait = Box::pin(first.stalled_until_evicted());
        assert!(futures_poll(first_wait.as_mut()).is_pending());
        let second_wait = second.stalled_until_evicted();
        tokio::pin!(second_wait);
        assert!(futures_poll(second_wait.as_mut()).is_pending());
        // The first one's bytes trickle: busy (its wait ends, as the door's select does), then
        // stalled again, keeping its place.
        drop(first_wait);
        assert!(first.busy());
        let first_again = first.stalled_until_evicted();
        tokio::pin!(first_again);
        assert!(futures_poll(first_again.as_mut()).is_pending());
        let idle_wait = idle.idle_until_evicted();
        tokio::pin!(idle_wait);
        assert!(futures_poll(idle_wait.as_mut()).is_pending());
        assert_eq!((occupancy.idle(), occupancy.stalled()), (1, 2));

        // The idle one goes first although it began waiting last.
        assert!(occupancy.evict_oldest_idle());
        assert!(futures_poll(idle_wait.as_mut()).is_ready());
        // Then the stalled one whose request has waited longest, although its last byte came
        // after the other's.
        assert!(occupancy.evict_oldest_idle());
        assert!(futures_poll(first_again.as_mut()).is_ready());
        assert!(!first.busy());
        assert!(futures_poll(second_wait.as_mut()).is_pending());
        assert!(second.busy());
        assert!(!occupancy.evict_oldest_idle(), "nothing is waiting");
    }

    fn futures_poll<F: std::future::Future>(
        f: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let waker = std::task::Waker::noop();
        f.poll(&mut std::task::Context::from_waker(waker))
    }
}
