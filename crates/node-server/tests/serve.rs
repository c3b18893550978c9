//! A node served over mutual TLS, asked by "the hub" with granted requests.

use civic_exchange::trust::{client_config, new_request, CertificateAuthority};
use civic_exchange::{Envelope, ExposureWindow, Grant, Item, Question, Role, SignedGrant};
use civic_node::{EventStore, ExposureQuery, TowerSelection};
use civic_node_server::{serve, Answer, EndorserConfig, Message, NodeConfig};
use ed25519_dalek::SigningKey;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

fn hex(k: &SigningKey) -> String {
    data_encoding::HEXLOWER.encode(k.verifying_key().as_bytes())
}

struct Tls {
    cert: String,
    key: String,
    ca: String,
}

fn enrol(ca: &CertificateAuthority, name: &str) -> Tls {
    let (key, csr) = new_request(name).unwrap();
    let issued = ca.sign_request(&csr, name).unwrap();
    Tls {
        cert: issued.cert_pem,
        key,
        ca: issued.ca_pem,
    }
}

/// Sends one HTTP/1.1 request over TLS; returns the status and the body.
async fn post(
    addr: std::net::SocketAddr,
    tls: Option<&Tls>,
    ca_pem: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let config = match tls {
        Some(t) => client_config(&t.cert, &t.key, ca_pem).unwrap(),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile_certs(ca_pem) {
                roots.add(c).unwrap();
            }
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth()
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = connector
        .connect("node-skt.civic".try_into().unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST /node/v1/requests HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(body).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response")?;
    let status: u16 = String::from_utf8_lossy(&response[9..12])
        .parse()
        .map_err(|_| "no status")?;
    Ok((status, response[split + 4..].to_vec()))
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    let mut out = Vec::new();
    for block in pem
        .split("-----END CERTIFICATE-----")
        .filter(|b| b.contains("BEGIN"))
    {
        let b64: String = block
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
            .collect();
        out.push(rustls::pki_types::CertificateDer::from(
            data_encoding::BASE64.decode(b64.trim().as_bytes()).unwrap(),
        ));
    }
    out
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_granted_requests_once_and_refuses_the_rest() {
    // The node's data: a small city's pings.
    let sim = tempfile::tempdir().unwrap();
    let params = civic_sim::Params {
        people: 1200,
        days: 2,
        seed: 5,
        start: time::macros::date!(2020 - 03 - 01),
        bbox: civic_sim::BBox::SEOUL,
        scenario: civic_sim::Scenario::default(),
        threads: 2,
    };
    civic_sim::generate(&params, sim.path(), &mut |_, _| {}).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut store = EventStore::pings(data.path()).unwrap();
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    store
        .import(
            Some(&sim.path().join("towers.csv")),
            &[&sim.path().join("pings-skt.csv")],
            progress,
        )
        .unwrap();

    // Trust: a CA, the hub's and the node's certificates, the signing keys.
    let ca = CertificateAuthority::generate().unwrap();
    let (hub_tls, node_tls) = (enrol(&ca, "hub.civic"), enrol(&ca, "node-skt.civic"));
    let (hub, approver, police) = (key(), key(), key());
    let d = data.path();
    let config = NodeConfig {
        name: "node-skt.civic".into(),
        holder: "SK Telecom".into(),
        addr: "127.0.0.1:0".into(),
        data_dir: d.to_path_buf(),
        kind: "pings".into(),
        tls_cert: write(d, "node.pem", &node_tls.cert),
        tls_key: write(d, "node-key.pem", &node_tls.key),
        tls_ca: write(d, "ca.pem", &node_tls.ca),
        hub_name: "hub.civic".into(),
        hub_key: hex(&hub),
        endorsers: vec![
            EndorserConfig {
                role: Role::HealthApprover,
                key: hex(&approver),
            },
            EndorserConfig {
                role: Role::PoliceLocationOfficer,
                key: hex(&police),
            },
        ],
        gives: [(
            "epidemic investigation".to_owned(),
            vec![Item::LocationPings],
        )]
        .into_iter()
        .collect(),
        max_period_days: 28,
        signing_key: d.join("node-signing.key"),
    };
    let running = serve(config.clone()).await.unwrap();
    let addr = running.addr;

    // A grant for two exposure windows, endorsed as the rules demand.
    let start = civic_sim::world::local_midnight(time::macros::date!(2020 - 03 - 01));
    let windows = vec![
        ExposureWindow {
            lat: 37.56,
            lon: 126.98,
            radius_m: 1500.0,
            t_start: start + 9 * 3600,
            t_end: start + 12 * 3600,
        },
        ExposureWindow {
            lat: 37.50,
            lon: 127.03,
            radius_m: 1000.0,
            t_start: start + 30 * 3600,
            t_end: start + 33 * 3600,
        },
    ];
    let grant = |id: &str, expires_at: i64| Grant {
        grant_id: id.into(),
        requester: "Korea Disease Control and Prevention Agency".into(),
        holder: "SK Telecom".into(),
        purpose: "epidemic investigation".into(),
        legal_basis: "Infectious Disease Control and Prevention Act, art. 76-2".into(),
        case_id: Some("1001".into()),
        consent_id: None,
        items: vec![Item::LocationPings],
        question: Question::Exposure {
            windows: windows.clone(),
        },
        data_from: start,
        data_until: start + 2 * 86_400,
        issued_at: now() - 60,
        expires_at,
    };
    let endorse = |g: Grant| {
        SignedGrant::new(g)
            .endorse(Role::Hub, "hub", &hub)
            .endorse(Role::HealthApprover, "approver", &approver)
            .endorse(Role::PoliceLocationOfficer, "police", &police)
    };
    let message = |request_id: &str, signer: &SigningKey, grant: Option<SignedGrant>| {
        let body = "{}".to_owned();
        serde_json::to_vec(&Message {
            envelope: Envelope::seal(request_id, signer, now(), body.as_bytes(), grant),
            body,
        })
        .unwrap()
    };

    let first = message("req-1", &hub, Some(endorse(grant("g-1", now() + 3600))));
    let (status, answer) = post(addr, Some(&hub_tls), &hub_tls.ca, &first)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let reply: Message = serde_json::from_slice(&answer).unwrap();
    let node_key = civic_node_server::load_or_create_key(&d.join("node-signing.key"))
        .unwrap()
        .verifying_key();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("node-signing.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the signing key is for its owner only");
    }
    reply
        .envelope
        .open(&node_key, reply.body.as_bytes(), now())
        .unwrap();
    let Answer::Exposure(answers) = serde_json::from_str(&reply.body).unwrap() else {
        panic!("an exposure answer")
    };
    for (i, w) in windows.iter().enumerate() {
        let want = store.exposure(&ExposureQuery {
            towers: TowerSelection::Near {
                lat: w.lat,
                lon: w.lon,
                radius_m: w.radius_m,
            },
            t_start: w.t_start,
            t_end: w.t_end,
        });
        assert!(!want.is_empty());
        let got: Vec<(u64, i64, i64, u32)> = answers[i]
            .holders
            .iter()
            .map(|h| (h.holder, h.first_seen, h.last_seen, h.events))
            .collect();
        let want: Vec<(u64, i64, i64, u32)> = want
            .iter()
            .map(|a| (a.subscriber, a.first_seen, a.last_seen, a.pings))
            .collect();
        assert_eq!(got, want, "window {i}");
    }

    // The same request again: the same answer, byte for byte.
    let (status, again) = post(addr, Some(&hub_tls), &hub_tls.ca, &first)
        .await
        .unwrap();
    assert_eq!((status, &again), (200, &answer));

    // A route request: a case's own pings over the grant's period only.
    let case = answers[0].holders[0].holder;
    let route_grant = Grant {
        question: Question::Subjects { ids: vec![case] },
        data_from: start + 6 * 3600,
        data_until: start + 30 * 3600,
        ..grant("g-route", now() + 3600)
    };
    let (status, body) = post(
        addr,
        Some(&hub_tls),
        &hub_tls.ca,
        &message("req-route", &hub, Some(endorse(route_grant))),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let reply: Message = serde_json::from_slice(&body).unwrap();
    let Answer::Routes(routes) = serde_json::from_str(&reply.body).unwrap() else {
        panic!("a route answer")
    };
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0].events,
        store.route(case, start + 6 * 3600, start + 30 * 3600)
    );
    assert!(!routes[0].events.is_empty());
    assert!(routes[0]
        .events
        .iter()
        .all(|(ts, _)| (start + 6 * 3600..=start + 30 * 3600).contains(ts)));

    // Refusals, each with its reason.
    let refused =
        |(status, body): (u16, Vec<u8>)| (status, String::from_utf8_lossy(&body).into_owned());
    let (s, why) = refused(
        post(
            addr,
            Some(&hub_tls),
            &hub_tls.ca,
            &message("req-2", &hub, Some(endorse(grant("g-1", now() + 3600)))),
        )
        .await
        .unwrap(),
    );
    assert_eq!(s, 403);
    assert!(why.contains("already used by request req-1"), "{why}");
    let unendorsed = SignedGrant::new(grant("g-2", now() + 3600)).endorse(Role::Hub, "hub", &hub);
    let (s, why) = refused(
        post(
            addr,
            Some(&hub_tls),
            &hub_tls.ca,
            &message("req-3", &hub, Some(unendorsed)),
        )
        .await
        .unwrap(),
    );
    assert_eq!(s, 403);
    assert!(why.contains("HealthApprover"), "{why}");
    let (s, why) = refused(
        post(
            addr,
            Some(&hub_tls),
            &hub_tls.ca,
            &message("req-4", &hub, Some(endorse(grant("g-3", now() - 1)))),
        )
        .await
        .unwrap(),
    );
    assert_eq!((s, why.contains("expired")), (403, true), "{why}");
    let (s, _) = refused(
        post(
            addr,
            Some(&hub_tls),
            &hub_tls.ca,
            &message("req-5", &hub, None),
        )
        .await
        .unwrap(),
    );
    assert_eq!(s, 403);
    let (s, why) = refused(
        post(
            addr,
            Some(&hub_tls),
            &hub_tls.ca,
            &message("req-6", &key(), Some(endorse(grant("g-4", now() + 3600)))),
        )
        .await
        .unwrap(),
    );
    assert_eq!(s, 401, "{why}");
    let (s, why) = refused(
        post(addr, Some(&node_tls), &node_tls.ca, &first)
            .await
            .unwrap(),
    );
    assert_eq!(s, 403, "only the hub may ask: {why}");
    assert!(
        post(addr, None, &hub_tls.ca, &first).await.is_err(),
        "no client certificate, no connection"
    );
    let (s, _) = refused(
        post(addr, Some(&hub_tls), &hub_tls.ca, b"not json")
            .await
            .unwrap(),
    );
    assert_eq!(s, 400);

    // A restart: the answer and the grant's use survive it.
    running.shutdown().await;
    let running = serve(config).await.unwrap();
    let (status, after) = post(running.addr, Some(&hub_tls), &hub_tls.ca, &first)
        .await
        .unwrap();
    assert_eq!((status, &after), (200, &answer));
    let (s, _) = refused(
        post(
            running.addr,
            Some(&hub_tls),
            &hub_tls.ca,
            &message("req-7", &hub, Some(endorse(grant("g-1", now() + 3600)))),
        )
        .await
        .unwrap(),
    );
    assert_eq!(s, 403);
    running.shutdown().await;

    // The node's message log is an unbroken chain.
    let log = std::fs::read_to_string(d.join("exchange").join("messages.jsonl")).unwrap();
    let entries: Vec<civic_exchange::LogEntry> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() >= 10);
    civic_exchange::MessageLog::verify(&entries, &[], &node_key).unwrap();
}
