//! The Markdown report: a summary fit for a pull-request comment or `$GITHUB_STEP_SUMMARY`.
//!
//! Verdict first, then one table row per check, the figures, and the findings with their
//! hints. Everything a server produced was escaped before it reached the report; here only
//! the characters Markdown itself would interpret in a table cell are neutralised.

use std::fmt::Write;

use super::{Report, ServersReport, Tested};
use crate::units;

/// Findings listed in full; the rest are counted.
const FINDINGS_SHOWN: usize = 20;

/// Renders the report as GitHub-flavoured Markdown.
pub fn render(report: &Report) -> Vec<u8> {
    let mut md = String::new();
    let plan = &report.scenario;
    let passed = report.checks.iter().filter(|c| c.passed).count();
    let verdict = report.outcome.word();
    let _ = writeln!(md, "## labrun: {} — {verdict}\n", cell(&plan.name));
    if let Some(description) = &plan.description {
        let _ = writeln!(md, "{}\n", cell(description));
    }
    if let Some(error) = &report.error {
        // The program's own output is inside: a fence of its own must not end the block.
        let _ = writeln!(
            md,
            "**Could not run**: nothing was judged.\n\n```\n{}\n```",
            error.replace("```", "'''")
        );
        write_repeats(report, &mut md);
        return md.into_bytes();
    }
    let _ = writeln!(
        md,
        "**{passed} of {} checks passed** in {}{}.\n",
        report.checks.len(),
        units::micros((report.duration_ms * 1000.0) as u64),
        if report.complete {
            ""
        } else {
            " (interrupted: figures are partial)"
        }
    );
    let _ = writeln!(md, "| check | result | details |\n|---|---|---|");
    for check in &report.checks {
        let mark = if check.passed { "✅ pass" } else { "❌ FAIL" };
        let _ = writeln!(
            md,
            "| {} | {mark} | {} |",
            cell(&check.name),
            cell(&check.summary)
        );
    }
    write_repeats(report, &mut md);
    match &report.tested {
        Tested::Servers(servers) => write_figures(servers, &mut md),
        Tested::ClientPrograms(programs) => {
            let titles = super::programs::SUMMARY_TITLES;
            let _ = writeln!(md, "\n| {} |\n|---|--:|---|--:|--:|---|--:|", titles.join(" | "));
            for program in programs {
                let cells: Vec<String> = program
                    .summary_cells(programs, &report.checks)
                    .iter()
                    .map(|c| cell(c))
                    .collect();
                let _ = writeln!(md, "| {} |", cells.join(" | "));
            }
        }
    }
    if !report.findings.is_empty() {
        let _ = writeln!(md, "\n### Findings\n");
        for finding in report.findings.iter().take(FINDINGS_SHOWN) {
            let place = finding
                .client
                .as_ref()
                .map(|c| format!("**{}**: ", cell(c)))
                .unwrap_or_default();
            let mut lines = finding.text.lines();
            let _ = writeln!(md, "- {place}{}", cell(lines.next().unwrap_or_default()));
            for line in lines {
                let _ = writeln!(md, "  - `{}`", line.replace('`', "'"));
            }
            let _ = writeln!(md, "  - *hint:* {}", cell(finding.hint));
        }
        if report.findings.len() > FINDINGS_SHOWN {
            let _ = writeln!(
                md,
                "\n…and {} more findings in the JSON report.",
                report.findings.len() - FINDINGS_SHOWN
            );
        }
    }
    md.into_bytes()
}

/// The table of a repeated scenario's runs (`--repeat`), if it was repeated.
fn write_repeats(report: &Report, md: &mut String) {
    if report.repeats.is_empty() {
        return;
    }
    let (titles, rows) = super::repeats::table(report);
    let alignment: Vec<&str> = titles
        .iter()
        .map(|t| {
            if matches!(*t, "outcome" | "failed checks") {
                "---"
            } else {
                "--:"
            }
        })
        .collect();
    let _ = writeln!(
        md,
        "\n{} runs (the report is run {}'s: the first that went worst):\n\n| {} |\n|{}|",
        report.repeats.len(),
        super::repeats::shown_run(report),
        titles.join(" | "),
        alignment.join("|")
    );
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
}

/// The group and latency tables of a run with simulated clients, and each server's
/// concurrency.
fn write_figures(servers: &ServersReport, md: &mut String) {
    let _ = writeln!(
        md,
        "\n| group | server | clients | done | messages | sent | received | errors | msgs/s |\n|---|---|--:|--:|--:|--:|--:|--:|--:|"
    );
    for group in servers
        .groups
        .iter()
        .chain((servers.groups.len() > 1).then_some(&servers.total))
    {
        let cells: Vec<String> = group.summary_cells().iter().map(|c| cell(c)).collect();
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(
        md,
        "\n| latency | count | p50 | p90 | p99 | max |\n|---|--:|--:|--:|--:|--:|"
    );
    for (name, latency) in servers.total.latency.named() {
        if latency.count() == 0 {
            continue;
        }
        let s = latency.summary();
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} |",
            units::count(s.count),
            units::micros(s.p50_us),
            units::micros(s.p90_us),
            units::micros(s.p99_us),
            units::micros(s.max_us)
        );
    }
    for server in &servers.concurrency {
        let _ = writeln!(
            md,
            "\nConcurrency of `{}`: {}",
            cell(&server.server),
            cell(&server.describe())
        );
    }
}

/// Text safe inside a Markdown table cell or list item: no pipes, no line breaks, no HTML.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn cells_cannot_break_the_table() {
        assert_eq!(cell("a|b\nc <script>"), "a\\|b c &lt;script&gt;");
    }
}
