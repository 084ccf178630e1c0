//! `irflow`: see the README. The work happens in the library.

use std::process::ExitCode;

use clap::Parser;

// A slot search allocates many small, short-lived values (rows, JSON, times); under
// glibc's malloc that was about a sixth of its CPU time (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = irflow::cli::Cli::parse();
    match irflow::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("irflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}
