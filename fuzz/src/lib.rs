//! Bodies of tollgate's fuzz targets, one module per target.
//!
//! Each module exposes `pub fn run(data: &[u8])`, which must never panic on any input except
//! to report a broken invariant. The libFuzzer binaries in `fuzz_targets/` only call these;
//! tollgate's own test suite includes the same files (`#[path]`) and runs every body over the
//! seed corpus in `fuzz/seeds/<target>/` on stable Rust, so a regression shows up in
//! `cargo test` without a nightly toolchain (see docs/fuzzing.md).
//!
//! A body may use only the `tollgate` crate and its dependencies (`http`, `httparse`,
//! `serde_json`, `base64`, `ring`), so that it compiles in both places.

pub mod admin_body;
pub mod cluster_membership;
pub mod cluster_revocation_frame;
pub mod cluster_wire;
pub mod config_parse;
pub mod http_fastpath;
pub mod jwks_document;
pub mod jwt_token;
pub mod policy_client_ip;
pub mod policy_key;
pub mod policy_path;
pub mod resp_parse;
