//! The `ferrymq` binary: parses the command line, installs tracing, runs the subcommand.

use clap::Parser;

/// mimalloc instead of the system allocator: the publish path allocates per request (HTTP,
/// JSON, commands), and glibc's malloc/free took ~17% of the gateway's CPU under single-message
/// publishes (perf, docs/benchmarks.md). The `system-allocator` feature keeps the system's, for
/// heap profilers that hook malloc (heaptrack, valgrind).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli =
        gateway::cli::Cli::parse_from(gateway::cli::args_with_config_file(std::env::args_os())?);
    gateway::cli::install_tracing(&cli);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(gateway::cli::run(cli))
}
