//! Exposure windows from a case's route, and contacts from the holders'
//! answers.
//!
//! Telcos are asked about everywhere the case is known to have been in
//! the contact period:
//! - each stay: the towers it used (or those within the contact radius of
//!   its place), during the stay padded by `exposure_padding_minutes`
//!   (pings are 10-30 minutes apart, so a person present the whole time
//!   may be seen only just before or after);
//! - each ping outside a stay (a short visit, a passage): its tower, padded
//!   the same way;
//! - each place the case told that no data shows (a case without a phone
//!   has only these): the towers that may serve it ([`TOLD_REACH_M`]),
//!   during the told times with their slack;
//! - home, for the nights of days no ping shows (a case without a phone):
//!   the household and who else was there.
//!
//! Card companies are asked about each payment the case made and each
//! place he told: the same merchant, during the stay it belongs to or an
//! hour either side.

use crate::route::{SourceKind, StayPoint, Timeline};
use crate::rules::Rules;
use crate::DAY;
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
    /// The stay it comes from, if it comes from one.
    pub stay: Option<u32>,
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
    /// What is asked: the case's presence, padded.
    pub t_start: i64,
    pub t_end: i64,
    /// The case's presence itself.
    pub present_from: i64,
    pub present_until: i64,
    /// The place's name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    pub audience: Audience,
}

/// Widest window radius asked for (a grant's bound): a stay's towers
/// (a few neighbours on a 1 km grid) or a told place's reach.
pub const MAX_WINDOW_RADIUS_M: f64 = 2_000.0;
/// Longest window asked for, in seconds (a grant's bound); a longer
/// presence (a day at home) is asked about in pieces this long.
pub const MAX_WINDOW_SPAN_S: i64 = 24 * 3600;
/// Windows one request may ask about, per day of its data period (a
/// grant's bound, with [`MAX_WINDOWS`]).
pub const MAX_WINDOWS_PER_DAY: u32 = 150;
/// Most windows one request asks about, however long its period.
pub const MAX_WINDOWS: u32 = 4_000;

/// The most windows a grant for `from..=until` lets the hub ask about.
pub fn max_windows(from: i64, until: i64) -> u32 {
    let days = ((until - from).max(0) / DAY + 1) as u32;
    days.saturating_mul(MAX_WINDOWS_PER_DAY).min(MAX_WINDOWS)
}
/// A payment's window without a stay around it, either side.
const PAYMENT_WINDOW_S: i64 = 3600;
/// The towers that may serve a told place or a home: a tower covers
/// places up to about this far (half the diagonal of a 1 km grid).
pub const TOLD_REACH_M: f64 = 750.0;
/// Told times are approximate.
const TOLD_SLACK_S: i64 = 30 * 60;
/// A merchant is at the place told within this distance.
const MERCHANT_REACH_M: f64 = 60.0;
/// Nights at home: from this hour to the next day's `NIGHT_END`, local.
const NIGHT_START_H: i64 = 20;
const NIGHT_END_H: i64 = 8;

/// The windows of a case's route within its contact period.
pub fn windows(timeline: &Timeline, rules: &Rules, period: (i64, i64)) -> Vec<Window> {
    let pad = i64::from(rules.exposure_padding_minutes) * 60;
    let mut out = Vec::new();
    let mut push = |w: Window| {
        let (mut t_start, t_end) = (w.t_start.max(period.0), w.t_end.min(period.1));
        // A long presence in pieces a grant allows.
        while t_start <= t_end {
            let piece_end = t_end.min(t_start + MAX_WINDOW_SPAN_S);
            out.push(Window {
                t_start,
                t_end: piece_end,
                // No wider than a grant allows.
                radius_m: w.radius_m.min(MAX_WINDOW_RADIUS_M),
                ..w.clone()
            });
            t_start = piece_end + 1;
        }
    };
    for s in &timeline.stays {
        if s.departure < period.0 || s.arrival > period.1 {
            continue;
        }
        telco_window(s, rules, pad, &mut push);
        if s.sources.iter().any(|x| x.kind == SourceKind::Card) {
            let (t_start, t_end) = if s.minutes > 0 {
                (s.arrival - pad, s.departure + pad)
            } else {
                (s.arrival - PAYMENT_WINDOW_S, s.departure + PAYMENT_WINDOW_S)
            };
            push(Window {
                stay: Some(s.id),
                lat: s.lat,
                lon: s.lon,
                // The merchant itself.
                radius_m: 1.0,
                t_start,
                t_end,
                present_from: s.arrival,
                present_until: s.departure,
                place: s.place.clone(),
                audience: Audience::CardCompanies,
            });
        }
    }
    for p in &timeline.passes {
        push(Window {
            stay: None,
            lat: p.lat,
            lon: p.lon,
            radius_m: rules.contact_radius_m,
            t_start: p.ts - pad,
            t_end: p.ts + pad,
            present_from: p.ts,
            present_until: p.ts,
            place: None,
            audience: Audience::Telcos,
        });
    }
    for c in timeline.interview.iter().filter(|c| c.stay.is_none()) {
        let t = &c.told;
        let slack = if t.timed { TOLD_SLACK_S } else { 0 };
        for (audience, radius_m) in [
            (Audience::Telcos, TOLD_REACH_M.max(rules.contact_radius_m)),
            (Audience::CardCompanies, MERCHANT_REACH_M),
        ] {
            push(Window {
                stay: None,
                lat: t.lat,
                lon: t.lon,
                radius_m,
                t_start: t.start - slack,
                t_end: t.end + slack,
                present_from: t.start,
                present_until: t.end,
                place: t.place.clone(),
                audience,
            });
        }
    }
    if let Some((lat, lon)) = timeline.home {
        // Nights of the days no ping placed the case anywhere.
        let offset = i64::from(rules.utc_offset_minutes) * 60;
        let first_day = (period.0 + offset).div_euclid(DAY);
        let last_day = (period.1 + offset).div_euclid(DAY);
        for day in first_day..=last_day {
            let (from, until) = (day * DAY - offset, (day + 1) * DAY - offset);
            let pinged = timeline
                .stays
                .iter()
                .any(|s| s.area.is_some() && s.departure >= from && s.arrival < until)
                || timeline.passes.iter().any(|p| p.ts >= from && p.ts < until);
            if pinged {
                continue;
            }
            let night = (from + NIGHT_START_H * 3600, until + NIGHT_END_H * 3600);
            push(Window {
                stay: None,
                lat,
                lon,
                radius_m: TOLD_REACH_M.max(rules.contact_radius_m),
                t_start: night.0,
                t_end: night.1,
                present_from: night.0,
                present_until: night.1,
                place: Some("home".into()),
                audience: Audience::Telcos,
            });
        }
    }
    out
}

