//! Durations with units in scenario files: `"150ms"`, `"2s"`, `"1m 30s"`, `"500us"`.
//!
//! Parsing is `humantime`'s (units ns, us, ms, s, m, h, ...); a bare number is rejected so that a
//! unit is never guessed. [`SignedDuration`] also accepts a leading `+` or `-` (clock offsets and
//! jumps). Both serialize back to the same human form, so a resolved scenario reads like the file.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A non-negative duration, stored in nanoseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub u64);

impl Duration {
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms * 1_000_000)
    }
    /// From seconds.
    pub const fn from_secs(s: u64) -> Self {
        Duration(s * 1_000_000_000)
    }
    /// Nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// As a `std::time::Duration`.
    pub const fn to_std(self) -> StdDuration {
        StdDuration::from_nanos(self.0)
    }
    /// Parses `"150ms"`-style text; the error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("expected a duration with a unit such as \"150ms\" or \"2s\", found an empty string".into());
        }
        if trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(format!(
                "expected a duration with a unit such as \"{trimmed}ms\" or \"{trimmed}s\", found a bare number \"{trimmed}\""
            ));
        }
        humantime::parse_duration(trimmed)
            .map_err(|e| {
                format!(
                    "expected a duration such as \"150ms\" or \"2s\", found \"{trimmed}\" ({e})"
                )
            })
            .and_then(|d| {
                u64::try_from(d.as_nanos()).map(Duration).map_err(|_| {
                    format!("duration \"{trimmed}\" is too long (at most about 584 years)")
                })
            })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        write!(f, "{}", humantime::format_duration(self.to_std()))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, such as \"150ms\" or \"2s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// A duration that may be negative (clock offsets and jumps), in nanoseconds.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedDuration(pub i64);

impl SignedDuration {
    /// Parses `"-50ms"`, `"+2s"` or `"2s"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (sign, rest) = match t.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, t.strip_prefix('+').unwrap_or(t)),
        };
        let d = Duration::parse(rest)?;
        i64::try_from(d.0)
            .map(|n| SignedDuration(sign * n))
            .map_err(|_| format!("duration \"{t}\" is too long"))
    }
}

impl fmt::Display for SignedDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}", Duration(self.0.unsigned_abs()))
    }
}

impl Serialize for SignedDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SignedDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = SignedDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a signed duration string, such as \"-50ms\" or \"+2s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SignedDuration, E> {
                SignedDuration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_rejects_bare_numbers() {
        assert_eq!(
            Duration::parse("150ms").unwrap(),
            Duration::from_millis(150)
        );
        assert_eq!(Duration::parse("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(Duration::parse("1m 30s").unwrap(), Duration::from_secs(90));
        assert_eq!(Duration::parse("500us").unwrap(), Duration(500_000));
        assert!(Duration::parse("150").unwrap_err().contains("bare number"));
        assert!(Duration::parse("").is_err());
        assert!(Duration::parse("fast").is_err());
        assert_eq!(
            SignedDuration::parse("-50ms").unwrap(),
            SignedDuration(-50_000_000)
        );
        assert_eq!(
            SignedDuration::parse("+2s").unwrap(),
            SignedDuration(2_000_000_000)
        );
    }

    #[test]
    fn displays_in_the_form_it_parses() {
        for text in ["150ms", "2s", "1m 30s", "0s", "1h"] {
            let d = Duration::parse(text).unwrap();
            assert_eq!(Duration::parse(&d.to_string()).unwrap(), d);
        }
        assert_eq!(SignedDuration(-50_000_000).to_string(), "-50ms");
    }
}
