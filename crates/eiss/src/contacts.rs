//! Exposure windows from a case's stays, and contacts from the holders'
//! answers.
//!
//! A telco is asked about every stay in the contact period: the towers
//! within the contact radius of the stay, or (for a stay known only to
//! its towers) every tower the stay used, during the stay padded by
//! `exposure_padding_minutes` (pings are 10-30 minutes apart, so a person
//! present the whole time may be seen only just before or after). A card
//! company is asked about each payment the case made: the same merchant,
//! during the stay it supports or within an hour of it.

use crate::geo::distance_m;
use crate::route::{SourceKind, StayPoint, Timeline};
use crate::rules::Rules;
use serde::{Deserialize, Serialize};

/// Which holders a window is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "for", content = "holder")]
pub enum Audience {
    /// Every telco.
    Telcos,
    /// The card companies (all of them: people pay with any card).
    CardCompanies,
}

/// A place and time to ask holders about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The stay it comes from.
    pub stay: u32,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    pub t_start: i64,
    pub t_end: i64,
    pub audience: Audience,
}

/// Widest window radius asked for (a grant's bound).
pub const MAX_WINDOW_RADIUS_M: f64 = 3_000.0;
/// Longest window asked for, in seconds (a grant's bound).
pub const MAX_WINDOW_SPAN_S: i64 = 36 * 3600;
/// Most windows one request asks about (a grant's bound).
pub const MAX_WINDOWS: u32 = 2_000;
/// A payment's window without a stay around it.
const PAYMENT_WINDOW_S: i64 = 3600;

/// The windows of a case's timeline within its contact period.
pub fn windows(timeline: &Timeline, rules: &Rules, period: (i64, i64)) -> Vec<Window> {
    let pad = i64::from(rules.exposure_padding_minutes) * 60;
    let mut out = Vec::new();
    for s in &timeline.stays {
        if s.departure < period.0 || s.arrival > period.1 {
            continue;
        }
        let paid = s.sources.iter().any(|x| x.kind == SourceKind::Card);
        let (t_start, t_end) = clip(s, pad, period);
        // Telcos: the towers the stay used, or those near its place.
        let (lat, lon, spread) = match s.area {
            Some(a) => (a.lat, a.lon, a.radius_m),
            None => (s.lat, s.lon, s.radius_m),
        };
        out.push(Window {
            stay: s.id,
            lat,
            lon,
            radius_m: rules
                .contact_radius_m
                .max(spread + 1.0)
                .min(MAX_WINDOW_RADIUS_M),
            t_start,
            t_end,
            audience: Audience::Telcos,
        });
        if paid {
            let (t_start, t_end) = if s.minutes > 0 {
                (t_start, t_end)
            } else {
                (
                    (s.arrival - PAYMENT_WINDOW_S).max(period.0),
                    (s.departure + PAYMENT_WINDOW_S).min(period.1),
                )
            };
            out.push(Window {
                stay: s.id,
                lat: s.lat,
                lon: s.lon,
                // The merchant itself.
                radius_m: 1.0,
                t_start,
                t_end,
                audience: Audience::CardCompanies,
            });
        }
    }
    out
}

/// The stay's interval, padded, within the period and the longest span.
fn clip(s: &StayPoint, pad: i64, period: (i64, i64)) -> (i64, i64) {
    let start = (s.arrival - pad).max(period.0);
    let end = (s.departure + pad).min(period.1).max(start);
    (start, end.min(start + MAX_WINDOW_SPAN_S))
}

/// One holder seen in one window: a holder's answer row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// Index into the windows asked.
    pub window: usize,
    pub id: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: u32,
}

/// A person exposed to a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// The institution that knows the person: a telco or a card company.
    pub holder: String,
    /// The subscriber or card id at that holder.
    pub id: u64,
    /// The case's stay where the exposure was (the longest one).
    pub stay: u32,
    pub place: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// The estimated time together, in minutes.
    pub overlap_minutes: u32,
}

