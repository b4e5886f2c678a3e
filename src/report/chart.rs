//! ASCII histograms of latency distributions, alone or side by side.
//!
//! Buckets are spaced logarithmically between the smallest and largest sample, because
//! latency spans orders of magnitude: an iterative server's waits run from microseconds for
//! the first client to seconds for the last, and a linear scale would show one bar.

use crate::histogram::Latency;
use crate::units;

const BUCKETS: usize = 12;
const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// One line per non-empty bucket: range, bar, count and share, bars at most `bar_width` wide.
pub fn histogram_lines(latency: &Latency, bar_width: usize) -> Vec<String> {
    let histogram = latency.histogram();
    if histogram.is_empty() {
        return vec!["(no samples)".to_owned()];
    }
    let edges = bucket_edges(histogram.min().max(1), histogram.max().max(1));
    let counts = bucket_counts(latency, &edges);
    let tallest = counts.iter().copied().max().unwrap_or(1).max(1);
    let total = histogram.len() as f64;
    let labels = range_labels(&edges);
    counts
        .iter()
        .zip(&labels)
        .filter(|(count, _)| **count > 0)
        .map(|(&count, label)| {
            format!(
                "{label} │{} {} ({:.1}%)",
                bar(count, tallest, bar_width),
                units::count(count),
                100.0 * count as f64 / total
            )
        })
        .collect()
}

/// Several distributions on one scale: one line per bucket that any of them fills, the
/// range once on the left, then for each distribution a bar (scaled to its own tallest
/// bucket) and its share. Sharing the buckets is what makes the columns comparable: an
/// iterative server's waits sit rows below a concurrent server's.
pub fn comparison_lines(latencies: &[&Latency], bar_width: usize) -> Vec<String> {
    let filled: Vec<&Latency> = latencies.iter().copied().filter(|l| l.count() > 0).collect();
    let (Some(low), Some(high)) = (
        filled.iter().map(|l| l.histogram().min().max(1)).min(),
        filled.iter().map(|l| l.histogram().max().max(1)).max(),
    ) else {
        return vec!["(no samples)".to_owned()];
    };
    let edges = bucket_edges(low, high);
    let columns: Vec<Vec<u64>> = latencies.iter().map(|l| bucket_counts(l, &edges)).collect();
    range_labels(&edges)
        .into_iter()
        .enumerate()
        .filter(|(bucket, _)| columns.iter().any(|counts| counts[*bucket] > 0))
        .map(|(bucket, label)| {
            let mut line = label;
            for (counts, latency) in columns.iter().zip(latencies) {
                let count = counts[bucket];
                let tallest = counts.iter().copied().max().unwrap_or(1).max(1);
                let cell = match count {
                    0 => String::new(),
                    n => bar(n, tallest, bar_width),
                };
                let share = match count {
                    0 => "     ".to_owned(),
                    n => format!("{:>4.0}%", 100.0 * n as f64 / latency.count().max(1) as f64),
                };
                line.push_str(&format!(" │{cell:<bar_width$} {share}"));
            }
            line
        })
        .collect()
}

/// The histogram's logarithmic buckets as `(from_us, to_us, samples)`, empty ones included;
/// for renderers other than the terminal's (the HTML report's SVG).
pub fn buckets(latency: &Latency) -> Vec<(u64, u64, u64)> {
    let histogram = latency.histogram();
    if histogram.is_empty() {
        return Vec::new();
    }
    let edges = bucket_edges(histogram.min().max(1), histogram.max().max(1));
    let counts = bucket_counts(latency, &edges);
    edges
        .windows(2)
        .zip(counts)
        .map(|(w, n)| (w[0], w[1], n))
        .collect()
}

/// Samples per bucket; bucket `i` holds values in `(edges[i], edges[i + 1]]`.
fn bucket_counts(latency: &Latency, edges: &[u64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() - 1];
    for step in latency.histogram().iter_recorded() {
        let value = step.value_iterated_to();
        let bucket = edges[1..]
            .iter()
            .position(|&edge| value <= edge)
            .unwrap_or(counts.len() - 1);
        counts[bucket] += step.count_at_value();
    }
    counts
}

/// `from – to` for each bucket, right-aligned so the bars line up.
fn range_labels(edges: &[u64]) -> Vec<String> {
    let labels: Vec<(String, String)> = edges
        .windows(2)
        .map(|w| (units::micros(w[0]), units::micros(w[1])))
        .collect();
    let from_width = labels.iter().map(|(a, _)| a.chars().count()).max().unwrap_or(0);
    let to_width = labels.iter().map(|(_, b)| b.chars().count()).max().unwrap_or(0);
    labels
        .into_iter()
        .map(|(from, to)| format!("{from:>from_width$} – {to:>to_width$}"))
        .collect()
}

