//! FerryMQ's gateway.
pub mod server;
