//! `labrun compare baseline.json current.json`: a regression gate for CI.
//!
//! Both reports are read back from their JSON (the histograms from their lossless `hdr`
//! encoding, so percentiles are recomputed, not trusted). Every figure is shown with its
//! change; the figures named by `--max-regress` (or, without it, RTT p99, throughput and
//! errors) are gates, and a gate that regresses beyond its limit makes the command exit 1.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Alignment, Style};

use super::saved::SavedReport;
use crate::histogram::Latency;
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

/// The gates used when `--max-regress` is not given.
pub fn default_tolerances() -> Vec<Tolerance> {
    vec![
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

/// One row of the comparison.
#[derive(Debug, Clone)]
pub struct Row {
    pub figure: Figure,
    /// Its value in each report, as text.
    pub baseline: String,
    /// The current value, as text.
    pub current: String,
    /// The values as numbers (microseconds, messages per second, a count); `None` where
    /// the run had no samples of it.
    pub values: (Option<f64>, Option<f64>),
    /// The change, as text.
    pub change: String,
    /// The gate on it, if any.
    pub limit: Option<Tolerance>,
    /// Whether the gate failed.
    pub regressed: bool,
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

/// Compares every figure; returns the rows in display order.
pub fn compare(baseline: &SavedReport, current: &SavedReport, gates: &[Tolerance]) -> Vec<Row> {
    let gate = |figure| gates.iter().copied().find(|t| t.figure == figure);
    let mut rows = Vec::new();
    let views = [
        LatencyView::Connect,
        LatencyView::Wait,
        LatencyView::Rtt,
        LatencyView::Fanout,
    ];
    for view in views {
        let (old, new) = (
            baseline.total.latency.view(view),
            current.total.latency.view(view),
        );
        if old.count() == 0 && new.count() == 0 {
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
            rows.push(latency_row(figure, old, new, percentile, gate(figure)));
        }
    }
    let (old, new) = (
        baseline.total.messages_per_second,
        current.total.messages_per_second,
    );
    let limit = gate(Figure::Throughput);
    rows.push(Row {
        figure: Figure::Throughput,
        baseline: format!("{old:.0} msgs/s"),
        current: format!("{new:.0} msgs/s"),
        values: (Some(old), Some(new)),
        change: relative(old, new),
        limit,
        regressed: limit.is_some_and(|t| new < old * (1.0 - t.limit)),
    });
    let (old, new) = (
        baseline.total.errors.values().sum::<u64>(),
        current.total.errors.values().sum::<u64>(),
    );
    let limit = gate(Figure::Errors);
    rows.push(Row {
        figure: Figure::Errors,
        baseline: units::count(old),
        current: units::count(new),
        values: (Some(old as f64), Some(new as f64)),
        change: format!("{:+}", new as i64 - old as i64),
        limit,
        regressed: limit.is_some_and(|t| new as f64 > old as f64 + t.limit),
    });
    rows
}

fn latency_row(
    figure: Figure,
    old: &Latency,
    new: &Latency,
    percentile: Percentile,
    limit: Option<Tolerance>,
) -> Row {
    let at = |l: &Latency| l.quantile(percentile.quantile()).map(|d| d.as_micros() as u64);
    let (old_us, new_us) = (at(old), at(new));
    let shown = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), units::micros);
    let regressed = match (limit, old_us, new_us) {
        (Some(t), Some(o), Some(n)) => {
            n as f64 > o as f64 * (1.0 + t.limit) && n.saturating_sub(o) > LATENCY_NOISE_US
        }
        // A figure the baseline had and the current run lost (no samples) is a regression.
        (Some(_), Some(_), None) => true,
        _ => false,
    };
    Row {
        figure,
        baseline: shown(old_us),
        current: shown(new_us),
        values: (old_us.map(|v| v as f64), new_us.map(|v| v as f64)),
        change: match (old_us, new_us) {
            (Some(o), Some(n)) => relative(o as f64, n as f64),
            (None, Some(_)) => "new".to_owned(),
            (Some(_), None) => "lost".to_owned(),
            (None, None) => "no samples".to_owned(),
        },
        limit,
        regressed,
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

/// Writes the checks that flipped, the comparison table and a verdict line.
pub fn render(
    baseline: &SavedReport,
    current: &SavedReport,
    flips: &[Flip],
    rows: &[Row],
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(
        out,
        "baseline `{}` ({} messages) → current `{}` ({} messages)",
        baseline.scenario.name,
        units::count(baseline.total.messages),
        current.scenario.name,
        units::count(current.total.messages)
    )?;
    for flip in flips {
        writeln!(out, "FAILS NOW: {} ({})", flip.check, flip.summary)?;
    }
    let mut table = Builder::default();
    table.push_record(["figure", "baseline", "current", "change", "limit", ""]);
    for row in rows {
        let limit = row.limit.map_or_else(String::new, |t| match t.figure {
            Figure::Errors => format!("+{}", t.limit),
            Figure::Throughput => format!("-{:.0}%", t.limit * 100.0),
            Figure::Latency(..) => format!("+{:.0}%", t.limit * 100.0),
        });
        let verdict = match (row.limit, row.regressed) {
            (None, _) => "",
            (Some(_), false) => "ok",
            (Some(_), true) => "REGRESSED",
        };
        table.push_record([
            row.figure.to_string(),
            row.baseline.clone(),
            row.current.clone(),
            row.change.clone(),
            limit,
            verdict.to_owned(),
        ]);
    }
    let mut table = table.build();
    table
        .with(Style::rounded())
        .modify(Columns::new(1..5), Alignment::right());
    writeln!(out, "{table}")?;
    let regressed: Vec<String> = flips
        .iter()
        .map(|f| format!("check {} passed, fails now", f.check))
        .chain(
            rows.iter()
                .filter(|r| r.regressed)
                .map(|r| format!("{} {}", r.figure, r.change)),
        )
        .collect();
    if regressed.is_empty() {
        writeln!(out, "OK: no gated figure regressed beyond its limit")?;
    } else {
        writeln!(out, "REGRESSION: {}", regressed.join(", "))?;
    }
    Ok(())
}

/// The comparison as JSON (`--json`), for a CI step to read: the checks that flipped, each
/// figure with its values (microseconds, messages per second, a count), and the verdict.
pub fn to_json(flips: &[Flip], rows: &[Row]) -> serde_json::Value {
    let figures: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            serde_json::json!({
                "figure": row.figure.to_string(),
                "baseline": row.values.0,
                "current": row.values.1,
                "change": row.change,
                "gate": row.limit.map(|t| t.limit),
                "regressed": row.regressed,
            })
        })
        .collect();
    serde_json::json!({
        "flips": flips,
        "figures": figures,
        "regressed": regressed(flips, rows),
    })
}

/// Whether the current run regressed: a check flipped, or a gated figure went past its limit.
pub fn regressed(flips: &[Flip], rows: &[Row]) -> bool {
    !flips.is_empty() || rows.iter().any(|r| r.regressed)
}

#[cfg(test)]
mod tests {
    use super::*;

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
