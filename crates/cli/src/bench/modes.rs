//! `civic bench modes`: the clustering in every mode (interviews,
//! published routes, both; with and without onsets), each beside the naive
//! same-place same-day union and the ceiling of what its rows show.

use super::*;

/// A way cases reach the hub, for `bench modes`.
pub(super) struct Mode {
    name: &'static str,
    slug: &'static str,
    register: String,
    interviews: Option<String>,
    routes: Option<String>,
}

/// A case-register CSV with its `onset_date` column emptied.
pub(super) fn without_onsets(register: &str) -> String {
    let mut lines = register.lines();
    let header = lines.next().unwrap_or_default();
    let column = header.split(',').position(|h| h == "onset_date");
    let mut out = format!("{header}\n");
    for line in lines {
        let mut f: Vec<&str> = line.split(',').collect();
        if let Some(c) = column.filter(|c| *c < f.len()) {
            f[c] = "";
        }
        out.push_str(&f.join(","));
        out.push('\n');
    }
    out
}

/// The published register with every case's onset from the full one.
pub(super) fn with_onsets(published: &str, full: &str) -> String {
    let onset: HashMap<&str, &str> = full
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split(',');
            let case = f.next()?;
            Some((case, f.nth(1)?))
        })
        .collect();
    let mut lines = published.lines();
    let mut out = format!("{}\n", lines.next().unwrap_or_default());
    for line in lines {
        let mut f: Vec<&str> = line.split(',').collect();
        if f.len() > 2 {
            f[2] = onset.get(f[0]).copied().unwrap_or(f[2]);
        }
        out.push_str(&f.join(","));
        out.push('\n');
    }
    out
}

/// Rows of case-route CSVs as (case, lat, lon, date).
pub(super) fn route_rows<'a>(
    texts: impl IntoIterator<Item = &'a String>,
) -> Vec<(String, f64, f64, String)> {
    let mut out = Vec::new();
    for text in texts {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if let (Some(case), Some(date), Some(lat), Some(lon)) = (
                f.first(),
                f.get(1),
                f.get(2).and_then(|v| v.parse::<f64>().ok()),
                f.get(3).and_then(|v| v.parse::<f64>().ok()),
            ) {
                out.push((case.to_string(), lat, lon, date.to_string()));
            }
        }
    }
    out
}

/// A 100 m cell of the plane around Seoul.
pub(super) fn cell_100m(lat: f64, lon: f64) -> (i64, i64) {
    let m = 111_195.0;
    (
        (lat * m / 100.0).round() as i64,
        (lon * m * lat.to_radians().cos() / 100.0).round() as i64,
    )
}

/// The naive baseline: cases in the same 100 m cell on the same date are
/// one cluster (union-find over every such pair, whatever the place is).
pub(super) fn naive_clusters(rows: &[(String, f64, f64, String)]) -> HashMap<String, String> {
    let mut parent: HashMap<String, String> = HashMap::new();
    fn find(parent: &mut HashMap<String, String>, x: &str) -> String {
        let mut x = x.to_owned();
        while let Some(p) = parent.get(&x).filter(|p| **p != x).cloned() {
            x = p;
        }
        x
    }
    let mut first: HashMap<((i64, i64), &str), &str> = HashMap::new();
    for (case, lat, lon, date) in rows {
        parent.entry(case.clone()).or_insert_with(|| case.clone());
        match first.get(&(cell_100m(*lat, *lon), date.as_str())) {
            Some(other) => {
                let (a, b) = (find(&mut parent, case), find(&mut parent, other));
                if a != b {
                    parent.insert(a, b);
                }
            }
            None => {
                first.insert((cell_100m(*lat, *lon), date.as_str()), case.as_str());
            }
        }
    }
    let cases: Vec<String> = parent.keys().cloned().collect();
    cases
        .into_iter()
        .map(|c| {
            let root = find(&mut parent, &c);
            (c, root)
        })
        .collect()
}

/// The ceiling of what a mode's rows show: each case in its true setting
/// group when a row of it is within 100 m of the group's venue, else
/// alone (no method that links cases through places they were seen at
/// can do better against the setting groups).
pub(super) fn ceiling_clusters(
    city: &Path,
    rows: &[(String, f64, f64, String)],
) -> Result<HashMap<String, String>> {
    let venues = std::fs::read_to_string(city.join("venues.csv"))?;
    let at: HashMap<&str, (f64, f64)> = venues
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                *f.first()?,
                (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?),
            ))
        })
        .collect();
    let mut seen: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for (case, lat, lon, _) in rows {
        seen.entry(case).or_default().push(cell_100m(*lat, *lon));
    }
    let groups = std::fs::read_to_string(city.join("groups.csv"))?;
    let mut out = HashMap::new();
    for line in groups.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (case, group) = (f[0], f[1]);
        let shown = at.get(group).is_some_and(|(lat, lon)| {
            let (ci, cj) = cell_100m(*lat, *lon);
            seen.get(case).is_some_and(|cells| {
                cells
                    .iter()
                    .any(|(i, j)| (i - ci).abs() <= 1 && (j - cj).abs() <= 1)
            })
        });
        let label = if shown {
            format!("9{group}")
        } else {
            case.to_owned()
        };
        out.insert(case.to_owned(), label);
    }
    Ok(out)
}

/// Writes `clusters.csv` (every case of the register, a case alone in a
/// cluster of its own) into `dir`, and `sources.csv` if given.
pub(super) fn write_found(
    dir: &Path,
    cases: &[String],
    cluster_of: &HashMap<String, String>,
    sources: &[(String, String)],
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut out = String::from("case_id,cluster_id\n");
    for case in cases {
        let k = cluster_of.get(case).unwrap_or(case);
        out.push_str(&format!("{case},{k}\n"));
    }
    std::fs::write(dir.join("clusters.csv"), out)?;
    let _ = std::fs::remove_file(dir.join("sources.csv"));
    if !sources.is_empty() {
        let mut out = String::from("cluster_id,source_case_id\n");
        for (cluster, source) in sources {
            out.push_str(&format!("{cluster},{source}\n"));
        }
        std::fs::write(dir.join("sources.csv"), out)?;
    }
    Ok(())
}

