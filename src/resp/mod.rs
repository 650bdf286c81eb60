//! RESP2/RESP3 framing: parsing requests and writing replies.
//!
//! tollgate's low-latency protocol uses the Redis wire format with its own commands
//! (docs/protocol.md), so that any Redis client can talk to it. This module knows only the
//! framing, not the commands: [`frame`] holds the value type ([`Frame`]) and the encoders,
//! [`parse`] the request parser the server runs on every read ([`RequestParser`]) and the
//! reply parser the client uses ([`parse_frame`]). The commands live in the RESP door,
//! `server::resp`; the Rust client in `client`.

pub mod frame;
pub mod parse;

pub use frame::{Frame, Protocol};
pub use parse::{parse_frame, Args, FrameLimits, ParseError, Parsed, RequestLimits, RequestParser};
