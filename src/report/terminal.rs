//! The human report on a terminal: servers, a summary table, percentiles, the wait and
//! round-trip histograms side by side, concurrency and the client timeline, findings with
//! hints, and one verdict line per check.
//!
//! Renders into any `Write`, never `println!`, so tests can snapshot it. Anything a server
//! produced has been escaped before it got into the report.

use std::io::{self, Write};
use std::path::PathBuf;

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use super::programs::ProgramReport;
use super::style::{Styles, Tone};
use super::{GroupReport, Outcome, Report, ServersReport, Tested, chart, timeline};
use crate::units;
use crate::verify::Check;

/// Findings printed in full; the rest are counted (all are in the JSON report).
const FINDINGS_SHOWN: usize = 10;
/// Width of the longest histogram bar.
const BAR_WIDTH: usize = 40;

/// Writes the whole terminal report.
pub fn render(report: &Report, saved: &[PathBuf], styles: &Styles, out: &mut impl Write) -> io::Result<()> {
    let plan = &report.scenario;
    let title = styles.paint(Tone::Bold, &plan.name);
    match &plan.description {
        Some(description) => writeln!(out, "{title} — {description}")?,
        None => writeln!(out, "{title}")?,
    }
    if report.error.is_some() {
        // Nothing was measured; the error itself went to stderr as it happened.
        write_repeats(report, styles, out)?;
        return render_verdict(report, saved, styles, out);
    }
    match &report.tested {
        Tested::Servers(servers) => {
            let concurrency_asked = report.scenario.expect.concurrency.is_some();
            write_servers_run(servers, concurrency_asked, styles, out)?;
        }
        Tested::ClientPrograms(programs) => {
            writeln!(out)?;
            write_programs(programs, &report.checks, out)?;
        }
    }
    write_findings(report, styles, out)?;
    write_repeats(report, styles, out)?;
    writeln!(out)?;
    writeln!(out, "{}", styles.paint(Tone::Bold, "checks"))?;
    let name_width = report
        .checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    for check in &report.checks {
        let mark = if check.passed {
            styles.paint(Tone::Pass, "PASS")
        } else {
            styles.paint(Tone::Fail, "FAIL")
        };
        writeln!(out, "  {mark}  {:<name_width$}  {}", check.name, check.summary)?;
    }
    writeln!(out)?;
    render_verdict(report, saved, styles, out)
}

/// How the servers ran and what their clients measured: each server and event, the
/// summary table, percentiles, histograms, concurrency and the client timeline.
fn write_servers_run(
    report: &ServersReport,
    concurrency_asked: bool,
    styles: &Styles,
    out: &mut impl Write,
) -> io::Result<()> {
    for server in &report.servers {
        let whose = match (&server.addressed, server.pid, &server.process_of) {
            (Some(target), _, _) => format!("addressed as {target}, not launched by labrun"),
            (None, Some(pid), Some(process)) => format!("pid {pid}, the process of server {process}"),
            (None, Some(pid), None) => format!("pid {pid}"),
            (None, None, _) => "no process".to_owned(),
        };
        writeln!(
            out,
            "  server {} on {} ({whose}), ready after {}",
            server.name,
            server.address,
            units::micros((server.ready_after.as_micros()) as u64)
        )?;
    }
    for event in &report.events {
        writeln!(
            out,
            "  event at {}: {} `{}`: {}",
            units::micros((event.at_ms * 1000.0) as u64),
            event.action,
            event.server,
            event.outcome
        )?;
    }
    writeln!(out)?;
    write_summary(report, out)?;
    writeln!(out)?;
    write_percentiles(&report.total, out)?;
    writeln!(out)?;
    write_histograms(report, styles, out)?;
    write_connect_note(report, styles, out)?;
    write_concurrency(report, concurrency_asked, styles, out)
}

