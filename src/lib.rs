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
//! `architecture` in the suite fails on any import cycle among these modules.
//! [`run`] dispatches the command line; `run.rs` wires the stages for one scenario.

#![warn(missing_docs)]

pub(crate) mod check;
pub mod cli;
pub(crate) mod clientprog;
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

use std::io::Write;
use std::time::Duration;

pub use error::Error;
pub use report::Outcome;
pub use run::PANIC_INJECTION_VARIABLE;

use cli::{Cli, Command, RunArgs};
use report::style::{Environment, Styles};

/// The JSON Schema of scenario files, kept in `docs/` and checked against every shipped
/// scenario by the test suite.
const SCENARIO_SCHEMA: &str = include_str!("../docs/scenario.schema.json");

/// Descriptors kept free beside the clients' sockets: server pipes, the runtime, reports.
const OPEN_FILES_RESERVE: u64 = 64;
/// How far ahead `--start-at` may be: shards wait for it with servers up, so a date a day
/// off is a typo, not a plan.
const MAX_START_AHEAD: Duration = Duration::from_secs(24 * 3600);

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
        Some(Command::Schema) => {
            // A closed stdout (`| head`) is not an error.
            let _ = std::io::stdout().lock().write_all(SCENARIO_SCHEMA.as_bytes());
            Ok(Outcome::Pass)
        }
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "labrun", &mut script);
            // A closed stdout (`| head`) is not an error.
            let _ = std::io::stdout().lock().write_all(&script);
            Ok(Outcome::Pass)
        }
        Some(Command::List) => {
            list(&mut std::io::stdout().lock());
            Ok(Outcome::Pass)
        }
        Some(Command::Validate { files }) => validate(&files),
        Some(Command::Check(args)) => check_program(args),
        Some(Command::Grade {
            suite,
            submissions,
            lab,
            jobs,
            out,
            shard,
            resume,
            unsandboxed,
        }) => {
            // With --lab there is no suite file: the first folder was read as one.
            let (suite, submissions) = match (lab, suite) {
                (Some(lab), first) => (
                    grade::Suite::for_lab(lab)?,
                    first.into_iter().chain(submissions).collect(),
                ),
                (None, Some(path)) => (grade::Suite::load(&path)?, submissions),
                (None, None) => {
                    return Err(Error::Usage(
                        "name a suite file, or a lab with --lab: labrun grade SUITE SUBMISSION... \
                         or labrun grade --lab LAB SUBMISSION..."
                            .into(),
                    ));
                }
            };
            if submissions.is_empty() {
                return Err(Error::Usage(
                    "name at least one submission folder to grade".into(),
                ));
            }
            grade_submissions(suite, submissions, jobs, &out, shard, resume, unsandboxed)
        }
        Some(Command::Merge {
            reports,
            out,
            no_report,
        }) => merge(&reports, (!no_report).then_some(out.as_path())),
        Some(Command::Compare {
            baseline,
            current,
            max_regress,
        }) => compare(&baseline, &current, max_regress),
        Some(Command::Run(args)) => run_scenarios(args),
        None => run_scenarios(cli.run),
    }
}

/// The exit code of an outcome: 0 pass, 1 fail, 130 interrupted.
pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Pass => 0,
        Outcome::Fail => error::EXIT_FAILED,
        Outcome::Interrupted => error::EXIT_INTERRUPTED,
    }
}

