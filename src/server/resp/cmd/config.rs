//! `CONFIG GET <parameter…>`: redis-benchmark asks `CONFIG GET save` / `appendonly` to print
//! them; tollgate's configuration is not Redis's, so every parameter reads as absent.

use bytes::BytesMut;

use super::{err, is, shown, wrong_arity};
use crate::resp::frame;
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::stats::BatchCounts;

/// `CONFIG GET <parameter…>`: an empty map; any other subcommand is unknown.
pub(super) fn apply(conn: &Conn, args: &Args<'_>, out: &mut BytesMut, counts: &mut BatchCounts) {
    if args.len() >= 3 && is(args[1], "GET") {
        frame::put_empty_map(out, conn.protocol);
    } else if args.len() >= 2 && is(args[1], "GET") {
        wrong_arity(out, "config|get", counts);
    } else {
        let sub = args.get(1).map_or(String::new(), |a| shown(a));
        err(
            out,
            &format!("ERR unknown subcommand '{sub}'. Try CONFIG GET."),
            counts,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn config_get_reads_as_empty() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        assert_eq!(run(&mut c, &d, "CONFIG GET save"), "*0\r\n");
    }
}
