//! Human-friendly sizes (`"32MiB"`) and durations (`"500ms"`) used in policies and config.

use serde::{Deserialize, Deserializer, de};
use std::time::Duration;

/// Splits `"64 KiB"`-style text into its digits (underscores removed) and
/// its unit (trimmed).
fn split_number_and_unit(text: &str) -> (String, &str) {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    (digits.chars().filter(|c| *c != '_').collect(), unit.trim())
}

/// A byte size written as an integer or a string such as `"64KiB"`, `"32MiB"`, `"1GiB"`, `"500B"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"64KiB"`, `"32MiB"`, `"1GiB"`, `"10KB"`, `"123"` (bytes).
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let (digits, unit) = split_number_and_unit(text);
        if digits.is_empty() {
            return Err(format!(
                "`{text}` is not a size: expected e.g. \"64KiB\", \"32MiB\""
            ));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a size: number too large"))?;
        let mult: u64 = match unit {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "`{text}` has unknown size unit `{other}`: use B, KiB, MiB, GiB, KB, MB or GB"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        if b != 0 && b.is_multiple_of(1 << 30) {
            write!(f, "{}GiB", b >> 30)
        } else if b != 0 && b.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", b >> 20)
        } else if b != 0 && b.is_multiple_of(1 << 10) {
            write!(f, "{}KiB", b >> 10)
        } else {
            write!(f, "{b}B")
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(t) => ByteSize::parse(&t).map_err(de::Error::custom),
        }
    }
}

impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A duration written as a string such as `"500ms"`, `"2s"`, `"5m"`, `"4h"`, `"1d"`, `"250us"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `"500ms"`, `"2s"`, `"5m"`, `"4h"`, `"1d"`, `"250us"`.
    pub fn parse(text: &str) -> Result<HumanDuration, String> {
        let (digits, unit) = split_number_and_unit(text);
        let n: u64 = digits.parse().map_err(|_| {
            format!("`{text}` is not a duration: expected e.g. \"500ms\", \"2s\", \"4h\"")
        })?;
        let d = match unit {
            "us" | "µs" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "" => {
                return Err(format!(
                    "`{text}` has no unit: write e.g. \"{n}ms\" or \"{n}s\""
                ));
            }
            other => {
                return Err(format!(
                    "`{text}` has unknown duration unit `{other}`: use us, ms, s, m, h or d"
                ));
            }
        };
        Ok(HumanDuration(d))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = self.0.as_micros();
        if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1_000) {
            write!(f, "{}ms", us / 1_000)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = String::deserialize(d)?;
        HumanDuration::parse(&t).map_err(de::Error::custom)
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(ByteSize::parse("64KiB"), Ok(ByteSize(65_536)));
        assert_eq!(ByteSize::parse("32MiB"), Ok(ByteSize(32 << 20)));
        assert_eq!(ByteSize::parse("1_000"), Ok(ByteSize(1000)));
        assert_eq!(ByteSize::parse("2KB"), Ok(ByteSize(2000)));
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("MiB").is_err());
        assert!(ByteSize::parse("99999999999999999999GiB").is_err());
        assert_eq!(ByteSize(32 << 20).to_string(), "32MiB");
    }

    #[test]
    fn durations_parse_and_reject_missing_units() {
        assert_eq!(
            HumanDuration::parse("500ms").map(|d| d.get()),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            HumanDuration::parse("4h").map(|d| d.get()),
            Ok(Duration::from_secs(14_400))
        );
        assert!(HumanDuration::parse("500").is_err());
        assert!(HumanDuration::parse("5 fortnights").is_err());
        assert_eq!(
            HumanDuration(Duration::from_millis(1500)).to_string(),
            "1500ms"
        );
    }
}
