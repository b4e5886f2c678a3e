//! `--repeat N`: one scenario run N times, back to back, as one report.
//!
//! A single run cannot tell a server's change from the machine's noise; N runs can, when
//! `compare` holds the runs of two reports against each other (see [`super::noise`]). The
//! report of a repeated scenario is the run that went worst (the first of them; with every
//! run passing, the first run), so that its figures, timeline and findings belong to one
//! run and stay coherent; its checks are those of every run (a check fails when it failed
//! in any run, and says in which), and `repeats` keeps each run's outcome and total
//! figures, histograms included.

use serde::Serialize;

use super::{GroupReport, Outcome, Report, ServersReport, Tested};
use crate::units;
use crate::verify::{Check, Finding};

/// One run of a repeated scenario, as its report keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct RepeatedRun {
    /// How it ended.
    pub outcome: Outcome,
    /// When it started (RFC 3339 UTC).
    pub started_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// The checks that failed in it.
    pub failed_checks: Vec<String>,
    /// Its figures over all client groups (empty for client programs under test).
    pub total: GroupReport,
}

impl RepeatedRun {
    fn of(report: &Report) -> RepeatedRun {
        let total = match &report.tested {
            Tested::Servers(servers) => servers.total.clone(),
            Tested::ClientPrograms(_) => ServersReport::empty().total,
        };
        RepeatedRun {
            outcome: report.outcome,
            started_at: report.started_at.clone(),
            duration_ms: report.duration_ms,
            failed_checks: report
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.clone())
                .collect(),
            total,
        }
    }
}

/// The runs of one scenario (in the order they ran, at least one) as one report; a single
/// run is returned as it is, with no `repeats`.
pub fn combine(mut runs: Vec<Report>) -> Report {
    if runs.len() <= 1 {
        return runs.pop().expect("a scenario ran at least once");
    }
    let outcome = runs
        .iter()
        .fold(Outcome::Pass, |worst, run| worst.worst(run.outcome));
    let shown = runs.iter().position(|r| r.outcome == outcome).unwrap_or(0);
    let checks = combined_checks(&runs, shown);
    let findings = combined_findings(&runs, shown, &checks);
    let repeats: Vec<RepeatedRun> = runs.iter().map(RepeatedRun::of).collect();
    let duration_ms = runs.iter().map(|r| r.duration_ms).sum();
    let complete = runs.iter().all(|r| r.complete);
    let peak = runs.iter().filter_map(|r| r.labrun_peak_rss_bytes).max();
    let mut report = runs.swap_remove(shown);
    report.outcome = outcome;
    report.complete = complete;
    report.duration_ms = duration_ms;
    report.labrun_peak_rss_bytes = peak;
    report.checks = checks;
    report.findings = findings;
    report.repeats = repeats;
    report
}

/// Every check of every run, in the order of the run shown (then any only other runs
/// had): passed when it passed in each run that had it, else failed with the words of the
/// first run it failed in and the runs it failed in.
fn combined_checks(runs: &[Report], shown: usize) -> Vec<Check> {
    let mut names: Vec<&str> = runs[shown].checks.iter().map(|c| c.name.as_str()).collect();
    for run in runs {
        for check in &run.checks {
            if !names.contains(&check.name.as_str()) {
                names.push(&check.name);
            }
        }
    }
    names
        .into_iter()
        .map(|name| {
            let failed_in: Vec<usize> = runs
                .iter()
                .enumerate()
                .filter(|(_, run)| run.checks.iter().any(|c| c.name == name && !c.passed))
                .map(|(index, _)| index)
                .collect();
            let words_from = failed_in.first().copied().unwrap_or(shown);
            let summary = runs[words_from]
                .checks
                .iter()
                .find(|c| c.name == name)
                .or_else(|| runs.iter().flat_map(|r| &r.checks).find(|c| c.name == name))
                .map(|c| c.summary.clone())
                .unwrap_or_default();
            let summary = match failed_in.len() {
                0 => summary,
                failed => format!(
                    "failed in {failed} of {} runs ({}); run {}: {summary}",
                    runs.len(),
                    run_numbers(&failed_in),
                    words_from + 1
                ),
            };
            Check {
                name: name.to_owned(),
                passed: failed_in.is_empty(),
                summary,
            }
        })
        .collect()
}

