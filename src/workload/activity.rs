//! Whether a server is busy with someone: one record per server, shared by all its clients.
//!
//! An iterative server serves one client at a time, so the others wait in its accept queue,
//! their first message unanswered, for as long as the clients before them take, pauses
//! (`think`, an open-loop schedule) included. That wait is the lab's point, not a missing
//! echo: a client that has not been served yet suspends its reply timeout while the server
//! has a client in service or answered one within the timeout, and only a server that does
//! neither for a whole timeout is silent. Echo clients stamp the clock when bytes arrive and
//! count themselves in and out of service.
//!
//! The clock is a millisecond count in one atomic that a client writes (`fetch_max`) only
//! when its reading is newer than the stored one, so clients on different threads share it
//! without a lock, and a stored value already current costs one shared load.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The last time any client of one server received bytes from it.
#[derive(Debug)]
pub struct ServerActivity {
    run_start: Instant,
    /// Milliseconds from `run_start` to the last answer, plus one; 0 when nobody was answered.
    last_answer_ms: AtomicU64,
    /// Clients answered at least once and still connected.
    in_service: AtomicU32,
}

impl ServerActivity {
    /// A server that has answered nobody yet.
    pub fn new(run_start: Instant) -> ServerActivity {
        ServerActivity {
            run_start,
            last_answer_ms: AtomicU64::new(0),
            in_service: AtomicU32::new(0),
        }
    }

    /// A client got its first reply: it is in service until it [`left`](Self::left).
    pub fn began_service(&self) {
        self.in_service.fetch_add(1, Ordering::Relaxed);
    }

    /// A client that had been in service left.
    pub fn left(&self) {
        self.in_service.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether the server is busy with a client at `now`: one is in service, or it answered
    /// one within `within`. A client waiting for its first reply meanwhile is queued.
    pub fn busy(&self, now: Instant, within: std::time::Duration) -> bool {
        self.in_service.load(Ordering::Relaxed) > 0 || self.answered_since(now.checked_sub(within))
    }

    /// Whether the server was busy with a client at some point after `since`: one is in
    /// service now, or it answered one since.
    pub fn busy_since(&self, since: Option<Instant>) -> bool {
        self.in_service.load(Ordering::Relaxed) > 0 || self.answered_since(since)
    }

    /// Whether the server answered anyone after `since` (anyone at all when `None`).
    fn answered_since(&self, since: Option<Instant>) -> bool {
        match (self.last_answer(), since) {
            (Some(last), Some(since)) => last > since,
            (Some(_), None) => true,
            (None, _) => false,
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
