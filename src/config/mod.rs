//! Configuration: the TOML schema, the embedded default, loading, positions and validation.
//!
//! This module is data: it knows what a configuration file may say and whether what it says
//! is acceptable, and nothing of the components that run on it (it imports none of them).
//! It owns:
//! - the schema: [`Config`] and its sections, deserialized with serde; each later section
//!   lives in its own file ([`auth`], [`log`], [`routes`], [`policy`], [`resp`], [`check`],
//!   [`cluster`]) so that it
//!   can grow on its own;
//! - loading: [`Config::load`] (a file), [`Config::from_toml_str`] (text),
//!   [`Config::embedded`] (the commented default compiled in from `default.toml`, which
//!   `tollgate serve` runs on without `--config`), and [`Config::parse`], which keeps the
//!   parsed text as a [`Source`] that can say where any key path is written;
//! - validation of everything the file's own vocabulary decides ([`Config::validate`], run by
//!   every loader; `validate.rs`): names, bounds, durations, addresses, modes,
//!   cross-references between sections; every problem is reported, each with file, line and
//!   column ([`ConfigError`]);
//! - the typed views the rest of tollgate reads: durations ([`duration`]), listen addresses,
//!   file modes.
//!
//! What only a component can judge — route patterns, methods, key templates, trusted
//! proxies, all of which the policy parses — is checked when the gate compiles the
//! configuration (`gate::compile`), which reports its problems through the same [`Source`],
//! so that `tollgate check-config`, start-up and SIGHUP all print `file:line:column: key:
//! what is wrong` whoever found the problem.
//!
//! Values are kept as the operator wrote them (`window = "1h"`) and the accessor method of
//! the same name returns the typed value (`LimitConfig::window() -> Duration`); the rest of
//! tollgate reads the accessors, never the text. Validation refuses any value an accessor
//! could not read, so on a loaded configuration the accessors return exactly what the file
//! says; their fallbacks only matter for configurations built by hand and never validated.
//!
//! How positions are found: serde's own errors (syntax, unknown key, wrong type) carry a
//! span; for values that deserialize but are wrong, validation names a [`ConfigPath`]
//! (`tiers.basic.window`) and [`Source::position`] finds it in the text again (see
//! `locate.rs`).

pub mod auth;
pub mod check;
pub mod cluster;
pub mod duration;
pub mod error;
mod locate;
pub mod log;
pub mod policy;
pub mod resp;
pub mod routes;
pub mod secret;
mod validate;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use auth::AuthConfig;
pub use check::{CheckCallerConfig, CheckConfig};
pub use cluster::{ClusterConfig, Seed};
pub use duration::{format_duration, parse_duration, DurationError};
pub use error::{ConfigError, ConfigPath, ErrorKind, Issue, PathSegment, Position};
pub use locate::Target;
pub use log::{LogConfig, LogFormat};
pub use policy::PolicyConfig;
pub use resp::RespConfig;
pub use routes::RouteConfig;
pub use validate::{Problem, Validation, MAX_NAME_BYTES};

use locate::SourceMap;

/// The embedded default configuration, as text (`tollgate print-default-config`).
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

/// The origin name errors and logs use for the embedded default.
pub const EMBEDDED_ORIGIN: &str = "<embedded default>";

/// Largest configuration file read. Real ones are a few KiB; the bound keeps a wrong path
/// (a log file, `/dev/zero`) from being read into memory.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// The whole configuration file.
///
/// `Config::default()` has empty `tiers`, `limits` and `routes` (and so does not validate:
/// at least one tier is needed); [`Config::embedded`] is the shipped default.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub limiter: LimiterConfig,
    /// Tier name → the limit every request of that tier passes.
    #[serde(default)]
    pub tiers: BTreeMap<String, LimitConfig>,
    /// Named limits that routes (and `/check?limit=`) refer to.
    #[serde(default)]
    pub limits: BTreeMap<String, LimitConfig>,
    /// Route rules, matched against the original request path (see `policy`).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Settings of the route policy that are not per route (trusted proxies, default auth).
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub resp: RespConfig,
    /// Who may call `/check` and `CHECK` (which spend any key's quota).
    #[serde(default)]
    pub check: CheckConfig,
    /// Sharing counters and revocations with the peers of one deployment (off by default).
    #[serde(default)]
    pub cluster: ClusterConfig,
}

