//! A node served over mutual TLS, asked by "the hub" with granted requests.

use civic_exchange::trust::{client_config, new_request, CertificateAuthority};
use civic_exchange::{Envelope, ExposureWindow, Grant, Item, Question, Role, SignedGrant};
use civic_node::{EventStore, ExposureQuery, TowerSelection};
use civic_node_server::{serve, testing, Answer, AnswerReader, Message, NodeConfig};
use ed25519_dalek::SigningKey;
use std::path::Path;
use std::sync::Arc;

fn key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
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

/// A client over TLS, presenting `tls`'s certificate if given.
fn client(tls: Option<&Tls>, ca_pem: &str) -> reqwest::Client {
    let config = match tls {
        Some(t) => client_config(&t.cert, &t.key, ca_pem).unwrap(),
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_pemfile_certs(ca_pem) {
                roots.add(c).unwrap();
            }
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        }
    };
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .resolve(
            "node-skt.civic",
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .build()
        .unwrap()
}

/// Sends one request to the node; returns the status and the body.
async fn post(
    addr: std::net::SocketAddr,
    tls: Option<&Tls>,
    ca_pem: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    post_to(addr, "/node/v1/requests", tls, ca_pem, body).await
}

async fn post_to(
    addr: std::net::SocketAddr,
    path: &str,
    tls: Option<&Tls>,
    ca_pem: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    let response = client(tls, ca_pem)
        .post(format!("https://node-skt.civic:{}{path}", addr.port()))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    Ok((status, bytes.to_vec()))
}

