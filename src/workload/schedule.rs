//! When an open-loop client's messages are due.
//!
//! A group's `rate` is shared by its clients: each sends at `rate / count` messages per
//! second, offset by a fraction of its interval so the group's sends interleave evenly
//! instead of arriving in bursts. With `rate_ramp`, each client's rate grows linearly from
//! zero to its share over the ramp; the send times have a closed form, so a schedule is two
//! numbers and nothing accumulates rounding error over millions of messages.

use std::time::Duration;

use tokio::time::Instant;

use crate::scenario::GroupPlan;

/// The send times of one open-loop client.
#[derive(Debug, Clone, Copy)]
pub struct SendSchedule {
    /// When its message 0 is due.
    first: Instant,
    /// Seconds between two of its messages at full rate.
    every: f64,
    /// Seconds the rate takes to grow to full.
    ramp: f64,
}

impl SendSchedule {
    /// The schedule of client `index` of `group` starting at `start`, or `None` for a closed
    /// loop group (each message waits for the previous echo).
    pub fn of(group: &GroupPlan, index: u32, start: Instant) -> Option<SendSchedule> {
        let rate = group.rate?;
        let every = f64::from(group.count) / rate;
        let phase = every * f64::from(index) / f64::from(group.count);
        Some(SendSchedule {
            first: start + Duration::from_secs_f64(phase),
            every,
            ramp: group.rate_ramp.as_secs_f64(),
        })
    }

    /// When message `message` (0-based) is due. During a ramp from zero the `k`-th message
    /// of a client whose full rate is `r` leaves at `sqrt(2·ramp·k / r)`, which is where the
    /// area under the rising rate reaches `k`; after it, every `1/r`.
    pub fn due(&self, message: u32) -> Instant {
        let k = f64::from(message);
        let ramp_messages = self.ramp / self.every / 2.0;
        let offset = if k < ramp_messages {
            (2.0 * self.ramp * k * self.every).sqrt()
        } else {
            self.ramp / 2.0 + k * self.every
        };
        self.first + Duration::from_secs_f64(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(every: f64, ramp: f64) -> SendSchedule {
        SendSchedule {
            first: Instant::now(),
            every,
            ramp,
        }
    }

    fn offset(schedule: &SendSchedule, message: u32) -> f64 {
        (schedule.due(message) - schedule.first).as_secs_f64()
    }

    #[test]
    fn without_a_ramp_messages_are_evenly_spaced() {
        let s = schedule(0.01, 0.0);
        for k in [0, 1, 7, 1000] {
            assert!((offset(&s, k) - f64::from(k) * 0.01).abs() < 1e-9);
        }
    }

    #[test]
    fn a_ramp_sends_half_as_many_messages_in_its_span_and_joins_the_full_rate_smoothly() {
        // 100 messages/s over a 2 s ramp: 100 messages during the ramp, then one per 10 ms.
        let s = schedule(0.01, 2.0);
        assert!((offset(&s, 100) - 2.0).abs() < 1e-9);
        assert!((offset(&s, 99) - (2.0f64 * 2.0 * 99.0 * 0.01).sqrt()).abs() < 1e-9);
        assert!((offset(&s, 101) - 2.01).abs() < 1e-9);
        // The gaps shrink through the ramp.
        let gaps: Vec<f64> = (1..100).map(|k| offset(&s, k) - offset(&s, k - 1)).collect();
        assert!(gaps.windows(2).all(|w| w[1] <= w[0] + 1e-12));
    }
}
