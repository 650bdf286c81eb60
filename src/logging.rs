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

/// Checks a filter as `[log] level` or `TOLLGATE_LOG` may hold it: a level name, or
/// `tracing` directives (`info,tollgate::auth=debug`).
///
/// A bare word is taken as a level, because `EnvFilter` would read `infoo` as "everything
/// from a module named infoo" and silently log nothing.
pub fn check_filter(text: &str) -> Result<(), String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("is empty (use e.g. \"info\" or \"info,tollgate::auth=debug\")".into());
    }
    let bare_word = !t.contains(['=', ',', '[', ':']);
    if bare_word {
        const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(t)) {
            return Err(format!(
                "{t:?} is not a level (use error, warn, info, debug, trace or off, or \
                 directives such as \"info,tollgate::auth=debug\")"
            ));
        }
        return Ok(());
    }
    EnvFilter::builder()
        .parse(t)
        .map(|_| ())
        .map_err(|e| format!("{t:?} is not a log filter: {e}"))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_are_accepted() {
        for ok in [
            "info",
            "DEBUG",
            "off",
            " warn ",
            "info,tollgate::auth=debug",
            "tollgate=trace",
            "warn,hyper=off",
        ] {
            check_filter(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn typos_are_refused_rather_than_logging_nothing() {
        for bad in ["", "infoo", "verbose", "tollgate=loud"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }
}
