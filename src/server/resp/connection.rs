//! One connection of the RESP door: read, parse every complete command, execute each, and
//! write every reply of the batch in one write. The commands themselves are in `cmd/`.
//!
//! A connection runs one loop, which is what makes pipelining cheap:
//!
//! ```text
//! read as much as the socket has ─► parse every complete command in the buffer ─► execute
//!        ▲                          (zero-copy: arguments are slices of the buffer)  each into
//!        │                                                                          one output
//!        └──────────────────── one write of every reply of the batch ◄──────────── buffer
//! ```
//!
//! Replies therefore come back in order, and a batch of 16 pipelined `CHECK`s costs one read
//! and one write. When the replies waiting in the output buffer pass
//! `resp.max_pending_reply_bytes`, the loop writes them before executing (or reading) any
//! more, so a client that pipelines without reading cannot grow tollgate's memory: it is
//! stalled by TCP flow control instead, and closed by the idle timeout if it never reads.
//!
//! The memory of every connection's buffers together is bounded too
//! ([`crate::server::budget`]): before the output buffer grows, its growth is reserved
//! from the budget, and when there is no room the replies are written first, so the
//! connection reads nothing more until the client has read them. A connection whose client
//! then reads nothing for [`STALL_UNDER_PRESSURE`] is closed (RESP has no way to report an
//! error in the middle of a reply the client is not reading), as is one that needs a larger
//! input buffer than the budget has left (with an error reply).
//!
//! A command whose answer may wait (`VERIFY`, `REVOKE`) is finished before the next one
//! ([`finish_work`]): the replies before it are written while it waits, and the replies after
//! it wait with it, so order is kept.
//!
//! A framing error (bad type byte, bad length, a bound exceeded) gets its error reply after
//! the replies of the commands before it, then the connection is closed: the position in
//! the stream is lost. A command error (`-ERR unknown command`, wrong arguments, an unknown
//! tier) leaves the connection usable.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::cmd::{self, Flow, Work};
use super::door::{DoorShared, RespDoor};
use super::idle_poll;
use super::stats::BatchCounts;
use crate::gate::{AdminProof, CheckProof, CheckStanding};
use crate::policy::Peer;
use crate::resp::frame::{self, Protocol};
use crate::resp::{ParseError, Parsed, RequestParser};
use crate::server::budget::{BufferAccount, ConnectionBudget};
use crate::server::listener::{IdleTimeout, Phase, Presence};

/// Bytes the read buffer makes room for before each read.
const READ_CHUNK: usize = 16 * 1024;

/// Buffers that grew past this for one large command or batch are given back afterwards,
/// so that ten thousand idle connections do not each keep their high-water mark.
const KEEP_BUFFER: usize = 64 * 1024;

/// Room the output buffer must have before a command runs; with less, it grows first (a
/// doubling, reserved from the budget) or is written out.
const GROWTH_ROOM: usize = 8 * 1024;

/// The read buffer may grow to this without asking the budget (a batch of pipelined commands
/// that ends in a partial one); beyond it only for a large command, within the budget.
const FREE_READ_BUFFER: usize = 2 * READ_CHUNK;

/// While the connection buffer budget is exhausted, a connection whose client reads none of
/// its replies for this long is closed (otherwise `resp.idle_timeout` applies).
pub(super) const STALL_UNDER_PRESSURE: Duration = Duration::from_secs(10);

/// The state of one connection, which commands read and change (`HELLO`, `AUTH`, `CLIENT`,
/// `RESET`).
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) protocol: Protocol,
    /// `AUTH` with the admin secret succeeded: the gate's proof of it.
    pub(super) admin: Option<AdminProof>,
    /// What the peer is worth to `CHECK`, asked of the gate at the connection's first
    /// `CHECK` and kept (the peer does not change).
    pub(super) check: Option<CheckStanding>,
    /// `AUTH <caller> <secret>` with a `[[check.callers]]` secret succeeded.
    pub(super) check_proof: Option<CheckProof>,
    pub(super) via_unix: bool,
    /// The other end: `Unix`, an IP, or `None` when unknown (never trusted).
    pub(super) peer: Option<Peer>,
    pub(super) name: Option<String>,
}