/// Wait and round-trip histograms (and fan-out, in a broadcast run) next to each other when
/// they fit, else one under the other. Views without samples are left out unless all are.
fn write_histograms(report: &ServersReport, styles: &Styles, out: &mut impl Write) -> io::Result<()> {
    let latency = &report.total.latency;
    let all = [
        ("wait for the first reply", &latency.wait),
        ("round-trip time", &latency.rtt),
        ("fan-out: send to each receiver", &latency.fanout),
    ];
    let filled: Vec<(&str, &crate::histogram::Latency)> =
        all.iter().copied().filter(|(_, l)| l.count() > 0).collect();
    let views = if filled.is_empty() {
        all[..2].to_vec()
    } else {
        filled
    };
    match chart::side_by_side_bar_width(styles.width, views.len()) {
        Some(bar_width) => {
            let blocks: Vec<(String, Vec<String>)> = views
                .iter()
                .map(|(title, l)| (title.to_string(), chart::histogram_lines(l, bar_width)))
                .collect();
            for (row, line) in chart::side_by_side(&blocks).into_iter().enumerate() {
                let line = if row == 0 {
                    styles.paint(Tone::Bold, &line)
                } else {
                    line
                };
                writeln!(out, "  {line}")?;
            }
        }
        None => {
            for (i, (title, l)) in views.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                writeln!(out, "  {}", styles.paint(Tone::Bold, title))?;
                for line in chart::histogram_lines(l, BAR_WIDTH.min(styles.width / 3)) {
                    writeln!(out, "  {line}")?;
                }
            }
        }
    }
    Ok(())
}

/// A connect this slow was a SYN the kernel dropped and retried: Linux retransmits after 1 s.
const SYN_RETRY_US: u64 = 900_000;

/// Names a pattern in the connect times that students meet and rarely recognise.
fn write_connect_note(report: &ServersReport, styles: &Styles, out: &mut impl Write) -> io::Result<()> {
    let connect = report.total.latency.connect.histogram();
    let retried = connect.count_between(SYN_RETRY_US, connect.max().max(SYN_RETRY_US));
    if retried == 0 {
        return Ok(());
    }
    let note = format!(
        "note: {retried} of {} connects took about a second or more: the server's listen backlog was \
         full, the kernel dropped their SYNs and the clients retried after 1 s (a small listen(n), or \
         a server slow to accept while many clients arrive together)",
        connect.len()
    );
    writeln!(out)?;
    writeln!(out, "  {}", styles.paint(Tone::Dim, &note))
}

/// Each server's concurrency verdict (when its clients overlapped, or the scenario asks) and
/// the client timeline.
fn write_concurrency(
    report: &ServersReport,
    asked: bool,
    styles: &Styles,
    out: &mut impl Write,
) -> io::Result<()> {
    for server in report
        .concurrency
        .iter()
        .filter(|s| asked || s.overlap.connected_together > 1)
    {
        writeln!(out)?;
        let heading = match report.concurrency.len() {
            1 => "concurrency:".to_owned(),
            _ => format!("concurrency of {}:", server.server),
        };
        writeln!(
            out,
            "{} {}",
            styles.paint(Tone::Bold, &heading),
            server.describe()
        )?;
    }
    let drawn = timeline::lines(&report.timeline, styles.width.saturating_sub(2));
    if drawn.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "{}", styles.paint(Tone::Bold, "timeline"))?;
    for line in drawn {
        writeln!(out, "  {line}")?;
    }
    writeln!(out, "  {}", styles.paint(Tone::Dim, timeline::LEGEND))
}

