//! Shared setup of the black-box tests: the three stores every scenario runs against, and
//! the `ferrymq` binary.

pub mod stores;
