//! Public MyData's transfers end to end on the hub's services, with the
//! demo's holders' nodes over mutual TLS: an agency asks, the citizen
//! consents or refuses, the holder issues a credential of exactly the
//! consented items, the agency opens and verifies it, the citizen
//! withdraws (revoked, shredded, the agency told), and downloads what the
//! holders keep of him. Each way an agency could get an item without a
//! live agreement and a live consent is refused.

use civic_core::mydata::TransferState;
use civic_hub::{Config, Ctx, Hub, HubError, HubKeys};
use civic_mydata::transfers::{ConsentRequest, RefusalRequest, TransferRequest, VerifyRequest};
use civic_store::testing::TestDb;
use civic_store::InstitutionStore;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use x25519_dalek::{PublicKey, StaticSecret};

mod common;

civic_store::backend_tests!(a_citizen_sends_his_items_and_takes_them_back);

async fn as_user(hub: &Hub, username: &str) -> Ctx {
    civic_demo::nodes::signed_in(hub, username).await.unwrap()
}

/// The holder's record of `subject` for `entry`, from its records file.
fn record(dir: &Path, node: &str, subject: &str, entry: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("nodes").join(node).join("records.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["subject"] == subject && r["entry"] == entry)
        .unwrap_or_else(|| panic!("no {entry} record of {subject}"))
}

fn open_package(secret: &StaticSecret, jwe: &str) -> (String, String) {
    let (plain, cty) = civic_credentials::jwe::decrypt(jwe, secret).unwrap();
    (String::from_utf8(plain).unwrap(), cty)
}

fn web_dir() -> Option<PathBuf> {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let ready = web.join("node_modules/@sd-jwt/sd-jwt-vc").exists()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok();
    if !ready && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI needs node and web/node_modules (npm ci in web/) for the independent check");
    }
    ready.then_some(web)
}

