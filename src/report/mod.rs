//! Reports: the run's result as data, and the renderers that turn it into bytes.
//!
//! [`Report`] is assembled once from the plan, the client records' figures, the verdict and
//! the servers' ends; every renderer (terminal, JSON) reads only the `Report`. The JSON form
//! is versioned by [`SCHEMA_VERSION`] and carries histograms losslessly.

pub mod chart;
pub mod compare;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod noise;
pub mod programs;
pub mod progress;
pub mod repeats;
pub mod saved;
pub mod side_by_side;
pub mod style;
pub mod terminal;
pub mod timeline;
pub mod writer;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::metrics::{GroupFigures, LatencySet};
use crate::scenario::{Format, Plan, ServersUnderTest, UnderTest};
use crate::supervise::{EventRecord, ServerEnd};
use crate::units;
use crate::verify::concurrency::ServerConcurrency;
use crate::verify::{Check, Finding, Survival, Verdict};
use crate::workload::room::RoomOutcome;
use crate::workload::{ClientEnd, ClientRecord};

/// Most client timelines a report keeps; beyond it, evenly spaced clients stand for the rest.
pub const MAX_TIMELINES: usize = 1000;

/// The report in `format`.
pub fn render(format: Format, report: &Report) -> Vec<u8> {
    match format {
        Format::Json => json::render(report),
        Format::Md => markdown::render(report),
        Format::Junit => junit::render(report),
        Format::Html => html::render(report),
    }
}

/// Text safe in XML and HTML, in content and in quoted attributes; characters XML 1.0
/// cannot carry (controls other than tab and line ends) become U+FFFD.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Version of the JSON report layout; bumped on any incompatible change. Version 2 added the
/// `error` outcome and key (a run that could not start has a report too).
pub const SCHEMA_VERSION: u32 = 2;
/// The oldest layout [`saved`] still reads: what it reads is in every version since.
pub const OLDEST_READABLE_SCHEMA: u32 = 1;

/// How a run ended overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every check held.
    Pass,
    /// At least one check failed.
    Fail,
    /// A program under test could not be started or reached: nothing was judged (see the
    /// report's `error`).
    Error,
    /// Ctrl-C (or SIGTERM) stopped the run; figures are partial.
    Interrupted,
}

impl Outcome {
    /// The worse of two outcomes, for a run of several: an interruption over an error (which
    /// judged nothing) over a failure over a pass.
    pub fn worst(self, other: Outcome) -> Outcome {
        let rank = |outcome| match outcome {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            Outcome::Error => 2,
            Outcome::Interrupted => 3,
        };
        if rank(other) > rank(self) { other } else { self }
    }

    /// The word reports show for it.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Error => "ERROR",
            Outcome::Interrupted => "INTERRUPTED",
        }
    }
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Layout version of this document.
    pub schema_version: u32,
    /// The labrun version that produced it.
    pub labrun_version: &'static str,
    /// The scenario as planned (defaults applied).
    pub scenario: Plan,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// Whole run, server start to teardown, in milliseconds.
    pub duration_ms: f64,
    /// labrun's own peak resident memory, so a run can show it stayed bounded whatever the
    /// server sent; `None` where `/proc` is unavailable.
    pub labrun_peak_rss_bytes: Option<u64>,
    /// Overall result.
    pub outcome: Outcome,
    /// False when the run was interrupted and figures are partial, or there are none.
    pub complete: bool,
    /// Why nothing was judged, when a program under test could not be started or reached
    /// (outcome `error`), in labrun's words with the program's own output.
    pub error: Option<String>,
    /// What the servers, or the client programs, under test did.
    #[serde(flatten)]
    pub tested: Tested,
    /// One verdict line per check.
    pub checks: Vec<Check>,
    /// Everything that went wrong.
    pub findings: Vec<Finding>,
    /// Each run's outcome and figures when the scenario ran several times (`--repeat`);
    /// empty for a single run.
    pub repeats: Vec<repeats::RepeatedRun>,
}

/// What the run measured of what it tested: the other side of [`crate::scenario::UnderTest`].
#[derive(Debug, Clone)]
pub enum Tested {
    /// Servers: how they ran and ended, and what their clients measured.
    Servers(Box<ServersReport>),
    /// Client programs: how each one's session went.
    ClientPrograms(Vec<programs::ProgramReport>),
}

/// What the simulated clients measured of the servers under test.
#[derive(Debug, Clone, Serialize)]
pub struct ServersReport {
    /// How each server ran and ended.
    pub servers: Vec<ServerEnd>,
    /// Figures per client group.
    pub groups: Vec<GroupReport>,
    /// Figures over all groups.
    pub total: GroupReport,
    /// How many clients each server served at once.
    pub concurrency: Vec<ServerConcurrency>,
    /// The survival probes, when the scenario asked for them.
    pub survival: Vec<Survival>,
    /// Each broadcast room's ledger: deliveries owed and made, and every fault counted.
    pub rooms: Vec<RoomOutcome>,
    /// What the scenario's events did to the servers.
    pub events: Vec<EventRecord>,
    /// Client timelines, for the timeline chart.
    pub timeline: TimelineReport,
    /// How long the concurrency and survival probes took, after the clients left (the time
    /// of the checks they decide).
    pub probes_ms: f64,
}

