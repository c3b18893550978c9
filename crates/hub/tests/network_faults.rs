//! The network between the hub and its nodes at its worst: every node
//! reached through a proxy that refuses connections, delays them, cuts
//! them mid-answer in either direction, and holds them silent. The same
//! investigation run with and without the faults gives the same route
//! and the same contacts (no answer lost, none counted twice), and MyData
//! consents are delivered each once, one credential each, however often
//! the delivery was cut and retried.

mod common;

use civic_hub::{Config, Ctx, Hub, HubKeys};
use civic_investigation::{DataRequestInput, Investigation};
use civic_mydata::transfers::{ConsentRequest, TransferRequest};
use civic_store::testing::TestDb;
use civic_store::NodeStore;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

civic_store::backend_tests!(answers_cross_a_bad_network_whole_and_once);

async fn as_user(hub: &Hub, username: &str) -> Ctx {
    civic_demo::nodes::signed_in(hub, username).await.unwrap()
}

/// What the proxies did, for the test to see that faults happened.
#[derive(Default)]
struct Faults {
    refused: AtomicU64,
    cut: AtomicU64,
    delayed: AtomicU64,
    silent: AtomicU64,
    clean: AtomicU64,
}

/// A TCP proxy on loopback in front of `target`. While `on`, each
/// connection is refused (closed at once), held silent (nothing forwarded
/// for 3 s, then closed), or forwarded with every chunk held up to 100 ms,
/// or cut mid-message in either direction. Turning the faults on cuts the
/// connections made before.
async fn proxy(
    target: std::net::SocketAddr,
    on: Arc<AtomicBool>,
    faults: Arc<Faults>,
    seed: u64,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The draws, and how many connections were made with the faults on.
    let rng = Arc::new(Mutex::new((rand::rngs::StdRng::seed_from_u64(seed), 0u64)));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (on, faults, rng) = (on.clone(), faults.clone(), rng.clone());
            tokio::spawn(async move {
                // Faults are drawn per connection. The first four a proxy
                // takes with the faults on are refused, cut after 12 kB
                // (past the TLS handshake, into the message), held silent
                // and delayed, so that every node used meets each; after
                // them, at random: three in twenty refused, one silent, and
                // of the rest half cut mid-stream after a hundred bytes to
                // a hundred kilobytes (a message, or one of the many a
                // kept-alive connection carries) and half delayed.
                let (fault, limit, delay) = {
                    let mut guard = rng.lock().unwrap();
                    let (r, made) = &mut *guard;
                    if on.load(Ordering::Relaxed) {
                        *made += 1;
                        match *made {
                            1 => (0, usize::MAX, 0),
                            2 => (19, 12_000, 0),
                            3 => (3, usize::MAX, 0),
                            4 => (19, usize::MAX, 50),
                            _ => {
                                let limit = if r.gen_bool(0.5) {
                                    r.gen_range(100..100_000usize)
                                } else {
                                    usize::MAX
                                };
                                let delay = if r.gen_bool(0.5) {
                                    r.gen_range(1..100u64)
                                } else {
                                    0
                                };
                                (r.gen_range(0..20), limit, delay)
                            }
                        }
                    } else {
                        (19, usize::MAX, 0)
                    }
                };
                match fault {
                    0..=2 => {
                        faults.refused.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    3 => {
                        faults.silent.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        return;
                    }
                    _ => {}
                }
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                if delay > 0 {
                    faults.delayed.fetch_add(1, Ordering::Relaxed);
                } else {
                    faults.clean.fetch_add(1, Ordering::Relaxed);
                }
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let passed = Arc::new(AtomicU64::new(0));
                let was_on = on.load(Ordering::Relaxed);
                let switched = async {
                    while on.load(Ordering::Relaxed) == was_on {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                tokio::select! {
                    _ = pump(cr, sw, passed.clone(), limit, delay) => {}
                    _ = pump(sr, cw, passed.clone(), limit, delay) => {}
                    _ = switched => {}
                }
                if passed.load(Ordering::Relaxed) as usize > limit {
                    faults.cut.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    addr
}

/// Forwards `from` to `to`, each chunk `delay` ms late, until `limit`
/// bytes have passed both ways (then a part of the chunk, and the end).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    passed: Arc<AtomicU64>,
    limit: usize,
    delay: u64,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let total = passed.fetch_add(n as u64, Ordering::Relaxed) as usize + n;
        if total > limit {
            let keep = n - (total - limit).min(n);
            let _ = to.write_all(&buf[..keep]).await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A case's route and contacts, as the investigator reads them.
async fn collect(hub: &Investigation, label: &str) -> (Vec<String>, BTreeMap<String, usize>) {
    let admin = as_user(hub, "admin").await;
    let inv = as_user(hub, "investigator.seoul").await;
    let approver = as_user(hub, "approver").await;
    let police = as_user(hub, "police").await;
    let response = hub
        .open_response(&admin, label, "IDCPA art. 76-2", None)
        .await
        .unwrap();
    let register =
        std::fs::read_to_string(hub.config.data_dir.join("city/case-register.csv")).unwrap();
    let cases = hub
        .import_cases(&inv, response.id, &register)
        .await
        .unwrap();
    // The same case of each run: the first by number.
    let case = cases.iter().min_by(|a, b| a.number.cmp(&b.number)).unwrap();
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
                reason: "the route and contacts, across a bad network".into(),
                contacts: true,
                from: None,
                until: None,
            },
        )
        .await
        .unwrap();
    hub.decide_request(&approver, request.id, true, None)
        .await
        .unwrap();
    hub.decide_request(&police, request.id, true, None)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let r = hub.list_requests(&inv, Some(case.id)).await.unwrap();
        let status = r.iter().find(|x| x.id == request.id).unwrap().status;
        if status == civic_core::investigation::RequestStatus::Collected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{label}: still {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let timeline = hub.timeline(&inv, case.id).await.unwrap();
    let stays: Vec<String> = timeline
        .stays
        .iter()
        .map(|s| format!("{}-{} {:.5},{:.5}", s.arrival, s.departure, s.lat, s.lon))
        .collect();
    let mut contacts = BTreeMap::new();
    for c in hub.case_contacts(&inv, case.id).await.unwrap() {
        *contacts
            .entry(format!("{}:{}", c.holder, c.identifier))
            .or_insert(0) += 1;
    }
    (stays, contacts)
}

async fn answers_cross_a_bad_network_whole_and_once(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    common::seoul_city(dir.path(), 1500, 10, 3);
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        collection_deadline_seconds: 180,
        ..Config::default()
    };
    civic_investigation::store::migrate(&db.store)
        .await
        .unwrap();
    civic_mydata::store::migrate(&db.store).await.unwrap();
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), config);
    let hub = civic_mydata::MyData::new(hub);
    civic_demo::seed(&hub).await.unwrap();
    let nodes = civic_demo::nodes::start(&hub, dir.path()).await.unwrap();
    civic_demo::seed_catalogue(&hub).await.unwrap();
    civic_demo::seed_mydata(&hub, &dir.path().join("city"))
        .await
        .unwrap()
        .unwrap();

    // Every node behind its own proxy, registered as the node's address.
    let on = Arc::new(AtomicBool::new(false));
    let faults = Arc::new(Faults::default());
    let operator = Ctx::local_operator();
    for (i, node) in hub.store.nodes().await.unwrap().into_iter().enumerate() {
        let route = node.route.clone().unwrap();
        let real: std::net::SocketAddr = route.url.trim_start_matches("https://").parse().unwrap();
        let front = proxy(real, on.clone(), faults.clone(), 7 + i as u64).await;
        hub.register_node(
            &operator,
            &node.name,
            &format!("https://{front}"),
            &route.kind,
            &route.code,
        )
        .await
        .unwrap();
    }

    // The same case, asked once through clean proxies, once through bad.
    let investigation = Investigation::new(hub.hub().clone());
    let clean = collect(&investigation, "Clean network").await;
    on.store(true, Ordering::Relaxed);
    let bad = collect(&investigation, "Bad network").await;
    assert!(!clean.0.is_empty() && !clean.1.is_empty(), "{clean:?}");
    assert_eq!(bad.0, clean.0, "the route differs across a bad network");
    assert_eq!(bad.1, clean.1, "the contacts differ across a bad network");

    // MyData: consents delivered across the bad network, each once.
    let agency = as_user(&hub, "mydata.agency").await;
    let citizen = as_user(&hub, "citizen").await;
    let subject = match &citizen.actor {
        civic_hub::Actor::User { principal, .. } => principal.duties[0].scope().to_owned(),
        _ => unreachable!(),
    };
    let household = hub
        .list_agreements(&agency)
        .await
        .unwrap()
        .into_iter()
        .find(|a| {
            a.offer_code == "household" && a.status == civic_core::mydata::AgreementStatus::Approved
        })
        .unwrap();
    let secret = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
    let key = serde_json::to_value(civic_credentials::Jwk::x25519(
        &x25519_dalek::PublicKey::from(&secret),
    ))
    .unwrap();
    let mut transfers = Vec::new();
    for _ in 0..8 {
        let t = hub
            .request_transfer(
                &agency,
                TransferRequest {
                    agreement_id: household.id,
                    subject: subject.clone(),
                    items: vec!["household_size".into()],
                    recipient_key: key.clone(),
                },
            )
            .await
            .unwrap();
        hub.consent_transfer(
            &citizen,
            t.id,
            ConsentRequest {
                mode: "once".into(),
                until: None,
                interval_days: None,
            },
        )
        .await
        .unwrap();
        transfers.push(t.id);
    }
    let started = Instant::now();
    loop {
        hub.deliver_pending(Duration::ZERO).await.unwrap();
        let mut states = BTreeSet::new();
        for id in &transfers {
            states.insert(hub.transfer(&agency, *id).await.unwrap().state.as_str());
        }
        if states.iter().all(|s| *s == "delivered") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "still {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut indices = BTreeSet::new();
    for id in &transfers {
        let t = hub.transfer(&agency, *id).await.unwrap();
        assert_eq!(t.deliveries.len(), 1, "transfer {id}: {t:?}");
        let package = hub.transfer_package(&agency, *id).await.unwrap();
        indices.insert(package.status_index);
    }
    assert_eq!(indices.len(), transfers.len(), "one credential a consent");
    // The holder issued one credential a grant, however often it was
    // asked again after a cut: one status entry each.
    let state =
        std::fs::read_to_string(dir.path().join("nodes/node-mois/mydata/state.jsonl")).unwrap();
    let mut entries: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for line in state.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let (Some(grant), Some(index)) = (v["grant"].as_str(), v["index"].as_i64()) {
            entries.entry(grant.to_owned()).or_default().insert(index);
        }
    }
    assert!(
        entries.values().all(|i| i.len() == 1),
        "a grant with two credentials: {entries:?}"
    );

    let seen = |c: &AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "faults: {} refused, {} cut, {} delayed, {} silent, {} clean",
        seen(&faults.refused),
        seen(&faults.cut),
        seen(&faults.delayed),
        seen(&faults.silent),
        seen(&faults.clean)
    );
    assert!(
        seen(&faults.refused) > 0 && seen(&faults.cut) > 0 && seen(&faults.delayed) > 0,
        "the faults happened"
    );
    let key = hub.keys().signing_key().verifying_key();
    civic_hub::ledger::verify_ledger(&hub.store, &key, &[], |_| {})
        .await
        .unwrap();
    for n in nodes {
        n.running.shutdown().await;
    }
}
