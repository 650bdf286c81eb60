//! Revocation through the public API: checked on every cache hit, by jti and by subject
//! (with the `iat` rules), durable across restarts and across `kill -9` of a real process.

mod auth_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_support as s;
use tollgate::auth::{AuthError, Authenticator, Revocation, RevocationStore};
use tollgate::clock::SystemClock;
use tollgate::gate::RevokeRequest;

const FAR_FUTURE: i64 = 4_102_444_800;

fn user(a: &Authenticator, name: &str) -> Result<String, AuthError> {
    let h = s::header(&s::token(name));
    a.authenticate_now(&s::input(&h))
        .map(|id| id.user_id.clone().unwrap())
}

fn with_log(dir: &tempfile::TempDir) -> tollgate::config::AuthConfig {
    let mut cfg = s::config(s::static_issuer("jwks_rotated.json"));
    cfg.revocation.path = Some(dir.path().join("revocations.log"));
    cfg
}

#[test]
fn jti_revocation_is_checked_on_cache_hits() {
    let dir = tempfile::tempdir().unwrap();
    let a = s::build(&with_log(&dir), s::clock());
    assert!(a.revocations().is_durable());
    assert_eq!(user(&a, "eddsa_with_jti").unwrap(), "user_jti");
    assert_eq!(user(&a, "eddsa_with_jti").unwrap(), "user_jti");
    let hits = a.cache().stats.hits.load(Ordering::Relaxed);
    assert_eq!(hits, 1);

    assert!(a.revocations().revoke_jti("jti-0001", FAR_FUTURE).unwrap());
    assert_eq!(user(&a, "eddsa_with_jti"), Err(AuthError::Revoked));
    assert_eq!(
        a.cache().stats.hits.load(Ordering::Relaxed),
        hits + 1,
        "answered from the cache, and still refused"
    );
    assert_eq!(AuthError::Revoked.reason(), "revoked");
    // Other tokens of other users are untouched.
    assert_eq!(user(&a, "eddsa_better_auth").unwrap(), "user_1");
    assert_eq!(a.outcomes.revoked.load(Ordering::Relaxed), 1);
}

#[test]
fn subject_revocation_covers_tokens_issued_before_t() {
    let dir = tempfile::tempdir().unwrap();
    let a = s::build(&with_log(&dir), s::clock());
    let issued = s::manifest().generated_at as i64;
    assert!(user(&a, "eddsa_better_auth").is_ok());

    // "before T" is strict: a token issued at T itself stays valid.
    a.revocations().revoke_subject("user_1", issued).unwrap();
    assert_eq!(user(&a, "eddsa_better_auth").unwrap(), "user_1");
    a.revocations()
        .revoke_subject("user_1", issued + 1)
        .unwrap();
    assert_eq!(user(&a, "eddsa_better_auth"), Err(AuthError::Revoked));
    // Every token of that user, whatever its algorithm or issuer path.
    assert_eq!(user(&a, "eddsa_premium_roles").unwrap(), "user_premium");

    // A token without iat cannot show it postdates the revocation.
    assert!(user(&a, "eddsa_no_iat").is_ok());
    a.revocations()
        .revoke_subject("user_no_iat", issued - 3600)
        .unwrap();
    assert_eq!(user(&a, "eddsa_no_iat"), Err(AuthError::Revoked));

    // The subject is the resolved user id (here from the userId fallback).
    a.revocations()
        .revoke_subject("user_uid", issued + 1)
        .unwrap();
    assert_eq!(user(&a, "eddsa_userid_only"), Err(AuthError::Revoked));

    // The HS256 issuer's users too.
    a.revocations()
        .revoke_subject("user_hs", issued + 1)
        .unwrap();
    assert_eq!(user(&a, "hs256"), Err(AuthError::Revoked));
}

