//! `AUTH [user] <password>`: unlocks the admin commands (`REVOKE`) on this connection when
//! the password is the admin secret (and the user, when given, is `default`, as Redis names
//! it); unlocks `CHECK` when the user is a `[[check.callers]]` name and the password its
//! secret. `HELLO … AUTH user pass` authenticates the same way ([`authenticate`]).

use bytes::BytesMut;

use super::{err, wrong_arity};
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::door::DoorShared;
use crate::server::resp::stats::BatchCounts;

/// Redis's reply to a wrong user or password (`AUTH`, `HELLO … AUTH`).
pub(super) const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Why `AUTH` (or `HELLO … AUTH`) did not authenticate.
pub(super) enum AuthRefused {
    /// The user and password do not match.
    Wrong,
    /// Too many wrong admin passwords from this address: refused before the password is
    /// looked at, for this many more seconds (the gate's rule, `gate/wrong_secrets.rs`).
    TooManyWrong(u64),
}

impl AuthRefused {
    pub(super) fn message(&self) -> String {
        match self {
            AuthRefused::Wrong => WRONGPASS.to_string(),
            AuthRefused::TooManyWrong(secs) => {
                format!("ERR too many wrong passwords from this address; try again in {secs} s")
            }
        }
    }
}

/// Checks an `AUTH`/`HELLO AUTH` user and password; unlocks admin commands when right.
pub(super) fn authenticate(
    conn: &mut Conn,
    user: Option<&[u8]>,
    password: &[u8],
    door: &DoorShared,
) -> Result<(), AuthRefused> {
    if let Some(name) = user.filter(|u| *u != b"default") {
        // A `[check]` caller: its name is configuration, not a secret; the gate compares the
        // secret in constant time.
        return match door.gate.check_access().prove(name, password) {
            Some(Ok(proof)) => {
                conn.check_proof = Some(proof);
                Ok(())
            }
            _ => Err(AuthRefused::Wrong),
        };
    }
    // The admin user (`default`, or no user given); an address that presented too many wrong
    // ones is refused first.
    door.gate
        .admin_secret_allowed(conn.peer)
        .map_err(AuthRefused::TooManyWrong)?;
    let proved = door.gate.admin().prove(password);
    door.gate.admin_secret_outcome(conn.peer, proved.is_ok());
    conn.admin = Some(proved.map_err(|_| AuthRefused::Wrong)?);
    Ok(())
}

/// `AUTH [user] <password>`.
pub(super) fn apply(
    conn: &mut Conn,
    args: &Args<'_>,
    door: &DoorShared,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    let (user, password) = match args.len() {
        2 => (None, args[1]),
        3 => (Some(args[1]), args[2]),
        _ => return wrong_arity(out, "auth", counts),
    };
    let admin_user = user.map_or(true, |u| u == b"default");
    if admin_user && !door.gate.admin().has_secret() {
        return err(
            out,
            "ERR AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
            counts,
        );
    }
    match authenticate(conn, user, password, door) {
        Ok(()) => out.extend_from_slice(b"+OK\r\n"),
        Err(refused) => {
            counts.auth_failures += 1;
            err(out, &refused.message(), counts);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run, SECRET};

    #[test]
    fn auth_gates_admin_commands() {
        let d = door(Admin::Secret);
        let mut c = conn(false);
        assert_eq!(
            run(&mut c, &d, "REVOKE JTI j 100"),
            "-NOAUTH Authentication required.\r\n"
        );
        assert!(run(&mut c, &d, "AUTH wrong").starts_with("-WRONGPASS"));
        assert!(run(&mut c, &d, &format!("AUTH admin {SECRET}")).starts_with("-WRONGPASS"));
        assert_eq!(
            run(&mut c, &d, &format!("AUTH default {SECRET}")),
            "+OK\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "REVOKE JTI j soon"),
            "-ERR exp must be an integer (seconds since the epoch)\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "REVOKE KID j 1"),
            "-ERR REVOKE takes JTI <jti> <exp> or SUB <sub> <before>\r\n"
        );
        assert_eq!(run(&mut c, &d, "REVOKE SUB u 100"), "+OK\r\n");
        assert_eq!(run(&mut c, &d, "RESET"), "+RESET\r\n");
        assert!(run(&mut c, &d, "REVOKE SUB u 1").starts_with("-NOAUTH"));
        // HELLO AUTH authenticates too.
        let r = run(
            &mut c,
            &d,
            &format!("HELLO 3 AUTH default {SECRET} SETNAME x"),
        );
        assert!(r.starts_with("%7"), "{r}");
        assert!(c.admin.is_some());

        // Ten wrong admin passwords from one address: the next attempt is refused before the
        // password is looked at, the right one too (HELLO AUTH alike); a Unix-socket peer
        // (no address) is not counted.
        let mut c = conn(false);
        for _ in 0..10 {
            assert!(run(&mut c, &d, "AUTH wrong").starts_with("-WRONGPASS"));
        }
        for cmd in [
            format!("AUTH {SECRET}"),
            format!("HELLO 3 AUTH default {SECRET}"),
        ] {
            let r = run(&mut c, &d, &cmd);
            assert!(
                r.starts_with("-ERR too many wrong passwords from this address; try again in "),
                "{r}"
            );
        }
        let mut local = conn(true);
        assert_eq!(run(&mut local, &d, &format!("AUTH {SECRET}")), "+OK\r\n");

        let uds_only = door(Admin::SecretUnixSocketOnly);
        let mut tcp = conn(false);
        run(&mut tcp, &uds_only, &format!("AUTH {SECRET}"));
        assert!(run(&mut tcp, &uds_only, "REVOKE SUB u 1").starts_with("-NOPERM"));
        let mut unix = conn(true);
        assert!(run(&mut unix, &uds_only, "REVOKE SUB u 1").starts_with("-NOAUTH"));

        let off = door(Admin::Disabled);
        let mut c = conn(true);
        assert!(run(&mut c, &off, "AUTH x").starts_with("-ERR AUTH <password> called without"));
        assert!(run(&mut c, &off, "REVOKE SUB u 1").starts_with("-ERR REVOKE is disabled"));
    }
}
