//! One scenario, end to end: plan → supervise → drive → verify → report (or, for client
//! programs under test, plan → clientprog sessions → verify → report).
//!
//! This is the only place the stages meet. Servers are torn down before anything is judged
//! or printed, and on every early return their handles' `Drop` kills them, so no path out
//! of here leaves a process behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::metrics::GroupFigures;
use crate::report::progress::Progress;
use crate::report::style::Styles;
use crate::report::{self, Report, RunResult, ServersReport, ServersRun, Tested};
use crate::scenario::{Format, Plan, ProgramsUnderTest, ServersUnderTest, UnderTest};
use crate::supervise::{ServerEnd, Servers};
use crate::verify::concurrency::{self, ConcurrencyVerdict, Overlap, ServerConcurrency};
use crate::verify::{self, Evidence, Survival};
use crate::workload::probe::{self, ProbeOutcome};
use crate::workload::{self, ClientRecord, DriveSetup};

/// Set to `after-ready` to make labrun panic once its servers are up: lets the test suite
/// prove that a panic still tears every server down.
pub const PANIC_INJECTION_VARIABLE: &str = "LABRUN_TEST_PANIC";

/// How to run and where to put results.
pub struct RunOptions {
    /// Folder for report files, or `None` to write none.
    pub report_dir: Option<PathBuf>,
    /// Which report files to write there; empty: each scenario's `[report]`, else JSON.
    pub formats: Vec<Format>,
    /// What to print on stdout for each scenario.
    pub display: Display,
    /// Terminal styling.
    pub styles: Styles,
    /// Threads driving the clients (`--workers`); `None`: chosen from each scenario's load
    /// (see [`workload::default_workers`]).
    pub workers: Option<usize>,
    /// Runs of each scenario (`--repeat`), at least one.
    pub repeat: u16,
    /// `--fail-fast`: a repeated scenario stops at its first run that does not pass.
    pub fail_fast: bool,
}

/// When a run of several scenarios stops before the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopAt {
    /// Every scenario runs (unless Ctrl-C); the outcome is the worst.
    End,
    /// At the first scenario whose program could not be started or reached.
    FirstError,
    /// At the first scenario that did not pass (`--fail-fast`).
    FirstNonPass,
}

/// What a run prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// The whole terminal report.
    Full,
    /// The verdict line, and a line for each failed check (`--quiet`).
    Verdict,
    /// The verdict line, each failed check and the hint of its first finding (`labrun check`).
    VerdictAndHints,
    /// Nothing per scenario: the caller prints the JSON reports (`--json`).
    Nothing,
}

/// Runs one scenario (`--repeat` times) and prints its report; returns the report.
pub async fn run_scenario(
    plan: &Plan,
    options: &RunOptions,
    cancel: &CancellationToken,
) -> Result<Report, Error> {
    let (mut runs, mut interrupted_between) = (Vec::new(), false);
    for number in 1..=options.repeat.max(1) {
        if number > 1 && cancel.is_cancelled() {
            interrupted_between = true;
            break;
        }
        let report = match run_once(plan, options, cancel).await {
            Ok(report) => report,
            // Interrupted before this run began (while its servers started): the runs done
            // are still reported, as interrupted.
            Err(Error::Interrupted) if !runs.is_empty() => {
                interrupted_between = true;
                break;
            }
            Err(err) => return Err(err),
        };
        if options.repeat > 1 && matches!(options.display, Display::Full | Display::Nothing) {
            eprintln!(
                "{}: run {number} of {}: {}",
                plan.name,
                options.repeat,
                report::repeats::one_line(&report)
            );
        }
        // A program that would not start will not start the next time either; an
        // interrupted run ends the series; --fail-fast ends it at the first non-pass.
        let last = matches!(
            report.outcome,
            report::Outcome::Error | report::Outcome::Interrupted
        ) || (options.fail_fast && report.outcome != report::Outcome::Pass);
        runs.push(report);
        if last {
            break;
        }
    }
    let mut report = report::repeats::combine(runs);
    if interrupted_between {
        report.outcome = report.outcome.worst(report::Outcome::Interrupted);
        report.complete = false;
    }
    let saved = match &options.report_dir {
        Some(dir) => {
            let formats = [&options.formats, &plan.formats]
                .into_iter()
                .find(|f| !f.is_empty())
                .map_or(&[Format::Json][..], Vec::as_slice);
            save_reports(&report, dir, formats)?
        }
        None => Vec::new(),
    };
    print_report(&report, &saved, options);
    Ok(report)
}

