//! The simulation, one day at a time: every person's plan for the day
//! (stays and trips), transmission where infectious people met others,
//! then what the institutions would record — pings, card payments, subway
//! taps — and the ground truth. Memory holds one day, not the whole run.

use crate::city::{
    district_name, City, Occupation, Person, VenueKind, MERCHANT_ID_BASE, STOP_ID_BASE,
    TOWER_ID_BASE, VENUE_ID_BASE,
};
use crate::geo::{distance_m, Point};
use crate::out::{Csv, Row};
use crate::rng::Rng;
use crate::scenario::{Scenario, CARD_COMPANIES};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

pub const DAY: i64 = 86_400;
/// Korea Standard Time: schedules are local, files are UTC seconds.
pub const KST_OFFSET: i64 = 9 * 3600;

#[derive(Clone, Copy, Debug)]
struct Stay {
    venue: u32,
    from: i32,
    to: i32,
}

#[derive(Clone, Copy, Debug)]
enum Leg {
    Walk,
    Car,
    Ride { stop_in: u32, stop_out: u32 },
}

#[derive(Clone, Copy, Debug)]
struct Move {
    from: Point,
    to: Point,
    t0: i32,
    t1: i32,
    leg: Leg,
}

#[derive(Clone, Copy, Debug)]
enum Seg {
    Stay(Stay),
    Move(Move),
}

/// What the run needs besides the scenario.
#[derive(Debug, Clone)]
pub struct Params {
    pub people: usize,
    pub days: u32,
    pub seed: u64,
    pub start: time::Date,
    pub bbox: crate::geo::BBox,
    pub scenario: Scenario,
    /// Worker threads for the observations (the output does not depend on it).
    pub threads: usize,
}

impl Params {
    /// The default city: Seoul from 2020-03-01, the default scenario.
    pub fn seoul(people: usize, days: u32, seed: u64, threads: usize) -> Self {
        Self {
            people,
            days,
            seed,
            start: time::macros::date!(2020 - 03 - 01),
            bbox: crate::geo::BBox::SEOUL,
            scenario: Scenario::default(),
            threads,
        }
    }
}

/// Counts of what was written, kept as `summary.json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub seed: u64,
    pub people: u64,
    pub days: u32,
    pub start: String,
    pub towers: u64,
    pub venues: u64,
    pub merchants: u64,
    pub stops: u64,
    pub phones: u64,
    pub cards: u64,
    pub pings: u64,
    pub pings_by_telco: BTreeMap<String, u64>,
    pub transactions: u64,
    pub taps: u64,
    pub visits: u64,
    pub infections: u64,
    pub cases: u64,
    pub clusters: u64,
    /// Settings with two or more cases infected there (`groups.csv`).
    pub groups: u64,
    pub interview_rows: u64,
    /// Rows of `published-routes.csv`, and cases with none.
    pub published_rows: u64,
    pub published_without_route: u64,
}

#[derive(Clone, Copy, Default)]
struct Health {
    infected_at: Option<i64>,
    infector: Option<u32>,
    venue: u32,
    infectious_from: i64,
    recovered_at: i64,
    onset: i64,
    /// Local day index of confirmation (may be past the horizon).
    confirmed_day: i64,
    /// The interview asks from here: local midnight two days before the
    /// day of onset (the scorer's truth contacts use the same window).
    interview_from: i64,
}

impl Health {
    fn infectious_during(&self, from: i64, to: i64) -> Option<(i64, i64)> {
        self.infected_at?;
        let (a, b) = (from.max(self.infectious_from), to.min(self.recovered_at));
        (a < b).then_some((a, b))
    }
}

fn jitter(rng: &mut Rng, base_min: i32, spread_min: i32) -> i32 {
    (base_min + rng.range(-(spread_min as i64), spread_min as i64 + 1) as i32) * 60
}

/// Where a person means to be today: `(venue, from, to)` in local seconds,
/// starting and ending at home.
fn intentions(p: &Person, weekday: u32, isolated: bool, rng: &mut Rng) -> Vec<(u32, i32, i32)> {
    let mut plan = Vec::with_capacity(8);
    if isolated || p.occupation == Occupation::Child {
        return plan;
    }
    let weekend = weekday >= 5;
    let young_night = |plan: &mut Vec<(u32, i32, i32)>, rng: &mut Rng, chance: f64| {
        if let Some(club) = p.club {
            if rng.chance(chance) {
                plan.push((club, jitter(rng, 21 * 60 + 30, 30), 23 * 3600 + 50 * 60));
            }
        }
    };
    if !weekend {
        match (p.occupation, p.work) {
            (Occupation::Student, Some(school)) => {
                plan.push((
                    school,
                    jitter(rng, 8 * 60 + 30, 10),
                    jitter(rng, 15 * 60 + 30, 30),
                ));
                if rng.chance(0.4) {
                    let v = p.evening[2 + rng.index(3)];
                    plan.push((
                        v,
                        jitter(rng, 16 * 60 + 30, 20),
                        jitter(rng, 17 * 60 + 45, 20),
                    ));
                }
            }
            (occupation, Some(work)) => {
                let (start, end) = match occupation {
                    Occupation::HospitalWorker => (7 * 60, 16 * 60),
                    Occupation::ServiceWorker => (10 * 60, 19 * 60),
                    _ => (9 * 60, 18 * 60 + 30),
                };
                let (start, end) = (jitter(rng, start, 30), jitter(rng, end, 45));
                if occupation != Occupation::ServiceWorker && rng.chance(0.6) {
                    let lunch = p.lunch[rng.index(3)];
                    let l0 = jitter(rng, 12 * 60 + 5, 10);
                    plan.push((work, start, l0 - 5 * 60));
                    plan.push((lunch, l0, l0 + rng.range(35, 55) as i32 * 60));
                    plan.push((work, l0 + 60 * 60, end));
                } else {
                    plan.push((work, start, end));
                }
                let r = rng.f64();
                if r < 0.22 {
                    let v = p.evening[rng.index(2)];
                    plan.push((v, end + 20 * 60, end + rng.range(70, 130) as i32 * 60));
                } else if r < 0.32 {
                    plan.push((p.evening[2], end + 15 * 60, end + 60 * 60));
                } else if r < 0.42 {
                    plan.push((p.evening[3 + rng.index(2)], end + 15 * 60, end + 50 * 60));
                }
                if weekday == 4 {
                    young_night(&mut plan, rng, 0.3);
                }
            }
            _ => {
                if rng.chance(0.05) {
                    plan.push((
                        p.evening[5],
                        jitter(rng, 9 * 60 + 30, 30),
                        jitter(rng, 11 * 60, 20),
                    ));
                }
                if rng.chance(0.5) {
                    plan.push((
                        p.evening[3 + rng.index(2)],
                        jitter(rng, 11 * 60 + 30, 15),
                        jitter(rng, 12 * 60 + 10, 10),
                    ));
                }
                if rng.chance(0.3) {
                    plan.push((
                        p.evening[rng.index(2)],
                        jitter(rng, 12 * 60 + 40, 10),
                        jitter(rng, 13 * 60 + 40, 10),
                    ));
                }
                if rng.chance(0.15) {
                    plan.push((
                        p.evening[2],
                        jitter(rng, 15 * 60, 20),
                        jitter(rng, 16 * 60, 15),
                    ));
                }
            }
        }
        return plan;
    }
    if weekday == 6 {
        if let Some(church) = p.church {
            let end = if rng.chance(0.4) {
                13 * 3600
            } else {
                12 * 3600
            };
            plan.push((church, jitter(rng, 10 * 60, 10), end));
        }
    }
    if p.occupation == Occupation::HospitalWorker && rng.chance(0.3) {
        if let Some(work) = p.work {
            plan.push((work, jitter(rng, 14 * 60, 10), jitter(rng, 19 * 60, 20)));
            return plan;
        }
    }
    if rng.chance(0.4) {
        plan.push((
            p.evening[3 + rng.index(2)],
            jitter(rng, 14 * 60 + 30, 30),
            jitter(rng, 15 * 60 + 40, 20),
        ));
    }
    if rng.chance(0.2) {
        plan.push((
            p.evening[2],
            jitter(rng, 16 * 60 + 20, 10),
            jitter(rng, 17 * 60 + 10, 10),
        ));
    }
    if rng.chance(0.35) {
        plan.push((
            p.evening[rng.index(2)],
            jitter(rng, 18 * 60 + 30, 20),
            jitter(rng, 19 * 60 + 50, 20),
        ));
    }
    if weekday == 5 {
        young_night(&mut plan, rng, 0.5);
    }
    plan
}

