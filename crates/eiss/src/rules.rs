//! A response's rules: how near and how long makes a contact, how far
//! back data is asked for, what a stay is.

use serde::{Deserialize, Serialize};

/// The rules of one outbreak response, fixed when it opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// A contact is within this distance of a case's stay (for a stay
    /// known only to a tower, the towers it used are covered as well).
    pub contact_radius_m: f64,
    /// … for at least this long.
    pub min_overlap_minutes: u32,
    /// Contacts are looked for from this many days before symptom onset
    /// (the infectious period) until confirmation.
    pub lookback_days: u32,
    /// A case's own data may be asked for from this many days before
    /// onset (the incubation period: where was the case infected?).
    pub source_lookback_days: u32,
    /// Pings within this distance of each other make one stay …
    pub stay_distance_m: f64,
    /// … if they span at least this long.
    pub stay_minutes: u32,
    /// A holder seen in a window up to this long before or after the
    /// case's stay counts (pings are 10-30 minutes apart).
    pub exposure_padding_minutes: u32,
    /// Local time of dates and clock times in files and interviews, in
    /// minutes east of UTC (540: Korea).
    pub utc_offset_minutes: i32,
    /// A case registered without its onset (published registers often
    /// have only the confirmation date) is taken to have fallen ill this
    /// many days before confirmation: the typical delay (3 days in Korea
    /// in spring 2020; the simulator draws 1-5).
    pub onset_to_confirmation_days: u32,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            contact_radius_m: 100.0,
            min_overlap_minutes: 10,
            lookback_days: 2,
            source_lookback_days: 14,
            stay_distance_m: 200.0,
            stay_minutes: 10,
            exposure_padding_minutes: 30,
            utc_offset_minutes: 540,
            onset_to_confirmation_days: 3,
        }
    }
}

impl Rules {
    /// Checks every bound; the message names the rule.
    pub fn check(&self) -> Result<(), String> {
        let bad = |what: &str, range: &str| Err(format!("{what} must be {range}"));
        // Within what a grant lets the hub ask holders about.
        if !(1.0..=crate::contacts::MAX_WINDOW_RADIUS_M).contains(&self.contact_radius_m) {
            return bad("contact_radius_m", "1-2000");
        }
        if !(1..=24 * 60).contains(&self.min_overlap_minutes) {
            return bad("min_overlap_minutes", "1-1440");
        }
        if self.lookback_days > 14 {
            return bad("lookback_days", "0-14");
        }
        if !(self.lookback_days..=28).contains(&self.source_lookback_days) {
            return bad("source_lookback_days", "lookback_days-28");
        }
        if !(10.0..=2_000.0).contains(&self.stay_distance_m) {
            return bad("stay_distance_m", "10-2000");
        }
        if !(1..=24 * 60).contains(&self.stay_minutes) {
            return bad("stay_minutes", "1-1440");
        }
        if self.exposure_padding_minutes > 120 {
            return bad("exposure_padding_minutes", "0-120");
        }
        if !(-12 * 60..=14 * 60).contains(&self.utc_offset_minutes) {
            return bad("utc_offset_minutes", "-720-840");
        }
        if self.onset_to_confirmation_days > 14 {
            return bad("onset_to_confirmation_days", "0-14");
        }
        Ok(())
    }

    pub fn utc_offset(&self) -> time::UtcOffset {
        time::UtcOffset::from_whole_seconds(self.utc_offset_minutes * 60)
            .unwrap_or(time::UtcOffset::UTC)
    }

    /// The onset of a case known only by its confirmation date.
    pub fn estimated_onset(&self, confirmed: time::Date) -> time::Date {
        confirmed.saturating_sub(time::Duration::days(i64::from(
            self.onset_to_confirmation_days,
        )))
    }

    /// The Unix time of local midnight starting `date`.
    pub fn midnight(&self, date: time::Date) -> i64 {
        date.midnight()
            .assume_offset(self.utc_offset())
            .unix_timestamp()
    }

    /// The local date of a Unix time.
    pub fn local_date(&self, ts: i64) -> time::Date {
        time::OffsetDateTime::from_unix_timestamp(ts)
            .map(|t| t.to_offset(self.utc_offset()).date())
            .unwrap_or(time::Date::MIN)
    }

    /// Local `HH:MM` of a Unix time.
    pub fn local_hhmm(&self, ts: i64) -> String {
        time::OffsetDateTime::from_unix_timestamp(ts)
            .map(|t| {
                let t = t.to_offset(self.utc_offset());
                format!("{:02}:{:02}", t.hour(), t.minute())
            })
            .unwrap_or_default()
    }

    /// The period a case's data may be asked for: from local midnight
    /// `source_lookback_days` before onset to the end of the day of
    /// confirmation.
    pub fn data_period(&self, onset: time::Date, confirmed: time::Date) -> (i64, i64) {
        (
            self.midnight(onset) - i64::from(self.source_lookback_days) * crate::DAY,
            self.midnight(confirmed) + crate::DAY - 1,
        )
    }

    /// The period contacts are looked for in: from local midnight
    /// `lookback_days` before onset to the end of the day of confirmation.
    pub fn contact_period(&self, onset: time::Date, confirmed: time::Date) -> (i64, i64) {
        (
            self.midnight(onset) - i64::from(self.lookback_days) * crate::DAY,
            self.midnight(confirmed) + crate::DAY - 1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_bounds_are_named() {
        assert!(Rules::default().check().is_ok());
        let r = Rules {
            contact_radius_m: 0.0,
            ..Rules::default()
        };
        assert!(r.check().unwrap_err().contains("contact_radius_m"));
        let r = Rules {
            source_lookback_days: 1,
            ..Rules::default()
        };
        assert!(r.check().unwrap_err().contains("source_lookback_days"));
    }

    #[test]
    fn periods_are_local() {
        let r = Rules::default();
        let d = time::macros::date!(2020 - 03 - 05);
        // Local midnight in Korea is 15:00 UTC the day before.
        assert_eq!(r.midnight(d), 1_583_334_000);
        let (from, until) = r.contact_period(d, time::macros::date!(2020 - 03 - 07));
        assert_eq!(from, 1_583_334_000 - 2 * 86_400);
        assert_eq!(until, r.midnight(time::macros::date!(2020 - 03 - 08)) - 1);
        assert_eq!(r.local_date(1_583_334_000), d);
        assert_eq!(r.local_hhmm(1_583_334_000 + 3_600 * 9 + 60 * 5), "09:05");
    }
}
