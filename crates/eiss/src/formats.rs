//! The investigation's exchange files (CSV with a header row, UTF-8).
//!
//! - The case register (`civic eiss import-cases`):
//!   `case_id,region,onset_date,confirmed_date` and optionally
//!   `telco,subscriber_id,card_ids,transit_card_id,home_lat,home_lon`
//!   (`card_ids` is `company:id;company:id`), in any order after the
//!   first four.
//! - Case routes (`civic eiss import-routes`, and interviews):
//!   `case_id,date,lat,lon` and optionally `start_time,end_time,place`
//!   (local date and `HH:MM`).
//!
//! Every error names the line and the field; a file with one bad line is
//! refused whole.

use crate::route::ToldPlace;
use crate::rules::Rules;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct FormatError {
    pub line: usize,
    pub message: String,
}

fn bad(line: usize, message: impl Into<String>) -> FormatError {
    FormatError {
        line,
        message: message.into(),
    }
}

/// Splits a CSV line into fields, with `"…"` quoting (`""` for a quote).
pub fn split_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields.into_iter().map(|f| f.trim().to_owned()).collect()
}

/// A CSV text as (line number, header index → field) rows.
struct Table {
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
}

impl Table {
    fn parse(text: &str, required: &[&str]) -> Result<Table, FormatError> {
        let text = text.trim_start_matches('\u{feff}');
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, head)) = lines.next() else {
            return Err(bad(
                1,
                format!("empty: expected the header {}", required.join(",")),
            ));
        };
        let header = split_line(head);
        if header.len() < required.len() || header[..required.len()] != *required {
            return Err(bad(
                1,
                format!("the header must start with {}", required.join(",")),
            ));
        }
        let mut rows = Vec::new();
        for (n, line) in lines {
            let fields = split_line(line);
            if fields.len() != header.len() {
                return Err(bad(
                    n,
                    format!(
                        "{} fields where the header has {}",
                        fields.len(),
                        header.len()
                    ),
                ));
            }
            rows.push((n, fields));
        }
        Ok(Table { header, rows })
    }

    fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// A local calendar date, `YYYY-MM-DD`, in the years 2000–2099 (dates
/// outside them are typing errors, and bounding them keeps every sum of
/// days in range).
pub fn parse_date(raw: &str) -> Option<time::Date> {
    time::Date::parse(
        raw.trim(),
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
    .filter(|d| (2000..=2099).contains(&d.year()))
}

/// The longest time from symptom onset to confirmation a case may have.
pub const MAX_ONSET_TO_CONFIRMATION_DAYS: i64 = 60;

/// Checks a case's dates: confirmed on or after onset, and at most
/// [`MAX_ONSET_TO_CONFIRMATION_DAYS`] after it. The error names the
/// confirmation date's problem.
pub fn check_case_dates(onset: time::Date, confirmed: time::Date) -> Result<(), String> {
    if confirmed < onset {
        return Err("is before onset_date".into());
    }
    if (confirmed - onset).whole_days() > MAX_ONSET_TO_CONFIRMATION_DAYS {
        return Err(format!(
            "is more than {MAX_ONSET_TO_CONFIRMATION_DAYS} days after onset_date"
        ));
    }
    Ok(())
}

fn date(line: usize, field: &str, raw: &str) -> Result<time::Date, FormatError> {
    parse_date(raw).ok_or_else(|| {
        bad(
            line,
            format!("{field}: {raw:?} is not a date YYYY-MM-DD (years 2000-2099)"),
        )
    })
}

fn degrees(line: usize, field: &str, raw: &str, limit: f64) -> Result<f64, FormatError> {
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && v.abs() <= limit)
        .ok_or_else(|| {
            bad(
                line,
                format!("{field}: {raw:?} is not a {field} in degrees"),
            )
        })
}

fn id(line: usize, field: &str, raw: &str) -> Result<u64, FormatError> {
    raw.parse::<u64>()
        .map_err(|_| bad(line, format!("{field}: {raw:?} is not an unsigned integer")))
}

