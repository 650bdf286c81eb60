//! `[resp]`: the RESP-framed protocol's listeners and bounds (docs/protocol.md).
//!
//! The protocol is off unless `enabled = true`: a sidecar opens only the ports it is asked
//! for, and several tollgate processes (tests, a node per pod on one host) must not fight
//! over a fixed port. Once enabled it listens on `tcp` (default `127.0.0.1:7070`) and, when
//! set, on `unix_socket`; `tcp = ""` serves the Unix socket alone.
//!
//! ```toml
//! [resp]
//! enabled = true
//! tcp = "127.0.0.1:7070"
//! unix_socket = "/run/tollgate/resp.sock"
//! threads = 1                                  # event-loop threads of its own (0: shared)
//! idle_poll_us = 20                            # a busy loop polls this long before sleeping
//! ```
//!
//! Every bound a client could push on has a key here; the defaults suit tollgate's commands
//! (a key is at most 512 bytes, a token at most 8 KiB) with room to spare.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{parse_duration, parse_file_mode, ConfigPath, Validation};

/// The default TCP address once the protocol is enabled.
pub const DEFAULT_RESP_TCP: &str = "127.0.0.1:7070";

/// `[resp]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RespConfig {
    /// Serve the protocol at all.
    pub enabled: bool,
    /// TCP listen address (IP:port); empty for no TCP listener.
    pub tcp: String,
    /// Unix socket path, when the protocol should also (or only) be served there.
    pub unix_socket: Option<PathBuf>,
    /// Permissions of the Unix socket file, octal string.
    pub unix_socket_mode: String,
    /// RESP connections open at once, TCP and Unix socket together.
    pub max_connections: usize,
    /// A connection with no complete command and no reply written for this long is closed.
    pub idle_timeout: String,
    /// Longest bulk string (one argument of a command).
    pub max_bulk_bytes: usize,
    /// Most arguments in one command, the command's name included.
    pub max_args: usize,
    /// Longest inline (plain-text) command line.
    pub max_inline_bytes: usize,
    /// Largest single command on the wire.
    pub max_command_bytes: usize,
    /// Replies waiting to be written on one connection: past this, tollgate stops reading
    /// (and executing) that connection's pipelined commands until the client has read them.
    pub max_pending_reply_bytes: usize,
    /// Deprecated alias of `auth.admin.secret_env` (the one admin secret of every door):
    /// when set, admin access is enabled with this variable's secret, and a warning is
    /// logged at start. Removed in the next release.
    pub admin_secret_env: Option<String>,
    /// Event-loop threads of the protocol's own: each runs a single-threaded runtime and
    /// keeps every connection it accepts, as Redis's event loop does, so a command never
    /// wakes a second core. 0 serves the connections on the server's shared runtime, with
    /// the HTTP door.
    pub threads: usize,
    /// Microseconds an event loop that is at least half busy polls for more work before it
    /// sleeps, which spares clients the cost of waking it (docs/protocol.md#idle-polling);
    /// 0 never polls. Unset: 20, or 0 when the process's CPU quota is under `threads` + 1
    /// cores. Applies to the protocol's own threads (`threads` ≥ 1).
    pub idle_poll_us: Option<u64>,
}

impl Default for RespConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            tcp: DEFAULT_RESP_TCP.into(),
            unix_socket: None,
            unix_socket_mode: "0660".into(),
            max_connections: 10_000,
            idle_timeout: "5m".into(),
            max_bulk_bytes: 64 * 1024,
            max_args: 64,
            max_inline_bytes: 64 * 1024,
            max_command_bytes: 256 * 1024,
            max_pending_reply_bytes: 1024 * 1024,
            admin_secret_env: None,
            threads: 1,
            idle_poll_us: None,
        }
    }
}

/// Smallest `max_bulk_bytes`: a bearer token (up to 8 KiB) must fit in one argument.
pub const MIN_BULK_BYTES: usize = 8 * 1024;
/// Fewest `max_args`: `HELLO 3 AUTH default <password> SETNAME <name>` has seven.
pub const MIN_ARGS: usize = 8;
/// Most event-loop threads.
pub const MAX_THREADS: usize = 64;
/// Largest `idle_poll_us`.
pub const MAX_IDLE_POLL_US: u64 = 1_000;

