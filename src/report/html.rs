//! The HTML report: one self-contained file (inline CSS and SVG, nothing fetched) with the
//! verdict, every check, the figures, latency histograms and percentile curves, the client
//! timeline and the findings. It is a rendering of the [`Report`] only, like every other
//! format; every piece of text goes through [`escape`].

use std::fmt::Write;

use super::programs::ProgramReport;
use super::{ClientSpan, Outcome, Report, ServersReport, Tested, chart, escape_markup as escape};
use crate::histogram::Latency;
use crate::units;
use crate::verify::Check;

/// Client rows drawn in the timeline; beyond it, evenly spaced clients stand for the rest.
const TIMELINE_ROWS: usize = 120;
const CHART_WIDTH: f64 = 520.0;
const CHART_HEIGHT: f64 = 180.0;

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;background:#fff}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde1e8;padding-bottom:4px}\
.pass{color:#14752f}.fail{color:#b3261e}.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}\
.badge.pass{background:#1f8a3b}.badge.fail{background:#c62828}table{border-collapse:collapse;margin:6px 0}\
td,th{border:1px solid #dde1e8;padding:4px 8px;text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}\
th{background:#f3f5f8}.charts{display:flex;flex-wrap:wrap;gap:18px}figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}\
svg text{font:11px system-ui,sans-serif;fill:#454c5a}.finding{margin:8px 0;padding:6px 10px;border-left:4px solid #c62828;background:#fdf3f2}\
.hint{color:#5b6270;font-style:italic}pre{margin:4px 0;white-space:pre-wrap;font-size:12px}";

/// Renders the report as one HTML document.
pub fn render(report: &Report) -> Vec<u8> {
    let plan = &report.scenario;
    let mut html = String::with_capacity(64 * 1024);
    let badge = report.outcome.word();
    let class = match report.outcome {
        Outcome::Pass => "pass",
        Outcome::Fail | Outcome::Error | Outcome::Interrupted => "fail",
    };
    let passed = report.checks.iter().filter(|c| c.passed).count();
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>labrun: {}</title><style>{STYLE}</style></head><body>",
        escape(&plan.name)
    );
    let _ = write!(
        html,
        "<h1>{} <span class=\"badge {class}\">{badge}</span></h1><p>{}</p><p>{passed} of {} checks passed · {} · started {} · labrun {}</p>",
        escape(&plan.name),
        escape(plan.description.as_deref().unwrap_or("")),
        report.checks.len(),
        units::micros((report.duration_ms * 1000.0) as u64),
        escape(&report.started_at),
        escape(report.labrun_version)
    );
    if let Some(error) = &report.error {
        write_repeats(report, &mut html);
        let _ = writeln!(
            html,
            "<h2>Could not run</h2><p>Nothing was judged.</p><pre>{}</pre></body></html>",
            escape(error)
        );
        return html.into_bytes();
    }
    html.push_str("<h2>Checks</h2><table><tr><th>check</th><th>result</th><th>details</th></tr>");
    for check in &report.checks {
        let (mark, class) = if check.passed {
            ("PASS", "pass")
        } else {
            ("FAIL", "fail")
        };
        let _ = write!(
            html,
            "<tr><td>{}</td><td class=\"{class}\"><b>{mark}</b></td><td>{}</td></tr>",
            escape(&check.name),
            escape(&check.summary)
        );
    }
    html.push_str("</table>");
    write_repeats(report, &mut html);
    match &report.tested {
        Tested::Servers(servers) => {
            write_figures(servers, &mut html);
            write_charts(servers, &mut html);
            write_timeline(servers, &mut html);
        }
        Tested::ClientPrograms(programs) => write_programs(programs, &report.checks, &mut html),
    }
    write_findings(report, &mut html);
    html.push_str("</body></html>\n");
    html.into_bytes()
}

/// The table of a repeated scenario's runs (`--repeat`), if it was repeated.
fn write_repeats(report: &Report, html: &mut String) {
    if report.repeats.is_empty() {
        return;
    }
    let (titles, rows) = super::repeats::table(report);
    let _ = write!(
        html,
        "<h2>{} runs</h2><p>The figures below are run {}'s, the first that went worst; a check \
         fails when it failed in any run.</p><table><tr>",
        report.repeats.len(),
        super::repeats::shown_run(report)
    );
    for title in titles {
        let _ = write!(html, "<th>{title}</th>");
    }
    html.push_str("</tr>");
    for row in rows {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
}

/// One row per client program under test, then each one's last output.
fn write_programs(programs: &[ProgramReport], checks: &[Check], html: &mut String) {
    html.push_str("<h2>Client programs</h2><table><tr>");
    for title in super::programs::SUMMARY_TITLES {
        let _ = write!(html, "<th>{title}</th>");
    }
    html.push_str("</tr>");
    for program in programs {
        html.push_str("<tr>");
        for cell in program.summary_cells(programs, checks) {
            let _ = write!(html, "<td>{}</td>", escape(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    for program in programs {
        let _ = write!(
            html,
            "<p><b>{}</b> stdout:</p><pre>{}</pre><p>stderr:</p><pre>{}</pre>",
            escape(&program.name),
            escape(&program.stdout_tail),
            escape(&program.stderr_tail)
        );
    }
}

fn write_figures(servers: &ServersReport, html: &mut String) {
    html.push_str("<h2>Figures</h2><table><tr><th>group</th><th>server</th><th>clients</th><th>done</th><th>messages</th><th>sent</th><th>received</th><th>errors</th><th>msgs/s</th></tr>");
    for group in servers
        .groups
        .iter()
        .chain((servers.groups.len() > 1).then_some(&servers.total))
    {
        let cells = group.summary_cells();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td>",
            escape(&cells[0]),
            escape(&cells[1])
        );
        for cell in &cells[2..] {
            let _ = write!(html, "<td class=\"n\">{cell}</td>");
        }
        html.push_str("</tr>");
    }
    html.push_str("</table><table><tr><th>latency</th><th>count</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    for (name, latency) in servers.total.latency.named() {
        if latency.count() == 0 {
            continue;
        }
        let s = latency.summary();
        let _ = write!(
            html,
            "<tr><td>{name}</td><td class=\"n\">{}</td>",
            units::count(s.count)
        );
        for value in [s.min_us, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us] {
            let _ = write!(html, "<td class=\"n\">{}</td>", units::micros(value));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    for server in &servers.concurrency {
        let _ = write!(
            html,
            "<p><b>Concurrency of {}:</b> {}</p>",
            escape(&server.server),
            escape(&server.describe())
        );
    }
}

/// A histogram (log buckets) and a percentile curve for every distribution with samples.
fn write_charts(servers: &ServersReport, html: &mut String) {
    let views: Vec<(&str, &Latency)> = servers
        .total
        .latency
        .named()
        .into_iter()
        .filter(|(_, l)| l.count() > 0)
        .collect();
    if views.is_empty() {
        return;
    }
    html.push_str("<h2>Latency</h2><div class=\"charts\">");
    for (name, latency) in &views {
        let _ = write!(
            html,
            "<figure><figcaption>{name}: histogram</figcaption>{}</figure>",
            histogram_svg(latency)
        );
    }
    let _ = write!(
        html,
        "<figure><figcaption>percentiles</figcaption>{}</figure></div>",
        percentile_svg(&views)
    );
}

fn histogram_svg(latency: &Latency) -> String {
    let buckets = chart::buckets(latency);
    let tallest = buckets.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64;
    let (left, bottom) = (40.0, 34.0);
    let plot_height = CHART_HEIGHT - bottom - 8.0;
    let slot = (CHART_WIDTH - left) / buckets.len().max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" role=\"img\">"
    );
    for (i, (from, to, count)) in buckets.iter().enumerate() {
        let height = plot_height * *count as f64 / tallest;
        let x = left + i as f64 * slot;
        let y = 8.0 + plot_height - height;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"#3b6fd6\"><title>{} – {}: {}</title></rect>",
            (slot - 2.0).max(1.0),
            units::micros(*from),
            units::micros(*to),
            units::count(*count)
        );
        if i % 2 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                CHART_HEIGHT - bottom + 14.0,
                units::micros(*to)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"16\">{}</text><line x1=\"{left}\" y1=\"{:.1}\" x2=\"{CHART_WIDTH}\" y2=\"{:.1}\" stroke=\"#888\"/></svg>",
        units::count(tallest as u64),
        8.0 + plot_height,
        8.0 + plot_height
    );
    svg
}

/// Latency against percentile, both on log scales (the x axis by 1/(1−q), as HdrHistogram
/// plots do), one line per distribution.
fn percentile_svg(views: &[(&str, &Latency)]) -> String {
    const QUANTILES: [f64; 9] = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1.0];
    const COLORS: [&str; 4] = ["#3b6fd6", "#d6793b", "#2e9e5b", "#9b3bd6"];
    let (left, bottom, right) = (60.0, 30.0, 12.0);
    let plot_width = CHART_WIDTH - left - right;
    let plot_height = CHART_HEIGHT - bottom - 8.0;
    let x_of = |q: f64| {
        let depth = (1.0 / (1.0 - q.min(0.99999))).log10() / 5.0;
        left + plot_width * depth
    };
    let values: Vec<Vec<f64>> = views
        .iter()
        .map(|(_, l)| {
            QUANTILES
                .iter()
                .map(|&q| l.quantile(q).map_or(1.0, |d| (d.as_micros() as f64).max(1.0)))
                .collect()
        })
        .collect();
    let low = values
        .iter()
        .flatten()
        .copied()
        .fold(f64::MAX, f64::min)
        .log10()
        .floor();
    let high = values
        .iter()
        .flatten()
        .copied()
        .fold(1.0, f64::max)
        .log10()
        .ceil()
        .max(low + 1.0);
    let y_of = |us: f64| 8.0 + plot_height * (1.0 - (us.log10() - low) / (high - low));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" role=\"img\">"
    );
    for decade in (low as i32)..=(high as i32) {
        let y = y_of(10f64.powi(decade));
        let _ = write!(
            svg,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#e3e6eb\"/><text x=\"4\" y=\"{:.1}\">{}</text>",
            CHART_WIDTH - right,
            y + 4.0,
            units::micros(10u64.pow(decade.max(0) as u32))
        );
    }
    for (label, q) in [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("p99.99", 0.9999),
    ] {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            x_of(q) - 10.0,
            CHART_HEIGHT - 10.0
        );
    }
    for (i, ((name, _), series)) in views.iter().zip(&values).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = QUANTILES
            .iter()
            .zip(series)
            .map(|(&q, &us)| format!("{:.1},{:.1}", x_of(q), y_of(us)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" style=\"fill:{color}\">{name}</text>",
            points.join(" "),
            left + 6.0 + 70.0 * i as f64,
            20.0
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One row per client: connecting, waiting for the first reply, being served.
fn write_timeline(servers: &ServersReport, html: &mut String) {
    let spans: Vec<&ClientSpan> = servers
        .timeline
        .shown
        .iter()
        .filter(|s| s.connect_start_ms.is_some())
        .collect();
    if spans.is_empty() {
        return;
    }
    let step = spans.len().div_ceil(TIMELINE_ROWS).max(1);
    let rows: Vec<&ClientSpan> = spans.iter().step_by(step).copied().collect();
    let start = spans
        .iter()
        .filter_map(|s| s.connect_start_ms)
        .fold(f64::MAX, f64::min);
    let end = spans
        .iter()
        .filter_map(|s| s.closed_ms.or(s.last_reply_ms))
        .fold(start + 0.001, f64::max);
    let (label_width, row_height, width) = (120.0, 12.0, 1000.0);
    let plot = width - label_width - 10.0;
    let x_of = |ms: f64| label_width + plot * (ms - start) / (end - start);
    let height = rows.len() as f64 * row_height + 30.0;
    let _ = write!(
        html,
        "<h2>Timeline</h2><p>{} of {} clients; light: waiting for the first reply, dark: being served, red: failed. 0 to {}.</p>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\">",
        rows.len(),
        servers.timeline.clients,
        units::micros(((end - start) * 1000.0) as u64)
    );
    for (i, span) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * row_height;
        let _ = write!(
            html,
            "<text x=\"0\" y=\"{:.1}\">{}</text>",
            y + 9.0,
            escape(&span.client)
        );
        let left = span.closed_ms.or(span.last_reply_ms).unwrap_or(end);
        if let Some(connected) = span.connected_ms {
            let waited_until = span.first_reply_ms.unwrap_or(left);
            let _ = write!(
                html,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"9\" fill=\"#c9d8f5\"/>",
                x_of(connected),
                (x_of(waited_until) - x_of(connected)).max(0.5)
            );
        }
        if let (Some(first), Some(last)) = (span.first_reply_ms, span.last_reply_ms) {
            let _ = write!(
                html,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"9\" fill=\"#2f5fc4\"/>",
                x_of(first),
                (x_of(last) - x_of(first)).max(1.0)
            );
        }
        if matches!(span.end, "failed" | "echo-fault" | "chat-fault") {
            let _ = write!(
                html,
                "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"3\" height=\"9\" fill=\"#c62828\"/>",
                x_of(left)
            );
        }
    }
    html.push_str("</svg>");
}

fn write_findings(report: &Report, html: &mut String) {
    if report.findings.is_empty() {
        return;
    }
    let _ = write!(html, "<h2>Findings ({})</h2>", report.findings.len());
    for finding in report.findings.iter().take(200) {
        let place = finding
            .client
            .as_ref()
            .map(|c| format!("<b>{}</b>: ", escape(c)))
            .unwrap_or_default();
        let _ = write!(
            html,
            "<div class=\"finding\">{place}<pre>{}</pre><div class=\"hint\">hint: {}</div></div>",
            escape(&finding.text),
            escape(finding.hint)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn text_cannot_become_markup() {
        assert_eq!(
            escape("<script>alert('x')</script>&"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"
        );
    }
}