/// Writes `wbuf` out in one write (giving its memory back when a large batch grew it);
/// false when the connection is finished (a write error, or the server closing while the
/// client does not read).
async fn write_replies<W: AsyncWrite + Unpin>(
    io: &mut W,
    wbuf: &mut BytesMut,
    phase: &mut watch::Receiver<Phase>,
    budget: &ConnectionBudget,
) -> bool {
    let write = io.write_all(wbuf);
    tokio::pin!(write);
    // Only consulted while the client is not reading its replies (the write is pending).
    let stalled = async {
        if budget.exhausted() {
            tokio::time::sleep(STALL_UNDER_PRESSURE).await;
            budget.note_closed();
            tracing::debug!("RESP client read no replies while the connection buffer budget was exhausted; closing");
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        res = &mut write => if res.is_err() { return false },
        _ = phase.wait_for(|p| *p >= Phase::Closing) => return false,
        _ = stalled => return false,
    }
    wbuf.clear();
    if wbuf.capacity() > KEEP_BUFFER {
        *wbuf = BytesMut::with_capacity(READ_CHUNK);
    }
    true
}

/// Finishes a command that may wait ([`Flow::Await`]) and writes its reply after those
/// before it. Nearly always it is decided at once (a `VERIFY` whose key id is known); when it
/// waits (a key-set refetch, a revocation's fsync), the replies already in `wbuf` are written
/// first, so only the commands after it wait with it. False when the connection is finished.
async fn finish_work<W: AsyncWrite + Unpin>(
    work: Work<'_>,
    conn: &mut Conn,
    door: &DoorShared,
    io: &mut W,
    wbuf: &mut BytesMut,
    phase: &mut watch::Receiver<Phase>,
    counts: &mut BatchCounts,
) -> bool {
    let settling = cmd::settle(work, door);
    tokio::pin!(settling);
    let first = std::future::poll_fn(|cx| Poll::Ready(settling.as_mut().poll(cx))).await;
    let settled = match first {
        Poll::Ready(s) => s,
        Poll::Pending => {
            if !wbuf.is_empty() && !write_replies(io, wbuf, phase, &door.budget).await {
                return false;
            }
            tokio::select! {
                biased;
                s = &mut settling => s,
                _ = phase.wait_for(|p| *p >= Phase::Closing) => return false,
            }
        }
    };
    cmd::reply_settled(conn, settled, wbuf, counts);
    true
}

pub(super) async fn serve_connection<S>(
    stream: S,
    door: RespDoor,
    peer: Option<Peer>,
    presence: Presence,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shared = &*door.0;
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    let opts = &shared.options;
    let mut io = IdleTimeout::new(stream, opts.idle_timeout);
    let mut conn = Conn {
        id: shared.next_client_id.fetch_add(1, Ordering::Relaxed),
        protocol: Protocol::Resp2,
        admin: None,
        check: None,
        check_proof: None,
        via_unix: peer == Some(Peer::Unix),
        peer,
        name: None,
    };
    let mut parser = RequestParser::new(opts.limits);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let (_registered, mut phase) = shared.register(conn.id);
    let mut account = BufferAccount::open(shared.budget.clone(), rbuf.capacity() + wbuf.capacity());

    loop {
        // Execute every complete command read so far, up to the pending-reply bound.
        let mut counts = BatchCounts::default();
        let mut pos = 0;
        let mut close = false;
        let mut more_pending = false;
        loop {
            if wbuf.len() >= opts.max_pending_reply_bytes {
                more_pending = true;
                break;
            }
            if wbuf.capacity() - wbuf.len() < GROWTH_ROOM && !wbuf.is_empty() {
                // Grow (doubling) only within the budget; else write what is pending first.
                let more = wbuf.capacity().max(GROWTH_ROOM);
                if !account.try_grow(more) {
                    shared.budget.note_backpressure();
                    more_pending = true;
                    break;
                }
                wbuf.reserve(wbuf.capacity() - wbuf.len() + more);
            }
            let flow = match parser.parse(&rbuf[pos..]) {
                Ok(Parsed::Command { args, consumed }) => {
                    pos += consumed;
                    if args.is_empty() {
                        continue;
                    }
                    counts.commands += 1;
                    cmd::execute(&mut conn, &args, shared, &mut wbuf, &mut counts)
                }
                Ok(Parsed::Incomplete) => break,
                Err(e) => {
                    counts.protocol_errors += 1;
                    put_protocol_error(&mut wbuf, &e);
                    close = true;
                    break;
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    close = true;
                    break;
                }
                Flow::Await(work) => {
                    // Boxed, so that the state of this rare path (a key-set fetch) is not
                    // part of every connection's future: inline, it made that future 2.4 KB
                    // instead of 0.6 KB, and pipelined CHECKs measurably slower.
                    let finished = Box::pin(finish_work(
                        work,
                        &mut conn,
                        shared,
                        &mut io,
                        &mut wbuf,
                        &mut phase,
                        &mut counts,
                    ))
                    .await;
                    if !finished {
                        shared.stats.add(conn.id, &counts);
                        return;
                    }
                }
            }
        }
        rbuf.advance(pos);
        shared.stats.add(conn.id, &counts);
        idle_poll::note_work();

        account.hold(rbuf.capacity() + wbuf.capacity());

        // One write for the whole batch.
        if !wbuf.is_empty() && !write_replies(&mut io, &mut wbuf, &mut phase, &shared.budget).await
        {
            return;
        }
        account.hold(rbuf.capacity() + wbuf.capacity());
        if close {
            let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
            return;
        }
        if more_pending {
            continue;
        }
        if *phase.borrow() >= Phase::Draining {
            // Everything read has been answered; a partial command is abandoned.
            return;
        }
        if rbuf.is_empty() && rbuf.capacity() > KEEP_BUFFER {
            rbuf = BytesMut::with_capacity(READ_CHUNK);
        }
        let before = rbuf.capacity();
        rbuf.reserve(READ_CHUNK);
        let grown = rbuf.capacity().saturating_sub(before);
        if grown > 0 && rbuf.capacity() > FREE_READ_BUFFER && !account.try_grow(grown) {
            // A command larger than the budget has room for: refuse it (the connection's
            // place in the stream is lost with it).
            shared.budget.note_closed();
            put_protocol_error_text(
                &mut wbuf,
                "ERR connection buffer budget exhausted (server.max_connection_buffer_bytes); retry later",
            );
            let _ = write_replies(&mut io, &mut wbuf, &mut phase, &shared.budget).await;
            let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
            return;
        }
        account.hold(rbuf.capacity() + wbuf.capacity());
        let idle = rbuf.is_empty();
        tokio::select! {
            biased;
            res = io.read_buf(&mut rbuf) => match res {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if !presence.busy() {
                        return; // evicted to make room at the connection cap
                    }
                }
            },
            // Any change of phase is at least `Draining` (or the door is gone).
            _ = phase.changed() => return,
            // Polled only when the read would wait: a connection with nothing half-read may
            // be closed at the cap to make room for a new one.
            _ = presence.idle_until_evicted(), if idle => return,
        }
    }
}

