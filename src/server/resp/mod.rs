//! The RESP door: tollgate's commands over the Redis wire format, on TCP and a Unix socket.
//!
//! The door owns the connections of the protocol and its commands (docs/protocol.md): it
//! parses each command into request facts, asks the [`Gate`](crate::gate::Gate), and writes
//! the answer. Framing — parsing requests, encoding replies — is [`crate::resp`]'s; the
//! accept loop, connection cap, idle timeout and shutdown phases are the ones every door
//! shares ([`crate::server::listener`]).
//!
//! # Files
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | this map, and the door's public names |
//! | `server.rs` | [`RespServer`]: binds the `[resp]` listeners, serves them, drains and stops; [`serve_resp`], the accept loop for one listener; [`PeerAddress`] |
//! | `options.rs` | [`RespOptions`], read from `[resp]` |
//! | `door.rs` | [`RespDoor`]: what every connection shares (gate, options, counters, connection cap), and the fan-out of shutdown phases to each connection |
//! | `stats.rs` | the sharded counters `INFO stats` reports, and one batch's counts |
//! | `event_loop.rs` | the door's own event-loop threads (`[resp] threads`) |
//! | [`idle_poll`] | how a busy event loop polls for work before it sleeps |
//! | `connection.rs` | one connection: read, parse every complete command, execute, one write per batch; a command that waits keeps its place |
//! | `cmd/mod.rs` | `Command` (which command a frame names), dispatch, and what commands share (argument helpers, error replies, the waiting part of `VERIFY`/`REVOKE`) |
//! | `cmd/<name>.rs` | one file per command, with its tests: `auth`, `check`, `client`, `command`, `config`, `echo`, `hello`, `info`, `ping`, `quit`, `reset`, `revoke`, `select`, `verify` |
//!
//! Replies are written with [`crate::resp::frame`]'s encoders; a reply only one command
//! writes (`VERIFY`'s array, `HELLO`'s map) is in that command's file.
//!
//! # How to add a command
//!
//! 1. Add `cmd/<name>.rs` with `pub(super) fn apply(…)`: it checks the arity and parses its
//!    own arguments from the frame's `Args` (slices of the read buffer: borrow, do not copy),
//!    asks the gate when it needs a decision, and writes its reply into the output buffer.
//!    Errors go through `cmd::err` / `cmd::wrong_arity`, which count them for `INFO`. A
//!    command that must wait (I/O, a key-set fetch) returns `Flow::Await` with a `Work`
//!    variant instead, as `VERIFY` and `REVOKE` do, and the loop settles it in order.
//! 2. In `cmd/mod.rs`: declare the module, add a `Command` variant, its name in
//!    `Command::name` and `Command::from_name`, its place in `Command::ALL` (what
//!    `COMMAND COUNT`/`LIST` report; append, so that list keeps its order), and its arm in
//!    `execute`.
//! 3. Put its unit tests beside it (`testing.rs` runs a command line through `execute` as the
//!    loop would), document it in docs/protocol.md, and add an integration test in
//!    `tests/resp_server.rs` when it changes what a real client sees.
//!
//! A command decides nothing itself: whether a request is allowed is the gate's answer; the
//! command only turns bytes into the gate's query and its answer into bytes.

mod cmd;
mod connection;
mod door;
mod event_loop;
pub mod idle_poll;
mod options;
mod server;
mod stats;
#[cfg(test)]
mod testing;

pub use door::RespDoor;
pub use options::RespOptions;
pub use server::{serve_resp, PeerAddress, RespServer};
