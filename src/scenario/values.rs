//! Scalar values of the scenario format: durations, byte sizes, size ranges, ports and the
//! concurrency expectation.
//!
//! Each type parses itself inside serde, so a bad value is reported by the TOML parser with
//! the span of that value: `timeout = "2 sec"` points at `"2 sec"`, not at the table. The
//! messages say what was expected with an example, because people write these by hand.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Longest duration a scenario may name; far beyond any lab run, and small enough that
/// adding it to a clock reading can never overflow.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// A human duration such as `"250ms"` or `"2s"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationValue(pub Duration);

/// What a duration looks like, for errors.
pub(super) const DURATION_EXPECTED: &str = "a duration with a unit, like \"250ms\", \"2s\" or \"1m 30s\"";

impl DurationValue {
    /// Reads `"250ms"`, `"2s"`, `"1m 30s"`; the error says what was wrong in plain words.
    pub(super) fn from_text(text: &str) -> Result<DurationValue, String> {
        match humantime::parse_duration(text.trim()) {
            Ok(duration) if duration > MAX_DURATION => {
                Err(format!("duration `{text}` is too long; the limit is 30 days"))
            }
            Ok(duration) => Ok(DurationValue(duration)),
            Err(_) => Err(format!(
                "`{text}` is not a duration: write a number and a unit (ms, s, m or h), like \
                 \"250ms\", \"2s\" or \"1m 30s\""
            )),
        }
    }

    /// The error for a bare number, which has no unit.
    pub(super) fn unit_missing(number: &str) -> String {
        format!("a duration needs a unit: write \"{number}s\" or \"{number}ms\", not {number}")
    }
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<DurationValue, E> {
                DurationValue::from_text(text).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<DurationValue, E> {
                Err(E::custom(DurationValue::unit_missing(&n.to_string())))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<DurationValue, E> {
                Err(E::custom(DurationValue::unit_missing(&n.to_string())))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// A size in bytes: an integer, or a string with a unit such as `"4KiB"` or `"1 MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteCount(pub u64);

const SIZE_EXPECTED: &str =
    "a size in bytes (like 512 or \"4KiB\") or a range (like { min = 1, max = 4096 })";

fn parse_bytes<E: de::Error>(text: &str) -> Result<u64, E> {
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| {
            E::custom(format!(
                "invalid size `{text}`; expected bytes with an optional unit, like \"512\", \
                 \"4KiB\" or \"1MB\""
            ))
        })
}

fn non_negative<E: de::Error>(n: i64) -> Result<u64, E> {
    u64::try_from(n).map_err(|_| E::custom(format!("a size cannot be negative (got {n})")))
}

impl<'de> Deserialize<'de> for ByteCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ByteVisitor;
        impl Visitor<'_> for ByteVisitor {
            type Value = ByteCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes, like 512 or \"4KiB\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<ByteCount, E> {
                non_negative(n).map(ByteCount)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteCount, E> {
                parse_bytes(text).map(ByteCount)
            }
        }
        deserializer.deserialize_any(ByteVisitor)
    }
}

/// Message body sizes: one fixed size, or a uniform range `{ min, max }` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SizeRange {
    /// Smallest body, in bytes.
    pub min: u64,
    /// Largest body, in bytes.
    pub max: u64,
}

impl<'de> Deserialize<'de> for SizeRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RangeVisitor;
        impl<'de> Visitor<'de> for RangeVisitor {
            type Value = SizeRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<SizeRange, E> {
                let n = non_negative(n)?;
                Ok(SizeRange { min: n, max: n })
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<SizeRange, E> {
                let n = parse_bytes(text)?;
                Ok(SizeRange { min: n, max: n })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SizeRange, A::Error> {
                let (mut min, mut max) = (None, None);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "min" => min = Some(map.next_value::<ByteCount>()?.0),
                        "max" => max = Some(map.next_value::<ByteCount>()?.0),
                        other => return Err(de::Error::unknown_field(other, &["min", "max"])),
                    }
                }
                let min = min.ok_or_else(|| de::Error::missing_field("min"))?;
                let max = max.ok_or_else(|| de::Error::missing_field("max"))?;
                if min > max {
                    return Err(de::Error::custom(format!(
                        "size range has min ({min}) greater than max ({max})"
                    )));
                }
                Ok(SizeRange { min, max })
            }
        }
        deserializer.deserialize_any(RangeVisitor)
    }
}