/// Every saved report carries the keys of both sides (the other side's empty), so its
/// shape, and `docs/report.schema.json`, do not depend on what was tested.
impl Serialize for Tested {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct BothSides<'a> {
            #[serde(flatten)]
            servers: &'a ServersReport,
            client_programs: &'a [programs::ProgramReport],
        }
        let no_servers;
        let both = match self {
            Tested::Servers(servers) => BothSides {
                servers,
                client_programs: &[],
            },
            Tested::ClientPrograms(programs) => {
                no_servers = ServersReport::empty();
                BothSides {
                    servers: &no_servers,
                    client_programs: programs,
                }
            }
        };
        both.serialize(serializer)
    }
}

/// Figures of one client group (or of all of them).
#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    /// Group name (`all` for the total).
    pub name: String,
    /// The server it talked to (empty for the total when several).
    pub server: String,
    pub clients: u32,
    /// Clients that finished every message.
    pub clients_completed: u32,
    /// Faulty clients that misbehaved as planned.
    pub clients_misbehaved: u32,
    /// Messages echoed.
    pub messages: u64,
    pub bytes_sent: u64,
    /// Bytes received and verified.
    pub bytes_received: u64,
    /// Connection errors by class.
    pub errors: BTreeMap<&'static str, u64>,
    /// First connect to last reply, in milliseconds.
    pub active_ms: f64,
    /// Echoed messages per second over the active time.
    pub messages_per_second: f64,
    /// Latency distributions.
    pub latency: LatencySet,
    /// What became of the datagrams (UDP clients only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<crate::workload::DatagramTally>,
}

impl GroupReport {
    fn new(name: String, server: String, figures: &GroupFigures) -> Self {
        GroupReport {
            name,
            server,
            clients: figures.clients,
            clients_completed: figures.clients_completed,
            clients_misbehaved: figures.clients_misbehaved,
            messages: figures.messages,
            bytes_sent: figures.bytes_sent,
            bytes_received: figures.bytes_received,
            errors: figures
                .errors
                .iter()
                .map(|(kind, n)| (kind.label(), *n))
                .collect(),
            active_ms: figures.active.as_secs_f64() * 1000.0,
            messages_per_second: figures.messages_per_second(),
            latency: figures.latency.clone(),
            datagrams: figures.datagrams.clone(),
        }
    }

    /// Connection errors of every class.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The summary table's cells, shared by the terminal, Markdown and HTML reports: group,
    /// server, clients, done, messages, sent, received, errors, msgs/s.
    pub fn summary_cells(&self) -> [String; 9] {
        [
            self.name.clone(),
            self.server.clone(),
            units::count(u64::from(self.clients)),
            units::count(u64::from(self.clients_completed)),
            units::count(self.messages),
            units::bytes(self.bytes_sent),
            units::bytes(self.bytes_received),
            units::count(self.error_count()),
            format!("{:.0}", self.messages_per_second),
        ]
    }
}

impl Report {
    /// The report of a run whose program under test could not be started or reached: no
    /// figures, no checks, the reason as the outcome, so that every requested file exists
    /// and says why.
    pub fn could_not_run(plan: &Plan, error: String, started_at: SystemTime, duration: Duration) -> Report {
        let tested = match plan.under_test {
            UnderTest::Servers(_) => Tested::Servers(Box::new(ServersReport::empty())),
            UnderTest::ClientPrograms(_) => Tested::ClientPrograms(Vec::new()),
        };
        let mut report = Report::assemble(RunResult {
            plan,
            tested,
            verdict: Verdict::default(),
            started_at,
            duration,
            interrupted: false,
        });
        report.outcome = Outcome::Error;
        report.complete = false;
        report.error = Some(error);
        report
    }
}

/// Per-client milestones, in milliseconds since the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineReport {
    /// Clients in the run.
    pub clients: usize,
    /// The clients kept: all of them up to [`MAX_TIMELINES`], else evenly spaced ones.
    pub shown: Vec<ClientSpan>,
}

/// One client's milestones.
#[derive(Debug, Clone, Serialize)]
pub struct ClientSpan {
    /// `group#n`, 1-based.
    pub client: String,
    /// It misbehaved on purpose.
    pub faulty: bool,
    /// `completed`, `echo-fault`, `failed`, `interrupted` or `misbehaved`.
    pub end: &'static str,
    /// Began connecting.
    pub connect_start_ms: Option<f64>,
    pub connected_ms: Option<f64>,
    /// Sent its first message.
    pub first_send_ms: Option<f64>,
    /// First reply byte arrived: service began.
    pub first_reply_ms: Option<f64>,
    /// Last reply completed: service ended.
    pub last_reply_ms: Option<f64>,
    /// Left (closed its side, or gave up).
    pub closed_ms: Option<f64>,
}

