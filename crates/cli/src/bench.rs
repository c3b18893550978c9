//! `civic bench`: measured runs of the platform on a synthetic city.
//!
//! - `eiss`: the whole investigation — a city, the demo's nodes filled
//!   from it, its confirmed cases registered with their interviews, every
//!   case's data asked for and approved (by the demo's approver and police
//!   officer, with their own keys: "pre-approved" only in that nobody waits
//!   for them), collected, its route, contacts and cluster link built —
//!   timed per case from the last approval, then scored against the truth.
//! - `clusters`: capacity — a response of many cases (routes published
//!   elsewhere, loaded through the hub), and the time to recompute its
//!   clusters from storage and in memory.
//!
//! Runs are in-process (the hub's services, the nodes over mutual TLS on
//! loopback), so what is timed is the platform, not a client.

use anyhow::{anyhow, bail, Context, Result};
use civic_core::investigation::{CaseId, RequestStatus};
use civic_hub::eiss::DataRequestInput;
use civic_hub::{Actor, Config, Ctx, Hub};
use civic_store::{InvestigationStore, RequestFilter};
use clap::Subcommand;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// The epidemic investigation end to end: every confirmed case of a
    /// city asked for, approved, collected from the nodes, its route,
    /// contacts and cluster built; timed per case and scored against the
    /// city's truth.
    Eiss {
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        #[arg(long, default_value_t = 14)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the city, the hub's database, the nodes and the results go.
        #[arg(long, default_value = "./bench-data/eiss")]
        dir: PathBuf,
        /// A PostgreSQL database instead of SQLite in --dir.
        #[arg(long)]
        database_url: Option<String>,
        /// Cases worked on at once.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Only the first N cases (by confirmation).
        #[arg(long)]
        max_cases: Option<usize>,
        /// The response's rules as JSON (see `civic eiss open-response`).
        #[arg(long)]
        rules: Option<String>,
    },
    /// Public MyData's transfers: each timed from the citizen's consent to
    /// the package verified at the agency, many at once.
    Mydata {
        #[arg(long, default_value_t = 2_000)]
        people: usize,
        #[arg(long, default_value_t = 5_000)]
        transfers: usize,
        /// Transfers in flight at once.
        #[arg(long, default_value_t = 128)]
        concurrency: usize,
        #[arg(long, default_value = "./bench-data/mydata")]
        dir: PathBuf,
        /// A PostgreSQL database instead of SQLite in --dir.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Clusters in every mode but the nodes' (that is `bench eiss`): from
    /// interviews, from published routes, from both, with and without
    /// onsets; each scored beside a naive same-place same-day union and the
    /// ceiling of what the mode's rows show.
    Modes {
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        #[arg(long, default_value_t = 14)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "./bench-data/modes")]
        dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Capacity: many cases' routes (published elsewhere) in one response,
    /// and the time to recompute its clusters.
    Clusters {
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        #[arg(long, default_value_t = 100_000)]
        cases: usize,
        #[arg(long, default_value = "./bench-data/clusters")]
        dir: PathBuf,
        #[arg(long)]
        database_url: Option<String>,
    },
}

/// Runs a `civic bench` command.
pub(crate) async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Eiss {
            people,
            days,
            seed,
            dir,
            database_url,
            parallel,
            max_cases,
            rules,
        } => {
            eiss(EissArgs {
                people,
                days,
                seed,
                dir,
                database_url,
                parallel,
                max_cases,
                rules,
            })
            .await
        }
        BenchCommand::Modes {
            people,
            days,
            seed,
            dir,
            database_url,
        } => modes(&dir, people, days, seed, database_url).await,
        BenchCommand::Clusters {
            people,
            cases,
            dir,
            database_url,
        } => clusters(&dir, people, cases, database_url).await,
        BenchCommand::Mydata {
            people,
            transfers,
            concurrency,
            dir,
            database_url,
        } => {
            mydata(MydataArgs {
                people,
                transfers,
                concurrency,
                dir,
                database_url,
            })
            .await
        }
    }
}