/// An ill person's visit for care today, if any: from onset to
/// confirmation, now and then the nearest clinic or pharmacy, and the
/// test the day before confirmation (at the district's public health
/// centre, or the clinic).
fn care_visit(
    city: &City,
    scenario: &Scenario,
    seed: u64,
    h: &Health,
    person: usize,
    day: i64,
    start_ts: i64,
) -> Option<(u32, i32, i32)> {
    h.infected_at?;
    let onset_day = (h.onset - start_ts).div_euclid(DAY);
    if day < onset_day || day > h.confirmed_day {
        return None;
    }
    let mut rng = Rng::new(seed, &[10, day as u64, person as u64]);
    let (clinic, pharmacy, centre) = city.care_of(person);
    let (venue, minutes) = if day == onset_day.max(h.confirmed_day - 1) {
        if rng.chance(scenario.tested_at_health_centre) {
            (centre, rng.range(20, 50))
        } else {
            (clinic, rng.range(30, 90))
        }
    } else if rng.chance(scenario.care_visit_chance) {
        if rng.chance(0.5) {
            (clinic, rng.range(30, 90))
        } else {
            (pharmacy, rng.range(10, 20))
        }
    } else {
        return None;
    };
    let start = jitter(&mut rng, 9 * 60 + 30, 60);
    Some((venue, start, start + minutes as i32 * 60))
}

/// The legs of a trip from venue `a` to venue `b` starting at `t`.
fn trip(city: &City, p: &Person, a: u32, b: u32, t: i32, out: &mut Vec<Seg>) -> i32 {
    let (pa, pb) = (city.venues[a as usize].pos, city.venues[b as usize].pos);
    let d = distance_m(pa, pb);
    if d < 1_500.0 {
        let t1 = t + (d / 1.3) as i32 + 60;
        out.push(Seg::Move(Move {
            from: pa,
            to: pb,
            t0: t,
            t1,
            leg: Leg::Walk,
        }));
        return t1;
    }
    let (s1, d1) = city.venue_stop[a as usize];
    let (s2, d2) = city.venue_stop[b as usize];
    if p.uses_transit && s1 != s2 && d1 + d2 < 0.7 * d {
        let (q1, q2) = (city.stops[s1 as usize].pos, city.stops[s2 as usize].pos);
        let t1 = t + (d1 / 1.3) as i32 + 60;
        let t2 = t1 + 240 + (distance_m(q1, q2) / 9.0) as i32;
        let t3 = t2 + (d2 / 1.3) as i32 + 60;
        out.push(Seg::Move(Move {
            from: pa,
            to: q1,
            t0: t,
            t1,
            leg: Leg::Walk,
        }));
        out.push(Seg::Move(Move {
            from: q1,
            to: q2,
            t0: t1,
            t1: t2,
            leg: Leg::Ride {
                stop_in: s1,
                stop_out: s2,
            },
        }));
        out.push(Seg::Move(Move {
            from: q2,
            to: pb,
            t0: t2,
            t1: t3,
            leg: Leg::Walk,
        }));
        return t3;
    }
    let t1 = t + 120 + (d / 7.0) as i32;
    out.push(Seg::Move(Move {
        from: pa,
        to: pb,
        t0: t,
        t1,
        leg: Leg::Car,
    }));
    t1
}

