//! The cluster layer: the sidecars of one deployment sharing their counters and revocations
//! by gossip, so that they act as one limiter and one revocation list without a central store
//! (docs/cluster.md). Off unless `[cluster] enabled`.
//!
//! In the manner of limitador's `storage/distributed`: every node keeps counting locally in
//! its own [`crate::limiter::Limiter`], which stays the only place a decision is made; this
//! layer only carries counts between nodes. Each node publishes the *absolute* values of its
//! own changed cells ([`crate::limiter::Limiter::drain_changed_cells`]) to its peers, and
//! merges what its peers publish into a slot of their own
//! ([`crate::limiter::Limiter::merge_cell`]) by taking the maximum, so that loss,
//! duplication and reordering of what is sent cost only staleness, never a wrong count.
//!
//! It sits above the limiter and beside the gate: it imports the limiter's cell types, and
//! nothing below it (limiter, policy, config, auth) imports it.
//!
//! - [`counter_plane`]: what this node publishes of its own counts (changed cells at or
//!   above a threshold, closest to their limit first, within a budget per interval; a
//!   snapshot to each new peer) and how it merges its peers' (one slot per node generation),
//!   sans-I/O: the driver gives it the time, the peers and the datagrams.
//! - [`membership`]: who the live peers are and the few values each publishes, behind a
//!   trait of tollgate's, with a deterministic in-memory network for tests and simulation.
//! - [`swim`]: that trait on the `foca` crate's SWIM failure detector, as a state machine
//!   without I/O (the driver hands it datagrams and timers; it answers with datagrams to
//!   send and timers to set), each node's values spread as foca broadcasts, every datagram
//!   signed under the cluster secret.
//! - [`wire`]: the counter plane's datagram — its layout, its MAC under the cluster secret,
//!   an encoder that packs cells into datagrams of at most
//!   [`wire::MAX_DATAGRAM_BYTES`], and a decoder that refuses anything else with a reason.
//!   Pure: no sockets, no clock.
//! - [`revocation_plane`]: revocations pushed to every live peer at once and acknowledged,
//!   repaired by digest, and fetched by a joining node before it is ready; over TCP on the
//!   gossip address, every frame authenticated.

pub mod counter_plane;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod revocation_plane;
pub mod status;
pub mod swim;
pub mod wire;
