//! The cluster: the sidecars of one deployment sharing their counters and revocations by
//! gossip, so that they act as one limiter and one revocation list without a central store
//! (docs/cluster.md). Off unless `[cluster] enabled`.
//!
//! - [`membership`]: who the live peers are and the few values each publishes, behind a
//!   trait of tollgate's, with a deterministic in-memory network for tests and simulation.

pub mod membership;