fn run_scenarios(args: RunArgs) -> Result<Outcome, Error> {
    // Every file is validated before anything starts: a typo in the third scenario must not
    // surface after the first two have run for minutes.
    let plans = args
        .scenarios
        .iter()
        .map(|path| scenario::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let display = match (args.json, args.quiet) {
        (true, _) => run::Display::Nothing,
        (false, true) => run::Display::Verdict,
        (false, false) => run::Display::Full,
    };
    run_plans(plans, &args, display).map(|(overall, _)| overall)
}

/// `labrun check`: the lab's battery as plans, run as `labrun run` runs scenarios, each
/// phase shown by its verdict and what failed unless asked for more or less.
fn check_program(args: cli::CheckArgs) -> Result<Outcome, Error> {
    let Some(lab) = args.lab.filter(|_| !args.list) else {
        let _ = check::list(&mut std::io::stdout().lock());
        return Ok(Outcome::Pass);
    };
    let (plans, skipped) = match args.targets.as_slice() {
        [] => {
            let program: Vec<String> = args.file.into_iter().chain(args.program).collect();
            (check::plans(lab, &check::command_of(lab, &program)?)?, Vec::new())
        }
        targets => {
            let battery = check::aimed_plans(lab, targets)?;
            for (phase, why) in &battery.skipped {
                eprintln!("SKIP {}-{phase}: {why}", lab.name());
            }
            let skipped: Vec<&str> = battery.skipped.iter().map(|(phase, _)| *phase).collect();
            (battery.plans, skipped)
        }
    };
    let display = match (args.json, args.verbose) {
        (true, _) => run::Display::Nothing,
        (false, true) => run::Display::Full,
        (false, false) if args.quiet => run::Display::Verdict,
        (false, false) => run::Display::VerdictAndHints,
    };
    let run = RunArgs {
        scenarios: Vec::new(),
        out: args.out,
        seed: None,
        quiet: args.quiet,
        no_report: args.no_report,
        format: args.format,
        shard: None,
        workers: None,
        targets: Vec::new(),
        start_at: None,
        // A network of its own where the machine allows: the program's ports then clash
        // with nothing on the machine, nor with another check running beside this one. Not
        // when checking a running server, which is out there.
        isolate_network: args.targets.is_empty() && grade::isolation_available(),
        shared_network: false,
        json: args.json,
        sandbox: args.sandbox,
        sandbox_owns_workdir: false,
    };
    let names: Vec<String> = plans.iter().map(|plan| plan.name.clone()).collect();
    let (outcome, each) = run_plans(plans, &run, display)?;
    if !args.json {
        let passed = each.iter().filter(|o| **o == Outcome::Pass).count();
        let failed: Vec<&str> = names
            .iter()
            .zip(&each)
            .filter(|(_, o)| **o == Outcome::Fail)
            .map(|(name, _)| {
                name.strip_prefix(lab.name())
                    .unwrap_or(name)
                    .trim_start_matches('-')
            })
            .collect();
        let mut counted = format!(
            "{passed} of {} phase{} passed",
            names.len(),
            units::plural(names.len() as u64)
        );
        if !skipped.is_empty() {
            // A PASS that covers part of the battery must say so where it is read.
            counted += &format!(
                ", {} not run against a running server ({})",
                skipped.len(),
                skipped.join(", ")
            );
        }
        let verdict = match outcome {
            Outcome::Pass => format!("PASS {}: {counted}", lab.name()),
            Outcome::Fail => format!("FAIL {}: {counted}; failed: {}", lab.name(), failed.join(", ")),
            Outcome::Interrupted => format!("INTERRUPTED {}: {counted} before Ctrl-C", lab.name()),
        };
        println!("\n{verdict}");
    }
    Ok(outcome)
}

/// Runs `plans` one after another with the options of `args`, showing each as `display`;
/// returns the overall outcome and each plan's (fewer after an interruption).
fn run_plans(
    mut plans: Vec<scenario::Plan>,
    args: &RunArgs,
    display: run::Display,
) -> Result<(Outcome, Vec<Outcome>), Error> {
    // One scenario that asks for the sandbox puts every program of this run in it: the
    // sandbox and the private network are the process's, set before anything starts.
    let sandbox = args.sandbox || plans.iter().any(|plan| plan.sandbox);
    apply_run_options(&mut plans, args, sandbox)?;
    prepare_process(&plans, args, sandbox)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let options = run::RunOptions {
        report_dir: (!args.no_report).then(|| args.out.clone()),
        formats: args.format.clone(),
        display,
        styles: Styles::resolve(Environment::detect(), args.quiet || args.json),
        workers: args.workers.map_or_else(default_workers, usize::from),
    };
    let outcome = runtime.block_on(run_in_turn(&plans, &options));
    supervise::sandbox::clean_up();
    outcome
}

/// The command line's options over the scenarios' own (`--target`, `--seed`, `--start-at`,
/// `--shard`), each refused where it cannot mean what it says, before anything starts.
fn apply_run_options(plans: &mut [scenario::Plan], args: &RunArgs, sandbox: bool) -> Result<(), Error> {
    if let Some(plan) = plans.iter().find(|plan| plan.sandbox && args.shared_network) {
        eprintln!(
            "warning: `{}` asks for the sandbox (sandbox = true), whose network is private: \
             --shared-network does not apply to this run",
            plan.source.display()
        );
    }
    for plan in plans.iter_mut() {
        if !plan.programs.is_empty() && (!args.targets.is_empty() || args.start_at.is_some()) {
            return Err(Error::Usage(format!(
                "`{}` tests client programs against servers labrun plays: --target and \
                 --start-at are for simulated clients aimed at a server",
                plan.source.display()
            )));
        }
        if !args.targets.is_empty() {
            plan.aim_all(&args.targets).map_err(Error::Usage)?;
            plan.check_aims().map_err(Error::Usage)?;
        }
    }
    let aims_out = plans
        .iter()
        .find_map(|plan| Some((plan, plan.servers.iter().find_map(|s| s.target())?)));
    if let Some((plan, target)) = aims_out
        && (sandbox || args.isolate_network)
    {
        return Err(Error::Usage(format!(
            "`{}` aims at a server out on the network ({target}), which the sandbox's private \
             network cannot reach: leave out --sandbox (and `sandbox = true`); there is no \
             program of yours to sandbox",
            plan.source.display()
        )));
    }
    if let Some(seed) = args.seed {
        plans.iter_mut().for_each(|plan| plan.seed = seed);
    }
    if let Some(at) = args.start_at {
        let ahead =
            at.0.duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
        if ahead > MAX_START_AHEAD {
            return Err(Error::Usage(format!(
                "--start-at {at} is {} from now; the most is {} (a typo in the date?)",
                humantime::format_duration(Duration::from_secs(ahead.as_secs())),
                humantime::format_duration(MAX_START_AHEAD)
            )));
        }
        plans.iter_mut().for_each(|plan| plan.start_at = Some(at));
    }
    if let Some(shard) = args.shard {
        for plan in plans.iter_mut() {
            shardable(plan, shard)?;
            plan.shard = Some(shard);
        }
    }
    Ok(())
}

/// Whether `plan` can be split by `--shard`: only echo clients can, as a chat or a broadcast
/// room is one conversation, and only into as many slices as it has clients (an empty slice
/// would pass having tested nothing).
fn shardable(plan: &scenario::Plan, shard: scenario::Shard) -> Result<(), Error> {
    if !plan.programs.is_empty() {
        return Err(Error::Usage(format!(
            "--shard splits simulated clients; `{}` tests client programs",
            plan.source.display()
        )));
    }
    match plan
        .groups
        .iter()
        .find(|g| g.workload != scenario::WorkloadKind::Echo)
    {
        Some(group) => Err(Error::Usage(format!(
            "--shard splits echo clients only; `{}` has {} group `{}` (a chat or a broadcast \
             room must run in one process)",
            plan.source.display(),
            group.workload.label(),
            group.name
        ))),
        None if plan.total_clients() < u64::from(shard.of) => Err(Error::Usage(format!(
            "--shard {shard}: `{}` has {} client(s), so some of {} shards would run none; use \
             at most {} shards",
            plan.source.display(),
            plan.total_clients(),
            shard.of,
            plan.total_clients()
        ))),
        None => Ok(()),
    }
}

/// This process made ready to launch and drive `plans`: the sandbox and the network
/// namespace entered, before any thread exists (every thread and child started later
/// inherits them); then the reaper, the panic hook and the open-files limit.
fn prepare_process(plans: &[scenario::Plan], args: &RunArgs, sandbox: bool) -> Result<(), Error> {
    if sandbox {
        supervise::sandbox::enable(args.sandbox_owns_workdir)?;
        if args.sandbox_owns_workdir {
            let workdir = std::env::current_dir().map_err(Error::Runtime)?;
            supervise::sandbox::hand_over(&workdir).map_err(Error::Runtime)?;
        }
    }
    // A sandboxed program shares labrun's network namespace (its clients must reach it), so
    // that namespace is a private one: nothing on the host's loopback is reachable.
    if args.isolate_network || sandbox {
        grade::isolate::enter_private_network().map_err(Error::Isolation)?;
    } else if !args.shared_network {
        isolate_fixed_played_ports(plans);
    }
    supervise::registry::install_panic_hook();
    supervise::tree::become_subreaper();
    let open_files = workload::raise_open_files_limit();
    let most_clients = plans.iter().map(scenario::Plan::total_clients).max();
    if let Some(clients) = most_clients
        && clients + OPEN_FILES_RESERVE > open_files
    {
        return Err(Error::TooManyClients { clients, open_files });
    }
    Ok(())
}

/// Runs `plans` one after another until the end or Ctrl-C, then shows what comes after
/// them all: the JSON reports (`--json`), or the side-by-side of several loads.
async fn run_in_turn(
    plans: &[scenario::Plan],
    options: &run::RunOptions,
) -> Result<(Outcome, Vec<Outcome>), Error> {
    let cancel = interrupt::watch().map_err(Error::Runtime)?;
    let mut overall = Outcome::Pass;
    let mut reports = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().enumerate() {
        if i > 0 && options.display == run::Display::Full {
            let _ = writeln!(std::io::stdout());
        }
        let report = run::run_scenario(plan, options, &cancel).await?;
        overall = match (overall, report.outcome) {
            (_, Outcome::Interrupted) => Outcome::Interrupted,
            (Outcome::Fail, _) | (_, Outcome::Fail) => Outcome::Fail,
            _ => Outcome::Pass,
        };
        reports.push(report);
        if overall == Outcome::Interrupted {
            break;
        }
    }
    let mut rendered = Vec::new();
    match options.display {
        run::Display::Nothing => {
            let json = match reports.as_slice() {
                [only] => serde_json::to_vec_pretty(only),
                all => serde_json::to_vec_pretty(all),
            };
            rendered = json.expect("a report always serializes");
            rendered.push(b'\n');
        }
        run::Display::Full if overall != Outcome::Interrupted => {
            // Load figures compare servers; runs of client programs have none.
            let loads: Vec<report::Report> = reports
                .iter()
                .filter(|r| r.client_programs.is_empty())
                .cloned()
                .collect();
            if loads.len() > 1 {
                rendered.push(b'\n');
                report::side_by_side::render(&loads, &options.styles, &mut rendered)
                    .expect("rendering into memory cannot fail");
            }
        }
        run::Display::Full | run::Display::Verdict | run::Display::VerdictAndHints => {}
    }
    // A closed stdout (`| head`) is not an error.
    let _ = std::io::stdout().lock().write_all(&rendered);
    Ok((overall, reports.iter().map(|report| report.outcome).collect()))
}

/// Client programs often hard-code their ports (6000, 6001): a scenario playing servers on
/// fixed ports runs in a private network namespace where the machine allows, so those ports
/// never clash with the machine's own or with a parallel run. Elsewhere the ports are bound
/// on the shared loopback, and a busy one is refused with the name of its holder.
fn isolate_fixed_played_ports(plans: &[scenario::Plan]) {
    let fixed: Vec<String> = plans
        .iter()
        .flat_map(|plan| &plan.played)
        .filter_map(|server| match server.port {
            scenario::PortChoice::Fixed(port) => Some(port.to_string()),
            scenario::PortChoice::Auto => None,
        })
        .collect();
    if fixed.is_empty() {
        return;
    }
    // Tried in a child first: a failure after the namespace is entered cannot be undone.
    let entered = match grade::isolation_available() {
        true => grade::isolate::enter_private_network(),
        false => Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
    };
    if let Err(err) = entered {
        eprintln!(
            "warning: no private network namespace here ({err}; needs root or user namespaces): \
             the played servers bind port(s) {} on this machine's loopback",
            fixed.join(", ")
        );
    }
}

fn compare(
    baseline: &std::path::Path,
    current: &std::path::Path,
    gates: Vec<report::compare::Tolerance>,
) -> Result<Outcome, Error> {
    use report::compare::{self, SavedReport};
    let (baseline, current) = (SavedReport::read(baseline)?, SavedReport::read(current)?);
    let gates = if gates.is_empty() {
        compare::default_tolerances()
    } else {
        gates
    };
    let rows = compare::compare(&baseline, &current, &gates);
    let mut rendered = Vec::new();
    let regressed = compare::render(&baseline, &current, &rows, &mut rendered)
        .expect("rendering into memory cannot fail");
    let _ = std::io::stdout().lock().write_all(&rendered);
    Ok(if regressed { Outcome::Fail } else { Outcome::Pass })
}

/// `labrun merge shard-*/grades.csv`: the grades of a sharded grading run as one file.
fn merge_grades(paths: &[std::path::PathBuf], out: Option<&std::path::Path>) -> Result<Outcome, Error> {
    let mut parts = Vec::with_capacity(paths.len());
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::ReadReport(report::compare::ReadError {
                path: path.clone(),
                reason: e.to_string(),
            })
        })?;
        parts.push((path.clone(), text));
    }
    let merged = grade::outputs::merge_csv(&parts).map_err(Error::Usage)?;
    let rows = merged.lines().count().saturating_sub(1);
    let mut said = format!("{rows} submissions from {} grade files", paths.len());
    if let Some(dir) = out {
        let path = dir.join("grades.csv");
        report::writer::write_atomically(&path, merged.as_bytes()).map_err(|source| Error::WriteReport {
            path: path.clone(),
            source,
        })?;
        said.push_str(&format!(" · {}", path.display()));
    }
    let _ = writeln!(std::io::stdout(), "{said}");
    Ok(Outcome::Pass)
}

