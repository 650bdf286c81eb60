//! Front doors: HTTP (TCP and Unix socket) and RESP. Each parses its input into request
//! facts, asks the [`crate::gate::Gate`], and renders the decision.
//!
//! OWNER NOTE (remove when implemented): `run` is what `tollgate serve` calls.

use std::path::PathBuf;

use crate::config::Config;

/// Runs every configured listener until SIGTERM/SIGINT; reloads `config_path` on SIGHUP.
pub async fn run(_config: Config, _config_path: Option<PathBuf>) -> anyhow::Result<()> {
    anyhow::bail!("server not implemented yet")
}
