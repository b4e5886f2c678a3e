//! The ASCII timeline: one row per client, time across, waiting versus being served.
//!
//! It is the picture of the lab's central lesson. Under an iterative server the rows form a
//! staircase (each client waits, `░`, until the one before it has left, then is served, `█`);
//! under a concurrent server the bars all start at once. Beyond [`MAX_ROWS`] clients, evenly
//! spaced ones stand for the rest, always including the first and the last.

use super::{ClientSpan, TimelineReport};
use crate::units;

/// Most client rows drawn.
pub const MAX_ROWS: usize = 24;

/// What a client was doing during one column of time, in increasing precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Absent,
    Idle,
    Connecting,
    Waiting,
    Served,
}

impl State {
    fn glyph(self) -> char {
        match self {
            State::Absent => ' ',
            State::Idle => '─',
            State::Connecting => '·',
            State::Waiting => '░',
            State::Served => '█',
        }
    }
}

/// The legend printed under the chart.
pub const LEGEND: &str = "· connecting  ░ waiting for its first reply  █ being served  ─ idle after its last reply  ✗ failed  ! faulty";

/// Draws the timeline in `width` columns; empty when no client has a timeline.
pub fn lines(timeline: &TimelineReport, width: usize) -> Vec<String> {
    let spans: Vec<&ClientSpan> = timeline
        .shown
        .iter()
        .filter(|s| s.connect_start_ms.is_some())
        .collect();
    let Some(end_ms) = spans
        .iter()
        .filter_map(|s| s.closed_ms.or(s.last_reply_ms).or(s.connected_ms))
        .reduce(f64::max)
    else {
        return Vec::new();
    };
    let start_ms = spans
        .iter()
        .filter_map(|s| s.connect_start_ms)
        .reduce(f64::min)
        .unwrap_or(0.0);
    let rows = pick_rows(spans.len());
    let label_width = rows
        .iter()
        .map(|&i| spans[i].client.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let columns = width.saturating_sub(label_width + 6).max(10);
    let span_ms = (end_ms - start_ms).max(0.001);
    let column_ms = span_ms / columns as f64;

    let mut out = Vec::with_capacity(rows.len() + 3);
    if rows.len() < timeline.clients {
        out.push(format!(
            "({} of {} clients shown, evenly spaced)",
            rows.len(),
            timeline.clients
        ));
    }
    for &index in &rows {
        let span = spans[index];
        let mut bar: Vec<char> = (0..columns)
            .map(|c| {
                let from = start_ms + c as f64 * column_ms;
                state_during(span, from, from + column_ms).glyph()
            })
            .collect();
        if matches!(span.end, "failed" | "echo-fault" | "chat-fault") {
            let at = span.closed_ms.map_or(columns - 1, |t| {
                (((t - start_ms) / column_ms) as usize).min(columns - 1)
            });
            bar[at] = '✗';
        }
        let mark = if span.faulty { '!' } else { ' ' };
        out.push(format!(
            "{:<label_width$}{mark}│{}│",
            span.client,
            bar.into_iter().collect::<String>()
        ));
    }
    out.push(axis(label_width + 2, columns, start_ms, end_ms));
    out
}

/// Indices of the rows to draw: all, or [`MAX_ROWS`] evenly spaced including both ends.
fn pick_rows(count: usize) -> Vec<usize> {
    if count <= MAX_ROWS {
        return (0..count).collect();
    }
    let mut rows: Vec<usize> = (0..MAX_ROWS).map(|i| i * (count - 1) / (MAX_ROWS - 1)).collect();
    rows.dedup();
    rows
}

/// The most telling state of a client during `[from, to)`.
fn state_during(span: &ClientSpan, from: f64, to: f64) -> State {
    // Closed at the end, so that an instant (a one-message service) still shows.
    let overlaps = |start: Option<f64>, end: Option<f64>| match (start, end) {
        (Some(start), Some(end)) => start < to && end >= from,
        _ => false,
    };
    let left = span.closed_ms.or(span.last_reply_ms).or(span.connected_ms);
    let served_until = span.last_reply_ms.or(left);
    [
        (State::Served, span.first_reply_ms, served_until),
        (State::Waiting, span.connected_ms, span.first_reply_ms.or(left)),
        (
            State::Connecting,
            span.connect_start_ms,
            span.connected_ms.or(left),
        ),
        (State::Idle, span.last_reply_ms, left),
    ]
    .into_iter()
    .filter(|&(_, start, end)| overlaps(start, end))
    .map(|(state, _, _)| state)
    .max()
    .unwrap_or(State::Absent)
}

/// Tick labels under the chart: time since the first client began, at the start, middle
/// and end.
fn axis(indent: usize, columns: usize, start_ms: f64, end_ms: f64) -> String {
    let label = |ms: f64| units::micros((ms.max(0.0) * 1000.0) as u64);
    let span = end_ms - start_ms;
    let (first, middle, last) = ("0".to_owned(), label(span / 2.0), label(span));
    let mut line = " ".repeat(indent);
    line.push_str(&first);
    let middle_at = indent + columns / 2 - middle.chars().count() / 2;
    let pad = middle_at.saturating_sub(line.chars().count()).max(1);
    line.push_str(&" ".repeat(pad));
    line.push_str(&middle);
    let last_at = indent + columns - last.chars().count();
    let pad = last_at.saturating_sub(line.chars().count()).max(1);
    line.push_str(&" ".repeat(pad));
    line.push_str(&last);
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(client: &str, connected: f64, first_reply: f64, last_reply: f64) -> ClientSpan {
        ClientSpan {
            client: client.into(),
            faulty: false,
            end: "completed",
            connect_start_ms: Some(connected),
            connected_ms: Some(connected),
            first_send_ms: Some(connected),
            first_reply_ms: Some(first_reply),
            last_reply_ms: Some(last_reply),
            closed_ms: Some(last_reply),
        }
    }

    #[test]
    fn an_iterative_run_draws_a_staircase() {
        let timeline = TimelineReport {
            clients: 3,
            shown: vec![
                span("c#1", 0.0, 0.0, 100.0),
                span("c#2", 0.0, 100.0, 200.0),
                span("c#3", 0.0, 200.0, 300.0),
            ],
        };
        let drawn = lines(&timeline, 40);
        assert_eq!(drawn.len(), 4, "{drawn:#?}");
        let bars: Vec<String> = drawn[..3]
            .iter()
            .map(|l| l.split('│').nth(1).unwrap().to_owned())
            .collect();
        let served_from = |bar: &str| bar.chars().position(|c| c == '█').unwrap();
        assert_eq!(served_from(&bars[0]), 0);
        assert!(served_from(&bars[1]) > served_from(&bars[0]));
        assert!(served_from(&bars[2]) > served_from(&bars[1]));
        assert!(bars[2].starts_with('░'), "the last client waits first: {bars:?}");
        assert!(drawn[3].trim_start().starts_with('0') && drawn[3].ends_with("300.0 ms"));
    }

    #[test]
    fn many_clients_are_sampled_with_both_ends() {
        let rows = pick_rows(500);
        assert_eq!(rows.len(), MAX_ROWS);
        assert_eq!((rows[0], *rows.last().unwrap()), (0, 499));
        assert_eq!(pick_rows(5), vec![0, 1, 2, 3, 4]);
    }
}