/// Clusters in every mode but the nodes': one response each on one hub,
/// scored against the descent clusters and the setting groups, beside the
/// naive baseline and the ceiling of the mode's rows.
pub(super) async fn modes(
    dir: &Path,
    people: usize,
    days: u32,
    seed: u64,
    database_url: Option<String>,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let city = dir.join("city");
    let summary = crate::sim::city(&city, people, days, seed).await?;
    println!(
        "city: {} people, {} days, {} cases",
        summary.people, summary.days, summary.cases
    );
    let read = |name: &str| {
        std::fs::read_to_string(city.join(name)).with_context(|| format!("reading {name}"))
    };
    let (register, published_register) =
        (read("case-register.csv")?, read("published-register.csv")?);
    let (interviews, routes) = (read("interviews.csv")?, read("published-routes.csv")?);
    let modes = [
        Mode {
            name: "interviews, onsets known",
            slug: "interviews",
            register: register.clone(),
            interviews: Some(interviews.clone()),
            routes: None,
        },
        Mode {
            name: "interviews, no onsets",
            slug: "interviews-no-onsets",
            register: without_onsets(&register),
            interviews: Some(interviews.clone()),
            routes: None,
        },
        Mode {
            name: "published routes, onsets known",
            slug: "published-onsets",
            register: with_onsets(&published_register, &register),
            interviews: None,
            routes: Some(routes.clone()),
        },
        Mode {
            name: "published routes, onsets as published",
            slug: "published",
            register: published_register.clone(),
            interviews: None,
            routes: Some(routes.clone()),
        },
        Mode {
            name: "published routes, no onsets",
            slug: "published-no-onsets",
            register: without_onsets(&published_register),
            interviews: None,
            routes: Some(routes.clone()),
        },
        Mode {
            name: "published routes + interviews",
            slug: "published-interviews",
            register: published_register.clone(),
            interviews: Some(interviews.clone()),
            routes: Some(routes.clone()),
        },
    ];
    let (hub, admin, inv) = demo_hub(dir, database_url).await?;
    let cases: Vec<String> = register
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next().map(str::to_owned))
        .collect();
    let f = |v: f64| format!("{v:.3}");
    let mut table = Vec::new();
    let mut report = Vec::new();
    for mode in &modes {
        let response = hub
            .open_response(
                &admin,
                &format!("Modes: {}", mode.name),
                "Infectious Disease Control and Prevention Act, art. 76-2",
                None,
            )
            .await?;
        hub.import_cases(&inv, response.id, &mode.register).await?;
        if let Some(text) = &mode.interviews {
            hub.import_interviews(&inv, response.id, text).await?;
        }
        if let Some(text) = &mode.routes {
            hub.import_routes(&inv, response.id, text).await?;
        }
        let t = Instant::now();
        let clusters = hub.clusters(&inv, response.id).await?;
        let link = t.elapsed().as_secs_f64();
        let mut cluster_of = HashMap::new();
        let mut sources = Vec::new();
        for c in &clusters {
            let Some(source) = &c.source else { continue };
            sources.push((source.number.clone(), source.number.clone()));
            for case in &c.cases {
                cluster_of.insert(case.number.clone(), source.number.clone());
            }
        }
        let rows = route_rows(mode.interviews.iter().chain(mode.routes.iter()));
        let found = dir.join("found").join(mode.slug);
        let score = |path: &Path| civic_sim::score::score(&city, path, Default::default());
        write_found(&found.join("platform"), &cases, &cluster_of, &sources)?;
        write_found(&found.join("naive"), &cases, &naive_clusters(&rows), &[])?;
        write_found(
            &found.join("ceiling"),
            &cases,
            &ceiling_clusters(&city, &rows)?,
            &[],
        )?;
        let (platform, naive, ceiling) = (
            score(&found.join("platform"))?,
            score(&found.join("naive"))?,
            score(&found.join("ceiling"))?,
        );
        let ari = |s: &civic_sim::score::Scores| {
            s.clusters.as_ref().map_or((0.0, 0.0), |c| {
                (
                    c.adjusted_rand_index,
                    c.groups_adjusted_rand_index.unwrap_or(0.0),
                )
            })
        };
        let (p, n, c) = (ari(&platform), ari(&naive), ari(&ceiling));
        let accuracy = platform.sources.as_ref().map_or(0.0, |s| s.accuracy);
        table.push(vec![
            mode.name.to_owned(),
            rows.len().to_string(),
            format!("{} / {}", f(p.0), f(p.1)),
            f(accuracy),
            format!("{} / {}", f(n.0), f(n.1)),
            f(c.1),
            format!("{link:.2} s"),
        ]);
        report.push(serde_json::json!({
            "mode": mode.name,
            "rows": rows.len(),
            "platform": platform,
            "naive": naive,
            "ceiling": ceiling,
            "cluster_listing_seconds": link,
        }));
    }
    crate::output::print(
        crate::output::Format::Table,
        &[
            "mode",
            "rows",
            "platform ARI (descent / groups)",
            "sources",
            "naive ARI (descent / groups)",
            "ceiling ARI (groups)",
            "first listing",
        ],
        &table,
        serde_json::Value::Null,
    );
    std::fs::write(
        dir.join("found").join("report.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    println!(
        "found files and report.json in {}",
        dir.join("found").display()
    );
    Ok(())
}