/// One limit: `limit` hits per `window`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub limit: u64,
    /// A duration such as `90s`, `15m`, `1h`, `1d`: whole seconds, at least `1s`.
    pub window: String,
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Key template used when tollgate builds the key itself (`/auth`): parts joined by
    /// `:` from `ip`, `user`, `route`, `method`, `tier`, `header=<name>` (the policy's
    /// grammar, checked when the gate compiles the configuration). Unset: `user`.
    #[serde(default)]
    pub key: Option<String>,
}

/// `algorithm =` of a limit: how it counts (docs/algorithms.md). The gate maps it to the
/// engine's own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Two fixed windows, the previous weighted by its remaining overlap.
    #[default]
    SlidingWindow,
    /// Exact: one timestamp per admitted hit; limits of at most [`SLIDING_LOG_MAX`].
    SlidingLog,
}

/// The largest `limit`. The engine's bounds; the gate asserts at build time that these and
/// the limiter's agree.
pub const MAX_LIMIT: u64 = u32::MAX as u64;
/// The longest window, in seconds.
pub const MAX_WINDOW_SECS: u64 = 1 << 27;
/// The largest limit a `sliding_log` may have: it stores one timestamp per admitted hit.
pub const SLIDING_LOG_MAX: u64 = 1_000;

/// `[server]`: the HTTP front door.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// TCP listen address for HTTP.
    pub http: String,
    /// Optional Unix socket path for HTTP.
    pub unix_socket: Option<PathBuf>,
    /// Permissions of the Unix socket file, octal string.
    pub unix_socket_mode: String,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub max_connections: usize,
    /// The buffers of every client connection together (HTTP and RESP, input and output):
    /// past this, connections write what they owe before reading more.
    pub max_connection_buffer_bytes: usize,
    /// Time allowed to read a request's headers.
    pub header_read_timeout: String,
    /// Idle keep-alive connections are closed after this.
    pub idle_timeout: String,
    /// In-flight requests get this long to finish on shutdown.
    pub shutdown_grace: String,
    /// Largest `hits` a request may carry.
    pub max_hits: u64,
    /// TCP listen address of a second HTTP listener that serves only `/metrics`, `/healthz`
    /// and `/readyz` (for Prometheus and probes); unset: none.
    pub metrics: Option<String>,
    /// Whether the main listeners (`http`, `unix_socket`) answer `/metrics`, `/healthz` and
    /// `/readyz` too.
    pub metrics_on_http: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http: "127.0.0.1:8080".into(),
            unix_socket: None,
            unix_socket_mode: "0660".into(),
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 4 * 1024,
            max_connections: 10_000,
            max_connection_buffer_bytes: 256 * 1024 * 1024,
            header_read_timeout: "5s".into(),
            idle_timeout: "60s".into(),
            shutdown_grace: "10s".into(),
            max_hits: 1_000_000,
            metrics: None,
            metrics_on_http: true,
        }
    }
}

/// `[limiter]`: the engine's bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimiterConfig {
    /// Hard cap on tracked (limit, key) states.
    pub max_states: usize,
    /// 0 = automatic (≥ 4 per core).
    pub shards: usize,
    /// Name of an environment variable holding the key-hash secret (shared by peers).
    pub hash_key_env: Option<String>,
    /// Where the counts are saved (on SIGTERM and every `snapshot_interval`) and restored
    /// from at start. `None`: not saved, a restart starts every key afresh.
    pub snapshot_path: Option<PathBuf>,
    /// How often the snapshot is written while serving.
    pub snapshot_interval: String,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            max_states: 1_000_000,
            shards: 0,
            hash_key_env: None,
            snapshot_path: None,
            snapshot_interval: "30s".into(),
        }
    }
}

/// Shortest `limiter.snapshot_interval`: each write copies every state.
pub const MIN_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest `limiter.snapshot_interval`.
pub const MAX_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(3600);

impl LimiterConfig {
    /// The interval between two snapshots (30 s if the text does not parse, which
    /// validation refuses).
    pub fn snapshot_interval(&self) -> Duration {
        parse_duration(&self.snapshot_interval).unwrap_or(Duration::from_secs(30))
    }
}

