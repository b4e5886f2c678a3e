//! Several runs compared: `labrun scenarios/iterative.toml scenarios/threaded.toml` ends
//! with one table of the figures that tell the servers apart and their histograms next to
//! each other, so the difference between an iterative and a concurrent server is one glance.

use std::io::{self, Write};

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use super::style::{Styles, Tone};
use super::{Outcome, Report, ServersReport, chart};
use crate::histogram::Latency;
use crate::units;

/// One run of servers under test: its report and what its clients measured.
pub type Load<'a> = (&'a Report, &'a ServersReport);

/// Writes the comparison of `loads` (in the order they ran).
pub fn render(loads: &[Load], styles: &Styles, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "{}", styles.paint(Tone::Bold, "side by side"))?;
    write_table(loads, out)?;
    for (title, pick) in [
        (
            "wait for the first reply",
            (|r: &ServersReport| &r.total.latency.wait) as fn(&ServersReport) -> &Latency,
        ),
        ("round-trip time", |r: &ServersReport| &r.total.latency.rtt),
    ] {
        writeln!(out)?;
        writeln!(out, "{}", styles.paint(Tone::Bold, title))?;
        write_histograms(loads, pick, styles, out)?;
    }
    Ok(())
}

fn write_table(loads: &[Load], out: &mut impl Write) -> io::Result<()> {
    let mut table = Builder::default();
    table.push_record([
        "scenario",
        "result",
        "clients",
        "msgs/s",
        "wait p50",
        "wait p99",
        "rtt p50",
        "rtt p99",
        "concurrency",
    ]);
    for (report, servers) in loads {
        let latency = &servers.total.latency;
        let at = |l: &Latency, q| l.quantile(q).map_or_else(|| "—".to_owned(), units::duration);
        let concurrency: Vec<String> = servers
            .concurrency
            .iter()
            .map(|c| c.overlap.verdict.to_string())
            .collect();
        table.push_record([
            report.scenario.name.clone(),
            match report.outcome {
                Outcome::Pass => "pass".to_owned(),
                Outcome::Fail => "FAIL".to_owned(),
                other => other.word().to_lowercase(),
            },
            units::count(u64::from(servers.total.clients)),
            format!("{:.0}", servers.total.messages_per_second),
            at(&latency.wait, 0.5),
            at(&latency.wait, 0.99),
            at(&latency.rtt, 0.5),
            at(&latency.rtt, 0.99),
            concurrency.join(", "),
        ]);
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .modify(Columns::new(2..8), Alignment::right());
    writeln!(out, "{table}")
}

/// Every scenario's histogram on shared buckets, one column each, titled by scenario.
fn write_histograms(
    loads: &[Load],
    pick: fn(&ServersReport) -> &Latency,
    styles: &Styles,
    out: &mut impl Write,
) -> io::Result<()> {
    const RANGE_WIDTH: usize = 22;
    const SHARE_WIDTH: usize = 8;
    let bar_width = (styles.width.saturating_sub(2 + RANGE_WIDTH) / loads.len())
        .saturating_sub(SHARE_WIDTH)
        .clamp(4, 30);
    let latencies: Vec<&Latency> = loads.iter().map(|(_, servers)| pick(servers)).collect();
    let lines = chart::comparison_lines(&latencies, bar_width);
    // Each column starts at a `│`; the scenario names go above them.
    let first_column = lines[0].chars().position(|c| c == '│').unwrap_or(RANGE_WIDTH);
    let mut heading = " ".repeat(first_column);
    for (report, _) in loads {
        let name: String = report.scenario.name.chars().take(bar_width + 5).collect();
        heading.push_str(&format!("│{name:<width$} ", width = bar_width + 6));
    }
    writeln!(out, "  {}", heading.trim_end())?;
    for line in lines {
        writeln!(out, "  {}", line.trim_end())?;
    }
    Ok(())
}
