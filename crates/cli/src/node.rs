//! `civic node`: a holder's node — import, inspect, serve, enrol with a hub
//! and send it batches.

use crate::output::{self, Format};
use crate::{init_logging, progress_bar, stop_signal};
use anyhow::{anyhow, bail, Context, Result};
use civic_hub::config::LogFormat;
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum NodeCommand {
    /// Enrol this node with the hub using a one-time token: writes its
    /// keys (which never leave it), its certificate and a node.toml.
    Enrol {
        /// The hub's API, e.g. https://hub.example:8080
        #[arg(long)]
        hub: String,
        #[arg(long)]
        token: String,
        /// The node's name, as the token was issued for.
        #[arg(long)]
        name: String,
        /// Where the node keeps its keys, certificates, node.toml and data.
        #[arg(long)]
        dir: PathBuf,
        /// The CA certificate the hub's HTTPS certificate is issued by.
        #[arg(long)]
        hub_ca: Option<PathBuf>,
        /// What the node will serve: pings, transactions or taps.
        #[arg(long, default_value = "pings")]
        kind: String,
    },
    /// Serve the node's data to the hub, over mutual TLS, to granted
    /// requests only (see node.toml in the README).
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Issue a token with which the holder's own systems append events to
    /// this node over HTTPS (node.toml's ingest_addr). It is printed once;
    /// the node keeps only its digest.
    IngestToken {
        #[arg(long)]
        config: PathBuf,
        /// Which system the token is for, e.g. skt-billing-loader.
        #[arg(long)]
        name: String,
    },
    /// Append an events file (CSV or .csv.gz, in the node's format) to a
    /// running node over HTTPS, in batches; each batch is acknowledged
    /// only once it is on the node's disk.
    Append {
        /// The node's ingest address, e.g. https://127.0.0.1:9444
        #[arg(long)]
        url: String,
        /// The CA certificate the node's certificate is issued by (ca.pem).
        #[arg(long)]
        ca: PathBuf,
        /// The token from `civic node ingest-token`.
        #[arg(long, env = "CIVIC_INGEST_TOKEN", hide_env_values = true)]
        token: String,
        /// pings, transactions or taps, with the header row.
        #[arg(long)]
        events: Option<PathBuf>,
        /// towers, merchants or stops to add first (all or nothing).
        #[arg(long)]
        places: Option<PathBuf>,
        #[arg(long, default_value_t = 200_000)]
        batch_rows: usize,
        /// Rows of the file already appended (to resume after an error).
        #[arg(long, default_value_t = 0)]
        skip_rows: u64,
    },
    /// Move the events appended since the last compaction into segments
    /// (a serving node also does this by itself as they accumulate).
    Compact {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "pings")]
        kind: String,
    },
    /// What a node's store holds: rows (in segments and appended since the
    /// last compaction), holders, places, segments, imported files.
    Info {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "pings")]
        kind: String,
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
    /// Import a node's data (CSV or .csv.gz) into its stores, each all or
    /// nothing; works without a running hub.
    Import {
        #[arg(long)]
        data_dir: PathBuf,
        /// A telco's towers.csv: cell_id,lat,lon
        #[arg(long)]
        towers: Option<PathBuf>,
        /// A telco's pings: subscriber_id,ts,cell_id (repeatable)
        #[arg(long = "pings")]
        pings: Vec<PathBuf>,
        /// A card company's merchants.csv: merchant_id,lat,lon,…
        #[arg(long)]
        merchants: Option<PathBuf>,
        /// A card company's transactions: card_id,ts,merchant_id,… (repeatable)
        #[arg(long = "transactions")]
        transactions: Vec<PathBuf>,
        /// A transit operator's stops.csv: stop_id,lat,lon,…
        #[arg(long)]
        stops: Option<PathBuf>,
        /// A transit operator's taps: card_id,ts,stop_id,… (repeatable)
        #[arg(long = "taps")]
        taps: Vec<PathBuf>,
    },
    /// Answer a batch of exposure windows (query_id,lat,lon,radius_m,t_start,t_end)
    /// from the local store: query_id,count (or with --ids query_id,subscriber_id)
    /// on standard output.
    Exposure {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        /// List the subscribers instead of counting them.
        #[arg(long)]
        ids: bool,
        /// Also write each window's latency (query_id,micros) to this file.
        #[arg(long)]
        latencies: Option<PathBuf>,
        /// Which store answers: pings (towers), transactions (merchants) or
        /// taps (subway stations); the answer's ids are subscribers or cards.
        #[arg(long, default_value = "pings")]
        kind: String,
    },
}

