//! `labrun merge a.json b.json ...`: the reports of one scenario's shards as one run.
//!
//! Counts add up; histograms merge exactly (from their lossless `hdr` encoding), so merged
//! percentiles are those of all the samples, never an average of percentiles. Shards run
//! at the same time, so their throughputs add up too. Every shard's checks are kept, named
//! by the report they came from; the merged outcome is the worst one.
//!
//! A merge stands for one whole run, so it takes exactly the shards 1..N of one scenario,
//! each once, aimed at the same servers: a shard given twice would count its clients
//! twice, a missing one would pass a run that never happened, an unsharded report mixed in
//! would be a second run, and shards aimed at different servers are different tests. Each
//! of these is refused, naming the file, as are shards of a changed scenario and a shard
//! that started its clients well after the `--start-at` instant the others kept.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use super::saved::{ReadError, SavedGroup, SavedReport, SavedServer};
use super::{Outcome, SCHEMA_VERSION};
use crate::units;

/// Keys of a report's `scenario` that may differ between shards of one run.
const MAY_DIFFER: [&str; 2] = ["source", "formats"];

/// How long after `--start-at` a shard may start its clients and still count as loading the
/// server together with the others (its servers were slow to get ready, or its clock is off).
const LATE_START_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Why shard reports cannot be merged: one is unreadable, or together they are not one run.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A report could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The reports are readable but do not make up one whole run.
    #[error("cannot merge `{}`: {reason}", path.display())]
    NotOneRun {
        /// The report that does not fit.
        path: PathBuf,
        /// How it differs from the others.
        reason: String,
    },
}

impl SavedGroup {
    /// Adds `other`'s figures; counts saturate, as a report is a file anyone could edit.
    fn absorb(&mut self, other: &SavedGroup) {
        self.clients = self.clients.saturating_add(other.clients);
        self.clients_completed = self.clients_completed.saturating_add(other.clients_completed);
        self.messages = self.messages.saturating_add(other.messages);
        self.bytes_sent = self.bytes_sent.saturating_add(other.bytes_sent);
        self.bytes_received = self.bytes_received.saturating_add(other.bytes_received);
        for (kind, n) in &other.errors {
            let count = self.errors.entry(kind.clone()).or_default();
            *count = count.saturating_add(*n);
        }
        self.messages_per_second += other.messages_per_second;
        self.latency.merge(&other.latency);
    }
}

/// A check of one shard.
#[derive(Debug, Clone, Serialize)]
pub struct MergedCheck {
    /// The report it came from.
    pub report: String,
    /// Which shard that was, when it was one.
    pub shard: Option<String>,
    /// Check name.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    pub summary: String,
}

/// Several shards' reports as one.
#[derive(Debug, Serialize)]
pub struct MergedReport {
    /// Layout version (shared with run reports).
    pub schema_version: u32,
    /// Always `merged`, to tell this document from a run's report.
    pub kind: &'static str,
    /// The scenario's name.
    pub scenario: String,
    /// The reports merged, in the order given.
    pub merged_from: Vec<String>,
    /// The worst outcome of the parts.
    pub outcome: Outcome,
    /// False when any part was interrupted.
    pub complete: bool,
    /// Groups, merged by name.
    pub groups: Vec<SavedGroup>,
    /// All groups together.
    pub total: SavedGroup,
    /// Every part's checks.
    pub checks: Vec<MergedCheck>,
    /// How many findings the parts reported (they stay in the parts' reports).
    pub findings: usize,
}

