//! What a configuration names outside itself — files, directories, environment variables —
//! checked before a start: `tollgate check-config` reports every problem `serve` would stop
//! on, and `serve` runs the same checks before it binds anything, so both say the same
//! thing, in the same words: the key, the path or variable, the cause, and what to do.
//!
//! The file's own vocabulary (names, bounds, cross-references) is `config`'s validation;
//! this is the rest, which depends on the machine the file runs on. What cannot be known
//! without doing it is not checked: a JWKS URL is named as such ([`Preflight::not_checked`]);
//! whether a TCP address is free is known only when tollgate binds it.

use std::ffi::CString;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{hash_key, AdminAccess, CheckAccess};
use crate::config::Config;

/// What the checks found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// Problems a start would stop on, one sentence each: key, value, cause, fix.
    pub problems: Vec<String>,
    /// What was not checked, and when it will be.
    pub not_checked: Vec<String>,
}

impl Preflight {
    /// Checks everything `config` names outside itself, reading environment variables
    /// through `env`. Every problem is reported, not only the first.
    pub fn run(config: &Config, env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut p = Preflight::default();
        if let Some(path) = &config.server.unix_socket {
            p.socket_dir("[server] unix_socket", path);
        }
        if config.resp.enabled {
            if let Some(path) = &config.resp.unix_socket {
                p.socket_dir("[resp] unix_socket", path);
            }
        }
        if let Some(path) = &config.auth.revocation.path {
            p.revocation_log(path);
        }
        for ic in &config.auth.issuers {
            if let Err(e) = crate::auth::check_key_source(ic, env) {
                p.problems.push(format!("[[auth.issuers]] {e}"));
            }
            if let Some(url) = &ic.jwks_url {
                p.not_checked.push(format!(
                    "[[auth.issuers]] {:?} jwks_url = {url:?}: not fetched here; tollgate \
                     fetches it at start and /readyz reports keyset:{} until it has",
                    ic.name, ic.name
                ));
            }
        }
        if let Err(e) = AdminAccess::from_config(config, env) {
            p.problems.push(format!("[auth.admin] {e}"));
        }
        if let Err(e) = CheckAccess::from_config(config, env) {
            p.problems.push(format!("[check] {e}"));
        }
        if let Err(e) = hash_key::limiter_hash_key(&config.limiter, env) {
            p.problems.push(format!("[limiter] {e:#}"));
        }
        if let Err(e) = config.cluster.read_secret(env) {
            p.problems.push(format!("[cluster] {e}"));
        }
        p
    }

    /// Whether a start would get past these checks.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// A Unix socket is created in its directory, which must exist and be writable.
    fn socket_dir(&mut self, key: &str, path: &Path) {
        let dir = parent(path);
        if let Some(problem) = writable_dir(dir) {
            self.problems.push(format!(
                "{key} = {:?}: {problem}; create it (mkdir -p {}) writable by the user \
                 tollgate runs as, or put the socket elsewhere",
                path.display().to_string(),
                dir.display()
            ));
        }
    }

    /// The revocation log is opened for reading and appending, and created when missing.
    fn revocation_log(&mut self, path: &Path) {
        let key = "[auth.revocation] path";
        let shown = path.display().to_string();
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => self.problems.push(format!(
                "{key} = {shown:?}: is a directory, not a file; name a file inside it (e.g. \
                 {}/revocations.log)",
                path.display()
            )),
            Ok(_) => {
                // Exists: it must open for reading and appending (nothing is written here).
                if let Err(e) = std::fs::OpenOptions::new()
                    .read(true)
                    .append(true)
                    .open(path)
                {
                    self.problems.push(format!(
                        "{key} = {shown:?}: cannot open the revocation log ({e}); give the \
                         user tollgate runs as read and write access to it"
                    ));
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let dir = parent(path);
                if let Some(problem) = writable_dir(dir) {
                    self.problems.push(format!(
                        "{key} = {shown:?}: cannot create the revocation log: {problem}; \
                         create it (mkdir -p {}) writable by the user tollgate runs as, or \
                         set the path to a file in a writable directory",
                        dir.display()
                    ));
                }
            }
            Err(e) => self.problems.push(format!(
                "{key} = {shown:?}: cannot inspect the revocation log ({e}); check the \
                 permissions of its directory"
            )),
        }
    }
}