/// Turns intentions into a day that covers 00:00–24:00 without gaps.
fn route(city: &City, p: &Person, plan: &[(u32, i32, i32)], segs: &mut Vec<Seg>) {
    const END: i32 = DAY as i32;
    let mut here = p.home;
    let mut since = 0i32;
    let mut until = 0i32;
    let mut scratch = Vec::with_capacity(4);
    let mut duration = |a: u32, b: u32| {
        scratch.clear();
        trip(city, p, a, b, 0, &mut scratch)
    };
    for &(venue, start, end) in plan {
        if venue == here {
            until = until.max(end);
            continue;
        }
        let there = duration(here, venue);
        let back = duration(venue, p.home);
        let leave = until.max(start - there).max(since + 300);
        let arrive = leave + there;
        // Everyone is home by midnight: a stay is cut short to allow the
        // trip back, and dropped if less than ten minutes would remain.
        let latest = END - 1 - back;
        if arrive + 600 > latest {
            continue;
        }
        segs.push(Seg::Stay(Stay {
            venue: here,
            from: since,
            to: leave,
        }));
        let reached = trip(city, p, here, venue, leave, segs);
        debug_assert_eq!(reached, arrive);
        here = venue;
        since = arrive;
        until = end.max(arrive + 600).min(latest);
    }
    if here != p.home {
        let leave = until.max(since + 300);
        segs.push(Seg::Stay(Stay {
            venue: here,
            from: since,
            to: leave,
        }));
        let arrive = trip(city, p, here, p.home, leave, segs);
        debug_assert!(arrive < END);
        segs.push(Seg::Stay(Stay {
            venue: p.home,
            from: arrive.min(END - 1),
            to: END,
        }));
    } else {
        segs.push(Seg::Stay(Stay {
            venue: here,
            from: since,
            to: END,
        }));
    }
}

/// One day's plans for everyone, flat.
struct Plans {
    segs: Vec<Seg>,
    offsets: Vec<u32>,
}

impl Plans {
    fn of(&self, person: usize) -> &[Seg] {
        &self.segs[self.offsets[person] as usize..self.offsets[person + 1] as usize]
    }
}

/// Everything one worker writes for a range of people on one day.
struct Obs {
    pings: Vec<Vec<u8>>,
    pings_n: Vec<u64>,
    transactions: Vec<Vec<u8>>,
    transactions_n: Vec<u64>,
    taps: Vec<u8>,
    taps_n: u64,
    visits: Vec<u8>,
    visits_n: u64,
}

fn lerp(a: Point, b: Point, f: f64) -> Point {
    Point {
        lat: a.lat + (b.lat - a.lat) * f,
        lon: a.lon + (b.lon - a.lon) * f,
    }
}

fn amount(kind: VenueKind, rng: &mut Rng) -> u64 {
    let (mean, sd) = match kind {
        VenueKind::Restaurant => (14_000.0, 8_000.0),
        VenueKind::Cafe => (6_000.0, 2_000.0),
        VenueKind::Club => (60_000.0, 40_000.0),
        VenueKind::Hospital => (25_000.0, 30_000.0),
        VenueKind::Pharmacy => (9_000.0, 6_000.0),
        _ => (30_000.0, 40_000.0),
    };
    ((rng.lognormal(mean, sd) / 100.0).round() * 100.0).max(1_000.0) as u64
}

#[allow(clippy::too_many_arguments)]
fn observe(
    city: &City,
    scenario: &Scenario,
    plans: &Plans,
    people: std::ops::Range<usize>,
    next_ping: &mut [i64],
    day: i64,
    day_start: i64,
    seed: u64,
) -> Obs {
    let telcos = scenario.telcos.len();
    let companies = scenario.card_companies.min(CARD_COMPANIES.len()).max(1);
    let mut o = Obs {
        pings: vec![Vec::new(); telcos],
        pings_n: vec![0; telcos],
        transactions: vec![Vec::new(); companies],
        transactions_n: vec![0; companies],
        taps: Vec::new(),
        taps_n: 0,
        visits: Vec::new(),
        visits_n: 0,
    };
    let (lo, hi) = scenario.ping_interval_minutes;
    let mut row = Row::new();
    let base = people.start;
    for person in people {
        let p = &city.people[person];
        let segs = plans.of(person);
        let mut rng = Rng::new(seed, &[4, day as u64, person as u64]);
        for seg in segs {
            match *seg {
                Seg::Stay(s) => {
                    row.clear()
                        .u64(person as u64)
                        .u64(VENUE_ID_BASE + s.venue as u64)
                        .i64(day_start + s.from as i64)
                        .i64(day_start + s.to as i64)
                        .end();
                    o.visits.extend_from_slice(row_bytes(&row));
                    o.visits_n += 1;
                    let v = &city.venues[s.venue as usize];
                    let chance = match v.kind {
                        VenueKind::Restaurant => 0.8,
                        VenueKind::Cafe => 0.7,
                        VenueKind::Shop => 0.85,
                        VenueKind::Club => 0.9,
                        VenueKind::Hospital => 0.5,
                        VenueKind::Pharmacy => 0.8,
                        _ => 0.0,
                    };
                    if let (Some(merchant), false) = (v.merchant, p.cards.is_empty()) {
                        if p.work != Some(s.venue) && rng.chance(chance) {
                            let paid_at = match v.kind {
                                VenueKind::Shop | VenueKind::Hospital | VenueKind::Pharmacy => {
                                    s.from + rng.range(0, (s.to - s.from).max(1) as i64) as i32
                                }
                                _ => (s.to - rng.range(60, 300) as i32).max(s.from),
                            };
                            let weights = [0.7, 0.2, 0.1];
                            let (company, card) = p.cards[rng.weighted(&weights[..p.cards.len()])];
                            row.clear()
                                .u64(card)
                                .i64(day_start + paid_at as i64)
                                .u64(MERCHANT_ID_BASE + merchant as u64)
                                .u64(amount(v.kind, &mut rng))
                                .end();
                            o.transactions[company as usize].extend_from_slice(row_bytes(&row));
                            o.transactions_n[company as usize] += 1;
                        }
                    }
                }
                Seg::Move(m) => {
                    if let Leg::Ride { stop_in, stop_out } = m.leg {
                        for (t, stop, kind) in [(m.t0, stop_in, "in"), (m.t1, stop_out, "out")] {
                            row.clear()
                                .u64(p.transit_card)
                                .i64(day_start + t as i64)
                                .u64(STOP_ID_BASE + stop as u64)
                                .str(kind)
                                .end();
                            o.taps.extend_from_slice(row_bytes(&row));
                            o.taps_n += 1;
                        }
                    }
                }
            }
        }
        let Some((telco, subscriber)) = p.phone else {
            continue;
        };
        let slot = &mut next_ping[person - base];
        if *slot == 0 {
            *slot = day_start + rng.range(0, lo as i64 * 60);
        }
        let day_end = day_start + DAY;
        let mut seg_index = 0;
        while *slot < day_end {
            let t = (*slot - day_start) as i32;
            while seg_index + 1 < segs.len() && seg_end(&segs[seg_index]) <= t {
                seg_index += 1;
            }
            let (near, second) = match segs[seg_index] {
                Seg::Stay(s) => city.venues[s.venue as usize].towers,
                Seg::Move(m) => {
                    let f = if m.t1 > m.t0 {
                        (t - m.t0) as f64 / (m.t1 - m.t0) as f64
                    } else {
                        1.0
                    };
                    city.grid.lookup(lerp(m.from, m.to, f.clamp(0.0, 1.0)))
                }
            };
            let tower = if rng.chance(scenario.handover_noise) {
                second
            } else {
                near
            };
            row.clear()
                .u64(subscriber)
                .i64(*slot)
                .u64(TOWER_ID_BASE + tower as u64)
                .end();
            o.pings[telco as usize].extend_from_slice(row_bytes(&row));
            o.pings_n[telco as usize] += 1;
            *slot += rng.range(lo as i64 * 60, hi as i64 * 60 + 1);
        }
    }
    o
}

