//! tollgate: a rate-limiter and JWT-auth sidecar.
//!
//! It runs next to an application and answers one question about every request it is asked
//! about: *given these request facts, allow or deny, and with what headers?* There is one
//! decision core, [`gate`], and several thin front doors in [`server`]; a door only parses
//! its input into request facts and renders the decision, it never decides.
//!
//! # Components
//!
//! One module each:
//!
//! - [`clock`]: the injectable time source ([`clock::SystemClock`], and
//!   [`clock::ManualClock`] for tests); nothing else reads the system clock.
//! - [`limiter`]: the rate-limiting engine — sliding-window counters and exact sliding logs
//!   per (limit, key), in a sharded table with idle expiry and a hard cap;
//!   [`limiter::Limiter::check`] decides all the limits of a request at once, and a denial
//!   consumes nothing. Counts of other nodes can be merged in by cell
//!   ([`limiter::Limiter::merge_cell`]), for a cluster layer to build on.
//! - [`cluster`]: the sidecars of a deployment sharing their counts and revocations by
//!   gossip (off unless configured), a door like the others: one driver task per node
//!   ([`cluster::node`]) owns a UDP socket and a TCP listener; membership and failure
//!   detection on foca ([`cluster::swim`], behind [`cluster::membership::Membership`]); the
//!   counter plane ([`cluster::counter_plane`], datagrams of [`cluster::wire`]) merging
//!   peers' counts into the limiter; the revocation plane ([`cluster::revocation_plane`]).
//! - [`config`]: the TOML schema, the embedded default, validation with file:line:column
//!   errors, the typed views (durations, addresses, file modes). Data: it imports no other
//!   module; [`gate::compile`] turns it into what runs.
//! - [`auth`]: who is calling — JWT verification against issuers' key sets, the
//!   verified-token cache ([`auth::TokenCache`]), durable revocation
//!   ([`auth::RevocationStore`]), API keys — behind [`auth::Authenticator`].
//! - [`policy`]: what a route demands — path normalisation, the most specific route rule,
//!   roles, permissions and owner-only paths, limit key templates, the client IP behind
//!   trusted proxies; compiled from its own [`policy::PolicySpec`]. Pure, no I/O.
//! - [`gate`]: the decision core. [`gate::Gate::check`] answers the rate-limit question
//!   (`/check`, `CHECK`); [`gate::Gate::authorize`] (in `gate/access.rs`) answers the access
//!   question (`/auth`, `VERIFY`) from an [`gate::AccessQuery`]. [`gate::compile`] is the one
//!   place a configuration is compiled into limits and policy. It holds the compiled
//!   configuration behind an atomic swap for reloads, the limiter, the authenticator and the
//!   metrics.
//! - [`server`]: the front doors, one folder each — [`server::http`] (`/check`, `/auth`,
//!   health, readiness, metrics, the admin API, one file per endpoint group, and
//!   [`server::http::fastpath`], the hand-written HTTP/1.1 path for the plain requests of the
//!   hot paths), [`server::resp`] (the RESP door: its connection loop, one file per command —
//!   `CHECK`, `VERIFY`, `REVOKE`… — and event loops of its own that poll briefly before
//!   sleeping when busy: [`server::resp::idle_poll`]) — and what they share:
//!   [`server::listener`] (TCP and Unix listeners, connection cap, timeouts, graceful drain;
//!   no protocol).
//! - [`readiness`]: the conditions `/readyz` reports, each set by the component it belongs
//!   to (listeners, issuers' key sets, the cluster's revocations).
//! - [`resp`]: RESP2/RESP3 framing, the request parser and the reply encoder.
//! - [`client`]: an async, pipelining Rust client for the RESP protocol.
//! - [`metrics`]: the Prometheus registry and every exported series.
//! - [`problem`]: RFC 9457 problem details for input that cannot be answered.
//! - [`logging`]: the tracing subscriber (text or JSON, level reloadable).
//! - [`cli`]: the `tollgate` command line (`serve`, `check-config`, `print-default-config`).
//!
//! # How a request flows
//!
//! **nginx `auth_request` → `/auth`.** The HTTP door ([`server::http::fastpath`] for a plain
//! request, hyper otherwise) collects the facts — credentials, `X-Original-URI` and
//! `X-Original-Method`, the client IP resolved through the trusted proxies — into an
//! [`gate::AccessQuery`], and [`gate::Gate::authorize`]:
//!
//! 1. normalises the original path and matches the most specific route rule ([`policy`]);
//! 2. authenticates as the rule demands ([`auth`]): a token seen before comes from the
//!    verified-token cache, with revocation checked on every hit; otherwise it is verified
//!    against its issuer's key set;
//! 3. authorises: roles, permissions, owner-only paths ([`policy`]);
//! 4. checks the tier's limit and the rule's limits, keys rendered from their templates, in
//!    one call to the [`limiter`].
//!
//! The door renders the [`gate::AccessDecision`] as headers with an empty body: 200 with
//! identity headers (`X-User-Id`, `X-Tier`…) and the `RateLimit` fields, 401 with
//! `WWW-Authenticate`, or 403 with `X-Tollgate-Reason` (`rate_limited`, `forbidden`…).
//!
//! **`GET /check`** parses the key, tier, hits and optional named limit into a
//! [`gate::CheckQuery`]; [`gate::Gate::check`] asks the [`limiter`] for the tier's limit and
//! the named one together, and the door answers 200 or 429 with the `RateLimit` and
//! `X-RateLimit-*` fields and `Retry-After`.
//!
//! **RESP** `CHECK` and `VERIFY` build the same queries and call the same two functions; the
//! door answers arrays, pipelined, one write per batch.
//!
//! The repository's `docs/` describe each part for operators: `architecture.md` (this flow
//! in detail), `algorithms.md` (the limiter and its measured error), `configuration.md`,
//! `policy.md`, `protocol.md`, `nginx.md`, `security.md`, `benchmarks.md`.

pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod gate;
pub mod limiter;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod problem;
pub mod readiness;
pub mod resp;
pub mod server;
