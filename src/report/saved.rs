//! A run's JSON report read back: the one mirror of the report's schema, for `compare`,
//! `merge` and `grade`.
//!
//! Only what those readers use is read; everything else in the file is ignored, so adding
//! a key to the report changes nothing here. A report of another schema version, a merged
//! report (the output of `labrun merge`) or anything else is refused with its file named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{OLDEST_READABLE_SCHEMA, Outcome, SCHEMA_VERSION};
use crate::metrics::LatencySet;
use crate::scenario::MAX_GROUPS;

/// Why a report could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read report `{}`: {reason}", path.display())]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// A run's report, as saved.
#[derive(Debug, Deserialize)]
pub struct SavedReport {
    /// The scenario as it was run.
    pub scenario: SavedScenario,
    /// When its clients started (RFC 3339).
    pub started_at: String,
    /// PASS, FAIL, ERROR or INTERRUPTED.
    pub outcome: Outcome,
    /// False when the run was interrupted, or could not run.
    pub complete: bool,
    /// Why it could not run (outcome `error`; schema version 2 on).
    #[serde(default)]
    pub error: Option<String>,
    /// Its servers.
    #[serde(default)]
    pub servers: Vec<SavedServer>,
    /// Figures of each client group.
    pub groups: Vec<SavedGroup>,
    /// Figures over all groups.
    pub total: SavedGroup,
    pub checks: Vec<SavedCheck>,
    /// What went wrong, one finding per fault.
    pub findings: Vec<SavedFinding>,
    /// Each run's figures, when the scenario ran several times (`--repeat`).
    #[serde(default)]
    pub repeats: Vec<SavedRun>,
}

/// One run of a repeated scenario, as saved.
#[derive(Debug, Deserialize)]
pub struct SavedRun {
    /// How it ended.
    pub outcome: Outcome,
    /// Its figures over all client groups.
    pub total: SavedGroup,
}

/// One finding of a saved run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFinding {
    /// The check it belongs to.
    pub check: String,
    /// Its fault class (`truncated`, `bounded`, …).
    pub class: String,
    /// What was expected and what was seen.
    pub text: String,
    /// What usually causes it, in the lab's terms.
    pub hint: String,
}

/// The scenario part of a saved report.
#[derive(Debug, Deserialize)]
pub struct SavedScenario {
    pub name: String,
    /// Which shard the run was (`K/N`), if one.
    pub shard: Option<String>,
    /// The seed its clients' payloads were drawn from.
    pub seed: u64,
    /// The `--start-at` instant the run waited for, if any.
    #[serde(default)]
    pub start_at: Option<String>,
    /// The rest of the scenario as run (servers, groups, expectations, …).
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// A server of a saved run: where it was aimed, when labrun did not launch it.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct SavedServer {
    /// Its name in the scenario.
    pub name: String,
    /// `host:port`, when it was addressed rather than launched.
    #[serde(default)]
    pub addressed: Option<String>,
}

/// One check of a saved run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCheck {
    /// Check name.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// Its summary line.
    pub summary: String,
}

/// Figures of one client group (or of all, as `total`); a merge writes the same shape.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedGroup {
    /// Group name.
    pub name: String,
    pub server: String,
    pub clients: u32,
    /// Clients that finished.
    pub clients_completed: u32,
    /// Messages completed.
    pub messages: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Connection errors by class.
    pub errors: BTreeMap<String, u64>,
    pub messages_per_second: f64,
    /// Latency distributions.
    pub latency: LatencySet,
}

/// Most runs a report of `--repeat` holds: the flag's own limit.
pub const MAX_REPEATS: usize = 100;

impl SavedReport {
    /// Refuses figures no run can have, which a comparison would print or weigh as if real:
    /// a rate that is not a finite number of zero or more, or runs of another load than
    /// the report's (their clients differ from its total's).
    fn check_figures(&self) -> Result<(), String> {
        let totals = std::iter::once(&self.total)
            .chain(&self.groups)
            .chain(self.repeats.iter().map(|run| &run.total));
        if totals
            .clone()
            .any(|g| !g.messages_per_second.is_finite() || g.messages_per_second < 0.0)
        {
            return Err("a throughput in it is not a finite number of zero or more".into());
        }
        if let Some(other) = self
            .repeats
            .iter()
            .find(|run| run.total.clients != self.total.clients)
        {
            return Err(format!(
                "one of its runs had {} clients and the report {}: its runs are not of its load",
                other.total.clients, self.total.clients
            ));
        }
        Ok(())
    }

    /// Reads the JSON report at `path`.
    pub fn read(path: &Path) -> Result<SavedReport, ReadError> {
        let text = std::fs::read(path).map_err(|e| ReadError {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        SavedReport::parse(&text).map_err(|reason| ReadError {
            path: path.to_owned(),
            reason,
        })
    }

    /// Reads a JSON report from its bytes (a child run's stdout, for `grade`).
    pub fn parse(bytes: &[u8]) -> Result<SavedReport, String> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
        if value["kind"] == "merged" {
            return Err(
                "it is a merged report (the output of `labrun merge`), not one run's: give \
                        the reports of the runs themselves"
                    .into(),
            );
        }
        match value["schema_version"].as_u64() {
            Some(version)
                if (u64::from(OLDEST_READABLE_SCHEMA)..=u64::from(SCHEMA_VERSION)).contains(&version) => {}
            Some(version) => {
                return Err(format!(
                    "schema version {version} (this labrun reads versions {OLDEST_READABLE_SCHEMA} \
                     to {SCHEMA_VERSION})"
                ));
            }
            None => return Err("not a labrun run report (it has no `schema_version`)".into()),
        }
        // Refused before the histograms are decoded, each of which takes ~140 KB however
        // short its text: a hand-made report must not be able to exhaust memory.
        let length = |key: &str| value[key].as_array().map_or(0, Vec::len);
        if length("repeats") > MAX_REPEATS {
            return Err(format!(
                "it holds {} runs; `--repeat` makes at most {MAX_REPEATS}",
                length("repeats")
            ));
        }
        if length("groups") > MAX_GROUPS {
            return Err(format!(
                "it has {} client groups; a scenario has at most {MAX_GROUPS}",
                length("groups")
            ));
        }
        let report: SavedReport =
            serde_json::from_value(value).map_err(|e| format!("not a labrun run report ({e})"))?;
        report.check_figures()?;
        Ok(report)
    }
}
