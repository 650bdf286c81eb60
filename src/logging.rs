//! Logging: one `tracing` subscriber for the process, text or JSON on stderr per
//! `[log] format`, filtered by `[log] level` unless the environment variable `TOLLGATE_LOG`
//! says otherwise.
//!
//! The filter sits behind a reload handle so that a SIGHUP reload can change the level
//! without a restart ([`apply`]); the format is fixed at start (changing it mid-stream
//! would hand a log collector a file of two formats).
//!
//! What is never logged: tokens, API keys, secrets. The configuration holds no secret
//! itself (only names of environment variables), and components log token *outcomes*
//! (`expired`, `revoked`), never the token.

use std::io::IsTerminal as _;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Layer as _, Registry};

use crate::config::log::check_filter;
use crate::config::{LogConfig, LogFormat};

/// Environment variable that overrides `[log] level` (same syntax).
pub const ENV_FILTER_VAR: &str = "TOLLGATE_LOG";

/// What [`init`] set up, for [`apply`] on reload.
struct Installed {
    handle: reload::Handle<EnvFilter, Registry>,
    format: LogFormat,
    /// `TOLLGATE_LOG` was set and valid: reloads do not touch the level.
    env_override: bool,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();

fn filter(text: &str) -> Result<EnvFilter, String> {
    check_filter(text)?;
    EnvFilter::builder()
        .parse(text.trim())
        .map_err(|e| e.to_string())
}

/// Installs the process's subscriber. Call once, before anything logs; a second call (or a
/// subscriber installed by someone else, as in tests) is an error, not a panic.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    // TOLLGATE_LOG wins when it is set and valid; a bad value is reported once logging
    // works, and the configured level is used instead.
    let mut env_problem = None;
    let mut env_override = false;
    let env_filter = match std::env::var(ENV_FILTER_VAR) {
        Ok(v) if !v.trim().is_empty() => match filter(&v) {
            Ok(f) => {
                env_override = true;
                Some(f)
            }
            Err(e) => {
                env_problem = Some(e);
                None
            }
        },
        _ => None,
    };
    let level = match env_filter {
        Some(f) => f,
        None => filter(&config.level).map_err(|e| anyhow::anyhow!("log.level: {e}"))?,
    };
    let (level, handle) = reload::Layer::new(level);
    let format = config.format();
    let output = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(level)
        .with(output)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))?;
    let _ = INSTALLED.set(Installed {
        handle,
        format,
        env_override,
    });
    if let Some(problem) = env_problem {
        tracing::warn!(
            variable = ENV_FILTER_VAR,
            "ignoring {ENV_FILTER_VAR}: {problem}; using log.level"
        );
    }
    Ok(())
}

/// Applies a reloaded `[log]` section: the level changes at once (unless `TOLLGATE_LOG`
/// overrides it); a format change is reported as needing a restart. Without [`init`] (tests,
/// library use), does nothing.
pub fn apply(config: &LogConfig) {
    let Some(installed) = INSTALLED.get() else {
        return;
    };
    if config.format() != installed.format {
        tracing::warn!("log.format changed; it takes effect at the next restart");
    }
    if installed.env_override {
        return;
    }
    match filter(&config.level) {
        Ok(f) => {
            if let Err(e) = installed.handle.reload(f) {
                tracing::warn!("cannot change the log level: {e}");
            }
        }
        // Validation refused such a file before it got here; keep the old level regardless.
        Err(e) => tracing::warn!("log.level: {e}; keeping the previous level"),
    }
}