fn put_protocol_error_text(out: &mut BytesMut, msg: &str) {
    frame::put_error(out, msg);
}

fn put_protocol_error(out: &mut BytesMut, e: &ParseError) {
    let mut msg = String::with_capacity(64);
    let _ = write!(msg, "ERR {e}");
    frame::put_error(out, &msg);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::resp::frame::Frame;
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{auth_door, door, token, SECRET};

    /// A stream that records the size of every write the server makes.
    struct CountingStream {
        inner: tokio::io::DuplexStream,
        writes: Arc<parking_lot::Mutex<Vec<usize>>>,
    }

    impl AsyncRead for CountingStream {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for CountingStream {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
            if let std::task::Poll::Ready(Ok(n)) = &r {
                self.writes.lock().push(*n);
            }
            r
        }

        fn poll_flush(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Writes `input` as one client write, closes the client's sending side, runs the server
    /// on the connection to its end, and returns what the client received and the sizes of
    /// the server's writes.
    async fn serve_bytes(d: &RespDoor, input: &[u8]) -> (Vec<u8>, Vec<usize>) {
        let (mut client, server) = tokio::io::duplex(8 * 1024 * 1024);
        // The whole input is in the pipe before the server first reads.
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let writes = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let stream = CountingStream {
            inner: server,
            writes: writes.clone(),
        };
        // The Unix socket: a caller `[check]` admits by default.
        serve_connection(
            stream,
            d.clone(),
            Some(Peer::Unix),
            d.occupancy().register(),
        )
        .await;
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        let w = writes.lock().clone();
        (got, w)
    }

    #[tokio::test]
    async fn a_pipelined_batch_is_answered_with_one_write() {
        let d = door(Admin::Disabled);
        let mut input = Vec::new();
        for i in 0..100 {
            input.extend_from_slice(
                &Frame::command(["CHECK".to_string(), format!("k{i}"), "basic".into()])
                    .to_bytes(Protocol::Resp2),
            );
        }
        let (got, writes) = serve_bytes(&d, &input).await;
        assert_eq!(writes.len(), 1, "one write for 100 commands: {writes:?}");
        assert_eq!(got.len(), writes[0]);
        assert_eq!(
            got.windows(4).filter(|w| w == b"*5\r\n").count(),
            100,
            "100 replies"
        );
    }

    /// Ten thousand connections each hold one of these; the rare paths' state (a key-set
    /// fetch for VERIFY, a revocation) is boxed when used, not carried by every connection.
    #[tokio::test]
    async fn a_connections_future_stays_small() {
        let d = door(Admin::Disabled);
        let (_client, server) = tokio::io::duplex(64);
        let size = std::mem::size_of_val(&serve_connection(
            server,
            d.clone(),
            None,
            d.occupancy().register(),
        ));
        assert!(size <= 1024, "a connection's future is {size} bytes");
    }

    #[tokio::test]
    async fn pending_replies_are_flushed_at_the_bound() {
        let mut d = door(Admin::Disabled);
        Arc::get_mut(&mut d.0)
            .unwrap()
            .options
            .max_pending_reply_bytes = 4096;
        // 300 six-byte commands whose replies are ~1 KiB each: one read, ~300 KiB of output.
        let input = b"INFO\r\n".repeat(300);
        let (got, writes) = serve_bytes(&d, &input).await;
        let one_reply = got.len() / 300;
        assert!(one_reply > 500, "INFO is large: {one_reply}");
        let biggest = writes.iter().copied().max().unwrap();
        assert!(
            biggest < 4096 + 2 * one_reply,
            "a write of {biggest} bytes passed the 4 KiB bound by more than a reply"
        );
        assert_eq!(writes.iter().sum::<usize>(), got.len());
        assert!(writes.len() >= got.len() / (4096 + 2 * one_reply));
    }

    /// Waits (bounded) until `d` has `n` registered connections.
    async fn registered(d: &RespDoor, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while d.0.phases.lock().conns.len() != n {
            assert!(std::time::Instant::now() < deadline, "never registered");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn draining_closes_a_connection_waiting_for_its_next_command() {
        let d = door(Admin::Disabled);
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let conn = tokio::spawn(serve_connection(
            server,
            d.clone(),
            None,
            d.occupancy().register(),
        ));
        client.write_all(b"PING\r\nPING\r\n").await.unwrap();
        let mut got = [0u8; 14];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"+PONG\r\n+PONG\r\n");
        registered(&d, 1).await;
        // The client keeps its side open: only the drain can end the connection.
        d.0.broadcast(Phase::Draining);
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .expect("a draining connection closes")
            .unwrap();
        registered(&d, 0).await;
        // A connection arriving once the door drains closes without serving.
        let (_c2, s2) = tokio::io::duplex(1024);
        tokio::time::timeout(
            Duration::from_secs(5),
            serve_connection(s2, d.clone(), None, d.occupancy().register()),
        )
        .await
        .expect("closes at once");
    }

    #[tokio::test]
    async fn closing_drops_a_connection_whose_client_does_not_read() {
        let d = door(Admin::Disabled);
        // A 64-byte pipe whose client writes and never reads: the server's write blocks
        // once 64 bytes of replies are waiting.
        let (client, server) = tokio::io::duplex(64);
        let (_read_half, mut write_half) = tokio::io::split(client);
        let conn = tokio::spawn(serve_connection(
            server,
            d.clone(),
            None,
            d.occupancy().register(),
        ));
        let writer = tokio::spawn(async move {
            let _ = write_half.write_all(&b"PING\r\n".repeat(1000)).await;
            write_half
        });
        // The first read takes 10 PINGs (64 bytes); once they are counted the connection is
        // in (or entering) the write of their 70 bytes of replies, which the pipe cannot hold.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while d.0.stats.total(|s| &s.commands) < 10 {
            assert!(std::time::Instant::now() < deadline, "never blocked");
            tokio::task::yield_now().await;
        }
        // Draining does not cut a connection that owes replies: it stays in its write.
        d.0.broadcast(Phase::Draining);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!conn.is_finished(), "still writing the replies it owes");
        d.0.broadcast(Phase::Closing);
        tokio::time::timeout(Duration::from_secs(5), conn)
            .await
            .expect("dropped at Closing")
            .unwrap();
        writer.abort();
    }

    fn first_int(f: &Frame) -> Option<i64> {
        match f {
            Frame::Array(v) => v.first().and_then(Frame::as_integer),
            _ => None,
        }
    }

    #[tokio::test]
    async fn commands_that_wait_keep_their_place_in_a_pipeline() {
        let d = auth_door(None);
        let t = token("eddsa_better_auth");
        let mut input = Vec::new();
        let mut cmd = |args: &[&str]| {
            input.extend_from_slice(&Frame::command(args.iter().copied()).to_bytes(Protocol::Resp2))
        };
        cmd(&["PING", "one"]);
        cmd(&["VERIFY", &t, "GET", "/x", "10.0.0.1"]);
        cmd(&["AUTH", SECRET]);
        // REVOKE waits for the blocking pool: the replies before it are written first.
        cmd(&["REVOKE", "SUB", "user_1", "4102444800"]);
        cmd(&["VERIFY", &t, "GET", "/x", "10.0.0.1"]);
        cmd(&["PING", "two"]);
        let (got, writes) = serve_bytes(&d, &input).await;
        let mut pos = 0;
        let mut replies = Vec::new();
        while pos < got.len() {
            let (f, used) = crate::resp::parse_frame(&got[pos..], &Default::default())
                .unwrap()
                .unwrap();
            replies.push(f);
            pos += used;
        }
        assert_eq!(replies.len(), 6, "{replies:?}");
        assert_eq!(replies[0], Frame::bulk("one"));
        assert_eq!(first_int(&replies[1]), Some(200));
        assert_eq!(replies[2], Frame::simple("OK"));
        assert_eq!(replies[3], Frame::simple("OK"));
        assert_eq!(first_int(&replies[4]), Some(401));
        assert_eq!(replies[5], Frame::bulk("two"));
        assert_eq!(
            writes.len(),
            2,
            "before the REVOKE, and the rest: {writes:?}"
        );
    }
}
