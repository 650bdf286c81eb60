//! The limiter's hash key: the 16-byte key of the keyed hash that names every (limit, key)
//! state, and so every cell a node shares with its peers.
//!
//! With `limiter.hash_key_env` set, the key is the first 16 bytes of the SHA-256 of the
//! secret in that environment variable (at least 16 bytes): every process given the same
//! secret computes the same state hashes, which is what lets nodes merge each other's
//! counts. Unset, the key is random for this process: a single node needs no agreement, and
//! outsiders cannot aim hash collisions. The environment is read through the lookup the
//! gate was built with, never from `std::env` directly, so tests and embedders inject it.

use crate::config::secret::SecretEnv;
use crate::config::LimiterConfig;

/// Shortest hash-key secret accepted, in bytes.
pub const MIN_HASH_KEY_SECRET_BYTES: usize = 16;

/// The hash key `config` asks for, reading its secret through `env`.
pub(super) fn limiter_hash_key(
    config: &LimiterConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<[u8; 16]> {
    let mut key = [0u8; 16];
    match &config.hash_key_env {
        Some(var) => {
            let secret = SecretEnv {
                key: "limiter.hash_key_env",
                var,
                what: "the key-hash secret",
                when_unset: "set it to the secret shared by the nodes, or remove hash_key_env \
                             for a random per-process key",
                min_bytes: MIN_HASH_KEY_SECRET_BYTES,
            }
            .read(env)
            .map_err(anyhow::Error::msg)?;
            let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
            key.copy_from_slice(&digest.as_ref()[..16]);
        }
        None => rand::fill(&mut key),
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::clock::ManualClock;
    use crate::config::Algorithm;
    use crate::config::{Config, LimitConfig};
    use crate::gate::Gate;

    const SECRET: &str = "a shared secret of 32 bytes.....";

    fn config(hash_key_env: Option<&str>) -> Config {
        let mut c = Config::default();
        c.tiers.insert(
            "basic".into(),
            LimitConfig {
                limit: 5,
                window: "1m".into(),
                algorithm: Algorithm::SlidingWindow,
                key: None,
            },
        );
        c.limiter.hash_key_env = hash_key_env.map(str::to_string);
        c
    }

    fn gate(c: &Config, secret: Option<&str>) -> anyhow::Result<Gate> {
        let env = |var: &str| (var == "TEST_HASH_KEY").then(|| secret.map(str::to_string))?;
        Gate::with_env(c, Arc::new(ManualClock::new(1_000_000)), &env)
    }

    /// The state hash and the current cell of (basic, key) in `g`.
    fn names(g: &Gate, key: &str) -> (u64, crate::limiter::CellId) {
        let spec = &g.tiers()[0];
        (
            g.limiter().state_hash(spec, key),
            g.limiter().cell_at(spec, key, 1_000_000),
        )
    }

    #[test]
    fn the_same_secret_names_states_alike_in_every_process() {
        let c = config(Some("TEST_HASH_KEY"));
        let (a, b) = (
            gate(&c, Some(SECRET)).unwrap(),
            gate(&c, Some(SECRET)).unwrap(),
        );
        assert_eq!(names(&a, "203.0.113.7"), names(&b, "203.0.113.7"));
        assert_ne!(names(&a, "203.0.113.7").0, names(&a, "203.0.113.8").0);
        let other = gate(&c, Some("another secret of 32 bytes......")).unwrap();
        assert_ne!(names(&a, "203.0.113.7").0, names(&other, "203.0.113.7").0);
        // Without a configured secret each gate draws its own key.
        let c = config(None);
        let (a, b) = (gate(&c, None).unwrap(), gate(&c, None).unwrap());
        assert_ne!(names(&a, "k").0, names(&b, "k").0);
    }

    #[test]
    fn a_missing_or_short_secret_is_an_error_naming_the_variable() {
        let c = config(Some("TEST_HASH_KEY"));
        let e = gate(&c, None).err().expect("unset variable").to_string();
        assert!(e.contains("TEST_HASH_KEY") && e.contains("not set"), "{e}");
        let e = gate(&c, Some("short"))
            .err()
            .expect("short secret")
            .to_string();
        assert!(e.contains("TEST_HASH_KEY") && e.contains("16"), "{e}");
    }
}
