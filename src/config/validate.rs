//! Validation: every check of what the file's own vocabulary decides, each problem tied to
//! the key path it is about ([`Problem`]) so that a [`Source`](super::Source) can place it.
//!
//! [`Config::problems`] runs them all; sections with files of their own check themselves
//! with a [`Validation`] to report into (`[resp]`, `[log]`) or as text placed by its key path
//! (`[auth]`). What only a component can judge is the gate's compile step's.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{
    format_duration, parse_duration, parse_file_mode, Algorithm, AuthConfig, Config, ConfigPath,
    LimitConfig, LimiterConfig, ServerConfig, Target, MAX_LIMIT, MAX_WINDOW_SECS, SLIDING_LOG_MAX,
};

/// Collects validation problems, each tied to the key it is about. Sections owned by other
/// modules receive one to report into (see the module doc).
pub struct Validation<'c> {
    config: &'c Config,
    problems: Vec<Problem>,
}

/// One problem found in a configuration, tied to the key path it is about; a [`Source`](super::Source)
/// places it in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: ConfigPath,
    /// Whether the error points at the key's value or at the key itself.
    pub target: Target,
    pub message: String,
}

impl Problem {
    /// The value at `path` is wrong.
    pub fn value(path: ConfigPath, message: impl fmt::Display) -> Self {
        Self {
            path,
            target: Target::Value,
            message: message.to_string(),
        }
    }
}

impl<'c> Validation<'c> {
    /// The whole configuration, for cross-section checks (does this tier exist?).
    pub fn config(&self) -> &'c Config {
        self.config
    }

    /// The value at `path` is wrong; the error points at the value.
    pub fn invalid(&mut self, path: ConfigPath, message: impl fmt::Display) {
        self.push(path, Target::Value, message);
    }

    /// The key at `path` is wrong (a bad name, a duplicate); the error points at the key.
    pub fn invalid_key(&mut self, path: ConfigPath, message: impl fmt::Display) {
        self.push(path, Target::Key, message);
    }

    fn push(&mut self, path: ConfigPath, target: Target, message: impl fmt::Display) {
        self.problems.push(Problem {
            path,
            target,
            message: message.to_string(),
        });
    }

    /// Parses a duration field and checks its lower bound; reports and returns `None` when
    /// it is unusable.
    pub fn duration(&mut self, path: ConfigPath, text: &str, min: Duration) -> Option<Duration> {
        match parse_duration(text) {
            Err(e) => {
                self.invalid(path, e);
                None
            }
            Ok(d) if d < min => {
                self.invalid(
                    path,
                    format!("{text:?} is too short: at least {}", format_duration(min)),
                );
                None
            }
            Ok(d) => Some(d),
        }
    }

    /// Checks a Unix socket's `unix_socket` path and `unix_socket_mode` under `at`; returns
    /// whether a usable path is set.
    pub fn unix_socket(&mut self, at: &ConfigPath, path: Option<&Path>, mode: &str) -> bool {
        if parse_file_mode(mode).is_none() {
            self.invalid(
                at.key("unix_socket_mode"),
                format!("{mode:?} is not an octal file mode such as \"0660\""),
            );
        }
        // sun_path holds 108 bytes on Linux, the terminating NUL included.
        match path.map(|p| p.as_os_str().len()) {
            None => false,
            Some(0) => {
                self.invalid(
                    at.key("unix_socket"),
                    "is empty; leave it out to listen on TCP only",
                );
                false
            }
            Some(len) if len > 107 => {
                self.invalid(
                    at.key("unix_socket"),
                    format!("is {len} bytes long; a Unix socket path has at most 107"),
                );
                false
            }
            Some(_) => true,
        }
    }

    /// Checks that `name` can name an environment variable (letters, digits, `_`, not
    /// starting with a digit).
    pub fn env_var_name(&mut self, path: ConfigPath, name: &str) {
        let ok = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            self.invalid(
                path,
                format!("{name:?} is not an environment variable name (letters, digits, '_')"),
            );
        }
    }

    /// Checks `lo ≤ value ≤ hi` for a count.
    pub fn within(&mut self, path: ConfigPath, value: u64, lo: u64, hi: u64) {
        if value < lo || value > hi {
            self.invalid(path, format!("must be between {lo} and {hi}, not {value}"));
        }
    }
}

/// Longest tier or limit name.
pub const MAX_NAME_BYTES: usize = 64;

/// Tier and limit names appear in headers (`RateLimit-Policy: "basic"`), metric labels and
/// RESP replies: keep them to characters none of those need to escape.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a usable name: use 1 to {MAX_NAME_BYTES} letters, digits, '_', '-' or '.'"
        ))
    }
}

