//! What one worker thread's clients measured, kept where they run: no lock and no shared
//! cache line on the per-message path.
//!
//! Each worker owns one [`WorkerTally`]; its clients record every round trip into the
//! worker's own histogram for their group. The driver merges the workers' histograms once
//! the clients are done. The progress display reads [`MessageCount`], where each worker
//! writes its own count on a cache line of its own.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::histogram::Latency;

/// Messages completed so far, for the progress display: one counter per worker, each on a
/// cache line of its own and written only by its worker, so counting every message costs a
/// plain store, and the display (ten reads a second) sums them.
pub struct MessageCount {
    slots: Box<[Slot]>,
}

/// One worker's count, alone on its cache line.
#[repr(align(128))]
struct Slot(AtomicU64);

impl MessageCount {
    /// Counters for up to `workers` workers (more share slots, still correctly: see
    /// [`WorkerTally::message_done`]).
    pub fn new(workers: usize) -> MessageCount {
        MessageCount {
            slots: (0..workers.max(1)).map(|_| Slot(AtomicU64::new(0))).collect(),
        }
    }

    /// Messages completed by every worker.
    pub fn total(&self) -> u64 {
        self.slots.iter().map(|slot| slot.0.load(Ordering::Relaxed)).sum()
    }

    /// The slot worker number `worker` writes to.
    fn slot_of(&self, worker: usize) -> usize {
        worker % self.slots.len()
    }
}

/// One worker's round-trip histograms (one per client group) and its message count.
pub struct WorkerTally {
    rtt: RefCell<Vec<Latency>>,
    progress: Arc<MessageCount>,
    /// The slot of [`MessageCount`] it writes to, chosen once.
    slot: usize,
    /// Whether this worker has its slot to itself (then a plain store counts).
    alone: bool,
    done: Cell<u64>,
}

impl WorkerTally {
    /// An empty tally for worker number `worker` of a plan with `groups` client groups.
    pub fn new(groups: usize, progress: Arc<MessageCount>, worker: usize, workers: usize) -> WorkerTally {
        let alone = workers <= progress.slots.len();
        WorkerTally {
            rtt: RefCell::new(vec![Latency::default(); groups]),
            slot: progress.slot_of(worker),
            progress,
            alone,
            done: Cell::new(0),
        }
    }

    /// Counts one completed message of a client of `group`, with its round-trip time when
    /// it has one (a connection's first message is its wait, recorded elsewhere).
    pub fn message_done(&self, group: usize, rtt: Option<Duration>) {
        if let Some(rtt) = rtt {
            self.rtt.borrow_mut()[group].record(rtt);
        }
        let slot = &self.progress.slots[self.slot].0;
        if self.alone {
            // The only writer of this slot: no read-modify-write needed.
            let done = self.done.get() + 1;
            self.done.set(done);
            slot.store(done, Ordering::Relaxed);
        } else {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands over the round-trip histograms, one per group.
    pub fn finish(&self) -> Vec<Latency> {
        self.rtt.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_group_and_counts_every_message() {
        let progress = Arc::new(MessageCount::new(2));
        let first = WorkerTally::new(2, Arc::clone(&progress), 0, 2);
        let second = WorkerTally::new(2, Arc::clone(&progress), 1, 2);
        for i in 0..300u64 {
            first.message_done((i % 2) as usize, (i > 0).then(|| Duration::from_micros(i)));
            assert_eq!(progress.total(), 2 * i + 1, "every message counts at once");
            second.message_done(0, None);
        }
        let rtt = first.finish();
        assert_eq!(progress.total(), 600);
        assert_eq!(rtt[0].count(), 149);
        assert_eq!(rtt[1].count(), 150);
    }

    #[test]
    fn more_workers_than_slots_still_count_every_message() {
        let progress = Arc::new(MessageCount::new(1));
        let tallies: Vec<WorkerTally> = (0..3)
            .map(|w| WorkerTally::new(1, Arc::clone(&progress), w, 3))
            .collect();
        for tally in &tallies {
            for _ in 0..10 {
                tally.message_done(0, None);
            }
        }
        assert_eq!(progress.total(), 30);
    }
}
