//! The cluster's metrics: every series the membership, the counter plane and the revocation
//! plane export, registered in the node's one registry (so `/metrics` shows them beside the
//! rest) when the cluster starts. A node alone registers none of them.
//!
//! Each plane increments its own counters directly (a relaxed atomic add each); gauges that
//! mirror a state owned elsewhere (live peers, remote counts held) are set by the driver on
//! each interval.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The planes a datagram or a drop is counted for (`plane` label).
pub const PLANES: [&str; 3] = ["membership", "counter", "revocation"];

/// Every series of the cluster layer. Cloning shares the series.
#[derive(Clone)]
pub struct ClusterMetrics {
    /// `tollgate_cluster_peers{state}`: peers by state (`alive`, `suspect`, `down`).
    pub peers: IntGaugeVec,
    /// `tollgate_cluster_datagrams_total{plane,direction}`: datagrams (UDP) or frames (TCP)
    /// sent (`out`) and accepted (`in`).
    pub datagrams: IntCounterVec,
    /// `tollgate_cluster_bytes_total{plane,direction}`: their bytes.
    pub bytes: IntCounterVec,
    /// `tollgate_cluster_dropped_total{plane,reason}`: what was received and dropped, by
    /// reason (the wire's drop labels, and `unknown_sender`, `old_generation`, `own_generation`,
    /// `config_mismatch`, …).
    pub dropped: IntCounterVec,
    /// `tollgate_cluster_merge_lag_seconds`: from a counter datagram's send time to its merge.
    pub merge_lag: Histogram,
    /// `tollgate_cluster_snapshot_transfers_total{plane,direction}`: snapshots sent to a
    /// joining peer (`out`) and received on joining (`in`); for the counter plane also
    /// `relayed`: one per joining peer and dead (node, generation) whose counts it was
    /// relayed.
    pub snapshot_transfers: IntCounterVec,
    /// `tollgate_cluster_remote_cells_evicted_total`: remote counts lost to the memory cap.
    pub remote_cells_evicted: IntCounter,
    /// `tollgate_cluster_remote_cells`: remote counts held.
    pub remote_cells: IntGauge,
    /// `tollgate_cluster_config_mismatches_total`: peer generations seen with another limit
    /// configuration (counted once each; their counts are not merged).
    pub config_mismatches: IntCounter,
    /// `tollgate_cluster_cells_published_total`: own cells sent (each once per interval,
    /// whatever the number of peers).
    pub cells_published: IntCounter,
    /// `tollgate_cluster_cells_deferred_total`: changed cells held back by the per-interval
    /// budget (sent at a later interval).
    pub cells_deferred: IntCounter,
    /// `tollgate_cluster_revocations_total{event}`: `pushed` (to one peer), `acked`,
    /// `retried`, `received`, `repaired` (learnt by digest repair or the join fetch).
    pub revocations: IntCounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: T) -> T {
    // A cluster starts once per registry: a second registration is a bug, but not one worth
    // losing a node over, so it keeps the unregistered series.
    let _ = registry.register(Box::new(c.clone()));
    c
}

