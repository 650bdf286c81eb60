//! tollgate: a rate-limiter and JWT-auth sidecar.
//!
//! OWNER NOTE: the crate doc is rewritten once the components exist; it must list the
//! components and how a request flows through them.
//!
//! Components (one module each):
//! - [`clock`]: injectable time source.
//! - [`limiter`]: sliding-window engine, sharded and capped.
//! - [`config`]: TOML schema, embedded default, validation, reload.
//! - [`auth`]: JWT verification, key sets, verified-token cache, revocation, API keys.
//! - [`policy`]: route rules, path normalisation, client IP.
//! - [`gate`]: the one decision function every front door calls.
//! - [`server`]: front doors (HTTP over TCP and Unix socket, RESP), one file each.
//! - [`resp`]: RESP framing.
//! - [`client`]: async Rust client for the RESP protocol.
//! - [`metrics`]: Prometheus registry.
//! - [`problem`]: RFC 9457 problem details for bad input.
//! - [`logging`]: the tracing subscriber (text or JSON, level reloadable).
//! - [`cli`]: the `tollgate` command line (`serve`, `check-config`, `print-default-config`).

pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod gate;
pub mod limiter;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod problem;
pub mod resp;
pub mod server;
