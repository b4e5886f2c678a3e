//! `labrun compare baseline.json current.json`: a regression gate for CI.
//!
//! Both reports are read back from their JSON (the histograms from their lossless `hdr`
//! encoding, so percentiles are recomputed, not trusted). Every figure is shown with its
//! change; the figures named by `--max-regress` (or, without it, RTT p50 and p99,
//! throughput and errors) are gates, and a gate that regresses beyond its limit makes the
//! command exit 1. Reports of `--repeat` runs are compared run by run: a figure beyond its
//! limit is a regression only when the runs show it surely moved that far
//! (see [`super::noise`]).

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use super::saved::{SavedGroup, SavedReport};
use super::{Outcome, noise};
use crate::scenario::{LatencyView, Percentile};
use crate::units;

/// A latency must also grow by at least this much to count as a regression: a 20 µs round
/// trip becoming 30 µs is +50% and means nothing.
const LATENCY_NOISE_US: u64 = 100;

/// A figure a comparison can gate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// A latency percentile.
    Latency(LatencyView, Percentile),
    /// Messages per second (lower is worse).
    Throughput,
    /// Connection errors (more is worse), compared as a count.
    Errors,
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Figure::Latency(view, percentile) => write!(f, "{} {}", view.label(), percentile.label()),
            Figure::Throughput => f.write_str("throughput"),
            Figure::Errors => f.write_str("errors"),
        }
    }
}

/// `p99=10%`, `wait.p99=20%`, `throughput=5%`, `errors=0`: how far a figure may regress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Which figure.
    pub figure: Figure,
    /// For latency and throughput: the allowed relative change (0.1 = 10%); for errors:
    /// how many more errors are allowed.
    pub limit: f64,
}

impl FromStr for Tolerance {
    type Err = String;

