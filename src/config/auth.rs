//! `[auth]`: issuers, key sets, token cache, API keys, revocation, admin API.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {}
