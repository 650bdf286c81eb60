//! `REVOKE JTI <jti> <exp>` / `REVOKE SUB <sub> <before>`: revokes one token, or every
//! token of a subject issued before a time. An admin command: the gate admits the
//! connection or not ([`crate::gate::AdminAccess`]), and records the revocation
//! ([`crate::gate::Gate::revoke`]); this file parses the arguments and words the answers.
//!
//! The arguments and access are checked at once ([`apply`]); the write to the revocation
//! log waits for an fsync on the blocking pool, so the connection loop [`settle`]s it and
//! [`reply`] answers `+OK` only once the revocation is durable.

use bytes::BytesMut;

use super::{err, int_arg, is, wrong_arity, Flow, Settled, Work};
use crate::gate::{
    AdminCaller, AdminCredential, AdminRefusal, RevokeError, RevokeRequest, Revoked,
};
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::door::DoorShared;
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
    let caller = AdminCaller {
        via_unix_socket: conn.via_unix,
        credential: conn
            .admin
            .map_or(AdminCredential::None, AdminCredential::Proven),
    };
    let refusal = match door.gate.admin().admit(&caller) {
        Ok(()) => None,
        Err(AdminRefusal::Disabled) => {
            Some("ERR REVOKE is disabled: no admin access is configured ([auth.admin])")
        }
        Err(AdminRefusal::UnixSocketOnly | AdminRefusal::NoSecretConfigured) => {
            Some("NOPERM admin commands are only allowed on the Unix socket")
        }
        Err(AdminRefusal::SecretRequired | AdminRefusal::SecretInvalid) => {
            Some("NOAUTH Authentication required.")
        }
    };
    if let Some(msg) = refusal {
        err(out, msg, counts);
        return None;
    }
    let (kind, time) = if is(args[1], "JTI") {
        ("jti", "exp")
    } else if is(args[1], "SUB") {
        ("subject", "before")
    } else {
        err(
            out,
            "ERR REVOKE takes JTI <jti> <exp> or SUB <sub> <before>",
            counts,
        );
        return None;
    };
    // Its length is the gate's rule (the same answer as over HTTP).
    let Ok(id) = std::str::from_utf8(args[2]) else {
        let msg = format!("ERR the {kind} must be UTF-8 text");
        err(out, &msg, counts);
        return None;
    };
    let id = id.to_owned();
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

/// Records the revocation (the gate writes it on the blocking pool, with an fsync; the
/// connection waits for it, so its later replies stay in order; others do not).
pub(super) async fn settle(request: RevokeRequest, door: &DoorShared) -> Settled {
    Settled::Revoke(door.gate.revoke(&request).await)
}

/// Writes the answer of a settled `REVOKE`: `+OK` once it is durable, else the gate's
/// message (the `detail` `POST /admin/revoke` answers).
pub(super) fn reply(
    result: Result<Revoked, RevokeError>,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    match result {
        Ok(_) => {
            counts.revocations += 1;
            out.extend_from_slice(b"+OK\r\n");
        }
        Err(e) => err(out, &format!("ERR {e}"), counts),
    }
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::{
        auth_door, conn, fixtures, run, run_args, some, token, verdict, verify, SECRET,
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
        let max = crate::auth::MAX_REVOCATION_ID_BYTES;
        let long = "j".repeat(max + 1);
        assert_eq!(
            run(&mut c, &d, &format!("REVOKE JTI {long} 1")),
            format!("-ERR the jti must be 1 to {max} bytes\r\n")
        );
        assert_eq!(
            run_args(&mut c, &d, &[b"REVOKE", b"SUB", b"\xff", b"1"]),
            "-ERR the subject must be UTF-8 text\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "REVOKE SUB u 99999999999999999"),
            "-ERR before is out of range: a time in seconds since the epoch\r\n"
        );
        let info = run(&mut c, &d, "INFO stats");
        assert!(info.contains("revocations:3\r\n"), "{info}");
    }
}
