//! `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches the connection between
//! RESP2 and RESP3, optionally authenticating and naming it, and answers with a map that
//! describes the server. Nothing changes when any part of it is refused.

use bytes::BytesMut;

use super::auth::authenticate;
use super::client::check_client_name;
use super::{err, int_arg, is, shown};
use crate::resp::frame::{Frame, Protocol};
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::door::DoorShared;
use crate::server::resp::stats::BatchCounts;

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
pub(super) fn apply(
    conn: &mut Conn,
    args: &Args<'_>,
    door: &DoorShared,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    let mut protocol = conn.protocol;
    let mut name = None;
    let mut auth = None;
    if args.len() >= 2 {
        protocol = match int_arg(args[1]) {
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => {
                return err(out, "NOPROTO unsupported protocol version", counts);
            }
            None => {
                return err(
                    out,
                    "ERR Protocol version is not an integer or out of range",
                    counts,
                )
            }
        };
        let mut i = 2;
        while i < args.len() {
            if is(args[i], "AUTH") && i + 2 < args.len() {
                auth = Some((args[i + 1], args[i + 2]));
                i += 3;
            } else if is(args[i], "SETNAME") && i + 1 < args.len() {
                name = Some(args[i + 1]);
                i += 2;
            } else {
                let msg = format!("ERR Syntax error in HELLO option '{}'", shown(args[i]));
                return err(out, &msg, counts);
            }
        }
    }
    if let Some(n) = name {
        if let Err(e) = check_client_name(n) {
            return err(out, e, counts);
        }
    }
    if let Some((user, password)) = auth {
        if let Err(refused) = authenticate(conn, Some(user), password, door) {
            counts.auth_failures += 1;
            return err(out, &refused.message(), counts);
        }
    }
    if let Some(n) = name {
        conn.name = Some(String::from_utf8_lossy(n).into_owned());
    }
    conn.protocol = protocol;
    let reply = Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk("tollgate")),
        (
            Frame::bulk("version"),
            Frame::bulk(env!("CARGO_PKG_VERSION")),
        ),
        (Frame::bulk("proto"), Frame::Integer(protocol.version())),
        (Frame::bulk("id"), Frame::Integer(conn.id as i64)),
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk("master")),
        (Frame::bulk("modules"), Frame::Array(Vec::new())),
    ]);
    reply.encode(protocol, out);
}

#[cfg(test)]
mod tests {
    use crate::resp::frame::Protocol;
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn hello_switches_protocol() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        let r3 = run(&mut c, &d, "HELLO 3");
        assert!(
            r3.starts_with("%7\r\n$6\r\nserver\r\n$8\r\ntollgate\r\n"),
            "{r3}"
        );
        assert!(r3.contains("$5\r\nproto\r\n:3\r\n"));
        assert_eq!(c.protocol, Protocol::Resp3);
        assert_eq!(run(&mut c, &d, "COMMAND DOCS"), "%0\r\n");
        assert_eq!(run(&mut c, &d, "CLIENT GETNAME"), "_\r\n");
        let r2 = run(&mut c, &d, "HELLO 2");
        assert!(r2.starts_with("*14\r\n"), "{r2}");
        assert_eq!(c.protocol, Protocol::Resp2);
        assert_eq!(
            run(&mut c, &d, "HELLO 4"),
            "-NOPROTO unsupported protocol version\r\n"
        );
        assert_eq!(
            run(&mut c, &d, "HELLO 3 BOGUS"),
            "-ERR Syntax error in HELLO option 'BOGUS'\r\n"
        );
        assert_eq!(
            c.protocol,
            Protocol::Resp2,
            "a failed HELLO changes nothing"
        );
    }
}
