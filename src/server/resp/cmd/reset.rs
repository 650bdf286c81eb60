//! `RESET`: the connection back to how it started — RESP2, not authenticated (neither as
//! admin nor as a `[check]` caller), no name.

use bytes::BytesMut;

use super::wrong_arity;
use crate::resp::frame::Protocol;
use crate::resp::Args;
use crate::server::resp::connection::Conn;
use crate::server::resp::stats::BatchCounts;

/// `RESET` (its test is `auth_gates_admin_commands`: it ends admin access).
pub(super) fn apply(
    conn: &mut Conn,
    args: &Args<'_>,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    if args.len() == 1 {
        conn.protocol = Protocol::Resp2;
        conn.admin = None;
        conn.check_proof = None;
        conn.name = None;
        out.extend_from_slice(b"+RESET\r\n");
    } else {
        wrong_arity(out, "reset", counts);
    }
}
