//! Which open connections are idle, and since when: at the connection cap the accept loop
//! closes the connection that has been idle longest to make room for a new one
//! ([`Occupancy::evict_oldest_idle`]).
//!
//! Why: a cap that only refuses lets anyone who can open sockets lock everyone else out by
//! holding connections that send nothing. Idle connections (a keep-alive connection waiting
//! for its next request, a fresh one that has sent nothing yet) are the cheapest to lose: the
//! client has nothing outstanding and reconnects. A connection in the middle of a request or
//! of its answer (a partial head or command read, a reply being written) is never evicted.
//!
//! Each connection has one [`Presence`]: an atomic word that is either busy, evicted, or the
//! instant it became idle. The door marks it idle only when a read would wait
//! ([`Presence::idle_until_evicted`] is polled only then, after the read), and busy again
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

/// One connection's state word, and how it is woken when evicted.
#[derive(Default)]
struct Entry {
    /// [`BUSY`], [`EVICTED`], or the instant it became idle ([`stamp`]).
    state: AtomicU64,
    evicted: Notify,
}

/// Nanoseconds since the first call in this process, plus one: a word that is neither
/// [`BUSY`] nor [`EVICTED`], and orders connections by when they became idle.
fn stamp() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let nanos = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(nanos)
        .unwrap_or(EVICTED - 1)
        .clamp(1, EVICTED - 1)
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
        }
    }

    /// Tells the connection that has been idle longest to close. False when no connection
    /// is idle (every one is busy, or already evicted and closing).
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
                    .min_by_key(|(since, _)| *since)
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

    /// Connections idle now (for tests and diagnostics; scans every connection).
    pub fn idle(&self) -> usize {
        let e = self.entries.lock();
        e.slots
            .iter()
            .flatten()
            .filter(|entry| {
                let s = entry.state.load(Ordering::Relaxed);
                s != BUSY && s != EVICTED
            })
            .count()
    }
}

/// One open connection's place in its [`Occupancy`]; leaves it when dropped.
pub struct Presence {
    registry: Arc<Occupancy>,
    index: usize,
    entry: Arc<Entry>,
}

impl Presence {
    /// Marks the connection idle (since now, unless it already was) and resolves once it is
    /// evicted. Poll it only while the connection waits for bytes with nothing half-read,
    /// and call [`busy`](Self::busy) when bytes arrive.
    pub async fn idle_until_evicted(&self) {
        let _ =
            self.entry
                .state
                .compare_exchange(BUSY, stamp(), Ordering::AcqRel, Ordering::Relaxed);
        self.entry.evicted.notified().await
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

    fn futures_poll<F: std::future::Future>(
        f: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        let waker = std::task::Waker::noop();
        f.poll(&mut std::task::Context::from_waker(waker))
    }
}