/// Where a server listens: a free port chosen by labrun, or a fixed one the program expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PortChoice {
    /// labrun picks a free loopback port and passes it as `{port}`.
    #[default]
    Auto,
    /// The program listens on this port (lab programs hard-code 6000 and 6001).
    Fixed(u16),
}

impl<'de> Deserialize<'de> for PortChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortVisitor;
        impl Visitor<'_> for PortVisitor {
            type Value = PortChoice;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"auto\" or a port number from 1 to 65535")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortChoice, E> {
                match u16::try_from(n) {
                    Ok(0) => Err(E::custom(
                        "port 0 is not a port; write port = \"auto\" to let labrun choose a free one",
                    )),
                    Ok(port) => Ok(PortChoice::Fixed(port)),
                    Err(_) => Err(E::custom(format!(
                        "port {n} is out of range; expected \"auto\" or 1 to 65535"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<PortChoice, E> {
                match text {
                    "auto" => Ok(PortChoice::Auto),
                    _ => Err(E::custom(format!(
                        "invalid port `{text}`; expected \"auto\" or a number from 1 to 65535"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(PortVisitor)
    }
}

/// `messages = 20` (how many to generate) or `messages = ["hello", "exit"]` (what to send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagesValue {
    /// Generate this many.
    Count(u32),
    /// Send exactly these texts, in order.
    Texts(Vec<String>),
}

impl<'de> Deserialize<'de> for MessagesValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MessagesVisitor;
        impl<'de> Visitor<'de> for MessagesVisitor {
            type Value = MessagesValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of messages (like 20) or a list of texts (like [\"hello\", \"exit\"])")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<MessagesValue, E> {
                u32::try_from(n)
                    .map(MessagesValue::Count)
                    .map_err(|_| E::custom(format!("`messages` must be a count from 1 up, not {n}")))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<MessagesValue, A::Error> {
                let mut texts = Vec::new();
                while let Some(text) = seq.next_element::<String>()? {
                    texts.push(text);
                }
                Ok(MessagesValue::Texts(texts))
            }
        }
        deserializer.deserialize_any(MessagesVisitor)
    }
}

/// `replies = ["hi", "bye"]` (the operator's lines, in order) or `replies = "reply {n}"` (one
/// per message, `{n}` counting from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepliesValue {
    /// These lines, in order.
    Lines(Vec<String>),
    /// This line for every message, with `{n}` replaced by its number.
    Template(String),
}

impl<'de> Deserialize<'de> for RepliesValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RepliesVisitor;
        impl<'de> Visitor<'de> for RepliesVisitor {
            type Value = RepliesValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of replies (like [\"hi\", \"bye\"]) or a template (like \"reply {n}\")")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RepliesValue, E> {
                Ok(RepliesValue::Template(text.to_owned()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RepliesValue, A::Error> {
                let mut lines = Vec::new();
                while let Some(line) = seq.next_element::<String>()? {
                    lines.push(line);
                }
                Ok(RepliesValue::Lines(lines))
            }
        }
        deserializer.deserialize_any(RepliesVisitor)
    }
}

/// One line typed at a client program: `"hello"`, or `{ text = "1", after = "1 or 2?" }` to
/// wait for a prompt first, with `repeat = N` for a long line made of N copies of `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedLineValue {
    /// The text, without the line end.
    pub text: String,
    /// Type it only once the program's output shows this.
    pub after: Option<String>,
    /// How many copies of `text` make the line.
    pub repeat: u32,
}

impl<'de> Deserialize<'de> for TypedLineValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LineVisitor;
        impl<'de> Visitor<'de> for LineVisitor {
            type Value = TypedLineValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a line of text, or a table like { text = \"1\", after = \"1 or 2?\" }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<TypedLineValue, E> {
                Ok(TypedLineValue {
                    text: text.to_owned(),
                    after: None,
                    repeat: 1,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TypedLineValue, A::Error> {
                let (mut text, mut after, mut repeat) = (None, None, 1);
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "text" => text = Some(map.next_value::<String>()?),
                        "after" => after = Some(map.next_value::<String>()?),
                        "repeat" => repeat = map.next_value::<u32>()?,
                        other => {
                            return Err(de::Error::unknown_field(other, &["text", "after", "repeat"]));
                        }
                    }
                }
                let text = text.ok_or_else(|| de::Error::missing_field("text"))?;
                Ok(TypedLineValue { text, after, repeat })
            }
        }
        deserializer.deserialize_any(LineVisitor)
    }
}

/// Something a client program must print: a substring, or `{ regex = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintedValue {
    /// These characters, anywhere after the previous match.
    Text(String),
    /// A match of this regular expression, anywhere after the previous match.
    Regex(String),
}

impl<'de> Deserialize<'de> for PrintedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PrintedVisitor;
        impl<'de> Visitor<'de> for PrintedVisitor {
            type Value = PrintedValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text to find (like \"Echo: hello\") or { regex = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<PrintedValue, E> {
                Ok(PrintedValue::Text(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PrintedValue, A::Error> {
                let mut pattern = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "regex" => pattern = Some(map.next_value::<String>()?),
                        other => return Err(de::Error::unknown_field(other, &["regex"])),
                    }
                }
                pattern
                    .map(PrintedValue::Regex)
                    .ok_or_else(|| de::Error::missing_field("regex"))
            }
        }
        deserializer.deserialize_any(PrintedVisitor)
    }
}

/// An open-loop rate such as `rate = "2000/s"`: messages per second for a whole group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateValue(pub f64);

impl<'de> Deserialize<'de> for RateValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let number = text
            .trim()
            .strip_suffix("/s")
            .map(str::trim)
            .and_then(|n| n.replace('_', "").parse::<f64>().ok());
        match number {
            Some(n) if n.is_finite() && n > 0.0 && n <= 10_000_000.0 => Ok(RateValue(n)),
            _ => Err(de::Error::custom(format!(
                "invalid rate `{text}`; expected messages per second, like \"2000/s\" (up to 10,000,000/s)"
            ))),
        }
    }
}

/// A lower bound such as `msgs_per_sec = ">= 1000"` (or just `1000`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Minimum(pub f64);

impl<'de> Deserialize<'de> for Minimum {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MinimumVisitor;
        impl Visitor<'_> for MinimumVisitor {
            type Value = Minimum;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a lower bound, like 1000 or \">= 1000\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Minimum, E> {
                self.visit_f64(n as f64)
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Minimum, E> {
                if n.is_finite() && n >= 0.0 {
                    Ok(Minimum(n))
                } else {
                    Err(E::custom(format!(
                        "a lower bound must be a number from 0 up, not {n}"
                    )))
                }
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Minimum, E> {
                let number = text
                    .trim()
                    .trim_start_matches(">=")
                    .trim()
                    .replace(['_', ','], "");
                match number.parse::<f64>() {
                    Ok(n) => self.visit_f64(n),
                    Err(_) => Err(E::custom(format!(
                        "invalid lower bound `{text}`; expected a number like 1000 or \">= 1000\""
                    ))),
                }
            }
        }
        deserializer.deserialize_any(MinimumVisitor)
    }
}

/// An upper bound on a share, such as `error_rate = "<= 1%"` (or `"1%"`), kept as a fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaxShare(pub f64);

impl<'de> Deserialize<'de> for MaxShare {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let percent = text.trim().trim_start_matches("<=").trim();
        let share = percent
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|n| (0.0..=100.0).contains(n));
        match share {
            Some(n) => Ok(MaxShare(n / 100.0)),
            None => Err(de::Error::custom(format!(
                "invalid share `{text}`; expected a percentage from 0% to 100%, like \"<= 1%\""
            ))),
        }
    }
}

