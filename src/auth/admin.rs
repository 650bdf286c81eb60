//! The admin secret ([`AdminSecret`]): kept only as its SHA-256 and checked in constant time.
//! Who may run admin operations is the gate's decision (`gate::AdminAccess`), which checks
//! presented secrets with this.

use ring::digest;
use subtle::ConstantTimeEq;

use crate::config::auth::MIN_HS256_SECRET_BYTES;

/// Shortest admin secret accepted.
pub const MIN_ADMIN_SECRET_BYTES: usize = MIN_HS256_SECRET_BYTES;

/// The admin bearer secret, kept only as its SHA-256.
pub struct AdminSecret {
    hash: [u8; 32],
}

impl std::fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminSecret([redacted])")
    }
}

impl AdminSecret {
    /// From the secret's bytes (≥ 32).
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_ADMIN_SECRET_BYTES {
            return Err(format!(
                "the admin secret must be at least {MIN_ADMIN_SECRET_BYTES} bytes"
            ));
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest::digest(&digest::SHA256, secret).as_ref());
        Ok(Self { hash })
    }

    /// True when `presented` is the secret. Both sides are hashed first, so the comparison
    /// takes the same time whatever the presented length and wherever it differs.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let h = digest::digest(&digest::SHA256, presented);
        bool::from(self.hash.ct_eq(h.as_ref()))
    }

    /// Checks an `Authorization` header value: `Bearer <secret>`.
    pub fn verify_authorization(&self, header: Option<&[u8]>) -> bool {
        match header.and_then(super::bearer_token) {
            Some(t) => self.verify(t),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "admin-secret-0123456789abcdef-0123456789";

    #[test]
    fn secret_checks() {
        assert!(AdminSecret::new(b"short").is_err());
        let s = AdminSecret::new(SECRET.as_bytes()).unwrap();
        assert!(s.verify(SECRET.as_bytes()));
        assert!(!s.verify(&SECRET.as_bytes()[..SECRET.len() - 1]));
        assert!(!s.verify(b""));
        let h = format!("Bearer {SECRET}");
        assert!(s.verify_authorization(Some(h.as_bytes())));
        assert!(s.verify_authorization(Some(format!("bearer  {SECRET}").as_bytes())));
        assert!(!s.verify_authorization(Some(format!("Basic {SECRET}").as_bytes())));
        assert!(!s.verify_authorization(None));
        assert_eq!(format!("{s:?}"), "AdminSecret([redacted])");
    }
}
