//! The report's view of client programs under test: how each ran and ended, what it printed
//! (escaped) and every connection its played servers recorded.
//!
//! Built once from the session records; every renderer reads only this. Everything a
//! program produced is escaped here, since none of it can be trusted to be text.

use serde::Serialize;

use crate::clientprog::{ConnectionRecord, Ending, ProgramRecord};
use crate::escape::escape_bytes;
use crate::scenario::ProgramsUnderTest;
use crate::supervise::{ExitDescription, Teardown};

/// Most received bytes of a connection quoted in the report.
const RECEIVED_EXCERPT_BYTES: usize = 512;

/// How one client program ran.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramReport {
    pub name: String,
    /// The command line it ran, ports substituted.
    pub argv: Vec<String>,
    /// Its process id.
    pub pid: u32,
    /// `exited`, `timed-out` or `interrupted`.
    pub ended: &'static str,
    /// Its exit status, when it exited by itself.
    pub exit: Option<ExitDescription>,
    /// Launch until it ended (or was stopped), in milliseconds.
    pub duration_ms: f64,
    /// How teardown went.
    pub teardown: Teardown,
    /// Lines the scenario types at it.
    pub lines: usize,
    /// Lines typed before it ended (or typing stopped).
    pub lines_typed: usize,
    /// Why typing stopped early, if it did.
    pub typing_stopped: Option<String>,
    /// A Python traceback appeared on its stderr.
    pub traceback: bool,
    /// Bytes it wrote to stdout.
    pub stdout_bytes: u64,
    /// Bytes it wrote to stderr.
    pub stderr_bytes: u64,
    /// Its last stdout lines, escaped.
    pub stdout_tail: String,
    /// Its last stderr lines, escaped.
    pub stderr_tail: String,
    /// Every connection its played servers accepted.
    pub connections: Vec<ConnectionReport>,
}

/// One connection a played server accepted.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionReport {
    /// The played server.
    pub server: String,
    pub port: u16,
    /// Accepted, in milliseconds after the program's launch.
    pub accepted_ms: f64,
    /// Ended, in milliseconds after the program's launch.
    pub ended_ms: Option<f64>,
    /// How it ended.
    pub end: &'static str,
    /// Reads that returned data (one per message for a lab client).
    pub messages: u32,
    /// Answers the server sent.
    pub replies: u32,
    pub received_bytes: u64,
    /// The first received bytes, escaped.
    pub received: String,
}

impl ProgramReport {
    /// The report of each session, in run order.
    pub fn from_records(under_test: &ProgramsUnderTest, records: &[ProgramRecord]) -> Vec<ProgramReport> {
        records
            .iter()
            .map(|record| Self::from_record(under_test, record))
            .collect()
    }

    fn from_record(under_test: &ProgramsUnderTest, record: &ProgramRecord) -> ProgramReport {
        let millis = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let (ended, exit, duration_ms) = match record.ending {
            Ending::Exited { status, after } => ("exited", Some(status), millis(after)),
            Ending::TimedOut { after } => ("timed-out", None, millis(after)),
            Ending::Interrupted => ("interrupted", None, 0.0),
        };
        let program = &under_test.programs[record.program];
        ProgramReport {
            name: program.name.clone(),
            argv: record.argv.clone(),
            pid: record.pid,
            ended,
            exit,
            duration_ms,
            teardown: record.teardown,
            lines: program.stdin.lines.len(),
            lines_typed: record.typing.typed,
            typing_stopped: record.typing.stopped.as_ref().map(ToString::to_string),
            traceback: record.traceback,
            stdout_bytes: record.stdout_bytes,
            stderr_bytes: record.stderr_bytes,
            stdout_tail: record.stdout_tail.clone(),
            stderr_tail: record.stderr_tail.clone(),
            connections: record
                .connections
                .iter()
                .map(|c| ConnectionReport::from_record(under_test, record, c, millis))
                .collect(),
        }
    }

    /// How it ended, in a few words: `exit 0`, `killed by signal 9 (SIGKILL)`, `timed out`.
    pub fn ending_words(&self) -> String {
        match (self.ended, self.exit) {
            (_, Some(ExitDescription { code: Some(code), .. })) => format!("exit {code}"),
            (_, Some(status)) => status.to_string(),
            ("interrupted", None) => "interrupted".to_owned(),
            _ => "timed out (stopped)".to_owned(),
        }
    }
}

/// Column titles of [`ProgramReport::summary_cells`].
pub const SUMMARY_TITLES: [&str; 7] = [
    "program",
    "pid",
    "ended",
    "time",
    "typed",
    "connections",
    "checks",
];

impl ProgramReport {
    /// Whether `check` is this program's: every check when it is the only program, else
    /// those named `CHECK NAME` after it (see `verify::program`).
    pub fn owns_check(&self, programs: &[ProgramReport], check: &str) -> bool {
        programs.len() == 1 || check.ends_with(&format!(" {}", self.name))
    }

    /// The summary table's cells, shared by the terminal, Markdown and HTML reports:
    /// program, pid, ended, time, typed, connections, checks passed.
    pub fn summary_cells(&self, programs: &[ProgramReport], checks: &[crate::verify::Check]) -> [String; 7] {
        let mine: Vec<&crate::verify::Check> = checks
            .iter()
            .filter(|c| self.owns_check(programs, &c.name))
            .collect();
        let mut connections: Vec<String> = Vec::new();
        for connection in &self.connections {
            let label = format!("{}:{}", connection.server, connection.port);
            if !connections.contains(&label) {
                connections.push(label);
            }
        }
        [
            self.name.clone(),
            self.pid.to_string(),
            self.ending_words(),
            crate::units::micros((self.duration_ms * 1000.0) as u64),
            format!("{}/{}", self.lines_typed, self.lines),
            match connections.is_empty() {
                true => "none".to_owned(),
                false => format!("{} ({})", connections.join(", "), self.connections.len()),
            },
            format!("{}/{}", mine.iter().filter(|c| c.passed).count(), mine.len()),
        ]
    }
}

impl ConnectionReport {
    fn from_record(
        under_test: &ProgramsUnderTest,
        record: &ProgramRecord,
        connection: &ConnectionRecord,
        millis: impl Fn(std::time::Duration) -> f64,
    ) -> ConnectionReport {
        let excerpt = &connection.received[..connection.received.len().min(RECEIVED_EXCERPT_BYTES)];
        ConnectionReport {
            server: under_test.played[connection.server].name.clone(),
            port: record.ports[connection.server],
            accepted_ms: millis(connection.accepted_at),
            ended_ms: connection.ended_at.map(&millis),
            end: connection.end.map_or("still-open", |e| e.label()),
            messages: connection.messages,
            replies: connection.replies,
            received_bytes: connection.received_bytes,
            received: escape_bytes(excerpt),
        }
    }
}
