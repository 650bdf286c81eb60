//! `[cluster]`: the sidecars of one deployment sharing their counters and revocations by
//! gossip (docs/cluster.md).
//!
//! Off unless `enabled = true`: a lone sidecar counts alone, exactly as without the section.
//! Once enabled, a node needs an address to gossip on and a cluster secret (read from the
//! environment variable `secret_env`, checked at start and by `check-config`); it finds its
//! peers through `seeds`, addresses or DNS names that are resolved again every
//! `reresolve_interval` (a Kubernetes headless Service names every ready pod).
//!
//! ```toml
//! [cluster]
//! enabled = true
//! gossip = "0.0.0.0:7946"
//! seeds = ["tollgate-peers.shop.svc.cluster.local:7946"]
//! secret_env = "TOLLGATE_CLUSTER_SECRET"
//! ```
//!
//! `node_name` defaults to the host name (the pod's name in Kubernetes), which tollgate reads
//! at start: this module only says what is well-formed.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;

use super::secret::SecretEnv;
use super::{format_duration, parse_duration, ConfigPath, Validation};

/// Shortest cluster secret, in bytes (as for the admin and caller secrets).
pub const MIN_CLUSTER_SECRET_BYTES: usize = 32;
/// Most `seeds`.
pub const MAX_SEEDS: usize = 64;
/// Longest `node_name` (a DNS name's length: a pod's name is one).
pub const MAX_NODE_NAME_BYTES: usize = 253;
/// The gossip interval T by default.
pub const DEFAULT_INTERVAL: &str = "50ms";
/// Shortest and longest `interval`: below 10 ms the datagrams cost more than they save, above
/// 1 s the counts are too stale to share a limit.
pub const INTERVAL_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(1));
/// How often seeds are resolved again by default.
pub const DEFAULT_RERESOLVE_INTERVAL: &str = "30s";
/// How long a starting node looks for a ready peer to fetch revocations from, by default.
pub const DEFAULT_JOIN_TIMEOUT: &str = "3s";
/// Shortest and longest `join_timeout`.
pub const JOIN_TIMEOUT_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(600));
/// Shortest and longest `reresolve_interval`.
pub const RERESOLVE_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3600));
/// Own cells a node publishes per interval by default: about six full datagrams (a typical
/// cell takes 23 of a datagram's 1,200 bytes), room for a few hundred hot keys every
/// interval, at most about 7 KB per peer per interval (140 KB/s at the default 50 ms).
pub const DEFAULT_MAX_CELLS_PER_INTERVAL: u64 = 256;
/// Most `max_cells_per_interval`: about 370 datagrams per peer per interval is already more
/// than any use of a shared limit needs.
pub const MAX_CELLS_PER_INTERVAL: u64 = 16_384;
/// Largest fixed `threshold`: a count is at most 2³² − 1 in the limiter.
pub const MAX_THRESHOLD: u64 = u32::MAX as u64;

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Join a cluster at all. Off: the sidecar counts alone.
    pub enabled: bool,
    /// This node's name among its peers; unset: the host name (the pod's name), read at start.
    pub node_name: Option<String>,
    /// UDP address (IP:port) to gossip on; required when enabled.
    pub gossip: Option<String>,
    /// Peers to contact first, `host:port`, the host an IP address (`[::1]:7946` for IPv6) or a
    /// DNS name, resolved again every `reresolve_interval`.
    pub seeds: Vec<String>,
    /// The environment variable holding the cluster secret (at least 32 bytes), which
    /// authenticates every datagram between peers; required when enabled.
    pub secret_env: Option<String>,
    /// The gossip interval T: how often a node sends what changed (10ms to 1s).
    pub interval: String,
    /// How often the seeds' DNS names are resolved again (1s to 1h).
    pub reresolve_interval: String,
    /// How long a starting node looks for a ready peer to fetch every revocation from before
    /// it reports ready alone (100ms to 10m).
    pub join_timeout: String,
    /// The publish threshold θ: a node publishes a cell once its own count in it reaches
    /// this. Unset: derived per limit from its quota and the cluster's size (docs/cluster.md).
    pub threshold: Option<u64>,
    /// Most own cells published per interval; when more changed, those closest to their
    /// limit go first and the rest wait for the next interval (1 to 16,384).
    pub max_cells_per_interval: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            node_name: None,
            gossip: None,
            seeds: Vec::new(),
            secret_env: None,
            interval: DEFAULT_INTERVAL.into(),
            reresolve_interval: DEFAULT_RERESOLVE_INTERVAL.into(),
            join_timeout: DEFAULT_JOIN_TIMEOUT.into(),
            threshold: None,
            max_cells_per_interval: DEFAULT_MAX_CELLS_PER_INTERVAL,
        }
    }
}

