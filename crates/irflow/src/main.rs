//! `irflow`: see the README. The work happens in the library.

use std::process::ExitCode;

use clap::Parser;

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