/// Contacts from one holder's answers to `windows`: one per person (the
/// exposure with the longest overlap), the case's own ids left out.
///
/// The time together is the stay's interval intersected with the time the
/// person was seen there, widened by half the padding on each side (a
/// person seen once was there around that ping).
pub fn contacts(
    holder: &str,
    windows: &[Window],
    timeline: &Timeline,
    sightings: impl IntoIterator<Item = Sighting>,
    own_ids: &[u64],
    rules: &Rules,
) -> Vec<Contact> {
    let half_pad = i64::from(rules.exposure_padding_minutes) * 30;
    let mut best: std::collections::HashMap<u64, Contact> = std::collections::HashMap::new();
    for s in sightings {
        if own_ids.contains(&s.id) {
            continue;
        }
        let Some(w) = windows.get(s.window) else {
            continue;
        };
        let Some(stay) = timeline.stays.iter().find(|x| x.id == w.stay) else {
            continue;
        };
        let seen = (s.first_seen - half_pad, s.last_seen + half_pad);
        let together = (
            stay.arrival.max(seen.0),
            stay.departure.max(stay.arrival + 60).min(seen.1),
        );
        let overlap_minutes = ((together.1 - together.0).max(0) / 60) as u32;
        let c = Contact {
            holder: holder.to_owned(),
            id: s.id,
            stay: stay.id,
            place: stay.place.clone(),
            lat: stay.lat,
            lon: stay.lon,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            overlap_minutes,
        };
        match best.get(&s.id) {
            Some(old) if old.overlap_minutes >= overlap_minutes => {}
            _ => {
                best.insert(s.id, c);
            }
        }
    }
    let mut out: Vec<Contact> = best.into_values().collect();
    out.sort_by_key(|c| (c.stay, c.id));
    out
}

/// Whether a window near a place could concern that stay (for tests and
/// the contacts' place): within the window's radius.
pub fn covers(w: &Window, lat: f64, lon: f64) -> bool {
    distance_m(w.lat, w.lon, lat, lon) <= w.radius_m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{InterviewStatus, Support};

    fn stay(id: u32, arrival: i64, departure: i64, kind: SourceKind, precise: bool) -> StayPoint {
        StayPoint {
            id,
            lat: 37.5,
            lon: 127.0,
            radius_m: if precise { 0.0 } else { 400.0 },
            arrival,
            departure,
            minutes: ((departure - arrival) / 60) as u32,
            place: Some(format!("place {id}")),
            precise,
            sources: vec![Support {
                kind,
                holder: "h".into(),
                records: 1,
            }],
            interview: InterviewStatus::NotAsked,
            area: (!precise).then_some(crate::route::Area {
                lat: 37.5,
                lon: 127.0,
                radius_m: 400.0,
            }),
        }
    }

    #[test]
    fn stays_in_the_period_give_windows_for_their_holders() {
        let t = Timeline {
            stays: vec![
                stay(0, 1_000, 5_000, SourceKind::Pings, false),
                stay(1, 10_000, 10_000, SourceKind::Card, true),
                stay(2, 900_000, 990_000, SourceKind::Pings, false),
            ],
            ..Timeline::default()
        };
        let r = Rules::default();
        let w = windows(&t, &r, (0, 100_000));
        assert_eq!(w.len(), 3, "{w:#?}");
        // The tower stay covers its towers, padded in time.
        assert_eq!(w[0].radius_m, 401.0);
        assert_eq!((w[0].t_start, w[0].t_end), (100, 5_900));
        // A payment: telcos around the merchant, and the merchant itself.
        assert_eq!(w[1].audience, Audience::Telcos);
        assert_eq!(w[2].audience, Audience::CardCompanies);
        assert_eq!((w[2].t_start, w[2].t_end), (6_400, 13_600));
        assert!(covers(&w[2], 37.5, 127.0));
    }

    #[test]
    fn each_person_is_one_contact_with_the_longest_overlap() {
        let t = Timeline {
            stays: vec![
                stay(0, 0, 3_600, SourceKind::Pings, false),
                stay(1, 7_200, 14_400, SourceKind::Pings, false),
            ],
            ..Timeline::default()
        };
        let r = Rules::default();
        let w = windows(&t, &r, (0, 100_000));
        let sightings = [
            Sighting {
                window: 0,
                id: 7,
                first_seen: 600,
                last_seen: 600,
                events: 1,
            },
            Sighting {
                window: 1,
                id: 7,
                first_seen: 7_200,
                last_seen: 12_000,
                events: 5,
            },
            Sighting {
                window: 1,
                id: 99,
                first_seen: 8_000,
                last_seen: 8_000,
                events: 1,
            },
            Sighting {
                window: 0,
                id: 42,
                first_seen: 100,
                last_seen: 3_000,
                events: 4,
            },
        ];
        let c = contacts("SK Telecom", &w, &t, sightings, &[99], &r);
        assert_eq!(c.len(), 2, "the case's own id is no contact");
        let seven = c.iter().find(|c| c.id == 7).unwrap();
        assert_eq!(seven.stay, 1);
        assert_eq!(seven.overlap_minutes, (12_000 + 450 - 7_200) as u32 / 60);
        // Seen once: the padding around the ping.
        let c0 = contacts("SK Telecom", &w, &t, [sightings[0]], &[], &r);
        assert_eq!(c0[0].overlap_minutes, 15);
    }
}
