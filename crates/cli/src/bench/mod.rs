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
//! - `modes`: the clustering on interviews, published routes and both,
//!   beside a naive union and the ceiling of what each mode's rows show.
//! - `mydata`: Public MyData's transfers, throughput and latency.
//!
//! Runs are in-process (the hub's services, the nodes over mutual TLS on
//! loopback), so what is timed is the platform, not a client.

use anyhow::{anyhow, bail, Context, Result};
use civic_core::investigation::{CaseId, RequestStatus};
use civic_hub::{Actor, Config, Ctx, Hub};
use civic_investigation::store::{DataRequestStore, RequestFilter};
use civic_investigation::{DataRequestInput, Investigation};
use clap::Subcommand;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod clusters;
mod eiss;
mod modes;
mod mydata;

use clusters::clusters;
use eiss::{eiss, EissArgs};
use modes::{modes, naive_clusters, write_found};
use mydata::{mydata, MydataArgs};

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// The epidemic investigation end to end: every confirmed case of a
    /// city asked for, approved, collected from the nodes, its route,
    /// contacts and cluster built; timed per case and scored against the
    /// city's truth.
    Eiss(EissArgs),
    /// Public MyData's transfers: each timed from the citizen's consent to
    /// the package verified at the agency, many at once.
    Mydata(MydataArgs),
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
        BenchCommand::Eiss(args) => eiss(args).await,
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
        BenchCommand::Mydata(args) => mydata(args).await,
    }
}

/// A demo user, as if signed in with two factors (in-process only: who
/// holds the hub holds its keys).
async fn signed_in(hub: &Hub, username: &str) -> Result<Ctx> {
    Ok(civic_demo::nodes::signed_in(hub, username).await?)
}

/// A hub on `dir` (SQLite there, or `database_url`) with the demo's
/// users, and its administrator and Seoul investigator signed in.
async fn demo_hub(dir: &Path, database_url: Option<String>) -> Result<(Investigation, Ctx, Ctx)> {
    let hub = Investigation::new(
        crate::open_hub(Config {
            data_dir: dir.to_path_buf(),
            database_url,
            ..Config::default()
        })
        .await?,
    );
    civic_demo::seed(&hub).await?;
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