fn row_bytes(row: &Row) -> &[u8] {
    row.bytes()
}

fn seg_end(s: &Seg) -> i32 {
    match s {
        Seg::Stay(s) => s.to,
        Seg::Move(m) => m.t1,
    }
}

/// Unix seconds of local midnight on `date`.
pub fn local_midnight(date: time::Date) -> i64 {
    date.midnight().assume_utc().unix_timestamp() - KST_OFFSET
}

fn local_date(start: time::Date, ts: i64) -> time::Date {
    let days = (ts - local_midnight(start)).div_euclid(DAY);
    start + time::Duration::days(days)
}

fn hhmm(ts: i64, start: time::Date) -> String {
    let secs = (ts - local_midnight(start)).rem_euclid(DAY);
    format!("{:02}:{:02}", secs / 3600, (secs % 3600) / 60)
}

/// Runs the simulation and writes every file into `out`.
pub fn generate(
    params: &Params,
    out: &Path,
    progress: &mut dyn FnMut(u32, u32),
) -> io::Result<Summary> {
    std::fs::create_dir_all(out)?;
    let scenario = &params.scenario;
    let city = City::build(params.people, params.bbox, params.seed, scenario);
    let mut summary = Summary {
        seed: params.seed,
        people: city.people.len() as u64,
        days: params.days,
        start: params.start.to_string(),
        ..Summary::default()
    };
    summary.towers = write_static(&city, scenario, out, &mut summary)?;

    let telcos: Vec<String> = scenario.telcos.iter().map(|t| t.0.clone()).collect();
    let companies = scenario.card_companies.min(CARD_COMPANIES.len()).max(1);
    let mut ping_files = telcos
        .iter()
        .map(|t| Csv::create(out, &format!("pings-{t}.csv"), "subscriber_id,ts,cell_id"))
        .collect::<io::Result<Vec<_>>>()?;
    let mut tx_files = CARD_COMPANIES[..companies]
        .iter()
        .map(|c| {
            Csv::create(
                out,
                &format!("transactions-{c}.csv"),
                "card_id,ts,merchant_id,amount",
            )
        })
        .collect::<io::Result<Vec<_>>>()?;
    let mut taps = Csv::create(out, "taps.csv", "card_id,ts,stop_id,kind")?;
    let mut visits = Csv::create(out, "visits.csv", "person_id,venue_id,arrival,departure")?;

    let n = city.people.len();
    let mut health = vec![Health::default(); n];
    let start_ts = local_midnight(params.start);
    seed_outbreak(&city, scenario, params.seed, start_ts, &mut health);
    let mut history: BTreeMap<u32, Vec<(u32, i64, i64)>> = BTreeMap::new();
    let mut next_ping = vec![0i64; n];
    let first_weekday = params.start.weekday().number_days_from_monday() as u32;
    let threads = params.threads.max(1);

    for day in 0..params.days as i64 {
        let day_start = start_ts + day * DAY;
        let weekday = (first_weekday + day as u32) % 7;
        // Plans.
        let mut plans = Plans {
            segs: Vec::with_capacity(n * 6),
            offsets: Vec::with_capacity(n + 1),
        };
        plans.offsets.push(0);
        for (i, p) in city.people.iter().enumerate() {
            let h = &health[i];
            let isolated = h.infected_at.is_some() && day > h.confirmed_day;
            let mut rng = Rng::new(params.seed, &[3, day as u64, i as u64]);
            let mut intended = intentions(p, weekday, isolated, &mut rng);
            let child = p.occupation == Occupation::Child;
            if let (2, Some(church), false) = (weekday, p.church, isolated || child) {
                // The Wednesday evening service.
                let mut rng = Rng::new(params.seed, &[12, day as u64, i as u64]);
                if rng.chance(scenario.midweek_service) {
                    intended.push((church, jitter(&mut rng, 19 * 60 + 30, 10), 21 * 3600));
                }
            }
            if let Some(visit) = care_visit(&city, scenario, params.seed, h, i, day, start_ts) {
                // Care first: the rest of the day follows it.
                intended.insert(0, visit);
            }
            route(&city, p, &intended, &mut plans.segs);
            plans.offsets.push(plans.segs.len() as u32);
        }
        // Transmission.
        transmit(
            &city,
            scenario,
            &plans,
            &mut health,
            &mut history,
            day,
            day_start,
            params.seed,
        );
        // Observations: batches of people, each split across the workers
        // and written in person order, so memory holds one batch and the
        // bytes do not depend on the number of threads.
        const PER_WORKER: usize = 4096;
        let mut begin = 0;
        while begin < n {
            let batch_end = (begin + PER_WORKER * threads).min(n);
            let results: Vec<Obs> = std::thread::scope(|scope| {
                let mut handles = Vec::new();
                let mut rest: &mut [i64] = &mut next_ping[begin..batch_end];
                let mut from = begin;
                while from < batch_end {
                    let to = (from + PER_WORKER).min(batch_end);
                    let (mine, others) = rest.split_at_mut(to - from);
                    rest = others;
                    let (city, plans) = (&city, &plans);
                    let seed = params.seed;
                    handles.push(scope.spawn(move || {
                        observe(city, scenario, plans, from..to, mine, day, day_start, seed)
                    }));
                    from = to;
                }
                handles
                    .into_iter()
                    .map(|h| h.join().expect("observation worker"))
                    .collect()
            });
            for obs in results {
                for (t, buf) in obs.pings.iter().enumerate() {
                    ping_files[t].write_raw(buf, obs.pings_n[t])?;
                }
                for (c, buf) in obs.transactions.iter().enumerate() {
                    tx_files[c].write_raw(buf, obs.transactions_n[c])?;
                }
                taps.write_raw(&obs.taps, obs.taps_n)?;
                visits.write_raw(&obs.visits, obs.visits_n)?;
            }
            begin = batch_end;
        }
        progress(day as u32 + 1, params.days);
    }
    for (t, f) in telcos.iter().zip(ping_files) {
        let rows = f.finish()?;
        summary.pings += rows;
        summary.pings_by_telco.insert(t.clone(), rows);
    }
    for f in tx_files {
        summary.transactions += f.finish()?;
    }
    summary.taps = taps.finish()?;
    summary.visits = visits.finish()?;
    write_truth(
        &city,
        scenario,
        params,
        &health,
        &history,
        out,
        &mut summary,
    )?;
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    std::fs::write(out.join("summary.json"), json + "\n")?;
    Ok(summary)
}

