//! `civic bench eiss`: the whole investigation on a synthetic city, timed
//! per case and scored against the truth.

use super::*;

#[derive(clap::Args, Debug)]
pub(crate) struct EissArgs {
    #[arg(long, default_value_t = 100_000)]
    pub people: usize,
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the city, the hub's database, the nodes and the results go.
    #[arg(long, default_value = "./bench-data/eiss")]
    pub dir: PathBuf,
    /// A PostgreSQL database instead of SQLite in --dir.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Cases worked on at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Only the first N cases (by confirmation).
    #[arg(long)]
    pub max_cases: Option<usize>,
    /// The response's rules as JSON (see `civic eiss open-response`).
    #[arg(long)]
    pub rules: Option<String>,
}

/// The whole investigation on a synthetic city, timed and scored.
pub(super) async fn eiss(args: EissArgs) -> Result<()> {
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
    let hub = Investigation::new(crate::open_hub(config).await?);
    civic_demo::seed(&hub).await?;
    let t = Instant::now();
    let nodes = civic_demo::nodes::start(&hub, &args.dir).await?;
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