// ------------------------------------------------------------------------------------------
// Loading

impl Config {
    /// Parses and validates configuration text. `origin` names it in errors (a file name, or
    /// [`EMBEDDED_ORIGIN`]).
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let (config, source) = Self::parse(text, origin)?;
        match config.problems() {
            problems if problems.is_empty() => Ok(config),
            problems => Err(source.invalid(problems)),
        }
    }

    /// Parses configuration text without validating its values: only syntax and schema
    /// errors (unknown key, wrong type, missing field). The [`Source`] places any later
    /// problem (of this module's validation or of a component's) in the text.
    pub fn parse<'t>(text: &'t str, origin: &str) -> Result<(Self, Source<'t>), ConfigError> {
        let map = SourceMap::parse(text).map_err(|e| {
            ConfigError::single(
                origin,
                ErrorKind::Syntax,
                Issue {
                    position: Some(e.position),
                    path: ConfigPath::root(),
                    message: e.message,
                },
            )
        })?;
        let config: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |r| r.start);
            ConfigError::single(
                origin,
                ErrorKind::Schema,
                Issue {
                    position: Some(map.position(offset)),
                    path: map.path_at(offset),
                    message: e.message().lines().collect::<Vec<_>>().join(": "),
                },
            )
        })?;
        let source = Source {
            origin: origin.to_owned(),
            map,
        };
        Ok((config, source))
    }

    /// Reads, parses and validates a configuration file. Errors name the file as given.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        Self::from_toml_str(&Self::read(path)?, &path.display().to_string())
    }

    /// Reads a configuration file's text: at most [`MAX_CONFIG_BYTES`], UTF-8. Errors name
    /// the file as given.
    pub fn read(path: impl AsRef<Path>) -> Result<String, ConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let fail = |message: String| {
            ConfigError::single(
                &origin,
                ErrorKind::Read,
                Issue {
                    position: None,
                    path: ConfigPath::root(),
                    message,
                },
            )
        };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(fail(format!(
                "larger than {} MiB; not a configuration file",
                MAX_CONFIG_BYTES >> 20
            )));
        }
        String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let valid = std::str::from_utf8(&e.as_bytes()[..at]).unwrap_or_default();
            let p = Position::of_offset(valid, at);
            fail(format!(
                "not UTF-8 text (invalid byte at line {}, column {})",
                p.line, p.column
            ))
        })
    }

    /// The embedded default configuration (`src/config/default.toml`, compiled in): the tiers
    /// anonymous, basic, premium and api_key, the `auth` and `upload` limits and their
    /// routes, HTTP on `127.0.0.1:8080`.
    pub fn embedded() -> Self {
        // The text is fixed at build time and a test parses it, so failing here is a build
        // defect, never an input problem.
        Self::from_toml_str(EMBEDDED_DEFAULT, EMBEDDED_ORIGIN)
            .unwrap_or_else(|e| panic!("the embedded default configuration is invalid: {e}"))
    }

    /// Checks every value and every cross-reference; reports every problem found.
    ///
    /// The loaders run this and place each problem in the file; called on a configuration
    /// built in code, the problems come without positions.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems() {
            problems if problems.is_empty() => Ok(()),
            problems => Err(Self::unplaced(problems)),
        }
    }

    /// The error for `problems` of a configuration that has no text to place them in (built
    /// in code): each names its key path, without a position.
    pub fn unplaced(problems: Vec<Problem>) -> ConfigError {
        let issues = problems
            .into_iter()
            .map(|p| Issue {
                position: None,
                path: p.path,
                message: p.message,
            })
            .collect();
        ConfigError::new(CODE_ORIGIN, ErrorKind::Invalid, issues)
    }

    /// One line for `check-config`, start-up logs and `INFO`:
    /// `4 tiers (anonymous, api_key, basic, premium), 2 limits (auth, upload), 9 routes,
    /// 0 issuers; HTTP on 127.0.0.1:8080`.
    pub fn summary(&self) -> String {
        fn names<V>(m: &BTreeMap<String, V>) -> String {
            let v: Vec<&str> = m.keys().map(String::as_str).collect();
            if v.is_empty() {
                String::new()
            } else {
                format!(" ({})", v.join(", "))
            }
        }
        fn plural(n: usize, one: &str, many: &str) -> String {
            format!("{n} {}", if n == 1 { one } else { many })
        }
        let mut s = format!(
            "{}{}, {}{}, {}, {}; HTTP on {}",
            plural(self.tiers.len(), "tier", "tiers"),
            names(&self.tiers),
            plural(self.limits.len(), "limit", "limits"),
            names(&self.limits),
            plural(self.routes.len(), "route", "routes"),
            plural(self.auth.issuers.len(), "issuer", "issuers"),
            self.server.http,
        );
        if let Some(sock) = &self.server.unix_socket {
            s.push_str(&format!(" and {}", sock.display()));
        }
        s
    }
}

