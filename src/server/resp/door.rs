//! [`RespDoor`]: what every connection of one RESP server shares — the gate, the options,
//! the connection cap, the `INFO` counters — and the fan-out of the server's shutdown phases
//! to each connection.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::idle_poll::LoopStats;
use super::options::RespOptions;
use super::stats::RespStats;
use crate::gate::Gate;
use crate::server::budget::ConnectionBudget;
use crate::server::listener::{ConnectionSlots, Phase, Shutdown};

/// Every open connection's own phase channel, and the phase they were last told.
///
/// Why not let each connection watch the server's [`Shutdown`] directly: that channel is one
/// lock and one waiter list shared by every connection, and a connection consults it on every
/// round trip (is the server draining? wake me when it does), so on an unpipelined load each
/// command bounced those cache lines between cores. Here the server's phases are fanned out
/// once, by one task, to a channel per connection that only that connection polls.
#[derive(Default)]
pub(super) struct PhaseRegistry {
    phase: Option<Phase>,
    pub(super) conns: HashMap<u64, watch::Sender<Phase>>,
}

/// Unregisters a connection however its task ends.
pub(super) struct Registered<'a> {
    door: &'a DoorShared,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.door.phases.lock().conns.remove(&self.id);
    }
}

/// What every connection of one RESP server shares. Cheap to clone.
#[derive(Clone)]
pub struct RespDoor(pub(super) Arc<DoorShared>);

pub(super) struct DoorShared {
    pub(super) gate: Arc<Gate>,
    pub(super) options: RespOptions,
    pub(super) slots: Arc<ConnectionSlots>,
    /// The memory budget of every connection's buffers (shared with the HTTP door when the
    /// server runs both).
    pub(super) budget: Arc<ConnectionBudget>,
    pub(super) stats: RespStats,
    /// What the event-loop threads report (idle polling).
    pub(super) loops: Arc<LoopStats>,
    pub(super) started: Instant,
    pub(super) next_client_id: AtomicU64,
    /// The bound listeners, for `INFO` (filled in once bound).
    pub(super) listening: parking_lot::Mutex<Vec<String>>,
    pub(super) phases: parking_lot::Mutex<PhaseRegistry>,
    /// Set once a task fans the server's phases out to the connections.
    pub(super) following: std::sync::atomic::AtomicBool,
}

impl DoorShared {
    /// A phase channel for connection `id`, starting at the phase the door is in.
    pub(super) fn register(&self, id: u64) -> (Registered<'_>, watch::Receiver<Phase>) {
        let mut r = self.phases.lock();
        let (tx, rx) = watch::channel(r.phase.unwrap_or(Phase::Running));
        r.conns.insert(id, tx);
        (Registered { door: self, id }, rx)
    }

    /// Tells every connection (and every later one) that the server is now in `phase`.
    pub(super) fn broadcast(&self, phase: Phase) {
        let mut r = self.phases.lock();
        if r.phase.is_some_and(|p| p >= phase) {
            return;
        }
        r.phase = Some(phase);
        for tx in r.conns.values() {
            tx.send_replace(phase);
        }
    }
}

/// Fans the server's shutdown phases out to the door's connections (see [`PhaseRegistry`]).
pub(super) async fn follow_phases(door: RespDoor, shutdown: Shutdown) {
    shutdown.clone().draining().await;
    door.0.broadcast(Phase::Draining);
    shutdown.closing().await;
    door.0.broadcast(Phase::Closing);
}

impl RespDoor {
    /// A door deciding with `gate`, under `options`' bounds.
    pub fn new(gate: Arc<Gate>, options: RespOptions) -> Self {
        let slots = Arc::new(ConnectionSlots::new(options.max_connections));
        let loops = Arc::new(gate.metrics().event_loop_stats());
        let budget = options.budget.clone().unwrap_or_else(|| {
            Arc::new(ConnectionBudget::new(
                options.max_connection_buffer_bytes,
                Some(gate.metrics().connection_budget()),
            ))
        });
        Self(Arc::new(DoorShared {
            gate,
            options,
            slots,
            budget,
            stats: RespStats::default(),
            loops,
            started: Instant::now(),
            next_client_id: AtomicU64::new(1),
            listening: parking_lot::Mutex::new(Vec::new()),
            phases: parking_lot::Mutex::new(PhaseRegistry::default()),
            following: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// RESP connections open now.
    pub fn open_connections(&self) -> usize {
        self.0.slots.open()
    }

    /// The memory budget of the connections' buffers.
    pub fn budget(&self) -> &Arc<ConnectionBudget> {
        &self.0.budget
    }

    /// Which connections are idle (at the cap, the one idle longest makes room).
    pub fn occupancy(&self) -> &Arc<crate::server::occupancy::Occupancy> {
        self.0.slots.occupancy()
    }

    /// Resolves once no RESP connection is open.
    pub async fn all_closed(&self) {
        self.0.slots.all_closed().await
    }
}
