//! [`RespOptions`]: everything a RESP listener needs besides the gate, read from `[resp]`.
//! (Who may run the admin commands is the gate's decision: `gate::AdminAccess`.)

use std::path::PathBuf;
use std::time::Duration;

use super::idle_poll;
use crate::config::Config;
use crate::resp::RequestLimits;

/// Everything a RESP listener needs besides the gate. [`RespOptions::from_config`] reads it
/// from `[resp]`; tests adjust the fields.
#[derive(Debug)]
pub struct RespOptions {
    /// TCP address to listen on; `None` for no TCP listener.
    pub tcp: Option<String>,
    /// Unix socket to listen on, and its file mode.
    pub unix_socket: Option<PathBuf>,
    pub unix_socket_mode: u32,
    pub limits: RequestLimits,
    pub max_pending_reply_bytes: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    /// Connections still open this long after a shutdown began are dropped.
    pub shutdown_grace: Duration,
    /// Event-loop threads of the door's own; 0 serves it on the caller's runtime.
    pub threads: usize,
    /// How long an event loop that is at least half busy polls for work before it sleeps
    /// (`resp.idle_poll_us`, [`idle_poll`]); zero never polls.
    pub idle_poll: Duration,
    /// The cluster's latest report, for `INFO cluster`; `None` when `[cluster]` is off (not
    /// from `[resp]`: the server sets it).
    pub cluster: Option<crate::cluster::status::ClusterStatus>,
    /// `server.max_connection_buffer_bytes`: the budget of every connection's buffers.
    pub max_connection_buffer_bytes: usize,
    /// The budget shared with the HTTP door, when the server runs both (not from `[resp]`:
    /// the server sets it); `None`: the door makes its own of `max_connection_buffer_bytes`.
    pub budget: Option<std::sync::Arc<crate::server::budget::ConnectionBudget>>,
}

impl RespOptions {
    /// Reads `[resp]`.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let rc = &config.resp;
        Ok(Self {
            tcp: rc.tcp_addr().map(|a| a.to_string()),
            unix_socket: rc.unix_socket.clone(),
            unix_socket_mode: rc.unix_socket_mode(),
            limits: RequestLimits {
                max_bulk_bytes: rc.max_bulk_bytes,
                max_args: rc.max_args,
                max_inline_bytes: rc.max_inline_bytes,
                max_command_bytes: rc.max_command_bytes,
            },
            max_pending_reply_bytes: rc.max_pending_reply_bytes,
            max_connections: rc.max_connections,
            idle_timeout: rc.idle_timeout(),
            shutdown_grace: config.server.shutdown_grace(),
            threads: rc.threads,
            idle_poll: idle_poll::configured_window(rc, idle_poll::cpu_quota_cores()),
            cluster: None,
            max_connection_buffer_bytes: config.server.max_connection_buffer_bytes,
            budget: None,
        })
    }
}
