//! The latency histogram: HdrHistograms covering 1 µs to 60 s at 3 significant digits, as
//! in DESIGN.md, recorded by the drivers as replies arrive and read by the figures and the
//! reports. They serialize losslessly (HdrHistogram V2 + deflate, base64) so reports from
//! shards or repeated runs can be merged exactly later, not averaged. A leaf: it knows
//! nothing of labrun's but numbers.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

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

    /// Reverses [`Latency::encode`]. A report is a file anyone can edit, and the decoder
    /// allocates what the encoding's header asks for, so the header is read first and
    /// anything beyond a histogram labrun writes is refused.
    pub fn decode(text: &str) -> Result<Latency, String> {
        let bytes = BASE64
            .decode(text)
            .map_err(|e| format!("histogram is not base64: {e}"))?;
        check_header(&bytes)?;
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

/// The largest payload an encoded histogram of ours can have: every count of its ~17,000
/// (at 1 µs to 60 s, 3 digits) at the 9 bytes of the longest variable-length number.
const MAX_PAYLOAD_BYTES: u32 = 1 << 20;

/// Reads the header inside a V2 deflate encoding (outer cookie and length, then, deflated:
/// cookie, payload length, normalizing offset, significant digits, lowest and highest
/// trackable values) and refuses one whose sizes labrun never writes.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    use std::io::Read;
    let refuse = |why: &str| Err(format!("histogram does not decode: {why}"));
    let [_, _, _, _, l0, l1, l2, l3, deflated @ ..] = bytes else {
        return refuse("too short");
    };
    if u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize > deflated.len() {
        return refuse("its length is past its end");
    }
    let mut header = [0u8; 40];
    flate2::read::ZlibDecoder::new(deflated)
        .read_exact(&mut header)
        .map_err(|e| format!("histogram does not decode: {e}"))?;
    let word = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let long = |at: usize| u64::from_be_bytes(header[at..at + 8].try_into().unwrap_or_default());
    let (payload, digits, lowest, highest) = (word(4), word(12), long(16), long(24));
    if payload > MAX_PAYLOAD_BYTES {
        return refuse(&format!("its payload claims {payload} bytes"));
    }
    if digits > u32::from(SIGNIFICANT_DIGITS)
        || lowest < LOWEST_US
        || highest > HIGHEST_US
        || lowest > highest
    {
        return refuse(&format!(
            "its range ({lowest} to {highest} µs, {digits} digits) is not one labrun records"
        ));
    }
    Ok(())
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

    #[test]
    fn a_header_asking_for_gigabytes_is_refused_before_anything_is_allocated() {
        // A valid 30-byte encoding whose payload length says 4 GiB: the decoder would
        // allocate it before finding the payload missing.
        let bomb = "HISTFAAAAB54nJNpmSz8////DwwQwAylGcGcye0M9lAZAM1bB4Q=";
        let refused = Latency::decode(bomb).expect_err("a forged length is refused");
        assert!(refused.contains("payload claims 4294967280 bytes"), "{refused}");
        // Another range, even a small one, is not labrun's either.
        let mut other = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        other.record(5).expect("in range");
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&other, &mut bytes)
            .expect("serializes");
        let refused = Latency::decode(&BASE64.encode(bytes)).expect_err("another range is refused");
        assert!(refused.contains("not one labrun records"), "{refused}");
        assert!(Latency::decode("HISTFAAA").is_err());
    }
}
