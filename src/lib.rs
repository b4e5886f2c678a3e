//! labrun: a scriptable test harness and load tester for the socket servers of a
//! computer-networks lab.
//!
//! # Layout
//!
//! Data flows one way: `scenario` (TOML → [`scenario::Plan`]) → `supervise` (launch servers,
//! readiness, teardown) and `clientprog` (client programs under test) → `workload`
//! (simulated clients → [`workload::ClientRecord`]s) → `metrics` (figures) and `verify`
//! (checks and findings, from records only) → `report` (terminal, files). Three leaves sit
//! under them: `wire` (what goes over a client's socket and how each returning byte is
//! checked), `histogram` (the latency histogram) and `units`/`escape` (how numbers and bytes
//! are written). `check` and `grade` build plans and read reports on top; `servers` holds
//! the built-in reference servers that `labrun serve` runs as child processes. The test
//! `architecture` in the suite fails on any import cycle among these modules, and on any
//! public module but `cli` and `error` (what `main.rs` needs).
//! [`run`] dispatches the command line to `commands` (one file per command family, each
//! taking its parsed arguments); `run.rs` wires the stages for one scenario.

#![warn(missing_docs)]

pub(crate) mod check;
pub mod cli;
pub(crate) mod clientprog;
mod commands;
pub mod error;
pub(crate) mod escape;
pub(crate) mod grade;
pub(crate) mod histogram;
mod interrupt;
pub(crate) mod metrics;
pub(crate) mod report;
mod run;
pub(crate) mod scenario;
pub(crate) mod servers;
pub(crate) mod supervise;
pub(crate) mod units;
pub(crate) mod verify;
pub(crate) mod wire;
pub(crate) mod workload;

pub use error::Error;
pub use report::Outcome;
pub use run::PANIC_INJECTION_VARIABLE;

use cli::{Cli, Command};

/// Carries out the command line. Returns the overall outcome, or why there is none.
pub fn run(cli: Cli) -> Result<Outcome, Error> {
    match cli.command {
        Some(Command::Serve { builtin, port }) => {
            servers::serve(builtin, port).map_err(|source| Error::Serve {
                builtin: builtin.name(),
                source,
            })?;
            Ok(Outcome::Pass)
        }
        Some(Command::Schema) => Ok(commands::catalog::schema()),
        Some(Command::Completions { shell }) => Ok(commands::catalog::completions(shell)),
        Some(Command::List) => Ok(commands::catalog::list()),
        Some(Command::Validate { files }) => commands::catalog::validate(&files),
        Some(Command::Check(args)) => commands::check::check_program(args),
        Some(Command::Grade(args)) => commands::grade::grade(args),
        Some(Command::Merge {
            reports,
            out,
            no_report,
        }) => commands::reports::merge(&reports, (!no_report).then_some(out.as_path())),
        Some(Command::Compare {
            baseline,
            current,
            max_regress,
            json,
        }) => commands::reports::compare(&baseline, &current, max_regress, json),
        Some(Command::Run(args)) => commands::scenarios::run_scenarios(args),
        None => commands::scenarios::run_scenarios(cli.run),
    }
}

/// The exit code of an outcome: 0 pass, 1 fail, 3 could not run, 130 interrupted.
pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Pass => 0,
        Outcome::Fail => error::EXIT_FAILED,
        Outcome::Error => error::EXIT_COULD_NOT_RUN,
        Outcome::Interrupted => error::EXIT_INTERRUPTED,
    }
}