/// `expect.concurrency`: what kind of server the run must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyExpectation {
    /// One client at a time (lab 1): at most one client in service at any instant.
    Iterative,
    /// Every client that wanted service at once got it at once (lab 3).
    Concurrent,
    /// At least this many clients served at the same instant.
    AtLeast(u32),
}

impl fmt::Display for ConcurrencyExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConcurrencyExpectation::Iterative => f.write_str("iterative"),
            ConcurrencyExpectation::Concurrent => f.write_str("concurrent"),
            ConcurrencyExpectation::AtLeast(n) => write!(f, "at-least {n}"),
        }
    }
}

impl Serialize for ConcurrencyExpectation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConcurrencyExpectation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const EXPECTED: &str = "\"iterative\", \"concurrent\" or \"at-least N\" (N from 2 up)";
        let text = String::deserialize(deserializer)?;
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["iterative"] => Ok(ConcurrencyExpectation::Iterative),
            ["concurrent"] => Ok(ConcurrencyExpectation::Concurrent),
            ["at-least", n] => match n.parse::<u32>() {
                Ok(n) if n >= 2 => Ok(ConcurrencyExpectation::AtLeast(n)),
                _ => Err(de::Error::custom(format!(
                    "invalid concurrency `{text}`: N must be a whole number from 2 up; expected {EXPECTED}"
                ))),
            },
            _ => Err(de::Error::custom(format!(
                "invalid concurrency `{text}`; expected {EXPECTED}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        d: Option<DurationValue>,
        s: Option<SizeRange>,
        p: Option<PortChoice>,
        c: Option<ConcurrencyExpectation>,
        m: Option<Minimum>,
        r: Option<MaxShare>,
    }

    fn parse(text: &str) -> Result<Probe, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn accepts_human_values() {
        let probe = parse("d = \"250ms\"\ns = { min = 1, max = \"4KiB\" }\np = 6000").unwrap();
        assert_eq!(probe.d, Some(DurationValue(Duration::from_millis(250))));
        assert_eq!(probe.s, Some(SizeRange { min: 1, max: 4096 }));
        assert_eq!(probe.p, Some(PortChoice::Fixed(6000)));
        assert_eq!(parse("s = 64").unwrap().s, Some(SizeRange { min: 64, max: 64 }));
        assert_eq!(parse("p = \"auto\"").unwrap().p, Some(PortChoice::Auto));
        assert_eq!(
            parse("c = \"at-least 4\"").unwrap().c,
            Some(ConcurrencyExpectation::AtLeast(4))
        );
        assert_eq!(
            parse("c = \"iterative\"").unwrap().c,
            Some(ConcurrencyExpectation::Iterative)
        );
        assert_eq!(parse("m = \">= 1_000\"").unwrap().m, Some(Minimum(1000.0)));
        assert_eq!(parse("m = 250").unwrap().m, Some(Minimum(250.0)));
        assert_eq!(parse("r = \"<= 2.5%\"").unwrap().r, Some(MaxShare(0.025)));
    }

    #[test]
    fn rejects_bad_values_with_expectations() {
        assert!(parse("d = 5").unwrap_err().contains("needs a unit"));
        // In plain words: no list of the parser's unit spellings.
        let parsecs = parse("d = \"5 parsecs\"").unwrap_err();
        assert!(
            parsecs.contains("`5 parsecs` is not a duration: write a number and a unit"),
            "{parsecs}"
        );
        assert!(!parsecs.contains("variations"), "{parsecs}");
        assert!(parse("s = -3").unwrap_err().contains("cannot be negative"));
        assert!(
            parse("s = { min = 9, max = 2 }")
                .unwrap_err()
                .contains("greater than max")
        );
        assert!(
            parse("s = { min = 1, mux = 2 }")
                .unwrap_err()
                .contains("unknown field `mux`")
        );
        assert!(parse("p = 0").unwrap_err().contains("\"auto\""));
        assert!(parse("p = 70000").unwrap_err().contains("out of range"));
        assert!(parse("c = \"at-least 1\"").unwrap_err().contains("from 2 up"));
        assert!(parse("m = \"lots\"").unwrap_err().contains("invalid lower bound"));
        assert!(parse("r = \"5\"").unwrap_err().contains("expected a percentage"));
        assert!(parse("c = \"parallel\"").unwrap_err().contains("\"at-least N\""));
    }
}

/// A report file format (`--format json,md,junit`, `[report] formats`). The scenario names
/// the formats it wants; rendering them is the report stage's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The whole report, versioned, histograms lossless: `NAME.json`.
    Json,
    /// A summary for pull requests and `$GITHUB_STEP_SUMMARY`: `NAME.md`.
    Md,
    /// One test case per check, for CI test views: `NAME.junit.xml`.
    Junit,
    /// One self-contained page with SVG charts, to read and share: `NAME.html`.
    Html,
}

impl Format {
    /// The file name ending, after the scenario name.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Md => "md",
            Format::Junit => "junit.xml",
            Format::Html => "html",
        }
    }
}
