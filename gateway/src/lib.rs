//! FerryMQ's gateway: the HTTP API over the durable core.
//!
//! - [`cli`]: the `ferrymq` command line (`serve`, `token`, `bench`, `compact`, and the client
//!   commands) and its settings.
//! - [`client`]: `ferrymq` as the shell client (`topic`, `group`, `publish`, `consume`, `tail`,
//!   `message`); [`wire`]: the `/v1` request and response bodies as types.
//! - [`compact`]: `ferrymq compact` and the optional background compactor of `serve`.
//! - [`server`]: wiring: store, node, router, background tasks, graceful shutdown.
//! - [`auth`]: JWT verification and permissions; [`receipt`]: signed receipt handles.
//! - [`http`]: the router, the `/v1` handlers by resource, the `Caller` extractor, the one
//!   mapping of errors to HTTP, and `/openapi.json` generated from the handlers.
//! - [`service`]: what each operation does (publish, receive, lookup, definitions,
//!   transactions), without HTTP, with its own error enum.
//! - [`batcher`]: group commit of publishes into segments; [`reader`]: reading messages
//!   through the hot tail; [`forward`]: gateway-to-sequencer calls over HTTP.
//! - [`filter`]: tag and SQL92 subscription filters; [`scheduler`]: due timers and
//!   transaction check-backs.
//! - [`otlp`]: span export over OTLP (cargo feature `otlp`, off by default).
//! - [`metrics`]: Prometheus metrics; [`backlog`]: consumer backlog metrics;
//!   [`mod@bench`]: the load generator; [`console`]: the web console at `/console/`.

pub mod auth;
pub mod backlog;
pub mod batcher;
pub mod bench;
pub mod claims;
pub mod cli;
pub mod client;
pub mod compact;
pub mod console;
pub mod fifo_groups;
pub mod filter;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod otlp;
pub mod push;
pub mod reader;
pub mod receipt;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod wire;
