//! Histograms and counters: the run's figures, folded from client records once, after the run.
//!
//! Latencies go into HdrHistograms covering 1 µs to 60 s at 3 significant digits, as in
//! DESIGN.md. Histograms serialize losslessly (HdrHistogram V2 + deflate, base64) so reports
//! from shards or repeated runs can be merged exactly later, not averaged.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::workload::{ClientEnd, ClientErrorKind, ClientRecord};

const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 60_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// A latency distribution in microseconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(
            Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid"),
        )
    }
}

impl Latency {
    /// Records one sample; values beyond the range are clamped to its ends rather than lost.
    pub fn record_us(&mut self, micros: u64) {
        self.0.saturating_record(micros.clamp(LOWEST_US, HIGHEST_US));
    }

    /// Records a duration.
    pub fn record(&mut self, duration: Duration) {
        self.record_us(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms with equal bounds always merge");
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at quantile `q` (0..=1), or `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        (!self.0.is_empty()).then(|| Duration::from_micros(self.0.value_at_quantile(q)))
    }

    /// The underlying histogram, for renderers that draw its shape.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    /// Headline figures.
    pub fn summary(&self) -> LatencySummary {
        let at = |q| {
            if self.0.is_empty() {
                0
            } else {
                self.0.value_at_quantile(q)
            }
        };
        LatencySummary {
            count: self.0.len(),
            min_us: if self.0.is_empty() { 0 } else { self.0.min() },
            mean_us: self.0.mean(),
            p50_us: at(0.5),
            p90_us: at(0.9),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: if self.0.is_empty() { 0 } else { self.0.max() },
        }
    }

    /// Lossless text encoding: HdrHistogram V2 compressed, in base64.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut bytes)
            .expect("serializing into memory cannot fail");
        BASE64.encode(bytes)
    }

    /// Reverses [`Latency::encode`].
    pub fn decode(text: &str) -> Result<Latency, String> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        let histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| format!("histogram does not decode: {e:?}"))?;
        let mut latency = Latency::default();
        latency
            .0
            .add(&histogram)
            .map_err(|e| format!("histogram out of range: {e:?}"))?;
        Ok(latency)
    }
}

/// Headline figures of a latency distribution, in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_us: u64,
    /// Arithmetic mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

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
    /// Bytes sent.
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

    /// All connection errors.
    pub fn error_count(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
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

/// Serialized as its headline figures plus `hdr`, the lossless encoding.
impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct View {
            #[serde(flatten)]
            summary: LatencySummary,
            hdr: String,
        }
        View {
            summary: self.summary(),
            hdr: self.encode(),
        }
        .serialize(serializer)
    }
}

/// Read back from `hdr` alone; the headline figures are derived, so they cannot disagree.
impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct View {
            hdr: String,
        }
        let view = View::deserialize(deserializer)?;
        Latency::decode(&view.hdr).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn encoding_round_trips_and_merging_keeps_counts(
            a in prop::collection::vec(1u64..100_000_000, 0..200),
            b in prop::collection::vec(1u64..100_000_000, 0..200),
        ) {
            let (mut left, mut right) = (Latency::default(), Latency::default());
            a.iter().for_each(|&v| left.record_us(v));
            b.iter().for_each(|&v| right.record_us(v));
            let decoded = Latency::decode(&left.encode()).unwrap();
            prop_assert_eq!(decoded.histogram(), left.histogram());
            left.merge(&right);
            prop_assert_eq!(left.count(), (a.len() + b.len()) as u64);
        }
    }
}