fn grade_submissions(
    suite: grade::Suite,
    submissions: Vec<std::path::PathBuf>,
    jobs: usize,
    out: &std::path::Path,
    shard: Option<scenario::Shard>,
    resume: bool,
    unsandboxed: bool,
) -> Result<Outcome, Error> {
    if let Some(missing) = submissions.iter().find(|p| !p.is_dir()) {
        return Err(Error::Usage(format!(
            "submission `{}` is not a folder",
            missing.display()
        )));
    }
    // Fail closed: untrusted code runs in the sandbox or not at all.
    if unsandboxed {
        eprintln!(
            "warning: --unsandboxed: submissions run with labrun's own rights and see the whole \
             machine (the suite, the other submissions, the grades); for trusted code only"
        );
    } else {
        supervise::sandbox::check()?;
    }
    supervise::registry::install_panic_hook();
    let options = grade::GradeOptions {
        suite,
        submissions,
        jobs,
        shard,
        journal: out.join("grade-journal.jsonl"),
        resume,
        sandboxed: !unsandboxed,
    };
    // A bar over the tests on a terminal only, like a run's progress bar.
    let bar = Styles::resolve(Environment::detect(), false).progress.then(|| {
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template("grading {bar:30} {pos}/{len} tests, {elapsed}")
                .expect("constant template is valid"),
        )
    });
    let progress = |done: usize, total: usize| {
        if let Some(bar) = &bar {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    };
    let grades = grade::grade(&options, &progress).map_err(|source| Error::WriteReport {
        path: options.journal.clone(),
        source,
    })?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let written =
        grade::outputs::write_all(&grades, &options.suite, out).map_err(|source| Error::WriteReport {
            path: out.to_owned(),
            source,
        })?;
    let mut rendered = Vec::new();
    grade::outputs::render_summary(&grades, &options.suite, &mut rendered)
        .expect("rendering into memory cannot fail");
    let _ = writeln!(rendered, "grades in {}", written[0].display());
    let _ = std::io::stdout().lock().write_all(&rendered);
    Ok(Outcome::Pass)
}

