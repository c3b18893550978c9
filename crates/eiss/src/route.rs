//! A case's route: stay points from pings, card transactions and transit
//! taps, merged into one timeline, and checked against the interview.
//!
//! Pings place a phone at a tower, so a stay from pings is known to the
//! tower's area: its centre is the tower the phone used most, its radius
//! the farthest tower it used. A card transaction places a card at a
//! merchant at an instant; a transit tap, at a station. Where a payment
//! falls within a stay near the merchant, it supports that stay and names
//! it; otherwise it is a stay of its own. Taps in and out make trips.

use crate::geo::distance_m;
use crate::rules::Rules;
use serde::{Deserialize, Serialize};

/// What kind of data a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Pings,
    Card,
    Transit,
    Interview,
    /// A route published elsewhere (`civic eiss import-routes`).
    Published,
}

/// A record of a case at a place: a ping at a tower, a payment at a
/// merchant, a tap at a station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub ts: i64,
    pub lat: f64,
    pub lon: f64,
    /// Tower, merchant or station id at its holder.
    pub place_id: u64,
    /// Merchant or station name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: SourceKind,
    /// The holding institution.
    pub holder: String,
    /// For taps: `in` or `out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<TapKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TapKind {
    In,
    Out,
}

/// A place the case said he was (the interview), or a route published
/// elsewhere: local date, position, and clock times if given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToldPlace {
    pub lat: f64,
    pub lon: f64,
    /// Unix seconds; for a date-level row the local day.
    pub start: i64,
    pub end: i64,
    /// False for a date-level row (no clock times).
    pub timed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

/// What supports a stay point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Support {
    pub kind: SourceKind,
    pub holder: String,
    pub records: u32,
}

/// Where a stay point stands with the interview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterviewStatus {
    /// The case mentioned it (index of the interview row).
    Told { row: usize },
    /// The data shows it; the case did not mention it: ask him.
    NotTold,
    /// At home, or outside the period the interview covers.
    NotAsked,
}

/// A place where the case stayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StayPoint {
    pub id: u32,
    pub lat: f64,
    pub lon: f64,
    /// How far from (lat, lon) the case may have been: the spread of the
    /// towers used, 0 for a merchant or a place told.
    pub radius_m: f64,
    pub arrival: i64,
    pub departure: i64,
    pub minutes: u32,
    /// A merchant's, a station's or a told place's name; `home`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// Known to a place (merchant, station, told place, home address),
    /// not only to a tower's area.
    pub precise: bool,
    pub sources: Vec<Support>,
    pub interview: InterviewStatus,
    /// The towers' area of a stay from pings (kept when a payment or the
    /// interview pins the stay to a place within it): what telcos are
    /// asked about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<Area>,
}

/// The area of the towers a stay's pings used: the tower used most, and
/// the distance to the farthest one used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Area {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// A ride between two stations (a tap in, then a tap out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trip {
    pub holder: String,
    pub from: Option<String>,
    pub from_lat: f64,
    pub from_lon: f64,
    pub depart: i64,
    pub to: Option<String>,
    pub to_lat: f64,
    pub to_lon: f64,
    pub arrive: i64,
}

/// How an interview row stands with the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToldCheck {
    pub row: usize,
    pub told: ToldPlace,
    /// The stay point that supports it, if any.
    pub stay: Option<u32>,
    /// True when the data covers that time and nothing supports the row:
    /// ask the case again.
    pub unsupported: bool,
}

/// A ping outside any stay: a short visit or a passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    pub ts: i64,
    /// The tower's position.
    pub lat: f64,
    pub lon: f64,
    pub holder: String,
}

/// A case's reconstructed route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub stays: Vec<StayPoint>,
    pub trips: Vec<Trip>,
    pub interview: Vec<ToldCheck>,
    /// Pings outside the stays.
    #[serde(default)]
    pub passes: Vec<Pass>,
    /// The home address, if known.
    #[serde(default)]
    pub home: Option<(f64, f64)>,
}

impl Timeline {
    /// Stays the data shows and the case did not mention.
    pub fn not_told(&self) -> impl Iterator<Item = &StayPoint> {
        self.stays
            .iter()
            .filter(|s| s.interview == InterviewStatus::NotTold)
    }