/// `geography.geojson`: the city's map, with no one's home on it — its
/// districts (as the regions cases are registered in), towers, subway stops
/// and public places. The hub's web application draws it offline.
fn write_geography(city: &City, out: &Path) -> io::Result<()> {
    use serde_json::{json, Value};
    let b = city.bbox;
    let mut features: Vec<Value> = Vec::new();
    for d in 0..25u8 {
        let (row, col) = ((d / 5) as f64, (d % 5) as f64);
        let (s, n) = (
            b.south + (b.north - b.south) * row / 5.0,
            b.south + (b.north - b.south) * (row + 1.0) / 5.0,
        );
        let (w, e) = (
            b.west + (b.east - b.west) * col / 5.0,
            b.west + (b.east - b.west) * (col + 1.0) / 5.0,
        );
        features.push(json!({
            "type": "Feature",
            "properties": {"layer": "region", "region": format!("seoul-{}", district_name(d)), "name": district_name(d)},
            "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]},
        }));
    }
    let point = |lat: f64, lon: f64| json!({"type": "Point", "coordinates": [lon, lat]});
    for (i, t) in city.towers.iter().enumerate() {
        features.push(json!({
            "type": "Feature",
            "properties": {"layer": "tower", "id": TOWER_ID_BASE + i as u64},
            "geometry": point(t.lat, t.lon),
        }));
    }
    for s in &city.stops {
        features.push(json!({
            "type": "Feature",
            "properties": {"layer": "stop", "name": s.name},
            "geometry": point(s.pos.lat, s.pos.lon),
        }));
    }
    for v in &city.venues {
        // Homes and offices are where particular people live and work.
        if matches!(v.kind, VenueKind::Home | VenueKind::Office) {
            continue;
        }
        features.push(json!({
            "type": "Feature",
            "properties": {"layer": "venue", "kind": v.kind.as_str(), "name": v.name},
            "geometry": point(v.pos.lat, v.pos.lon),
        }));
    }
    let doc = json!({"type": "FeatureCollection", "features": features});
    std::fs::write(out.join("geography.geojson"), doc.to_string())
}

fn write_static(
    city: &City,
    scenario: &Scenario,
    out: &Path,
    summary: &mut Summary,
) -> io::Result<u64> {
    let mut row = Row::new();
    let mut towers = Csv::create(out, "towers.csv", "cell_id,lat,lon")?;
    for (i, t) in city.towers.iter().enumerate() {
        towers.row(
            row.clear()
                .u64(TOWER_ID_BASE + i as u64)
                .deg(t.lat)
                .deg(t.lon)
                .end(),
        )?;
    }
    let mut stops = Csv::create(out, "stops.csv", "stop_id,lat,lon,name")?;
    for (i, s) in city.stops.iter().enumerate() {
        stops.row(
            row.clear()
                .u64(STOP_ID_BASE + i as u64)
                .deg(s.pos.lat)
                .deg(s.pos.lon)
                .str(&s.name)
                .end(),
        )?;
    }
    let mut venues = Csv::create(
        out,
        "venues.csv",
        "venue_id,kind,lat,lon,name,district,merchant_id",
    )?;
    for (i, v) in city.venues.iter().enumerate() {
        row.clear()
            .u64(VENUE_ID_BASE + i as u64)
            .str(v.kind.as_str())
            .deg(v.pos.lat)
            .deg(v.pos.lon)
            .str(&v.name)
            .str(district_name(v.district));
        match v.merchant {
            Some(m) => row.u64(MERCHANT_ID_BASE + m as u64),
            None => row.empty(),
        };
        venues.row(row.end())?;
    }
    write_geography(city, out)?;
    let mut merchants = Csv::create(out, "merchants.csv", "merchant_id,lat,lon,category,name")?;
    for (m, &v) in city.merchants.iter().enumerate() {
        let v = &city.venues[v as usize];
        merchants.row(
            row.clear()
                .u64(MERCHANT_ID_BASE + m as u64)
                .deg(v.pos.lat)
                .deg(v.pos.lon)
                .str(v.kind.as_str())
                .str(&v.name)
                .end(),
        )?;
    }
    let mut people = Csv::create(
        out,
        "people.csv",
        "person_id,age,occupation,home_venue_id,home_lat,home_lon,district,work_venue_id,telco,subscriber_id,card_ids,transit_card_id",
    )?;
    for (i, p) in city.people.iter().enumerate() {
        let home = &city.venues[p.home as usize];
        row.clear()
            .u64(i as u64)
            .u64(p.age as u64)
            .str(p.occupation.as_str())
            .u64(VENUE_ID_BASE + p.home as u64)
            .deg(home.pos.lat)
            .deg(home.pos.lon)
            .str(district_name(home.district));
        match p.work {
            Some(w) => row.u64(VENUE_ID_BASE + w as u64),
            None => row.empty(),
        };
        match p.phone {
            Some((t, s)) => {
                summary.phones += 1;
                row.str(&scenario.telcos[t as usize].0).u64(s)
            }
            None => row.empty().empty(),
        };
        summary.cards += p.cards.len() as u64;
        let cards: Vec<String> = p
            .cards
            .iter()
            .map(|(c, id)| format!("{}:{id}", CARD_COMPANIES[*c as usize]))
            .collect();
        row.str(&cards.join(";")).u64(p.transit_card);
        people.row(row.end())?;
    }
    summary.venues = venues.finish()?;
    summary.merchants = merchants.finish()?;
    summary.stops = stops.finish()?;
    people.finish()?;
    towers.finish()
}

