//! The `ferrymq` binary: parses the command line, installs tracing, runs the subcommand.

use clap::Parser;

/// jemalloc instead of the system allocator: the publish path allocates per request (HTTP,
/// JSON, commands), and glibc's malloc/free took ~17% of the gateway's CPU under single-message
/// publishes (perf, docs/benchmarks.md). jemalloc rather than mimalloc (the allocator until
/// session 14): under continuous compaction mimalloc kept the gigabytes of short-lived Arrow and
/// Parquet buffers a pass frees (RSS 2.1-2.4 GB and climbing over a live heap of ~0.5 GB),
/// jemalloc returns them (0.75-0.9 GB, flat; docs/benchmarks.md, "The allocator: jemalloc").
/// Built with background threads on (the crate's `background_threads` feature): freed pages are
/// returned on jemalloc's own thread as they age (`dirty_decay_ms`, 10 s by default), also while
/// the gateway is idle after a spike. Its options can be changed at start-up with
/// `_RJEM_MALLOC_CONF` (the crate's symbols carry the `_rjem_` prefix).
/// The `system-allocator` feature keeps the system's, for heap profilers that hook malloc
/// (heaptrack, valgrind).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // A client command's failure is the API's error code and message (or an unreachable
        // gateway), not a fault of this program: no backtrace.
        Err(e) if e.downcast_ref::<gateway::client::ClientError>().is_some() => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("Error: {e:?}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli =
        gateway::cli::Cli::parse_from(gateway::cli::args_with_config_file(std::env::args_os())?);
    let _spans = gateway::cli::install_tracing(&cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(gateway::cli::run(cli))
}