impl TimelineReport {
    fn from_records(under_test: &ServersUnderTest, records: &[ClientRecord]) -> Self {
        let step = records.len().div_ceil(MAX_TIMELINES).max(1);
        let millis = |t: Option<Duration>| t.map(|t| t.as_secs_f64() * 1000.0);
        let shown = records
            .iter()
            .step_by(step)
            .map(|record| {
                let t = &record.timeline;
                ClientSpan {
                    client: format!("{}#{}", under_test.groups[record.group].name, record.index + 1),
                    faulty: record.fault.is_some(),
                    end: match record.end {
                        ClientEnd::Completed => "completed",
                        ClientEnd::EchoFault(_) => "echo-fault",
                        ClientEnd::ChatFault(_) => "chat-fault",
                        ClientEnd::Failed(_) => "failed",
                        ClientEnd::Interrupted => "interrupted",
                        ClientEnd::Misbehaved => "misbehaved",
                    },
                    connect_start_ms: millis(t.connect_start),
                    connected_ms: millis(t.connected),
                    first_send_ms: millis(t.first_send),
                    first_reply_ms: millis(t.first_reply),
                    last_reply_ms: millis(t.last_reply),
                    closed_ms: millis(t.closed),
                }
            })
            .collect();
        TimelineReport {
            clients: records.len(),
            shown,
        }
    }
}

/// The parts a report is assembled from, whatever was under test.
pub struct RunResult<'a> {
    /// The plan that ran.
    pub plan: &'a Plan,
    /// What was measured of what was tested.
    pub tested: Tested,
    /// The judgement.
    pub verdict: Verdict,
    /// When the run started.
    pub started_at: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
}

/// What the servers' run left to report.
pub struct ServersRun<'a> {
    /// Figures per group, indexed like [`ServersUnderTest::groups`].
    pub groups: &'a [GroupFigures],
    /// Figures over all groups.
    pub total: &'a GroupFigures,
    /// How the servers ended.
    pub servers: Vec<ServerEnd>,
    /// Every client's record.
    pub records: &'a [ClientRecord],
    /// Concurrency per server.
    pub concurrency: Vec<ServerConcurrency>,
    /// Survival probes.
    pub survival: Vec<Survival>,
    /// Broadcast rooms.
    pub rooms: Vec<RoomOutcome>,
    /// Events carried out.
    pub events: Vec<EventRecord>,
    /// How long the probes took, after the clients.
    pub probes: Duration,
}

impl ServersReport {
    /// The report's figures of the servers under test.
    pub fn new(under_test: &ServersUnderTest, run: ServersRun) -> ServersReport {
        let groups = under_test
            .groups
            .iter()
            .zip(run.groups)
            .map(|(group, figures)| {
                GroupReport::new(
                    group.name.clone(),
                    under_test.servers[group.server].name.clone(),
                    figures,
                )
            })
            .collect();
        let total_server = match under_test.servers.as_slice() {
            [only] => only.name.clone(),
            _ => String::new(),
        };
        ServersReport {
            servers: run.servers,
            groups,
            total: GroupReport::new("all".into(), total_server, run.total),
            concurrency: run.concurrency,
            survival: run.survival,
            rooms: run.rooms,
            events: run.events,
            timeline: TimelineReport::from_records(under_test, run.records),
            probes_ms: run.probes.as_secs_f64() * 1000.0,
        }
    }

    /// No servers, no clients: the server side of a client programs' report.
    fn empty() -> ServersReport {
        ServersReport {
            servers: Vec::new(),
            groups: Vec::new(),
            total: GroupReport::new("all".into(), String::new(), &GroupFigures::from_records(&[])),
            concurrency: Vec::new(),
            survival: Vec::new(),
            rooms: Vec::new(),
            events: Vec::new(),
            timeline: TimelineReport {
                clients: 0,
                shown: Vec::new(),
            },
            probes_ms: 0.0,
        }
    }
}

impl Report {
    /// Assembles the report of a finished (or interrupted) run.
    pub fn assemble(run: RunResult) -> Report {
        let outcome = if run.interrupted {
            Outcome::Interrupted
        } else if run.verdict.passed() {
            Outcome::Pass
        } else {
            Outcome::Fail
        };
        Report {
            schema_version: SCHEMA_VERSION,
            labrun_version: env!("CARGO_PKG_VERSION"),
            scenario: run.plan.clone(),
            started_at: humantime::format_rfc3339_millis(run.started_at).to_string(),
            duration_ms: run.duration.as_secs_f64() * 1000.0,
            labrun_peak_rss_bytes: crate::metrics::own_peak_rss_bytes(),
            outcome,
            complete: !run.interrupted,
            error: None,
            tested: run.tested,
            checks: run.verdict.checks,
            findings: run.verdict.findings,
            repeats: Vec::new(),
        }
    }
}