/// Reads and merges the reports at `paths` (all of one scenario).
pub fn merge(paths: &[PathBuf]) -> Result<MergedReport, MergeError> {
    let mut parts = Vec::with_capacity(paths.len());
    for path in paths {
        parts.push((path, read(path)?));
    }
    let name = parts[0].1.scenario.name.clone();
    if let Some((path, other)) = parts.iter().find(|(_, r)| r.scenario.name != name) {
        return Err(MergeError::NotOneRun {
            path: path.to_path_buf(),
            reason: format!(
                "it reports scenario `{}`, the first report `{name}`; merge the parts of one scenario",
                other.scenario.name
            ),
        });
    }
    check_whole_run(&parts)?;
    let mut groups: Vec<SavedGroup> = Vec::new();
    let mut checks = Vec::new();
    let (mut outcome, mut complete, mut findings) = (Outcome::Pass, true, 0);
    for (path, part) in &parts {
        for group in &part.groups {
            match groups.iter_mut().find(|g| g.name == group.name) {
                Some(merged) => merged.absorb(group),
                None => groups.push(group.clone()),
            }
        }
        checks.extend(part.checks.iter().map(|c| MergedCheck {
            report: path.display().to_string(),
            shard: part.scenario.shard.clone(),
            name: c.name.clone(),
            passed: c.passed,
            summary: c.summary.clone(),
        }));
        outcome = outcome.worst(part.outcome);
        complete &= part.complete;
        findings += part.findings.len();
    }
    let mut total = groups[0].clone();
    total.name = "all".into();
    for group in &groups[1..] {
        total.absorb(group);
    }
    if groups.iter().any(|g| g.server != total.server) {
        total.server = String::new();
    }
    Ok(MergedReport {
        schema_version: SCHEMA_VERSION,
        kind: "merged",
        scenario: name,
        merged_from: paths.iter().map(|p| p.display().to_string()).collect(),
        outcome,
        complete,
        groups,
        total,
        checks,
        findings,
    })
}

/// Refuses anything but the shards 1..N of one run, each once, against the same servers.
fn check_whole_run(parts: &[(&PathBuf, SavedReport)]) -> Result<(), MergeError> {
    let refuse = |path: &Path, reason: String| MergeError::NotOneRun {
        path: path.to_owned(),
        reason,
    };
    let mut slices: Vec<(crate::scenario::Shard, &Path)> = Vec::with_capacity(parts.len());
    for (path, part) in parts {
        let slice: crate::scenario::Shard = match &part.scenario.shard {
            None => {
                return Err(refuse(
                    path,
                    "it is not a shard (its run had no --shard K/N): merge joins the shards of \
                     one run, and a whole run needs no merging"
                        .into(),
                ));
            }
            Some(text) => text
                .parse()
                .map_err(|why| refuse(path, format!("its shard `{text}` is unreadable: {why}")))?,
        };
        if let Some((first, first_path)) = slices.first()
            && first.of != slice.of
        {
            return Err(refuse(
                path,
                format!(
                    "it is shard {slice} of a run split {} ways, {} is shard {first} of one split {} \
                     ways: merge the shards of one run",
                    slice.of,
                    first_path.display(),
                    first.of
                ),
            ));
        }
        if let Some((_, earlier)) = slices.iter().find(|(seen, _)| seen.index == slice.index) {
            return Err(refuse(
                path,
                format!(
                    "it is shard {slice} again ({} is that shard too): each shard's clients would \
                     be counted twice",
                    earlier.display()
                ),
            ));
        }
        let (_, first) = &parts[0];
        if part.servers != first.servers {
            return Err(refuse(
                path,
                format!(
                    "its servers are {}, those of {} are {}: shards of one run aim at the same \
                     servers",
                    describe_servers(&part.servers),
                    parts[0].0.display(),
                    describe_servers(&first.servers)
                ),
            ));
        }
        if part.scenario.seed != first.scenario.seed {
            return Err(refuse(
                path,
                format!(
                    "its seed is {}, that of {} is {}: shards of one run share one --seed, or \
                     their clients would not be the slices of one run",
                    part.scenario.seed,
                    parts[0].0.display(),
                    first.scenario.seed
                ),
            ));
        }
        if part.scenario.start_at != first.scenario.start_at {
            let describe = |start: &Option<String>| match start {
                Some(instant) => format!("--start-at {instant}"),
                None => "no --start-at".to_owned(),
            };
            return Err(refuse(
                path,
                format!(
                    "it ran with {}, {} with {}: shards of one run start at one instant",
                    describe(&part.scenario.start_at),
                    parts[0].0.display(),
                    describe(&first.scenario.start_at)
                ),
            ));
        }
        same_scenario(part, parts[0].0, first).map_err(|reason| refuse(path, reason))?;
        started_on_time(part).map_err(|reason| refuse(path, reason))?;
        slices.push((slice, path));
    }
    let of = slices[0].0.of;
    if let Some(missing) = (1..=of).find(|k| !slices.iter().any(|(s, _)| s.index == *k)) {
        return Err(refuse(
            slices[0].1,
            format!(
                "shard {missing}/{of} is missing: the run was split {of} ways and {given} of its \
                 reports {verb} given; a merge of part of a run would pass clients that never ran",
                given = slices.len(),
                verb = if slices.len() == 1 { "was" } else { "were" }
            ),
        ));
    }
    Ok(())
}

