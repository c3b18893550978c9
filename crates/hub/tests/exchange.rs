//! The hub asks a node, over mutual TLS, with retries.

use civic_exchange::trust::new_request;
use civic_exchange::{ExposureWindow, Grant, Item, Question, Role, SignedGrant};
use civic_hub::exchange::ExchangeError;
use civic_hub::{Config, Hub, HubKeys};
use civic_node::{ExposureQuery, TowerSelection};
use civic_node_server::{serve, testing};
use ed25519_dalek::SigningKey;
use std::sync::Arc;
use std::time::Duration;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

civic_store::backend_tests!(the_hub_asks_a_node_and_waits_for_one_that_is_down);

async fn the_hub_asks_a_node_and_waits_for_one_that_is_down(db: civic_store::testing::TestDb) {
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), Config::default());

    // A telco node's data, certificate and configuration.
    let (sim, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let d = data.path();
    testing::simulated_city(sim.path(), 1000, 1, 9);
    let store = testing::pings_store(sim.path(), d, "kt");
    let (node_key, csr) = new_request("node-kt.civic").unwrap();
    let issued = hub.keys().ca().sign_request(&csr, "node-kt.civic").unwrap();
    let (approver, police) = (
        SigningKey::generate(&mut rand::rngs::OsRng),
        SigningKey::generate(&mut rand::rngs::OsRng),
    );
    // A port of its own, free for now: the node is not up yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = testing::pings_node_config(
        d,
        "node-kt.civic",
        "KT",
        format!("127.0.0.1:{port}"),
        testing::Trust {
            cert_pem: &issued.cert_pem,
            key_pem: &node_key,
            ca_pem: &issued.ca_pem,
            hub: &hub.keys().signing_key().verifying_key(),
            approver: &approver.verifying_key(),
            police: &police.verifying_key(),
        },
        None,
    );
    let node_signing = civic_node_server::load_or_create_key(&config.signing_key)
        .unwrap()
        .verifying_key();

    let start = civic_sim::world::local_midnight(time::macros::date!(2020 - 03 - 01));
    let window = ExposureWindow {
        lat: 37.56,
        lon: 126.98,
        radius_m: 2000.0,
        t_start: start + 8 * 3600,
        t_end: start + 11 * 3600,
    };
    let grant = |id: &str| {
        SignedGrant::new(Grant {
            grant_id: id.into(),
            requester: "Korea Disease Control and Prevention Agency".into(),
            holder: "KT".into(),
            purpose: "epidemic investigation".into(),
            legal_basis: "Infectious Disease Control and Prevention Act, art. 76-2".into(),
            case_id: Some("1001".into()),
            consent_id: None,
            items: vec![Item::LocationPings],
            question: Question::Exposure {
                windows: vec![window.clone()],
            },
            data_from: start,
            data_until: start + 86_400,
            issued_at: now() - 60,
            expires_at: now() + 3600,
        })
        .endorse(Role::Hub, "hub", hub.keys().signing_key())
        .endorse(Role::HealthApprover, "approver", &approver)
        .endorse(Role::PoliceLocationOfficer, "police", &police)
    };
    let url = format!("https://127.0.0.1:{port}");
    let client = hub.node_client().unwrap();

    // The node is down: the request waits, and completes when it is up.
    let asking = {
        let (url, g) = (url.clone(), grant("g-1"));
        let client = hub.node_client().unwrap();
        tokio::spawn(async move {
            client
                .ask(&url, &node_signing, &g, "req-1", Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let running = serve(config.clone()).await.unwrap();
    let civic_exchange::wire::Answer::Exposure(answers) = asking.await.unwrap().unwrap() else {
        panic!("an exposure question gets an exposure answer")
    };
    let want = store.exposure(&ExposureQuery {
        towers: TowerSelection::Near {
            lat: window.lat,
            lon: window.lon,
            radius_m: window.radius_m,
        },
        t_start: window.t_start,
        t_end: window.t_end,
    });
    assert!(!want.is_empty());
    let got: Vec<u64> = answers[0].holders.iter().map(|h| h.holder).collect();
    assert_eq!(got, want.iter().map(|a| a.subscriber).collect::<Vec<_>>());

    // Asked again (a retry after a lost answer): the same, and no second effect.
    let again = client
        .ask(
            &url,
            &node_signing,
            &grant("g-1"),
            "req-1",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        civic_exchange::wire::Answer::Exposure(answers.clone())
    );
    let kept = std::fs::read_dir(d.join("exchange").join("answers"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "envelope")
        })
        .count();
    assert_eq!(kept, 1, "one answer kept for one request");

    // A refusal is final: not asked again (the log below shows one
    // attempt, where a retried refusal would end as unreachable).
    let refused = client
        .ask(
            &url,
            &node_signing,
            &grant("g-1"),
            "req-2",
            Duration::from_secs(30),
        )
        .await;
    assert!(
        matches!(&refused, Err(ExchangeError::Refused(why)) if why.contains("already used")),
        "{refused:?}"
    );

    // An answer must be the node's: another key does not verify it.
    let stranger = SigningKey::generate(&mut rand::rngs::OsRng).verifying_key();
    let forged = client
        .ask(
            &url,
            &stranger,
            &grant("g-3"),
            "req-3",
            Duration::from_secs(5),
        )
        .await;
    assert!(
        matches!(forged, Err(ExchangeError::BadAnswer(_))),
        "{forged:?}"
    );

    // A large answer streams; a connection cut in the middle of it is
    // asked again and the parts already handed over are not repeated.
    let many: Vec<ExposureWindow> = (0..150)
        .map(|i| ExposureWindow {
            lat: 37.50 + (i % 10) as f64 * 0.01,
            lon: 126.95 + (i / 10) as f64 * 0.01,
            radius_m: 3000.0,
            t_start: start + (i % 20) * 3600,
            t_end: start + (i % 20) * 3600 + 4 * 3600,
        })
        .collect();
    let big = {
        let mut g = grant("g-5");
        g.grant.question = Question::Exposure {
            windows: many.clone(),
        };
        SignedGrant::new(g.grant)
            .endorse(Role::Hub, "hub", hub.keys().signing_key())
            .endorse(Role::HealthApprover, "approver", &approver)
            .endorse(Role::PoliceLocationOfficer, "police", &police)
    };
    let whole = client
        .ask(&url, &node_signing, &big, "req-5", Duration::from_secs(30))
        .await
        .unwrap();
    let body_len = std::fs::read_dir(d.join("exchange").join("answers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "body"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .max()
        .unwrap();
    assert!(body_len > 100_000, "a large answer: {body_len} bytes");
    let proxy = CuttingProxy::start(running.addr, body_len as usize / 2).await;
    let mut parts = Vec::new();
    client
        .ask_streaming(
            &format!("https://{}", proxy.addr),
            &node_signing,
            &big,
            "req-5",
            Duration::from_secs(30),
            |p| parts.push(p),
        )
        .await
        .unwrap();
    assert!(proxy.connections() >= 2, "the first connection was cut");
    assert_eq!(parts, whole.parts(), "every part once, in order");

    running.shutdown().await;
    // A node that stays down: the deadline ends the wait.
    let gone = client
        .ask(
            &url,
            &node_signing,
            &grant("g-4"),
            "req-4",
            Duration::from_secs(1),
        )
        .await;
    assert!(
        matches!(gone, Err(ExchangeError::Unreachable(..))),
        "{gone:?}"
    );

    // The hub's log: every attempt sent, every answer and refusal received,
    // one unbroken chain in its database.
    use civic_store::ExchangeLogStore;
    let log = db.store.exchange_log(0, 10_000).await.unwrap();
    civic_exchange::MessageLog::verify(&log, &[], &node_signing).unwrap();
    let of = |id: &str, d: civic_exchange::Direction| {
        log.iter()
            .filter(|e| e.request_id == id && e.direction == d)
            .count()
    };
    use civic_exchange::Direction::{Received, Sent};
    assert!(of("req-1", Sent) >= 2, "attempts while the node was down");
    assert_eq!(of("req-1", Received), 2, "the answer, and the retry's");
    assert_eq!((of("req-2", Sent), of("req-2", Received)), (1, 1));
    assert!(of("req-4", Sent) >= 1);
    assert_eq!(
        of("req-4", Received),
        0,
        "a node that stays down answers nothing"
    );
    // The node's signed log heads, kept by the hub, witness the node's log.
    let heads = db
        .store
        .node_log_heads(&civic_exchange::key_id(&node_signing))
        .await
        .unwrap();
    assert!(heads.len() >= 2);
    let node_log: Vec<civic_exchange::LogEntry> =
        std::fs::read_to_string(d.join("exchange").join("messages.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    civic_exchange::MessageLog::verify(&node_log, &heads, &node_signing).unwrap();
    // And the node kept heads of the hub's log, which witness it.
    let hub_heads: Vec<civic_exchange::LogHead> =
        std::fs::read_to_string(d.join("exchange").join("hub-heads.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert!(hub_heads.len() >= 5);
    let hub_key = hub.keys().signing_key().verifying_key();
    civic_exchange::MessageLog::verify(&log, &hub_heads, &hub_key).unwrap();
    assert!(
        civic_exchange::MessageLog::verify(&log[..3], &hub_heads, &hub_key).is_err(),
        "a hub log cut after the fact shows against the node's witnesses"
    );
    let cut = &node_log[..node_log.len() - 3];
    assert!(
        civic_exchange::MessageLog::verify(cut, &heads, &node_signing).is_err(),
        "a node log cut after the fact shows against the hub's witnesses"
    );
}

/// A TCP proxy in front of a node whose first connection is cut after
/// `limit` bytes from the node: a network failure in mid-answer.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl CuttingProxy {
    async fn start(target: std::net::SocketAddr, limit: usize) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        tokio::spawn(async move {
            // Bounded: a few connections, then the proxy stops by itself.
            for _ in 0..8 {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let limit = if n == 0 { limit } else { usize::MAX };
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    });
                    let mut sent = 0usize;
                    let mut buf = vec![0u8; 8192];
                    while sent < limit {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n.min(limit - sent),
                        };
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                    }
                    let _ = cw.shutdown().await;
                    up.abort();
                });
            }
        });
        Self { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}
