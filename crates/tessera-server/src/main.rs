//! The `tessera` binary: parse the command line, run it, report errors.

use std::process::ExitCode;

use clap::Parser;
use tessera_server::cli::Cli;

/// mimalloc instead of the system allocator: the request path allocates small, short-lived
/// objects, and glibc's malloc/free cost a measurable share of a cheap request
/// (`docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tessera_server::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