/// A case number as the health authority writes it: 1-40 characters of
/// letters, digits, `-`, `_`, `.`.
pub fn case_number(line: usize, raw: &str) -> Result<String, FormatError> {
    let ok = !raw.is_empty()
        && raw.chars().count() <= 40
        && raw
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(bad(
            line,
            format!("case_id: {raw:?} must be 1-40 letters, digits, '-', '_' or '.'"),
        ))
    }
}

/// What the health authority knows of a case, and how to ask holders
/// about its own data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// Phones: (telco code, subscriber id), e.g. ("skt", 12345).
    #[serde(default)]
    pub phones: Vec<(String, u64)>,
    /// Cards: (card company code, card id).
    #[serde(default)]
    pub cards: Vec<(String, u64)>,
    /// Transit cards.
    #[serde(default)]
    pub transit_cards: Vec<u64>,
    /// Home address as a position.
    #[serde(default)]
    pub home: Option<(f64, f64)>,
    /// Name and phone number, for the patient's notice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
}

impl Subject {
    /// Every personal value, as text (for tests that scan storage for
    /// plaintext).
    pub fn values(&self) -> Vec<String> {
        let mut out: Vec<String> = self.phones.iter().map(|p| p.1.to_string()).collect();
        out.extend(self.cards.iter().map(|c| c.1.to_string()));
        out.extend(self.transit_cards.iter().map(|c| c.to_string()));
        out.extend(self.name.clone());
        out.extend(self.phone_number.clone());
        out
    }
}

pub use civic_core::identity::holder_code;

/// A row of the case register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredCase {
    pub number: String,
    pub region: String,
    /// None where the register leaves it empty: the hub estimates it.
    pub onset: Option<time::Date>,
    pub confirmed: time::Date,
    pub subject: Subject,
}

/// Parses a case register.
pub fn case_register(text: &str) -> Result<Vec<RegisteredCase>, FormatError> {
    let t = Table::parse(text, &["case_id", "region", "onset_date", "confirmed_date"])?;
    let col = |name| t.column(name);
    let (telco, sub, cards, transit, hlat, hlon) = (
        col("telco"),
        col("subscriber_id"),
        col("card_ids"),
        col("transit_card_id"),
        col("home_lat"),
        col("home_lon"),
    );
    let (name, phone) = (col("name"), col("phone_number"));
    let mut out = Vec::with_capacity(t.rows.len());
    for (n, f) in &t.rows {
        let n = *n;
        let get = |c: Option<usize>| c.map(|c| f[c].as_str()).filter(|v| !v.is_empty());
        let onset = match f[2].trim() {
            "" => None,
            raw => Some(date(n, "onset_date", raw)?),
        };
        let confirmed = date(n, "confirmed_date", &f[3])?;
        if let Some(onset) = onset {
            check_case_dates(onset, confirmed)
                .map_err(|e| bad(n, format!("confirmed_date {e}")))?;
        }
        let mut subject = Subject::default();
        match (get(telco), get(sub)) {
            (Some(t), Some(s)) => subject.phones.push((
                holder_code(t)
                    .ok_or_else(|| bad(n, format!("telco: {t:?} is not a holder code")))?,
                id(n, "subscriber_id", s)?,
            )),
            (None, None) => {}
            _ => return Err(bad(n, "telco and subscriber_id go together")),
        }
        if let Some(list) = get(cards) {
            for item in list.split(';').filter(|s| !s.trim().is_empty()) {
                let (company, card) = item
                    .split_once(':')
                    .ok_or_else(|| bad(n, format!("card_ids: {item:?} is not company:id")))?;
                subject.cards.push((
                    holder_code(company).ok_or_else(|| {
                        bad(n, format!("card_ids: {company:?} is not a holder code"))
                    })?,
                    id(n, "card_ids", card.trim())?,
                ));
            }
        }
        if let Some(card) = get(transit) {
            subject.transit_cards.push(id(n, "transit_card_id", card)?);
        }
        match (get(hlat), get(hlon)) {
            (Some(a), Some(o)) => {
                subject.home = Some((
                    degrees(n, "home_lat", a, 90.0)?,
                    degrees(n, "home_lon", o, 180.0)?,
                ))
            }
            (None, None) => {}
            _ => return Err(bad(n, "home_lat and home_lon go together")),
        }
        subject.name = get(name).map(str::to_owned);
        subject.phone_number = get(phone).map(str::to_owned);
        out.push(RegisteredCase {
            number: case_number(n, &f[0])?,
            region: f[1].to_ascii_lowercase(),
            onset,
            confirmed,
            subject,
        });
    }
    Ok(out)
}