impl ClusterMetrics {
    /// The series, registered in `registry`.
    pub fn new(registry: &Registry) -> Self {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("static definition"),
            )
        };
        let m = Self {
            peers: register(
                registry,
                IntGaugeVec::new(
                    Opts::new("tollgate_cluster_peers", "Peers by membership state."),
                    &["state"],
                )
                .expect("static definition"),
            ),
            datagrams: counter_vec(
                "tollgate_cluster_datagrams_total",
                "Cluster datagrams (and revocation frames) sent and accepted, by plane.",
                &["plane", "direction"],
            ),
            bytes: counter_vec(
                "tollgate_cluster_bytes_total",
                "Bytes of cluster datagrams (and revocation frames) sent and accepted, by plane.",
                &["plane", "direction"],
            ),
            dropped: counter_vec(
                "tollgate_cluster_dropped_total",
                "Cluster datagrams and frames received and dropped, by plane and reason.",
                &["plane", "reason"],
            ),
            merge_lag: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "tollgate_cluster_merge_lag_seconds",
                        "Time from a counter datagram's send to its merge here.",
                    )
                    .buckets(vec![
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ]),
                )
                .expect("static definition"),
            ),
            snapshot_transfers: counter_vec(
                "tollgate_cluster_snapshot_transfers_total",
                "Snapshots sent to joining peers and received on joining, by plane.",
                &["plane", "direction"],
            ),
            remote_cells_evicted: register(
                registry,
                IntCounter::new(
                    "tollgate_cluster_remote_cells_evicted_total",
                    "Counts of other nodes lost to the memory cap (errs towards admitting).",
                )
                .expect("static definition"),
            ),
            remote_cells: register(
                registry,
                IntGauge::new(
                    "tollgate_cluster_remote_cells",
                    "Counts of other nodes held (one per cell and node generation).",
                )
                .expect("static definition"),
            ),
            config_mismatches: register(
                registry,
                IntCounter::new(
                    "tollgate_cluster_config_mismatches_total",
                    "Peer generations seen with a different limit configuration (not merged).",
                )
                .expect("static definition"),
            ),
            cells_published: register(
                registry,
                IntCounter::new(
                    "tollgate_cluster_cells_published_total",
                    "Own cells published to peers.",
                )
                .expect("static definition"),
            ),
            cells_deferred: register(
                registry,
                IntCounter::new(
                    "tollgate_cluster_cells_deferred_total",
                    "Changed cells held back to a later interval by the per-interval budget.",
                )
                .expect("static definition"),
            ),
            revocations: counter_vec(
                "tollgate_cluster_revocations_total",
                "Revocation plane events: pushed, acked, retried, received, repaired.",
                &["event"],
            ),
        };
        // Every series exists from the start, so alerts can be written on them.
        for plane in PLANES {
            for direction in ["in", "out"] {
                m.datagrams.with_label_values(&[plane, direction]);
                m.bytes.with_label_values(&[plane, direction]);
            }
        }
        for state in ["alive", "suspect", "down"] {
            m.peers.with_label_values(&[state]);
        }
        for event in ["pushed", "acked", "retried", "received", "repaired"] {
            m.revocations.with_label_values(&[event]);
        }
        m
    }

    /// The datagram and byte counters of `plane`, resolved once: a plane that counts every
    /// datagram keeps them rather than look its labels up each time.
    pub fn traffic(&self, plane: &str) -> PlaneTraffic {
        PlaneTraffic {
            datagrams_out: self.datagrams.with_label_values(&[plane, "out"]),
            bytes_out: self.bytes.with_label_values(&[plane, "out"]),
            datagrams_in: self.datagrams.with_label_values(&[plane, "in"]),
            bytes_in: self.bytes.with_label_values(&[plane, "in"]),
        }
    }

    /// Counts one datagram of `plane` dropped for `reason`.
    pub fn drop(&self, plane: &str, reason: &str) {
        self.dropped.with_label_values(&[plane, reason]).inc();
    }
}

/// One plane's share of `tollgate_cluster_datagrams_total` and `tollgate_cluster_bytes_total`
/// ([`ClusterMetrics::traffic`]).
#[derive(Clone)]
pub struct PlaneTraffic {
    datagrams_out: IntCounter,
    bytes_out: IntCounter,
    datagrams_in: IntCounter,
    bytes_in: IntCounter,
}

impl PlaneTraffic {
    /// Counts one datagram (or frame) sent, of `len` bytes.
    pub fn sent(&self, len: usize) {
        self.datagrams_out.inc();
        self.bytes_out.inc_by(len as u64);
    }

    /// Counts one datagram (or frame) accepted, of `len` bytes.
    pub fn received(&self, len: usize) {
        self.datagrams_in.inc();
        self.bytes_in.inc_by(len as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Encoder;

    #[test]
    fn every_series_is_registered_and_counts() {
        let r = Registry::new();
        let m = ClusterMetrics::new(&r);
        m.traffic("counter").sent(100);
        m.traffic("membership").received(40);
        m.drop("counter", "bad_mac");
        let text = {
            let mut buf = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&r.gather(), &mut buf)
                .unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert!(
            text.contains("tollgate_cluster_bytes_total{direction=\"out\",plane=\"counter\"} 100")
        );
        assert!(
            text.contains("tollgate_cluster_dropped_total{plane=\"counter\",reason=\"bad_mac\"} 1")
        );
        assert!(text.contains("tollgate_cluster_peers{state=\"suspect\"} 0"));
    }
}