async fn a_citizen_sends_his_items_and_takes_them_back(db: TestDb) {
    let logs = common::logs();
    let dir = tempfile::tempdir().unwrap();
    common::seoul_city(dir.path(), 400, 2, 5);
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    civic_mydata::store::migrate(&db.store).await.unwrap();
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), config);
    let hub = civic_mydata::MyData::new(hub);
    civic_demo::seed(&hub).await.unwrap();
    let mut nodes = civic_demo::nodes::start(&hub, dir.path()).await.unwrap();
    civic_demo::seed_catalogue(&hub).await.unwrap();
    let citizen_login = civic_demo::seed_mydata(&hub, &dir.path().join("city"))
        .await
        .unwrap()
        .unwrap();
    assert!(citizen_login.duty.starts_with("citizen:"));
    let subject = citizen_login.duty.trim_start_matches("citizen:").to_owned();
    let agency = as_user(&hub, "mydata.agency").await;
    let citizen = as_user(&hub, "citizen").await;
    let holder = as_user(&hub, "mydata.nhis").await;

    // Another citizen, who must see nothing of this one.
    let portal = hub
        .store
        .institutions()
        .await
        .unwrap()
        .into_iter()
        .find(|i| i.kind == civic_core::identity::InstitutionKind::HubOperator)
        .unwrap();
    hub.create_user(
        &Ctx::local_operator(),
        portal.id,
        civic_hub::admin::UserRequest {
            username: "citizen.other".into(),
            display_name: "Other".into(),
            password: Some("a long enough password".into()),
            duties: vec!["citizen:999999".into()],
            machine_client: false,
        },
    )
    .await
    .unwrap();
    let other = as_user(&hub, "citizen.other").await;

    // The agency's webhook: a receiver on loopback keeps what it is sent.
    let (hook_url, mut hooks) = webhook_receiver().await;
    let hook = hub
        .set_transfer_webhook(
            &agency,
            civic_mydata::transfers::WebhookRequest { url: hook_url },
        )
        .await
        .unwrap();
    let r = hub
        .set_transfer_webhook(
            &agency,
            civic_mydata::transfers::WebhookRequest {
                url: "http://agency.example/hook".into(),
            },
        )
        .await;
    assert!(matches!(r, Err(HubError::Invalid(_))), "{r:?}");

    let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
    let agency_jwk = civic_credentials::Jwk::x25519(&PublicKey::from(&secret));
    let key = serde_json::to_value(&agency_jwk).unwrap();
    let agreements = hub.list_agreements(&agency).await.unwrap();
    let find = |code: &str| {
        agreements
            .iter()
            .find(|a| {
                a.offer_code == code && a.status == civic_core::mydata::AgreementStatus::Approved
            })
            .unwrap()
            .clone()
    };
    let income = find("income-bracket");
    let abstract_ = find("resident-registration-abstract");
    let ask = |agreement: civic_core::mydata::AgreementId, items: &[&str]| TransferRequest {
        agreement_id: agreement,
        subject: subject.clone(),
        items: items.iter().map(|s| (*s).to_owned()).collect(),
        recipient_key: key.clone(),
    };

    // Refused: an item outside the agreement; a citizen or a holder asking.
    let r = hub
        .request_transfer(
            &agency,
            ask(income.id, &["income_bracket", "premium_monthly"]),
        )
        .await;
    assert!(matches!(r, Err(HubError::Invalid(_))), "{r:?}");
    let r = hub
        .request_transfer(&citizen, ask(income.id, &["income_bracket"]))
        .await;
    assert!(matches!(r, Err(HubError::Forbidden { .. })), "{r:?}");
    let r = hub
        .request_transfer(&holder, ask(income.id, &["income_bracket"]))
        .await;
    assert!(matches!(r, Err(HubError::NotFound(_))), "{r:?}");

    // A request: the citizen sees who asks, which items, why, how long.
    let t = hub
        .request_transfer(&agency, ask(income.id, &["income_bracket"]))
        .await
        .unwrap();
    assert_eq!(t.state, TransferState::AwaitingConsent);
    let mine = hub.transfers(&citizen).await.unwrap();
    let shown = mine.iter().find(|x| x.id == t.id).unwrap();
    assert_eq!(shown.agency.name, "Korea Employment Information Service");
    assert_eq!(shown.items.len(), 1);
    assert_eq!(shown.items[0].name, "income_bracket");
    assert!(!shown.purpose.is_empty() && shown.retention_days == 90);
    assert!(hub.transfers(&other).await.unwrap().is_empty());

    // Nothing before consent; nobody else consents.
    let r = hub.transfer_package(&agency, t.id).await;
    assert!(matches!(r, Err(HubError::Conflict(_))), "{r:?}");
    let once = || ConsentRequest {
        mode: "once".into(),
        until: None,
        interval_days: None,
    };
    let r = hub.consent_transfer(&other, t.id, once()).await;
    assert!(matches!(r, Err(HubError::NotFound(_))), "{r:?}");
    let r = hub.consent_transfer(&agency, t.id, once()).await;
    assert!(matches!(r, Err(HubError::Forbidden { .. })), "{r:?}");

    // Consent: delivered at once.
    let t = hub.consent_transfer(&citizen, t.id, once()).await.unwrap();
    assert_eq!(t.state, TransferState::Delivered, "{t:?}");
    assert_eq!(t.deliveries.len(), 1);
    let r = hub.consent_transfer(&citizen, t.id, once()).await;
    assert!(matches!(r, Err(HubError::Conflict(_))), "{r:?}");

    // The agency opens and verifies the package: exactly the consented item.
    let package = hub.transfer_package(&agency, t.id).await.unwrap();
    let (credential, cty) = open_package(&secret, &package.credential);
    assert_eq!(cty, "dc+sd-jwt");
    let keys = hub.issuer_jwks("node-nhis").await.unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verified = civic_credentials::sdjwt::verify(&credential, &keys, now).unwrap();
    let expected = record(dir.path(), "node-nhis", &subject, "income-bracket");
    assert_eq!(verified.items, vec!["income_bracket".to_owned()]);
    assert_eq!(
        verified.claims["income_bracket"],
        expected["items"]["income_bracket"]
    );
    assert!(verified.claims.get("premium_monthly").is_none());
    assert_eq!(verified.claims["sub"], subject.as_str());
    let check = hub
        .verify_credential(
            &agency,
            VerifyRequest {
                credential: credential.clone(),
            },
        )
        .await
        .unwrap();
    assert!(check.valid && check.revoked == Some(false), "{check:?}");
    // A credential whose disclosure was swapped does not verify.
    let forged = {
        let mut parts: Vec<&str> = credential.split('~').collect();
        let fake = data_encoding::BASE64URL_NOPAD.encode(
            json!(["c2FsdA", "income_bracket", 1])
                .to_string()
                .as_bytes(),
        );
        parts[1] = &fake;
        parts.join("~")
    };
    let bad = hub
        .verify_credential(&agency, VerifyRequest { credential: forged })
        .await
        .unwrap();
    assert!(!bad.valid);

    // The same package verifies with an independent implementation.
    if let Some(web) = web_dir() {
        let list = hub.issuer_status_list("node-nhis").await.unwrap();
        let input = json!({
            "jwe": package.credential,
            "agency_jwk": {"kty": "OKP", "crv": "X25519", "x": agency_jwk.x,
                "d": data_encoding::BASE64URL_NOPAD.encode(secret.as_bytes())},
            "jwk": keys.keys[0],
            "status_token": list.token,
        });
        let file = dir.path().join("independent.json");
        std::fs::write(&file, input.to_string()).unwrap();
        let out = std::process::Command::new("node")
            .arg(web.join("tests/sdjwt-verify.mjs"))
            .arg(&file)
            .current_dir(&web)
            .output()
            .unwrap();
        let out: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out["ok"], true, "{out}");
        assert_eq!(
            out["claims"]["income_bracket"],
            expected["items"]["income_bracket"]
        );
    }

    // A provided document comes whole, rendered and signed too.
    let items: Vec<&str> = abstract_.items.iter().map(String::as_str).collect();
    let r = hub
        .request_transfer(&agency, ask(abstract_.id, &items[..1]))
        .await;
    assert!(matches!(r, Err(HubError::Invalid(_))), "{r:?}");
    let d = hub
        .request_transfer(&agency, ask(abstract_.id, &items))
        .await
        .unwrap();
    hub.consent_transfer(&citizen, d.id, once()).await.unwrap();
    let doc_package = hub.transfer_package(&agency, d.id).await.unwrap();
    let (doc, cty) = open_package(&secret, doc_package.document.as_deref().unwrap());
    assert_eq!(cty, "json");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let name = record(
        dir.path(),
        "node-mois",
        &subject,
        "resident-registration-abstract",
    )["items"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(doc["html"].as_str().unwrap().contains(&name));
    let mois = hub.issuer_jwks("node-mois").await.unwrap();
    let (_, signed) = civic_credentials::sdjwt::verify_jws(
        doc["signature"].as_str().unwrap(),
        &mois,
        civic_node_server::mydata::DOCUMENT_SIGNATURE_TYP,
    )
    .unwrap();
    assert_eq!(
        signed["html_sha256"],
        civic_credentials::sdjwt::digest(doc["html"].as_str().unwrap())
    );

    // Refused by the citizen: nothing is issued.
    let refused = hub
        .request_transfer(&agency, ask(income.id, &["income_bracket"]))
        .await
        .unwrap();
    let refused = hub
        .refuse_transfer(
            &citizen,
            refused.id,
            RefusalRequest {
                reason: Some("not now".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(refused.state, TransferState::Refused);
    let r = hub.transfer_package(&agency, refused.id).await;
    assert!(matches!(r, Err(HubError::Conflict(_))), "{r:?}");

    // An agreement superseded after the request lets nothing through.
    let pending = hub
        .request_transfer(&agency, ask(income.id, &["income_bracket"]))
        .await
        .unwrap();
    let newer = hub
        .apply_agreement(
            &agency,
            civic_mydata::catalogue::AgreementRequest {
                offer_id: income.offer_id,
                service: income.service.clone(),
                items: vec!["income_bracket".into(), "premium_monthly".into()],
                purpose: income.purpose.clone(),
                legal_basis: income.legal_basis.clone(),
                retention_days: 30,
            },
        )
        .await
        .unwrap();
    hub.note_agreement(
        &holder,
        newer.id,
        civic_mydata::catalogue::AgreementNoteRequest {
            kind: "approve".into(),
            text: "ok".into(),
        },
    )
    .await
    .unwrap();
    let r = hub.consent_transfer(&citizen, pending.id, once()).await;
    assert!(matches!(r, Err(HubError::Conflict(_))), "{r:?}");
    let r = hub
        .request_transfer(&agency, ask(income.id, &["income_bracket"]))
        .await;
    assert!(matches!(r, Err(HubError::Conflict(_))), "{r:?}");

    // Withdrawal: revoked at the holder, shredded at the hub, the agency told.
    let w = hub.withdraw_transfer(&citizen, t.id).await.unwrap();
    assert_eq!(w.state, TransferState::Withdrawn);
    assert!(w.revoked_at.is_some(), "{w:?}");
    assert!(w.deliveries.iter().all(|d| !d.kept));
    let r = hub.transfer_package(&agency, t.id).await;
    assert!(matches!(r, Err(HubError::Conflict(_))), "{r:?}");
    let check = hub
        .verify_credential(&agency, VerifyRequest { credential })
        .await
        .unwrap();
    assert!(!check.valid && check.revoked == Some(true), "{check:?}");
    let events = hub.transfer_events(&agency, 0, 100).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind == "consent.withdrawn" && e.transfer_id == t.id));
    // The same events reach the webhook, in order, signed.
    let sent = hub.push_webhooks(&reqwest::Client::new()).await.unwrap();
    assert_eq!(sent, events.len());
    let key = data_encoding::BASE64
        .decode(hook.secret.trim_start_matches("whsec_").as_bytes())
        .unwrap();
    let mut seqs = Vec::new();
    while let Ok((headers, body)) = hooks.try_recv() {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let ts: i64 = header("webhook-timestamp").parse().unwrap();
        assert_eq!(
            header("webhook-signature"),
            civic_mydata::transfers::webhook_signature(&key, &header("webhook-id"), ts, &body)
        );
        let event: Value = serde_json::from_str(&body).unwrap();
        seqs.push(event["data"]["seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, events.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert_eq!(hub.push_webhooks(&reqwest::Client::new()).await.unwrap(), 0);
    let deleted = hub.confirm_transfer_deletion(&agency, t.id).await.unwrap();
    assert!(deleted.deletion_confirmed_at.is_some());
    let r = hub.withdraw_transfer(&citizen, t.id).await;
    assert!(matches!(r, Err(HubError::Conflict(_))), "{r:?}");

    // A consent receipt in the ISO/IEC TS 27560 structure.
    let receipt = hub.consent_receipt(&citizen, t.id).await.unwrap();
    assert_eq!(receipt["consent_status"], "withdrawn");
    assert_eq!(receipt["pii_principal_id"], subject.as_str());

    // Portability: exactly his records, from every holder.
    let export = hub.my_data(&citizen).await.unwrap();
    let mut expected_records = 0;
    for node in ["node-mois", "node-nhis", "node-seoul"] {
        let text =
            std::fs::read_to_string(dir.path().join("nodes").join(node).join("records.jsonl"))
                .unwrap();
        expected_records += text
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).unwrap()["subject"] == subject.as_str())
            .count();
    }
    let got: Vec<&Value> = export["holders"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["records"].as_array().unwrap())
        .collect();
    assert_eq!(got.len(), expected_records);
    assert!(got.iter().all(|r| r["subject"] == subject.as_str()));
    let csv = civic_mydata::transfers::portability_csv(&export);
    assert!(csv.contains(&name));
    let other_export = hub.my_data(&other).await.unwrap();
    assert!(other_export["holders"].as_array().unwrap().is_empty());

    // A consent given while the holder's node is down stands, and is
    // delivered once the node is back.
    let later = hub
        .request_transfer(&agency, ask(find("household").id, &["household_size"]))
        .await
        .unwrap();
    let mois = nodes.iter().position(|n| n.name == "node-mois").unwrap();
    nodes.remove(mois).running.shutdown().await;
    let waiting = hub
        .consent_transfer(&citizen, later.id, once())
        .await
        .unwrap();
    assert_eq!(waiting.state, TransferState::Consented);
    assert_eq!(
        hub.deliver_pending(std::time::Duration::ZERO)
            .await
            .unwrap(),
        0
    );
    let config =
        civic_node_server::NodeConfig::load(&dir.path().join("nodes/node-mois/node.toml")).unwrap();
    let back = civic_node_server::serve(config).await.unwrap();
    hub.register_node(
        &Ctx::local_operator(),
        "node-mois",
        &format!("https://127.0.0.1:{}", back.addr.port()),
        "records",
        "node-mois",
    )
    .await
    .unwrap();
    assert_eq!(
        hub.deliver_pending(std::time::Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        hub.transfer(&agency, later.id).await.unwrap().state,
        TransferState::Delivered
    );

    // The public catalogue counts what was sent: entries, years, agencies.
    let catalogue = hub.catalogue(None).await.unwrap();
    let entry = |code: &str| {
        catalogue
            .offers
            .iter()
            .find(|o| o.code == code)
            .unwrap()
            .demand
            .transfers
    };
    assert_eq!(entry("income-bracket"), 1);
    assert_eq!(entry("resident-registration-abstract"), 1);
    assert_eq!(entry("household"), 1);
    let year = catalogue
        .stats
        .by_year
        .iter()
        .find(|y| y.datasets_used > 0)
        .unwrap();
    assert_eq!((year.documents_used, year.datasets_used), (1, 2));
    let agency_row = catalogue
        .stats
        .by_agency
        .iter()
        .find(|a| a.agency.name == "Korea Employment Information Service")
        .unwrap();
    assert_eq!(agency_row.transfers, 3);

    // Every access to his data, and none to another's.
    let accesses = hub.my_accesses(&citizen).await.unwrap();
    assert!(accesses
        .iter()
        .any(|a| a.action == "mydata.transfer.deliver"));
    assert!(accesses.iter().any(|a| a.action == "mydata.transfer.fetch"
        && a.institution.as_deref() == Some("Korea Employment Information Service")));
    let theirs = hub.my_accesses(&other).await.unwrap();
    assert!(theirs
        .iter()
        .all(|a| !a.resource.contains(&format!(":{}", t.id))));

    // Answers that arrive together are written together (one transaction
    // a batch, one request a holder), and each is still judged alone: a
    // second consent to the same transfer is refused, a non-party finds
    // nothing, the rest are delivered, each with its own credential.
    let household = find("household");
    let mut many = Vec::new();
    for _ in 0..12 {
        many.push(
            hub.request_transfer(&agency, ask(household.id, &["household_size"]))
                .await
                .unwrap()
                .id,
        );
    }
    let consents = many
        .iter()
        .map(|&id| hub.consent_transfer(&citizen, id, once()))
        .chain([
            hub.consent_transfer(&citizen, many[0], once()),
            hub.consent_transfer(&other, many[1], once()),
        ]);
    let answers = futures_util::future::join_all(consents).await;
    let stranger = &answers[13];
    let delivered = answers[..13]
        .iter()
        .filter(|a| {
            a.as_ref()
                .is_ok_and(|v| v.state == TransferState::Delivered)
        })
        .count();
    assert_eq!(delivered, 12, "{answers:?}");
    assert!(
        answers[..13]
            .iter()
            .filter(|a| matches!(a, Err(HubError::Conflict(_))))
            .count()
            == 1,
        "exactly one of the two consents to one transfer stands: {answers:?}"
    );
    assert!(
        matches!(stranger, Err(HubError::NotFound(_))),
        "{stranger:?}"
    );
    let fetched =
        futures_util::future::join_all(many.iter().map(|&id| hub.transfer_package(&agency, id)))
            .await;
    let mut indices = std::collections::BTreeSet::new();
    let keys = hub.issuer_jwks("node-mois").await.unwrap();
    let expected = record(dir.path(), "node-mois", &subject, "household");
    for (id, package) in many.iter().zip(fetched) {
        let package = package.unwrap();
        assert_eq!(package.transfer_id, *id);
        let (sd_jwt, _) = open_package(&secret, &package.credential);
        let verified = civic_credentials::sdjwt::verify(&sd_jwt, &keys, now).unwrap();
        assert_eq!(verified.items, vec!["household_size".to_owned()]);
        assert_eq!(
            verified.claims["household_size"],
            expected["items"]["household_size"]
        );
        indices.insert(package.status_index);
    }
    assert_eq!(indices.len(), 12, "each consent its own credential");
    let key = hub.keys().signing_key().verifying_key();
    civic_hub::ledger::verify_ledger(&hub.store, &key, &[], |_| {})
        .await
        .unwrap();

    // The document withdrawn too: nothing the citizen sent is left in
    // the clear — not in the database's files or write-ahead log, not in
    // what the nodes keep of the exchange (their own records aside), not
    // in the logs. (It never was: it reached the hub encrypted to the
    // agency, and sealed under the consent's key, now destroyed.)
    hub.withdraw_transfer(&citizen, d.id).await.unwrap();
    let sent = record(
        dir.path(),
        "node-mois",
        &subject,
        "resident-registration-abstract",
    );
    let values: Vec<String> = ["resident_number", "address_history"]
        .iter()
        .map(|k| sent["items"][k].as_str().unwrap().to_owned())
        .collect();
    let mut kept = common::files_under(&dir.path().join("nodes"), &|p| {
        p.components().any(|c| c.as_os_str() == "exchange")
    });
    if let Some(bytes) = common::database_bytes(&db).await {
        kept.push(("the database's files".into(), bytes));
    }
    if let Some(wal) = common::postgres_wal_bytes(&db).await {
        kept.push(("PostgreSQL's write-ahead log".into(), wal));
    }
    let logged = logs.lock().unwrap().clone();
    assert!(!logged.is_empty(), "the scan reads what was logged");
    kept.push(("the logs".into(), logged));
    for (what, bytes) in &kept {
        if let Some(v) = common::found_in(bytes, &values) {
            panic!("{v} in the clear in {what} after the withdrawal");
        }
    }
    for n in nodes {
        n.running.shutdown().await;
    }
}

/// A webhook receiver on loopback: each request's headers and body.
async fn webhook_receiver() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(Vec<(String, String)>, String)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        continue;
                    };
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .collect();
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    if body.len() < len {
                        continue;
                    }
                    let _ = tx.send((headers, body[..len].to_owned()));
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, rx)
}