fn course(
    scenario: &Scenario,
    seed: u64,
    person: usize,
    infected_at: i64,
    start_ts: i64,
) -> Health {
    let mut rng = Rng::new(seed, &[5, person as u64]);
    let incubation = rng
        .lognormal(scenario.incubation_mean_days, scenario.incubation_sd_days)
        .clamp(2.0, 14.0);
    let onset = infected_at + (incubation * DAY as f64) as i64;
    let infectious_from =
        (onset - (scenario.presymptomatic_days * DAY as f64) as i64).max(infected_at + DAY / 2);
    let (lo, hi) = scenario.detection_delay_days;
    let delay = rng.range(lo as i64, hi as i64 + 1);
    let onset_day = (onset - start_ts).div_euclid(DAY);
    Health {
        infected_at: Some(infected_at),
        infector: None,
        venue: 0,
        infectious_from,
        recovered_at: onset + 8 * DAY,
        onset,
        confirmed_day: onset_day + delay,
        interview_from: start_ts + (onset_day - 2) * DAY,
    }
}

/// One index case at the busiest venue of each seed kind, infectious from
/// the first day.
fn seed_outbreak(
    city: &City,
    scenario: &Scenario,
    seed: u64,
    start_ts: i64,
    health: &mut [Health],
) {
    let mut rng = Rng::new(seed, &[6]);
    for kind in scenario
        .seed_venues
        .iter()
        .filter_map(|k| VenueKind::parse(k))
    {
        // Regulars per venue of this kind, in one pass over the people.
        let mut regulars: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, p) in city.people.iter().enumerate() {
            if p.occupation == Occupation::Child || health[i].infected_at.is_some() {
                continue;
            }
            let mut places = [p.work, p.church, p.club];
            places.sort_unstable();
            let mut last = None;
            for v in places.into_iter().flatten() {
                if city.venues[v as usize].kind == kind && last != Some(v) {
                    regulars.entry(v).or_default().push(i);
                    last = Some(v);
                }
            }
        }
        // The busiest (ties: the lowest venue index).
        let Some((&venue, candidates)) = regulars
            .iter()
            .max_by_key(|(v, people)| (people.len(), std::cmp::Reverse(**v)))
        else {
            continue;
        };
        let index = candidates[rng.index(candidates.len())];
        let infected_at = start_ts - 3 * DAY + rng.range(0, DAY);
        let mut h = course(scenario, seed, index, infected_at, start_ts);
        // Infectious from the start, as the model has it: from
        // `presymptomatic_days` before onset. Detected as late as the
        // scenario allows, so that every seed venue (a Sunday service, a
        // weekend club night) meets its index case before it is isolated.
        let presymptomatic = (scenario.presymptomatic_days * DAY as f64) as i64;
        h.infectious_from = start_ts - DAY / 2;
        h.onset = h.infectious_from + presymptomatic;
        h.recovered_at = h.onset + 8 * DAY;
        let onset_day = (h.onset - start_ts).div_euclid(DAY);
        h.confirmed_day = onset_day + scenario.detection_delay_days.1 as i64;
        h.interview_from = start_ts + (onset_day - 2) * DAY;
        h.venue = venue;
        health[index] = h;
    }
}

#[allow(clippy::too_many_arguments)]
fn transmit(
    city: &City,
    scenario: &Scenario,
    plans: &Plans,
    health: &mut [Health],
    history: &mut BTreeMap<u32, Vec<(u32, i64, i64)>>,
    day: i64,
    day_start: i64,
    seed: u64,
) {
    // Where infectious people were today, and the stays the interviews of
    // infected people will ask about.
    let stay_of = |seg: &Seg| match seg {
        Seg::Stay(s) => Some((s.venue, day_start + s.from as i64, day_start + s.to as i64)),
        Seg::Move(_) => None,
    };
    let day_end = day_start + DAY;
    let mut hot = std::collections::BTreeSet::new();
    for (person, h) in health.iter().enumerate() {
        if h.infected_at.is_none() {
            continue;
        }
        let asked_until = day_start - day * DAY + (h.confirmed_day + 1) * DAY;
        for (venue, from, to) in plans.of(person).iter().filter_map(stay_of) {
            if h.infectious_during(from, to).is_some() {
                hot.insert(venue);
            }
            if to > h.interview_from && from < asked_until {
                history
                    .entry(person as u32)
                    .or_default()
                    .push((venue, from, to));
            }
        }
    }
    // Every stay at those venues, by venue.
    let mut stays: Vec<(u32, u32, i64, i64)> = Vec::new();
    for person in 0..health.len() {
        for (venue, from, to) in plans.of(person).iter().filter_map(stay_of) {
            if hot.contains(&venue) {
                stays.push((venue, person as u32, from, to));
            }
        }
    }
    stays.sort_unstable();
    let mut infections: BTreeMap<u32, (i64, u32, u32)> = BTreeMap::new();
    for group in stays.chunk_by(|a, b| a.0 == b.0) {
        let venue = group[0].0;
        let rate = scenario.transmission(city.venues[venue as usize].kind.as_str());
        if rate <= 0.0 {
            continue;
        }
        for &(_, infector, from_i, to_i) in group {
            let Some((a, b)) = health[infector as usize].infectious_during(from_i, to_i) else {
                continue;
            };
            for &(_, other, from_s, to_s) in group {
                if other == infector || health[other as usize].infected_at.is_some() {
                    continue;
                }
                let (o0, o1) = (a.max(from_s), b.min(to_s));
                if o1 <= o0 {
                    continue;
                }
                let hours = (o1 - o0) as f64 / 3600.0;
                let mut rng = Rng::new(
                    seed,
                    &[
                        7,
                        day as u64,
                        venue as u64,
                        infector as u64,
                        other as u64,
                        from_s as u64,
                    ],
                );
                if rng.chance(1.0 - (-rate * hours).exp()) {
                    let at = o0 + (rng.f64() * (o1 - o0) as f64) as i64;
                    let entry = infections.entry(other).or_insert((at, infector, venue));
                    if (at, infector) < (entry.0, entry.1) {
                        *entry = (at, infector, venue);
                    }
                }
            }
        }
    }
    let start_ts = day_start - day * DAY;
    for (person, (at, infector, venue)) in infections {
        let mut h = course(scenario, seed, person as usize, at, start_ts);
        h.infector = Some(infector);
        h.venue = venue;
        // The rest of the day of infection may already be in the window.
        for (v, from, to) in plans.of(person as usize).iter().filter_map(stay_of) {
            if to > at.max(h.interview_from) && from < day_end {
                history.entry(person).or_default().push((v, from, to));
            }
        }
        health[person as usize] = h;
    }
}

