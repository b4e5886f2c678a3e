//! The progress bar on stderr while clients run (terminals only).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// A running progress display; a no-op when disabled.
pub struct Progress {
    bar: Option<(ProgressBar, JoinHandle<()>)>,
}

impl Progress {
    /// Shows `completed` out of `total` messages, refreshed ten times a second.
    pub fn start(enabled: bool, label: &str, total: u64, completed: Arc<AtomicU64>) -> Progress {
        if !enabled {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix} {bar:30} {pos}/{len} messages · {elapsed}")
                .expect("constant template is valid"),
        );
        bar.set_prefix(label.to_owned());
        let ticker = bar.clone();
        let task = tokio::spawn(async move {
            loop {
                ticker.set_position(completed.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Progress {
            bar: Some((bar, task)),
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some((bar, task)) = self.bar {
            task.abort();
            bar.finish_and_clear();
        }
    }
}
