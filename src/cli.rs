//! Command-line definitions (clap types only; behaviour lives in the library).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::check::Lab;
use crate::report::compare::Tolerance;
use crate::scenario::Format;
use crate::scenario::{AimedServer, Shard, StartAt, Target};
use crate::servers::Builtin;

/// Test harness and load tester for the socket servers of a computer-networks lab.
#[derive(Debug, Parser)]
#[command(
    name = "labrun",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit codes: 0 every check passed · 1 a check failed · 2 bad input · 3 could not run · 130 interrupted"
)]
pub struct Cli {
    /// What to do; without one, the arguments are scenarios to run.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Scenarios to run (same as `labrun run`).
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run scenarios: start their servers, drive their clients, check and report.
    Run(RunArgs),
    /// Check a lab program with the lab's whole battery of tests, no scenario to write:
    /// `labrun check echo-threaded -- python3 my_server.py {port}`.
    Check(CheckArgs),
    /// Check scenario files without starting anything or touching the network.
    Validate {
        /// Scenario files.
        #[arg(required = true, value_name = "SCENARIO")]
        files: Vec<PathBuf>,
    },
    /// Run a built-in reference server on 127.0.0.1 until killed (try it with `nc`).
    Serve {
        /// Which server.
        builtin: Builtin,
        /// Port to listen on; 0 picks a free one and prints it.
        #[arg(long, default_value_t = 6000)]
        port: u16,
    },
    /// List the built-in servers, workloads and client fault kinds.
    List,
    /// Print the JSON Schema of scenario files (for editors that check TOML against one).
    Schema,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Grade student submissions: every folder through every test of a suite.
    Grade(GradeArgs),
    /// Merge the JSON reports of one scenario's shards (`--shard K/N`) into one.
    Merge {
        /// The shards' reports (JSON).
        #[arg(required = true, value_name = "REPORT")]
        reports: Vec<PathBuf>,
        /// Folder for the merged report, `<scenario>.merged.json`.
        #[arg(long, value_name = "DIR", default_value = "reports")]
        out: PathBuf,
        /// Do not write the merged report.
        #[arg(long)]
        no_report: bool,
    },
    /// Compare a run's JSON report with a baseline's; exit 1 when a gated figure regressed
    /// (beyond the noise, for reports of `--repeat` runs).
    Compare {
        /// The baseline report (JSON).
        baseline: PathBuf,
        /// The current report (JSON).
        current: PathBuf,
        /// Gates, comma-separated: p99=10% (RTT), wait.p99=20%, connect.max=50%,
        /// fanout.p99=10%, throughput=5%, errors=0. Default:
        /// p50=10%,p99=10%,throughput=5%,errors=0. Reports of `--repeat` runs are held run
        /// by run: a figure past its limit regresses only when a rank test says it moved.
        #[arg(long, value_delimiter = ',', value_name = "GATES")]
        max_regress: Vec<Tolerance>,
        /// Print the comparison as JSON on stdout (checks that flipped, every figure with its
        /// values, the verdict) instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// What `labrun grade` grades, with what, and where the grades go.
#[derive(Debug, Args)]
pub struct GradeArgs {
    /// The suite file (TOML); with --lab, none: every argument is a submission.
    #[arg(value_name = "SUITE")]
    pub suite: Option<PathBuf>,
    /// Submission folders.
    #[arg(value_name = "SUBMISSION")]
    pub submissions: Vec<PathBuf>,
    /// Grade with a lab's battery (see `labrun check --list`) instead of a suite file:
    /// each phase a test worth 10 points.
    #[arg(long)]
    pub lab: Option<Lab>,
    /// Tests run at the same time.
    #[arg(short = 'j', long, default_value_t = 1)]
    pub jobs: usize,
    /// Folder for grades.csv, results/ and feedback/.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// Grade only slice K of N of the submissions (sorted by path).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Continue an interrupted grading run: tests already in --out's journal are not
    /// run again.
    #[arg(long)]
    pub resume: bool,
    /// Run submissions without the sandbox, with labrun's own rights and a view of the
    /// whole machine: for trusted code only (grading refuses to start when the sandbox
    /// does not work here, unless this is given).
    #[arg(long)]
    pub unsandboxed: bool,
    /// Grade as a Gradescope autograder: the one submission in AUTOGRADER/submission, with
    /// the suite given (or AUTOGRADER/source/suite.toml), the result written to exactly
    /// AUTOGRADER/results/results.json. Where the container cannot run the sandbox, grading
    /// goes on without it and the result says so (Gradescope isolates each submission).
    #[arg(long)]
    pub gradescope: bool,
    /// The autograder folder `--gradescope` reads and writes.
    #[arg(long, value_name = "DIR", default_value = "/autograder")]
    pub autograder: PathBuf,
}

/// What `labrun check` checks, and how it reports.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The lab whose battery to run (`--list` shows them all).
    #[arg(required_unless_present = "list")]
    pub lab: Option<Lab>,
    /// A lone Python file to check, run as `python3 FILE {port}` (`{port2}` too where the
    /// lab has two ports).
    #[arg(value_name = "FILE.py", conflicts_with = "program")]
    pub file: Option<String>,
    /// The program's command, after `--`: {port} where its port goes (and {port2}).
    #[arg(last = true, value_name = "COMMAND")]
    pub program: Vec<String>,
    /// List the labs and what each phase of their batteries checks.
    #[arg(long, exclusive = true)]
    pub list: bool,
    /// Folder for report files (one per phase).
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// Do not write report files.
    #[arg(long)]
    pub no_report: bool,
    /// Report files to write into --out, comma-separated (default: json).
    #[arg(long, value_delimiter = ',', value_name = "FORMATS")]
    pub format: Vec<Format>,
    /// Print each phase's whole report, not only its verdict and what failed.
    #[arg(long, conflicts_with_all = ["json", "quiet"])]
    pub verbose: bool,
    /// Print only each phase's verdict line, and a line for each failed check.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the JSON reports on stdout (an array, one per phase) and nothing else there.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Run the program in the sandbox (see `labrun run --sandbox`): for checking someone
    /// else's code.
    #[arg(long, conflicts_with = "targets")]
    pub sandbox: bool,
    /// Check a server already running at HOST:PORT instead of launching a program (twice for
    /// the two-servers lab: the first port, then the second). Every phase then meets the
    /// same server, as the earlier phases left it.
    #[arg(long = "target", value_name = "HOST:PORT", conflicts_with_all = ["file", "program"])]
    pub targets: Vec<Target>,
}

/// Options of a run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files, run one after another.
    #[arg(required = true, value_name = "SCENARIO")]
    pub scenarios: Vec<PathBuf>,
    /// Folder for report files.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// Seed for message bodies (overrides the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print only the verdict line of each scenario, and a line for each failed check.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not write report files.
    #[arg(long)]
    pub no_report: bool,
    /// Report files to write into --out, comma-separated (default: the scenario's
    /// `[report] formats`, else json).
    #[arg(long, value_delimiter = ',', value_name = "FORMATS")]
    pub format: Vec<Format>,
    /// Stop at the first scenario that does not pass (a check failed, or its program could
    /// not be started); by default every scenario runs and the exit code is the worst.
    #[arg(long)]
    pub fail_fast: bool,
    /// Run only slice K of N of every scenario's clients (for splitting a load over machines;
    /// join the reports with `labrun merge`). Echo workloads only.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Aim a server of the scenario at a server already running at HOST:PORT instead of
    /// launching it (NAME may be left out when the scenario has one server); repeatable.
    /// labrun connects to it, judges it as any other, and never signals it.
    #[arg(long = "target", value_name = "[NAME=]HOST:PORT")]
    pub targets: Vec<AimedServer>,
    /// Start the clients at this instant (RFC 3339, like 2026-12-01T10:00:00Z) rather than
    /// as soon as the servers are ready: shards launched at different times on several
    /// machines then load one server together. The report's `started_at` is this instant.
    #[arg(long, value_name = "INSTANT")]
    pub start_at: Option<StartAt>,
    /// Threads that drive the simulated clients, each an event loop of its own (default: half
    /// the CPUs, at least 1, leaving the rest to the servers; every CPU from 500 clients on,
    /// where the clients' own wake-ups are the bottleneck; never more than there are clients).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: Option<u16>,
    /// Run each scenario N times back to back, servers started afresh each time, and keep
    /// every run's figures in its report, so that `labrun compare` can tell a change from
    /// the machine's noise (5 is a good start). A check fails when it failed in any run.
    /// Not with --shard or --start-at (one load, one instant); with --fail-fast, the runs
    /// stop at the first that does not pass.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=crate::report::saved::MAX_REPEATS as i64))]
    pub repeat: u16,
    /// Run in a private network namespace with only loopback (used by `labrun grade`;
    /// needs root or unprivileged user namespaces).
    #[arg(long, hide = true)]
    pub isolate_network: bool,
    /// Run client-program scenarios with fixed ports on this machine's loopback instead of a
    /// private network namespace (to watch them with ss or tcpdump; the ports must be free).
    #[arg(long, conflicts_with = "isolate_network")]
    pub shared_network: bool,
    /// Print the JSON report on stdout and nothing else there (an array for several
    /// scenarios); progress and warnings go to stderr.
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
    /// Run every program under test (servers given by `command`, client programs) in a
    /// sandbox (bubblewrap), and the whole run in a private network namespace: the program
    /// sees only its working directory, the files its command names and the system's
    /// programs, runs unprivileged, and cannot reach labrun or the host. For anyone running
    /// someone else's code; `labrun grade` always does.
    #[arg(long, conflicts_with = "shared_network")]
    pub sandbox: bool,
    /// The working directory is a copy made for the sandbox (by `labrun grade`): give it to
    /// the sandbox's own user.
    #[arg(long, hide = true, requires = "sandbox")]
    pub sandbox_owns_workdir: bool,
}
