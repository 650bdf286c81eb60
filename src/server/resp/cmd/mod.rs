//! The commands of the RESP door, one file each (docs/protocol.md).
//!
//! [`Command::from_name`] tells from a frame's first argument which command it is, and
//! [`execute`] hands the frame to that command's file, which parses its own arguments,
//! applies itself (asking the gate when it needs a decision) and writes its reply. Every
//! command file has its unit tests beside it.
//!
//! Most commands answer at once. The two that may wait — `VERIFY` for a key-set refetch,
//! `REVOKE` for the revocation log's fsync — only check their arguments here and hand the
//! rest back as a [`Work`] ([`Flow::Await`]); the connection loop [`settle`]s it and writes
//! its reply ([`reply_settled`]) before the next command, so replies stay in order while the
//! waiting borrows nothing of the connection.
//!
//! Why an enum of names and plain functions rather than a parsed command value or a trait
//! object: the hot commands (`CHECK`, `VERIFY`) run thousands of times per batch; matching a
//! name to a function costs what the one `if` chain before it did (no allocation, no dynamic
//! dispatch), and each command keeps the order in which it checks things, which decides
//! which error a caller sees (`REVOKE` checks admin access before its arguments).

mod auth;
mod check;
mod client;
mod command;
mod config;
mod echo;
mod hello;
mod info;
mod ping;
mod quit;
mod reset;
mod revoke;
mod select;
mod verify;

use std::fmt::Write as _;

use bytes::BytesMut;

use super::connection::Conn;
use super::door::DoorShared;
use super::stats::BatchCounts;
use crate::gate::{AccessDecision, CheckError};
use crate::gate::{RevokeError, RevokeRequest, Revoked};
use crate::resp::frame;
use crate::resp::Args;

/// What a command asks of the connection loop.
pub(super) enum Flow<'a> {
    Continue,
    /// Write the replies so far, then close (`QUIT`).
    Close,
    /// The command's arguments are valid and its answer needs work that may wait
    /// ([`settle`]); the loop finishes it before the next command, so replies stay in order.
    Await(Work<'a>),
}

/// The part of a command that may wait, with its validated arguments.
pub(super) enum Work<'a> {
    /// `VERIFY`: the access decision, which waits only for a key-set refetch when the token
    /// names an unknown key id.
    Verify(verify::VerifyArgs<'a>),
    /// `REVOKE`: a write to the revocation log with an fsync, run on the blocking pool.
    Revoke(RevokeRequest),
}

/// What a [`Work`] came to. One lives at a time per connection, on the stack, for every
/// `VERIFY`: boxing the large variant would cost an allocation per `VERIFY` to save a few
/// hundred bytes of stack per `REVOKE`.
#[allow(clippy::large_enum_variant)]
pub(super) enum Settled {
    Verify(Result<AccessDecision, CheckError>),
    /// The gate's answer.
    Revoke(Result<Revoked, RevokeError>),
}

/// The commands tollgate answers, one variant per command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// The variants are the protocol's command names, and `COMMAND` is one of them.
#[allow(clippy::enum_variant_names)]
pub(super) enum Command {
    Auth,
    Check,
    Client,
    Command,
    Echo,
    Hello,
    Info,
    Ping,
    Quit,
    Reset,
    Revoke,
    Select,
    Verify,
    Config,
}

impl Command {
    /// Every command, in the order `COMMAND LIST` names them (`COMMAND COUNT` counts them).
    pub(super) const ALL: [Command; 14] = [
        Command::Auth,
        Command::Check,
        Command::Client,
        Command::Command,
        Command::Echo,
        Command::Hello,
        Command::Info,
        Command::Ping,
        Command::Quit,
        Command::Reset,
        Command::Revoke,
        Command::Select,
        Command::Verify,
        Command::Config,
    ];

    /// The command's name, as `COMMAND LIST` gives it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Command::Auth => "auth",
            Command::Check => "check",
            Command::Client => "client",
            Command::Command => "command",
            Command::Echo => "echo",
            Command::Hello => "hello",
            Command::Info => "info",
            Command::Ping => "ping",
            Command::Quit => "quit",
            Command::Reset => "reset",
            Command::Revoke => "revoke",
            Command::Select => "select",
            Command::Verify => "verify",
            Command::Config => "config",
        }
    }

    /// The command a frame's first argument names, in any case; `None` for one tollgate
    /// does not know.
    #[inline]
    pub(super) fn from_name(name: &[u8]) -> Option<Self> {
        // The hot command first.
        Some(if is(name, "CHECK") {
            Command::Check
        } else if is(name, "PING") {
            Command::Ping
        } else if is(name, "ECHO") {
            Command::Echo
        } else if is(name, "QUIT") {
            Command::Quit
        } else if is(name, "AUTH") {
            Command::Auth
        } else if is(name, "HELLO") {
            Command::Hello
        } else if is(name, "VERIFY") {
            Command::Verify
        } else if is(name, "REVOKE") {
            Command::Revoke
        } else if is(name, "INFO") {
            Command::Info
        } else if is(name, "COMMAND") {
            Command::Command
        } else if is(name, "CLIENT") {
            Command::Client
        } else if is(name, "SELECT") {
            Command::Select
        } else if is(name, "RESET") {
            Command::Reset
        } else if is(name, "CONFIG") {
            Command::Config
        } else {
            return None;
        })
    }
}

