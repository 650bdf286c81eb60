//! `SELECT <db>`: clients configured with a database number send this; tollgate has one,
//! database 0.

use bytes::BytesMut;

use super::{err, int_arg, wrong_arity};
use crate::resp::Args;
use crate::server::resp::stats::BatchCounts;

const ERR_NOT_INTEGER: &str = "ERR value is not an integer or out of range";

/// `SELECT <db>`: `+OK` for 0, an error for any other.
pub(super) fn apply(args: &Args<'_>, out: &mut BytesMut, counts: &mut BatchCounts) {
    match args.len() {
        2 => match int_arg(args[1]) {
            Some(0) => out.extend_from_slice(b"+OK\r\n"),
            Some(_) => err(out, "ERR DB index is out of range", counts),
            None => err(out, ERR_NOT_INTEGER, counts),
        },
        _ => wrong_arity(out, "select", counts),
    }
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn select_accepts_database_0() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        assert_eq!(run(&mut c, &d, "SELECT 0"), "+OK\r\n");
    }
}
