//! What the simulation writes besides the holders' observations: the
//! geography, the static files (towers, venues, people, merchants, stops),
//! the published view and the truth.

use super::*;

/// `geography.geojson`: the city's map, with no one's home on it — its
/// districts (as the regions cases are registered in), towers, subway stops
/// and public places. The hub's web application draws it offline.
pub(super) fn write_geography(city: &City, out: &Path) -> io::Result<()> {
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

pub(super) fn write_static(
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

/// The category a health authority publishes for a venue.
pub(super) fn published_category(kind: VenueKind) -> &'static str {
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
pub(super) fn write_published(
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

pub(super) fn write_truth(
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
