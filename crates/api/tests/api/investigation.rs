//! The investigation's and the audit's routes: a node's enrolment, a
//! case's feed, the map, the web application, the auditors' verification.

use super::*;

async fn a_node_enrols_once_with_its_token_and_then_talks_mutual_tls(db: TestDb) {
    use civic_exchange::trust::{client_config, new_request, server_config};
    use std::sync::Arc;
    let app = spawn_app(db).await;
    let (admin, secret) = app
        .user("telco-admin", "administrator", "telco", true)
        .await;
    let token = app.token(&admin.username, secret.as_deref()).await;
    let issued: Value = app
        .request(
            Method::POST,
            &format!("/api/v1/institutions/{}/node-tokens", admin.institution),
            Some(&token),
        )
        .json(&json!({"name": "node-skt", "valid_hours": 2}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let one_time = issued["token"].as_str().unwrap().to_owned();
    assert!(one_time.starts_with("cdh_e_"));

    let (node_key_pem, csr) = new_request("node-skt").unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let body = |token: &str, name: &str| json!({"token": token, "name": name, "csr": csr, "signing_key": data_encoding::HEXLOWER.encode(signing.verifying_key().as_bytes())});
    let enrol = |b: Value| {
        app.client
            .post(format!("{}/api/v1/nodes/enrol", app.url))
            .json(&b)
            .send()
    };
    // A token enrols only its node, and only once.
    assert_problem(
        enrol(body(&one_time, "node-kt")).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let r = enrol(body(&one_time, "node-skt")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let enrolled: Value = r.json().await.unwrap();
    assert_eq!(enrolled["hub_name"], "hub.civic");
    assert_eq!(
        enrolled["hub_key"].as_str().unwrap(),
        app.hub.public_key_hex()
    );
    assert_problem(
        enrol(body(&one_time, "node-skt")).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(
        enrol(body("cdh_e_forged", "node-skt")).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let mut bad = body(&one_time, "node-skt");
    bad["csr"] = json!("not a csr");
    assert_problem(enrol(bad).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    // The attempts are on the ledger: the token, the enrolment, the refusals.
    let records: Vec<_> = futures_util::TryStreamExt::try_collect::<Vec<_>>(
        app.hub.store.stream_audit_records(u64::MAX),
    )
    .await
    .unwrap();
    assert!(records.iter().any(|r| r.entry.action == "admin.node.token"));
    assert!(records
        .iter()
        .any(|r| r.entry.action == "node.enrol" && r.entry.outcome == Outcome::Allowed));
    assert!(
        records
            .iter()
            .filter(|r| r.entry.action == "node.enrol" && r.entry.outcome == Outcome::Failed)
            .count()
            >= 2
    );

    // The certificate works: the hub (certified by its own CA) and the node
    // complete a mutual-TLS handshake.
    let (hub_key_pem, hub_csr) = new_request("hub.civic").unwrap();
    let hub_cert = app
        .hub
        .keys()
        .ca()
        .sign_request(&hub_csr, "hub.civic")
        .unwrap();
    let ca = enrolled["ca"].as_str().unwrap();
    let server = server_config(&hub_cert.cert_pem, &hub_key_pem, ca).unwrap();
    let client =
        client_config(enrolled["certificate"].as_str().unwrap(), &node_key_pem, ca).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = tokio_rustls::TlsAcceptor::from(Arc::new(server))
            .accept(tcp)
            .await
            .unwrap();
        tls.get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(civic_exchange::trust::peer_name)
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect("hub.civic".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(accept.await.unwrap().as_deref(), Some("node-skt"));
}

/// A case's live feed streams its changes as server-sent events, to those
/// who work on it; a case registered as JSON, bad input refused whole.
async fn a_case_feed_streams_its_changes_and_cases_are_registered_as_json(db: TestDb) {
    let app = spawn_app(db).await;
    let operator = Ctx::local_operator();
    let response = app
        .investigation()
        .open_response(&operator, "Feed", "IDCPA art. 76-2", None)
        .await
        .unwrap();
    let (_, secret) = app
        .user("inv-seoul", "investigator:seoul", "health_authority", true)
        .await;
    let inv = app.token("inv-seoul", secret.as_deref()).await;
    let (_, secret) = app.user("appr", "approver", "health_authority", true).await;
    let appr = app.token("appr", secret.as_deref()).await;
    let path = format!("/api/v1/responses/{}/cases", response.id);
    // One bad case refuses the whole list, and nothing is kept.
    let bad = app
        .request(Method::POST, &path, Some(&inv))
        .json(&json!([
            {"number": "f-1", "region": "seoul-mapo", "onset_date": "2020-03-01", "confirmed_date": "2020-03-02"},
            {"number": "f-2", "region": "seoul-mapo", "onset_date": "2020-03-05", "confirmed_date": "2020-03-02"}
        ]))
        .send()
        .await
        .unwrap();
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let listed: Value = app.get_json(&path, Some(&inv)).await;
    assert_eq!(listed, json!([]));
    let created: Value = app
        .request(Method::POST, &path, Some(&inv))
        .json(&json!([{"number": "f-1", "region": "seoul-mapo", "onset_date": "2020-03-01", "confirmed_date": "2020-03-02",
                        "subject": {"phones": [["skt", 12345678901u64]], "home": [37.55, 126.9]}}]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let case = created[0]["id"].as_i64().unwrap();
    assert_eq!(created[0]["onset"], "2020-03-01");
    assert_eq!(created[0]["onset_estimated"], false);
    // Published registers give the confirmation date only: the onset is
    // estimated (the response's onset_to_confirmation_days, 3) and says so.
    let estimated: Value = app
        .request(Method::POST, &path, Some(&inv))
        .json(&json!([{"number": "f-2", "region": "seoul-mapo", "confirmed_date": "2020-03-05"},
                      {"number": "f-3", "region": "seoul-mapo", "onset_date": "", "confirmed_date": "2020-03-06"}]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(estimated[0]["onset"], "2020-03-02");
    assert_eq!(estimated[1]["onset"], "2020-03-03");
    assert_eq!(estimated[1]["onset_estimated"], true);
    let register: Value = app
        .request(
            Method::POST,
            &format!("/api/v1/responses/{}/case-register", response.id),
            Some(&inv),
        )
        .header("content-type", "text/csv")
        .body("case_id,region,onset_date,confirmed_date\nf-4,seoul-mapo,,2020-03-09\n")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&register[0]["onset"], &register[0]["onset_estimated"]),
        (&json!("2020-03-06"), &json!(true))
    );

    let feed_path = format!("/api/v1/cases/{case}/feed");
    let denied = app
        .request(Method::GET, &feed_path, Some(&appr))
        .send()
        .await
        .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
    let mut feed = app
        .request(Method::GET, &feed_path, Some(&inv))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), StatusCode::OK);
    assert!(feed.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // Recording the interview rebuilds the route and the cluster: the
    // feed says so.
    let put = app
        .request(Method::PUT, &format!("/api/v1/cases/{case}/interview"), Some(&inv))
        .json(&json!([{"date": "2020-03-01", "lat": 37.55, "lon": 126.91, "start_time": "10:00", "end_time": "12:00", "place": "Cafe Mapo 1"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let mut seen = String::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(chunk) = feed.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: cluster") {
                return;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no cluster event: {seen:?}");
    // A bad interview row is refused, naming the row.
    let bad = app
        .request(
            Method::PUT,
            &format!("/api/v1/cases/{case}/interview"),
            Some(&inv),
        )
        .json(&json!([{"date": "2020-13-01", "lat": 37.55, "lon": 126.91}]))
        .send()
        .await
        .unwrap();
    let body = assert_problem(bad, StatusCode::BAD_REQUEST).await;
    assert!(body["detail"].as_str().unwrap().contains("row 1"), "{body}");

    // Signing out ends the feed at once, with nothing happening to the
    // case (not at the feed's next periodic check, half a minute on).
    let out = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&inv))
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success());
    let mut after = String::new();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(chunk) = feed.chunk().await.unwrap() {
            after.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(ended.is_ok(), "the feed went on after sign-out");
    assert!(!after.contains("event:"), "{after:?}");
}

async fn the_web_application_is_served_with_a_strict_policy(db: TestDb) {
    let app = spawn_app(db).await;
    let page = app.request(Method::GET, "/", None).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<script type="module" src="/app/app.js">"#),
        "{html}"
    );
    for (path, mime) in [
        ("/app/app.js", "text/javascript"),
        ("/app/style.css", "text/css"),
        ("/app/vendor/leaflet/leaflet.js", "text/javascript"),
        ("/app/vendor/leaflet/images/layers.png", "image/png"),
    ] {
        let r = app.request(Method::GET, path, None).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(mime),
            "{path}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    }
    let missing = app
        .request(Method::GET, "/app/../Cargo.toml", None)
        .send()
        .await
        .unwrap();
    assert_ne!(missing.status(), StatusCode::OK);
    let missing = app
        .request(Method::GET, "/app/secret.js", None)
        .send()
        .await
        .unwrap();
    assert_problem(missing, StatusCode::NOT_FOUND).await;
}

async fn the_map_is_the_platforms_own_and_only_administrators_replace_it(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, admin_secret) = app
        .user("geo-admin", "administrator", "hub_operator", true)
        .await;
    let admin = app.token("geo-admin", admin_secret.as_deref()).await;
    let (_, inv_secret) = app
        .user("geo-inv", "investigator:seoul", "health_authority", true)
        .await;
    let inv = app.token("geo-inv", inv_secret.as_deref()).await;
    let (_, _) = app
        .user("geo-analyst", "analyst", "health_authority", false)
        .await;
    let analyst = app.token("geo-analyst", None).await;

    // Nothing uploaded yet: an empty map, and no tile server.
    let empty: Value = app.get_json("/api/v1/geography", Some(&analyst)).await;
    assert_eq!(empty["features"], json!([]));
    assert_eq!(empty["tile_url"], Value::Null);

    let map = json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"region": "seoul-jongno", "name": "Jongno"},
         "geometry": {"type": "Polygon", "coordinates": [[[126.96, 37.56], [127.01, 37.56], [127.01, 37.60], [126.96, 37.56]]]}},
        {"type": "Feature", "properties": {"name": "City Hall"},
         "geometry": {"type": "Point", "coordinates": [126.978, 37.566]}},
    ]});
    let denied = app
        .request(Method::PUT, "/api/v1/geography", Some(&inv))
        .json(&map)
        .send()
        .await
        .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
    let put = app
        .request(Method::PUT, "/api/v1/geography", Some(&admin))
        .json(&map)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    assert_eq!(put.json::<Value>().await.unwrap()["features"], 2);

    // A wrong upload is refused whole and changes nothing.
    let before = app.ledger_size().await;
    let bad = app
        .request(Method::PUT, "/api/v1/geography", Some(&admin))
        .json(&json!({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [500.0, 1.0]}}]}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(bad, StatusCode::BAD_REQUEST).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("feature 0"),
        "{problem}"
    );
    let not_json = app
        .request(Method::PUT, "/api/v1/geography", Some(&admin))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_problem(not_json, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.ledger_size().await, before);

    let got: Value = app.get_json("/api/v1/geography", Some(&inv)).await;
    let layers: Vec<&str> = got["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["properties"]["layer"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["region", "venue"]);
    assert_eq!(got["features"][0]["properties"]["region"], "seoul-jongno");
    let anonymous = app
        .request(Method::GET, "/api/v1/geography", None)
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED).await;
}

async fn auditors_verify_the_ledger_and_see_who_looks_up_far_more_cases(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, aud_secret) = app
        .user("watcher", "security_auditor", "hub_operator", true)
        .await;
    let auditor = app.token("watcher", aud_secret.as_deref()).await;
    let (_, a_secret) = app
        .user("curious", "investigator:seoul", "health_authority", true)
        .await;
    let curious = app.token("curious", a_secret.as_deref()).await;
    let (_, b_secret) = app
        .user("dutiful", "investigator:seoul", "health_authority", true)
        .await;
    let dutiful = app.token("dutiful", b_secret.as_deref()).await;

    // The second factor is enrolled by QR code: the enrolment carries one.
    app.user("fresh", "analyst", "health_authority", false)
        .await;
    let fresh = app.token("fresh", None).await;
    let enrol: Value = app
        .request(Method::POST, "/api/v1/auth/totp/enrol", Some(&fresh))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        enrol["qr_svg"].as_str().unwrap().contains("<svg"),
        "{enrol}"
    );

    let status: Value = app
        .get_json("/api/v1/audit/verification", Some(&auditor))
        .await;
    assert_eq!(status["last_verification"], Value::Null);
    assert!(status["tree_head"]["tree_size"].as_u64().unwrap() > 0);
    let check: Value = app
        .request(Method::POST, "/api/v1/audit/verification", Some(&auditor))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["verified"], true, "{check}");
    let status: Value = app
        .get_json("/api/v1/audit/verification", Some(&auditor))
        .await;
    assert_eq!(status["last_verification"]["verified"], true);
    let denied = app
        .request(Method::POST, "/api/v1/audit/verification", Some(&curious))
        .send()
        .await
        .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;

    // One investigator reads twelve cases, the other one.
    let operator = Ctx::local_operator();
    let response = app
        .investigation()
        .open_response(&operator, "Patterns", "IDCPA art. 76-2", None)
        .await
        .unwrap();
    let cases: Vec<_> = (0..12)
        .map(|i| civic_eiss::formats::RegisteredCase {
            number: format!("p-{i}"),
            region: "seoul-jongno".into(),
            onset: Some(time::macros::date!(2020 - 03 - 01)),
            confirmed: time::macros::date!(2020 - 03 - 02),
            subject: Default::default(),
        })
        .collect();
    let cases = app
        .investigation()
        .register_cases(&operator, response.id, cases)
        .await
        .unwrap();
    for (i, case) in cases.iter().enumerate() {
        let token = if i == 0 { &dutiful } else { &curious };
        let r = app
            .request(
                Method::GET,
                &format!("/api/v1/cases/{}", case.id),
                Some(token),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let read = |token: &str| {
        app.request(
            Method::GET,
            &format!("/api/v1/cases/{}", cases[0].id),
            Some(token),
        )
        .send()
    };
    assert_eq!(read(&curious).await.unwrap().status(), StatusCode::OK);
    // A read of the whole response counts apart.
    let list = app
        .request(
            Method::GET,
            &format!("/api/v1/responses/{}/cases", response.id),
            Some(&curious),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let patterns: Value = app
        .get_json("/api/v1/audit/access-patterns", Some(&auditor))
        .await;
    let actors = patterns["actors"].as_array().unwrap();
    let of = |name: &str| {
        actors
            .iter()
            .find(|a| a["actor_name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(of("curious")["cases"], 12, "{patterns}");
    assert_eq!(of("curious")["lookups"], 12);
    assert_eq!(of("curious")["unusual"], true);
    assert_eq!(of("curious")["bulk_reads"], 1);
    assert_eq!(of("curious")["peer_median"], 1.0);
    assert_eq!(of("dutiful")["bulk_reads"], 0);
    assert_eq!(of("dutiful")["cases"], 1);
    assert_eq!(of("dutiful")["unusual"], false);
    // An empty period, and a period that ends before it starts.
    let old: Value = app
        .get_json(
            "/api/v1/audit/access-patterns?from=2001-01-01T00:00:00Z&until=2001-01-02T00:00:00Z",
            Some(&auditor),
        )
        .await;
    assert_eq!(old["actors"], json!([]));
    let backwards = app
        .request(
            Method::GET,
            "/api/v1/audit/access-patterns?from=2001-01-02T00:00:00Z&until=2001-01-01T00:00:00Z",
            Some(&auditor),
        )
        .send()
        .await
        .unwrap();
    assert_problem(backwards, StatusCode::BAD_REQUEST).await;
}

civic_store::backend_tests!(
    a_node_enrols_once_with_its_token_and_then_talks_mutual_tls,
    a_case_feed_streams_its_changes_and_cases_are_registered_as_json,
    the_web_application_is_served_with_a_strict_policy,
    the_map_is_the_platforms_own_and_only_administrators_replace_it,
    auditors_verify_the_ledger_and_see_who_looks_up_far_more_cases,
);