impl RespConfig {
    /// The TCP address, or `None` when `tcp` is empty (or unusable; validation refuses that).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        if self.tcp.trim().is_empty() {
            None
        } else {
            self.tcp.parse().ok()
        }
    }

    /// The idle timeout (5 minutes when unreadable; validation refuses that).
    pub fn idle_timeout(&self) -> Duration {
        parse_duration(&self.idle_timeout).unwrap_or(Duration::from_secs(300))
    }

    /// Permissions of the Unix socket file (`0o660` when unreadable).
    pub fn unix_socket_mode(&self) -> u32 {
        parse_file_mode(&self.unix_socket_mode).unwrap_or(0o660)
    }

    /// Checks the section, each problem at its key. Listener checks apply only when enabled,
    /// so that a disabled section with a half-written address does not stop a start.
    pub fn validate(&self, at: &ConfigPath, v: &mut Validation<'_>) {
        let server = &v.config().server;
        let (server_http, server_unix) = (server.http.clone(), server.unix_socket.clone());
        if self.enabled {
            let tcp = self.tcp.trim();
            if !tcp.is_empty() {
                match tcp.parse::<SocketAddr>() {
                    Err(_) => v.invalid(
                        at.key("tcp"),
                        format!(
                            "{:?} is not a listen address (use IP:port, e.g. {DEFAULT_RESP_TCP}, \
                             or \"\" for no TCP listener)",
                            self.tcp
                        ),
                    ),
                    Ok(addr) => {
                        let same = server_http.parse::<SocketAddr>().ok() == Some(addr);
                        if same && addr.port() != 0 {
                            v.invalid(
                                at.key("tcp"),
                                format!("{addr} is also server.http; give RESP its own port"),
                            );
                        }
                    }
                }
            } else if self.unix_socket.is_none() {
                v.invalid(
                    at.key("tcp"),
                    "is empty and resp.unix_socket is not set: the protocol would listen nowhere \
                     (set one, or enabled = false)",
                );
            }
        }
        let path = self.unix_socket.as_deref();
        if v.unix_socket(at, path, &self.unix_socket_mode) && server_unix.as_deref() == path {
            v.invalid(
                at.key("unix_socket"),
                "is also server.unix_socket; give RESP its own socket file",
            );
        }
        v.within(
            at.key("max_connections"),
            self.max_connections as u64,
            1,
            1_000_000,
        );
        v.duration(
            at.key("idle_timeout"),
            &self.idle_timeout,
            Duration::from_secs(1),
        );
        const MIB: u64 = 1024 * 1024;
        v.within(
            at.key("max_bulk_bytes"),
            self.max_bulk_bytes as u64,
            MIN_BULK_BYTES as u64,
            16 * MIB,
        );
        v.within(
            at.key("max_args"),
            self.max_args as u64,
            MIN_ARGS as u64,
            4096,
        );
        v.within(
            at.key("max_inline_bytes"),
            self.max_inline_bytes as u64,
            1024,
            16 * MIB,
        );
        // A command must be able to carry at least one maximal argument.
        let bulk_ok = (MIN_BULK_BYTES as u64..=16 * MIB).contains(&(self.max_bulk_bytes as u64));
        v.within(
            at.key("max_command_bytes"),
            self.max_command_bytes as u64,
            if bulk_ok {
                self.max_bulk_bytes as u64 + 64
            } else {
                MIN_BULK_BYTES as u64
            },
            256 * MIB,
        );
        v.within(
            at.key("max_pending_reply_bytes"),
            self.max_pending_reply_bytes as u64,
            4 * 1024,
            256 * MIB,
        );
        v.within(
            at.key("threads"),
            self.threads as u64,
            0,
            MAX_THREADS as u64,
        );
        if let Some(us) = self.idle_poll_us {
            v.within(at.key("idle_poll_us"), us, 0, MAX_IDLE_POLL_US);
        }
        if let Some(name) = &self.admin_secret_env {
            v.env_var_name(at.key("admin_secret_env"), name);
        }
    }
}
