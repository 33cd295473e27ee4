//! FerryMQ's gateway: the HTTP API over the durable core.
//!
//! - [`cli`]: the `ferrymq` command line (`serve`, `token`, `bench`, `compact`, and the client
//!   commands) and its settings.
//! - [`client`]: `ferrymq` as the shell client (`topic`, `group`, `publish`, `consume`, `tail`,
//!   `message`); [`wire`]: the `/v1` request and response bodies as types.
//! - [`compact`]: `ferrymq compact` and the optional background compactor of `serve`.
//! - [`server`]: wiring: store, node, router, background tasks, graceful shutdown.
//! - [`auth`]: JWT verification and permissions; [`receipt`]: signed receipt handles.
//! - [`api`]: the `/v1` handlers; [`error`]: the one mapping of errors to HTTP.
//! - [`batcher`]: group commit of publishes into segments; [`reader`]: reading messages
//!   through the hot tail; [`forward`]: gateway-to-sequencer calls over HTTP.
//! - [`filter`]: tag and SQL92 subscription filters; [`scheduler`]: due timers and
//!   transaction check-backs.
//! - [`metrics`]: Prometheus metrics; [`backlog`]: consumer backlog metrics;
//!   [`mod@bench`]: the load generator; [`console`]: the web console at `/console/`.

pub mod api;
pub mod auth;
pub mod backlog;
pub mod batcher;
pub mod bench;
pub mod claims;
pub mod cli;
pub mod client;
pub mod compact;
pub mod console;
pub mod error;
pub mod filter;
pub mod forward;
pub mod metrics;
pub mod reader;
pub mod receipt;
pub mod scheduler;
pub mod server;
pub mod settle;
pub mod wire;