/// One run of a scenario, to its report: a program under test that would not start gives
/// the report of a run that could not run.
async fn run_once(plan: &Plan, options: &RunOptions, cancel: &CancellationToken) -> Result<Report, Error> {
    let (started_at, start) = (SystemTime::now(), Instant::now());
    let tested = match &plan.under_test {
        UnderTest::Servers(under_test) => test_servers(plan, under_test, options, cancel).await,
        UnderTest::ClientPrograms(under_test) => test_client_programs(plan, under_test, cancel).await,
    };
    // A program under test that will not start is the run's outcome, not labrun's failure:
    // the run gets its report, and the next scenario its turn.
    match tested {
        Ok(report) => Ok(report),
        Err(err) if err.is_about_the_program_under_test() => {
            let error = err.with_causes();
            eprintln!("error: {error}");
            Ok(Report::could_not_run(plan, error, started_at, start.elapsed()))
        }
        Err(err) => Err(err),
    }
}

/// The client programs under test, one after another, each against the servers labrun plays.
async fn test_client_programs(
    plan: &Plan,
    under_test: &ProgramsUnderTest,
    cancel: &CancellationToken,
) -> Result<Report, Error> {
    let started_at = SystemTime::now();
    let run_start = Instant::now();
    let records = crate::clientprog::run_all(under_test, run_start + plan.timeout, cancel).await?;
    Ok(Report::assemble(RunResult {
        plan,
        tested: Tested::ClientPrograms(report::programs::ProgramReport::from_records(
            under_test, &records,
        )),
        verdict: verify::program::evaluate(under_test, &records),
        started_at,
        duration: run_start.elapsed(),
        interrupted: cancel.is_cancelled(),
    }))
}

/// The figures of each group and of the whole run, from the client records plus what is
/// tallied apart from them: round trips per worker, fan-out per delivery by the rooms.
fn figures(under_test: &ServersUnderTest, drive: &workload::Drive) -> (Vec<GroupFigures>, GroupFigures) {
    let mut groups: Vec<GroupFigures> = (0..under_test.groups.len())
        .map(|g| GroupFigures::from_records(drive.records.iter().filter(|r| r.group == g)))
        .collect();
    let mut total = GroupFigures::from_records(&drive.records);
    for (figures, rtt) in groups.iter_mut().zip(&drive.rtt) {
        figures.latency.rtt.merge(rtt);
        total.latency.rtt.merge(rtt);
    }
    for room in &drive.rooms {
        for (figures, fanout) in groups.iter_mut().zip(&room.fanout) {
            figures.latency.fanout.merge(fanout);
            total.latency.fanout.merge(fanout);
        }
    }
    (groups, total)
}