/// Runs a `civic node` command.
pub(crate) async fn run(command: NodeCommand, log_override: Option<LogFormat>) -> Result<()> {
    match command {
        NodeCommand::Enrol {
            hub,
            token,
            name,
            dir,
            hub_ca,
            kind,
        } => node_enrol(&hub, &token, &name, &dir, hub_ca.as_deref(), &kind).await,
        NodeCommand::Append {
            url,
            ca,
            token,
            events,
            places,
            batch_rows,
            skip_rows,
        } => {
            node_append(
                &url,
                &ca,
                &token,
                places.as_deref(),
                events.as_deref(),
                batch_rows,
                skip_rows,
            )
            .await
        }
        NodeCommand::Serve { config } => {
            init_logging(log_override.unwrap_or(LogFormat::Text));
            let config = civic_node_server::NodeConfig::load(&config)?;
            let running = civic_node_server::serve(config).await?;
            tracing::info!(addr = %running.addr, "node serving the hub over mutual TLS");
            if let Some(ingest) = running.ingest_addr {
                tracing::info!(addr = %ingest, "node taking the holder's batches over HTTPS");
            }
            let handle = running.handle();
            tokio::spawn(async move {
                stop_signal().await;
                handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            running.wait().await?;
            Ok(())
        }
        command => node(command),
    }
}

fn node(command: NodeCommand) -> Result<()> {
    use civic_node::{EventStore, ExposureQuery, Kind, TowerSelection};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    match command {
        NodeCommand::Serve { .. } | NodeCommand::Enrol { .. } | NodeCommand::Append { .. } => {
            bail!("handled by the async runtime")
        }
        NodeCommand::IngestToken { config, name } => {
            let config = civic_node_server::NodeConfig::load(&config)?;
            let token = civic_node_server::ingest::issue_token(&config.data_dir, &name)?;
            println!("{token}");
            match &config.ingest_addr {
                Some(addr) => eprintln!(
                    "ingest token for {name}: shown once; send it as Authorization: Bearer to https://{addr}{}",
                    civic_node_server::ingest::EVENTS_PATH
                ),
                None => eprintln!(
                    "ingest token for {name}: shown once; set ingest_addr in node.toml to open the ingest listener"
                ),
            }
            Ok(())
        }
        NodeCommand::Info {
            data_dir,
            kind,
            format,
        } => {
            let kind = Kind::parse(&kind)
                .ok_or_else(|| anyhow!("--kind must be pings, transactions or taps"))?;
            let store = EventStore::open(&data_dir, kind)?;
            let facts = [
                ("rows", store.ping_count().to_string()),
                ("appended since compaction", store.tail_len().to_string()),
                ("holders", store.subscriber_count().to_string()),
                ("places", store.towers().len().to_string()),
                ("segments", store.segment_count().to_string()),
                ("imported files", store.imported_files().len().to_string()),
                ("on disk", human_bytes(store.size_on_disk())),
            ];
            let json = serde_json::json!({
                "kind": kind.dir_name(),
                "rows": store.ping_count(),
                "appended_since_compaction": store.tail_len(),
                "holders": store.subscriber_count(),
                "places": store.towers().len(),
                "segments": store.segment_count(),
                "imported": store.imported_files(),
                "bytes_on_disk": store.size_on_disk(),
            });
            let rows: Vec<Vec<String>> = facts
                .iter()
                .map(|(k, v)| vec![(*k).to_owned(), v.clone()])
                .collect();
            output::print(Format::resolve(format), &["", kind.dir_name()], &rows, json);
            Ok(())
        }
        NodeCommand::Compact { data_dir, kind } => {
            let kind = Kind::parse(&kind)
                .ok_or_else(|| anyhow!("--kind must be pings, transactions or taps"))?;
            let mut store = EventStore::open(&data_dir, kind)?;
            let moved = store.compact()?;
            println!(
                "{}: compacted {moved} appended rows into segments; the store holds {} rows, {} on disk",
                kind.dir_name(),
                store.ping_count(),
                human_bytes(store.size_on_disk())
            );
            Ok(())
        }
        NodeCommand::Import {
            data_dir,
            towers,
            pings,
            merchants,
            transactions,
            stops,
            taps,
        } => {
            let work = [
                (Kind::Pings, towers, pings),
                (Kind::Transactions, merchants, transactions),
                (Kind::Taps, stops, taps),
            ];
            if work
                .iter()
                .all(|(_, places, events)| places.is_none() && events.is_empty())
            {
                bail!("nothing to import: give --towers/--pings, --merchants/--transactions or --stops/--taps");
            }
            for (kind, places, events) in work {
                if places.is_none() && events.is_empty() {
                    continue;
                }
                let mut store = EventStore::open(&data_dir, kind)?;
                let total: u64 = places
                    .iter()
                    .chain(&events)
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum();
                let read = Arc::new(AtomicU64::new(0));
                let bar = progress_bar(
                    total,
                    "importing {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
                );
                let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
                let watcher = {
                    let (bar, read) = (bar.clone(), read.clone());
                    std::thread::spawn(move || {
                        while done_rx
                            .recv_timeout(std::time::Duration::from_millis(200))
                            .is_err()
                        {
                            bar.set_position(read.load(Ordering::Relaxed));
                        }
                    })
                };
                let started = std::time::Instant::now();
                let paths: Vec<&Path> = events.iter().map(PathBuf::as_path).collect();
                let result = store.import(places.as_deref(), &paths, read);
                let _ = done_tx.send(());
                let _ = watcher.join();
                bar.finish_and_clear();
                let report = result?;
                let secs = started.elapsed().as_secs_f64();
                for (path, first) in &report.already_imported {
                    if first.at > 0 {
                        println!(
                            "{path}: already imported ({} rows, sha256 {}…, at {}): left out",
                            first.events,
                            &first.sha256[..12],
                            time::OffsetDateTime::from_unix_timestamp(first.at)
                                .map(|t| t.to_string())
                                .unwrap_or_default()
                        );
                    } else {
                        println!("{path}: the same file is named twice in this import: left out");
                    }
                }
                println!(
                    "{}: imported {} rows ({:.2} M/s), {} new holders, {} new places into {} segments in {:.1} s; the store holds {} rows, {} on disk",
                    kind.dir_name(),
                    report.pings,
                    report.pings as f64 / secs.max(1e-9) / 1e6,
                    report.subscribers_added,
                    report.towers_added,
                    report.segments,
                    secs,
                    store.ping_count(),
                    human_bytes(store.size_on_disk())
                );
            }
            Ok(())
        }
        NodeCommand::Exposure {
            data_dir,
            queries,
            ids,
            latencies,
            kind,
        } => {
            let kind = Kind::parse(&kind)
                .ok_or_else(|| anyhow!("--kind must be pings, transactions or taps"))?;
            let store = EventStore::open(&data_dir, kind)?;
            if store.ping_count() == 0 {
                bail!(
                    "no {} in {}: run `civic node import` first",
                    kind.dir_name(),
                    data_dir.display()
                );
            }
            let mut lines = civic_node::csv::Lines::open(
                &queries,
                &["query_id", "lat", "lon", "radius_m", "t_start", "t_end"],
                Arc::new(AtomicU64::new(0)),
            )?;
            let mut batch = Vec::new();
            while lines.advance()? {
                let f: Vec<&[u8]> = civic_node::csv::fields(lines.current()).collect();
                let parsed = (|| {
                    let id = civic_node::csv::parse_u64(f.first()?)?;
                    let lat = civic_node::csv::parse_f64(f.get(1)?)
                        .filter(|v| (-90.0..=90.0).contains(v))?;
                    let lon = civic_node::csv::parse_f64(f.get(2)?)
                        .filter(|v| (-180.0..=180.0).contains(v))?;
                    let radius = civic_node::csv::parse_f64(f.get(3)?)
                        .filter(|v| (0.0..=100_000.0).contains(v))?;
                    let t0 = civic_node::csv::parse_u64(f.get(4)?)? as i64;
                    let t1 = civic_node::csv::parse_u64(f.get(5)?)? as i64;
                    (t0 <= t1).then_some((
                        id,
                        ExposureQuery {
                            towers: TowerSelection::Near {
                                lat,
                                lon,
                                radius_m: radius,
                            },
                            t_start: t0,
                            t_end: t1,
                        },
                    ))
                })();
                match parsed {
                    Some(q) => batch.push(q),
                    None => bail!(lines.bad("expected query_id, lat, lon (degrees), radius_m (0-100000), t_start <= t_end (Unix seconds)")),
                }
            }
            let started = std::time::Instant::now();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            use std::io::Write;
            if ids {
                let holder = if kind == Kind::Pings {
                    "subscriber_id"
                } else {
                    "card_id"
                };
                writeln!(out, "query_id,{holder}")?;
            } else {
                writeln!(out, "query_id,count")?;
            }
            let mut timings = Vec::with_capacity(batch.len());
            for (id, q) in &batch {
                let t = std::time::Instant::now();
                if ids {
                    let answers = store.exposure(q);
                    timings.push((id, t.elapsed()));
                    for a in answers {
                        writeln!(out, "{id},{}", a.subscriber)?;
                    }
                } else {
                    let count = store.exposure_count(q);
                    timings.push((id, t.elapsed()));
                    writeln!(out, "{id},{count}")?;
                }
            }
            out.flush()?;
            if let Some(path) = latencies {
                let text: String = std::iter::once("query_id,micros\n".to_owned())
                    .chain(
                        timings
                            .iter()
                            .map(|(id, d)| format!("{id},{:.1}\n", d.as_secs_f64() * 1e6)),
                    )
                    .collect();
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!(
                "{} exposure windows answered in {:.1} ms",
                batch.len(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            Ok(())
        }
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{n} B"),
    }
}

/// `civic node append`: sends an events file to a node's ingest listener
/// in batches, each acknowledged only once the node has it on disk.
pub(crate) async fn node_append(
    url: &str,
    ca: &Path,
    token: &str,
    places: Option<&Path>,
    events: Option<&Path>,
    batch_rows: usize,
    skip_rows: u64,
) -> Result<()> {
    use std::io::BufRead;
    if batch_rows == 0 {
        bail!("--batch-rows must be at least 1");
    }
    if !url.starts_with("https://") {
        bail!("--url must be the node's https:// ingest address (node.toml's ingest_addr)");
    }
    if places.is_none() && events.is_none() {
        bail!("nothing to send: give --places and/or --events");
    }
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(civic_client::client::trusting(ca)?)
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(600))
        .build()?;
    let refused = |what: &str, detail: String| anyhow!("the node refused the {what}: {detail}");
    let detail = |response: reqwest::Response| async move {
        let status = response.status();
        response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.to_string())
    };
    if let Some(places) = places {
        let body =
            std::fs::read(places).with_context(|| format!("reading {}", places.display()))?;
        let mut request = client
            .post(format!(
                "{}{}",
                url.trim_end_matches('/'),
                civic_node_server::ingest::PLACES_PATH
            ))
            .bearer_auth(token)
            .header("content-type", "text/csv")
            .body(body);
        if places.extension().is_some_and(|e| e == "gz") {
            request = request.header("content-encoding", "gzip");
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!("the node did not answer: {e}"))?;
        if !response.status().is_success() {
            return Err(refused("places", detail(response).await));
        }
        let report: serde_json::Value = response.json().await?;
        println!(
            "added {} places; the node knows {}",
            report["added"], report["places"]
        );
    }
    let Some(events) = events else {
        return Ok(());
    };
    let endpoint = format!(
        "{}{}",
        url.trim_end_matches('/'),
        civic_node_server::ingest::EVENTS_PATH
    );
    let file =
        std::fs::File::open(events).with_context(|| format!("reading {}", events.display()))?;
    let source_name = std::fs::canonicalize(events)
        .unwrap_or_else(|_| events.to_path_buf())
        .display()
        .to_string();
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = civic_node::csv::Counting {
        inner: file,
        counter: read.clone(),
    };
    let mut lines: Box<dyn BufRead> = if events.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::new(counted),
        )))
    } else {
        Box::new(std::io::BufReader::new(counted))
    };
    let mut header = String::new();
    lines
        .read_line(&mut header)
        .with_context(|| format!("reading {}", events.display()))?;
    if header.trim().is_empty() {
        bail!("{} is empty: expected a header row", events.display());
    }
    let bar = progress_bar(
        size,
        "appending {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    );
    let (mut sent, mut skipped, mut line) = (0u64, 0u64, String::new());
    loop {
        let mut batch = header.clone();
        let mut rows = 0usize;
        while rows < batch_rows {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            if skipped < skip_rows {
                skipped += 1;
                continue;
            }
            batch.push_str(line.trim_end_matches(['\r', '\n']));
            batch.push('\n');
            rows += 1;
        }
        if rows == 0 {
            break;
        }
        let resume = skip_rows + sent;
        // The batch's id, the same for every retry of it (and for the same
        // rows of the same file sent again later): the node appends it once.
        let id = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(source_name.as_bytes());
            h.update(resume.to_le_bytes());
            h.update(batch.as_bytes());
            data_encoding::HEXLOWER.encode(&h.finalize()[..16])
        };
        let mut wait = std::time::Duration::from_secs(1);
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let sent_now = client
                .post(&endpoint)
                .bearer_auth(token)
                .header("content-type", "text/csv")
                .header(civic_node_server::ingest::BATCH_ID_HEADER, id.as_str())
                .body(batch.clone())
                .send()
                .await;
            let retry = match &sent_now {
                Ok(r) => r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE,
                Err(_) => true,
            };
            if !retry || attempt >= 6 {
                break sent_now;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(std::time::Duration::from_secs(30));
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                bar.abandon();
                bail!(
                    "the node did not answer ({e}); {sent} rows were appended; run the same command with --skip-rows {resume} to go on (a batch the node kept is recognised, not doubled)"
                );
            }
        };
        if !response.status().is_success() {
            bar.abandon();
            let detail = detail(response).await;
            bail!(
                "the node refused the batch of rows {}–{}: {detail}; {sent} rows before it were appended (resume with --skip-rows {resume})",
                resume + 1,
                resume + rows as u64
            );
        }
        sent += rows as u64;
        bar.set_position(read.load(std::sync::atomic::Ordering::Relaxed));
    }
    bar.finish_and_clear();
    println!("appended {sent} rows to {url}");
    Ok(())
}

