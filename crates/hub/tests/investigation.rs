//! The epidemic investigation end to end on the hub's services, with the
//! demo's institution nodes serving a synthetic city over mutual TLS: a
//! response opened, cases registered, a request decided by an approver
//! and a police officer, the holders asked, the route, contacts and
//! clusters built, the response closed — and then no plaintext of any
//! personal value of it in the database files.

use civic_core::investigation::{ContactStatus, RequestStatus};
use civic_hub::{Config, Ctx, Hub, HubError, HubKeys};
use civic_investigation::store::{DataRequestStore, ResponseStore};
use civic_investigation::{ContactUpdate, DataRequestInput};
use civic_store::testing::TestDb;
use civic_store::{AuditStore, NodeStore};
use std::time::{Duration, Instant};

mod common;
use common::database_bytes;

civic_store::backend_tests!(the_investigation_runs_from_a_case_to_its_deletion);

async fn as_user(hub: &Hub, username: &str) -> Ctx {
    civic_demo::nodes::signed_in(hub, username).await.unwrap()
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, HubError>) {
    assert!(matches!(r, Err(HubError::Forbidden { .. })), "{r:?}");
}

/// A stand-in SMS gateway on loopback: takes each POSTed JSON notice.
async fn gateway() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = received.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = conn.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    let body = serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap();
                    kept.lock().unwrap().push(body);
                    buf.drain(..end + 4 + length);
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (url, received)
}