/// Executes one command (`args` is not empty), writing its reply into `out`; or, for a
/// command whose answer may wait, checks its arguments and hands the rest back as
/// [`Flow::Await`].
pub(super) fn execute<'a>(
    conn: &mut Conn,
    args: &Args<'a>,
    door: &DoorShared,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) -> Flow<'a> {
    let Some(command) = Command::from_name(args[0]) else {
        unknown(args, out, counts);
        return Flow::Continue;
    };
    match command {
        Command::Check => check::apply(conn, args, door, out, counts),
        Command::Ping => ping::apply(args, out, counts),
        Command::Echo => echo::apply(args, out, counts),
        Command::Quit => return quit::apply(out),
        Command::Auth => auth::apply(conn, args, door, out, counts),
        Command::Hello => hello::apply(conn, args, door, out, counts),
        Command::Verify => return verify::apply(conn, args, door, out, counts),
        Command::Revoke => return revoke::apply(conn, args, door, out, counts),
        Command::Info => info::apply(args, door, out),
        Command::Command => command::apply(conn, args, out, counts),
        Command::Client => client::apply(conn, args, out, counts),
        Command::Select => select::apply(args, out, counts),
        Command::Reset => reset::apply(conn, args, out, counts),
        Command::Config => config::apply(conn, args, out, counts),
    }
    Flow::Continue
}

/// Does the waiting part of a command. Borrows nothing of the connection, so the loop can
/// write earlier replies while it waits.
pub(super) async fn settle(work: Work<'_>, door: &DoorShared) -> Settled {
    match work {
        Work::Verify(v) => verify::settle(v, door).await,
        Work::Revoke(request) => revoke::settle(request, door).await,
    }
}

/// Writes the answer of a settled [`Work`].
pub(super) fn reply_settled(
    conn: &mut Conn,
    settled: Settled,
    out: &mut BytesMut,
    counts: &mut BatchCounts,
) {
    match settled {
        Settled::Verify(result) => verify::reply(conn, result, out, counts),
        Settled::Revoke(result) => revoke::reply(result, out, counts),
    }
}

/// The reply to a command tollgate does not know, as Redis words it.
fn unknown(args: &Args<'_>, out: &mut BytesMut, counts: &mut BatchCounts) {
    let mut msg = String::with_capacity(96);
    let _ = write!(
        msg,
        "ERR unknown command '{}', with args beginning with:",
        shown(args[0])
    );
    for a in args.iter().skip(1).take(4) {
        let _ = write!(msg, " '{}'", shown(a));
    }
    err(out, &msg, counts);
}

// ------------------------------------------------------------------------------------------
// What the commands share: reading arguments, and the error replies every command counts

/// Case-insensitive comparison of a command or option name.
#[inline]
fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// A command name or argument as it may appear in an error message: lossy text, without
/// CR/LF (the encoder replaces those anyway) and cut to a readable length.
fn shown(arg: &[u8]) -> String {
    let cut = &arg[..arg.len().min(64)];
    String::from_utf8_lossy(cut).replace(['\r', '\n'], " ")
}

/// A decimal integer argument, as Redis reads them (no spaces, no `+`).
fn int_arg(arg: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty() || s.starts_with('+') {
        return None;
    }
    s.parse().ok()
}

/// Redis's reply to a command given the wrong number of arguments; a command error.
fn wrong_arity(out: &mut BytesMut, name: &str, counts: &mut BatchCounts) {
    counts.command_errors += 1;
    let mut msg = String::with_capacity(64);
    let _ = write!(msg, "ERR wrong number of arguments for '{name}' command");
    frame::put_error(out, &msg);
}

/// An error reply; a command error (the connection stays usable).
fn err(out: &mut BytesMut, msg: &str, counts: &mut BatchCounts) {
    counts.command_errors += 1;
    frame::put_error(out, msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::resp::testing::Admin;
    use crate::server::resp::testing::{conn, door, run};

    #[test]
    fn every_command_is_found_by_its_name_in_any_case() {
        for c in Command::ALL {
            assert_eq!(Command::from_name(c.name().as_bytes()), Some(c));
            let upper = c.name().to_ascii_uppercase();
            assert_eq!(Command::from_name(upper.as_bytes()), Some(c));
        }
        assert_eq!(Command::from_name(b"FLUSHALL"), None);
    }

    #[test]
    fn an_unknown_command_is_named_with_its_first_arguments() {
        let d = door(Admin::Disabled);
        let mut c = conn(false);
        assert_eq!(
            run(&mut c, &d, "FLUSHALL now"),
            "-ERR unknown command 'FLUSHALL', with args beginning with: 'now'\r\n"
        );
    }
}
