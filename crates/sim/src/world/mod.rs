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

mod files;
mod plans;

use files::{write_static, write_truth};
use plans::{care_visit, intentions, route};

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
