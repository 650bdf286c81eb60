//! `PING [message]`: `+PONG`, or the message back as a bulk string.

use bytes::BytesMut;

use super::wrong_arity;
use crate::resp::frame;
use crate::resp::Args;
use crate::server::resp::stats::BatchCounts;

/// `PING [message]`.
pub(super) fn apply(args: &Args<'_>, out: &mut BytesMut, counts: &mut BatchCounts) {
    match args.len() {
        1 => out.extend_from_slice(b"+PONG\r\n"),
        2 => frame::put_bulk(out, args[1]),
        _ => wrong_arity(out, "ping", counts),
    }
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn ping_answers_pong_or_its_message() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        assert_eq!(run(&mut c, &d, "PING"), "+PONG\r\n");
        assert_eq!(run(&mut c, &d, "ping hi"), "$2\r\nhi\r\n");
    }
}
