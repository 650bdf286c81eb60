//! Configuration: the TOML schema, the embedded default, loading, positions and validation.
//!
//! This module is data: it knows what a configuration file may say and whether what it says
//! is acceptable, and nothing of the components that run on it (it imports none of them).
//! It owns:
//! - the schema: [`Config`] and its sections, deserialized with serde; each later section
//!   lives in its own file ([`auth`], [`log`], [`routes`], [`policy`], [`resp`]) so that it
//!   can grow on its own;
//! - loading: [`Config::load`] (a file), [`Config::from_toml_str`] (text),
//!   [`Config::embedded`] (the commented default compiled in from `default.toml`, which
//!   `tollgate serve` runs on without `--config`), and [`Config::parse`], which keeps the
//!   parsed text as a [`Source`] that can say where any key path is written;
//! - validation of everything the file's own vocabulary decides ([`Config::validate`], run by
//!   every loader): names, bounds, durations, addresses, modes, cross-references between
//!   sections; every problem is reported, each with file, line and column ([`ConfigError`]);
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
pub mod duration;
pub mod error;
mod locate;
pub mod log;
pub mod policy;
pub mod resp;
pub mod routes;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use auth::AuthConfig;
pub use duration::{format_duration, parse_duration, DurationError};
pub use error::{ConfigError, ConfigPath, ErrorKind, Issue, PathSegment, Position};
pub use locate::Target;
pub use log::{LogConfig, LogFormat};
pub use policy::PolicyConfig;
pub use resp::RespConfig;
pub use routes::RouteConfig;

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
    /// Time allowed to read a request's headers.
    pub header_read_timeout: String,
    /// Idle keep-alive connections are closed after this.
    pub idle_timeout: String,
    /// In-flight requests get this long to finish on shutdown.
    pub shutdown_grace: String,
    /// Largest `hits` a request may carry.
    pub max_hits: u64,
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
            header_read_timeout: "5s".into(),
            idle_timeout: "60s".into(),
            shutdown_grace: "10s".into(),
            max_hits: 1_000_000,
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
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            max_states: 1_000_000,
            shards: 0,
            hash_key_env: None,
        }
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

    /// The embedded default configuration (`src/config/default.toml`, compiled in): the seeds'
    /// tiers, the `auth` and `upload` limits and their routes, HTTP on `127.0.0.1:8080`.
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
    /// `4 tiers (anonymous, api_key, basic, premium), 2 limits (auth, upload), 2 routes,
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

// ------------------------------------------------------------------------------------------
// Validation

/// Collects validation problems, each tied to the key it is about. Sections owned by other
/// modules receive one to report into (see the module doc).
pub struct Validation<'c> {
    config: &'c Config,
    problems: Vec<Problem>,
}

/// One problem found in a configuration, tied to the key path it is about; a [`Source`]
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
            let at = routes.index(i).key("limits");
            for (j, name) in route.limits.iter().enumerate() {
                // Empty and repeated names are the rule's own checks (RouteConfig::validate).
                if name.is_empty() || route.limits[..j].contains(name) {
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
        let ms = Duration::from_millis(1);
        v.duration(at.key("header_read_timeout"), &self.header_read_timeout, ms);
        v.duration(at.key("idle_timeout"), &self.idle_timeout, ms);
        v.duration(
            at.key("shutdown_grace"),
            &self.shutdown_grace,
            Duration::ZERO,
        );
        v.within(at.key("max_hits"), self.max_hits, 1, MAX_LIMIT);
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

    #[test]
    fn auth_messages_are_placed_by_their_prefix() {
        let mut auth = AuthConfig::default();
        auth.issuers.push(auth::IssuerConfig::new("ba"));
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
