//! `CLIENT SETNAME|GETNAME|ID|SETINFO`, which client libraries send on connect; and the rule
//! for client names, which `HELLO … SETNAME` shares.

use bytes::BytesMut;

use super::{err, is, shown, wrong_arity};
use crate::resp::frame;
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::stats::BatchCounts;

/// Longest client name kept (`CLIENT SETNAME`, `HELLO … SETNAME`).
const MAX_CLIENT_NAME: usize = 128;

/// `CLIENT SETNAME|GETNAME|ID|SETINFO`, which client libraries send on connect.
pub(super) fn apply(
    conn: &mut Conn,
    args: &Args<'_>,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    let Some(&sub) = args.get(1) else {
        return wrong_arity(out, "client", counts);
    };
    if is(sub, "SETNAME") && args.len() == 3 {
        match check_client_name(args[2]) {
            Ok(()) => {
                conn.name =
                    (!args[2].is_empty()).then(|| String::from_utf8_lossy(args[2]).into_owned());
                out.extend_from_slice(b"+OK\r\n");
            }
            Err(e) => err(out, e, counts),
        }
    } else if is(sub, "GETNAME") && args.len() == 2 {
        match &conn.name {
            Some(n) => frame::put_bulk(out, n.as_bytes()),
            None => frame::put_null(out, conn.protocol),
        }
    } else if is(sub, "ID") && args.len() == 2 {
        frame::put_integer(out, conn.id as i64);
    } else if is(sub, "SETINFO") && args.len() == 4 {
        out.extend_from_slice(b"+OK\r\n");
    } else {
        let msg = format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            shown(sub)
        );
        err(out, &msg, counts);
    }
}

/// Redis's rule for client names (no spaces or newlines), plus a length bound.
pub(super) fn check_client_name(name: &[u8]) -> Result<(), &'static str> {
    if name.len() > MAX_CLIENT_NAME {
        return Err("ERR Client names are limited to 128 bytes");
    }
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err("ERR Client names cannot contain spaces, newlines or special characters.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn client_setname_and_getname() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        assert_eq!(run(&mut c, &d, "CLIENT SETNAME app"), "+OK\r\n");
        assert_eq!(run(&mut c, &d, "CLIENT GETNAME"), "$3\r\napp\r\n");
    }
}
