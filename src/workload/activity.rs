//! When a server last answered anyone: one clock per server, shared by all its clients.
//!
//! An iterative server serves one client at a time, so the others wait in its accept queue,
//! their first message unanswered, for as long as the clients before them take. That wait is
//! the lab's point, not a missing echo: a client that has not been served yet suspends its
//! reply timeout while the server is answering *someone*, and only a server that answers
//! nobody for a whole timeout is silent. Every echo client stamps this clock when bytes arrive.
//!
//! The clock is a millisecond count in one atomic, written at most once per millisecond per
//! worker thread (`fetch_max` only when the stored value is older), so clients on different
//! threads share it without a lock and without a cache-line bounce per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The last time any client of one server received bytes from it.
#[derive(Debug)]
pub struct ServerActivity {
    run_start: Instant,
    /// Milliseconds from `run_start` to the last answer, plus one; 0 when nobody was answered.
    last_answer_ms: AtomicU64,
}

impl ServerActivity {
    /// A server that has answered nobody yet.
    pub fn new(run_start: Instant) -> ServerActivity {
        ServerActivity {
            run_start,
            last_answer_ms: AtomicU64::new(0),
        }
    }

    /// Notes that the server sent a client bytes at `now`.
    pub fn answered(&self, now: Instant) {
        let stamp = now.saturating_duration_since(self.run_start).as_millis() as u64 + 1;
        if stamp > self.last_answer_ms.load(Ordering::Relaxed) {
            self.last_answer_ms.fetch_max(stamp, Ordering::Relaxed);
        }
    }

    /// When the server last sent any client bytes, if it ever did.
    pub fn last_answer(&self) -> Option<Instant> {
        match self.last_answer_ms.load(Ordering::Relaxed) {
            0 => None,
            stamp => Some(self.run_start + Duration::from_millis(stamp - 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_only_moves_forward() {
        let start = Instant::now();
        let activity = ServerActivity::new(start);
        assert_eq!(activity.last_answer(), None);
        activity.answered(start + Duration::from_millis(30));
        activity.answered(start + Duration::from_millis(10));
        assert_eq!(activity.last_answer(), Some(start + Duration::from_millis(30)));
    }
}