    /// Interview rows no data supports.
    pub fn unsupported(&self) -> impl Iterator<Item = &ToldCheck> {
        self.interview.iter().filter(|c| c.unsupported)
    }
}

/// Everything known of a case for its route.
#[derive(Debug, Clone, Default)]
pub struct CaseData<'a> {
    pub events: &'a [Event],
    pub interview: &'a [ToldPlace],
    /// Home address (lat, lon), if known.
    pub home: Option<(f64, f64)>,
    /// The period the interview covers (local days), if there is one.
    pub interview_period: Option<(i64, i64)>,
}

/// A ping-derived stay whose centre is farther than this from a told
/// place or home can still be it: a tower serves places up to about this
/// far (half the diagonal of a 1 km grid).
pub const TOWER_REACH_M: f64 = 750.0;
/// Told times are approximate.
const TOLD_SLACK_S: i64 = 30 * 60;
/// A payment or tap this close in time to a stay supports it.
const SUPPORT_SLACK_S: i64 = 15 * 60;
/// A gap between pings longer than this ends a stay.
const MAX_GAP_S: i64 = 3 * 3600;

/// Reconstructs a case's timeline.
pub fn reconstruct(data: &CaseData<'_>, rules: &Rules) -> Timeline {
    let mut pings: Vec<&Event> = data
        .events
        .iter()
        .filter(|e| e.kind == SourceKind::Pings)
        .collect();
    pings.sort_by_key(|e| (e.ts, e.place_id));
    let (mut stays, passes) = stays_from_pings(&pings, rules);

    // Payments: support a stay nearby in time and place, else stand alone.
    let mut payments: Vec<&Event> = data
        .events
        .iter()
        .filter(|e| e.kind == SourceKind::Card)
        .collect();
    payments.sort_by_key(|e| e.ts);
    for p in payments {
        let near = stays.iter_mut().find(|s| {
            p.ts >= s.arrival - SUPPORT_SLACK_S
                && p.ts <= s.departure + SUPPORT_SLACK_S
                && distance_m(s.lat, s.lon, p.lat, p.lon) <= s.radius_m + TOWER_REACH_M
        });
        match near {
            Some(s) => {
                add_support(&mut s.sources, SourceKind::Card, &p.holder);
                if !s.precise {
                    // The merchant says where in the tower's area.
                    s.lat = p.lat;
                    s.lon = p.lon;
                    s.radius_m = 0.0;
                    s.precise = true;
                    s.place = p.name.clone().or(s.place.take());
                }
                s.arrival = s.arrival.min(p.ts);
                s.departure = s.departure.max(p.ts);
            }
            None => stays.push(StayPoint {
                id: 0,
                lat: p.lat,
                lon: p.lon,
                radius_m: 0.0,
                arrival: p.ts,
                departure: p.ts,
                minutes: 0,
                place: p.name.clone(),
                precise: true,
                sources: vec![Support {
                    kind: SourceKind::Card,
                    holder: p.holder.clone(),
                    records: 1,
                }],
                interview: InterviewStatus::NotAsked,
                area: None,
            }),
        }
    }

    // Taps: trips from a tap in to the next tap out; each end supports a
    // stay it touches.
    let mut taps: Vec<&Event> = data
        .events
        .iter()
        .filter(|e| e.kind == SourceKind::Transit)
        .collect();
    taps.sort_by_key(|e| (e.ts, e.tap == Some(TapKind::In)));
    let mut trips = Vec::new();
    let mut open: Option<&Event> = None;
    for t in taps {
        for s in stays.iter_mut() {
            if t.ts >= s.arrival - SUPPORT_SLACK_S
                && t.ts <= s.departure + SUPPORT_SLACK_S
                && distance_m(s.lat, s.lon, t.lat, t.lon) <= s.radius_m + TOWER_REACH_M
            {
                add_support(&mut s.sources, SourceKind::Transit, &t.holder);
            }
        }
        match (t.tap, open) {
            (Some(TapKind::Out), Some(start)) if t.ts >= start.ts => {
                trips.push(Trip {
                    holder: t.holder.clone(),
                    from: start.name.clone(),
                    from_lat: start.lat,
                    from_lon: start.lon,
                    depart: start.ts,
                    to: t.name.clone(),
                    to_lat: t.lat,
                    to_lon: t.lon,
                    arrive: t.ts,
                });
                open = None;
            }
            (Some(TapKind::In), _) => open = Some(t),
            _ => {}
        }
    }

    stays.sort_by_key(|s| (s.arrival, s.departure));
    for (i, s) in stays.iter_mut().enumerate() {
        s.id = i as u32;
        s.minutes = ((s.departure - s.arrival).max(0) / 60) as u32;
        if let Some((hlat, hlon)) = data.home {
            if distance_m(s.lat, s.lon, hlat, hlon) <= s.radius_m.max(50.0) + reach(s) {
                if s.place.is_none() {
                    s.place = Some("home".into());
                }
                if !s.precise {
                    s.lat = hlat;
                    s.lon = hlon;
                    s.radius_m = 0.0;
                    s.precise = true;
                }
                s.interview = InterviewStatus::NotAsked;
                s.place.get_or_insert_with(|| "home".into());
                continue;
            }
        }
        s.interview = match data.interview_period {
            Some((from, until)) if s.departure >= from && s.arrival <= until => {
                InterviewStatus::NotTold
            }
            _ => InterviewStatus::NotAsked,
        };
    }

    // The interview: each row against the stays.
    let mut checks = Vec::with_capacity(data.interview.len());
    for (row, told) in data.interview.iter().enumerate() {
        let slack = if told.timed { TOLD_SLACK_S } else { 0 };
        let best = stays
            .iter_mut()
            .filter(|s| {
                s.arrival <= told.end + slack
                    && s.departure >= told.start - slack
                    && distance_m(s.lat, s.lon, told.lat, told.lon)
                        <= s.radius_m + if s.precise { 200.0 } else { TOWER_REACH_M }
            })
            .min_by(|a, b| {
                distance_m(a.lat, a.lon, told.lat, told.lon)
                    .total_cmp(&distance_m(b.lat, b.lon, told.lat, told.lon))
            });
        let stay = match best {
            Some(s) => {
                s.interview = InterviewStatus::Told { row };
                add_support(&mut s.sources, SourceKind::Interview, "interview");
                if s.place.is_none() || s.place.as_deref() == Some("home") {
                    s.place = told.place.clone();
                }
                if !s.precise {
                    s.lat = told.lat;
                    s.lon = told.lon;
                    s.radius_m = 0.0;
                    s.precise = true;
                }
                Some(s.id)
            }
            None => None,
        };
        // Unsupported only where the data could have shown it: some record
        // of the case falls within a day of the told time.
        let covered = data
            .events
            .iter()
            .any(|e| e.ts >= told.start - crate::DAY / 2 && e.ts <= told.end + crate::DAY / 2);
        checks.push(ToldCheck {
            row,
            told: told.clone(),
            stay,
            unsupported: stay.is_none() && covered,
        });
    }
    trips.sort_by_key(|t| t.depart);
    Timeline {
        stays,
        trips,
        interview: checks,
        passes,
        home: data.home,
    }
}

