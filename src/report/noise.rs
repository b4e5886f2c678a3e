//! Telling a change from the machine's noise: a distribution-free lower confidence bound on
//! how far a figure moved between two sides' runs (the one Mann–Whitney's rank test gives).
//!
//! Two single runs of a correct server on a busy 2-core CI machine can differ by +200% at
//! RTT p99, so no margin makes one-run-per-side comparisons both quiet and sensitive. With
//! several runs per side, a figure counts as regressed only when, with 99.5% confidence,
//! it moved by more than the user's margin: the bound is the k-th smallest of all the
//! differences between a current run and a baseline run, k chosen so that runs that differ
//! only by noise put it that high less than 0.5% of the time. At five runs a side the
//! bound is the smallest difference (every current run worse than every baseline run by
//! more than the margin). The rank test assumes nothing about the shape of the noise, which
//! for latency percentiles is anything but normal; a comparison gates a handful of
//! figures, so the chance that any of them raises a false alarm stays near 1%.

/// The chance, for runs that differ only by noise, that the bound still lands above the
/// true shift: one gate's false-alarm rate at a margin of zero (lower with any margin).
const FALSE_ALARM: f64 = 0.005;

/// Up to this many pairs of runs (baseline runs × current runs), the rank statistic's
/// distribution is counted exactly; beyond it, its normal approximation is used.
const EXACT_PAIRS: usize = 2500;

/// How far `current` sits above `baseline` at least, with 99.5% confidence: the k-th
/// smallest difference `current[j] - baseline[i]`. `None` when the sides have too few
/// runs for any bound at that confidence (fewer than five a side, roughly).
pub fn shift_at_least(baseline: &[f64], current: &[f64]) -> Option<f64> {
    let rank = bound_rank(baseline.len(), current.len())?;
    let mut differences: Vec<f64> = current
        .iter()
        .flat_map(|c| baseline.iter().map(move |b| c - b))
        .collect();
    differences.sort_by(f64::total_cmp);
    differences.get(rank - 1).copied()
}

/// Whether sides of these sizes have runs enough for [`shift_at_least`] to give a bound.
pub fn enough_runs(baseline_runs: usize, current_runs: usize) -> bool {
    bound_rank(baseline_runs, current_runs).is_some()
}

/// The median of `values` (not empty), the mean of the middle two for an even count.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// The largest k such that, for sides of `m` and `n` runs differing only by noise, the
/// k-th smallest pairwise difference exceeds the true shift with probability at most
/// [`FALSE_ALARM`] — that is, the rank statistic U is at most k - 1 that rarely.
fn bound_rank(m: usize, n: usize) -> Option<usize> {
    if m == 0 || n == 0 {
        return None;
    }
    let pairs = m.checked_mul(n)?;
    let k = if pairs <= EXACT_PAIRS {
        let cumulative = null_distribution(m, n);
        cumulative.iter().take_while(|&&p| p <= FALSE_ALARM).count()
    } else {
        // U is close to normal with mean mn/2 and variance mn(m+n+1)/12 here.
        let (m, n) = (m as f64, n as f64);
        let sd = (m * n * (m + n + 1.0) / 12.0).sqrt();
        (m * n / 2.0 - Z_FALSE_ALARM * sd).floor().max(0.0) as usize
    };
    (k >= 1).then_some(k)
}

/// The standard normal quantile with [`FALSE_ALARM`] above it.
const Z_FALSE_ALARM: f64 = 2.575_829;

/// P(U ≤ u) for u = 0..=mn, under the hypothesis that all arrangements of the two sides'
/// runs are equally likely: counts of arrangements by U (recursively, the largest run
/// comes from one side or the other), accumulated and divided by their total.
fn null_distribution(m: usize, n: usize) -> Vec<f64> {
    // ways[j][u]: arrangements of i baseline and j current runs with U = u, for the current i.
    let max_u = m * n;
    let mut ways: Vec<Vec<f64>> = (0..=n)
        .map(|_| {
            let mut row = vec![0.0; max_u + 1];
            row[0] = 1.0;
            row
        })
        .collect();
    for i in 1..=m {
        let mut next = vec![vec![0.0; max_u + 1]; n + 1];
        next[0][0] = 1.0;
        for j in 1..=n {
            for u in 0..=max_u {
                // The largest is a current run: it is above all i baseline runs.
                let current_last = if u >= i { next[j - 1][u - i] } else { 0.0 };
                // The largest is a baseline run: U unchanged.
                next[j][u] = current_last + ways[j][u];
            }
        }
        ways = next;
    }
    let total: f64 = ways[n].iter().sum();
    let mut cumulative = 0.0;
    ways[n]
        .iter()
        .map(|count| {
            cumulative += count;
            cumulative / total
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_runs_a_side_bound_the_shift_by_the_smallest_difference() {
        let baseline = [100.0, 110.0, 105.0, 98.0, 102.0];
        let current = [200.0, 210.0, 190.0, 205.0, 199.0];
        // 190 - 110: every current run is at least 80 above every baseline run.
        assert_eq!(shift_at_least(&baseline, &current), Some(80.0));
        // Overlapping runs bound the shift below zero: no evidence of a move.
        let overlapping = [95.0, 210.0, 190.0, 205.0, 199.0];
        assert!(shift_at_least(&baseline, &overlapping).is_some_and(|bound| bound < 0.0));
    }

    #[test]
    fn the_null_distribution_is_the_textbook_one() {
        // Five a side: 252 arrangements, one with U = 0, one with U = 1, two with U = 2.
        let cumulative = null_distribution(5, 5);
        assert_eq!(cumulative.len(), 26);
        assert!((cumulative[0] - 1.0 / 252.0).abs() < 1e-12);
        assert!((cumulative[2] - 4.0 / 252.0).abs() < 1e-12);
        assert!((cumulative[25] - 1.0).abs() < 1e-12);
        // Symmetric about mn/2.
        assert!((cumulative[11] - (1.0 - cumulative[13])).abs() < 1e-12);
    }

    #[test]
    fn too_few_runs_give_no_bound() {
        assert!(!enough_runs(1, 1));
        assert!(!enough_runs(5, 1));
        assert!(!enough_runs(4, 4));
        assert!(enough_runs(5, 5));
        assert_eq!(bound_rank(5, 5), Some(1));
        // More runs allow a bound that is not the most extreme difference.
        assert!(bound_rank(10, 10).is_some_and(|k| k > 10));
    }

    #[test]
    fn the_normal_approximation_continues_the_exact_count() {
        // 50 x 50 is counted; 51 x 51 approximated: the ranks are close.
        let exact = bound_rank(50, 50).expect("a bound");
        let approximate = bound_rank(51, 51).expect("a bound");
        let expected = exact as f64 * (51.0 * 51.0) / (50.0 * 50.0);
        assert!(
            (approximate as f64 - expected).abs() / expected < 0.05,
            "{exact} {approximate}"
        );
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(&[4.0, 1.0, 3.0, 2.0]) - 2.5).abs() < f64::EPSILON);
    }
}