#[test]
fn revocations_survive_a_restart_and_the_admin_body_applies() {
    let dir = tempfile::tempdir().unwrap();
    let issued = s::manifest().generated_at as i64;
    {
        let a = s::build(&with_log(&dir), s::clock());
        let r = RevokeRequest::from_json(br#"{"jti":"jti-0001","exp":4102444800}"#).unwrap();
        assert!(r.apply(a.revocations()).unwrap());
        let body = format!(r#"{{"sub":"user_1","before":{}}}"#, issued + 1);
        RevokeRequest::from_json(body.as_bytes())
            .unwrap()
            .apply(a.revocations())
            .unwrap();
    }
    let a = s::build(&with_log(&dir), s::clock());
    assert_eq!(user(&a, "eddsa_with_jti"), Err(AuthError::Revoked));
    assert_eq!(user(&a, "eddsa_better_auth"), Err(AuthError::Revoked));
    assert_eq!(user(&a, "es256").unwrap(), "user_es256");
    let list = a.revocations().list();
    assert_eq!(list.len(), 2);
    assert!(list.contains(&Revocation::Jti {
        jti: "jti-0001".into(),
        exp: FAR_FUTURE
    }));
}

#[test]
fn a_full_store_refuses_instead_of_forgetting() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = with_log(&dir);
    cfg.revocation.max_entries = 2;
    let a = s::build(&cfg, s::clock());
    a.revocations().revoke_jti("a", FAR_FUTURE).unwrap();
    a.revocations().revoke_jti("b", FAR_FUTURE).unwrap();
    let e = a.revocations().revoke_jti("c", FAR_FUTURE).unwrap_err();
    assert!(e.to_string().contains("full"), "{e}");
    assert_eq!(a.revocations().len(), 2);
}

#[test]
fn a_store_shared_with_the_authenticator_is_the_one_checked() {
    let store = Arc::new(RevocationStore::in_memory(
        s::clock(),
        tollgate::auth::RevocationOptions::default(),
    ));
    let a = s::build_with_store(
        &s::config(s::static_issuer("jwks.json")),
        s::clock(),
        Arc::clone(&store),
    );
    assert!(user(&a, "eddsa_with_jti").is_ok());
    store.revoke_jti("jti-0001", FAR_FUTURE).unwrap();
    assert_eq!(user(&a, "eddsa_with_jti"), Err(AuthError::Revoked));
    assert!(!a.revocations().is_durable());
}

/// Env var that turns the test below into the child process of the kill -9 test.
const CHILD_ENV: &str = "TOLLGATE_REVOCATION_CHILD_LOG";

/// The child half of `revocations_survive_kill_9`: revokes, reports, then waits to be
/// killed (and exits by itself after a minute if nobody does). A no-op in a normal run.
#[test]
fn revocation_child_process() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = RevocationStore::open(&path, Arc::new(SystemClock)).unwrap();
    store.revoke_jti("jti-0001", FAR_FUTURE).unwrap();
    store.revoke_subject("user_1", FAR_FUTURE - 1).unwrap();
    // Only now, after both calls returned (fsync done), tell the parent.
    println!("REVOKED");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        std::thread::park_timeout(Duration::from_secs(1));
    }
}

#[test]
fn revocations_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("revocations.log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "revocation_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("REVOKED") {
                let _ = tx.send(());
                break;
            }
        }
    });
    let reported = rx.recv_timeout(Duration::from_secs(30));
    // SIGKILL: no destructor, no flush, no chance to finish anything.
    child.kill().unwrap();
    child.wait().unwrap();
    reported.expect("the child reported its revocations");

    let mut cfg = s::config(s::static_issuer("jwks.json"));
    cfg.revocation.path = Some(log);
    let a = s::build(&cfg, s::clock());
    assert_eq!(user(&a, "eddsa_with_jti"), Err(AuthError::Revoked));
    assert_eq!(user(&a, "eddsa_better_auth"), Err(AuthError::Revoked));
    assert_eq!(user(&a, "es256").unwrap(), "user_es256");
}