fn merge(paths: &[std::path::PathBuf], out: Option<&std::path::Path>) -> Result<Outcome, Error> {
    if paths.iter().all(|p| p.extension().is_some_and(|e| e == "csv")) {
        return merge_grades(paths, out);
    }
    let merged = report::merge::merge(paths)?;
    let saved_to = match out {
        Some(dir) => {
            let path = dir.join(format!(
                "{}.merged.json",
                report::writer::file_stem(&merged.scenario)
            ));
            let mut bytes = serde_json::to_vec_pretty(&merged).expect("a merged report always serializes");
            bytes.push(b'\n');
            report::writer::write_atomically(&path, &bytes).map_err(|source| Error::WriteReport {
                path: path.clone(),
                source,
            })?;
            Some(path)
        }
        None => None,
    };
    let mut rendered = Vec::new();
    report::merge::render(&merged, saved_to.as_deref(), &mut rendered)
        .expect("rendering into memory cannot fail");
    let _ = std::io::stdout().lock().write_all(&rendered);
    Ok(merged.outcome)
}

fn validate(files: &[std::path::PathBuf]) -> Result<Outcome, Error> {
    let mut invalid = 0;
    for path in files {
        match scenario::load(path) {
            Ok(plan) if !plan.programs.is_empty() => {
                let _ = writeln!(
                    std::io::stdout(),
                    "ok {}: `{}`, {} client program(s), {} played server(s)",
                    path.display(),
                    plan.name,
                    plan.programs.len(),
                    plan.played.len()
                );
            }
            Ok(plan) => {
                let clients = plan.total_clients();
                // A closed stdout (`| head`) is not an error worth a panic.
                let _ = writeln!(
                    std::io::stdout(),
                    "ok {}: `{}`, {} server(s), {} client group(s), {clients} client(s)",
                    path.display(),
                    plan.name,
                    plan.servers.len(),
                    plan.groups.len()
                );
            }
            Err(err) => {
                invalid += 1;
                eprintln!("error: {err}");
            }
        }
    }
    match invalid {
        0 => Ok(Outcome::Pass),
        _ => Err(Error::ScenariosInvalid {
            invalid,
            total: files.len(),
        }),
    }
}