fn reach(s: &StayPoint) -> f64 {
    if s.precise {
        100.0
    } else {
        TOWER_REACH_M
    }
}

fn add_support(sources: &mut Vec<Support>, kind: SourceKind, holder: &str) {
    match sources
        .iter_mut()
        .find(|s| s.kind == kind && s.holder == holder)
    {
        Some(s) => s.records += 1,
        None => sources.push(Support {
            kind,
            holder: holder.to_owned(),
            records: 1,
        }),
    }
}

/// Stay points from pings in time order: runs of pings whose towers lie
/// within `stay_distance_m` of the run's first tower, lasting at least
/// `stay_minutes`. A single ping elsewhere between two that return (a
/// handover to a farther tower) does not break a run.
fn stays_from_pings(pings: &[&Event], rules: &Rules) -> (Vec<StayPoint>, Vec<Pass>) {
    let mut out = Vec::new();
    let mut in_stay = vec![false; pings.len()];
    let min = i64::from(rules.stay_minutes) * 60;
    let d = rules.stay_distance_m;
    let mut i = 0;
    while i < pings.len() {
        let anchor = pings[i];
        let mut members = vec![i];
        let mut j = i + 1;
        while j < pings.len() {
            let last = pings[*members.last().expect("a run has a ping")];
            if pings[j].ts - last.ts > MAX_GAP_S {
                break;
            }
            if distance_m(anchor.lat, anchor.lon, pings[j].lat, pings[j].lon) <= d {
                members.push(j);
                j += 1;
                continue;
            }
            // One stray ping, then back: a handover.
            if j + 1 < pings.len()
                && pings[j + 1].ts - last.ts <= MAX_GAP_S
                && distance_m(anchor.lat, anchor.lon, pings[j + 1].lat, pings[j + 1].lon) <= d
            {
                members.push(j);
                members.push(j + 1);
                j += 2;
                continue;
            }
            break;
        }
        let first = pings[members[0]];
        let last = pings[*members.last().expect("a run has a ping")];
        if last.ts - first.ts >= min {
            for &m in &members {
                in_stay[m] = true;
            }
            // Centre: the tower used most; radius: the farthest used.
            let mut counts: Vec<(u64, u32, f64, f64, &str)> = Vec::new();
            for &m in &members {
                let p = pings[m];
                match counts
                    .iter_mut()
                    .find(|c| c.0 == p.place_id && c.4 == p.holder)
                {
                    Some(c) => c.1 += 1,
                    None => counts.push((p.place_id, 1, p.lat, p.lon, &p.holder)),
                }
            }
            let centre = counts
                .iter()
                .max_by_key(|c| (c.1, std::cmp::Reverse(c.0)))
                .expect("a run has a ping");
            let radius = counts
                .iter()
                .map(|c| distance_m(centre.2, centre.3, c.2, c.3))
                .fold(0.0, f64::max);
            let mut sources = Vec::new();
            for &m in &members {
                add_support(&mut sources, SourceKind::Pings, &pings[m].holder);
            }
            out.push(StayPoint {
                id: 0,
                lat: centre.2,
                lon: centre.3,
                radius_m: radius,
                arrival: first.ts,
                departure: last.ts,
                minutes: 0,
                place: None,
                precise: false,
                sources,
                interview: InterviewStatus::NotAsked,
                area: Some(Area {
                    lat: centre.2,
                    lon: centre.3,
                    radius_m: radius,
                }),
            });
            i = j;
        } else {
            i += 1;
        }
    }
    let passes = pings
        .iter()
        .zip(&in_stay)
        .filter(|(_, stayed)| !**stayed)
        .map(|(p, _)| Pass {
            ts: p.ts,
            lat: p.lat,
            lon: p.lon,
            holder: p.holder.clone(),
        })
        .collect();
    (out, passes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(ts: i64, tower: u64, lat: f64, lon: f64) -> Event {
        Event {
            ts,
            lat,
            lon,
            place_id: tower,
            name: None,
            kind: SourceKind::Pings,
            holder: "SK Telecom".into(),
            tap: None,
        }
    }

    /// 0.001° of latitude is about 111 m.
    const HOME: (f64, f64) = (37.5000, 127.0000);
    const OFFICE: (f64, f64) = (37.5300, 127.0000);
    const CAFE: (f64, f64) = (37.5600, 127.0000);

    fn day_of_pings() -> Vec<Event> {
        let mut e = Vec::new();
        // Home 00:00-08:00 every 20 min, with one handover ping.
        for k in 0..24 {
            let (tower, (lat, lon)) = if k == 10 {
                (2, (HOME.0 + 0.004, HOME.1))
            } else {
                (1, HOME)
            };
            e.push(ping(k * 1200, tower, lat, lon));
        }
        // Office 09:00-12:00.
        for k in 0..10 {
            e.push(ping(9 * 3600 + k * 1200, 10, OFFICE.0, OFFICE.1));
        }
        // A single ping while passing by: no stay.
        e.push(ping(12 * 3600 + 1800, 30, 37.545, 127.0));
        // Café 13:00-13:40.
        for k in 0..3 {
            e.push(ping(13 * 3600 + k * 1200, 20, CAFE.0, CAFE.1));
        }
        e
    }

    #[test]
    fn pings_become_stays_and_a_handover_does_not_break_one() {
        let events = day_of_pings();
        let t = reconstruct(
            &CaseData {
                events: &events,
                ..CaseData::default()
            },
            &Rules::default(),
        );
        assert_eq!(t.stays.len(), 3, "{:#?}", t.stays);
        assert_eq!(t.passes.len(), 1, "the ping while passing by");
        assert_eq!(t.passes[0].ts, 12 * 3600 + 1800);
        let home = &t.stays[0];
        assert_eq!((home.arrival, home.departure), (0, 23 * 1200));
        assert!(home.radius_m > 400.0, "the handover tower widens it");
        assert_eq!(home.sources[0].records, 24);
        assert_eq!(t.stays[1].minutes, 180);
        assert_eq!(t.stays[2].minutes, 40);
    }

    #[test]
    fn payments_name_stays_and_taps_make_trips() {
        let mut events = day_of_pings();
        events.push(Event {
            ts: 13 * 3600 + 600,
            lat: CAFE.0 + 0.001,
            lon: CAFE.1,
            place_id: 500,
            name: Some("Cafe Mapo 2".into()),
            kind: SourceKind::Card,
            holder: "Shinhan Card".into(),
            tap: None,
        });
        // A payment far from any stay stands alone.
        events.push(Event {
            ts: 20 * 3600,
            lat: 37.6,
            lon: 127.1,
            place_id: 501,
            name: Some("Shop Jongno 1".into()),
            kind: SourceKind::Card,
            holder: "Shinhan Card".into(),
            tap: None,
        });
        for (ts, kind, lat) in [
            (7 * 3600 + 3000, TapKind::In, HOME.0),
            (8 * 3600 + 3000, TapKind::Out, OFFICE.0),
        ] {
            events.push(Event {
                ts,
                lat,
                lon: 127.0,
                place_id: 1000,
                name: Some("Line 2 Station 4".into()),
                kind: SourceKind::Transit,
                holder: "Seoul Metro".into(),
                tap: Some(kind),
            });
        }
        let t = reconstruct(
            &CaseData {
                events: &events,
                home: Some(HOME),
                ..CaseData::default()
            },
            &Rules::default(),
        );
        let cafe = t
            .stays
            .iter()
            .find(|s| s.place.as_deref() == Some("Cafe Mapo 2"))
            .expect("the payment names the café stay");
        assert!(cafe.precise && cafe.sources.len() == 2);
        assert!(t
            .stays
            .iter()
            .any(|s| s.place.as_deref() == Some("Shop Jongno 1") && s.minutes == 0));
        assert_eq!(t.stays[0].place.as_deref(), Some("home"));
        assert_eq!(t.trips.len(), 1);
        assert_eq!(t.trips[0].arrive - t.trips[0].depart, 3600);
        // Both taps support the stays they touch (home, office).
        assert!(
            t.stays
                .iter()
                .filter(|s| s.sources.iter().any(|x| x.kind == SourceKind::Transit))
                .count()
                >= 2
        );
    }

    #[test]
    fn the_interview_is_checked_both_ways() {
        let events = day_of_pings();
        let told = vec![
            // The office, told with the right times.
            ToldPlace {
                lat: OFFICE.0 + 0.002,
                lon: OFFICE.1,
                start: 9 * 3600 + 600,
                end: 12 * 3600,
                timed: true,
                place: Some("Office Gangnam 3".into()),
            },
            // A restaurant at 19:00 that no data shows.
            ToldPlace {
                lat: 37.7,
                lon: 127.2,
                start: 19 * 3600,
                end: 20 * 3600,
                timed: true,
                place: Some("Restaurant Jung 5".into()),
            },
        ];
        let t = reconstruct(
            &CaseData {
                events: &events,
                interview: &told,
                home: Some(HOME),
                interview_period: Some((0, 86_400)),
            },
            &Rules::default(),
        );
        let office = t.stays.iter().find(|s| s.minutes == 180).unwrap();
        assert_eq!(office.interview, InterviewStatus::Told { row: 0 });
        assert_eq!(office.place.as_deref(), Some("Office Gangnam 3"));
        assert_eq!(t.interview[0].stay, Some(office.id));
        // The café was not told; home is never asked about.
        let not_told: Vec<_> = t.not_told().map(|s| s.minutes).collect();
        assert_eq!(not_told, vec![40]);
        let unsupported: Vec<_> = t.unsupported().map(|c| c.row).collect();
        assert_eq!(unsupported, vec![1]);
    }
}
