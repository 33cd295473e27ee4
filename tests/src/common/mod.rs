//! Shared setup of the black-box tests: the stores every scenario runs against, and real
//! `ferrymq` processes spoken to over HTTP.

pub mod gateway;
pub mod stores;
