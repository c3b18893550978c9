//! Instants as microseconds since the Unix epoch, UTC.
//!
//! Both storage backends keep instants as 64-bit integers, so an instant
//! round-trips exactly and sorts the same everywhere.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    pub fn now() -> Self {
        let now = ::time::OffsetDateTime::now_utc();
        Self((now.unix_timestamp_nanos() / 1_000) as i64)
    }

    pub const fn micros(self) -> i64 {
        self.0
    }

    pub const fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1_000_000)))
    }

    /// Parses RFC 3339 (`2020-03-03T19:00:00Z`, `2020-03-03T19:00:00+09:00`).
    pub fn parse_rfc3339(raw: &str) -> Result<Self, crate::ValidationError> {
        let parsed = ::time::OffsetDateTime::parse(
            raw.trim(),
            &::time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| {
            crate::ValidationError::new(
                "time",
                "must be an RFC 3339 date-time such as 2020-03-03T19:00:00Z",
            )
        })?;
        Ok(Self((parsed.unix_timestamp_nanos() / 1_000) as i64))
    }

    pub fn to_rfc3339(self) -> String {
        ::time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .ok()
            .and_then(|t| {
                t.format(&::time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A closed interval of time, `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    start: Timestamp,
    end: Timestamp,
}

impl TimeWindow {
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self, crate::ValidationError> {
        if start > end {
            return Err(crate::ValidationError::new(
                "time window",
                "start must not be after end",
            ));
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> Timestamp {
        self.start
    }

    pub fn end(&self) -> Timestamp {
        self.end
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp::parse_rfc3339("2020-03-03T19:00:00+09:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2020-03-03T10:00:00Z");
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn window_is_ordered() {
        let a = Timestamp::from_micros(1);
        let b = Timestamp::from_micros(2);
        assert!(TimeWindow::new(a, b).unwrap().contains(a));
        assert!(TimeWindow::new(b, a).is_err());
    }
}