    fn from_str(text: &str) -> Result<Tolerance, String> {
        let expected = "expected FIGURE=LIMIT, like p99=10%, wait.p99=20%, throughput=5% or errors=0";
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}`: {expected}"))?;
        let figure = match key.trim() {
            "throughput" | "msgs_per_sec" => Figure::Throughput,
            "errors" => Figure::Errors,
            other => {
                let (view, percentile) = other.split_once('.').unwrap_or(("rtt", other));
                let view = [
                    LatencyView::Connect,
                    LatencyView::Wait,
                    LatencyView::Rtt,
                    LatencyView::Fanout,
                ]
                .into_iter()
                .find(|v| v.label() == view)
                .ok_or_else(|| format!("`{text}`: unknown latency `{view}`; {expected}"))?;
                let percentile = percentile
                    .parse::<Percentile>()
                    .map_err(|why| format!("`{text}`: {why}; {expected}"))?;
                Figure::Latency(view, percentile)
            }
        };
        let value = value.trim();
        let limit = match figure {
            Figure::Errors => value.parse::<f64>().ok().filter(|n| *n >= 0.0),
            _ => value
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .filter(|n| *n >= 0.0)
                .map(|n| n / 100.0),
        }
        .ok_or_else(|| format!("`{text}`: invalid limit `{value}`; {expected}"))?;
        Ok(Tolerance { figure, limit })
    }
}

impl Tolerance {
    /// How far a latency or throughput whose baseline is `baseline` may move the worse way
    /// (in its own units) before it counts: the relative limit, and for a latency at least
    /// [`LATENCY_NOISE_US`].
    fn margin(&self, baseline: f64) -> f64 {
        match self.figure {
            Figure::Latency(..) => (baseline * self.limit).max(LATENCY_NOISE_US as f64),
            _ => baseline * self.limit,
        }
    }
}

/// The gates used when `--max-regress` is not given.
pub fn default_tolerances() -> Vec<Tolerance> {
    vec![
        // The median catches a server slower on every message, which the tail's own noise
        // can hide; the tail catches stalls the median never sees.
        Tolerance {
            figure: Figure::Latency(LatencyView::Rtt, Percentile::P50),
            limit: 0.10,
        },
        Tolerance {
            figure: Figure::Latency(LatencyView::Rtt, Percentile::P99),
            limit: 0.10,
        },
        Tolerance {
            figure: Figure::Throughput,
            limit: 0.05,
        },
        Tolerance {
            figure: Figure::Errors,
            limit: 0.0,
        },
    ]
}

/// A check that held in the baseline and fails in the current run: a regression whatever
/// the figures say.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Flip {
    /// The check.
    pub check: String,
    /// What the current run says of it.
    pub summary: String,
}

/// Every check that passed in `baseline` and failed in `current`, in the current run's order.
pub fn flips(baseline: &SavedReport, current: &SavedReport) -> Vec<Flip> {
    current
        .checks
        .iter()
        .filter(|c| !c.passed && baseline.checks.iter().any(|b| b.name == c.name && b.passed))
        .map(|c| Flip {
            check: c.name.clone(),
            summary: c.summary.clone(),
        })
        .collect()
}

/// Refuses two reports whose figures cannot be compared: another scenario, another load
/// (client groups as planned), other servers, one launched and one addressed, or another
/// shard. Their seeds may differ.
pub fn comparable(baseline: &SavedReport, current: &SavedReport) -> Result<(), String> {
    let (b, c) = (&baseline.scenario, &current.scenario);
    if b.name != c.name {
        return Err(format!(
            "they are of different scenarios (`{}` and `{}`)",
            b.name, c.name
        ));
    }
    if b.rest.get("groups") != c.rest.get("groups") {
        return Err(format!(
            "scenario `{}` ran a different load in each (its client groups differ: count, \
             messages, size, think, rate…): the figures would compare the loads",
            b.name
        ));
    }
    let servers = |report: &SavedReport| -> Vec<(String, bool)> {
        report
            .servers
            .iter()
            .map(|s| (s.name.clone(), s.addressed.is_some()))
            .collect()
    };
    if servers(baseline) != servers(current) {
        return Err(format!(
            "scenario `{}` tested other servers in each (their names, or one launched by labrun \
             and one addressed with --target)",
            b.name
        ));
    }
    if b.shard != c.shard {
        return Err(format!(
            "they are different shards of `{}` ({} and {}): merge each side's shards first",
            b.name,
            b.shard.as_deref().unwrap_or("whole"),
            c.shard.as_deref().unwrap_or("whole")
        ));
    }
    Ok(())
}

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: Figure,
    /// Its value in the baseline (the median of its runs), as text.
    pub baseline: String,
    /// The current value (the median of its runs), as text.
    pub current: String,
    /// Each run's value on each side (microseconds, messages per second, a count); a run
    /// without samples of the figure is left out.
    pub runs: (Vec<f64>, Vec<f64>),
    /// The change of the medians, as text.
    pub change: String,
    /// The gate on it, if any.
    pub limit: Option<Tolerance>,
    /// What the gate decided, when there is one.
    pub decision: Option<Decision>,
}

impl Row {
    /// Whether the gate failed.
    pub fn regressed(&self) -> bool {
        matches!(self.decision, Some(Decision::Regressed { .. }))
    }
}

/// What a gate made of its figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Within its limit.
    Held,
    /// Past its limit at the medians, but the runs do not show it moved that far: the
    /// machine's noise can explain it. `at_least` is how far it surely moved the worse way
    /// (99.5% confidence; negative: maybe not at all).
    Noise { at_least: f64 },
    /// Past its limit: with runs enough to tell, surely (`at_least` is how far, at least);
    /// with one run a side, on the limit alone.
    Regressed { at_least: Option<f64> },
}

/// The total figures of each run of a report: every run of a repeated scenario that was
/// measured to its end (not one interrupted or that could not start), else the one run.
fn runs_of(report: &SavedReport) -> Vec<&SavedGroup> {
    let measured: Vec<&SavedGroup> = report
        .repeats
        .iter()
        .filter(|run| matches!(run.outcome, Outcome::Pass | Outcome::Fail))
        .map(|run| &run.total)
        .collect();
    match measured.is_empty() {
        true => vec![&report.total],
        false => measured,
    }
}

/// How many runs of a report a comparison holds against the other side's.
pub fn run_count(report: &SavedReport) -> usize {
    runs_of(report).len()
}

/// Whether a figure regressed: its medians moved the worse way by more than `margin` (in
/// the figure's units) and, where the sides have runs enough to tell, the runs show it
/// surely moved more than that (see [`noise::shift_at_least`]).
fn decide(baseline: &[f64], current: &[f64], higher_is_worse: bool, margin: f64) -> Decision {
    let worse: fn(f64) -> f64 = if higher_is_worse { |v| v } else { |v| -v };
    let oriented = |values: &[f64]| -> Vec<f64> { values.iter().map(|v| worse(*v)).collect() };
    let (baseline, current) = (oriented(baseline), oriented(current));
    if baseline.is_empty() || current.is_empty() {
        return Decision::Held;
    }
    if noise::median(&current) - noise::median(&baseline) <= margin {
        return Decision::Held;
    }
    match noise::shift_at_least(&baseline, &current) {
        None => Decision::Regressed { at_least: None },
        Some(bound) if bound > margin => Decision::Regressed {
            at_least: Some(bound),
        },
        Some(bound) => Decision::Noise { at_least: bound },
    }
}

/// The median of `values`, when there are any.
fn middle(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| noise::median(values))
}

/// Compares every figure; returns the rows in display order.
pub fn compare(baseline: &SavedReport, current: &SavedReport, gates: &[Tolerance]) -> Vec<Row> {
    let gate = |figure| gates.iter().copied().find(|t| t.figure == figure);
    let (old_runs, new_runs) = (runs_of(baseline), runs_of(current));
    let mut rows = Vec::new();
    let views = [
        LatencyView::Connect,
        LatencyView::Wait,
        LatencyView::Rtt,
        LatencyView::Fanout,
    ];
    for view in views {
        let has_samples = |runs: &[&SavedGroup]| runs.iter().any(|g| g.latency.view(view).count() > 0);
        if !has_samples(&old_runs) && !has_samples(&new_runs) {
            continue;
        }
        // The usual points, and every point a gate names (p95, say), in order.
        let mut percentiles = vec![
            Percentile::P50,
            Percentile::P99,
            Percentile::P999,
            Percentile::Max,
        ];
        percentiles.extend(gates.iter().filter_map(|t| match t.figure {
            Figure::Latency(gated, percentile) if gated == view => Some(percentile),
            _ => None,
        }));
        percentiles.sort_by(|a, b| a.quantile().total_cmp(&b.quantile()));
        percentiles.dedup();
        for percentile in percentiles {
            let figure = Figure::Latency(view, percentile);
            let at = |runs: &[&SavedGroup]| -> Vec<f64> {
                runs.iter()
                    .filter_map(|g| g.latency.view(view).quantile(percentile.quantile()))
                    .map(|d| d.as_micros() as f64)
                    .collect()
            };
            rows.push(latency_row(figure, (at(&old_runs), at(&new_runs)), gate(figure)));
        }
    }
    let throughput =
        |runs: &[&SavedGroup]| -> Vec<f64> { runs.iter().map(|g| g.messages_per_second).collect() };
    let (old, new) = (throughput(&old_runs), throughput(&new_runs));
    let (old_median, new_median) = (noise::median(&old), noise::median(&new));
    let limit = gate(Figure::Throughput);
    rows.push(Row {
        figure: Figure::Throughput,
        baseline: format!("{old_median:.0} msgs/s"),
        current: format!("{new_median:.0} msgs/s"),
        change: relative(old_median, new_median),
        limit,
        decision: limit.map(|t| decide(&old, &new, false, t.margin(old_median))),
        runs: (old, new),
    });
    rows.push(errors_row(&old_runs, &new_runs, gate(Figure::Errors)));
    rows
}

/// Connection errors, as the mean count per run: a correct server has none in any run, so
/// errors are never put down to noise.
fn errors_row(old_runs: &[&SavedGroup], new_runs: &[&SavedGroup], limit: Option<Tolerance>) -> Row {
    let counts = |runs: &[&SavedGroup]| -> Vec<f64> {
        runs.iter()
            .map(|g| g.errors.values().fold(0u64, |sum, n| sum.saturating_add(*n)) as f64)
            .collect()
    };
    let (old, new) = (counts(old_runs), counts(new_runs));
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let (old_mean, new_mean) = (mean(&old), mean(&new));
    let shown = |value: f64, runs: usize| match runs {
        1 => units::count(value as u64),
        _ => format!("{value:.1} a run"),
    };
    Row {
        figure: Figure::Errors,
        baseline: shown(old_mean, old.len()),
        current: shown(new_mean, new.len()),
        change: match (old.len(), new.len()) {
            (1, 1) => format!("{:+}", new_mean as i64 - old_mean as i64),
            _ => format!("{:+.1}", new_mean - old_mean),
        },
        limit,
        decision: limit.map(|t| match new_mean > old_mean + t.limit {
            true => Decision::Regressed { at_least: None },
            false => Decision::Held,
        }),
        runs: (old, new),
    }
}

fn latency_row(figure: Figure, runs: (Vec<f64>, Vec<f64>), limit: Option<Tolerance>) -> Row {
    let (old, new) = (middle(&runs.0), middle(&runs.1));
    let shown = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |us| units::micros(us as u64));
    let decision = limit.map(|t| match (old, new) {
        (Some(o), Some(_)) => decide(&runs.0, &runs.1, true, t.margin(o)),
        // A figure the baseline had and the current run lost (no samples) is a regression.
        (Some(_), None) => Decision::Regressed { at_least: None },
        _ => Decision::Held,
    });
    Row {
        figure,
        baseline: shown(old),
        current: shown(new),
        change: match (old, new) {
            (Some(o), Some(n)) => relative(o, n),
            (None, Some(_)) => "new".to_owned(),
            (Some(_), None) => "lost".to_owned(),
            (None, None) => "no samples".to_owned(),
        },
        limit,
        decision,
        runs,
    }
}

fn relative(old: f64, new: f64) -> String {
    if old == 0.0 {
        return if new == 0.0 {
            "±0%".to_owned()
        } else {
            "new".to_owned()
        };
    }
    format!("{:+.1}%", (new - old) / old * 100.0)
}

/// ` (worse by ≥ 1.9 ms)`: how far a figure surely moved, in its units; nothing without
/// runs enough to tell.
fn surely(figure: Figure, at_least: Option<f64>) -> String {
    let Some(amount) = at_least.filter(|a| *a > 0.0) else {
        return String::new();
    };
    let amount = match figure {
        Figure::Latency(..) => units::micros(amount as u64),
        Figure::Throughput => format!("{amount:.0} msgs/s"),
        Figure::Errors => format!("{amount:.1}"),
    };
    format!(" (worse by ≥ {amount})")
}

/// Writes the checks that flipped, the comparison table and a verdict line.
pub fn render(
    baseline: &SavedReport,
    current: &SavedReport,
    flips: &[Flip],
    rows: &[Row],
    out: &mut impl Write,
) -> io::Result<()> {
    let side = |report: &SavedReport| match run_count(report) {
        1 => format!(
            "`{}` ({} messages)",
            report.scenario.name,
            units::count(report.total.messages)
        ),
        runs => format!("`{}` ({runs} runs)", report.scenario.name),
    };
    writeln!(out, "baseline {} → current {}", side(baseline), side(current))?;
    for flip in flips {
        writeln!(out, "FAILS NOW: {} ({})", flip.check, flip.summary)?;
    }
    let tested = noise::enough_runs(run_count(baseline), run_count(current));
    let mut table = Builder::default();
    table.push_record(["figure", "baseline", "current", "change", "limit", ""]);
    for row in rows {
        let limit = row.limit.map_or_else(String::new, |t| match t.figure {
            Figure::Errors => format!("+{}", t.limit),
            Figure::Throughput => format!("-{:.0}%", t.limit * 100.0),
            Figure::Latency(..) => format!("+{:.0}%", t.limit * 100.0),
        });
        let verdict = match row.decision {
            None => String::new(),
            Some(Decision::Held) => "ok".to_owned(),
            Some(Decision::Noise { .. }) => "noise".to_owned(),
            Some(Decision::Regressed { at_least }) => format!("REGRESSED{}", surely(row.figure, at_least)),
        };
        table.push_record([
            row.figure.to_string(),
            row.baseline.clone(),
            row.current.clone(),
            row.change.clone(),
            limit,
            verdict,
        ]);
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .modify(Columns::new(1..5), Alignment::right());
    writeln!(out, "{table}")?;
    if run_count(baseline) > 1 || run_count(current) > 1 {
        writeln!(out, "figures are the medians of each side's runs")?;
    }
    for (side, report) in [("baseline", baseline), ("current", current)] {
        if report.outcome == Outcome::Interrupted {
            writeln!(
                out,
                "note: the {side} report is of an interrupted run: its figures are partial"
            )?;
        }
    }
    for row in rows {
        if let Some(note) = slow_baseline_run(row) {
            writeln!(out, "{note}")?;
        }
    }
    if !tested {
        writeln!(
            out,
            "note: too few runs to tell a change from noise, so the limits alone decide; run \
             both sides with --repeat 5 for a comparison that does"
        )?;
    }
    write_verdict(flips, rows, out)
}

/// For a figure judged noise: a baseline run worse than the baseline's median by more than
/// the limit. At few runs the bound is the smallest difference, so one such run lets any
/// regression up to its size read as noise; say so, and what to do.
fn slow_baseline_run(row: &Row) -> Option<String> {
    let (Some(Decision::Noise { .. }), Some(limit)) = (row.decision, row.limit) else {
        return None;
    };
    let runs = &row.runs.0;
    let median = middle(runs)?;
    let higher_is_worse = !matches!(row.figure, Figure::Throughput);
    let (index, value) = runs.iter().copied().enumerate().max_by(|(_, a), (_, b)| {
        if higher_is_worse {
            a.total_cmp(b)
        } else {
            b.total_cmp(a)
        }
    })?;
    let worse_by = if higher_is_worse {
        value - median
    } else {
        median - value
    };
    let margin = limit.margin(median);
    (worse_by > margin).then(|| {
        let shown = |v: f64| match row.figure {
            Figure::Latency(..) => units::micros(v as u64),
            _ => format!("{v:.0}"),
        };
        format!(
            "note: baseline run {} has {} {} against a median of {}: beside it, a regression of \
             up to that size reads as noise; record the baseline again, or with more runs",
            index + 1,
            row.figure,
            shown(value),
            shown(median)
        )
    })
}

/// The last line: the regressions, else whatever moved but stayed within the noise.
fn write_verdict(flips: &[Flip], rows: &[Row], out: &mut impl Write) -> io::Result<()> {
    let regressed: Vec<String> = flips
        .iter()
        .map(|f| format!("check {} passed, fails now", f.check))
        .chain(rows.iter().filter_map(|r| match r.decision {
            Some(Decision::Regressed { at_least }) => {
                Some(format!("{} {}{}", r.figure, r.change, surely(r.figure, at_least)))
            }
            _ => None,
        }))
        .collect();
    let noisy: Vec<String> = rows
        .iter()
        .filter_map(|r| match r.decision {
            Some(Decision::Noise { .. }) => Some(format!("{} {}", r.figure, r.change)),
            _ => None,
        })
        .collect();
    if !regressed.is_empty() {
        writeln!(out, "REGRESSION: {}", regressed.join(", "))
    } else if !noisy.is_empty() {
        writeln!(
            out,
            "OK: no significant change ({} past the limit at the medians, but within the runs' noise)",
            noisy.join(", ")
        )
    } else {
        writeln!(out, "OK: no gated figure regressed beyond its limit")
    }
}

/// The comparison as JSON (`--json`), for a CI step to read: the checks that flipped, each
/// figure with its medians and each run's value (microseconds, messages per second, a
/// count), the gate's decision, and the verdict.
pub fn to_json(flips: &[Flip], rows: &[Row]) -> serde_json::Value {
    let figures: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let (decision, at_least) = match row.decision {
                None => (None, None),
                Some(Decision::Held) => (Some("held"), None),
                Some(Decision::Noise { at_least }) => (Some("noise"), Some(at_least)),
                Some(Decision::Regressed { at_least }) => (Some("regressed"), at_least),
            };
            serde_json::json!({
                "figure": row.figure.to_string(),
                "baseline": middle(&row.runs.0),
                "current": middle(&row.runs.1),
                "baseline_runs": row.runs.0,
                "current_runs": row.runs.1,
                "change": row.change,
                "gate": row.limit.map(|t| t.limit),
                "decision": decision,
                "worse_by_at_least": at_least,
                "regressed": row.regressed(),
            })
        })
        .collect();
    serde_json::json!({
        "flips": flips,
        "figures": figures,
        "regressed": regressed(flips, rows),
    })
}

/// Whether the current run regressed: a check flipped, or a gated figure went past its
/// limit (surely, where there were runs enough to tell).
pub fn regressed(flips: &[Flip], rows: &[Row]) -> bool {
    !flips.is_empty() || rows.iter().any(Row::regressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_past_the_limit_regresses_only_when_the_runs_show_it() {
        let steady = [100.0, 101.0, 99.0, 100.0, 102.0];
        let slower = [150.0, 151.0, 149.0, 152.0, 150.0];
        let overlapping = [60.0, 200.0, 95.0, 210.0, 205.0];
        assert_eq!(decide(&steady, &slower, true, 60.0), Decision::Held);
        // Every slower run is at least 47 above every steady one.
        assert_eq!(
            decide(&steady, &slower, true, 10.0),
            Decision::Regressed { at_least: Some(47.0) }
        );
        // Past the margin at the medians, not surely: noise.
        assert!(matches!(
            decide(&steady, &overlapping, true, 10.0),
            Decision::Noise { .. }
        ));
        // Sure, but by less than the margin: noise too.
        assert!(matches!(
            decide(&steady, &slower, true, 48.0),
            Decision::Noise { .. }
        ));
        // Throughput: lower is worse.
        assert!(matches!(
            decide(&slower, &steady, false, 10.0),
            Decision::Regressed { at_least: Some(_) }
        ));
        assert_eq!(decide(&steady, &slower, false, 10.0), Decision::Held);
        // One run a side cannot be told from noise: the limit alone decides, as before.
        assert_eq!(
            decide(&[100.0], &[150.0], true, 10.0),
            Decision::Regressed { at_least: None }
        );
    }

    #[test]
    fn tolerances_parse_with_helpful_errors() {
        let t: Tolerance = "p99=10%".parse().unwrap();
        assert_eq!(t.figure, Figure::Latency(LatencyView::Rtt, Percentile::P99));
        assert!((t.limit - 0.1).abs() < 1e-9);
        let t: Tolerance = "wait.max=25%".parse().unwrap();
        assert_eq!(t.figure, Figure::Latency(LatencyView::Wait, Percentile::Max));
        assert_eq!("errors=2".parse::<Tolerance>().unwrap().limit, 2.0);
        assert!(
            "p99"
                .parse::<Tolerance>()
                .unwrap_err()
                .contains("expected FIGURE=LIMIT")
        );
        assert_eq!(
            "p95=5%".parse::<Tolerance>().unwrap().figure,
            Figure::Latency(LatencyView::Rtt, Percentile::At(95_000))
        );
        assert!(
            "p100=5%"
                .parse::<Tolerance>()
                .unwrap_err()
                .contains("`p100` is not a percentile")
        );
        assert!(
            "throughput=fast"
                .parse::<Tolerance>()
                .unwrap_err()
                .contains("invalid limit")
        );
    }
}
