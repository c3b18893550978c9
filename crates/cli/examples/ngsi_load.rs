//! Load on an NGSI-LD broker (issue 19's targets):
//!
//!     cargo run --release -p civic-cli --example ngsi_load -- \
//!         --broker http://127.0.0.1:8080/ngsi-ld/v1 --entities 100000 --seconds 15 \
//!         --in-flight 64 --pid "$(pgrep -f 'civic demo')"
//!
//! `bench/ngsi-ld-load.sh` starts the demo and runs this against it.
//! 1. batch upsert: ENTITIES sensors (a number, a string, a point in
//!    Seoul) in batches of 1000 through `POST /entityOperations/upsert`,
//!    4 batches in flight;
//! 2. single updates: `PATCH /entities/{id}/attrs` of a random sensor's
//!    temperature, IN_FLIGHT at once, for SECONDS;
//! 3. queries: `q=` (the type and a temperature range) and `near`
//!    geo-queries (500 m), `limit=20`, IN_FLIGHT at once, SECONDS each;
//!
//! and, with `--pid`, the broker process's resident memory after each
//! step. Prints one JSON object. Latency is from a request's send to its
//! answer's last byte; every answer that is not 2xx is an error. The
//! client is on the same cores as the broker, as it was for the peers'
//! figures the issue gives; in Rust so that it takes little of them.

use anyhow::{Context, Result};
use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TYPE: &str = "LoadSensor";

#[derive(Parser)]
#[command(about = "Load on an NGSI-LD broker: batch upsert, single updates, q= and near queries")]
struct Args {
    /// The broker's base, e.g. http://127.0.0.1:8080/ngsi-ld/v1.
    #[arg(long)]
    broker: String,
    #[arg(long, default_value_t = 100_000)]
    entities: usize,
    /// How long each timed step runs.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// The broker's process, for its resident memory.
    #[arg(long)]
    pid: Option<u32>,
}

fn entity(i: usize) -> Value {
    let lon = 126.8 + (i * 7919 % 1000) as f64 / 1000.0 * 0.35;
    let lat = 37.45 + (i * 104_729 % 1000) as f64 / 1000.0 * 0.2;
    let round = |v: f64, places: i32| (v * 10f64.powi(places)).round() / 10f64.powi(places);
    json!({
        "id": format!("urn:ngsi-ld:{TYPE}:{i}"),
        "type": TYPE,
        "temperature": {"type": "Property", "value": round(10.0 + (i % 300) as f64 / 10.0, 1)},
        "district": {"type": "Property", "value": format!("d{}", i % 25)},
        "location": {"type": "GeoProperty", "value": {"type": "Point",
            "coordinates": [round(lon, 6), round(lat, 6)]}},
    })
}

fn rss_mib(pid: Option<u32>) -> Value {
    let Some(pid) = pid else {
        return Value::Null;
    };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(Value::Null, |kb| json!((kb / 1024.0 * 10.0).round() / 10.0))
}

/// The `p`th percentile of sorted latencies, in ms.
fn pct(sorted: &[Duration], p: usize) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    let d = sorted[(sorted.len() * p / 100).min(sorted.len() - 1)];
    json!((d.as_secs_f64() * 100_000.0).round() / 100.0)
}

/// A request to send: method, path and query after the base, body.
type Request = (reqwest::Method, String, Option<Value>);

/// Makes the requests of a timed step (from a random source and the
/// number of entities).
type Make = fn(&mut rand::rngs::StdRng, usize) -> Request;