fn list_names<V>(m: &BTreeMap<String, V>) -> String {
    if m.is_empty() {
        "none".into()
    } else {
        m.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

impl Config {
    /// Every problem this module can find, in no particular order (errors sort them). The
    /// gate's compile step adds what the components find.
    pub fn problems(&self) -> Vec<Problem> {
        let mut v = Validation {
            config: self,
            problems: Vec::new(),
        };
        let root = ConfigPath::root();
        self.server.check(&root.key("server"), &mut v);
        self.log.check(&root.key("log"), &mut v);
        self.limiter.check(&root.key("limiter"), &mut v);
        self.check_limits(&mut v);
        self.check_routes(&mut v);
        self.section_hooks(&mut v);
        v.problems
    }

    /// The problems of every tier's and limit's values and of the routes' references to
    /// limits: what running a configuration built in code needs checked (the gate's compile
    /// step asks for these).
    pub fn limit_problems(&self) -> Vec<Problem> {
        let mut v = Validation {
            config: self,
            problems: Vec::new(),
        };
        for (section, map) in [("tiers", &self.tiers), ("limits", &self.limits)] {
            for (name, limit) in map {
                limit.check(&ConfigPath::root().key(section).key(name), &mut v);
            }
        }
        self.check_routes(&mut v);
        v.problems
    }

    fn check_limits(&self, v: &mut Validation<'_>) {
        let tiers = ConfigPath::root().key("tiers");
        if self.tiers.is_empty() {
            v.invalid(
                tiers.clone(),
                "at least one tier is needed: every request is counted against its tier's limit",
            );
        }
        for (name, limit) in &self.tiers {
            let at = tiers.key(name);
            if let Err(e) = check_name(name) {
                v.invalid_key(at.clone(), e);
            }
            limit.check(&at, v);
        }
        let limits = ConfigPath::root().key("limits");
        for (name, limit) in &self.limits {
            let at = limits.key(name);
            if let Err(e) = check_name(name) {
                v.invalid_key(at.clone(), e);
            }
            if self.tiers.contains_key(name) {
                v.invalid_key(
                    at.clone(),
                    format!(
                        "{name:?} is also a tier: tiers and limits share one namespace \
                         (answers, headers and metrics name them alike)"
                    ),
                );
            }
            limit.check(&at, v);
        }
    }

    fn check_routes(&self, v: &mut Validation<'_>) {
        let routes = ConfigPath::root().key("routes");
        for (i, route) in self.routes.iter().enumerate() {
            self.check_limit_names(&routes.index(i).key("limits"), &route.limits, v);
        }
        let preflight = ConfigPath::root()
            .key("policy")
            .key("cors_preflight_limits");
        self.check_limit_names(&preflight, &self.policy.cors_preflight_limits, v);
    }

    /// Every name of a list of limits (`names`, at `at`) must be a `[limits.*]` entry.
    fn check_limit_names(&self, at: &ConfigPath, names: &[String], v: &mut Validation<'_>) {
        for (j, name) in names.iter().enumerate() {
            // Empty and repeated names are the policy's own checks.
            if name.is_empty() || names[..j].contains(name) {
                continue;
            }
            if !self.limits.contains_key(name) {
                let hint = if self.tiers.contains_key(name) {
                    format!(" ({name:?} is a tier: a tier's limit applies by itself)")
                } else {
                    String::new()
                };
                v.invalid(
                    at.index(j),
                    format!(
                        "unknown limit {name:?}; [limits] defines: {}{hint}",
                        list_names(&self.limits)
                    ),
                );
            }
        }
    }

    /// Validation of the sections with files of their own, and the cross-references between
    /// them and the others.
    fn section_hooks(&self, v: &mut Validation<'_>) {
        // [auth] checks itself and reports its first problem as text that starts with the
        // key path ("auth.issuers: duplicate name …") or the issuer ("issuer \"x\": leeway:
        // …"); place it there.
        if let Err(message) = self.auth.validate() {
            let (path, message) = auth_problem_path(&self.auth, &message);
            v.invalid(path, message);
        }
        self.check_auth_tiers(v);

        // [resp]
        self.resp.validate(&ConfigPath::root().key("resp"), v);

        // [check]
        self.check.validate(&ConfigPath::root().key("check"), v);

        // [cluster]
        self.cluster.validate(&ConfigPath::root().key("cluster"), v);
    }

    /// Tiers named by `[auth]` must exist.
    fn check_auth_tiers(&self, v: &mut Validation<'_>) {
        let auth = ConfigPath::root().key("auth");
        let mut refs: Vec<(ConfigPath, &str)> = vec![
            (auth.key("anonymous_tier"), &self.auth.anonymous_tier),
            (auth.key("default_tier"), &self.auth.default_tier),
        ];
        for (i, rt) in self.auth.role_tiers.iter().enumerate() {
            refs.push((auth.key("role_tiers").index(i).key("tier"), &rt.tier));
        }
        for (i, k) in self.auth.api_keys.iter().enumerate() {
            refs.push((auth.key("api_keys").index(i).key("tier"), &k.tier));
        }
        let located: Vec<&str> = refs.iter().map(|(_, t)| *t).collect();
        for (path, tier) in refs.iter() {
            if !tier.is_empty() && !self.tiers.contains_key(*tier) {
                v.invalid(
                    path.clone(),
                    format!(
                        "names tier {tier:?}, which [tiers] does not define (defined: {}); \
                         define it or name another",
                        list_names(&self.tiers)
                    ),
                );
            }
        }
        // Anything else [auth] refers to (fields added later) is still checked, at [auth].
        for tier in self.auth.referenced_tiers() {
            if !tier.is_empty() && !located.contains(&tier) && !self.tiers.contains_key(tier) {
                v.invalid(
                    auth.clone(),
                    format!("names tier {tier:?}, which [tiers] does not define"),
                );
            }
        }
    }
}

/// Splits `auth.issuers: duplicate name "x"` into (`auth.issuers`, `duplicate name "x"`) and
/// `issuer "x": leeway: …` into (`auth.issuers[i].leeway`, `…`); anything else is placed at
/// `[auth]` as it is.
fn auth_problem_path(auth: &AuthConfig, message: &str) -> (ConfigPath, String) {
    let is_path = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    if let Some((head, rest)) = message.split_once(": ") {
        if (head == "auth" || head.starts_with("auth.")) && is_path(head) {
            return (ConfigPath::dotted(head), rest.to_string());
        }
        if let Some(name) = head
            .strip_prefix("issuer \"")
            .and_then(|n| n.strip_suffix('"'))
        {
            if let Some(i) = auth.issuers.iter().position(|is| is.name == name) {
                let at = ConfigPath::root().key("auth").key("issuers").index(i);
                if let Some((field, detail)) = rest.split_once(": ") {
                    if is_path(field) && !field.contains('.') {
                        return (at.key(field), detail.to_string());
                    }
                }
                return (at, rest.to_string());
            }
        }
    }
    (ConfigPath::root().key("auth"), message.to_string())
}

impl ServerConfig {
    fn check(&self, at: &ConfigPath, v: &mut Validation<'_>) {
        if self.http.parse::<SocketAddr>().is_err() {
            v.invalid(
                at.key("http"),
                format!(
                    "{:?} is not a listen address (use IP:port, e.g. 127.0.0.1:8080 or [::1]:8080)",
                    self.http
                ),
            );
        }
        v.unix_socket(at, self.unix_socket.as_deref(), &self.unix_socket_mode);
        // hyper needs a read buffer of at least 8 KiB.
        v.within(
            at.key("max_header_bytes"),
            self.max_header_bytes as u64,
            8 * 1024,
            1024 * 1024,
        );
        // The request line is part of the head; when the head bound is itself wrong, the
        // URI is only held to the widest head bound, so that one mistake is one error.
        let head_ok = (8 * 1024..=1024 * 1024).contains(&self.max_header_bytes);
        v.within(
            at.key("max_uri_bytes"),
            self.max_uri_bytes as u64,
            16,
            if head_ok {
                self.max_header_bytes
            } else {
                1024 * 1024
            } as u64,
        );
        v.within(
            at.key("max_connections"),
            self.max_connections as u64,
            1,
            1_000_000,
        );
        v.within(
            at.key("max_connection_buffer_bytes"),
            self.max_connection_buffer_bytes as u64,
            1024 * 1024,
            1 << 40,
        );
        let ms = Duration::from_millis(1);
        v.duration(at.key("header_read_timeout"), &self.header_read_timeout, ms);
        v.duration(at.key("idle_timeout"), &self.idle_timeout, ms);
        v.duration(
            at.key("shutdown_grace"),
            &self.shutdown_grace,
            Duration::ZERO,
        );
        v.within(at.key("max_hits"), self.max_hits, 1, MAX_LIMIT);
        match self.metrics.as_deref().map(str::trim) {
            Some(m) => match m.parse::<SocketAddr>() {
                Err(_) => v.invalid(
                    at.key("metrics"),
                    format!(
                        "{m:?} is not a listen address (use IP:port, e.g. 0.0.0.0:9090 for \
                         Prometheus and probes in a pod, or leave it out for no metrics listener)"
                    ),
                ),
                Ok(a) if a.port() != 0 && self.http.parse::<SocketAddr>() == Ok(a) => v.invalid(
                    at.key("metrics"),
                    format!(
                        "{m:?} is also server.http: the metrics listener needs a port of its own"
                    ),
                ),
                Ok(_) => {}
            },
            None if !self.metrics_on_http => v.invalid(
                at.key("metrics_on_http"),
                "is false but server.metrics is not set: /metrics, /healthz and /readyz would be \
                 served nowhere; set server.metrics = \"0.0.0.0:9090\" (or leave metrics_on_http \
                 at true)",
            ),
            None => {}
        }
    }
}

impl LimiterConfig {
    fn check(&self, at: &ConfigPath, v: &mut Validation<'_>) {
        v.within(
            at.key("max_states"),
            self.max_states as u64,
            1,
            u64::from(u32::MAX),
        );
        v.within(at.key("shards"), self.shards as u64, 0, 1 << 16);
        if let Some(name) = &self.hash_key_env {
            v.env_var_name(at.key("hash_key_env"), name);
        }
        let interval = at.key("snapshot_interval");
        if let Some(d) = v.duration(
            interval.clone(),
            &self.snapshot_interval,
            super::MIN_SNAPSHOT_INTERVAL,
        ) {
            if d > super::MAX_SNAPSHOT_INTERVAL {
                v.invalid(
                    interval,
                    format!(
                        "{:?} is too long: at most {} (a kill -9 loses what was counted since \
                         the last snapshot)",
                        self.snapshot_interval,
                        format_duration(super::MAX_SNAPSHOT_INTERVAL)
                    ),
                );
            }
        }
        match &self.snapshot_path {
            Some(p) if p.as_os_str().is_empty() => v.invalid(
                at.key("snapshot_path"),
                "is empty: name the file to save the counts in, or remove the key",
            ),
            Some(_) if self.hash_key_env.is_none() => v.invalid(
                at.key("snapshot_path"),
                "a snapshot names each count by its key hash, and without \
                 limiter.hash_key_env the hash key is random for each process, so no restored \
                 count would ever be found: set limiter.hash_key_env to a variable holding a \
                 secret that stays the same across restarts",
            ),
            _ => {}
        }
    }
}

impl LimitConfig {
    fn check(&self, at: &ConfigPath, v: &mut Validation<'_>) {
        if self.limit == 0 {
            v.invalid(
                at.key("limit"),
                "must be at least 1 (to refuse everything, use a route rule)",
            );
        } else if self.limit > MAX_LIMIT {
            v.invalid(
                at.key("limit"),
                format!("{} is above the largest limit, {MAX_LIMIT}", self.limit),
            );
        } else if self.algorithm == Algorithm::SlidingLog && self.limit > SLIDING_LOG_MAX {
            v.invalid(
                at.key("limit"),
                format!(
                    "a sliding_log keeps one timestamp per admitted hit and allows at most \
                     {SLIDING_LOG_MAX}, not {} (use sliding_window for large limits)",
                    self.limit
                ),
            );
        }
        let window = at.key("window");
        if let Some(d) = v.duration(window.clone(), &self.window, Duration::from_secs(1)) {
            if d.subsec_nanos() != 0 {
                v.invalid(
                    window,
                    format!("{:?}: windows are whole seconds", self.window),
                );
            } else if d.as_secs() > MAX_WINDOW_SECS {
                v.invalid(
                    window,
                    format!(
                        "{:?} is longer than the longest window, {}",
                        self.window,
                        format_duration(Duration::from_secs(MAX_WINDOW_SECS))
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_messages_are_placed_by_their_prefix() {
        let mut auth = AuthConfig::default();
        auth.issuers
            .push(crate::config::auth::IssuerConfig::new("ba"));
        let (p, m) = auth_problem_path(&auth, "auth.issuers: duplicate name \"ba\"");
        assert_eq!(
            (p.to_string(), m.as_str()),
            ("auth.issuers".into(), "duplicate name \"ba\"")
        );
        let (p, m) = auth_problem_path(&auth, "issuer \"ba\": leeway: \"3x\": bad");
        assert_eq!(
            (p.to_string(), m.as_str()),
            ("auth.issuers[0].leeway".into(), "\"3x\": bad")
        );
        let (p, _) = auth_problem_path(&auth, "issuer \"ba\": a shared secret only verifies HS256");
        assert_eq!(p.to_string(), "auth.issuers[0]");
        let (p, m) = auth_problem_path(&auth, "something else");
        assert_eq!(
            (p.to_string(), m.as_str()),
            ("auth".into(), "something else")
        );
    }
}
