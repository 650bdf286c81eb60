//! `REVOKE JTI <jti> <exp>` / `REVOKE SUB <sub> <before>`: revokes one token, or every
//! token of a subject issued before a time. An admin command: refused unless the connection
//! may run admin commands ([`AdminPolicy`]).
//!
//! The arguments and access are checked at once ([`apply`]); the write to the revocation
//! log waits for an fsync on the blocking pool, so the connection loop [`settle`]s it and
//! [`reply`] answers `+OK` only once the revocation is durable.

use std::sync::Arc;

use bytes::BytesMut;

use super::{err, int_arg, is, wrong_arity, Flow, Settled, Work};
use crate::auth::revocation::MAX_ID_BYTES;
use crate::auth::{RevocationError, RevokeRequest};
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::door::DoorShared;
use crate::server::resp::options::AdminPolicy;
use crate::server::resp::stats::BatchCounts;

/// `REVOKE`: checks its access and arguments and hands the store write to the loop as
/// [`Work::Revoke`].
pub(super) fn apply<'a>(
    conn: &Conn,
    args: &Args<'a>,
    door: &DoorShared,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) -> Flow<'a> {
    match parse(conn, args, door, out, counts) {
        Some(request) => Flow::Await(Work::Revoke(request)),
        None => Flow::Continue,
    }
}

/// `REVOKE JTI <jti> <exp>` / `REVOKE SUB <sub> <before>`: admin only. Checks the
/// arguments and access; the store write is [`settle`]d by the loop.
fn parse(
    conn: &Conn,
    args: &Args<'_>,
    door: &DoorShared,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) -> Option<RevokeRequest> {
    if args.len() != 4 {
        wrong_arity(out, "revoke", counts);
        return None;
    }
    let refusal = match &door.options.admin {
        AdminPolicy::Disabled => Some(
            "ERR REVOKE is disabled: no admin secret is configured \
             (resp.admin_secret_env or [auth.admin])",
        ),
        AdminPolicy::Secret {
            unix_socket_only, ..
        } => {
            if *unix_socket_only && !conn.via_unix {
                Some("NOPERM admin commands are only allowed on the Unix socket")
            } else if !conn.admin {
                Some("NOAUTH Authentication required.")
            } else {
                None
            }
        }
        AdminPolicy::UnixSocket => {
            (!conn.via_unix).then_some("NOPERM admin commands are only allowed on the Unix socket")
        }
    };
    if let Some(msg) = refusal {
        err(out, msg, counts);
        return None;
    }
    let (kind, time) = if is(args[1], "JTI") {
        ("jti", "exp")
    } else if is(args[1], "SUB") {
        ("sub", "before")
    } else {
        err(
            out,
            "ERR REVOKE takes JTI <jti> <exp> or SUB <sub> <before>",
            counts,
        );
        return None;
    };
    let id = match std::str::from_utf8(args[2]) {
        Ok(id) if !id.is_empty() && id.len() <= MAX_ID_BYTES => id.to_owned(),
        _ => {
            let msg = format!("ERR the {kind} must be 1 to {MAX_ID_BYTES} bytes of UTF-8 text");
            err(out, &msg, counts);
            return None;
        }
    };
    let Some(at) = int_arg(args[3]) else {
        let msg = format!("ERR {time} must be an integer (seconds since the epoch)");
        err(out, &msg, counts);
        return None;
    };
    Some(if kind == "jti" {
        RevokeRequest::Jti { jti: id, exp: at }
    } else {
        RevokeRequest::Subject {
            sub: id,
            before: at,
        }
    })
}

/// Records the revocation in the store and its log.
pub(super) async fn settle(request: RevokeRequest, door: &DoorShared) -> Settled {
    // Blocking file I/O with an fsync: on the blocking pool, not the reactor. The
    // connection waits for it (its later replies stay in order); others do not.
    let store = Arc::clone(door.gate.authenticator().revocations());
    let r = request.clone();
    let result = tokio::task::spawn_blocking(move || r.apply(&store))
        .await
        .map_err(|_| ());
    Settled::Revoke(request, result)
}

