//! Shared helpers of FerryMQ's black-box tests: stores to run every scenario against.

pub mod common;