/// A demo user, as if signed in with two factors (in-process only: who
/// holds the hub holds its keys).
async fn signed_in(hub: &Hub, username: &str) -> Result<Ctx> {
    Ok(civic_hub::demo_nodes::signed_in(hub, username).await?)
}

/// A hub on `dir` (SQLite there, or `database_url`) with the demo's
/// users, and its administrator and Seoul investigator signed in.
async fn demo_hub(dir: &Path, database_url: Option<String>) -> Result<(Hub, Ctx, Ctx)> {
    let hub = Hub::open(Config {
        data_dir: dir.to_path_buf(),
        database_url,
        ..Config::default()
    })
    .await?;
    hub.seed_demo().await?;
    let admin = signed_in(&hub, "admin").await?;
    let inv = signed_in(&hub, "investigator.seoul").await?;
    Ok((hub, admin, inv))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub struct EissArgs {
    pub people: usize,
    pub days: u32,
    pub seed: u64,
    pub dir: std::path::PathBuf,
    pub database_url: Option<String>,
    pub parallel: usize,
    pub max_cases: Option<usize>,
    /// The response's rules (JSON), if not the defaults.
    pub rules: Option<String>,
}

/// The whole investigation on a synthetic city, timed and scored.
pub async fn eiss(args: EissArgs) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    let summary =
        crate::sim::city(&args.dir.join("city"), args.people, args.days, args.seed).await?;
    println!(
        "city: {} people, {} days, {} pings, {} cases ({:.1} s)",
        summary.people,
        summary.days,
        summary.pings,
        summary.cases,
        started.elapsed().as_secs_f64()
    );
    let config = Config {
        data_dir: args.dir.clone(),
        database_url: args.database_url.clone(),
        ..Config::default()
    };
    let hub = Hub::open(config).await?;
    hub.seed_demo().await?;
    let t = Instant::now();
    let nodes = civic_hub::demo_nodes::start(&hub, &args.dir).await?;
    println!(
        "nodes: {} up ({} events) in {:.1} s",
        nodes.len(),
        nodes.iter().map(|n| n.events).sum::<u64>(),
        t.elapsed().as_secs_f64()
    );
    let admin = signed_in(&hub, "admin").await?;
    let inv = signed_in(&hub, "investigator.seoul").await?;
    let approver = signed_in(&hub, "approver").await?;
    let police = signed_in(&hub, "police").await?;
    let rules: Option<civic_eiss::Rules> = args
        .rules
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("--rules must be the JSON of a response's rules")?;
    let response = hub
        .open_response(
            &admin,
            &format!(
                "Benchmark {}",
                time::OffsetDateTime::now_utc().unix_timestamp()
            ),
            "Infectious Disease Control and Prevention Act, art. 76-2",
            rules,
        )
        .await?;
    let city = args.dir.join("city");
    let register = std::fs::read_to_string(city.join("case-register.csv"))?;
    let mut cases = hub.import_cases(&inv, response.id, &register).await?;
    let interviews = std::fs::read_to_string(city.join("interviews.csv"))?;
    hub.import_interviews(&inv, response.id, &interviews)
        .await?;
    // In the order they were confirmed, as they would arrive.
    cases.sort_by(|a, b| (&a.confirmed, &a.number).cmp(&(&b.confirmed, &b.number)));
    if let Some(n) = args.max_cases {
        cases.truncate(n);
    }
    println!(
        "response {}: {} cases registered with their interviews",
        response.id,
        cases.len()
    );

    // Each case: asked, approved twice, then timed until its route,
    // contacts and cluster link are in.
    let hub = Arc::new(hub);
    let limit = Arc::new(tokio::sync::Semaphore::new(args.parallel.max(1)));
    let bar = crate::progress_bar(cases.len() as u64, "cases {bar:40} {pos}/{len} {elapsed}");
    let run_started = Instant::now();
    let mut tasks = Vec::new();
    for case in cases.clone() {
        let (hub, inv, approver, police, limit, bar) = (
            hub.clone(),
            inv.clone(),
            approver.clone(),
            police.clone(),
            limit.clone(),
            bar.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await?;
            let request = hub
                .request_data(
                    &inv,
                    case.id,
                    DataRequestInput {
                        items: vec![
                            "location_pings".into(),
                            "card_transactions".into(),
                            "transit_taps".into(),
                        ],
                        reason: "Confirmed case: route, contacts and source".into(),
                        contacts: true,
                        from: None,
                        until: None,
                    },
                )
                .await?;
            hub.decide_request(&approver, request.id, true, None)
                .await?;
            let approved = Instant::now();
            hub.decide_request(&police, request.id, true, None).await?;
            loop {
                let done = hub
                    .store
                    .request_metas(RequestFilter {
                        case: Some(case.id),
                        ..RequestFilter::default()
                    })
                    .await?
                    .iter()
                    .any(|r| r.id == request.id && r.status == RequestStatus::Collected);
                if done {
                    break;
                }
                if approved.elapsed() > Duration::from_secs(900) {
                    bail!("case {} not collected after 15 minutes", case.number);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            bar.inc(1);
            Ok::<_, anyhow::Error>((case.id, approved.elapsed().as_secs_f64()))
        }));
    }
    let mut times: Vec<(CaseId, f64)> = Vec::new();
    for t in tasks {
        times.push(t.await??);
    }
    bar.finish_and_clear();
    let all_cases = run_started.elapsed().as_secs_f64();
    let mut secs: Vec<f64> = times.iter().map(|t| t.1).collect();
    secs.sort_by(f64::total_cmp);

    // Clusters recomputed from storage, and in memory alone.
    let t = Instant::now();
    let inputs = hub.cluster_inputs(response.id).await?;
    let read = t.elapsed().as_secs_f64();
    if std::env::var("CIVIC_BENCH_DUMP").is_ok() {
        std::fs::write(
            args.dir.join("cluster-inputs.json"),
            serde_json::to_vec(&inputs)?,
        )?;
    }
    // The naive baseline on the same data: the cases' places known to a
    // point (merchants, places told, homes) by 100 m cell and local date.
    let number: HashMap<i64, &str> = cases.iter().map(|c| (c.id.0, c.number.as_str())).collect();
    let local = time::UtcOffset::from_whole_seconds(9 * 3600).unwrap_or(time::UtcOffset::UTC);
    let mut naive_rows = Vec::new();
    for input in &inputs {
        let Some(case) = number.get(&input.case) else {
            continue;
        };
        for p in &input.presences {
            let Some((lat, lon)) = p.point else { continue };
            // Each day of the presence (a home spans the whole period).
            let mut t = p.start;
            while t <= p.end {
                let date = time::OffsetDateTime::from_unix_timestamp(t)
                    .map(|d| d.to_offset(local).date().to_string())
                    .unwrap_or_default();
                naive_rows.push((case.to_string(), lat, lon, date));
                t += civic_eiss::DAY;
            }
        }
    }
    let t = Instant::now();
    let index = civic_eiss::clusters::ClusterIndex::build(Default::default(), inputs);
    let _ = index.assignments();
    let recompute = t.elapsed().as_secs_f64();

    // What was found, in the scorer's files.
    let found = args.dir.join("found");
    std::fs::create_dir_all(&found)?;
    let contacts = hub.response_contacts(&inv, response.id).await?;
    let telcos: Vec<&str> = ["SK Telecom", "KT", "LG Uplus"].to_vec();
    let mut out = std::io::BufWriter::new(std::fs::File::create(found.join("contacts.csv"))?);
    writeln!(out, "case_id,subscriber_id,card_id")?;
    for c in &contacts {
        if telcos.contains(&c.holder.as_str()) {
            writeln!(out, "{},{},", c.case_number, c.identifier)?;
        } else {
            writeln!(out, "{},,{}", c.case_number, c.identifier)?;
        }
    }
    out.flush()?;
    let clusters = hub.clusters(&inv, response.id).await?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(found.join("clusters.csv"))?);
    let mut sources = std::io::BufWriter::new(std::fs::File::create(found.join("sources.csv"))?);
    writeln!(out, "case_id,cluster_id")?;
    writeln!(sources, "cluster_id,source_case_id")?;
    let mut in_cluster: HashMap<String, String> = HashMap::new();
    for c in &clusters {
        // The benchmark's investigator covers every region: she sees each
        // cluster's source.
        let Some(source) = &c.source else { continue };
        writeln!(sources, "{},{}", source.number, source.number)?;
        for case in &c.cases {
            in_cluster.insert(case.number.clone(), source.number.clone());
        }
    }
    for c in &cases {
        let k = in_cluster.get(&c.number).unwrap_or(&c.number);
        writeln!(out, "{},{}", c.number, k)?;
    }
    out.flush()?;
    sources.flush()?;
    drop((out, sources));
    let all: Vec<String> = cases.iter().map(|c| c.number.clone()).collect();
    write_found(
        &found.join("naive"),
        &all,
        &naive_clusters(&naive_rows),
        &[],
    )?;
    let naive = civic_sim::score::score(&city, &found.join("naive"), Default::default())?;
    let naive = naive.clusters.context("clusters scored")?;
    let score = |level| {
        civic_sim::score::score(
            &city,
            &found,
            civic_sim::score::Rules {
                level,
                ..civic_sim::score::Rules::default()
            },
        )
    };
    let venue = score(civic_sim::score::Level::Venue)?;
    let tower = score(civic_sim::score::Level::Tower)?;
    let f = |v: f64| format!("{v:.3}");
    let (vc, tc) = (
        venue.contacts.clone().context("contacts scored")?,
        tower.contacts.clone().context("contacts scored")?,
    );
    let rows = vec![
        vec![
            "cases".into(),
            cases.len().to_string(),
            format!("{} clusters found", clusters.len()),
        ],
        vec![
            "per case, approval to route + contacts + cluster: median".into(),
            format!("{:.2} s", percentile(&secs, 50.0)),
            format!("{} in parallel", args.parallel),
        ],
        vec![
            "per case: p95".into(),
            format!("{:.2} s", percentile(&secs, 95.0)),
            format!("max {:.2} s", secs.last().copied().unwrap_or(0.0)),
        ],
        vec![
            "all cases".into(),
            format!("{all_cases:.1} s"),
            String::new(),
        ],
        vec![
            "clusters recomputed: read and decrypt".into(),
            format!("{read:.3} s"),
            String::new(),
        ],
        vec![
            "clusters recomputed: link".into(),
            format!("{recompute:.3} s"),
            String::new(),
        ],
        vec![
            "contact recall, tower level".into(),
            f(tc.recall),
            format!(
                "{} of {} (people with a phone in the same tower's cell ≥ 10 min)",
                tc.true_positives, tc.truth
            ),
        ],
        vec![
            "contact precision, tower level".into(),
            f(tc.precision),
            format!("{} found", tc.found),
        ],
        vec![
            "contact recall, venue level".into(),
            f(vc.recall),
            format!(
                "{} of {} (anyone at the same venue ≥ 10 min)",
                vc.true_positives, vc.truth
            ),
        ],
        vec![
            "contact precision, venue level".into(),
            f(vc.precision),
            String::new(),
        ],
        vec![
            "cluster adjusted Rand index".into(),
            f(venue
                .clusters
                .as_ref()
                .map_or(0.0, |c| c.adjusted_rand_index)),
            String::new(),
        ],
        vec![
            "cluster adjusted Rand index, setting groups".into(),
            f(venue
                .clusters
                .as_ref()
                .and_then(|c| c.groups_adjusted_rand_index)
                .unwrap_or(0.0)),
            String::new(),
        ],
        vec![
            "naive same-place same-day union: ARI (descent / groups)".into(),
            format!(
                "{} / {}",
                f(naive.adjusted_rand_index),
                f(naive.groups_adjusted_rand_index.unwrap_or(0.0))
            ),
            "cases within 100 m on the same date, one cluster".into(),
        ],
        vec![
            "source accuracy".into(),
            f(venue.sources.as_ref().map_or(0.0, |s| s.accuracy)),
            venue
                .sources
                .as_ref()
                .map_or(String::new(), |s| format!("{} of {}", s.correct, s.claims)),
        ],
    ];
    crate::output::print(
        crate::output::Format::Table,
        &["measure", "value", "detail"],
        &rows,
        serde_json::Value::Null,
    );
    let report = serde_json::json!({
        "cases": cases.len(),
        "parallel": args.parallel,
        "per_case_seconds": { "median": percentile(&secs, 50.0), "p95": percentile(&secs, 95.0), "max": secs.last() },
        "all_cases_seconds": all_cases,
        "clusters_recompute_seconds": { "read": read, "link": recompute },
        "venue": venue,
        "tower": tower,
        "naive": naive,
    });
    std::fs::write(
        found.join("report.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    println!("found files and report.json in {}", found.display());
    for n in nodes {
        n.running.shutdown().await;
    }
    Ok(())
}

/// Capacity: `cases` cases of routes published elsewhere (made from the
/// city's true stays), loaded into one response, their clusters
/// recomputed.
pub async fn clusters(
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
fn routes_from_visits(city: &Path, cases: usize, out: &Path) -> Result<usize> {
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

pub struct MydataArgs {
    pub people: usize,
    pub transfers: usize,
    pub concurrency: usize,
    pub dir: std::path::PathBuf,
    pub database_url: Option<String>,
}

/// Public MyData's transfers: requests made beforehand (untimed), then
/// each timed from the citizen's consent to the package verified at the
/// agency — consent recorded, grant issued, the holder's node asked over
/// mutual TLS, the credential signed and encrypted there, kept sealed at
/// the hub, fetched by the agency, decrypted with its key and verified
/// against the holder's keys and status list (which an agency caches).
pub async fn mydata(args: MydataArgs) -> Result<()> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    let summary = crate::sim::city(&args.dir.join("city"), args.people, 1, 1).await?;
    let config = Config {
        data_dir: args.dir.clone(),
        database_url: args.database_url.clone(),
        ..Config::default()
    };
    let backend = if args.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let hub = Hub::open(config).await?;
    hub.seed_demo().await?;
    let _nodes = civic_hub::demo_nodes::start(&hub, &args.dir).await?;
    hub.seed_demo_catalogue().await?;
    hub.seed_demo_mydata(&args.dir.join("city")).await?;
    println!(
        "city: {} people; hub on {backend}, nodes up ({:.1} s)",
        summary.people,
        started.elapsed().as_secs_f64()
    );
    let agency = signed_in(&hub, "mydata.agency").await?;
    let citizen = signed_in(&hub, "citizen").await?;
    let agreement = hub
        .list_agreements(&agency)
        .await?
        .into_iter()
        .find(|a| {
            a.offer_code == "income-bracket"
                && a.status == civic_core::mydata::AgreementStatus::Approved
        })
        .ok_or_else(|| anyhow!("the demo has no approved income-bracket agreement"))?;
    let secret = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let key = serde_json::to_value(civic_mydata::Jwk::x25519(&x25519_dalek::PublicKey::from(
        &secret,
    )))?;
    // Every person of the city has an income bracket at the insurer.
    let subjects: Vec<String> = (0..summary.people as u64)
        .map(civic_hub::demo_records::subject_of)
        .collect();
    let t = Instant::now();
    let mut asked = Vec::with_capacity(args.transfers);
    for i in 0..args.transfers {
        let subject = subjects[i % subjects.len()].clone();
        let view = hub
            .request_transfer(
                &agency,
                civic_hub::transfers::TransferRequest {
                    agreement_id: agreement.id,
                    subject: subject.clone(),
                    items: vec!["income_bracket".into()],
                    recipient_key: key.clone(),
                },
            )
            .await?;
        asked.push((view.id, subject));
    }
    println!(
        "{} requests awaiting consent ({:.1} s)",
        asked.len(),
        t.elapsed().as_secs_f64()
    );
    let keys = Arc::new(hub.issuer_jwks("node-nhis").await?);
    let status = Arc::new(hub.issuer_status_list("node-nhis").await?);
    let secret = Arc::new(secret);
    let hub = Arc::new(hub);
    let gate = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let wall = Instant::now();
    let mut tasks = Vec::with_capacity(asked.len());
    for (id, subject) in asked {
        let (hub, agency, keys, status, secret, gate) = (
            hub.clone(),
            agency.clone(),
            keys.clone(),
            status.clone(),
            secret.clone(),
            gate.clone(),
        );
        // The citizen, signed in with two factors (in-process).
        let mut me = citizen.clone();
        if let Actor::User { principal, .. } = &mut me.actor {
            principal.duties = vec![civic_core::identity::Duty::citizen(
                civic_core::identity::Subject::parse(&subject)?,
            )];
        }
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let t = Instant::now();
            let done = hub
                .consent_transfer(
                    &me,
                    id,
                    civic_hub::transfers::ConsentRequest {
                        mode: "once".into(),
                        until: None,
                        interval_days: None,
                    },
                )
                .await?;
            if done.state != civic_core::mydata::TransferState::Delivered {
                bail!("transfer {id} is {}", done.state);
            }
            let package = hub.transfer_package(&agency, id).await?;
            let (plain, _) = civic_mydata::jwe::decrypt(&package.credential, &secret)
                .map_err(|e| anyhow!("transfer {id}: {e}"))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let verified = civic_mydata::sdjwt::verify(std::str::from_utf8(&plain)?, &keys, now)
                .map_err(|e| anyhow!("transfer {id}: {e}"))?;
            let (uri, idx) = verified
                .status()
                .ok_or_else(|| anyhow!("transfer {id}: no status"))?;
            if civic_mydata::status::is_revoked(&status.token, &keys, &uri, idx, now)
                .map_err(|e| anyhow!("transfer {id}: {e}"))?
            {
                bail!("transfer {id} is revoked");
            }
            Ok::<f64, anyhow::Error>(t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let bar = crate::progress_bar(tasks.len() as u64, "transfers {bar:40} {pos}/{len}");
    let mut millis = Vec::with_capacity(tasks.len());
    for task in tasks {
        millis.push(task.await.map_err(|e| anyhow!("{e}"))??);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let elapsed = wall.elapsed().as_secs_f64();
    millis.sort_by(f64::total_cmp);
    let line = format!(
        "mydata {backend}: {} transfers, concurrency {}: {:.0} transfers/s; consent -> verified p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        millis.len(),
        args.concurrency,
        millis.len() as f64 / elapsed,
        percentile(&millis, 50.0),
        percentile(&millis, 99.0),
        millis.last().copied().unwrap_or(0.0)
    );
    println!("{line}");
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(args.dir.join("results.txt"))?;
    writeln!(out, "{line}")?;
    Ok(())
}

/// A way cases reach the hub, for `bench modes`.
struct Mode {
    name: &'static str,
    slug: &'static str,
    register: String,
    interviews: Option<String>,
    routes: Option<String>,
}

/// A case-register CSV with its `onset_date` column emptied.
fn without_onsets(register: &str) -> String {
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
fn with_onsets(published: &str, full: &str) -> String {
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
fn route_rows<'a>(texts: impl IntoIterator<Item = &'a String>) -> Vec<(String, f64, f64, String)> {
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
fn cell_100m(lat: f64, lon: f64) -> (i64, i64) {
    let m = 111_195.0;
    (
        (lat * m / 100.0).round() as i64,
        (lon * m * lat.to_radians().cos() / 100.0).round() as i64,
    )
}

/// The naive baseline: cases in the same 100 m cell on the same date are
/// one cluster (union-find over every such pair, whatever the place is).
fn naive_clusters(rows: &[(String, f64, f64, String)]) -> HashMap<String, String> {
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
fn ceiling_clusters(
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
fn write_found(
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
pub async fn modes(
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
