//! Secrets the configuration names by environment variable (`secret_env`, `hs256_secret_env`,
//! `hash_key_env`): read through an injected lookup — start-up passes the process
//! environment, tests their own — and checked for a least length, with one shape of error
//! for every such key. The value is never part of an error.

/// One secret variable as a configuration key names it.
#[derive(Debug, Clone, Copy)]
pub struct SecretEnv<'a> {
    /// The key that names the variable, as errors show it (`cluster.secret_env`).
    pub key: &'a str,
    /// The environment variable.
    pub var: &'a str,
    /// What the secret is, for its errors (`the cluster secret`).
    pub what: &'a str,
    /// What to do when the variable is not set.
    pub when_unset: &'a str,
    /// Its shortest accepted length, in bytes.
    pub min_bytes: usize,
}

impl SecretEnv<'_> {
    /// The secret, or an error naming the key, the variable and the fix.
    pub fn read(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
        let SecretEnv {
            key,
            var,
            what,
            when_unset,
            min_bytes,
        } = *self;
        let value = env(var).ok_or_else(|| {
            format!("{key}: the variable {var} ({what}) is not set; {when_unset}")
        })?;
        if value.len() < min_bytes {
            return Err(format!(
                "{key}: {var} holds {} bytes; {what} needs at least {min_bytes} bytes \
                 (e.g. openssl rand -hex 32)",
                value.len()
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: SecretEnv<'static> = SecretEnv {
        key: "cluster.secret_env",
        var: "SECRET",
        what: "the cluster secret",
        when_unset: "export it on every node",
        min_bytes: 32,
    };

    #[test]
    fn unset_short_and_long_enough() {
        let e = CLUSTER.read(&|_| None).unwrap_err();
        assert_eq!(
            e,
            "cluster.secret_env: the variable SECRET (the cluster secret) is not set; export \
             it on every node"
        );
        let e = CLUSTER.read(&|_| Some("hidden".into())).unwrap_err();
        assert_eq!(
            e,
            "cluster.secret_env: SECRET holds 6 bytes; the cluster secret needs at least 32 \
             bytes (e.g. openssl rand -hex 32)"
        );
        assert!(!e.contains("hidden"), "the value is never shown");
        let long = "x".repeat(32);
        assert_eq!(CLUSTER.read(&|_| Some(long.clone())), Ok(long.clone()));
    }
}
