//! The run's figures, folded from client records once, after the run: counts, bytes,
//! errors and the latency views of each group, in [`Latency`] histograms.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::histogram::Latency;
use crate::workload::{ClientEnd, ClientErrorKind, ClientRecord};

/// The three latency views of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LatencySet {
    /// TCP connect time.
    pub connect: Latency,
    /// First send until first reply byte: queueing for service.
    pub wait: Latency,
    /// Per-message round trip, messages after each connection's first.
    pub rtt: Latency,
    /// Broadcast: from a message's send to its arrival at each receiver.
    pub fanout: Latency,
}

impl LatencySet {
    /// Adds another set's samples.
    pub fn merge(&mut self, other: &LatencySet) {
        self.connect.merge(&other.connect);
        self.wait.merge(&other.wait);
        self.rtt.merge(&other.rtt);
        self.fanout.merge(&other.fanout);
    }

    /// One distribution.
    pub fn view(&self, view: crate::scenario::LatencyView) -> &Latency {
        use crate::scenario::LatencyView;
        match view {
            LatencyView::Connect => &self.connect,
            LatencyView::Wait => &self.wait,
            LatencyView::Rtt => &self.rtt,
            LatencyView::Fanout => &self.fanout,
        }
    }

    /// The views with their names, in display order.
    pub fn named(&self) -> [(&'static str, &Latency); 4] {
        [
            ("connect", &self.connect),
            ("wait", &self.wait),
            ("rtt", &self.rtt),
            ("fanout", &self.fanout),
        ]
    }
}

/// Figures for one client group.
#[derive(Debug, Clone, Default)]
pub struct GroupFigures {
    /// Clients in the group.
    pub clients: u32,
    /// Clients that finished every message.
    pub clients_completed: u32,
    /// Faulty clients that misbehaved as planned.
    pub clients_misbehaved: u32,
    /// Messages sent and echoed.
    pub messages: u64,
    pub bytes_sent: u64,
    /// Bytes received and verified.
    pub bytes_received: u64,
    /// Connection errors by class.
    pub errors: Vec<(ClientErrorKind, u64)>,
    /// Time from the first connect to the last reply.
    pub active: Duration,
    /// Latency distributions.
    pub latency: LatencySet,
    /// What became of the datagrams, for UDP clients.
    pub datagrams: Option<crate::workload::DatagramTally>,
}

impl GroupFigures {
    /// Folds the records of one group.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a ClientRecord>) -> GroupFigures {
        let mut figures = GroupFigures::default();
        let (mut first_start, mut last_end) = (None::<Duration>, None::<Duration>);
        for record in records {
            figures.clients += 1;
            figures.messages += u64::from(record.messages_completed);
            figures.bytes_sent += record.bytes_sent;
            figures.bytes_received += record.bytes_received;
            match &record.end {
                ClientEnd::Completed => figures.clients_completed += 1,
                ClientEnd::Failed(error) => figures.count_error(error.kind),
                ClientEnd::Misbehaved => figures.clients_misbehaved += 1,
                ClientEnd::EchoFault(_) | ClientEnd::ChatFault(_) | ClientEnd::Interrupted => {}
            }
            if let Some(connect) = record.connect_time() {
                figures.latency.connect.record(connect);
            }
            // A client never served counts with the time it waited before giving up: at
            // least that long, which is what a wait bound must see.
            if let Some(wait) = record.wait_time().or_else(|| record.unserved_wait()) {
                figures.latency.wait.record(wait);
            }
            if let Some(tally) = &record.datagrams {
                figures.datagrams.get_or_insert_with(Default::default).add(tally);
            }
            let timeline = &record.timeline;
            if let Some(start) = timeline.connect_start {
                first_start = Some(first_start.map_or(start, |s| s.min(start)));
            }
            // Throughput counts until the last reply, not the close: the close waits out a
            // short watch for stray bytes that is labrun's, not the server's, time.
            if let Some(end) = timeline.last_reply.or(timeline.closed) {
                last_end = Some(last_end.map_or(end, |e| e.max(end)));
            }
        }
        if let (Some(start), Some(end)) = (first_start, last_end) {
            figures.active = end.saturating_sub(start);
        }
        figures
    }

    fn count_error(&mut self, kind: ClientErrorKind) {
        match self.errors.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => {
                self.errors.push((kind, 1));
                self.errors.sort();
            }
        }
    }

    /// Echoed messages per second over the group's active time.
    pub fn messages_per_second(&self) -> f64 {
        let seconds = self.active.as_secs_f64();
        if seconds > 0.0 {
            self.messages as f64 / seconds
        } else {
            0.0
        }
    }
}

/// This process's peak resident set size (`VmHWM` in `/proc/self/status`).
pub fn own_peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}
