//! What a node says about its cluster: `GET /admin/cluster` on the admin API and
//! `INFO cluster` on RESP read it.
//!
//! The driver (`node.rs`) refreshes one [`ClusterReport`] every interval; a door reads the
//! latest copy, so a request never waits on the cluster's task, and at most one interval T
//! separates what it shows from the truth. Each door renders it in its own syntax (JSON,
//! INFO lines); what is in it is decided here.

use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::Serialize;

/// One node's view of its cluster, as the admin API and `INFO cluster` show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterReport {
    /// This node's name.
    pub node: String,
    /// This node's generation (a new one at every start).
    pub generation: u64,
    /// Where it gossips (UDP) and serves the revocation plane (TCP).
    pub gossip: String,
    /// Whether it has what it needs to answer: the live revocations of a peer (or, alone,
    /// the join timeout passed).
    pub ready: bool,
    /// Hash of its limit configuration, hex; peers with another do not merge its counts.
    pub config_hash: String,
    /// The gossip interval T, milliseconds.
    pub interval_ms: u64,
    /// The publish threshold θ for a limit of 1,000 at the current cluster size (θ depends
    /// on each limit: this one figure lets an operator see it move with N).
    pub threshold_per_1000: u64,
    /// Peers not down (this node not included).
    pub live_peers: usize,
    /// Every peer known, by name.
    pub peers: Vec<PeerReport>,
}

/// One peer, as this node sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerReport {
    pub name: String,
    /// `alive`, `suspect` or `down`.
    pub state: &'static str,
    pub generation: u64,
    /// Its gossip address.
    pub address: String,
    /// Milliseconds since this node last heard from it.
    pub last_heard_ms: u64,
    /// From its latest counter datagram's send time to its merge here, milliseconds; `None`
    /// before the first.
    pub merge_lag_ms: Option<u64>,
    /// Whether its limit configuration hash equals this node's (else its counts are not
    /// merged).
    pub config_match: bool,
    /// Whether it reports itself ready.
    pub ready: bool,
    /// Whether its revocation digest equals this node's.
    pub revocations_match: bool,
}

/// The latest report, shared by the driver (writer) and the doors (readers). Cloning
/// shares it.
#[derive(Debug, Clone, Default)]
pub struct ClusterStatus(Arc<RwLock<ClusterReport>>);

impl ClusterStatus {
    /// A status holding `report` until the first refresh.
    pub fn new(report: ClusterReport) -> Self {
        Self(Arc::new(RwLock::new(report)))
    }

    /// Replaces the report.
    pub fn set(&self, report: ClusterReport) {
        *self.0.write() = report;
    }

    /// A copy of the latest report.
    pub fn report(&self) -> ClusterReport {
        self.0.read().clone()
    }
}

impl ClusterReport {
    /// The report as `INFO cluster`'s lines (`key:value`, CRLF-ended; one `peerN:` line per
    /// peer, in the manner of Redis's `slaveN:` lines).
    pub fn info_lines(&self, out: &mut String) {
        let _ = write!(
            out,
            "cluster_enabled:1\r\nnode:{}\r\ngeneration:{}\r\ngossip:{}\r\ncluster_ready:{}\r\nconfig_hash:{}\r\ninterval_ms:{}\r\nthreshold_per_1000:{}\r\nlive_peers:{}\r\npeers:{}\r\n",
            self.node,
            self.generation,
            self.gossip,
            u8::from(self.ready),
            self.config_hash,
            self.interval_ms,
            self.threshold_per_1000,
            self.live_peers,
            self.peers.len(),
        );
        for (i, p) in self.peers.iter().enumerate() {
            let _ = write!(
                out,
                "peer{i}:name={},state={},generation={},address={},last_heard_ms={},merge_lag_ms={},config_match={},ready={},revocations_match={}\r\n",
                p.name,
                p.state,
                p.generation,
                p.address,
                p.last_heard_ms,
                p.merge_lag_ms.map_or_else(|| "-".to_string(), |l| l.to_string()),
                u8::from(p.config_match),
                u8::from(p.ready),
                u8::from(p.revocations_match),
            );
        }
    }
}

/// `INFO cluster` on a node without `[cluster] enabled`.
pub const INFO_DISABLED: &str = "cluster_enabled:0\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_list_the_node_and_each_peer() {
        let status = ClusterStatus::default();
        status.set(ClusterReport {
            node: "a".into(),
            generation: 7,
            gossip: "127.0.0.2:7946".into(),
            ready: true,
            config_hash: "00ff".into(),
            interval_ms: 50,
            threshold_per_1000: 4,
            live_peers: 1,
            peers: vec![PeerReport {
                name: "b".into(),
                state: "alive",
                generation: 9,
                address: "127.0.0.3:7946".into(),
                last_heard_ms: 12,
                merge_lag_ms: None,
                config_match: true,
                ready: false,
                revocations_match: true,
            }],
        });
        let mut text = String::new();
        status.report().info_lines(&mut text);
        assert!(text.starts_with("cluster_enabled:1\r\nnode:a\r\ngeneration:7\r\n"));
        assert!(text.contains("live_peers:1\r\npeers:1\r\n"));
        assert!(text.ends_with(
            "peer0:name=b,state=alive,generation=9,address=127.0.0.3:7946,last_heard_ms=12,merge_lag_ms=-,config_match=1,ready=0,revocations_match=1\r\n"
        ));
    }
}