/// Parses `HH:MM` into seconds after midnight.
fn clock(line: usize, field: &str, raw: &str) -> Result<i64, FormatError> {
    let (h, m) = raw
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i64>().ok()?, m.parse::<i64>().ok()?)))
        .filter(|(h, m)| (0..=24).contains(h) && (0..60).contains(m) && (*h < 24 || *m == 0))
        .ok_or_else(|| bad(line, format!("{field}: {raw:?} is not a time HH:MM")))?;
    Ok(h * 3600 + m * 60)
}

/// Parses case routes: (case number, place) rows, in the file's order.
pub fn case_routes(text: &str, rules: &Rules) -> Result<Vec<(String, ToldPlace)>, FormatError> {
    let t = Table::parse(text, &["case_id", "date", "lat", "lon"])?;
    let (start, end, place) = (
        t.column("start_time"),
        t.column("end_time"),
        t.column("place"),
    );
    let mut out = Vec::with_capacity(t.rows.len());
    for (n, f) in &t.rows {
        let n = *n;
        let get = |c: Option<usize>| c.map(|c| f[c].as_str()).filter(|v| !v.is_empty());
        let day = date(n, "date", &f[1])?;
        let midnight = rules.midnight(day);
        let (from, until, timed) = match (get(start), get(end)) {
            (Some(a), Some(b)) => {
                let (a, b) = (clock(n, "start_time", a)?, clock(n, "end_time", b)?);
                // An end before the start runs past midnight.
                let b = if b < a { b + crate::DAY } else { b };
                (midnight + a, midnight + b, true)
            }
            (None, None) => (midnight, midnight + crate::DAY - 1, false),
            _ => return Err(bad(n, "start_time and end_time go together")),
        };
        let place = get(place).map(str::to_owned);
        if let Some(p) = &place {
            // A place is shown to people: text, no control characters.
            if p.chars().any(char::is_control) || p.chars().count() > 200 {
                return Err(bad(
                    n,
                    "place: at most 200 characters, no control characters",
                ));
            }
        }
        out.push((
            case_number(n, &f[0])?,
            ToldPlace {
                lat: degrees(n, "lat", &f[2], 90.0)?,
                lon: degrees(n, "lon", &f[3], 180.0)?,
                start: from,
                end: until,
                timed,
                place,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_register_parses_and_bad_rows_are_named() {
        let text = "case_id,region,onset_date,confirmed_date,telco,subscriber_id,card_ids,transit_card_id,home_lat,home_lon\n\
                    1001,seoul-gangbuk,2020-03-04,2020-03-05,skt,426922661225,lotte:506;shinhan:106,506,37.55,126.98\n\
                    1002,seoul-guro,2020-03-04,2020-03-06,,,,,,\n";
        let cases = case_register(text).unwrap();
        assert_eq!(cases.len(), 2);
        assert_eq!(
            cases[0].subject.phones,
            vec![("skt".into(), 426_922_661_225)]
        );
        assert_eq!(cases[0].subject.cards.len(), 2);
        assert_eq!(cases[0].subject.home, Some((37.55, 126.98)));
        assert_eq!(cases[1].subject, Subject::default());
        let bad = text.replace("2020-03-06", "2020-03-01");
        assert_eq!(case_register(&bad).unwrap_err().line, 3);
        let bad = text.replace("426922661225", "x");
        assert!(case_register(&bad)
            .unwrap_err()
            .message
            .contains("subscriber_id"));
        // A published register: the confirmation date only.
        let published =
            case_register("case_id,region,onset_date,confirmed_date\n7,seoul-guro,,2020-03-06\n")
                .unwrap();
        assert_eq!(published[0].onset, None);
        assert_eq!(published[0].confirmed, parse_date("2020-03-06").unwrap());
        assert!(
            case_register("case_id,region,onset_date,confirmed_date\n7,seoul-guro,,\n")
                .unwrap_err()
                .message
                .contains("confirmed_date")
        );
        assert!(case_register("id,region\n").is_err());
        assert!(case_register(
            "case_id,region,onset_date,confirmed_date\n1 0,r,2020-03-01,2020-03-02\n"
        )
        .is_err());
    }

    #[test]
    fn dates_are_bounded_and_a_case_is_confirmed_within_sixty_days() {
        assert!(parse_date("2020-03-01").is_some());
        assert!(parse_date("1999-12-31").is_none());
        assert!(parse_date("9999-12-31").is_none());
        assert!(parse_date("2020-02-30").is_none());
        let d = |s| parse_date(s).unwrap();
        assert!(check_case_dates(d("2020-03-01"), d("2020-03-01")).is_ok());
        assert!(check_case_dates(d("2020-03-01"), d("2020-04-30")).is_ok());
        assert!(check_case_dates(d("2020-03-01"), d("2020-05-01")).is_err());
        assert!(check_case_dates(d("2020-03-02"), d("2020-03-01")).is_err());
        let rules = Rules::default();
        let far = case_routes("case_id,date,lat,lon\n1,9999-12-31,37.5,127\n", &rules);
        assert_eq!(far.unwrap_err().line, 2);
    }

    #[test]
    fn routes_take_dates_and_local_times() {
        let rules = Rules::default();
        let text = "case_id,date,lat,lon,start_time,end_time,place\n\
                    1001,2020-03-02,37.544047,126.983929,07:48,15:46,\"Hospital, Dongjak 1\"\n\
                    1001,2020-03-03,37.5,126.9,,,\n\
                    1002,2020-03-03,37.5,126.9,23:30,01:00,Club\n";
        let rows = case_routes(text, &rules).unwrap();
        assert_eq!(rows.len(), 3);
        let (case, p) = &rows[0];
        assert_eq!(case, "1001");
        assert!(p.timed);
        assert_eq!(p.place.as_deref(), Some("Hospital, Dongjak 1"));
        assert_eq!(rules.local_hhmm(p.start), "07:48");
        assert!(!rows[1].1.timed);
        assert_eq!(rows[1].1.end - rows[1].1.start, 86_399);
        assert_eq!(rows[2].1.end - rows[2].1.start, 90 * 60, "past midnight");
        assert!(case_routes("case_id,date,lat,lon\n1,2020-13-01,1,1\n", &rules).is_err());
        assert!(case_routes("case_id,date,lat,lon\n1,2020-03-01,91,1\n", &rules).is_err());
        assert!(case_routes(
            "case_id,date,lat,lon,start_time,end_time\n1,2020-03-01,1,1,25:00,26:00\n",
            &rules
        )
        .is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // No input makes the parsers panic.
        #[test]
        fn parsers_never_panic(text in "\\PC{0,400}") {
            let _ = case_register(&text);
            let _ = case_routes(&text, &Rules::default());
            let _ = case_register(&format!("case_id,region,onset_date,confirmed_date,telco,subscriber_id\n{text}"));
            let _ = case_routes(&format!("case_id,date,lat,lon,start_time,end_time,place\n{text}"), &Rules::default());
        }
    }
}
