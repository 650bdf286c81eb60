//! `QUIT`: `+OK`, then the connection closes once the replies before it are written.

use bytes::BytesMut;

use super::Flow;

/// `QUIT` (any arguments are ignored).
pub(super) fn apply<'a>(out: &mut BytesMut) -> Flow<'a> {
    out.extend_from_slice(b"+OK\r\n");
    Flow::Close
}