/// The directory a file named by `path` lives in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Why `dir` cannot take a new file, if it cannot.
fn writable_dir(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Some(format!("the directory {} does not exist", dir.display()))
        }
        Err(e) => Some(format!(
            "cannot inspect the directory {} ({e})",
            dir.display()
        )),
        Ok(m) if !m.is_dir() => Some(format!("{} is not a directory", dir.display())),
        Ok(_) => {
            let c = CString::new(dir.as_os_str().as_bytes()).ok()?;
            // SAFETY: access(2) reads a NUL-terminated path that lives across the call.
            let ok = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
            (!ok).then(|| {
                format!(
                    "the directory {} is not writable by this user ({})",
                    dir.display(),
                    std::io::Error::last_os_error()
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn every_problem_is_reported_with_its_key_its_path_and_a_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let mut c = Config::default();
        c.auth.revocation.path = Some(missing.join("revocations.log"));
        c.server.unix_socket = Some(missing.join("http.sock"));
        c.auth.admin.enabled = true;
        c.auth.admin.secret_env = Some("TOLLGATE_TEST_NO_SUCH_ADMIN_SECRET".into());
        let p = Preflight::run(&c, &no_env);
        assert_eq!(p.problems.len(), 3, "{:#?}", p.problems);
        let log = &p.problems[1];
        assert!(log.starts_with("[auth.revocation] path = "), "{log}");
        assert!(log.contains(&missing.display().to_string()), "{log}");
        assert!(
            log.contains("does not exist") && log.contains("mkdir -p"),
            "{log}"
        );
        assert!(p.problems[0].starts_with("[server] unix_socket"), "{p:?}");
        assert!(
            p.problems[2].contains("TOLLGATE_TEST_NO_SUCH_ADMIN_SECRET"),
            "{p:?}"
        );
        assert!(!p.is_ok());
    }

    #[test]
    fn a_cluster_secret_missing_or_short_is_a_problem() {
        let mut c = Config::default();
        c.cluster.enabled = true;
        c.cluster.secret_env = Some("TOLLGATE_TEST_NO_SUCH_CLUSTER_SECRET".into());
        let p = Preflight::run(&c, &no_env);
        assert_eq!(p.problems.len(), 1, "{:#?}", p.problems);
        assert!(
            p.problems[0].starts_with(
                "[cluster] cluster.secret_env: the variable \
                 TOLLGATE_TEST_NO_SUCH_CLUSTER_SECRET"
            ),
            "{p:?}"
        );
        let p = Preflight::run(&c, &|_| Some("x".repeat(31)));
        assert!(
            p.problems.iter().any(|e| e.contains("holds 31 bytes")),
            "{p:?}"
        );
        // With the secret (and the hash key it requires) right, nothing remains.
        let p = Preflight::run(&c, &|_| Some("x".repeat(32)));
        assert_eq!(p.problems, Vec::<String>::new());
    }

    #[test]
    fn a_check_callers_secret_missing_from_the_environment_is_a_problem() {
        let mut c = Config::default();
        c.check.callers.push(crate::config::CheckCallerConfig {
            name: "api".into(),
            secret_env: "TOLLGATE_TEST_NO_SUCH_CALLER_SECRET".into(),
        });
        let p = Preflight::run(&c, &no_env);
        assert_eq!(p.problems.len(), 1, "{:#?}", p.problems);
        let problem = &p.problems[0];
        assert!(
            problem.starts_with("[check] check.callers[0].secret_env"),
            "{problem}"
        );
        assert!(
            problem.contains("TOLLGATE_TEST_NO_SUCH_CALLER_SECRET"),
            "{problem}"
        );
        let secret = "s".repeat(32);
        let env =
            |var: &str| (var == "TOLLGATE_TEST_NO_SUCH_CALLER_SECRET").then(|| secret.clone());
        assert!(Preflight::run(&c, &env).is_ok());
    }

    #[test]
    fn a_writable_directory_and_an_existing_log_are_fine() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("revocations.log");
        let mut c = Config::default();
        c.auth.revocation.path = Some(log.clone());
        assert!(Preflight::run(&c, &no_env).is_ok());
        std::fs::write(&log, "").unwrap();
        assert!(Preflight::run(&c, &no_env).is_ok());
        // A directory where the file should be.
        c.auth.revocation.path = Some(dir.path().to_path_buf());
        let p = Preflight::run(&c, &no_env);
        assert!(p.problems[0].contains("is a directory"), "{p:?}");
    }
}