/// The shown run's findings, then, for each check that held in the shown run but failed in
/// another, the findings of the first run it failed in, marked with that run.
fn combined_findings(runs: &[Report], shown: usize, checks: &[Check]) -> Vec<Finding> {
    let mut findings = runs[shown].findings.clone();
    for check in checks.iter().filter(|c| !c.passed) {
        let failed_in_shown = runs[shown]
            .checks
            .iter()
            .any(|c| c.name == check.name && !c.passed);
        if failed_in_shown {
            continue;
        }
        let first = runs
            .iter()
            .position(|run| run.checks.iter().any(|c| c.name == check.name && !c.passed));
        if let Some(index) = first {
            findings.extend(
                runs[index]
                    .findings
                    .iter()
                    .filter(|f| f.check == check.name)
                    .map(|f| Finding {
                        text: format!("run {}: {}", index + 1, f.text),
                        ..f.clone()
                    }),
            );
        }
    }
    findings
}

/// `2, 4` for the runs at indices 1 and 3.
fn run_numbers(indices: &[usize]) -> String {
    let numbers: Vec<String> = indices.iter().map(|i| (i + 1).to_string()).collect();
    numbers.join(", ")
}

/// The per-run table of a repeated scenario, shared by the terminal, Markdown and HTML
/// reports: its column titles, then a row per run. Servers under test: run, outcome,
/// messages, msgs/s, RTT p50, RTT p99, errors; client programs, which have no such
/// figures: run, outcome and the checks that failed.
pub fn table(report: &Report) -> (Vec<&'static str>, Vec<Vec<String>>) {
    match report.tested {
        Tested::Servers(_) => (
            SERVER_TITLES.to_vec(),
            report
                .repeats
                .iter()
                .enumerate()
                .map(|(i, run)| server_row(i, run))
                .collect(),
        ),
        Tested::ClientPrograms(_) => (
            vec!["run", "outcome", "failed checks"],
            report
                .repeats
                .iter()
                .enumerate()
                .map(|(index, run)| {
                    vec![
                        (index + 1).to_string(),
                        run.outcome.word().to_owned(),
                        run.failed_checks.join(", "),
                    ]
                })
                .collect(),
        ),
    }
}

/// Titles of the per-run table of servers under test.
const SERVER_TITLES: [&str; 7] = [
    "run", "outcome", "messages", "msgs/s", "rtt p50", "rtt p99", "errors",
];

/// One run's row under [`SERVER_TITLES`].
fn server_row(index: usize, run: &RepeatedRun) -> Vec<String> {
    vec![
        (index + 1).to_string(),
        run.outcome.word().to_owned(),
        units::count(run.total.messages),
        format!("{:.0}", run.total.messages_per_second),
        rtt(&run.total, 0.5),
        rtt(&run.total, 0.99),
        units::count(run.total.error_count()),
    ]
}

/// A run's round trip at `quantile`, as text (`—` without samples).
fn rtt(total: &GroupReport, quantile: f64) -> String {
    total
        .latency
        .rtt
        .quantile(quantile)
        .map_or_else(|| "—".to_owned(), |d| units::micros(d.as_micros() as u64))
}

/// One run in a line, for the progress of a repeated scenario: its outcome, throughput and
/// round trips.
pub fn one_line(report: &Report) -> String {
    if report.error.is_some() {
        return format!("{}: could not run (the error is above)", report.outcome.word());
    }
    match &report.tested {
        Tested::Servers(servers) => format!(
            "{} · {:.0} msgs/s · rtt p50 {}, p99 {} · {} errors",
            report.outcome.word(),
            servers.total.messages_per_second,
            rtt(&servers.total, 0.5),
            rtt(&servers.total, 0.99),
            units::count(servers.total.error_count())
        ),
        Tested::ClientPrograms(_) => report.outcome.word().to_owned(),
    }
}

/// The number (1-based) of the run a repeated scenario's report shows: the first whose
/// outcome is the report's.
pub fn shown_run(report: &Report) -> usize {
    report
        .repeats
        .iter()
        .position(|run| run.outcome == report.outcome)
        .unwrap_or(0)
        + 1
}
