//! Numbers with units, formatted the same way everywhere: fixed precision, unit always shown.

use std::time::Duration;

/// `850 µs`, `12.3 ms`, `1.25 s`: three significant figures, unit scaled to the value.
pub fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..10_000 => format!("{:.2} ms", us as f64 / 1e3),
        10_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// A duration, as [`micros`].
pub fn duration(d: Duration) -> String {
    micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `512 B`, `4.0 KiB`, `41.2 MiB`.
pub fn bytes(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for next in ["KiB", "MiB", "GiB", "TiB"] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// `1,234,567`: thousands separated for reading at a glance.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `s` of a plural noun after `n`: "1 fork", "2 forks".
pub fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Serializes a duration as fractional milliseconds, the unit of every `*_ms` report field.
pub fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_units() {
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(1_234), "1.23 ms");
        assert_eq!(micros(12_345), "12.3 ms");
        assert_eq!(micros(1_250_000), "1.25 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(43_200_000), "41.2 MiB");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
    }
}
