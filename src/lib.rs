//! `ioe`: a scriptable client and a server for the IOE/1 file-transfer
//! protocol. The layers, bottom up:
//!
//! - [`addr`]: `host[:port]` as typed → `host:port` (port 7070 by default);
//! - [`auth`]: the server's token file, minting tokens, the client's [`auth::Token`];
//! - [`protocol`]: requests, replies, names and limits on byte slices;
//! - [`rate`]: the minimum rate and stall limit of the server's transfers;
//! - [`conn`]: every byte of a connection: a stream (plain TCP or TLS) with one
//!   bounded input buffer (lines and bodies), timeouts and shutdown;
//! - [`partial`]: temporary files renamed over their target once complete;
//! - [`digest`]: `sha256` and `blake3` digests of files, and their cache;
//! - [`root`]: names → files under the server's root, whole-file uploads;
//! - [`server`]: `ioe serve`, a thread per connection;
//! - [`session`]: the client API (`list`, `read`, `write`, `bye`), with its
//!   typed [`Error`]s, [`cancel`]lation and [`progress`] bars;
//! - [`script`]: Rhai scripts on top of sessions (`ioe run`, the REPL's engine);
//! - [`repl`]: `ioe repl`, command forms and Rhai code at a prompt or from a pipe;
//! - [`events`]: what a job did, as JSON lines (`--events FILE`);
//! - [`files`]: the files trust is taken from (token, known hosts, servers, CA): checks, locking;
//! - [`tls`]: certificates, fingerprints and the client's trust (pinned,
//!   known hosts, certificate authorities);
//! - [`known_hosts`]: the file of servers trusted by fingerprint;
//! - [`servers`]: named servers (`servers.toml`) for `connect("backup")`;
//! - [`units`]: sizes such as `10M` ↔ byte counts (`--max-size`, scripts).

pub mod addr;
pub mod auth;
pub mod cancel;
pub mod conn;
pub mod digest;
pub mod error;
pub mod events;
pub mod files;
pub mod known_hosts;
pub mod partial;
pub mod progress;
pub mod protocol;
pub mod rate;
pub mod repl;
pub mod root;
pub mod script;
pub mod server;
pub mod servers;
pub mod session;
pub mod sync;
pub mod tls;
pub mod units;

pub use error::{Error, ErrorKind};
pub use session::Session;