/// Enrols a node: keys made here, a CSR and the public signing key sent
/// with the token, the certificate and a node.toml written back.
pub(crate) async fn node_enrol(
    hub: &str,
    token: &str,
    name: &str,
    dir: &Path,
    hub_ca: Option<&Path>,
    kind: &str,
) -> Result<()> {
    if civic_node::Kind::parse(kind).is_none() && kind != "records" {
        bail!("--kind must be pings, transactions, taps or records");
    }
    if dir.join("node.pem").exists() {
        bail!(
            "{} already holds an enrolled node (node.pem)",
            dir.display()
        );
    }
    let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    if hub.starts_with("https://") {
        let ca_path = hub_ca.ok_or_else(|| {
            anyhow!("give --hub-ca: the CA certificate the hub's HTTPS certificate is issued by")
        })?;
        client = client.use_preconfigured_tls(civic_client::client::trusting(ca_path)?);
    } else if !(hub.starts_with("http://127.")
        || hub.starts_with("http://localhost")
        || hub.starts_with("http://[::1]"))
    {
        bail!("enrol over https: a token must not cross a network in the clear (plain http only on loopback)");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (tls_key, csr) = civic_exchange::trust::new_request(name)?;
    let signing = civic_node_server::load_or_create_key(&dir.join("node-signing.key"))?;
    let response = client
        .build()?
        .post(format!("{}/api/v1/nodes/enrol", hub.trim_end_matches('/')))
        .json(&serde_json::json!({
            "token": token,
            "name": name,
            "csr": csr,
            "signing_key": data_encoding::HEXLOWER.encode(signing.verifying_key().as_bytes()),
        }))
        .send()
        .await
        .with_context(|| format!("reaching the hub at {hub}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .context("the hub's answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "the hub refused: {}",
            body["detail"].as_str().unwrap_or("no reason given")
        );
    }
    let field = |k: &str| {
        body[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the hub's answer lacks {k}"))
    };
    let (certificate, ca, holder, hub_name, hub_key) = (
        field("certificate")?,
        field("ca")?,
        field("institution")?,
        field("hub_name")?,
        field("hub_key")?,
    );
    let enrolment = civic_node_server::Enrolment {
        name,
        holder: &holder,
        kind,
        // A records node's credentials name the hub's page of its keys.
        issuer_url: (kind == "records")
            .then(|| format!("{}/api/v1/mydata/issuers/{name}", hub.trim_end_matches('/'))),
        addr: "127.0.0.1:9443",
        certificate: &certificate,
        ca: &ca,
        tls_key_pem: &tls_key,
        hub_name: &hub_name,
        hub_key: &hub_key,
        gives: Default::default(),
    };
    let config = civic_node_server::write_enrolment(dir, &enrolment)?;
    println!(
        "enrolled {name} into {}; serve with `civic node serve --config {}`",
        dir.display(),
        config.display()
    );
    Ok(())
}