/// Runs `make(rng)` requests from `in_flight` workers for `seconds`.
async fn timed_loop(
    client: &reqwest::Client,
    base: &str,
    in_flight: usize,
    seconds: f64,
    make: Make,
    entities: usize,
) -> Value {
    let stop = Instant::now() + Duration::from_secs_f64(seconds);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..in_flight {
        let (client, base) = (client.clone(), base.to_owned());
        let (latencies, errors) = (latencies.clone(), errors.clone());
        workers.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(19 + w as u64);
            let mut mine = Vec::new();
            while Instant::now() < stop {
                let (method, path, body) = make(&mut rng, entities);
                let mut req = client.request(method, format!("{base}{path}"));
                if let Some(body) = body {
                    req = req
                        .header("Content-Type", "application/json")
                        .body(body.to_string());
                }
                let t0 = Instant::now();
                let ok = match req.send().await {
                    Ok(r) => {
                        let status = r.status();
                        r.bytes().await.is_ok() && status.is_success()
                    }
                    Err(_) => false,
                };
                mine.push(t0.elapsed());
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().expect("not poisoned").extend(mine);
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let mut l = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    l.sort_unstable();
    json!({
        "requests": l.len(),
        "errors": errors.load(Ordering::Relaxed),
        "per_second": (l.len() as f64 / elapsed).round(),
        "p50_ms": pct(&l, 50), "p95_ms": pct(&l, 95), "p99_ms": pct(&l, 99),
    })
}

fn update(rng: &mut rand::rngs::StdRng, entities: usize) -> Request {
    let n = rng.gen_range(0..entities);
    let t = (rng.gen_range(-100.0..400.0_f64)).round() / 10.0;
    (
        reqwest::Method::PATCH,
        format!("/entities/urn:ngsi-ld:{TYPE}:{n}/attrs"),
        Some(json!({"temperature": {"type": "Property", "value": t}})),
    )
}

fn q(rng: &mut rand::rngs::StdRng, _: usize) -> Request {
    let lo = rng.gen_range(0..390) as f64 / 10.0;
    let hi = lo + 0.5;
    (
        reqwest::Method::GET,
        format!("/entities?type={TYPE}&q=temperature%3E%3D{lo}%3Btemperature%3C{hi}&limit=20"),
        None,
    )
}

fn near(rng: &mut rand::rngs::StdRng, _: usize) -> Request {
    let lon = 126.8 + rng.gen::<f64>() * 0.35;
    let lat = 37.45 + rng.gen::<f64>() * 0.2;
    (
        reqwest::Method::GET,
        format!(
            "/entities?type={TYPE}&georel=near%3BmaxDistance%3D%3D500&geometry=Point\
             &coordinates=%5B{lon:.5}%2C{lat:.5}%5D&limit=20"
        ),
        None,
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let a = Args::parse();
    let base = a.broker.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.in_flight.max(4))
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut out = json!({
        "client": "crates/cli/examples/ngsi_load.rs",
        "entities": a.entities, "in_flight": a.in_flight,
        "rss_mib_before": rss_mib(a.pid),
    });

    // 1. Batch upsert, 4 batches in flight.
    let batches: Vec<String> = (0..a.entities)
        .step_by(1000)
        .map(|s| Value::Array((s..(s + 1000).min(a.entities)).map(entity).collect()).to_string())
        .collect();
    let queue = Arc::new(Mutex::new(batches));
    let failed = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut upserters = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, base, queue, failed) =
            (client.clone(), base.clone(), queue.clone(), failed.clone());
        upserters.spawn(async move {
            loop {
                let Some(batch) = queue.lock().expect("not poisoned").pop() else {
                    return;
                };
                let ok = match client
                    .post(format!("{base}/entityOperations/upsert"))
                    .header("Content-Type", "application/json")
                    .body(batch)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success(),
                    Err(_) => false,
                };
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while upserters.join_next().await.is_some() {}
    let took = t0.elapsed().as_secs_f64();
    out["batch_upsert"] = json!({
        "seconds": (took * 100.0).round() / 100.0,
        "entities_per_second": (a.entities as f64 / took).round(),
        "failed_batches": failed.load(Ordering::Relaxed),
    });
    out["rss_mib_after_load"] = rss_mib(a.pid);

    // 2. Single updates; 3. queries.
    let steps: [(&str, Make); 3] = [
        ("single_updates", update),
        ("q_queries", q),
        ("near_queries", near),
    ];
    for (name, make) in steps {
        let figures = timed_loop(&client, &base, a.in_flight, a.seconds, make, a.entities).await;
        out[name] = figures;
    }
    out["rss_mib_end"] = rss_mib(a.pid);
    println!(
        "{}",
        serde_json::to_string_pretty(&out).context("the figures did not serialise")?
    );
    Ok(())
}
