//! `labrun`: parse the command line, run, map the result to an exit code. Nothing else.

use std::error::Error as _;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = labrun::cli::Cli::parse();
    match labrun::run(cli) {
        Ok(outcome) => ExitCode::from(labrun::exit_code(outcome)),
        Err(err) => {
            eprintln!("error: {err}");
            let mut cause = err.source();
            while let Some(inner) = cause {
                eprintln!("  caused by: {inner}");
                cause = inner.source();
            }
            ExitCode::from(err.exit_code())
        }
    }
}