/// A seed as `seeds` writes it: a host (an IP address or a DNS name, not yet resolved) and a
/// port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seed {
    /// An IP address: used as it is.
    Addr(SocketAddr),
    /// A DNS name: resolved at start and again every `reresolve_interval`.
    Name { host: String, port: u16 },
}

impl Seed {
    /// Parses `host:port`: `10.0.0.7:7946`, `[fd00::7]:7946`, `peers.svc.cluster.local:7946`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let example = "write host:port, e.g. \"10.0.0.7:7946\", \"[fd00::7]:7946\" or \
                       \"tollgate-peers.shop.svc.cluster.local:7946\"";
        let Some((host, port)) = t.rsplit_once(':') else {
            return Err(format!("{text:?} has no port: {example}"));
        };
        let port = match port.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(format!("{text:?}: {port:?} is not a port (1 to 65535)")),
        };
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6
                .parse::<Ipv6Addr>()
                .map(|ip| Seed::Addr(SocketAddr::new(IpAddr::V6(ip), port)))
                .map_err(|_| format!("{text:?}: {v6:?} is not an IPv6 address"));
        }
        if host.contains(':') {
            return Err(format!(
                "{text:?}: an IPv6 address goes in brackets, e.g. \"[fd00::7]:7946\""
            ));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Seed::Addr(SocketAddr::new(ip, port)));
        }
        if is_dns_name(host) {
            Ok(Seed::Name {
                host: host.to_ascii_lowercase(),
                port,
            })
        } else {
            Err(format!(
                "{text:?}: {host:?} is neither an IP address nor a DNS name; {example}"
            ))
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits and `-` (not at either end), each 1 to
/// 63 bytes, 253 in all; a trailing dot (fully qualified) is allowed. Not all digits, so that
/// a mistyped address (`10.0.0.300`) is not taken for a name.
fn is_dns_name(host: &str) -> bool {
    let h = host.strip_suffix('.').unwrap_or(host);
    !h.is_empty()
        && h.len() <= 253
        && !h.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl ClusterConfig {
    /// The gossip address, when set and usable (validation refuses one that is not).
    pub fn gossip_addr(&self) -> Option<SocketAddr> {
        self.gossip.as_deref().and_then(|g| g.trim().parse().ok())
    }

    /// The seeds, parsed (those that do not parse are left out: validation refuses them).
    pub fn parsed_seeds(&self) -> Vec<Seed> {
        self.seeds
            .iter()
            .filter_map(|s| Seed::parse(s).ok())
            .collect()
    }

    /// The gossip interval T (50 ms when unreadable; validation refuses that).
    pub fn interval(&self) -> Duration {
        parse_duration(&self.interval).unwrap_or(Duration::from_millis(50))
    }

    /// How often seeds are resolved again (30 s when unreadable; validation refuses that).
    pub fn reresolve_interval(&self) -> Duration {
        parse_duration(&self.reresolve_interval).unwrap_or(Duration::from_secs(30))
    }

    /// How long a starting node looks for a ready peer (3 s when unreadable; validation
    /// refuses that).
    pub fn join_timeout(&self) -> Duration {
        parse_duration(&self.join_timeout).unwrap_or(Duration::from_secs(3))
    }

    /// This node's name: `node_name` when set, else `hostname` (read by the caller at start).
    pub fn node_name_or(&self, hostname: &str) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(|| hostname.to_string())
    }

    /// The cluster secret, read through `env` from the variable `secret_env` names: `None`
    /// when the cluster is off; an error, naming the variable and never its value, when it is
    /// unset or shorter than [`MIN_CLUSTER_SECRET_BYTES`]. Start-up and `check-config` both
    /// ask (the gate's preflight).
    pub fn read_secret(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Vec<u8>>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let Some(var) = &self.secret_env else {
            return Err(
                "cluster.secret_env is not set; name the variable holding the \
                        cluster secret"
                    .into(),
            );
        };
        let value = SecretEnv {
            key: "cluster.secret_env",
            var,
            what: "the cluster secret",
            when_unset: "export it on every node, the same value everywhere",
            min_bytes: MIN_CLUSTER_SECRET_BYTES,
        }
        .read(env)?;
        Ok(Some(value.into_bytes()))
    }

    pub(super) fn validate(&self, at: &ConfigPath, v: &mut Validation<'_>) {
        if let Some(name) = &self.node_name {
            if !is_node_name(name) {
                v.invalid(
                    at.key("node_name"),
                    format!(
                        "{name:?} is not a usable node name: use 1 to {MAX_NODE_NAME_BYTES} \
                         letters, digits, '_', '-' or '.' (or leave it out for the host name)"
                    ),
                );
            }
        }
        match self.gossip.as_deref().map(str::trim) {
            Some(g) if g.parse::<SocketAddr>().is_err() => v.invalid(
                at.key("gossip"),
                format!(
                    "{g:?} is not a UDP address to gossip on (use IP:port, e.g. \
                     \"0.0.0.0:7946\" in a pod)"
                ),
            ),
            Some(_) => {}
            None if self.enabled => v.invalid(
                at.key("enabled"),
                "a cluster needs an address to gossip on: set cluster.gossip = \
                 \"0.0.0.0:7946\" (or enabled = false)",
            ),
            None => {}
        }
        if self.seeds.len() > MAX_SEEDS {
            v.invalid(
                at.key("seeds"),
                format!(
                    "{} seeds; at most {MAX_SEEDS} (a DNS name such as a headless Service \
                     stands for every peer)",
                    self.seeds.len()
                ),
            );
        }
        for (i, s) in self.seeds.iter().enumerate() {
            if let Err(e) = Seed::parse(s) {
                v.invalid(at.key("seeds").index(i), e);
            }
        }
        match &self.secret_env {
            Some(name) => v.env_var_name(at.key("secret_env"), name),
            None if self.enabled => v.invalid(
                at.key("enabled"),
                format!(
                    "a cluster needs a secret to authenticate its peers: set \
                     cluster.secret_env to the environment variable holding it (at least \
                     {MIN_CLUSTER_SECRET_BYTES} bytes, the same on every node)"
                ),
            ),
            None => {}
        }
        if self.enabled && v.config().limiter.hash_key_env.is_none() {
            // Peers merge counts by key hash: a random hash key per process would make every
            // peer's cells miss.
            v.invalid(
                at.key("enabled"),
                "peers share counts by key hash, so they must hash keys alike: set \
                 limiter.hash_key_env to a variable holding the same secret on every node",
            );
        }
        if let Some(t) = self.threshold {
            if !(1..=MAX_THRESHOLD).contains(&t) {
                v.invalid(
                    at.key("threshold"),
                    format!(
                        "{t} is not a publish threshold: use a count from 1 to {MAX_THRESHOLD} \
                         (or leave it out to derive one from each limit and the cluster's size)"
                    ),
                );
            }
        }
        if !(1..=MAX_CELLS_PER_INTERVAL).contains(&self.max_cells_per_interval) {
            v.invalid(
                at.key("max_cells_per_interval"),
                format!(
                    "{} cells per interval is out of range: use 1 to {MAX_CELLS_PER_INTERVAL} \
                     (default {DEFAULT_MAX_CELLS_PER_INTERVAL})",
                    self.max_cells_per_interval
                ),
            );
        }
        bounded(v, at.key("interval"), &self.interval, INTERVAL_BOUNDS);
        bounded(
            v,
            at.key("reresolve_interval"),
            &self.reresolve_interval,
            RERESOLVE_BOUNDS,
        );
        bounded(
            v,
            at.key("join_timeout"),
            &self.join_timeout,
            JOIN_TIMEOUT_BOUNDS,
        );
    }
}

/// A node name: 1 to 253 letters, digits, `_`, `-` or `.` (a pod's name always is).
fn is_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NODE_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Checks a duration within `(lo, hi)`.
fn bounded(v: &mut Validation<'_>, path: ConfigPath, text: &str, (lo, hi): (Duration, Duration)) {
    if let Some(d) = v.duration(path.clone(), text, lo) {
        if d > hi {
            v.invalid(
                path,
                format!(
                    "{text:?} is too long: between {} and {}",
                    format_duration(lo),
                    format_duration(hi)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const BASE: &str = "[limiter]\nhash_key_env = \"HK\"\n[tiers.anonymous]\nlimit = 5\n\
                        window = \"1h\"\n[tiers.basic]\nlimit = 5\nwindow = \"1h\"\n";

    fn load(text: &str) -> Result<Config, String> {
        Config::from_toml_str(&format!("{BASE}{text}"), "t.toml").map_err(|e| e.to_string())
    }

    /// The 1-based line of `needle` in the whole text `load` parses.
    fn line_of(text: &str, needle: &str) -> usize {
        let all = format!("{BASE}{text}");
        all[..all.find(needle).unwrap()].matches('\n').count() + 1
    }

    const GOOD: &str = "[cluster]\nenabled = true\ngossip = \"0.0.0.0:7946\"\n\
                        secret_env = \"TOLLGATE_CLUSTER_SECRET\"\n";

    #[test]
    fn off_by_default_with_the_documented_defaults() {
        let c = ClusterConfig::default();
        assert!(!c.enabled);
        assert_eq!(c.interval(), Duration::from_millis(50));
        assert_eq!(c.reresolve_interval(), Duration::from_secs(30));
        assert_eq!(c.join_timeout(), Duration::from_secs(3));
        assert!(c.seeds.is_empty() && c.gossip.is_none() && c.secret_env.is_none());
        assert_eq!(c.node_name_or("pod-7"), "pod-7");
        assert_eq!(load("").unwrap().cluster, c);
        assert!(!Config::embedded().cluster.enabled);
    }

    #[test]
    fn parses_a_full_section() {
        let c = load(&format!(
            "{GOOD}node_name = \"shop-5d9f-x2\"\nseeds = [\"10.0.0.7:7946\", \"[fd00::7]:7946\", \
             \"Peers.shop.svc.cluster.local.:7946\"]\ninterval = \"20ms\"\n\
             reresolve_interval = \"1m\"\njoin_timeout = \"10s\"\n"
        ))
        .unwrap()
        .cluster;
        assert!(c.enabled);
        assert_eq!(c.node_name_or("ignored"), "shop-5d9f-x2");
        assert_eq!(
            c.gossip_addr(),
            Some(SocketAddr::from(([0, 0, 0, 0], 7946)))
        );
        assert_eq!(
            c.parsed_seeds(),
            [
                Seed::Addr(SocketAddr::from(([10, 0, 0, 7], 7946))),
                Seed::Addr("[fd00::7]:7946".parse().unwrap()),
                Seed::Name {
                    host: "peers.shop.svc.cluster.local.".into(),
                    port: 7946
                },
            ]
        );
        assert_eq!(c.interval(), Duration::from_millis(20));
        assert_eq!(c.reresolve_interval(), Duration::from_secs(60));
        assert_eq!(c.join_timeout(), Duration::from_secs(10));
    }

    #[test]
    fn a_join_timeout_out_of_bounds_is_refused_with_its_position() {
        for (value, says) in [("\"50ms\"", "too short"), ("\"1h\"", "too long")] {
            let text = format!("{GOOD}join_timeout = {value}\n");
            let e = load(&text).unwrap_err();
            let at = format!(
                "t.toml:{}:16: cluster.join_timeout:",
                line_of(&text, "join_timeout")
            );
            assert!(e.contains(&at) && e.contains(says), "{e}");
        }
    }

    #[test]
    fn a_disabled_section_may_be_incomplete() {
        load("[cluster]\nenabled = false\nseeds = [\"a.b:1\"]\n").unwrap();
    }

    #[test]
    fn enabled_requires_gossip_secret_and_a_shared_hash_key() {
        let text = "[cluster]\nenabled = true\n";
        let e = load(text).unwrap_err();
        let at = format!("t.toml:{}:11: cluster.enabled:", line_of(text, "enabled"));
        assert!(e.contains(&at), "{e}");
        assert!(e.contains("cluster.gossip = \"0.0.0.0:7946\""), "{e}");
        assert!(e.contains("cluster.secret_env"), "{e}");
        let e = Config::from_toml_str(
            &format!("[tiers.anonymous]\nlimit = 5\nwindow = \"1h\"\n{GOOD}"),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("limiter.hash_key_env"), "{e}");
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let text = format!("{GOOD}seeds = [\"10.0.0.7:7946\", \"nope\"]\n");
        let e = load(&text).unwrap_err();
        let at = format!("t.toml:{}:27: cluster.seeds[1]:", line_of(&text, "seeds"));
        assert!(e.contains(&at), "{e}");
        assert!(e.contains("has no port"), "{e}");

        let text = "[cluster]\ngossip = \"7946\"\nsecret_env = \"1X\"\nnode_name = \"a b\"\n";
        let e = load(text).unwrap_err();
        assert!(e.contains(&format!(
            "t.toml:{}:10: cluster.gossip:",
            line_of(text, "gossip")
        )));
        assert!(e.contains("cluster.secret_env: \"1X\" is not an environment variable name"));
        assert!(
            e.contains("cluster.node_name: \"a b\" is not a usable node name"),
            "{e}"
        );
        assert!(load("[cluster]\nbogus = 1\n").is_err());
    }

    #[test]
    fn the_secret_is_read_from_its_variable_and_must_be_long_enough() {
        let mut c = load(GOOD).unwrap().cluster;
        let secret = "k".repeat(32);
        let env = |v: &str| (v == "TOLLGATE_CLUSTER_SECRET").then(|| secret.clone());
        assert_eq!(c.read_secret(&env), Ok(Some(secret.clone().into_bytes())));
        let e = c.read_secret(&|_| None).unwrap_err();
        assert!(
            e.contains("TOLLGATE_CLUSTER_SECRET") && e.contains("not set"),
            "{e}"
        );
        let e = c.read_secret(&|_| Some("short".into())).unwrap_err();
        assert!(e.contains("holds 5 bytes") && !e.contains("short"), "{e}");
        c.enabled = false;
        assert_eq!(c.read_secret(&|_| None), Ok(None));
    }

    #[test]
    fn intervals_are_bounded() {
        for (key, value, says) in [
            ("interval", "5ms", "too short: at least 10ms"),
            ("interval", "2s", "too long: between 10ms and 1s"),
            ("interval", "50", "needs a unit"),
            ("reresolve_interval", "500ms", "too short: at least 1s"),
            ("reresolve_interval", "2h", "too long: between 1s and 1h"),
        ] {
            let e = load(&format!("[cluster]\n{key} = \"{value}\"\n")).unwrap_err();
            assert!(
                e.contains(&format!("cluster.{key}:")) && e.contains(says),
                "{e}"
            );
        }
        load("[cluster]\ninterval = \"10ms\"\nreresolve_interval = \"1h\"\n").unwrap();
        load("[cluster]\ninterval = \"1s\"\nreresolve_interval = \"1s\"\n").unwrap();
    }

    #[test]
    fn threshold_and_cell_budget_are_bounded_and_placed() {
        let c = load("").unwrap().cluster;
        assert_eq!((c.threshold, c.max_cells_per_interval), (None, 256));
        let c = load("[cluster]\nthreshold = 4\nmax_cells_per_interval = 1\n")
            .unwrap()
            .cluster;
        assert_eq!((c.threshold, c.max_cells_per_interval), (Some(4), 1));
        load("[cluster]\nmax_cells_per_interval = 16384\n").unwrap();
        for (line, says) in [
            (
                "threshold = 0",
                "cluster.threshold: 0 is not a publish threshold",
            ),
            (
                "threshold = 4294967296",
                "cluster.threshold: 4294967296 is not a publish threshold",
            ),
            (
                "max_cells_per_interval = 0",
                "cluster.max_cells_per_interval: 0 cells per interval is out of range",
            ),
            (
                "max_cells_per_interval = 16385",
                "use 1 to 16384 (default 256)",
            ),
        ] {
            let text = format!("[cluster]\n{line}\n");
            let e = load(&text).unwrap_err();
            let key = line.split(' ').next().unwrap();
            let at = format!("t.toml:{}:", line_of(&text, key));
            assert!(e.contains(&at) && e.contains(says), "{e}");
        }
        assert!(load("[cluster]\nthreshold = -1\n").is_err());
    }

    #[test]
    fn seeds_parse_as_addresses_or_names() {
        for bad in [
            "10.0.0.7",
            "10.0.0.7:0",
            "10.0.0.7:70000",
            "fd00::7:7946",
            "[fd00::zz]:7946",
            "10.0.0.300:7946",
            "-peers.svc:7946",
            "peers..svc:7946",
            "pe_ers:7946",
            ":7946",
        ] {
            assert!(Seed::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Seed::parse("localhost:7946"),
            Ok(Seed::Name {
                host: "localhost".into(),
                port: 7946
            })
        );
        let many: Vec<String> = (0..=MAX_SEEDS).map(|i| format!("\"n{i}:1\"")).collect();
        let e = load(&format!("[cluster]\nseeds = [{}]\n", many.join(", "))).unwrap_err();
        assert!(e.contains("at most 64"), "{e}");
    }
}
