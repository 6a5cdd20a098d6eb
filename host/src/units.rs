//! The value types that policies and the daemon config write in human
//! units: sizes (`"32MiB"`), durations (`"500ms"`) and the fuel budget
//! (a number of units or `"off"`).
//!
//! Owns parsing, validation and display of those values. A leaf: it must
//! never import anything from the rest of the crate, and never accept a
//! value it cannot represent (overflow is an error naming the text, not a
//! wrap or a clamp).

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

/// The longest duration a policy or config may write: 100 years. Every
/// duration is added to clocks and deadlines (`Instant`, tokio timers,
/// millisecond counters); refusing longer ones when the file is read means
/// no later use can overflow (issue: `timeout = "10000000000000000d"`
/// passed `policy check` and panicked at request time).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A duration written as a string such as `"500ms"`, `"2s"`, `"5m"`, `"4h"`, `"1d"`, `"250us"`.
/// At most [`MAX_DURATION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `"500ms"`, `"2s"`, `"5m"`, `"4h"`, `"1d"`, `"250us"`.
    pub fn parse(text: &str) -> Result<HumanDuration, String> {
        let (digits, unit) = split_number_and_unit(text);
        let n: u64 = digits.parse().map_err(|_| {
            format!("`{text}` is not a duration: expected e.g. \"500ms\", \"2s\", \"4h\"")
        })?;
        let too_long =
            || format!("`{text}` is too long: durations are at most 100 years (\"36500d\")");
        let secs = |per: u64| {
            n.checked_mul(per)
                .map(Duration::from_secs)
                .ok_or_else(too_long)
        };
        let d = match unit {
            "us" | "µs" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" => secs(1)?,
            "m" => secs(60)?,
            "h" => secs(3600)?,
            "d" => secs(86_400)?,
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
        if d > MAX_DURATION {
            return Err(too_long());
        }
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

/// The fuel budget: a number of units, or `"off"` (metering disabled; wall time still applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Fuel {
    /// Metered with this many units.
    Limit(u64),
    /// Not metered.
    Off,
}

impl std::fmt::Display for Fuel {
    /// As a policy writes it: the number of units, or `off`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fuel::Limit(n) => write!(f, "{n}"),
            Fuel::Off => f.write_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for Fuel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(0) => Err(serde::de::Error::custom(
                "fuel = 0 would refuse every call: give a limit, or \"off\" to disable metering",
            )),
            Raw::Int(n) => Ok(Fuel::Limit(n)),
            Raw::Text(t) if t == "off" => Ok(Fuel::Off),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "fuel must be a positive integer or \"off\", not \"{t}\""
            ))),
        }
    }
}

/// `t` in milliseconds since the Unix epoch (0 before it; saturating far
/// after). The one conversion every recorded time goes through.
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    unix_ms(std::time::SystemTime::now())
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
        assert_eq!(
            HumanDuration::parse("36500d").map(|d| d.get()),
            Ok(MAX_DURATION)
        );
        for too_long in [
            "36501d",
            "10000000000000000d",
            "18446744073709551615s",
            "99999999999999999999ms",
        ] {
            assert!(HumanDuration::parse(too_long).is_err(), "{too_long}");
        }
        assert!(HumanDuration::parse("5 fortnights").is_err());
        assert_eq!(
            HumanDuration(Duration::from_millis(1500)).to_string(),
            "1500ms"
        );
    }

    proptest::proptest! {
        /// Any text either parses to a duration no longer than the maximum
        /// or is refused; nothing panics.
        #[test]
        fn every_parsed_duration_is_at_most_the_maximum(text in "[0-9_]{0,24}(us|ms|s|m|h|d|x)?") {
            if let Ok(d) = HumanDuration::parse(&text) {
                proptest::prop_assert!(d.get() <= MAX_DURATION);
                proptest::prop_assert!(std::time::Instant::now().checked_add(d.get()).is_some());
            }
        }

        /// Any text either parses to a size or is refused; nothing panics.
        #[test]
        fn sizes_never_panic(text in "[0-9_ ]{0,24}(B|KiB|MiB|GiB|KB|MB|GB|x)?") {
            let _ = ByteSize::parse(&text);
        }
    }
}
