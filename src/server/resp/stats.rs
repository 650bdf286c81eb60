//! The counters `INFO stats` reports, sharded so that connections on different cores do not
//! share a cache line, and [`BatchCounts`], one batch's counts, which a connection adds to
//! its shard once per batch.

use std::sync::atomic::{AtomicU64, Ordering};

/// Shards of the `INFO` counters. A connection always adds to the same shard (by its id),
/// once per batch; each shard sits on its own 128 bytes (a cache line and the one the CPU
/// prefetches with it), so two connections on different cores rarely touch the same line,
/// where one shared counter would bounce between cores on every unpipelined command
/// (measured with benches/resp.sh; docs/benchmarks.md).
const STAT_SHARDS: usize = 16;

/// One shard of the counters `INFO` reports.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(super) struct StatShard {
    pub(super) commands: AtomicU64,
    pub(super) checks_allowed: AtomicU64,
    pub(super) checks_denied: AtomicU64,
    pub(super) command_errors: AtomicU64,
    pub(super) protocol_errors: AtomicU64,
    pub(super) auth_failures: AtomicU64,
    pub(super) verifies_allowed: AtomicU64,
    pub(super) verifies_refused: AtomicU64,
    pub(super) revocations: AtomicU64,
}

/// Counters `INFO` reports.
#[derive(Debug)]
pub(super) struct RespStats {
    pub(super) connections: AtomicU64,
    shards: [StatShard; STAT_SHARDS],
}

impl Default for RespStats {
    fn default() -> Self {
        Self {
            connections: AtomicU64::new(0),
            shards: std::array::from_fn(|_| StatShard::default()),
        }
    }
}

/// One batch's counts, kept in the connection until the batch ends.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct BatchCounts {
    pub(super) commands: u64,
    pub(super) checks_allowed: u64,
    pub(super) checks_denied: u64,
    pub(super) command_errors: u64,
    pub(super) protocol_errors: u64,
    pub(super) auth_failures: u64,
    pub(super) verifies_allowed: u64,
    pub(super) verifies_refused: u64,
    pub(super) revocations: u64,
}

impl RespStats {
    /// Adds one batch's counts of connection `id`.
    pub(super) fn add(&self, id: u64, c: &BatchCounts) {
        let shard = &self.shards[id as usize % STAT_SHARDS];
        let add = |a: &AtomicU64, n: u64| {
            if n > 0 {
                a.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&shard.commands, c.commands);
        add(&shard.checks_allowed, c.checks_allowed);
        add(&shard.checks_denied, c.checks_denied);
        add(&shard.command_errors, c.command_errors);
        add(&shard.protocol_errors, c.protocol_errors);
        add(&shard.auth_failures, c.auth_failures);
        add(&shard.verifies_allowed, c.verifies_allowed);
        add(&shard.verifies_refused, c.verifies_refused);
        add(&shard.revocations, c.revocations);
    }

    /// One counter summed over the shards.
    pub(super) fn total(&self, field: impl Fn(&StatShard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .sum()
    }
}
