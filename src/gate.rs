//! The decision core: turns request facts into a decision. Every front door calls it.
//!
//! OWNER NOTE (remove when implemented): the signatures below are the contract the HTTP and
//! RESP doors are written against.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::limiter::Decision;

/// The facts of a `/check` (HTTP) or `CHECK` (RESP) request.
#[derive(Debug, Clone, Copy)]
pub struct CheckQuery<'a> {
    /// The caller's key (an IP, a user id…). Non-empty, at most [`MAX_KEY_BYTES`].
    pub key: &'a str,
    /// A configured tier: its limit always applies.
    pub tier: &'a str,
    /// Hits to count; 0 peeks.
    pub hits: u64,
    /// A configured named limit checked together with the tier's limit.
    pub limit: Option<&'a str>,
}

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 512;

/// Why a check could not be decided. Each door renders it (HTTP: problem+json 400;
/// RESP: `-ERR`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("the key is missing or empty")]
    MissingKey,
    #[error("the key is {0} bytes long; the limit is {MAX_KEY_BYTES}")]
    KeyTooLong(usize),
    #[error("unknown tier {0:?}")]
    UnknownTier(String),
    #[error("unknown limit {0:?}")]
    UnknownLimit(String),
    #[error("hits must be between 0 and {max}")]
    HitsOutOfRange { max: u64 },
}

/// The decision core.
pub struct Gate {
    #[allow(dead_code)]
    clock: Arc<dyn Clock>,
}

impl Gate {
    /// Builds the core from a validated configuration.
    pub fn new(_config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        Ok(Self { clock })
    }

    /// Decides a rate-limit check.
    pub fn check(&self, _q: &CheckQuery<'_>) -> Result<Decision, CheckError> {
        unimplemented!("gate not implemented yet")
    }
}
