//! The human report on a terminal: servers, a summary table, percentiles, a histogram,
//! findings with hints, and one verdict line per check.
//!
//! Renders into any `Write`, never `println!`, so tests can snapshot it. Anything a server
//! produced has been escaped before it got into the report.

use std::io::{self, Write};
use std::path::Path;

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use super::style::{Styles, Tone};
use super::{GroupReport, Outcome, Report, chart};
use crate::units;

/// Findings printed in full; the rest are counted (all are in the JSON report).
const FINDINGS_SHOWN: usize = 10;
/// Width of the longest histogram bar.
const BAR_WIDTH: usize = 40;

/// Writes the whole terminal report.
pub fn render(
    report: &Report,
    saved_to: Option<&Path>,
    styles: &Styles,
    out: &mut impl Write,
) -> io::Result<()> {
    let plan = &report.scenario;
    let title = styles.paint(Tone::Bold, &plan.name);
    match &plan.description {
        Some(description) => writeln!(out, "{title} — {description}")?,
        None => writeln!(out, "{title}")?,
    }
    for server in &report.servers {
        writeln!(
            out,
            "  server {} on {} (pid {}), ready after {}",
            server.name,
            server.address,
            server.pid,
            units::micros((server.ready_after.as_micros()) as u64)
        )?;
    }
    writeln!(out)?;
    write_summary(report, out)?;
    writeln!(out)?;
    write_percentiles(&report.total, out)?;
    writeln!(out)?;
    writeln!(
        out,
        "{}",
        styles.paint(Tone::Bold, "round-trip time, all clients")
    )?;
    for line in chart::histogram_lines(&report.total.latency.rtt, BAR_WIDTH) {
        writeln!(out, "  {line}")?;
    }
    write_findings(report, styles, out)?;
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
    render_verdict(report, saved_to, styles, out)
}

fn write_summary(report: &Report, out: &mut impl Write) -> io::Result<()> {
    let mut table = Builder::default();
    table.push_record([
        "group", "server", "clients", "done", "messages", "sent", "received", "errors", "msgs/s", "time",
    ]);
    let mut rows: Vec<&GroupReport> = report.groups.iter().collect();
    if report.groups.len() > 1 {
        rows.push(&report.total);
    }
    for group in rows {
        table.push_record([
            group.name.clone(),
            group.server.clone(),
            units::count(u64::from(group.clients)),
            units::count(u64::from(group.clients_completed)),
            units::count(group.messages),
            units::bytes(group.bytes_sent),
            units::bytes(group.bytes_received),
            units::count(group.error_count()),
            format!("{:.0}", group.messages_per_second),
            units::micros((group.active_ms * 1000.0) as u64),
        ]);
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
    for (name, latency) in total.latency.named() {
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
    saved_to: Option<&Path>,
    styles: &Styles,
    out: &mut impl Write,
) -> io::Result<()> {
    let passed = report.checks.iter().filter(|c| c.passed).count();
    let (mark, tone) = match report.outcome {
        Outcome::Pass => ("PASS", Tone::Pass),
        Outcome::Fail => ("FAIL", Tone::Fail),
        Outcome::Interrupted => ("INTERRUPTED", Tone::Fail),
    };
    let partial = if report.complete {
        ""
    } else {
        " (partial: the run was interrupted)"
    };
    write!(
        out,
        "{} {}: {passed} of {} checks passed in {}{partial}",
        styles.paint(tone, mark),
        report.scenario.name,
        report.checks.len(),
        units::micros((report.duration_ms * 1000.0) as u64)
    )?;
    if let Some(path) = saved_to {
        write!(out, " · report {}", path.display())?;
    }
    writeln!(out)
}