async fn the_investigation_runs_from_a_case_to_its_deletion(db: TestDb) {
    let logs = common::logs();
    let dir = tempfile::tempdir().unwrap();
    common::seoul_city(dir.path(), 1500, 10, 3);
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        collection_deadline_seconds: 60,
        ..Config::default()
    };
    civic_investigation::store::migrate(&db.store)
        .await
        .unwrap();
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), config);
    let hub = civic_investigation::Investigation::new(hub);
    civic_demo::seed(&hub).await.unwrap();
    let nodes = civic_demo::nodes::start(&hub, dir.path()).await.unwrap();
    assert_eq!(nodes.len(), 10);
    let admin = as_user(&hub, "admin").await;
    let inv = as_user(&hub, "investigator.seoul").await;
    let daegu = as_user(&hub, "investigator.daegu").await;
    let approver = as_user(&hub, "approver").await;
    let police = as_user(&hub, "police").await;
    let auditor = as_user(&hub, "auditor").await;

    // A response, opened by an administrator only.
    forbidden(
        hub.open_response(&inv, "COVID-19", "IDCPA art. 76-2", None)
            .await,
    );
    let response = hub
        .open_response(
            &admin,
            "COVID-19 Seoul",
            "Infectious Disease Control and Prevention Act, art. 76-2",
            None,
        )
        .await
        .unwrap();

    // The case register: Seoul's investigator registers Seoul's cases.
    let register = std::fs::read_to_string(dir.path().join("city/case-register.csv")).unwrap();
    forbidden(hub.import_cases(&daegu, response.id, &register).await);
    let cases = hub
        .import_cases(&inv, response.id, &register)
        .await
        .unwrap();
    assert!(cases.len() >= 3, "{} cases", cases.len());
    assert!(
        cases.iter().all(|c| !c.assigned.is_empty()),
        "assigned to an investigator"
    );
    // Registering them again changes nothing.
    assert!(matches!(
        hub.import_cases(&inv, response.id, &register).await,
        Err(HubError::Conflict(_))
    ));
    // A case with a phone, a card of a demo card company and a transit card.
    let rows: Vec<Vec<String>> = register
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let row = rows
        .iter()
        .find(|r| {
            !r[5].is_empty()
                && ["shinhan:", "kb:", "samsung:"]
                    .iter()
                    .any(|c| r[6].contains(c))
        })
        .expect("a case with a phone and a demo card");
    let case = cases.iter().find(|c| c.number == row[0]).unwrap();
    let personal: Vec<String> = vec![row[5].clone(), row[7].clone()]
        .into_iter()
        .chain(
            row[6]
                .split(';')
                .map(|c| c.split(':').nth(1).unwrap().to_owned()),
        )
        .collect();

    // Who reads the case: its region's investigator and approvers; not
    // another region's, not the police, not an auditor.
    forbidden(hub.get_case(&daegu, case.id).await);
    forbidden(hub.get_case(&police, case.id).await);
    forbidden(hub.get_case(&auditor, case.id).await);
    let detail = hub.get_case(&inv, case.id).await.unwrap();
    assert!(detail.subject.is_some());
    assert!(
        hub.get_case(&approver, case.id)
            .await
            .unwrap()
            .subject
            .is_none(),
        "approvers decide without who it is"
    );

    // The interview.
    let interviews = std::fs::read_to_string(dir.path().join("city/interviews.csv")).unwrap();
    let mine: String = std::iter::once("case_id,date,lat,lon,start_time,end_time,place")
        .chain(
            interviews
                .lines()
                .skip(1)
                .filter(|l| l.starts_with(&format!("{},", case.number))),
        )
        .collect::<Vec<_>>()
        .join("\n");
    hub.import_interviews(&inv, response.id, &mine)
        .await
        .unwrap();

    // The due procedure.
    let ask = || DataRequestInput {
        items: vec![
            "location_pings".into(),
            "card_transactions".into(),
            "transit_taps".into(),
        ],
        reason: "Confirmed case: route and contacts for the investigation".into(),
        contacts: true,
        from: None,
        until: None,
    };
    forbidden(hub.request_data(&approver, case.id, ask()).await);
    forbidden(hub.request_data(&daegu, case.id, ask()).await);
    assert!(
        matches!(
            hub.request_data(
                &inv,
                case.id,
                DataRequestInput {
                    from: Some("2019-01-01".into()),
                    ..ask()
                }
            )
            .await,
            Err(HubError::Invalid(_))
        ),
        "outside the look-back"
    );
    let request = hub.request_data(&inv, case.id, ask()).await.unwrap();
    assert_eq!(request.status, RequestStatus::AwaitingApprover);
    forbidden(hub.decide_request(&inv, request.id, true, None).await);
    forbidden(hub.list_requests(&inv, None).await);
    let inbox = hub.list_requests(&police, None).await.unwrap();
    assert!(inbox.is_empty(), "not the police's turn yet");
    let inbox = hub.list_requests(&approver, None).await.unwrap();
    assert_eq!(inbox.len(), 1);
    assert!(inbox[0].reason.is_some());
    assert!(
        matches!(
            hub.decide_request(&approver, request.id, false, None).await,
            Err(HubError::Invalid(_))
        ),
        "a rejection needs a reason"
    );
    let decided = hub
        .decide_request(
            &approver,
            request.id,
            true,
            Some("necessary and proportionate"),
        )
        .await
        .unwrap();
    assert_eq!(decided.status, RequestStatus::AwaitingPolice);
    assert!(matches!(
        hub.decide_request(&approver, request.id, true, None).await,
        Err(HubError::Conflict(_))
    ));
    // Nothing reaches a node before the chain is complete.
    assert!(hub
        .store
        .collection_metas(Some(case.id), None)
        .await
        .unwrap()
        .is_empty());
    let inbox = hub.list_requests(&police, None).await.unwrap();
    assert_eq!(inbox.len(), 1);
    // The case's live feed, from before the last approval.
    let mut feed = hub.case_events();
    let decided = hub
        .decide_request(&police, request.id, true, None)
        .await
        .unwrap();
    assert_eq!(decided.status, RequestStatus::Collecting);

    // A second request, rejected by the approver with a reason.
    let other = cases.iter().find(|c| c.id != case.id).unwrap();
    let r2 = hub.request_data(&inv, other.id, ask()).await.unwrap();
    let rejected = hub
        .decide_request(&approver, r2.id, false, Some("the interview suffices"))
        .await
        .unwrap();
    assert_eq!(rejected.status, RequestStatus::Rejected);

    // The holders answer; the route, the contacts and the cluster follow.
    let started = Instant::now();
    loop {
        let r = hub.list_requests(&inv, Some(case.id)).await.unwrap();
        let mine = r.iter().find(|x| x.id == request.id).unwrap();
        if mine.status == RequestStatus::Collected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "still {:?}",
            mine.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let detail = hub.get_case(&inv, case.id).await.unwrap();
    assert!(detail
        .collections
        .iter()
        .any(|c| c.purpose == civic_core::investigation::CollectionPurpose::Contacts));
    assert!(
        detail
            .collections
            .iter()
            .all(|c| c.status == civic_core::investigation::CollectionStatus::Answered),
        "{:#?}",
        detail.collections
    );
    let timeline = hub.timeline(&inv, case.id).await.unwrap();
    assert!(timeline.stays.len() >= 3, "{} stays", timeline.stays.len());
    // The feed told as they came: each holder's answer, new stay points,
    // contacts, the cluster.
    let mut kinds = std::collections::BTreeSet::new();
    let mut stays_seen = 0;
    while let Ok(e) = feed.try_recv() {
        if e.case == case.id {
            kinds.insert(e.kind);
            if e.kind == "stay_points" {
                stays_seen += e.data["new"].as_array().map_or(0, Vec::len);
            }
        }
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec!["cluster", "collection", "contacts", "stay_points"]
    );
    assert!(stays_seen >= timeline.stays.len());
    assert!(timeline.stays.iter().any(|s| s
        .sources
        .iter()
        .any(|x| x.kind == civic_eiss::route::SourceKind::Pings)));
    assert!(!timeline.interview.is_empty());
    let contacts = hub.case_contacts(&inv, case.id).await.unwrap();
    assert!(contacts.len() > 20, "{} contacts", contacts.len());
    forbidden(hub.case_contacts(&daegu, case.id).await);
    let notices = hub.case_notices(&inv, case.id).await.unwrap();
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.kind == "patient_notice")
            .count(),
        1
    );
    assert!(notices[0].text.contains("Infectious Disease Control"));

    // Follow-up: notify two, one tests positive and becomes a case. A list
    // with one id that is not the caller's changes nothing.
    let ids: Vec<_> = contacts.iter().take(2).map(|c| c.id).collect();
    let mut bad = ids.clone();
    bad.push(civic_core::investigation::ContactId(i64::MAX));
    assert!(matches!(
        hub.notify_contacts(&inv, &bad).await,
        Err(HubError::NotFound(_))
    ));
    forbidden(hub.notify_contacts(&daegu, &ids).await);
    assert!(hub
        .case_notices(&inv, case.id)
        .await
        .unwrap()
        .iter()
        .all(|n| n.kind != "contact_notice"));
    assert_eq!(hub.notify_contacts(&inv, &ids).await.unwrap(), 2);
    let notices = hub.case_notices(&inv, case.id).await.unwrap();
    assert_eq!(
        notices
            .iter()
            .filter(|n| n.kind == "contact_notice")
            .count(),
        2
    );
    assert!(
        notices.iter().all(|n| n.sent_at.is_none()),
        "no sender yet: all in the outbox"
    );
    // An SMS gateway takes them from the outbox, once.
    let (gateway, received) = gateway().await;
    let sender = civic_investigation::WebhookSender::new(&gateway);
    assert_eq!(hub.deliver_notices(&sender).await.unwrap(), 3);
    assert_eq!(hub.deliver_notices(&sender).await.unwrap(), 0);
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3);
    assert!(bodies
        .iter()
        .any(|b| b["text"].as_str().unwrap().contains("exposed")));
    assert!(hub
        .case_notices(&inv, case.id)
        .await
        .unwrap()
        .iter()
        .all(|n| n.sent_at.is_some()));
    let positive = hub
        .update_contact(
            &inv,
            ids[0],
            ContactUpdate {
                status: "positive".into(),
                case_number: Some("9001".into()),
                onset_date: Some("2020-03-09".into()),
                confirmed_date: Some("2020-03-10".into()),
                region: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(positive.status, ContactStatus::Positive);
    let new_case = hub
        .get_case(&inv, positive.linked_case.unwrap())
        .await
        .unwrap();
    assert_eq!(new_case.case.source_case, Some(case.id));
    let mut personal = personal;
    personal.extend(contacts.iter().map(|c| c.identifier.to_string()));

    // Clusters over the response's cases.
    let rows = hub.cluster_rows(&inv, response.id).await.unwrap();
    assert_eq!(rows.len(), cases.len() + 1);
    forbidden(hub.clusters(&police, response.id).await);

    // Nothing personal was ever written in the clear.
    let bytes = database_bytes(&db).await;
    if let Some(bytes) = &bytes {
        assert!(bytes.len() > 100_000, "the scan reads the tables");
        if let Some(v) = common::found_in(bytes, &personal) {
            panic!("{v} in the clear before closing");
        }
    }

    // The end: only administrators close; the certificate is signed.
    forbidden(hub.close_response(&inv, response.id).await);
    let cert = hub.close_response(&admin, response.id).await.unwrap();
    assert!(cert.verify(&hub.keys().signing_key().verifying_key()));
    assert_eq!(cert.body.hub_records.cases as usize, cases.len() + 1);
    assert!(cert.body.hub_records.contacts > 0);
    assert!(!cert.body.nodes.is_empty());
    assert!(
        cert.body.nodes.iter().all(|n| n.confirmed),
        "{:#?}",
        cert.body.nodes
    );
    assert!(
        cert.body
            .nodes
            .iter()
            .map(|n| n.answers_deleted)
            .sum::<u64>()
            > 0
    );
    // Each node's receipt is in the certificate, verifiable with its key.
    let registered = hub.store.nodes().await.unwrap();
    for deletion in &cert.body.nodes {
        let node = registered.iter().find(|n| n.name == deletion.node).unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(
            &data_encoding::HEXLOWER
                .decode(node.signing_key.as_bytes())
                .unwrap()
                .try_into()
                .unwrap(),
        )
        .unwrap();
        let signed: civic_exchange::wire::Message =
            serde_json::from_str(deletion.signed_receipt.as_deref().unwrap()).unwrap();
        signed
            .envelope
            .open(&key, signed.body.as_bytes(), signed.envelope.timestamp)
            .unwrap();
        let receipt: civic_exchange::wire::PurgeReceipt =
            serde_json::from_str(&signed.body).unwrap();
        assert_eq!(receipt.deleted.len() as u64, deletion.answers_deleted);
    }
    // No node keeps an answer of the response.
    for n in &nodes {
        let answers = dir
            .path()
            .join("nodes")
            .join(n.name)
            .join("exchange/answers");
        let kept = std::fs::read_dir(&answers)
            .map(|d| {
                d.filter(|e| {
                    let name = e
                        .as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .into_owned();
                    name.ends_with(".body")
                })
                .count()
            })
            .unwrap_or(0);
        assert_eq!(kept, 0, "{} keeps answers", n.name);
    }
    assert!(hub.store.response_key(response.id).await.unwrap().is_none());
    assert!(hub.get_case(&inv, case.id).await.is_err());
    assert_eq!(
        hub.deletion_certificate(&admin, response.id)
            .await
            .unwrap()
            .id,
        cert.id
    );
    assert!(matches!(
        hub.close_response(&admin, response.id).await,
        Err(HubError::Conflict(_))
    ));
    // The closing is in the audit ledger.
    let records = hub
        .store
        .search_audit(
            civic_core::audit::AuditQuery {
                action: Some("eiss.response.close".into()),
                limit: 10,
                ..Default::default()
            },
            civic_core::audit::AuditEntry::new(
                "audit.search",
                "audit",
                civic_core::audit::Outcome::Allowed,
            ),
        )
        .await
        .unwrap();
    assert!(records
        .iter()
        .any(|r| r.entry.outcome == civic_core::audit::Outcome::Allowed
            && r.entry
                .reason
                .as_deref()
                .is_some_and(|x| x.starts_with("deletion certificate sha256:"))));
    let bytes = database_bytes(&db).await;
    if let Some(bytes) = &bytes {
        if let Some(v) = common::found_in(bytes, &personal) {
            panic!("{v} in the clear after closing");
        }
    }
    for n in nodes {
        n.running.shutdown().await;
    }
    // Nor in the database's write-ahead log, what the nodes keep of the
    // exchange (answers, logs, grants: the holders' own data aside), or
    // the hub's and nodes' logs.
    let mut kept: Vec<(String, Vec<u8>)> = common::files_under(&dir.path().join("nodes"), &|p| {
        p.components().any(|c| c.as_os_str() == "exchange")
    });
    if let Some(wal) = common::postgres_wal_bytes(&db).await {
        kept.push(("PostgreSQL's write-ahead log".into(), wal));
    }
    let logged = logs.lock().unwrap().clone();
    assert!(!logged.is_empty(), "the scan reads what was logged");
    kept.push(("the logs".into(), logged));
    assert!(kept.len() > 3, "the scan reads the nodes' files");
    for (what, bytes) in &kept {
        if let Some(v) = common::found_in(bytes, &personal) {
            panic!("{v} in the clear in {what} after closing");
        }
    }
}