/// One row per client program under test: how it ended, how long it ran, what was typed,
/// where it connected, how many of its checks passed.
fn write_programs(programs: &[ProgramReport], checks: &[Check], out: &mut impl Write) -> io::Result<()> {
    let mut table = Builder::default();
    table.push_record(super::programs::SUMMARY_TITLES);
    for program in programs {
        table.push_record(program.summary_cells(programs, checks));
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .modify(Columns::new(1..2), Alignment::right())
        .modify(Columns::new(3..5), Alignment::right())
        .modify(Columns::new(6..), Alignment::right());
    writeln!(out, "{table}")
}

/// Each run of a repeated scenario (`--repeat`) in a row, under the run shown above.
fn write_repeats(report: &Report, styles: &Styles, out: &mut impl Write) -> io::Result<()> {
    if report.repeats.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "{} (the report above is run {}'s: the first that went worst)",
        styles.paint(Tone::Bold, &format!("{} runs", report.repeats.len())),
        super::repeats::shown_run(report)
    )?;
    let (titles, rows) = super::repeats::table(report);
    let mut table = Builder::default();
    table.push_record(titles);
    for row in rows {
        table.push_record(row);
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .modify(Columns::new(2..), Alignment::right());
    writeln!(out, "{table}")
}

fn write_summary(report: &ServersReport, out: &mut impl Write) -> io::Result<()> {
    let mut table = Builder::default();
    table.push_record([
        "group", "server", "clients", "done", "messages", "sent", "received", "errors", "msgs/s", "time",
    ]);
    let mut rows: Vec<&GroupReport> = report.groups.iter().collect();
    if report.groups.len() > 1 {
        rows.push(&report.total);
    }
    for group in rows {
        let time = units::micros((group.active_ms * 1000.0) as u64);
        table.push_record(group.summary_cells().into_iter().chain(std::iter::once(time)));
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .modify(Columns::new(2..), Alignment::right());
    writeln!(out, "{table}")
}

fn write_percentiles(total: &GroupReport, out: &mut impl Write) -> io::Result<()> {
    let mut table = Builder::default();
    table.push_record(["latency", "count", "min", "p50", "p90", "p99", "p99.9", "max"]);
    // Fan-out exists only in broadcast runs; the other rows always show, empty or not.
    for (name, latency) in total
        .latency
        .named()
        .into_iter()
        .filter(|(name, l)| *name != "fanout" || l.count() > 0)
    {
        let s = latency.summary();
        let cell = |us| {
            if s.count == 0 {
                "—".to_owned()
            } else {
                units::micros(us)
            }
        };
        table.push_record([
            name.to_owned(),
            units::count(s.count),
            cell(s.min_us),
            cell(s.p50_us),
            cell(s.p90_us),
            cell(s.p99_us),
            cell(s.p999_us),
            cell(s.max_us),
        ]);
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .modify(Columns::new(1..), Alignment::right());
    writeln!(out, "{table}")
}

fn write_findings(report: &Report, styles: &Styles, out: &mut impl Write) -> io::Result<()> {
    if report.findings.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let shown = report.findings.len().min(FINDINGS_SHOWN);
    let heading = if shown < report.findings.len() {
        format!(
            "findings ({shown} of {} shown; all are in the JSON report)",
            report.findings.len()
        )
    } else {
        "findings".to_owned()
    };
    writeln!(out, "{}", styles.paint(Tone::Bold, &heading))?;
    for finding in &report.findings[..shown] {
        let mut place = Vec::new();
        if let Some(client) = &finding.client {
            place.push(client.clone());
        }
        if let Some(message) = finding.message {
            place.push(format!("message {message}"));
        }
        if let Some(at) = finding.at_ms {
            place.push(format!("at {}", units::micros((at * 1000.0) as u64)));
        }
        let mut lines = finding.text.lines();
        let first = lines.next().unwrap_or_default();
        let place = if place.is_empty() {
            String::new()
        } else {
            format!("{}: ", place.join(" "))
        };
        writeln!(out, "  {} {place}{first}", styles.paint(Tone::Fail, "✗"))?;
        for line in lines {
            writeln!(out, "      {line}")?;
        }
        writeln!(
            out,
            "    {}",
            styles.paint(Tone::Dim, &format!("hint: {}", finding.hint))
        )?;
    }
    Ok(())
}

/// Writes only the final verdict line (for `--quiet`).
pub fn render_verdict(
    report: &Report,
    saved: &[PathBuf],
    styles: &Styles,
    out: &mut impl Write,
) -> io::Result<()> {
    let passed = report.checks.iter().filter(|c| c.passed).count();
    let tone = match report.outcome {
        Outcome::Pass => Tone::Pass,
        Outcome::Fail | Outcome::Error | Outcome::Interrupted => Tone::Fail,
    };
    let mark = styles.paint(tone, report.outcome.word());
    if report.error.is_some() {
        write!(
            out,
            "{mark} {}: could not run, nothing was judged (the error is above)",
            report.scenario.name
        )?;
    } else {
        let partial = if report.complete {
            ""
        } else {
            " (partial: the run was interrupted)"
        };
        write!(
            out,
            "{mark} {}: {passed} of {} checks passed in {}{partial}",
            report.scenario.name,
            report.checks.len(),
            units::micros((report.duration_ms * 1000.0) as u64)
        )?;
    }
    if !saved.is_empty() {
        let paths: Vec<String> = saved.iter().map(|p| p.display().to_string()).collect();
        write!(out, " · report {}", paths.join(", "))?;
    }
    writeln!(out)
}

/// Under a verdict line: each failed check on a line of its own, so that a short display
/// still names what failed; with `hints`, the lab-terms hint of the first finding of each.
pub fn render_failures(
    report: &Report,
    hints: bool,
    styles: &Styles,
    out: &mut impl Write,
) -> io::Result<()> {
    for check in report.checks.iter().filter(|check| !check.passed) {
        writeln!(
            out,
            "  {}  {}  {}",
            styles.paint(Tone::Fail, "FAIL"),
            check.name,
            check.summary
        )?;
        let first = report.findings.iter().find(|finding| finding.check == check.name);
        if let Some(finding) = first.filter(|_| hints) {
            writeln!(out, "        hint: {}", finding.hint)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::metrics::GroupFigures;
    use crate::report::{Report, RunResult, ServersRun};
    use crate::supervise::{ServerEnd, Teardown};
    use crate::verify::concurrency::{self, ServerConcurrency};
    use crate::verify::{self, Evidence};
    use crate::wire::stream::EchoFault;
    use crate::workload::record::Timeline;
    use crate::workload::{ClientEnd, ClientRecord};

    const SCENARIO: &str = r#"
name = "snapshot"
description = "A fixed run for rendering tests."
[[server]]
name = "echo"
builtin = "echo-threaded"
[[clients]]
name = "c"
count = 3
messages = 4
[expect]
latency = { p99 = "1ms" }
concurrency = "concurrent"
"#;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    fn record(index: u32, messages_completed: u32, end: ClientEnd) -> ClientRecord {
        let base = u64::from(index);
        ClientRecord {
            group: 0,
            index,
            timeline: Timeline {
                connect_start: ms(base),
                connected: ms(base + 1),
                first_send: ms(base + 1),
                first_reply: ms(base + 3),
                last_reply: ms(base + 8),
                closed: ms(base + 9),
                handshake_stalled: false,
            },
            messages_completed,
            bytes_sent: 256,
            bytes_received: 256,
            end,
            fault: None,
            datagrams: None,
        }
    }

    /// A report built from fixed records: nothing measured, so the rendering is stable.
    fn fixed_report() -> Report {
        let plan = crate::scenario::parse(Path::new("snapshot.toml"), SCENARIO).expect("valid scenario");
        let corrupted = EchoFault::Corrupted {
            message: 2,
            offset: 17,
            expected: b"hello".to_vec(),
            received: b"he\x1b[2J".to_vec(),
        };
        let records = vec![
            record(0, 4, ClientEnd::Completed),
            record(1, 4, ClientEnd::Completed),
            record(2, 2, ClientEnd::EchoFault(corrupted)),
        ];
        // Round trips are tallied by the workers, not the records.
        let mut figures = GroupFigures::from_records(&records);
        for rtt in [120, 130, 2_500, 110, 140, 150, 100] {
            figures.latency.rtt.record_us(rtt);
        }
        let groups = vec![figures.clone()];
        let total = figures;
        let servers = vec![ServerEnd {
            name: "echo".into(),
            address: "127.0.0.1:6000".parse().expect("address"),
            pid: Some(4242),
            addressed: None,
            ready_after: Duration::from_micros(3_100),
            exited_during_run: None,
            still_listening: true,
            teardown: Teardown::Terminated,
            stdout_bytes: 0,
            stderr_bytes: 0,
            output_tail: String::new(),
            stopped_by_event: None,
            process_limit: None,
            memory_limit: None,
            cpu_limit: None,
            disk_limit: None,
            children: None,
            process_of: None,
        }];
        let concurrency = vec![ServerConcurrency {
            server: "echo".into(),
            overlap: concurrency::measure(&records),
            probe: None,
            exited_during_run: false,
            accept_queue: None,
        }];
        let verdict = verify::evaluate(&Evidence {
            plan: &plan,
            under_test: plan.servers_side(),
            records: &records,
            groups: &groups,
            total: &total,
            servers: &servers,
            concurrency: &concurrency,
            survival: &[],
            rooms: &[],
            events: &[],
        });
        let tested = ServersReport::new(
            plan.servers_side(),
            ServersRun {
                groups: &groups,
                total: &total,
                servers,
                records: &records,
                concurrency,
                survival: Vec::new(),
                rooms: Vec::new(),
                events: Vec::new(),
                probes: Duration::ZERO,
            },
        );
        Report::assemble(RunResult {
            plan: &plan,
            tested: Tested::Servers(Box::new(tested)),
            verdict,
            started_at: SystemTime::UNIX_EPOCH,
            duration: Duration::from_millis(42),
            interrupted: false,
        })
    }

    #[test]
    fn terminal_report_snapshot() {
        let mut out = Vec::new();
        render(
            &fixed_report(),
            &[PathBuf::from("reports/snapshot.json")],
            &Styles::default(),
            &mut out,
        )
        .expect("renders");
        insta::assert_snapshot!(String::from_utf8(out).expect("utf-8"));
    }

    #[test]
    fn quiet_verdict_is_one_line() {
        let mut out = Vec::new();
        render_verdict(&fixed_report(), &[], &Styles::default(), &mut out).expect("renders");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "FAIL snapshot: 3 of 5 checks passed in 42.0 ms\n"
        );
    }
}
