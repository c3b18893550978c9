//! `civic sim`: the synthetic city (generate) and the scoring of what the
//! platform found against its truth.

use crate::output::{self, Format};
use crate::progress_bar;
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub(crate) enum SimCommand {
    /// Write towers, pings, merchants, card transactions, stops, taps,
    /// venues and the ground truth (people, visits, infections, cases,
    /// interviews, clusters) into a directory.
    Generate {
        #[arg(long, default_value_t = 10_000)]
        people: usize,
        #[arg(long, default_value_t = 14)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
        /// First day (local time, KST).
        #[arg(long, default_value = "2020-03-01")]
        start: String,
        /// lat0,lon0,lat1,lon1 (default: Seoul).
        #[arg(long)]
        bbox: Option<String>,
        /// A TOML scenario overriding the defaults (see crates/sim/README.md).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Worker threads (default: all cores); the output does not depend on it.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Compare what the platform found (contacts.csv, clusters.csv,
    /// sources.csv in --found) with the truth of a generated city: precision
    /// and recall of contacts, adjusted Rand index of clusters, accuracy of
    /// sources.
    Score {
        /// The directory `civic sim generate` wrote.
        #[arg(long)]
        truth: PathBuf,
        #[arg(long)]
        found: PathBuf,
        /// A contact overlaps a case at a place for at least this long.
        #[arg(long, default_value_t = 10)]
        min_overlap_minutes: i64,
        /// Contacts are looked for from this many days before symptom onset.
        #[arg(long, default_value_t = 2)]
        lookback_days: i64,
        /// The same place of a true contact: the same venue, or the same
        /// tower's cell (people with a phone: what telcos can see).
        #[arg(long, value_enum, default_value_t = ScoreLevel::Venue)]
        level: ScoreLevel,
        #[arg(long, value_enum)]
        format: Option<Format>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ScoreLevel {
    Venue,
    Tower,
}

pub(crate) fn run(command: SimCommand) -> Result<()> {
    match command {
        SimCommand::Generate {
            people,
            days,
            seed,
            out,
            start,
            bbox,
            scenario,
            threads,
        } => {
            if !(1..=10_000_000).contains(&people) {
                bail!("--people must be 1-10000000");
            }
            if !(1..=366).contains(&days) {
                bail!("--days must be 1-366");
            }
            let start = time::Date::parse(
                &start,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| anyhow!("--start {start:?} is not a date like 2020-03-01"))?;
            let bbox = match bbox {
                Some(raw) => civic_sim::BBox::parse(&raw).map_err(|e| anyhow!(e))?,
                None => civic_sim::BBox::SEOUL,
            };
            let scenario = match scenario {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    civic_sim::Scenario::from_toml(&text).map_err(|e| anyhow!(e))?
                }
                None => civic_sim::Scenario::default(),
            };
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .max(1);
            let params = civic_sim::Params {
                people,
                days,
                seed,
                start,
                bbox,
                scenario,
                threads,
            };
            let bar = progress_bar(
                days as u64,
                "simulating {bar:40} day {pos}/{len} ({elapsed}, {eta} left)",
            );
            let started = std::time::Instant::now();
            let summary =
                civic_sim::generate(&params, &out, &mut |day, _| bar.set_position(day as u64))
                    .with_context(|| format!("writing into {}", out.display()))?;
            bar.finish_and_clear();
            println!(
                "{} people, {} days: {} pings, {} card transactions, {} taps, {} visits; {} infections, {} cases in {} clusters; {:.1} s -> {}",
                summary.people,
                summary.days,
                summary.pings,
                summary.transactions,
                summary.taps,
                summary.visits,
                summary.infections,
                summary.cases,
                summary.clusters,
                started.elapsed().as_secs_f64(),
                out.display()
            );
            Ok(())
        }
        SimCommand::Score {
            truth,
            found,
            min_overlap_minutes,
            lookback_days,
            level,
            format,
        } => sim_score(
            &truth,
            &found,
            civic_sim::score::Rules {
                min_overlap_minutes,
                lookback_days,
                level: match level {
                    ScoreLevel::Venue => civic_sim::score::Level::Venue,
                    ScoreLevel::Tower => civic_sim::score::Level::Tower,
                },
            },
            Format::resolve(format),
        ),
    }
}

pub(crate) fn sim_score(
    truth: &Path,
    found: &Path,
    rules: civic_sim::score::Rules,
    format: Format,
) -> Result<()> {
    if !(0..=24 * 60).contains(&rules.min_overlap_minutes)
        || !(0..=30).contains(&rules.lookback_days)
    {
        bail!("--min-overlap-minutes must be 0-1440 and --lookback-days 0-30");
    }
    let scores = civic_sim::score::score(truth, found, rules)?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let f = |v: f64| format!("{v:.3}");
    if let Some(c) = &scores.contacts {
        rows.push(vec![
            "contacts precision".into(),
            f(c.precision),
            format!("{} of {} found are true", c.true_positives, c.found),
        ]);
        rows.push(vec![
            "contacts recall".into(),
            f(c.recall),
            format!("{} of {} true contacts found", c.true_positives, c.truth),
        ]);
        rows.push(vec!["contacts F1".into(), f(c.f1), String::new()]);
    }
    if let Some(c) = &scores.clusters {
        rows.push(vec![
            "clusters adjusted Rand index".into(),
            f(c.adjusted_rand_index),
            format!(
                "{} cases; {} clusters found, {} true",
                c.cases, c.found_clusters, c.truth_clusters
            ),
        ]);
        if let (Some(ari), Some(groups)) = (c.groups_adjusted_rand_index, c.truth_groups) {
            rows.push(vec![
                "clusters adjusted Rand index, setting groups".into(),
                f(ari),
                format!("{groups} groups of two or more, as health authorities name them"),
            ]);
        }
    }
    if let Some(s) = &scores.sources {
        rows.push(vec![
            "source accuracy".into(),
            f(s.accuracy),
            format!("{} of {} claimed sources right", s.correct, s.claims),
        ]);
    }
    output::print(
        format,
        &["measure", "value", "detail"],
        &rows,
        serde_json::to_value(&scores)?,
    );
    Ok(())
}

/// The demo's synthetic city, generated once into `DATA_DIR/city` (again
/// only if asked for another size).
pub(crate) async fn demo_city(
    data_dir: &Path,
    people: usize,
    days: u32,
) -> Result<civic_sim::Summary> {
    city(&data_dir.join("city"), people, days, 1).await
}

/// A synthetic city in `dir`, generated unless one of this size and seed
/// is there whole.
pub(crate) async fn city(
    dir: &Path,
    people: usize,
    days: u32,
    seed: u64,
) -> Result<civic_sim::Summary> {
    if !(1..=10_000_000).contains(&people) || !(1..=366).contains(&days) {
        bail!("--sim-people must be 1-10000000 and --sim-days 1-366");
    }
    let dir = dir.to_path_buf();
    if let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) {
        if let Ok(summary) = serde_json::from_str::<serde_json::Value>(&text) {
            if summary["people"] == people as u64
                && summary["days"] == days
                && summary["seed"] == seed
                // Cities from before the map, or the published view and the
                // setting groups, were written are made again.
                && dir.join("geography.geojson").exists()
                && dir.join("groups.csv").exists()
            {
                return Ok(civic_sim::Summary {
                    people: people as u64,
                    days,
                    pings: summary["pings"].as_u64().unwrap_or(0),
                    cases: summary["cases"].as_u64().unwrap_or(0),
                    ..civic_sim::Summary::default()
                });
            }
        }
    }
    // A run cut short leaves truncated files: no summary until it is whole.
    let _ = std::fs::remove_file(dir.join("summary.json"));
    let params = civic_sim::Params::seoul(
        people,
        days,
        seed,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    tracing::info!(people, days, dir = %dir.display(), "generating the demo's synthetic city");
    let bar = progress_bar(days as u64, "simulating {bar:40} day {pos}/{len}");
    let summary = tokio::task::spawn_blocking(move || {
        civic_sim::generate(&params, &dir, &mut |day, _| bar.set_position(day as u64))
            .inspect(|_| bar.finish_and_clear())
    })
    .await
    .context("the simulator stopped")??;
    Ok(summary)
}
