//! `COMMAND [COUNT|DOCS|LIST|INFO name…]`, which client libraries send on connect.

use bytes::BytesMut;

use super::{err, is, shown, Command};
use crate::resp::frame;
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::stats::BatchCounts;

/// The `COMMAND` variants clients send on connect; tollgate's commands have no Redis
/// key specs, so the informational ones answer empty.
pub(super) fn apply(conn: &Conn, args: &Args<'_>, out: &mut BytesMut, counts: &mut BatchCounts) {
    if args.len() == 1 {
        frame::put_array_header(out, 0);
        return;
    }
    let sub = args[1];
    if is(sub, "COUNT") {
        frame::put_integer(out, Command::ALL.len() as i64);
    } else if is(sub, "DOCS") {
        frame::put_empty_map(out, conn.protocol);
    } else if is(sub, "LIST") {
        frame::put_array_header(out, Command::ALL.len());
        for c in Command::ALL {
            frame::put_bulk(out, c.name().as_bytes());
        }
    } else if is(sub, "INFO") {
        // One null per name asked: tollgate publishes no command table.
        frame::put_array_header(out, args.len() - 2);
        for _ in 2..args.len() {
            frame::put_null(out, conn.protocol);
        }
    } else {
        let msg = format!("ERR unknown subcommand '{}'. Try COMMAND HELP.", shown(sub));
        err(out, &msg, counts);
    }
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn command_docs_and_count() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        assert_eq!(run(&mut c, &d, "COMMAND DOCS"), "*0\r\n");
        assert_eq!(run(&mut c, &d, "COMMAND COUNT"), ":14\r\n");
    }
}
