//! The `ferrymq` binary: parses the command line, installs tracing, runs the subcommand.

use clap::Parser;

/// mimalloc instead of the system allocator: the publish path allocates per request (HTTP,
/// JSON, commands), and glibc's malloc/free took ~17% of the gateway's CPU under single-message
/// publishes (perf, docs/benchmarks.md). The `system-allocator` feature keeps the system's, for
/// heap profilers that hook malloc (heaptrack, valgrind).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
