//! Progress on stderr while clients run: a bar on a terminal; elsewhere (a CI log, a pipe)
//! a line every few seconds, so a long run is never silent; nothing with `--quiet`.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use crate::workload::MessageCount;

/// Time between two progress lines where there is no terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressDisplay {
    /// A bar redrawn ten times a second (a terminal).
    Bar,
    /// A line every [`LINE_INTERVAL`] (no terminal, or `CI` set).
    Lines,
    /// Nothing (`--quiet`, `--json`).
    Off,
}

/// A running progress display; a no-op when off.
pub struct Progress {
    shown: Option<(Option<ProgressBar>, JoinHandle<()>)>,
}

impl Progress {
    /// Shows `completed` out of `total` messages of the run named `label`.
    pub fn start(
        display: ProgressDisplay,
        label: &str,
        total: u64,
        completed: Arc<MessageCount>,
    ) -> Progress {
        match display {
            ProgressDisplay::Off => Progress { shown: None },
            ProgressDisplay::Bar => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} messages · {elapsed}")
                        .expect("constant template is valid"),
                );
                bar.set_prefix(label.to_owned());
                let ticker = bar.clone();
                let task = tokio::spawn(async move {
                    loop {
                        ticker.set_position(completed.total());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                });
                Progress {
                    shown: Some((Some(bar), task)),
                }
            }
            ProgressDisplay::Lines => {
                let label = label.to_owned();
                let task = tokio::spawn(async move {
                    let started = tokio::time::Instant::now();
                    loop {
                        tokio::time::sleep(LINE_INTERVAL).await;
                        eprintln!("{}", line(&label, completed.total(), total, started.elapsed()));
                    }
                });
                Progress {
                    shown: Some((None, task)),
                }
            }
        }
    }

    /// Removes the bar, or stops the lines.
    pub fn finish(self) {
        if let Some((bar, task)) = self.shown {
            task.abort();
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        }
    }
}

/// `threaded: 523 of 1,000 messages (52%) after 5.0 s`.
fn line(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let percent = match total {
        0 => 100,
        total => done.min(total) * 100 / total,
    };
    format!(
        "{label}: {} of {} messages ({percent}%) after {:.1} s",
        crate::units::count(done),
        crate::units::count(total),
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_says_how_far_the_run_is() {
        assert_eq!(
            line("threaded", 523, 1000, Duration::from_millis(5020)),
            "threaded: 523 of 1,000 messages (52%) after 5.0 s"
        );
        assert!(line("x", 0, 0, Duration::ZERO).contains("(100%)"));
    }
}