/// Space between columns set side by side.
const GAP: usize = 4;
/// What a histogram line needs besides its bar: range, separator, count and share.
const HISTOGRAM_TEXT_WIDTH: usize = 40;
/// Bars never get shorter than this; below it, histograms are stacked instead.
const MIN_BAR_WIDTH: usize = 10;

/// The bar width that fits `columns` histograms side by side in `width` terminal columns,
/// or `None` when they do not fit and should be stacked.
pub fn side_by_side_bar_width(width: usize, columns: usize) -> Option<usize> {
    let per_column = width.saturating_sub(2 + GAP * columns.saturating_sub(1)) / columns.max(1);
    let bar = per_column.saturating_sub(HISTOGRAM_TEXT_WIDTH);
    (bar >= MIN_BAR_WIDTH).then_some(bar.min(40))
}

/// Lays titled blocks of lines next to each other, each padded to its widest line.
pub fn side_by_side(blocks: &[(String, Vec<String>)]) -> Vec<String> {
    let widths: Vec<usize> = blocks
        .iter()
        .map(|(title, lines)| {
            lines
                .iter()
                .chain(std::iter::once(title))
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let rows = blocks.iter().map(|(_, lines)| lines.len() + 1).max().unwrap_or(0);
    (0..rows)
        .map(|row| {
            let mut line = String::new();
            for ((title, lines), width) in blocks.iter().zip(&widths) {
                let cell = match row {
                    0 => title.as_str(),
                    n => lines.get(n - 1).map_or("", String::as_str),
                };
                if !line.is_empty() {
                    line.push_str(&" ".repeat(GAP));
                }
                line.push_str(cell);
                line.push_str(&" ".repeat(width - cell.chars().count()));
            }
            line.trim_end().to_owned()
        })
        .collect()
}

fn bucket_edges(low: u64, high: u64) -> Vec<u64> {
    if low >= high {
        return vec![low.saturating_sub(1), high];
    }
    let ratio = (high as f64 / low as f64).powf(1.0 / BUCKETS as f64);
    let mut edges = vec![low.saturating_sub(1)];
    for i in 1..BUCKETS {
        let edge = (low as f64 * ratio.powi(i as i32)).round() as u64;
        if edge > *edges.last().expect("edges start non-empty") && edge < high {
            edges.push(edge);
        }
    }
    edges.push(high);
    edges
}

fn bar(count: u64, tallest: u64, width: usize) -> String {
    let eighths = (count as f64 / tallest as f64 * (width * 8) as f64).round() as usize;
    let eighths = eighths.max(1);
    let mut bar = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        bar.push(EIGHTHS[eighths % 8]);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_sample_once_and_scales_bars() {
        let mut latency = Latency::default();
        for v in [10, 10, 10, 11, 50, 900, 1_000, 20_000] {
            latency.record_us(v);
        }
        let lines = histogram_lines(&latency, 20);
        let counted: u64 = lines
            .iter()
            .map(|l| l.split_whitespace().rev().nth(1).unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(counted, 8);
        assert!(lines[0].contains(&"█".repeat(20)), "{lines:#?}");
    }

    #[test]
    fn blocks_line_up_side_by_side() {
        let left = ("wait".to_owned(), vec!["a".to_owned(), "bbb".to_owned()]);
        let right = ("rtt".to_owned(), vec!["cc".to_owned()]);
        assert_eq!(
            side_by_side(&[left, right]),
            vec!["wait    rtt", "a       cc", "bbb"]
        );
        assert_eq!(side_by_side_bar_width(110, 2), Some(12));
        assert_eq!(side_by_side_bar_width(70, 2), None);
    }

    #[test]
    fn comparisons_share_their_buckets() {
        let (mut fast, mut slow) = (Latency::default(), Latency::default());
        [10, 12, 11].iter().for_each(|&v| fast.record_us(v));
        [5_000, 9_000].iter().for_each(|&v| slow.record_us(v));
        let lines = comparison_lines(&[&fast, &slow], 8);
        // The fast samples fill only top rows, the slow only bottom ones.
        let cells = |line: &str| {
            line.split('│')
                .skip(1)
                .map(|c| c.contains('█'))
                .collect::<Vec<_>>()
        };
        assert_eq!(cells(&lines[0]), vec![true, false], "{lines:#?}");
        assert_eq!(cells(lines.last().unwrap()), vec![false, true], "{lines:#?}");
        let shares: f64 = lines
            .iter()
            .filter_map(|l| {
                l.split('│')
                    .nth(1)?
                    .split_whitespace()
                    .last()?
                    .strip_suffix('%')?
                    .parse::<f64>()
                    .ok()
            })
            .sum();
        assert!((shares - 100.0).abs() < 1.5, "{lines:#?}");
    }

    #[test]
    fn a_single_value_makes_one_bucket() {
        let mut latency = Latency::default();
        latency.record_us(42);
        assert_eq!(histogram_lines(&latency, 10).len(), 1);
    }
}
