//! API keys: a header (default `x-api-key`) matched against SHA-256 hashes from config.
//!
//! Only hashes are configured, so the config file does not hold usable keys. The presented
//! key is hashed and compared with every configured hash in constant time (no early exit on
//! a match or a mismatch), so response timing reveals neither which entry matched nor how
//! many leading bytes agreed.

use std::sync::Arc;

use ring::digest;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::error::AuthError;
use super::identity::{Identity, IdentityKind};
use crate::config::auth::ApiKeyConfig;

/// Longest API key looked at; longer values are refused without hashing.
pub const MAX_API_KEY_BYTES: usize = 1024;

struct KeyEntry {
    hash: [u8; 32],
    identity: Arc<Identity>,
}

/// The configured API keys.
pub struct ApiKeys {
    header: http::HeaderName,
    keys: Vec<KeyEntry>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("header", &self.header)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// SHA-256 of `key`, hex (what goes into config).
pub fn hash_hex(key: &str) -> String {
    digest::digest(&digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

impl ApiKeys {
    /// Builds the table from config (validated: 64 hex digits each).
    pub fn from_config(header: &str, keys: &[ApiKeyConfig]) -> Result<Self, String> {
        let header = http::HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| format!("api_key_header {header:?} is not a header name"))?;
        let keys = keys
            .iter()
            .map(|k| {
                let hash = parse_hex32(&k.sha256).ok_or_else(|| {
                    format!("api key of {:?}: sha256 is not 64 hex digits", k.owner)
                })?;
                Ok(KeyEntry {
                    hash,
                    identity: Arc::new(Identity {
                        kind: IdentityKind::ApiKey,
                        user_id: Some(k.owner.clone()),
                        email: None,
                        roles: k.roles.clone(),
                        permissions: k.permissions.clone(),
                        tier: k.tier.clone(),
                        issuer: None,
                        token: None,
                    }),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self { header, keys })
    }

    /// The header API keys are read from.
    pub fn header(&self) -> &http::HeaderName {
        &self.header
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The identity of the key `presented`, or `InvalidApiKey`.
    pub fn authenticate(&self, presented: &[u8]) -> Result<Arc<Identity>, AuthError> {
        if presented.is_empty() || presented.len() > MAX_API_KEY_BYTES {
            return Err(AuthError::InvalidApiKey);
        }
        let h = digest::digest(&digest::SHA256, presented);
        let h = h.as_ref();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, k) in self.keys.iter().enumerate() {
            let eq = k.hash.ct_eq(h);
            index.conditional_assign(&(i as u32), eq);
            found |= eq;
        }
        if bool::from(found) {
            Ok(Arc::clone(&self.keys[index as usize].identity))
        } else {
            Err(AuthError::InvalidApiKey)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        let cfg = |key: &str, owner: &str, tier: &str| ApiKeyConfig {
            sha256: hash_hex(key),
            owner: owner.into(),
            tier: tier.into(),
            roles: vec!["service".into()],
            permissions: vec![],
        };
        ApiKeys::from_config(
            "x-api-key",
            &[
                cfg("key-one-0123456789", "billing", "api_key"),
                cfg("key-two-0123456789", "reports", "premium"),
            ],
        )
        .unwrap()
    }

    #[test]
    fn matches_by_hash() {
        let k = keys();
        let id = k.authenticate(b"key-two-0123456789").unwrap();
        assert_eq!(id.user_id.as_deref(), Some("reports"));
        assert_eq!(id.tier, "premium");
        assert_eq!(id.kind, IdentityKind::ApiKey);
        assert!(id.has_role("service"));
        let id = k.authenticate(b"key-one-0123456789").unwrap();
        assert_eq!(id.user_id.as_deref(), Some("billing"));
    }

    #[test]
    fn refuses_unknown_empty_and_oversize_keys() {
        let k = keys();
        for bad in [
            &b"key-one-012345678"[..],
            b"",
            &[b'a'; MAX_API_KEY_BYTES + 1],
        ] {
            assert_eq!(k.authenticate(bad), Err(AuthError::InvalidApiKey));
        }
        // The hash itself is not a key.
        assert!(k
            .authenticate(hash_hex("key-one-0123456789").as_bytes())
            .is_err());
    }

    #[test]
    fn known_vector() {
        // sha256("test")
        assert_eq!(
            hash_hex("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert!(parse_hex32("zz").is_none());
        assert!(ApiKeys::from_config("bad header", &[]).is_err());
    }
}
