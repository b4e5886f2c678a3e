//! What one worker thread's clients measured, kept where they run: no lock and no shared
//! cache line on the per-message path.
//!
//! Each worker owns one [`WorkerTally`]; its clients record every round trip into the
//! worker's own histogram for their group. The driver merges the workers' histograms once
//! the clients are done. The progress display is fed in batches for the same reason.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::Latency;

/// Messages a worker counts locally before publishing them to the progress display.
const PROGRESS_BATCH: u64 = 256;

/// One worker's round-trip histograms (one per client group) and unpublished progress.
pub struct WorkerTally {
    rtt: RefCell<Vec<Latency>>,
    unpublished: Cell<u64>,
    progress: Arc<AtomicU64>,
}

impl WorkerTally {
    /// An empty tally for a plan with `groups` client groups.
    pub fn new(groups: usize, progress: Arc<AtomicU64>) -> WorkerTally {
        WorkerTally {
            rtt: RefCell::new(vec![Latency::default(); groups]),
            unpublished: Cell::new(0),
            progress,
        }
    }

    /// Counts one completed message of a client of `group`, with its round-trip time when
    /// it has one (a connection's first message is its wait, recorded elsewhere).
    pub fn message_done(&self, group: usize, rtt: Option<Duration>) {
        if let Some(rtt) = rtt {
            self.rtt.borrow_mut()[group].record(rtt);
        }
        let unpublished = self.unpublished.get() + 1;
        if unpublished >= PROGRESS_BATCH {
            self.progress.fetch_add(unpublished, Ordering::Relaxed);
            self.unpublished.set(0);
        } else {
            self.unpublished.set(unpublished);
        }
    }

    /// Publishes the progress counted so far (a client just finished).
    pub fn publish_progress(&self) {
        self.progress
            .fetch_add(self.unpublished.replace(0), Ordering::Relaxed);
    }

    /// Publishes the last progress and hands over the round-trip histograms, one per group.
    pub fn finish(&self) -> Vec<Latency> {
        self.publish_progress();
        self.rtt.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_group_and_publishes_every_message() {
        let progress = Arc::new(AtomicU64::new(0));
        let tally = WorkerTally::new(2, Arc::clone(&progress));
        for i in 0..300u64 {
            tally.message_done((i % 2) as usize, (i > 0).then(|| Duration::from_micros(i)));
        }
        assert_eq!(progress.load(Ordering::Relaxed), 256, "published in batches");
        let rtt = tally.finish();
        assert_eq!(progress.load(Ordering::Relaxed), 300, "the rest on the way out");
        assert_eq!(rtt[0].count(), 149);
        assert_eq!(rtt[1].count(), 150);
    }
}