/// Writes the answer of a settled `REVOKE`: `+OK` once it is durable.
pub(super) fn reply(
    request: RevokeRequest,
    result: Result<Result<bool, RevocationError>, ()>,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    match result {
        Ok(Ok(_)) => {
            counts.revocations += 1;
            out.extend_from_slice(b"+OK\r\n");
        }
        Ok(Err(e)) => {
            let (kind, time) = match request {
                RevokeRequest::Jti { .. } => ("jti", "exp"),
                RevokeRequest::Subject { .. } => ("sub", "before"),
            };
            let msg = match e {
                RevocationError::BadId => {
                    format!("ERR the {kind} must be 1 to {MAX_ID_BYTES} bytes")
                }
                RevocationError::BadTime => format!("ERR {time} is out of range"),
                RevocationError::Full(n) => {
                    format!("ERR the revocation store is full ({n} entries)")
                }
                // In force in this process, but not on disk: say so, so the caller
                // retries rather than believing it will survive a restart.
                RevocationError::Io(e) => format!(
                    "ERR the revocation is in force but was not saved to the log ({e}); retry"
                ),
                RevocationError::Corrupt { .. } => {
                    "ERR the revocation log is unreadable".to_string()
                }
            };
            err(out, &msg, counts);
        }
        Err(()) => err(out, "ERR the revocation was not recorded", counts),
    }
}

#[cfg(test)]
mod tests {
    use crate::auth::revocation::MAX_ID_BYTES;
    use crate::server::resp::testing::{
        auth_door, conn, fixtures, run, some, token, verdict, verify, SECRET,
    };

    #[test]
    fn revoke_is_durable_before_ok_and_verify_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("revocations.log");
        let d = auth_door(Some(&log));
        let mut c = conn(false);
        let with_jti = token("eddsa_with_jti");
        let user_1 = token("eddsa_better_auth");
        assert_eq!(
            verdict(&verify(&mut c, &d, &with_jti, "/x", "10.0.0.1")).0,
            200
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, &user_1, "/x", "10.0.0.1")).0,
            200
        );
        assert!(run(&mut c, &d, "REVOKE JTI jti-0001 4102444800").starts_with("-NOAUTH"));
        assert_eq!(run(&mut c, &d, &format!("AUTH {SECRET}")), "+OK\r\n");
        assert_eq!(run(&mut c, &d, "REVOKE JTI jti-0001 4102444800"), "+OK\r\n");
        // On disk when +OK came back.
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("\"jti-0001\""), "{text}");
        // The cached token is refused at once (revocation is checked on every cache hit).
        assert_eq!(
            verdict(&verify(&mut c, &d, &with_jti, "/x", "10.0.0.1")),
            (401, some("revoked"), None, None, None, -1, -1)
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, &user_1, "/x", "10.0.0.1")).0,
            200
        );
        // Every token of user_1 issued before a second after the fixtures were made.
        let iat = fixtures()["generated_at"].as_i64().unwrap();
        assert_eq!(
            run(&mut c, &d, &format!("revoke sub user_1 {}", iat + 1)),
            "+OK\r\n"
        );
        assert_eq!(
            verdict(&verify(&mut c, &d, &user_1, "/x", "10.0.0.1")).1,
            some("revoked")
        );
        // Again: nothing new, still +OK.
        assert_eq!(
            run(&mut c, &d, &format!("REVOKE SUB user_1 {}", iat + 1)),
            "+OK\r\n"
        );
        assert_eq!(d.0.gate.authenticator().revocations().len(), 2);
        // Values the store refuses.
        let long = "j".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            run(&mut c, &d, &format!("REVOKE JTI {long} 1")),
            format!("-ERR the jti must be 1 to {MAX_ID_BYTES} bytes of UTF-8 text\r\n")
        );
        assert_eq!(
            run(&mut c, &d, "REVOKE SUB u 99999999999999999"),
            "-ERR before is out of range\r\n"
        );
        let info = run(&mut c, &d, "INFO stats");
        assert!(info.contains("revocations:3\r\n"), "{info}");
    }
}