/// The origin errors name for a configuration built in code.
pub const CODE_ORIGIN: &str = "<configuration>";

/// A configuration's text, parsed for positions: where each key and value is written.
pub struct Source<'t> {
    origin: String,
    map: SourceMap<'t>,
}

impl Source<'_> {
    /// The file name (or [`EMBEDDED_ORIGIN`]) errors name.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Where `path` is written: its value, or its key (per `target`). A path that is not in
    /// the text (a default value, a missing key) is placed at the nearest ancestor that is.
    pub fn position(&self, path: &ConfigPath, target: Target) -> Position {
        self.map.locate(path, target)
    }

    /// The error for `problems` found in this text (never empty), each placed at its key.
    pub fn invalid(&self, problems: Vec<Problem>) -> ConfigError {
        let issues = problems
            .into_iter()
            .map(|p| Issue {
                position: Some(self.position(&p.path, p.target)),
                path: p.path,
                message: p.message,
            })
            .collect();
        ConfigError::new(&self.origin, ErrorKind::Invalid, issues)
    }
}

// ------------------------------------------------------------------------------------------
// Typed views

impl LimitConfig {
    /// The window as a duration.
    pub fn window(&self) -> Duration {
        parse_duration(&self.window).unwrap_or(Duration::from_secs(1))
    }
}

impl ServerConfig {
    /// The TCP listen address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .parse()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)))
    }

    /// The metrics listener's address, when one is configured (validation refuses one that
    /// does not parse).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_deref().and_then(|m| m.trim().parse().ok())
    }

    /// Permissions of the Unix socket file (`0o660` by default).
    pub fn unix_socket_mode(&self) -> u32 {
        parse_file_mode(&self.unix_socket_mode).unwrap_or(0o660)
    }

    pub fn header_read_timeout(&self) -> Duration {
        parse_duration(&self.header_read_timeout).unwrap_or(Duration::from_secs(5))
    }

    pub fn idle_timeout(&self) -> Duration {
        parse_duration(&self.idle_timeout).unwrap_or(Duration::from_secs(60))
    }

    pub fn shutdown_grace(&self) -> Duration {
        parse_duration(&self.shutdown_grace).unwrap_or(Duration::from_secs(10))
    }
}

/// Parses the file mode of a Unix socket: octal such as `0660` or `660`, at most `0777`.
pub fn parse_file_mode(text: &str) -> Option<u32> {
    let t = text.trim();
    if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(t, 8).ok().filter(|m| *m <= 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_round_trips_its_accessors() {
        let c = Config::embedded();
        assert_eq!(c.tiers.len(), 4);
        assert_eq!(c.server.header_read_timeout(), Duration::from_secs(5));
        assert_eq!(c.server.unix_socket_mode(), 0o660);
        assert_eq!(
            c.server.http_addr(),
            SocketAddr::from(([127, 0, 0, 1], 8080))
        );
        assert_eq!(c.log.format(), LogFormat::Text);
        c.validate().unwrap();
    }

    #[test]
    fn modes_are_octal_and_bounded() {
        assert_eq!(parse_file_mode("0660"), Some(0o660));
        assert_eq!(parse_file_mode("600"), Some(0o600));
        assert_eq!(parse_file_mode("0777"), Some(0o777));
        for bad in [
            "",
            "0868",
            "999",
            "1777",
            "rw-rw----",
            "07777",
            "-1",
            "0o660",
        ] {
            assert_eq!(parse_file_mode(bad), None, "{bad}");
        }
    }
}