/// The servers under test, driven by the simulated clients, probed, judged.
async fn test_servers(
    plan: &Plan,
    under_test: &ServersUnderTest,
    options: &RunOptions,
    cancel: &CancellationToken,
) -> Result<Report, Error> {
    let (mut servers, started_at, run_start) = start_servers(under_test, plan.expect.reaps, cancel).await?;
    let run_deadline = run_start + plan.timeout;
    if std::env::var(PANIC_INJECTION_VARIABLE).is_ok_and(|v| v == "after-ready") {
        panic!("{PANIC_INJECTION_VARIABLE}=after-ready: injected panic with servers running");
    }

    let workers = options
        .workers
        .unwrap_or_else(|| workload::default_workers(under_test.total_clients()));
    let completed = Arc::new(workload::MessageCount::new(workers));
    let total_messages = under_test
        .groups
        .iter()
        .map(|g| u64::from(g.count) * u64::from(g.messages))
        .sum();
    let progress = Progress::start(
        options.styles.progress,
        &plan.name,
        total_messages,
        Arc::clone(&completed),
    );
    let addresses = servers.addresses();
    let clients_done = CancellationToken::new();
    let clients = async {
        let drive = workload::drive(DriveSetup {
            under_test,
            seed: plan.seed,
            addresses: &addresses,
            run_start,
            run_deadline,
            cancel: cancel.clone(),
            progress: completed,
            workers,
        })
        .await;
        clients_done.cancel();
        drive
    };
    let events = servers.run_events(&under_test.events, run_start, &clients_done, cancel);
    let (drive, events) = tokio::join!(clients, events);
    progress.finish();
    let drive = drive.map_err(Error::Runtime)?;
    let running: Vec<bool> = (0..under_test.servers.len())
        .map(|i| servers.running(i))
        .collect();
    let overlaps = measure_overlaps(under_test, &drive.records);
    let probing = Instant::now();
    let probes = run_probes(plan, under_test, &addresses, &running, &overlaps, cancel).await;
    let probes_took = probing.elapsed();
    // Counted last: the probes' connections are served by children too.
    if plan.expect.reaps && !cancel.is_cancelled() {
        servers.count_children().await;
    }
    let server_ends = servers.stop().await;

    let (groups, total) = figures(under_test, &drive);
    let concurrency = judge_concurrency(
        under_test,
        overlaps,
        probes.concurrency,
        &drive.pacing,
        &server_ends,
    );
    let verdict = verify::evaluate(&Evidence {
        plan,
        under_test,
        records: &drive.records,
        groups: &groups,
        total: &total,
        servers: &server_ends,
        concurrency: &concurrency,
        survival: &probes.survival,
        rooms: &drive.rooms,
        events: &events,
    });
    let tested = ServersReport::new(
        under_test,
        ServersRun {
            groups: &groups,
            total: &total,
            servers: server_ends,
            records: &drive.records,
            concurrency,
            survival: probes.survival,
            rooms: drive.rooms,
            events,
            probes: probes_took,
        },
    );
    let report = Report::assemble(RunResult {
        plan,
        tested: Tested::Servers(Box::new(tested)),
        verdict,
        started_at,
        duration: run_start.elapsed(),
        interrupted: cancel.is_cancelled(),
    });
    Ok(report)
}

/// The servers started, and when the run began: just before they started, or at
/// `--start-at`, so that every shard's run, timeout and timeline begin at the agreed instant.
async fn start_servers(
    under_test: &ServersUnderTest,
    census: bool,
    cancel: &CancellationToken,
) -> Result<(Servers, SystemTime, Instant), Error> {
    let (started_at, run_start) = (SystemTime::now(), Instant::now());
    let servers = tokio::select! {
        started = Servers::start(&under_test.servers, census) => started?,
        () = cancel.cancelled() => return Err(Error::Interrupted),
    };
    let Some(at) = under_test.start_at else {
        return Ok((servers, started_at, run_start));
    };
    tokio::select! {
        () = wait_until(at) => {}
        () = cancel.cancelled() => return Err(Error::Interrupted),
    }
    Ok((servers, SystemTime::now(), Instant::now()))
}

/// Sleeps until wall-clock instant `at` (`--start-at`); one already past is said on stderr
/// and not waited for.
async fn wait_until(at: crate::scenario::StartAt) {
    match at.0.duration_since(SystemTime::now()) {
        Ok(ahead) => tokio::time::sleep(ahead).await,
        Err(late) => eprintln!(
            "warning: --start-at {at} passed {} before the servers were ready: the clients start now",
            crate::units::duration(late.duration())
        ),
    }
}

/// What the probes found, per server.
struct Probes {
    /// Concurrency probe per server (indexed like `ServersUnderTest::servers`), when expected.
    concurrency: Vec<Option<ProbeOutcome>>,
    /// Survival probe of every server, when expected.
    survival: Vec<Survival>,
}