/// The category a health authority publishes for a venue.
fn published_category(kind: VenueKind) -> &'static str {
    match kind {
        VenueKind::Home => "home",
        VenueKind::Office | VenueKind::CallCentre => "workplace",
        VenueKind::School => "school",
        VenueKind::Church => "church",
        VenueKind::Club => "club",
        VenueKind::Hospital => "hospital",
        VenueKind::Restaurant => "restaurant",
        VenueKind::Cafe => "cafe",
        VenueKind::Shop => "shop",
        VenueKind::Pharmacy => "pharmacy",
        VenueKind::HealthCentre => "public health centre",
    }
}

/// What health authorities published of the cases: `published-routes.csv`
/// (the case-routes format: a few visits a case, a date and usually no
/// time, the venue's own point, its category as the place) and
/// `published-register.csv` (`case_id,region,onset_date,confirmed_date`,
/// onset often empty). The visits are those of the interview window (two
/// days before onset to confirmation), one row per venue and day, each
/// kept by chance: visits after onset more often than before, care visits
/// (clinic, pharmacy, health centre) most often.
#[allow(clippy::too_many_arguments)]
fn write_published(
    city: &City,
    scenario: &Scenario,
    params: &Params,
    health: &[Health],
    history: &BTreeMap<u32, Vec<(u32, i64, i64)>>,
    confirmed: &[(i64, i64, usize)],
    case_of: &BTreeMap<usize, u64>,
    out: &Path,
    summary: &mut Summary,
) -> io::Result<()> {
    let published = &scenario.published;
    let start_ts = local_midnight(params.start);
    let date_of = |ts: i64| local_date(params.start, ts).to_string();
    let mut row = Row::new();
    let mut register = Csv::create(
        out,
        "published-register.csv",
        "case_id,region,onset_date,confirmed_date",
    )?;
    let mut routes = Csv::create(
        out,
        "published-routes.csv",
        "case_id,date,lat,lon,start_time,end_time,place",
    )?;
    for &(day, onset, i) in confirmed {
        let mut rng = Rng::new(params.seed, &[11, i as u64]);
        let p = &city.people[i];
        row.clear().u64(case_of[&i]).str(&format!(
            "seoul-{}",
            district_name(city.venues[p.home as usize].district)
        ));
        if rng.chance(published.onset_missing_share) {
            row.empty();
        } else {
            row.str(&date_of(onset));
        }
        register.row(
            row.str(&(params.start + time::Duration::days(day)).to_string())
                .end(),
        )?;
        if rng.chance(published.no_route_share) {
            summary.published_without_route += 1;
            continue;
        }
        // One visit per venue and local day: the first arrival, the last
        // departure.
        let until = start_ts + (day + 1) * DAY;
        let onset_day = (health[i].onset - start_ts).div_euclid(DAY);
        let from = start_ts + (onset_day - i64::from(published.lookback_days)) * DAY;
        let mut visits: BTreeMap<(i64, u32), (i64, i64)> = BTreeMap::new();
        for &(venue, a, b) in history.get(&(i as u32)).map(Vec::as_slice).unwrap_or(&[]) {
            if city.venues[venue as usize].kind == VenueKind::Home || b < from || a > until {
                continue;
            }
            let d = (a - start_ts).div_euclid(DAY);
            let v = visits.entry((d, venue)).or_insert((a, b));
            *v = (v.0.min(a), v.1.max(b));
        }
        let mut kept = 0;
        for (&(d, venue), &(a, b)) in &visits {
            let v = &city.venues[venue as usize];
            let keep = if d < onset_day {
                published.keep_before_onset
            } else if v.kind.is_care() {
                published.keep_care
            } else {
                published.keep_after_onset
            };
            if !rng.chance(keep) {
                continue;
            }
            row.clear()
                .u64(case_of[&i])
                .str(&date_of(a))
                .deg(v.pos.lat)
                .deg(v.pos.lon);
            if rng.chance(published.timed_share) {
                row.str(&hhmm(a, params.start))
                    .str(&hhmm(b.max(a + 60), params.start));
            } else {
                row.empty().empty();
            }
            routes.row(row.str(published_category(v.kind)).end())?;
            kept += 1;
        }
        if kept == 0 {
            summary.published_without_route += 1;
        }
    }
    register.finish()?;
    summary.published_rows = routes.finish()?;
    Ok(())
}