fn list(out: &mut impl Write) {
    let _ = writeln!(
        out,
        "built-in servers (builtin = \"...\", or `labrun serve NAME --port P`):"
    );
    for builtin in servers::Builtin::ALL {
        let _ = writeln!(out, "  {:<16} {}", builtin.name(), builtin.summary());
    }
    let _ = writeln!(out, "\nworkloads (workload = \"...\"):");
    for workload in scenario::WorkloadKind::ALL {
        let _ = writeln!(out, "  {:<16} {}", workload.label(), workload.summary());
    }
    let _ = writeln!(
        out,
        "\nclient faults (faulty = N, fault = {{ kind = \"...\", after = N }}, echo workload):"
    );
    for kind in scenario::FaultKind::ALL {
        let _ = writeln!(out, "  {:<16} {}", kind.label(), kind.summary());
    }
    let _ = writeln!(
        out,
        "\nplayed servers for client programs under test ([[played_server]] role = \"...\"):"
    );
    for role in scenario::PlayedRole::ALL {
        let _ = writeln!(out, "  {:<16} {}", role.label(), role.summary());
    }
}

/// Client threads when `--workers` is not given: half the CPUs, at least one. The servers a
/// run measures usually share the machine, and a load generator that takes every core
/// measures its own contention with them (on 2 CPUs, one worker beside a one-threaded
/// server gives about a third more messages per second than two).
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |cpus| (cpus.get() / 2).max(1))
}
