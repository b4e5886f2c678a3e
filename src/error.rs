//! The top-level error: why labrun could not do its job, and which exit code that means.
//!
//! A server that fails its checks is not an error (that is exit 1, decided by the verdict).
//! Errors are bad input (exit 2) or being unable to run (exit 3); the mapping is one `match`.

use std::path::PathBuf;

use crate::scenario::ScenarioError;
use crate::supervise::SuperviseError;

/// Exit code: a check failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad input (command line, scenario).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: could not run (server would not start, internal error).
pub const EXIT_COULD_NOT_RUN: u8 = 3;
/// Exit code: interrupted by Ctrl-C or SIGTERM.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Why labrun stopped without a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A scenario file is missing or invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// `labrun validate` found invalid files (each was already printed).
    #[error("{invalid} of {total} files are invalid")]
    ScenariosInvalid {
        /// How many failed.
        invalid: usize,
        /// How many were checked.
        total: usize,
    },
    /// A server under test could not be started.
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
    /// A client program under test, or a server played for it, could not be started.
    #[error(transparent)]
    Program(#[from] crate::clientprog::ProgramError),
    /// The report file could not be written.
    #[error("cannot write report `{}`", path.display())]
    WriteReport {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `labrun serve` could not serve.
    #[error("built-in server `{builtin}` failed")]
    Serve {
        /// Which server.
        builtin: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The scenario needs more sockets than this process may open.
    #[error(
        "this scenario opens {clients} client sockets, but labrun may open only {open_files} files; \
         raise the limit (`ulimit -n`, as root or up to the hard limit) or use fewer clients"
    )]
    TooManyClients {
        /// Clients in the largest scenario.
        clients: u64,
        /// The open-files limit after raising the soft limit to the hard one.
        open_files: u64,
    },
    /// A private network namespace could not be made.
    #[error("cannot run in a private network namespace (needs root or user namespaces)")]
    Isolation(#[source] std::io::Error),
    /// The sandbox for programs under test cannot be used here.
    #[error(transparent)]
    Sandbox(#[from] crate::supervise::sandbox::SandboxError),
    /// The async runtime could not be created.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The command line asks for something that cannot be done with these scenarios.
    #[error("{0}")]
    Usage(String),
    /// A grading suite is invalid.
    #[error(transparent)]
    Suite(#[from] crate::grade::SuiteError),
    /// `labrun check` cannot build its battery for the program given.
    #[error(transparent)]
    Check(#[from] crate::check::CheckError),
    /// A report given to `compare` could not be read.
    #[error(transparent)]
    ReadReport(#[from] crate::report::saved::ReadError),
    /// Reports given to `merge` are unreadable or are not the shards of one run.
    #[error(transparent)]
    Merge(#[from] crate::report::merge::MergeError),
    /// Ctrl-C arrived before the run produced anything to report.
    #[error("interrupted before the run started")]
    Interrupted,
}

impl Error {
    /// The error and each of its causes, a line each (`caused by: …`), as labrun prints it.
    pub fn with_causes(&self) -> String {
        use std::error::Error as _;
        let mut text = self.to_string();
        let mut cause = self.source();
        while let Some(inner) = cause {
            text.push_str(&format!("\n  caused by: {inner}"));
            cause = inner.source();
        }
        text
    }

    /// Whether it is the program under test that could not be started or reached (a server
    /// that will not start, a client program that cannot be launched): such a run is judged
    /// "could not run" and still gets its report; anything else stops labrun.
    pub fn is_about_the_program_under_test(&self) -> bool {
        matches!(self, Error::Supervise(_) | Error::Program(_))
    }

    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Scenario(_)
            | Error::ScenariosInvalid { .. }
            | Error::ReadReport(_)
            | Error::Merge(_)
            | Error::Usage(_)
            | Error::Suite(_)
            | Error::Check(_) => EXIT_BAD_INPUT,
            Error::Supervise(_)
            | Error::Program(_)
            | Error::WriteReport { .. }
            | Error::Serve { .. }
            | Error::Runtime(_)
            | Error::Isolation(_)
            | Error::Sandbox(_)
            | Error::TooManyClients { .. } => EXIT_COULD_NOT_RUN,
            Error::Interrupted => EXIT_INTERRUPTED,
        }
    }
}