fn write_truth(
    city: &City,
    scenario: &Scenario,
    params: &Params,
    health: &[Health],
    history: &BTreeMap<u32, Vec<(u32, i64, i64)>>,
    out: &Path,
    summary: &mut Summary,
) -> io::Result<()> {
    let start_ts = local_midnight(params.start);
    let mut row = Row::new();
    let mut infections = Csv::create(out, "infections.csv", "infectee,infector,venue_id,time")?;
    let mut infected: Vec<(i64, usize)> = health
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.infected_at.map(|t| (t, i)))
        .collect();
    infected.sort_unstable();
    for &(t, i) in &infected {
        let h = &health[i];
        row.clear().u64(i as u64);
        match h.infector {
            Some(x) => row.u64(x as u64),
            None => row.empty(),
        };
        infections.row(row.u64(VENUE_ID_BASE + h.venue as u64).i64(t).end())?;
    }
    summary.infections = infections.finish()?;

    // Cases: infections confirmed within the horizon, numbered in order.
    let mut confirmed: Vec<(i64, i64, usize)> = infected
        .iter()
        .map(|&(_, i)| (health[i].confirmed_day, health[i].onset, i))
        .filter(|c| c.0 < params.days as i64)
        .collect();
    confirmed.sort_unstable();
    let case_of: BTreeMap<usize, u64> = confirmed
        .iter()
        .enumerate()
        .map(|(k, c)| (c.2, 1001 + k as u64))
        .collect();
    let date_of = |ts: i64| local_date(params.start, ts).to_string();
    let mut cases = Csv::create(
        out,
        "cases.csv",
        "case_id,person_id,region,age,infected_at,onset_date,confirmed_date,infector_case_id",
    )?;
    for &(day, onset, i) in &confirmed {
        let h = &health[i];
        let p = &city.people[i];
        row.clear()
            .u64(case_of[&i])
            .u64(i as u64)
            .str(district_name(city.venues[p.home as usize].district))
            .u64(p.age as u64)
            .i64(h.infected_at.unwrap_or(0))
            .str(&date_of(onset))
            .str(&(params.start + time::Duration::days(day)).to_string());
        match h.infector.and_then(|x| case_of.get(&(x as usize))) {
            Some(c) => row.u64(*c),
            None => row.empty(),
        };
        cases.row(row.end())?;
    }
    summary.cases = cases.finish()?;

    // What the health authority knows of each case when it is confirmed:
    // the case number, the jurisdiction, the dates, the phone's telco and
    // subscriber, the cards, the transit card and the home address. It is
    // what `civic eiss import-cases` registers; the platform never reads
    // the truth files above.
    let mut register = Csv::create(
        out,
        "case-register.csv",
        "case_id,region,onset_date,confirmed_date,telco,subscriber_id,card_ids,transit_card_id,home_lat,home_lon",
    )?;
    for &(day, onset, i) in &confirmed {
        let p = &city.people[i];
        let home = &city.venues[p.home as usize];
        row.clear()
            .u64(case_of[&i])
            .str(&format!("seoul-{}", district_name(home.district)))
            .str(&date_of(onset))
            .str(&(params.start + time::Duration::days(day)).to_string());
        match p.phone {
            Some((t, s)) => row.str(&scenario.telcos[t as usize].0).u64(s),
            None => row.empty().empty(),
        };
        let cards: Vec<String> = p
            .cards
            .iter()
            .map(|(c, id)| format!("{}:{id}", CARD_COMPANIES[*c as usize]))
            .collect();
        row.str(&cards.join(";"))
            .u64(p.transit_card)
            .deg(home.pos.lat)
            .deg(home.pos.lon);
        register.row(row.end())?;
    }
    register.finish()?;

    // Interviews: the places a case remembers, in the case-routes format.
    let mut interviews = Csv::create(
        out,
        "interviews.csv",
        "case_id,date,lat,lon,start_time,end_time,place",
    )?;
    for &(day, _, i) in &confirmed {
        let mut rng = Rng::new(params.seed, &[8, i as u64]);
        let from = health[i].interview_from;
        let until = start_ts + (day + 1) * DAY;
        let shift = scenario.interview_shift_minutes as i64 * 60;
        for &(venue, a, b) in history.get(&(i as u32)).map(Vec::as_slice).unwrap_or(&[]) {
            let v = &city.venues[venue as usize];
            if v.kind == VenueKind::Home
                || b < from
                || a > until
                || rng.chance(scenario.interview_forget_rate)
            {
                continue;
            }
            let (a, b) = (
                a + rng.range(-shift, shift + 1),
                b + rng.range(-shift, shift + 1),
            );
            let (dlat, dlon) = city
                .bbox
                .metres_to_deg(rng.normal() * 20.0, rng.normal() * 20.0);
            row.clear()
                .u64(case_of[&i])
                .str(&date_of(a))
                .deg(v.pos.lat + dlat)
                .deg(v.pos.lon + dlon)
                .str(&hhmm(a, params.start))
                .str(&hhmm(b.max(a + 60), params.start))
                .str(&v.name);
            interviews.row(row.end())?;
        }
    }
    summary.interview_rows = interviews.finish()?;
    write_published(
        city, scenario, params, health, history, &confirmed, &case_of, out, summary,
    )?;

    // Clusters: the cases descending from each index case; the source is
    // the case nearest the root.
    let root = |mut i: usize| -> (usize, u32) {
        let mut depth = 0;
        while let Some(x) = health[i].infector {
            i = x as usize;
            depth += 1;
        }
        (i, depth)
    };
    let mut by_root: BTreeMap<usize, Vec<(u32, i64, u64)>> = BTreeMap::new();
    for &(_, onset, i) in &confirmed {
        let (r, depth) = root(i);
        by_root
            .entry(r)
            .or_default()
            .push((depth, onset, case_of[&i]));
    }
    let mut clusters = Csv::create(
        out,
        "clusters.csv",
        "cluster_id,name,venue_id,source_case_id,case_id",
    )?;
    for (k, (r, members)) in by_root.iter().enumerate() {
        let source = members.iter().min().expect("a cluster has a case").2;
        let venue = health[*r].venue;
        let name = &city.venues[venue as usize].name;
        let mut ids: Vec<u64> = members.iter().map(|m| m.2).collect();
        ids.sort_unstable();
        for case in ids {
            clusters.row(
                row.clear()
                    .u64(k as u64 + 1)
                    .str(name)
                    .u64(VENUE_ID_BASE + venue as u64)
                    .u64(source)
                    .u64(case)
                    .end(),
            )?;
        }
    }
    clusters.finish()?;
    summary.clusters = by_root.len() as u64;

    // Groups as a health authority names them: the setting where two or
    // more confirmed cases were infected (a call centre, a church); a case
    // infected at home, or where no other case was, joins its infector's
    // group (a traced contact), or stands alone.
    let mut at_venue: BTreeMap<u32, u32> = BTreeMap::new();
    for &(_, _, i) in &confirmed {
        let v = health[i].venue;
        if city.venues[v as usize].kind != VenueKind::Home && health[i].infector.is_some() {
            *at_venue.entry(v).or_default() += 1;
        }
    }
    let group_of = |mut i: usize| -> Option<u32> {
        for _ in 0..health.len() {
            let h = &health[i];
            let v = h.venue;
            if h.infector.is_some() && at_venue.get(&v).is_some_and(|n| *n >= 2) {
                return Some(v);
            }
            i = h.infector? as usize;
        }
        None
    };
    let mut groups = Csv::create(out, "groups.csv", "case_id,group_id,name")?;
    let mut named = std::collections::BTreeSet::new();
    for &(_, _, i) in &confirmed {
        row.clear().u64(case_of[&i]);
        match group_of(i) {
            Some(v) => {
                named.insert(v);
                row.u64(VENUE_ID_BASE + v as u64)
                    .str(&city.venues[v as usize].name)
            }
            None => row.str(&format!("case-{}", case_of[&i])).str("alone"),
        };
        groups.row(row.end())?;
    }
    groups.finish()?;
    summary.groups = named.len() as u64;
    Ok(())
}
