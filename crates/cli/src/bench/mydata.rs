//! `civic bench mydata`: Public MyData's transfers, from the citizen's
//! consent to the agency's verified package.

use super::*;

#[derive(clap::Args, Debug)]
pub(crate) struct MydataArgs {
    #[arg(long, default_value_t = 2_000)]
    pub people: usize,
    #[arg(long, default_value_t = 5_000)]
    pub transfers: usize,
    /// Transfers in flight at once.
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    #[arg(long, default_value = "./bench-data/mydata")]
    pub dir: PathBuf,
    /// A PostgreSQL database instead of SQLite in --dir.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// Public MyData's transfers: requests made beforehand (untimed), then
/// each timed from the citizen's consent to the package verified at the
/// agency — consent recorded, grant issued, the holder's node asked over
/// mutual TLS, the credential signed and encrypted there, kept sealed at
/// the hub, fetched by the agency, decrypted with its key and verified
/// against the holder's keys and status list (which an agency caches).
pub(super) async fn mydata(args: MydataArgs) -> Result<()> {
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
    let hub = civic_mydata::MyData::new(crate::open_hub(config).await?);
    civic_demo::seed(&hub).await?;
    let _nodes = civic_demo::nodes::start(&hub, &args.dir).await?;
    civic_demo::seed_catalogue(&hub).await?;
    civic_demo::seed_mydata(&hub, &args.dir.join("city")).await?;
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
    let key = serde_json::to_value(civic_credentials::Jwk::x25519(
        &x25519_dalek::PublicKey::from(&secret),
    ))?;
    // Every person of the city has an income bracket at the insurer.
    let subjects: Vec<String> = (0..summary.people as u64)
        .map(civic_demo::records::subject_of)
        .collect();
    let t = Instant::now();
    let mut asked = Vec::with_capacity(args.transfers);
    for i in 0..args.transfers {
        let subject = subjects[i % subjects.len()].clone();
        let view = hub
            .request_transfer(
                &agency,
                civic_mydata::transfers::TransferRequest {
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
                    civic_mydata::transfers::ConsentRequest {
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
            let (plain, _) = civic_credentials::jwe::decrypt(&package.credential, &secret)
                .map_err(|e| anyhow!("transfer {id}: {e}"))?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let verified =
                civic_credentials::sdjwt::verify(std::str::from_utf8(&plain)?, &keys, now)
                    .map_err(|e| anyhow!("transfer {id}: {e}"))?;
            let (uri, idx) = verified
                .status()
                .ok_or_else(|| anyhow!("transfer {id}: no status"))?;
            if civic_credentials::status::is_revoked(&status.token, &keys, &uri, idx, now)
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