/// A stay's telco window: the towers it used, or those near its place.
fn telco_window(s: &StayPoint, rules: &Rules, pad: i64, push: &mut impl FnMut(Window)) {
    let (lat, lon, radius) = match s.area {
        Some(a) => (a.lat, a.lon, rules.contact_radius_m.max(a.radius_m + 1.0)),
        // A place known without pings (a payment): the towers that may
        // serve it.
        None => (s.lat, s.lon, TOLD_REACH_M.max(rules.contact_radius_m)),
    };
    push(Window {
        stay: Some(s.id),
        lat,
        lon,
        radius_m: radius,
        t_start: s.arrival - pad,
        t_end: s.departure + pad,
        present_from: s.arrival,
        present_until: s.departure,
        place: s.place.clone(),
        audience: Audience::Telcos,
    });
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
    /// The case's stay where the exposure was (the longest one), if it was
    /// at a stay.
    pub stay: Option<u32>,
    pub place: Option<String>,
    pub lat: f64,
    pub lon: f64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// The estimated time together, in minutes.
    pub overlap_minutes: u32,
}

/// Contacts from one holder's answers to `windows`: one per person (the
/// exposure with the longest overlap) together with the case for at least
/// the response's minimum overlap, the case's own ids left out.
///
/// The time together is the case's presence intersected with the time the
/// person was seen there, widened by half the padding on each side (a
/// person seen once was there around that ping).
pub fn contacts(
    holder: &str,
    windows: &[Window],
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
        let seen = (s.first_seen - half_pad, s.last_seen + half_pad);
        let present = (
            w.present_from - half_pad,
            w.present_until.max(w.present_from + 60) + half_pad,
        );
        let together = (present.0.max(seen.0), present.1.min(seen.1));
        let overlap_minutes = ((together.1 - together.0).max(0) / 60) as u32;
        let c = Contact {
            holder: holder.to_owned(),
            id: s.id,
            stay: w.stay,
            place: w.place.clone(),
            lat: w.lat,
            lon: w.lon,
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
    // Contacts under the response's rules: together long enough.
    let mut out: Vec<Contact> = best
        .into_values()
        .filter(|c| c.overlap_minutes >= rules.min_overlap_minutes)
        .collect();
    out.sort_by_key(|c| (c.stay, c.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Area, InterviewStatus, Pass, Support, ToldCheck, ToldPlace};

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
            area: (kind == SourceKind::Pings).then_some(Area {
                lat: 37.5,
                lon: 127.0,
                radius_m: 400.0,
            }),
        }
    }

    #[test]
    fn everything_the_route_shows_in_the_period_gives_windows() {
        let told = ToldPlace {
            lat: 37.6,
            lon: 127.1,
            start: 20_000,
            end: 23_600,
            timed: true,
            place: Some("Cafe 9".into()),
        };
        let t = Timeline {
            stays: vec![
                stay(0, 1_000, 5_000, SourceKind::Pings, false),
                stay(1, 10_000, 10_000, SourceKind::Card, true),
                stay(2, 900_000, 990_000, SourceKind::Pings, false),
            ],
            passes: vec![Pass {
                ts: 30_000,
                lat: 37.55,
                lon: 127.05,
                holder: "h".into(),
            }],
            interview: vec![ToldCheck {
                row: 0,
                told,
                stay: None,
                unsupported: true,
            }],
            ..Timeline::default()
        };
        let r = Rules {
            exposure_padding_minutes: 15,
            ..Rules::default()
        };
        let w = windows(&t, &r, (0, 100_000));
        let kinds: Vec<(Option<u32>, &Audience)> =
            w.iter().map(|w| (w.stay, &w.audience)).collect();
        assert_eq!(
            kinds,
            vec![
                (Some(0), &Audience::Telcos),
                (Some(1), &Audience::Telcos),
                (Some(1), &Audience::CardCompanies),
                (None, &Audience::Telcos),
                (None, &Audience::Telcos),
                (None, &Audience::CardCompanies),
            ]
        );
        // The tower stay covers its towers, padded in time.
        assert_eq!(w[0].radius_m, 401.0);
        assert_eq!((w[0].t_start, w[0].t_end), (100, 5_900));
        // A payment alone: the towers near the merchant, and the merchant.
        assert_eq!(w[1].radius_m, TOLD_REACH_M);
        assert_eq!((w[2].t_start, w[2].t_end), (6_400, 13_600));
        // A passage: its tower, padded.
        assert_eq!(
            (w[3].t_start, w[3].t_end, w[3].radius_m),
            (29_100, 30_900, 100.0)
        );
        // A told place: with its slack.
        assert_eq!((w[4].t_start, w[4].t_end), (18_200, 25_400));
    }

    #[test]
    fn a_long_presence_is_asked_about_in_pieces_a_grant_allows() {
        let r = Rules {
            exposure_padding_minutes: 0,
            ..Rules::default()
        };
        let mut long = stay(0, 0, 60 * 3600, SourceKind::Pings, false);
        // Towers spread wider than a grant allows.
        long.area.as_mut().unwrap().radius_m = 5_000.0;
        let t = Timeline {
            stays: vec![long],
            ..Timeline::default()
        };
        let w = windows(&t, &r, (0, 10 * DAY));
        assert_eq!(w.len(), 3);
        assert!(w.iter().all(|w| w.radius_m == MAX_WINDOW_RADIUS_M));
        assert_eq!(w[0].t_start, 0);
        assert_eq!(w[2].t_end, 60 * 3600);
        for pair in w.windows(2) {
            assert_eq!(pair[1].t_start, pair[0].t_end + 1);
        }
        assert!(w.iter().all(|w| w.t_end - w.t_start <= MAX_WINDOW_SPAN_S));
        assert!(w.iter().all(|w| w.present_until == 60 * 3600));
        // The grant's bound grows with its period, up to the ceiling.
        assert_eq!(max_windows(0, DAY - 1), MAX_WINDOWS_PER_DAY);
        assert_eq!(max_windows(0, 9 * DAY - 1), 9 * MAX_WINDOWS_PER_DAY);
        assert_eq!(max_windows(0, 365 * DAY), MAX_WINDOWS);
    }

    #[test]
    fn a_case_without_a_phone_is_looked_for_at_home_at_night() {
        let r = Rules {
            exposure_padding_minutes: 15,
            ..Rules::default()
        };
        let day = 1_583_020_800 - 9 * 3600; // 2020-03-01 00:00 KST
        let t = Timeline {
            home: Some((37.5, 127.0)),
            stays: vec![stay(
                0,
                day + 10 * 3600,
                day + 12 * 3600,
                SourceKind::Pings,
                false,
            )],
            ..Timeline::default()
        };
        let w = windows(&t, &r, (day, day + 3 * DAY - 1));
        let homes: Vec<i64> = w
            .iter()
            .filter(|w| w.place.as_deref() == Some("home"))
            .map(|w| (w.t_start - day) / 3600)
            .collect();
        // Not the first day (pinged), but the second and third.
        assert_eq!(homes, vec![24 + 20, 48 + 20]);
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
        let r = Rules {
            exposure_padding_minutes: 15,
            ..Rules::default()
        };
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
        let c = contacts("SK Telecom", &w, sightings, &[99], &r);
        assert_eq!(c.len(), 2, "the case's own id is no contact");
        let seven = c.iter().find(|c| c.id == 7).unwrap();
        assert_eq!(seven.stay, Some(1));
        assert_eq!(
            seven.overlap_minutes,
            (12_000 + 450 - (7_200 - 450)) as u32 / 60
        );
        // Seen once: the padding around the ping.
        let c0 = contacts("SK Telecom", &w, [sightings[0]], &[], &r);
        assert_eq!(c0[0].overlap_minutes, 15);
        // Seen only well before the case arrived: together too briefly.
        let early = Sighting {
            window: 1,
            id: 5,
            first_seen: 7_200 - 900,
            last_seen: 7_200 - 900,
            events: 1,
        };
        assert!(contacts("SK Telecom", &w, [early], &[], &r).is_empty());
    }
}