/// Runs the probes the scenario's expectations ask for, one server at a time, while the
/// servers are still up (a server an event stopped for good is not probed). The concurrency
/// probe goes first: the survival probe is the last thing a server has to get through.
/// When a server's clients looked `bounded (k)`, the concurrency probe holds at least `k`
/// silent connections, so that it confirms or refutes the cap the statistics suggest.
async fn run_probes(
    plan: &Plan,
    under_test: &ServersUnderTest,
    addresses: &[std::net::SocketAddr],
    running: &[bool],
    overlaps: &[Overlap],
    cancel: &CancellationToken,
) -> Probes {
    let mut probes = Probes {
        concurrency: vec![None; under_test.servers.len()],
        survival: Vec::new(),
    };
    if let Some(expected) = plan.expect.concurrency {
        for (index, address) in addresses.iter().enumerate() {
            let clients = under_test.clients_of(index);
            if clients > 0 && running[index] {
                let holders = probe::holders_for(expected, clients)
                    .max(concurrency::holders_to_confirm(expected, overlaps[index].verdict))
                    .min(probe::MAX_HOLDERS);
                probes.concurrency[index] = probe::concurrency(*address, holders, cancel).await;
            }
        }
    }
    if plan.expect.survives {
        for ((server, address), _) in under_test
            .servers
            .iter()
            .zip(addresses)
            .zip(running)
            .filter(|(_, up)| **up)
        {
            if let Some(outcome) = probe::survival(*address, cancel).await {
                probes.survival.push(Survival {
                    server: server.name.clone(),
                    outcome,
                });
            }
        }
    }
    probes
}

/// Overlap of each server's well-behaved clients (indexed like `ServersUnderTest::servers`). Faulty
/// clients leave early or go silent on purpose, so their timelines say nothing about how
/// many clients the server can serve; their effect shows in the others' waits.
fn measure_overlaps(under_test: &ServersUnderTest, records: &[ClientRecord]) -> Vec<Overlap> {
    (0..under_test.servers.len())
        .map(|index| {
            concurrency::measure(
                records
                    .iter()
                    .filter(|r| r.fault.is_none() && under_test.groups[r.group].server == index),
            )
        })
        .collect()
}

/// Each server's concurrency (servers without clients are left out): the overlap, held to
/// the probe (see [`concurrency::reconcile`]). A server that exited during the run is not
/// judged: when it died decides what its clients saw.
fn judge_concurrency(
    under_test: &ServersUnderTest,
    overlaps: Vec<Overlap>,
    probes: Vec<Option<ProbeOutcome>>,
    pacing: &[Option<workload::PacingFigures>],
    ends: &[ServerEnd],
) -> Vec<ServerConcurrency> {
    under_test
        .servers
        .iter()
        .zip(overlaps)
        .zip(probes)
        .zip(ends)
        .enumerate()
        .filter(|(index, _)| under_test.clients_of(*index) > 0)
        .map(|(index, (((server, mut overlap), probe), end))| {
            let exited = end.exited_during_run.is_some();
            overlap.verdict = match exited {
                true => ConcurrencyVerdict::Undetermined,
                false => concurrency::reconcile(overlap.verdict, probe.as_ref()),
            };
            ServerConcurrency {
                server: server.name.clone(),
                overlap,
                probe,
                exited_during_run: exited,
                accept_queue: pacing[index],
            }
        })
        .collect()
}

/// Writes the report in every requested format, each file atomically; returns the paths.
fn save_reports(report: &Report, dir: &Path, formats: &[Format]) -> Result<Vec<PathBuf>, Error> {
    let stem = report::writer::file_stem(&report.scenario.name);
    formats
        .iter()
        .map(|format| {
            let path = dir.join(format!("{stem}.{}", format.extension()));
            report::writer::write_atomically(&path, &report::render(*format, report))
                .map(|()| path.clone())
                .map_err(|source| Error::WriteReport { path, source })
        })
        .collect()
}

/// Writes the terminal report to stdout. A closed stdout (`| head`) is not an error.
fn print_report(report: &Report, saved: &[PathBuf], options: &RunOptions) {
    let mut rendered = Vec::new();
    let written = match options.display {
        Display::Verdict => report::terminal::render_verdict(report, saved, &options.styles, &mut rendered)
            .and_then(|()| report::terminal::render_failures(report, false, &options.styles, &mut rendered)),
        Display::VerdictAndHints => {
            report::terminal::render_verdict(report, saved, &options.styles, &mut rendered).and_then(|()| {
                report::terminal::render_failures(report, true, &options.styles, &mut rendered)
            })
        }
        Display::Full => report::terminal::render(report, saved, &options.styles, &mut rendered),
        Display::Nothing => return,
    };
    written.expect("rendering into memory cannot fail");
    let _ = std::io::stdout().lock().write_all(&rendered);
}
