//! `[resp]`: the RESP-framed protocol's listeners and bounds.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RespConfig {}
