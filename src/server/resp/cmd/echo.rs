//! `ECHO <message>`: the message back as a bulk string.

use bytes::BytesMut;

use super::wrong_arity;
use crate::resp::frame;
use crate::resp::Args;
use crate::server::resp::stats::BatchCounts;

/// `ECHO <message>`.
pub(super) fn apply(args: &Args<'_>, out: &mut BytesMut, counts: &mut BatchCounts) {
    if args.len() == 2 {
        frame::put_bulk(out, args[1]);
    } else {
        wrong_arity(out, "echo", counts);
    }
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn echo_answers_its_message() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        assert_eq!(run(&mut c, &d, "ECHO x"), "$1\r\nx\r\n");
    }
}
