//! `[log]`: the log format and the level filter.
//!
//! The filter's grammar is `tracing`'s (a level, or directives such as
//! `info,tollgate::auth=debug`); [`check_filter`] is the one check of it, used to validate
//! `[log] level` and, by the logging setup, the `TOLLGATE_LOG` override.

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use super::{ConfigPath, Validation};

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `tollgate=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogConfig {
    /// The format; `text` for anything but `json` (validation refuses anything else).
    pub fn format(&self) -> LogFormat {
        if self.format.trim().eq_ignore_ascii_case("json") {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }

    pub(super) fn check(&self, at: &ConfigPath, v: &mut Validation<'_>) {
        if !matches!(self.format.as_str(), "text" | "json") {
            v.invalid(
                at.key("format"),
                format!(
                    "{:?} is not a log format (use \"text\" or \"json\")",
                    self.format
                ),
            );
        }
        if let Err(e) = check_filter(&self.level) {
            v.invalid(at.key("level"), e);
        }
    }
}

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
