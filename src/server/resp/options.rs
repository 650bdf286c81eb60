//! [`RespOptions`]: everything a RESP listener needs besides the gate, read from `[resp]`;
//! and [`AdminPolicy`], who may run the admin commands, read from `resp.admin_secret_env` or
//! `[auth.admin]`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::idle_poll;
use crate::auth::{AdminAccess, AdminSecret};
use crate::config::Config;
use crate::resp::RequestLimits;

/// Who may run the admin commands (`REVOKE`).
#[derive(Debug)]
pub enum AdminPolicy {
    /// No admin secret is configured: admin commands are refused.
    Disabled,
    /// After `AUTH <secret>`; when `unix_socket_only`, only on the Unix socket.
    Secret {
        secret: Arc<AdminSecret>,
        unix_socket_only: bool,
    },
    /// `[auth.admin] unix_socket_only` without a secret: anyone who can open the Unix socket
    /// (its file permissions are the access control), nobody over TCP.
    UnixSocket,
}

/// Everything a RESP listener needs besides the gate. [`RespOptions::from_config`] reads it
/// from `[resp]` (and `[auth.admin]`); tests adjust the fields.
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
    pub admin: AdminPolicy,
    /// Event-loop threads of the door's own; 0 serves it on the caller's runtime.
    pub threads: usize,
    /// How long an event loop that is at least half busy polls for work before it sleeps
    /// (`resp.idle_poll_us`, [`idle_poll`]); zero never polls.
    pub idle_poll: Duration,
}

impl RespOptions {
    /// Reads `[resp]`, and `[auth.admin]` for the admin secret when `resp.admin_secret_env`
    /// is unset; `env` looks environment variables up (`|k| std::env::var(k).ok()`).
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let rc = &config.resp;
        let admin = match &rc.admin_secret_env {
            Some(var) => {
                let value =
                    env(var).with_context(|| format!("resp.admin_secret_env: {var} is not set"))?;
                let secret = AdminSecret::new(value.as_bytes())
                    .map_err(|e| anyhow::anyhow!("resp.admin_secret_env: {var}: {e}"))?;
                AdminPolicy::Secret {
                    secret: Arc::new(secret),
                    unix_socket_only: false,
                }
            }
            None => match AdminAccess::from_config(&config.auth.admin, env)
                .map_err(anyhow::Error::msg)?
            {
                AdminAccess::Disabled => AdminPolicy::Disabled,
                AdminAccess::Enabled {
                    secret: Some(secret),
                    unix_socket_only,
                } => AdminPolicy::Secret {
                    secret,
                    unix_socket_only,
                },
                AdminAccess::Enabled { secret: None, .. } => AdminPolicy::UnixSocket,
            },
        };
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
            admin,
            threads: rc.threads,
            idle_poll: idle_poll::configured_window(rc, idle_poll::cpu_quota_cores()),
        })
    }
}