/// Fails, naming the first key that differs, when `part` ran another scenario than `first`
/// (read from `first_path`).
fn same_scenario(part: &SavedReport, first_path: &Path, first: &SavedReport) -> Result<(), String> {
    let (ours, theirs) = (&part.scenario.rest, &first.scenario.rest);
    let differing = ours
        .keys()
        .chain(theirs.keys())
        .filter(|key| !MAY_DIFFER.contains(&key.as_str()))
        .find(|key| ours.get(*key) != theirs.get(*key));
    match differing {
        Some(key) => Err(format!(
            "its scenario's `{key}` differs from that of {} (though both are `{}`): shards of \
             one run run one scenario file with the same options",
            first_path.display(),
            part.scenario.name,
        )),
        None => Ok(()),
    }
}

/// Fails when `part` started its clients well after the `--start-at` it was given: its load
/// did not overlap the other shards', so together they are not one run.
fn started_on_time(part: &SavedReport) -> Result<(), String> {
    let Some(start_at) = &part.scenario.start_at else {
        return Ok(());
    };
    let read =
        |text: &str| humantime::parse_rfc3339(text).map_err(|why| format!("`{text}` is no instant: {why}"));
    let (planned, started) = (read(start_at)?, read(&part.started_at)?);
    match started.duration_since(planned) {
        Ok(late) if late > LATE_START_TOLERANCE => Err(format!(
            "it started its clients {} after --start-at {start_at} (its servers were not ready \
             by then, or its clock is off): its load did not overlap the other shards'",
            units::duration(late)
        )),
        _ => Ok(()),
    }
}

/// The servers of a shard's report, for an error: each with where it was aimed, or launched.
fn describe_servers(servers: &[SavedServer]) -> String {
    let described: Vec<String> = servers
        .iter()
        .map(|s| match &s.addressed {
            Some(target) => format!("`{}` at {target}", s.name),
            None => format!("`{}` (launched by labrun)", s.name),
        })
        .collect();
    described.join(", ")
}

fn read(path: &Path) -> Result<SavedReport, ReadError> {
    let report = SavedReport::read(path)?;
    if report.outcome == Outcome::Error {
        return Err(ReadError {
            path: path.to_owned(),
            reason: "its run could not run (outcome `error`): it has no figures to merge".into(),
        });
    }
    if report.groups.is_empty() {
        return Err(ReadError {
            path: path.to_owned(),
            reason: "it has no client groups".into(),
        });
    }
    Ok(report)
}

/// Prints the merged figures and one line per failed check.
pub fn render(merged: &MergedReport, saved_to: Option<&Path>, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} reports merged",
        merged.scenario,
        merged.merged_from.len()
    )?;
    let mut table = Builder::default();
    table.push_record([
        "group", "clients", "done", "messages", "errors", "msgs/s", "rtt p50", "rtt p99",
    ]);
    for group in merged.groups.iter().chain(std::iter::once(&merged.total)) {
        let at = |q| {
            group
                .latency
                .rtt
                .quantile(q)
                .map_or_else(|| "—".to_owned(), units::duration)
        };
        table.push_record([
            group.name.clone(),
            units::count(u64::from(group.clients)),
            units::count(u64::from(group.clients_completed)),
            units::count(group.messages),
            units::count(group.errors.values().sum()),
            format!("{:.0}", group.messages_per_second),
            at(0.5),
            at(0.99),
        ]);
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .modify(Columns::new(1..), Alignment::right());
    writeln!(out, "{table}")?;
    for check in merged.checks.iter().filter(|c| !c.passed) {
        writeln!(
            out,
            "  FAIL  {} ({}): {}",
            check.name, check.report, check.summary
        )?;
    }
    let passed = merged.checks.iter().filter(|c| c.passed).count();
    let verdict = merged.outcome.word();
    write!(
        out,
        "{verdict} {}: {passed} of {} checks passed",
        merged.scenario,
        merged.checks.len()
    )?;
    if let Some(path) = saved_to {
        write!(out, " · report {}", path.display())?;
    }
    writeln!(out)
}
