//! The load test: many people of mixed duties using a running hub at once.
//!
//!     cargo run --release -p civic-cli --example load -- \
//!         --url http://127.0.0.1:8080 --credentials civic-data/demo-credentials.json \
//!         --users 200 --minutes 10 --pid "$(pgrep -f 'civic demo')"
//!
//! `bench/load.sh` starts the demo and runs this against it. The demo's
//! administrator creates USERS accounts (investigators, approvers, police
//! officers, security auditors, MyData operators, support agents and
//! analysts, in the institutions the demo seeded); each signs in from its own
//! loopback address (127.0.1.x, as people behind their own machines do,
//! so the per-address sign-in throttle sees what it would see in use),
//! enrols a second factor where its duty needs one, and then, until the
//! time is up, does what its duty does: reads cases, routes, contacts,
//! requests, the ledger, transfers and tickets, and now and then files a
//! ticket, with a pause between requests (`--think-ms`, uniform from 0;
//! 0 sends the next request as soon as the last is answered).
//!
//! Every answer that is not 2xx is an error. Latency is measured from the
//! request's send to its answer's last byte. With `--pid`, the hub's
//! resident memory is sampled every 5 s. The summary's verdict fails
//! (exit 1) on any error, a p99 at or above `--p99-ms`, or memory that
//! grew from the end of the first minute to the end by more than
//! `--growth-percent`.

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Load test: USERS people of mixed duties against a running hub")]
struct Args {
    /// The hub, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The demo's demo-credentials.json (the administrator signs in with it).
    #[arg(long)]
    credentials: std::path::PathBuf,
    #[arg(long, default_value_t = 200)]
    users: usize,
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// The longest pause between one user's requests (uniform from 0).
    #[arg(long, default_value_t = 1000)]
    think_ms: u64,
    /// The hub's process, to sample its memory.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 200)]
    p99_ms: u64,
    #[arg(long, default_value_t = 10.0)]
    growth_percent: f64,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// What each duty does, as (weight, duty, institution kind).
const MIX: &[(usize, &str, &str)] = &[
    (30, "investigator:seoul", "health_authority"),
    (10, "approver", "health_authority"),
    (10, "police_location_officer", "police"),
    (10, "security_auditor", "hub_operator"),
    (15, "mydata_operator", "using_agency"),
    (10, "support_agent", "hub_operator"),
    (15, "analyst", "health_authority"),
];

/// The ids the requests are about, found once before the run.
#[derive(Default)]
struct World {
    response: i64,
    cases: Vec<i64>,
    agreements: Vec<i64>,
    transfers: Vec<i64>,
    institutions: Vec<i64>,
}

struct User {
    duty: &'static str,
    client: reqwest::Client,
    token: String,
}

/// One answer: when (ms since the start), how long (µs), whether it failed.
struct Sample {
    /// The route, its ids left out: `GET /api/v1/cases/{id}/timeline`.
    route: String,
    at_ms: u64,
    micros: u32,
    error: Option<String>,
}

fn client_from(address: Option<IpAddr>) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(address)
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(4)
        .build()?)
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value> {
    let mut req = client.request(method.clone(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let answer = req
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = answer.status();
    let text = answer.text().await?;
    if !status.is_success() {
        bail!("{method} {url}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn totp(secret_b32: &str) -> Result<String> {
    let secret =
        civic_hub::secrets::from_base32(secret_b32).ok_or_else(|| anyhow!("bad secret"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    Ok(civic_hub::secrets::totp_code(&secret, now))
}

/// Signs in; enrols and confirms a second factor if the duty needs one.
async fn sign_in(
    base: &str,
    client: &reqwest::Client,
    username: &str,
    password: &str,
) -> Result<String> {
    let login = call(
        client,
        reqwest::Method::POST,
        &format!("{base}/api/v1/auth/login"),
        None,
        Some(&json!({"username": username, "password": password})),
    )
    .await?;
    let token = login["token"]
        .as_str()
        .ok_or_else(|| anyhow!("no token"))?
        .to_owned();
    if login["user"]["must_enrol_second_factor"] == json!(true) {
        let enrolment = call(
            client,
            reqwest::Method::POST,
            &format!("{base}/api/v1/auth/totp/enrol"),
            Some(&token),
            Some(&json!({})),
        )
        .await?;
        let secret = enrolment["secret"]
            .as_str()
            .ok_or_else(|| anyhow!("no secret"))?;
        call(
            client,
            reqwest::Method::POST,
            &format!("{base}/api/v1/auth/totp/confirm"),
            Some(&token),
            Some(&json!({ "code": totp(secret)? })),
        )
        .await?;
    }
    let me = call(
        client,
        reqwest::Method::GET,
        &format!("{base}/api/v1/me"),
        Some(&token),
        None,
    )
    .await?;
    if me["must_enrol_second_factor"] == json!(true) {
        bail!("{username} still has no second factor");
    }
    Ok(token)
}

/// The next request a user of `duty` makes: (method, path, body).
fn next_request(
    duty: &str,
    world: &World,
    rng: &mut impl Rng,
) -> (reqwest::Method, String, Option<Value>) {
    use reqwest::Method as M;
    let pick = |v: &[i64], rng: &mut dyn rand::RngCore| v[rng.gen_range(0..v.len())];
    let case_path = if world.cases.is_empty() {
        String::new()
    } else {
        format!("/api/v1/cases/{}", pick(&world.cases, rng))
    };
    let case = || case_path.clone();
    let ticket = json!({
        "kind": "other",
        "subject": "Load test",
        "text": "A ticket filed by the load test, to mix writes with the reads.",
    });
    let r = world.response;
    let choice = rng.gen_range(0..100u32);
    let get = |p: String| (M::GET, p, None);
    match duty {
        "investigator:seoul" => match choice {
            0..=14 => get(format!("/api/v1/responses/{r}/cases")),
            15..=39 => get(case()),
            40..=59 => get(format!("{}/timeline", case())),
            60..=74 => get(format!("{}/contacts", case())),
            75..=84 => get(format!("{}/data-requests", case())),
            85..=89 => get(format!("/api/v1/responses/{r}/clusters")),
            90..=94 => get(format!("{}/notices", case())),
            _ => get("/api/v1/responses".into()),
        },
        "approver" => match choice {
            0..=49 => get("/api/v1/data-requests".into()),
            50..=79 => get(case()),
            _ => get(format!("{}/data-requests", case())),
        },
        "police_location_officer" => match choice {
            0..=79 => get("/api/v1/data-requests".into()),
            80..=97 => get("/api/v1/support/trainings".into()),
            _ => (M::POST, "/api/v1/support/tickets".into(), Some(ticket)),
        },
        "security_auditor" => match choice {
            0..=59 => get("/api/v1/audit/records?limit=50".into()),
            60..=79 => get("/api/v1/audit/tree-head".into()),
            _ => get("/api/v1/responses".into()),
        },
        "mydata_operator" => match choice {
            0..=29 if !world.agreements.is_empty() => get(format!(
                "/api/v1/mydata/agreements/{}",
                pick(&world.agreements, rng)
            )),
            30..=59 if !world.transfers.is_empty() => get(format!(
                "/api/v1/mydata/transfers/{}",
                pick(&world.transfers, rng)
            )),
            60..=79 => get("/api/v1/mydata/transfers".into()),
            _ => get("/api/v1/mydata/agreements".into()),
        },
        "support_agent" => match choice {
            0..=49 => get("/api/v1/support/tickets".into()),
            50..=79 => get(format!(
                "/api/v1/support/institutions/{}/history",
                pick(&world.institutions, rng)
            )),
            _ => get("/api/v1/institutions".into()),
        },
        _ => match choice {
            0..=39 => get("/api/v1/geography".into()),
            40..=69 => get("/api/v1/support/trainings".into()),
            70..=94 => get("/api/v1/me".into()),
            _ => (M::POST, "/api/v1/support/tickets".into(), Some(ticket)),
        },
    }
}

/// A path with its ids and query left out, for figures by route.
fn template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    path.split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let base = args.url.trim_end_matches('/').to_owned();
    let logins: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(&args.credentials)
            .with_context(|| format!("reading {}", args.credentials.display()))?,
    )?;
    let admin = logins
        .iter()
        .find(|l| l["username"] == "admin")
        .ok_or_else(|| anyhow!("no admin in {}", args.credentials.display()))?;
    let plain = client_from(None)?;
    let admin_token = {
        let body = json!({
            "username": "admin",
            "password": admin["password"],
            "totp": admin["totp_secret"].as_str().map(totp).transpose()?,
        });
        let login = call(
            &plain,
            reqwest::Method::POST,
            &format!("{base}/api/v1/auth/login"),
            None,
            Some(&body),
        )
        .await?;
        login["token"].as_str().unwrap_or_default().to_owned()
    };

    // The institutions of each kind, and the accounts to create.
    let institutions = call(
        &plain,
        reqwest::Method::GET,
        &format!("{base}/api/v1/institutions"),
        Some(&admin_token),
        None,
    )
    .await?;
    let institutions = institutions.as_array().cloned().unwrap_or_default();
    let of_kind = |kind: &str| {
        institutions
            .iter()
            .filter(|i| i["kind"] == kind)
            .filter_map(|i| i["id"].as_i64())
            .collect::<Vec<_>>()
    };
    let total: usize = MIX.iter().map(|m| m.0).sum();
    let mut plan = Vec::new();
    for i in 0..args.users {
        // Spread the duties by weight, in a fixed order.
        let slot = (i * total / args.users.max(1)) % total;
        let mut acc = 0;
        let &(_, duty, kind) = MIX
            .iter()
            .find(|m| {
                acc += m.0;
                slot < acc
            })
            .expect("weights cover every slot");
        let ids = of_kind(kind);
        let Some(&institution) = ids.first() else {
            bail!("the hub has no institution of kind {kind}");
        };
        plan.push((duty, institution));
    }
    let run = rand::thread_rng().gen_range(100_000..1_000_000u32);
    eprintln!(
        "creating {} accounts and signing each in from its own address…",
        plan.len()
    );
    let bar = indicatif::ProgressBar::new(plan.len() as u64);
    let mut users = Vec::new();
    for (i, (duty, institution)) in plan.into_iter().enumerate() {
        let username = format!("load{run}.{i}");
        let password = format!(
            "load-test-{run}-{i}-{}",
            rand::thread_rng().gen_range(1e9 as u64..1e10 as u64)
        );
        call(
            &plain,
            reqwest::Method::POST,
            &format!("{base}/api/v1/institutions/{institution}/users"),
            Some(&admin_token),
            Some(&json!({
                "username": username,
                "display_name": format!("Load test user {i}"),
                "password": password,
                "duties": [duty],
            })),
        )
        .await?;
        let address = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            1 + (i / 250) as u8,
            1 + (i % 250) as u8,
        ));
        let client = client_from(Some(address))?;
        let token = sign_in(&base, &client, &username, &password).await?;
        users.push(User {
            duty,
            client,
            token,
        });
        bar.inc(1);
    }
    bar.finish_and_clear();

    // The ids the users ask about.
    let token_of = |duty: &str| {
        users
            .iter()
            .find(|u| u.duty == duty)
            .map(|u| u.token.clone())
    };
    let mut world = World {
        institutions: institutions
            .iter()
            .filter_map(|i| i["id"].as_i64())
            .collect(),
        ..World::default()
    };
    if let Some(inv) = token_of("investigator:seoul") {
        let responses = call(
            &plain,
            reqwest::Method::GET,
            &format!("{base}/api/v1/responses"),
            Some(&inv),
            None,
        )
        .await?;
        let responses = responses.as_array().cloned().unwrap_or_default();
        let open = responses
            .iter()
            .find(|r| r["status"] == "open")
            .or(responses.first())
            .ok_or_else(|| anyhow!("the hub has no response"))?;
        world.response = open["id"].as_i64().unwrap_or_default();
        let cases = call(
            &plain,
            reqwest::Method::GET,
            &format!("{base}/api/v1/responses/{}/cases", world.response),
            Some(&inv),
            None,
        )
        .await?;
        world.cases = cases
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                let region = c["region"].as_str().unwrap_or_default();
                region == "seoul" || region.starts_with("seoul-")
            })
            .filter_map(|c| c["id"].as_i64())
            .collect();
        if world.cases.is_empty() {
            bail!("the open response has no Seoul case");
        }
    }
    if let Some(op) = token_of("mydata_operator") {
        let ids = |v: Value| {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x["id"].as_i64())
                .collect::<Vec<_>>()
        };
        world.agreements = ids(call(
            &plain,
            reqwest::Method::GET,
            &format!("{base}/api/v1/mydata/agreements"),
            Some(&op),
            None,
        )
        .await?);
        world.transfers = ids(call(
            &plain,
            reqwest::Method::GET,
            &format!("{base}/api/v1/mydata/transfers"),
            Some(&op),
            None,
        )
        .await?);
    }
    let world = Arc::new(world);

    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    eprintln!(
        "{} users for {:.1} min ({} cases, {} agreements, {} transfers to ask about)",
        users.len(),
        args.minutes,
        world.cases.len(),
        world.agreements.len(),
        world.transfers.len()
    );
    let start = Instant::now();
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let memory: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    if let Some(pid) = args.pid {
        let memory = memory.clone();
        tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid) {
                    memory
                        .lock()
                        .unwrap()
                        .push((start.elapsed().as_millis() as u64, kib));
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }
    let bar = indicatif::ProgressBar::new(duration.as_secs());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg}")
            .expect("a valid template"),
    );
    let mut tasks = Vec::new();
    for (i, user) in users.into_iter().enumerate() {
        let (world, samples, base) = (world.clone(), samples.clone(), base.clone());
        let think = args.think_ms;
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            // Arrive over the first second, not all in one instant.
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1000))).await;
            while start.elapsed() < duration {
                let (method, path, body) = next_request(user.duty, &world, &mut rng);
                let route = format!("{method} {}", template(&path));
                let sent = Instant::now();
                let answer = call(
                    &user.client,
                    method,
                    &format!("{base}{path}"),
                    Some(&user.token),
                    body.as_ref(),
                )
                .await;
                let micros = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                samples.lock().unwrap().push(Sample {
                    route,
                    at_ms: sent.duration_since(start).as_millis() as u64,
                    micros,
                    error: answer.err().map(|e| format!("{} {e:#}", user.duty)),
                });
                if think > 0 {
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=think))).await;
                }
            }
        }));
    }
    while start.elapsed() < duration {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (n, errors) = {
            let s = samples.lock().unwrap();
            (s.len(), s.iter().filter(|x| x.error.is_some()).count())
        };
        bar.set_position(start.elapsed().as_secs());
        bar.set_message(format!("{n} requests, {errors} errors"));
    }
    for t in tasks {
        t.await?;
    }
    bar.finish_and_clear();

    // The figures, minute by minute and in all.
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    let memory = std::mem::take(&mut *memory.lock().unwrap());
    let minutes = (args.minutes.ceil() as u64).max(1);
    println!("minute  requests  req/s   errors  p50 ms  p95 ms  p99 ms  max ms  hub RSS MiB");
    let mut rows = Vec::new();
    for m in 0..minutes {
        let window = |at: u64| at >= m * 60_000 && at < (m + 1) * 60_000;
        let mut lat: Vec<u32> = samples
            .iter()
            .filter(|s| window(s.at_ms))
            .map(|s| s.micros)
            .collect();
        lat.sort_unstable();
        let errors = samples
            .iter()
            .filter(|s| window(s.at_ms) && s.error.is_some())
            .count();
        let rss = memory
            .iter()
            .filter(|(at, _)| window(*at))
            .map(|(_, k)| *k)
            .max();
        let row = json!({
            "minute": m + 1,
            "requests": lat.len(),
            "errors": errors,
            "p50_ms": percentile(&lat, 50.0),
            "p95_ms": percentile(&lat, 95.0),
            "p99_ms": percentile(&lat, 99.0),
            "max_ms": percentile(&lat, 100.0),
            "rss_mib": rss.map(|k| k as f64 / 1024.0),
        });
        println!(
            "{:>6}  {:>8}  {:>5.0}  {:>6}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6.1}  {}",
            m + 1,
            lat.len(),
            lat.len() as f64 / 60.0,
            errors,
            percentile(&lat, 50.0),
            percentile(&lat, 95.0),
            percentile(&lat, 99.0),
            percentile(&lat, 100.0),
            rss.map(|k| format!("{:.1}", k as f64 / 1024.0))
                .unwrap_or_else(|| "-".into())
        );
        rows.push(row);
    }
    let mut all: Vec<u32> = samples.iter().map(|s| s.micros).collect();
    all.sort_unstable();
    let errors: Vec<&String> = samples.iter().filter_map(|s| s.error.as_ref()).collect();
    let p99 = percentile(&all, 99.0);
    // Memory: the most at the end of the first minute (warmed up) against
    // the most in the last minute.
    let warm = memory
        .iter()
        .filter(|(at, _)| *at <= 60_000)
        .map(|(_, k)| *k)
        .max();
    let last = memory
        .iter()
        .filter(|(at, _)| *at + 60_000 >= duration.as_millis() as u64)
        .map(|(_, k)| *k)
        .max();
    let growth = match (warm, last) {
        (Some(w), Some(l)) if w > 0 => Some((l as f64 - w as f64) / w as f64 * 100.0),
        _ => None,
    };
    println!(
        "all     {:>8}  {:>5.0}  {:>6}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6.1}",
        all.len(),
        all.len() as f64 / duration.as_secs_f64(),
        errors.len(),
        percentile(&all, 50.0),
        percentile(&all, 95.0),
        p99,
        percentile(&all, 100.0)
    );
    // By route: the slowest tails first.
    let mut routes: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
    for s in &samples {
        routes.entry(&s.route).or_default().push(s.micros);
    }
    let mut by_route: Vec<(&str, usize, f64, f64)> = routes
        .into_iter()
        .map(|(route, mut lat)| {
            lat.sort_unstable();
            (
                route,
                lat.len(),
                percentile(&lat, 50.0),
                percentile(&lat, 99.0),
            )
        })
        .collect();
    by_route.sort_by(|a, b| b.3.total_cmp(&a.3));
    println!("\nby route (slowest p99 first)      requests  p50 ms  p99 ms");
    for (route, n, p50, p99) in &by_route {
        println!("  {route:<48} {n:>7}  {p50:>6.1}  {p99:>6.1}");
    }
    println!();
    if let (Some(w), Some(l), Some(g)) = (warm, last, growth) {
        println!(
            "hub memory: {:.1} MiB after the first minute, {:.1} MiB in the last ({g:+.1}%)",
            w as f64 / 1024.0,
            l as f64 / 1024.0
        );
    }
    for e in errors.iter().take(5) {
        println!("error: {e}");
    }
    if let Some(path) = &args.json {
        let report = json!({
            "users": args.users,
            "minutes": args.minutes,
            "think_ms": args.think_ms,
            "requests": all.len(),
            "errors": errors.len(),
            "p50_ms": percentile(&all, 50.0),
            "p95_ms": percentile(&all, 95.0),
            "p99_ms": p99,
            "max_ms": percentile(&all, 100.0),
            "rss_mib_first_minute": warm.map(|k| k as f64 / 1024.0),
            "rss_mib_last_minute": last.map(|k| k as f64 / 1024.0),
            "minutes_detail": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    let mut failed = Vec::new();
    if !errors.is_empty() {
        failed.push(format!("{} errors", errors.len()));
    }
    if p99 >= args.p99_ms as f64 {
        failed.push(format!("p99 {p99:.1} ms ≥ {} ms", args.p99_ms));
    }
    if let Some(g) = growth {
        if g > args.growth_percent {
            failed.push(format!("memory grew {g:.1}% > {}%", args.growth_percent));
        }
    }
    if failed.is_empty() {
        println!(
            "PASS: 0 errors, p99 {p99:.1} ms < {} ms, memory grew {:.1}%",
            args.p99_ms,
            growth.unwrap_or(0.0)
        );
        Ok(())
    } else {
        println!("FAIL: {}", failed.join("; "));
        std::process::exit(1);
    }
}
