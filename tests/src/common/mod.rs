//! Shared setup of the black-box tests: the stores every scenario runs against, and real
//! `ferrymq` processes spoken to over HTTP.

pub mod gateway;
pub mod stores;

/// This package's directory (`tests/`), where the fixtures and conformance scripts are. Read
/// when the test runs (cargo and nextest set `CARGO_MANIFEST_DIR` for it), not when it was
/// built: a target directory shared by two checkouts can hold a test binary compiled in the
/// other one, and that path may be gone.
pub fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}
