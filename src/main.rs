//! `labrun`: parse the command line, run, map the result to an exit code. Nothing else.

use std::panic::AssertUnwindSafe;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = labrun::cli::Cli::parse();
    // A panic is a labrun bug: its message is already printed and the servers killed (panic
    // hook); unwinding here runs every teardown guard and maps it to "could not run".
    let Ok(result) = std::panic::catch_unwind(AssertUnwindSafe(|| labrun::run(cli))) else {
        eprintln!("error: labrun hit an internal error (a bug; please report it)");
        return ExitCode::from(labrun::error::EXIT_COULD_NOT_RUN);
    };
    match result {
        Ok(outcome) => ExitCode::from(labrun::exit_code(outcome)),
        Err(err) => {
            eprintln!("error: {}", err.with_causes());
            ExitCode::from(err.exit_code())
        }
    }
}