/// Reads a streamed answer whole: its envelope, checked against the
/// node's key and the body's digest, and the answer.
fn read_answer(bytes: &[u8], node_key: &ed25519_dalek::VerifyingKey) -> Answer {
    let mut reader = AnswerReader::default();
    let mut parts = Vec::new();
    // In small pieces, as a network would deliver it.
    for chunk in bytes.chunks(1000) {
        reader.push(chunk, |p| parts.push(p)).unwrap();
    }
    let (envelope, digest) = reader.finish().unwrap();
    envelope.open_digest(node_key, &digest, now()).unwrap();
    Answer::from_parts(parts).unwrap()
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

/// SK Telecom's node in `d`: trusting the hub's, the approver's and the
/// police officer's keys, giving location pings for epidemic
/// investigation.
fn node_config(
    d: &Path,
    tls: &Tls,
    [hub, approver, police]: [&SigningKey; 3],
    ingest_addr: Option<String>,
) -> NodeConfig {
    civic_node_server::testing::pings_node_config(
        d,
        "node-skt.civic",
        "SK Telecom",
        "127.0.0.1:0".into(),
        civic_node_server::testing::Trust {
            cert_pem: &tls.cert,
            key_pem: &tls.key,
            ca_pem: &tls.ca,
            hub: &hub.verifying_key(),
            approver: &approver.verifying_key(),
            police: &police.verifying_key(),
        },
        ingest_addr,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_granted_requests_once_and_refuses_the_rest() {
    // The node's data: a small city's pings.
    let (sim, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    testing::simulated_city(sim.path(), 1200, 2, 5);
    let store = testing::pings_store(sim.path(), data.path(), "skt");

    // Trust: a CA, the hub's and the node's certificates, the signing keys.
    let ca = CertificateAuthority::generate().unwrap();
    let (hub_tls, node_tls) = (enrol(&ca, "hub.civic"), enrol(&ca, "node-skt.civic"));
    let (hub, approver, police) = (key(), key(), key());
    let d = data.path();
    let config = node_config(d, &node_tls, [&hub, &approver, &police], None);
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
            log_head: None,
        })
        .unwrap()
    };

    let first = message("req-1", &hub, Some(endorse(grant("g-1", now() + 3600))));
    let (status, answer) = post(addr, Some(&hub_tls), &hub_tls.ca, &first)
        .await
        .unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
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
    let Answer::Exposure(answers) = read_answer(&answer, &node_key) else {
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
        let got: Vec<(u64, i64, i64, u32, i64)> = answers[i]
            .holders
            .iter()
            .map(|h| (h.holder, h.first_seen, h.last_seen, h.events, h.overlap_s))
            .collect();
        let want: Vec<(u64, i64, i64, u32, i64)> = want
            .iter()
            .map(|a| {
                let overlap = a.last_seen - a.first_seen;
                (a.subscriber, a.first_seen, a.last_seen, a.pings, overlap)
            })
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
    let Answer::Routes(routes) = read_answer(&body, &node_key) else {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_appends_batches_over_https_and_the_hub_sees_them() {
    let sim = tempfile::tempdir().unwrap();
    testing::simulated_city(sim.path(), 800, 1, 8);
    // The node starts empty; its towers and pings come while it serves.
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let ca = CertificateAuthority::generate().unwrap();
    let (hub_tls, node_tls) = (enrol(&ca, "hub.civic"), enrol(&ca, "node-skt.civic"));
    let (hub, approver, police) = (key(), key(), key());
    let config = node_config(
        d,
        &node_tls,
        [&hub, &approver, &police],
        Some("127.0.0.1:0".into()),
    );
    let token = civic_node_server::ingest::issue_token(d, "skt-loader").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("ingest-tokens"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        assert!(!std::fs::read_to_string(d.join("ingest-tokens"))
            .unwrap()
            .contains(&token));
    }
    let running = serve(config.clone()).await.unwrap();
    let ingest = running.ingest_addr.expect("an ingest listener");
    // The holder's loader trusts the node's certificate; it has none itself.
    let loader = client(None, &node_tls.ca);
    let events_url = format!("https://node-skt.civic:{}/node/v1/events", ingest.port());
    let send = |body: Vec<u8>, token: Option<&str>, gzip: bool| {
        let mut request = loader.post(&events_url).body(body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if gzip {
            request = request.header("content-encoding", "gzip");
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, kind, response.text().await.unwrap())
        }
    };
    // Places over HTTP: a bad row refuses the whole file.
    let places_url = format!("https://node-skt.civic:{}/node/v1/places", ingest.port());
    let towers = std::fs::read_to_string(sim.path().join("towers.csv")).unwrap();
    let (towers_header, tower_rows) = towers.split_once('\n').unwrap();
    let tower_rows: Vec<&str> = tower_rows.lines().collect();
    let response = loader
        .post(&places_url)
        .bearer_auth(&token)
        .body(format!(
            "{towers_header}\n{}\n1,north,east\n",
            tower_rows[0]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let why = response.text().await.unwrap();
    assert!(why.contains("the places, line 3"), "{why}");
    let half = tower_rows.len() / 2;
    let response = loader
        .post(&places_url)
        .bearer_auth(&token)
        .body(format!(
            "{towers_header}\n{}\n",
            tower_rows[..half].join("\n")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // The rest arrive as an operator's import in another process would:
    // the serving node takes them into account at its next batch.
    EventStore::pings(d)
        .unwrap()
        .import(
            Some(&sim.path().join("towers.csv")),
            &[],
            Arc::new(Default::default()),
        )
        .unwrap();

    let pings = std::fs::read_to_string(sim.path().join("pings-skt.csv")).unwrap();
    let (header, rows) = pings.split_once('\n').unwrap();
    let rows: Vec<&str> = rows.lines().collect();
    let (first, second) = rows.split_at(rows.len() / 2);
    let batch = |rows: &[&str]| format!("{header}\n{}\n", rows.join("\n")).into_bytes();

    let (status, _, _) = send(batch(first), None, false).await;
    assert_eq!(status, 401);
    let (status, _, _) = send(batch(first), Some("civic-ingest-guess"), false).await;
    assert_eq!(status, 401);
    let mut bad = batch(&first[..3]);
    bad.extend_from_slice(b"12,not-a-time,3\n");
    let (status, kind, why) = send(bad, Some(&token), false).await;
    assert_eq!(status, 400, "{why}");
    assert_eq!(kind.as_deref(), Some("application/problem+json"));
    assert!(why.contains("line 5"), "{why}");

    let (status, _, report) = send(batch(first), Some(&token), false).await;
    assert_eq!(status, 200, "{report}");
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&batch(second)).unwrap();
        e.finish().unwrap()
    };
    let (status, _, report) = send(gz, Some(&token), true).await;
    assert_eq!(status, 200, "{report}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["tail"], rows.len() as u64);

    // A batch sent again under its id (its answer was lost) is recognised;
    // a broken gzip stream and a malformed id are the sender's fault.
    let with_id = |body: Vec<u8>, id: &str| {
        let request = loader
            .post(&events_url)
            .bearer_auth(&token)
            .header("civic-batch-id", id)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let id = "00112233445566778899aabbccddeeff";
    let one = batch(&first[..2]);
    let (status, report) = with_id(one.clone(), id).await;
    assert_eq!(status, 200, "{report}");
    let (status, again) = with_id(one, id).await;
    assert_eq!(status, 200, "{again}");
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (again["duplicate"].as_bool(), again["appended"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(again["tail"], rows.len() as u64 + 2);
    let (status, why) = with_id(batch(&first[..1]), "not-hex").await;
    assert_eq!(status, 400, "{why}");
    let (status, _, why) = send(b"\x1f\x8b\x08\x00garbage".to_vec(), Some(&token), true).await;
    assert_eq!(status, 400, "{why}");

    // The hub's question is answered from the appended events, also after
    // a restart (they are in the node's log on disk).
    running.shutdown().await;
    let running = serve(config).await.unwrap();
    let start = civic_sim::world::local_midnight(time::macros::date!(2020 - 03 - 01));
    let window = ExposureWindow {
        lat: 37.55,
        lon: 127.0,
        radius_m: 3000.0,
        t_start: start + 8 * 3600,
        t_end: start + 12 * 3600,
    };
    let signed = SignedGrant::new(Grant {
        grant_id: "g-appended".into(),
        requester: "Korea Disease Control and Prevention Agency".into(),
        holder: "SK Telecom".into(),
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
    .endorse(Role::Hub, "hub", &hub)
    .endorse(Role::HealthApprover, "approver", &approver)
    .endorse(Role::PoliceLocationOfficer, "police", &police);
    let body = "{}".to_owned();
    let message = serde_json::to_vec(&Message {
        envelope: Envelope::seal("req-a", &hub, now(), body.as_bytes(), Some(signed)),
        body,
        log_head: None,
    })
    .unwrap();
    let (status, answer) = post(running.addr, Some(&hub_tls), &hub_tls.ca, &message)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let node_key = civic_node_server::load_or_create_key(&d.join("node-signing.key"))
        .unwrap()
        .verifying_key();
    let Answer::Exposure(got) = read_answer(&answer, &node_key) else {
        panic!("an exposure answer")
    };
    running.shutdown().await;
    let imported = tempfile::tempdir().unwrap();
    let mut reference = EventStore::pings(imported.path()).unwrap();
    reference
        .import(
            Some(&sim.path().join("towers.csv")),
            &[&sim.path().join("pings-skt.csv")],
            Arc::new(Default::default()),
        )
        .unwrap();
    let want = reference.exposure(&ExposureQuery {
        towers: TowerSelection::Near {
            lat: window.lat,
            lon: window.lon,
            radius_m: window.radius_m,
        },
        t_start: window.t_start,
        t_end: window.t_end,
    });
    assert!(!want.is_empty());
    let got: Vec<u64> = got[0].holders.iter().map(|h| h.holder).collect();
    assert_eq!(got, want.iter().map(|a| a.subscriber).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_named_by_the_request_places_of_routes_and_purges() {
    let (sim, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    testing::simulated_city(sim.path(), 800, 1, 7);
    let store = testing::pings_store(sim.path(), data.path(), "skt");
    let ca = CertificateAuthority::generate().unwrap();
    let (hub_tls, node_tls) = (enrol(&ca, "hub.civic"), enrol(&ca, "node-skt.civic"));
    let (hub, approver, police) = (key(), key(), key());
    let d = data.path();
    let running = serve(node_config(d, &node_tls, [&hub, &approver, &police], None))
        .await
        .unwrap();
    let addr = running.addr;
    let node_key = civic_node_server::load_or_create_key(&d.join("node-signing.key"))
        .unwrap()
        .verifying_key();
    let start = civic_sim::world::local_midnight(time::macros::date!(2020 - 03 - 01));
    let grant = |id: &str, question: Question| {
        SignedGrant::new(Grant {
            grant_id: id.into(),
            requester: "Korea Disease Control and Prevention Agency".into(),
            holder: "SK Telecom".into(),
            purpose: "epidemic investigation".into(),
            legal_basis: "Infectious Disease Control and Prevention Act, art. 76-2".into(),
            case_id: Some("1001".into()),
            consent_id: None,
            items: vec![Item::LocationPings],
            question,
            data_from: start,
            data_until: start + 86_400,
            issued_at: now() - 60,
            expires_at: now() + 3600,
        })
        .endorse(Role::Hub, "hub", &hub)
        .endorse(Role::HealthApprover, "approver", &approver)
        .endorse(Role::PoliceLocationOfficer, "police", &police)
    };
    let send = |request_id: &str, body: String, g: Option<SignedGrant>| {
        serde_json::to_vec(&Message {
            envelope: Envelope::seal(request_id, &hub, now(), body.as_bytes(), g),
            body,
            log_head: None,
        })
        .unwrap()
    };
    let bounded = Question::Windows {
        max_windows: 2,
        max_radius_m: 2000.0,
        max_span_s: 6 * 3600,
    };
    let window = |lat: f64, hours: i64| ExposureWindow {
        lat,
        lon: 126.98,
        radius_m: 1500.0,
        t_start: start + 9 * 3600,
        t_end: start + (9 + hours) * 3600,
    };
    let body = |w: Vec<ExposureWindow>| {
        serde_json::to_string(&civic_exchange::WindowsBody { windows: w }).unwrap()
    };

    // Windows beyond the grant's bounds are refused, and the grant stays unused.
    for (windows, why) in [
        (vec![window(37.56, 2); 3], "more windows"),
        (vec![window(37.56, 7)], "longer"),
    ] {
        let (s, reason) = post(
            addr,
            Some(&hub_tls),
            &hub_tls.ca,
            &send(
                "req-bad",
                body(windows),
                Some(grant("g-w", bounded.clone())),
            ),
        )
        .await
        .unwrap();
        assert_eq!(s, 403);
        assert!(
            String::from_utf8_lossy(&reason).contains(why),
            "{}",
            String::from_utf8_lossy(&reason)
        );
    }
    // Within them: answered as the store answers.
    let asked = vec![window(37.56, 3), window(37.50, 2)];
    let (s, answer) = post(
        addr,
        Some(&hub_tls),
        &hub_tls.ca,
        &send(
            "req-w",
            body(asked.clone()),
            Some(grant("g-w", bounded.clone())),
        ),
    )
    .await
    .unwrap();
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&answer));
    let Answer::Exposure(windows) = read_answer(&answer, &node_key) else {
        panic!("an exposure answer")
    };
    for (i, w) in asked.iter().enumerate() {
        let want = store.exposure(&ExposureQuery {
            towers: TowerSelection::Near {
                lat: w.lat,
                lon: w.lon,
                radius_m: w.radius_m,
            },
            t_start: w.t_start,
            t_end: w.t_end,
        });
        assert_eq!(windows[i].holders.len(), want.len());
    }

    // A route comes with the places of its events.
    let case = windows[0].holders[0].holder;
    let (s, route) = post(
        addr,
        Some(&hub_tls),
        &hub_tls.ca,
        &send(
            "req-r",
            "{}".into(),
            Some(grant("g-r", Question::Subjects { ids: vec![case] })),
        ),
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    let Answer::Routes(routes) = read_answer(&route, &node_key) else {
        panic!("a route answer")
    };
    let towers: std::collections::BTreeSet<u64> = routes[0].events.iter().map(|e| e.1).collect();
    let placed: std::collections::BTreeSet<u64> = routes[0].places.iter().map(|p| p.id).collect();
    assert_eq!(towers, placed);
    let (t, _) = store.place(routes[0].places[0].id).unwrap();
    assert_eq!(
        (t.lat, t.lon),
        (routes[0].places[0].lat, routes[0].places[0].lon)
    );

    // The purpose ends: the hub asks the node to delete both answers.
    let purge = serde_json::to_string(&civic_node_server::PurgeRequest {
        purpose: "response:1".into(),
        request_ids: vec!["req-w".into(), "req-r".into(), "req-never".into()],
    })
    .unwrap();
    let purge_message = send("purge-1", purge, None);
    let (s, receipt) = post_to(
        addr,
        "/node/v1/purge",
        Some(&hub_tls),
        &hub_tls.ca,
        &purge_message,
    )
    .await
    .unwrap();
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&receipt));
    let reply: Message = serde_json::from_slice(&receipt).unwrap();
    reply
        .envelope
        .open(&node_key, reply.body.as_bytes(), now())
        .unwrap();
    let r: civic_node_server::PurgeReceipt = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        r.deleted.iter().map(|d| d.0.as_str()).collect::<Vec<_>>(),
        ["req-w", "req-r"]
    );
    assert!(r.deleted.iter().all(|d| d.1 > 0));
    assert_eq!(r.absent, vec!["req-never".to_owned()]);
    let answers = std::fs::read_dir(d.join("exchange").join("answers"))
        .unwrap()
        .filter(|e| {
            let name = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            name.ends_with(".body") || name.ends_with(".envelope")
        })
        .count();
    assert_eq!(answers, 0, "no answer is kept");
    // A retried purge gets the same receipt; a retried request is gone.
    let (_, again) = post_to(
        addr,
        "/node/v1/purge",
        Some(&hub_tls),
        &hub_tls.ca,
        &purge_message,
    )
    .await
    .unwrap();
    assert_eq!(again, receipt);
    let (s, _) = post(
        addr,
        Some(&hub_tls),
        &hub_tls.ca,
        &send(
            "req-r",
            "{}".into(),
            Some(grant("g-r", Question::Subjects { ids: vec![case] })),
        ),
    )
    .await
    .unwrap();
    assert_eq!(s, 410);
    // Only the hub purges.
    let (s, _) = post_to(
        addr,
        "/node/v1/purge",
        Some(&node_tls),
        &node_tls.ca,
        &purge_message,
    )
    .await
    .unwrap();
    assert_eq!(s, 403);
    running.shutdown().await;
}
