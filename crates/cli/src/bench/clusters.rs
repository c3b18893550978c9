//! `civic bench clusters`: recomputing the clusters of many cases, from
//! storage and in memory.

use super::*;

/// Capacity: `cases` cases of routes published elsewhere (made from the
/// city's true stays), loaded into one response, their clusters
/// recomputed.
pub(super) async fn clusters(
    dir: &Path,
    people: usize,
    cases: usize,
    database_url: Option<String>,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let city = dir.join("city");
    let summary = crate::sim::city(&city, people, 14, 1).await?;
    println!("city: {} people, {} days", summary.people, summary.days);
    // Routes: each of `cases` people, over the five days around an onset
    // drawn for them, as the case-route format has it.
    let t = Instant::now();
    let routes = dir.join("routes.csv");
    let rows = routes_from_visits(&city, cases, &routes)?;
    println!(
        "routes: {rows} rows of {cases} cases written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (hub, admin, inv) = demo_hub(dir, database_url).await?;
    let response = hub
        .open_response(
            &admin,
            &format!(
                "Capacity {}",
                time::OffsetDateTime::now_utc().unix_timestamp()
            ),
            "Infectious Disease Control and Prevention Act, art. 76-2",
            None,
        )
        .await?;
    let csv = std::fs::read_to_string(&routes)?;
    let t = Instant::now();
    let loaded = hub.import_routes(&inv, response.id, &csv).await?;
    let load = t.elapsed().as_secs_f64();
    drop(csv);
    let t = Instant::now();
    let inputs = hub.cluster_inputs(response.id).await?;
    let read = t.elapsed().as_secs_f64();
    let presences: usize = inputs.iter().map(|i| i.presences.len()).sum();
    let t = Instant::now();
    let index = civic_eiss::clusters::ClusterIndex::build(Default::default(), inputs);
    let clusters = index.clusters();
    let link = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let rows_out = hub.cluster_rows(&inv, response.id).await?;
    let through_hub = t.elapsed().as_secs_f64();
    println!(
        "{} cases ({} route rows, {presences} places) loaded in {load:.1} s",
        loaded.cases_created, loaded.rows
    );
    println!("clusters recomputed: read and decrypt {read:.2} s, link {link:.2} s; {} clusters of 2 or more", clusters.len());
    println!("the hub's first cluster listing (index built from storage): {through_hub:.2} s for {} rows", rows_out.len());
    Ok(())
}

/// Writes the case routes of `cases` people of a city (the first with a
/// route at all): each one a case whose onset is drawn (deterministically)
/// from the city's days, its stays outside home of ten minutes or more
/// from two days before onset to three after, in the case-route format
/// (local dates and times). Returns the rows.
pub(super) fn routes_from_visits(city: &Path, cases: usize, out: &Path) -> Result<usize> {
    use std::io::BufRead;
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(city.join("summary.json"))?)?;
    let start = time::Date::parse(
        summary["start"].as_str().unwrap_or("2020-03-01"),
        time::macros::format_description!("[year]-[month]-[day]"),
    )?;
    let days = summary["days"].as_i64().unwrap_or(14);
    let rules = civic_eiss::Rules::default();
    let mut venues: HashMap<u64, (String, String, String, bool)> = HashMap::new();
    for line in std::io::BufReader::new(std::fs::File::open(city.join("venues.csv"))?)
        .lines()
        .skip(1)
    {
        let line = line?;
        let f: Vec<&str> = line.split(',').collect();
        if f.len() >= 5 {
            venues.insert(
                f[0].parse()?,
                (
                    f[2].to_owned(),
                    f[3].to_owned(),
                    f[4].to_owned(),
                    f[1] == "home",
                ),
            );
        }
    }
    let onset = |person: u64| -> i64 {
        // A day from the fourth to the last but one, by a hash of the id.
        let h = person.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
        rules.midnight(start) + (3 + (h as i64) % (days - 4).max(1)) * civic_eiss::DAY
    };
    // (person, venue, arrival, departure) of every stay a route publishes.
    let mut stays: Vec<(u64, u64, i64, i64)> = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(city.join("visits.csv"))?)
        .lines()
        .skip(1)
    {
        let line = line?;
        let mut f = line.split(',');
        let (Some(p), Some(v), Some(a), Some(d)) = (f.next(), f.next(), f.next(), f.next()) else {
            continue;
        };
        let (person, venue): (u64, u64) = (p.parse()?, v.parse()?);
        let (a, d): (i64, i64) = (a.parse()?, d.parse()?);
        let o = onset(person);
        if d < o - 2 * civic_eiss::DAY || a > o + 3 * civic_eiss::DAY || d - a < 600 {
            continue;
        }
        if venues.get(&venue).is_none_or(|v| v.3) {
            continue;
        }
        stays.push((person, venue, a, d));
    }
    let people: std::collections::BTreeSet<u64> = stays.iter().map(|s| s.0).collect();
    if people.len() < cases {
        bail!(
            "the city has only {} people with a route: use more --people",
            people.len()
        );
    }
    let chosen: std::collections::HashSet<u64> = people.into_iter().take(cases).collect();
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(w, "case_id,date,lat,lon,start_time,end_time,place")?;
    let mut rows = 0;
    for (person, venue, a, d) in stays {
        if !chosen.contains(&person) {
            continue;
        }
        let (lat, lon, name, _) = &venues[&venue];
        writeln!(
            w,
            "{},{},{lat},{lon},{},{},{name}",
            100_000 + person,
            rules.local_date(a),
            rules.local_hhmm(a),
            rules.local_hhmm(d)
        )?;
        rows += 1;
    }
    w.flush()?;
    Ok(rows)
}
