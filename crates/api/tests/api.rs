//! The API, started for real on 127.0.0.1:0 over a fresh database, on
//! SQLite and on PostgreSQL.

use civic_core::audit::Outcome;
use civic_hub::admin::UserRequest;
use civic_hub::{secrets, Config, Ctx, Hub, HubKeys};
use civic_store::testing::TestDb;
use civic_store::{AuditStore, UserStore};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

mod common;
use common::*;

async fn sign_in_enrols_and_uses_a_second_factor(db: TestDb) {
    let app = spawn_app(db).await;
    app.user("kim", "approver", "health_authority", false).await;
    // First sign-in without a factor: the session may only enrol one.
    let r = app.login("kim", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["must_enrol_second_factor"], true);
    let token = body["token"].as_str().unwrap().to_owned();
    let denied = app
        .request(Method::GET, "/api/v1/institutions", Some(&token))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(denied, StatusCode::FORBIDDEN).await;
    assert_eq!(problem["second_factor_required"], true);

    let enrol: Value = app
        .request(Method::POST, "/api/v1/auth/totp/enrol", Some(&token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(enrol["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/"));
    let secret = secrets::from_base32(enrol["secret"].as_str().unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let r = app
        .request(Method::POST, "/api/v1/auth/totp/confirm", Some(&token))
        .json(&json!({"code": secrets::totp_code(&secret, now - 30)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let me: Value = app.get_json("/api/v1/me", Some(&token)).await;
    assert_eq!(me["authenticated_with"], "password_and_totp");
    assert_eq!(
        app.request(Method::GET, "/api/v1/institutions", Some(&token))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Next sign-in needs the code; without it the answer is the same as
    // for a wrong password, so it confirms nothing to a guesser.
    let problem = assert_problem(app.login("kim", None).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        problem["type"],
        "https://civic-data-hub.example/problems/invalid-credentials"
    );
    let token2 = app.token("kim", Some(&secret)).await;
    assert_eq!(
        app.request(Method::POST, "/api/v1/auth/logout", Some(&token2))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(
        app.request(Method::GET, "/api/v1/me", Some(&token2))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Every attempt is in the ledger.
    let records: Vec<_> = futures_util::TryStreamExt::try_collect::<Vec<_>>(
        app.hub.store.stream_audit_records(u64::MAX),
    )
    .await
    .unwrap();
    let logins = records
        .iter()
        .filter(|r| r.entry.action == "auth.login")
        .count();
    assert_eq!(logins, 3);
    assert!(records
        .iter()
        .any(|r| r.entry.action == "auth.login" && r.entry.outcome == Outcome::Failed));
    assert!(records.iter().any(|r| r.entry.action == "auth.logout"));
}

async fn failed_sign_ins_slow_every_name_alike_and_never_keep_the_owner_out(db: TestDb) {
    let app = spawn_app_with(db, |c| c.sign_in_first_wait_seconds = 60).await;
    let (user, _) = app.user("lee", "analyst", "ministry", false).await;
    let r = app.login("lee", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let device = r.json::<Value>().await.unwrap()["device"]
        .as_str()
        .unwrap()
        .to_owned();
    let try_as = |name: &'static str, password: &'static str, device: Option<String>| {
        app.client
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({"username": name, "password": password, "device": device}))
            .send()
    };
    // A stranger's guesses under a real name and under a name no one has
    // get the same answers, the same problem and the same wait: no one
    // learns which names exist.
    let mut seen = Vec::new();
    for name in ["lee", "harbor-summit-harbor-2890"] {
        let mut answers = Vec::new();
        for _ in 0..6 {
            let r = try_as(name, "wrong password", None).await.unwrap();
            let status = r.status();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let problem = assert_problem(r, status).await;
            answers.push((status, problem["type"].clone(), retry.is_some()));
        }
        seen.push(answers);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0][4].0, StatusCode::UNAUTHORIZED);
    assert_eq!(seen[0][5].0, StatusCode::TOO_MANY_REQUESTS);
    // The stranger waits even with the right password…
    assert_problem(app.login("lee", None).await, StatusCode::TOO_MANY_REQUESTS).await;
    // …but the owner's browser, with its device token, signs in.
    let r = try_as("lee", PASSWORD, Some(device.clone())).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A device token of hers does nothing for another name.
    let r = try_as("harbor-summit-harbor-2890", "wrong password", Some(device))
        .await
        .unwrap();
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS).await;
    // An administrator ends the wait under her name.
    app.hub
        .unlock_user(&Ctx::local_operator(), user.id)
        .await
        .unwrap();
    assert_eq!(app.login("lee", None).await.status(), StatusCode::OK);
    // The unknown name reaches the ledger only as a pseudonym.
    let records: Vec<_> = futures_util::TryStreamExt::try_collect::<Vec<_>>(
        app.hub.store.stream_audit_records(u64::MAX),
    )
    .await
    .unwrap();
    let names: BTreeSet<_> = records
        .iter()
        .filter(|r| r.entry.action == "auth.login")
        .filter_map(|r| r.entry.actor_name.clone())
        .filter(|n| n.starts_with("unknown:"))
        .collect();
    assert_eq!(names.len(), 1, "one pseudonym for one name: {names:?}");
    assert!(!records
        .iter()
        .any(|r| format!("{:?}", r.entry).contains("harbor-summit")));
}

async fn bad_input_gets_a_problem_and_changes_nothing(db: TestDb) {
    let app = spawn_app(db).await;
    let (admin, secret) = app
        .user("root", "administrator", "hub_operator", true)
        .await;
    let token = app.token("root", secret.as_deref()).await;
    let (auditor, secret) = app
        .user("aud", "security_auditor", "hub_operator", true)
        .await;
    let auditor_token = app.token(&auditor.username, secret.as_deref()).await;
    let before = app.ledger_size().await;
    let inst = admin.institution;
    let post = |path: &str| app.request(Method::POST, path, Some(&token));

    // Malformed JSON.
    assert_problem(
        post("/api/v1/institutions")
            .header("content-type", "application/json")
            .body("{\"name\":")
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Not JSON at all.
    assert_problem(
        post("/api/v1/institutions")
            .body("name=x")
            .send()
            .await
            .unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    // Oversized.
    let huge = json!({"name": "x".repeat(100 * 1024), "kind": "ministry"});
    assert_problem(
        post("/api/v1/institutions")
            .json(&huge)
            .send()
            .await
            .unwrap(),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    // Unknown field, wrong type, missing field.
    assert_problem(
        post("/api/v1/institutions")
            .json(&json!({"name": "A", "kind": "ministry", "x": 1}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        post("/api/v1/institutions")
            .json(&json!({"name": 5, "kind": "ministry"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        post("/api/v1/institutions")
            .json(&json!({"kind": "ministry"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // Values out of the domain.
    assert_problem(
        post("/api/v1/institutions")
            .json(&json!({"name": "A", "kind": "bakery"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        post("/api/v1/institutions")
            .json(&json!({"name": "  ", "kind": "ministry"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        post("/api/v1/institutions")
            .json(&json!({"name": "a\u{7}b", "kind": "ministry"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let users = format!("/api/v1/institutions/{inst}/users");
    for body in [
        json!({"username": "1bad", "display_name": "X", "password": PASSWORD}),
        json!({"username": "good", "display_name": "X", "password": "short"}),
        json!({"username": "good", "display_name": "X", "password": PASSWORD, "duties": ["janitor"]}),
        json!({"username": "good", "display_name": "X", "password": PASSWORD, "duties": ["investigator"]}),
        // A police duty at the hub operator.
        json!({"username": "good", "display_name": "X", "password": PASSWORD, "duties": ["police_location_officer"]}),
    ] {
        assert_problem(
            post(&users).json(&body).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    assert_problem(
        post(&users)
            .json(&json!({"username": "nopass", "display_name": "X"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(post(&users).json(&json!({"username": "bot", "display_name": "X", "password": PASSWORD, "machine_client": true})).send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    // Bad path and query parameters.
    assert_problem(
        app.request(Method::PUT, "/api/v1/users/abc/duties", Some(&token))
            .json(&json!({"duties": []}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        app.request(Method::PUT, "/api/v1/users/999999/duties", Some(&token))
            .json(&json!({"duties": []}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let search = |q: &str| {
        app.request(
            Method::GET,
            &format!("/api/v1/audit/records?{q}"),
            Some(&auditor_token),
        )
    };
    assert_problem(
        search("limit=5000").send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        search("limit=-1").send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        search("from=yesterday").send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_problem(
        search("colour=blue").send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        app.request(
            Method::GET,
            "/api/v1/audit/consistency?first=5&second=1",
            None,
        )
        .send()
        .await
        .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    // Unknown routes and methods, missing or bad credentials.
    assert_problem(
        app.request(Method::GET, "/api/v1/nothing", None)
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        app.request(Method::DELETE, "/api/v1/institutions", Some(&token))
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    assert_problem(
        app.request(Method::GET, "/api/v1/me", Some("cdh_s_forged"))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(
        app.request(Method::GET, "/api/v1/me", None)
            .header("authorization", "Basic abc")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_problem(
        app.client
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({"username": "", "password": "x"}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Nothing changed, and the server still serves.
    assert_eq!(app.ledger_size().await, before);
    assert_eq!(
        app.hub
            .list_institutions(&Ctx::local_operator())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.request(Method::GET, "/readyz", None)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // A duplicate is refused by storage: nothing changes, but the attempt
    // is on the ledger.
    assert_problem(
        post(&users)
            .json(&json!({"username": "root", "display_name": "X", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(app.ledger_size().await, before + 1);
}

async fn administrators_are_confined_to_their_institution_and_denials_are_audited(db: TestDb) {
    let app = spawn_app(db).await;
    let (telco_admin, secret) = app
        .user("telco-admin", "administrator", "telco", true)
        .await;
    let token = app.token(&telco_admin.username, secret.as_deref()).await;
    let (other, _) = app
        .user("ministry-user", "analyst", "ministry", false)
        .await;
    let ok = app
        .request(Method::POST, &format!("/api/v1/institutions/{}/users", telco_admin.institution), Some(&token))
        .json(&json!({"username": "node-operator", "display_name": "Node", "password": PASSWORD, "duties": ["mydata_operator"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    let before = app.ledger_size().await;
    let denied = app
        .request(
            Method::PUT,
            &format!("/api/v1/users/{}/duties", other.id),
            Some(&token),
        )
        .json(&json!({"duties": ["administrator"]}))
        .send()
        .await
        .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
    assert_eq!(
        app.hub.store.user(other.id).await.unwrap().unwrap().duties,
        other.duties
    );
    // The refusal itself is on the ledger.
    assert_eq!(app.ledger_size().await, before + 1);
    let records: Vec<_> = futures_util::TryStreamExt::try_collect::<Vec<_>>(
        app.hub.store.stream_audit_records(u64::MAX),
    )
    .await
    .unwrap();
    let last = records.last().unwrap();
    assert_eq!(
        (last.entry.action.as_str(), last.entry.outcome),
        ("admin.user.duties", Outcome::Denied)
    );
    assert_eq!(last.entry.actor, Some(telco_admin.id));

    // No one changes her own duties; only the hub operator makes administrators.
    let own = app
        .request(
            Method::PUT,
            &format!("/api/v1/users/{}/duties", telco_admin.id),
            Some(&token),
        )
        .json(&json!({"duties": ["mydata_operator"]}))
        .send()
        .await
        .unwrap();
    assert_problem(own, StatusCode::FORBIDDEN).await;
    let national = app
        .request(Method::POST, &format!("/api/v1/institutions/{}/users", telco_admin.institution), Some(&token))
        .json(&json!({"username": "spy", "display_name": "Spy", "password": PASSWORD, "duties": ["administrator"]}))
        .send()
        .await
        .unwrap();
    assert_problem(national, StatusCode::FORBIDDEN).await;
    // A user of another institution and one that does not exist get the
    // same answer.
    let missing = app
        .request(Method::POST, "/api/v1/users/999999/unlock", Some(&token))
        .send()
        .await
        .unwrap();
    assert_problem(missing, StatusCode::FORBIDDEN).await;
    let elsewhere = app
        .request(
            Method::POST,
            &format!("/api/v1/users/{}/unlock", other.id),
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert_problem(elsewhere, StatusCode::FORBIDDEN).await;

    // An auditor of a ministry sees only her ministry's records.
    let (ministry_auditor, secret) = app
        .user("ministry-auditor", "security_auditor", "ministry", true)
        .await;
    let auditor_token = app
        .token(&ministry_auditor.username, secret.as_deref())
        .await;
    let page: Value = app
        .get_json("/api/v1/audit/records?limit=1000", Some(&auditor_token))
        .await;
    let records = page["records"].as_array().unwrap();
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|r| r["institution"] == json!(ministry_auditor.institution.0)),
        "{page}"
    );
    let telco_seq = last.seq;
    let hidden = app
        .request(
            Method::GET,
            &format!("/api/v1/audit/records/{telco_seq}"),
            Some(&auditor_token),
        )
        .send()
        .await
        .unwrap();
    assert_problem(hidden, StatusCode::NOT_FOUND).await;
}

async fn api_tokens_authenticate_machine_clients_until_revoked(db: TestDb) {
    let app = spawn_app(db).await;
    let (admin, secret) = app
        .user("root", "administrator", "hub_operator", true)
        .await;
    let token = app.token("root", secret.as_deref()).await;
    // A machine client holds no duty that sees a person's data, whoever
    // makes it: the local operator is told so, an administrator refused.
    let made = app
        .hub
        .create_user(
            &Ctx::local_operator(),
            admin.institution,
            UserRequest {
                username: "auditor-bot".into(),
                display_name: "SIEM".into(),
                password: None,
                duties: vec!["security_auditor".into()],
                machine_client: true,
            },
        )
        .await;
    assert!(
        matches!(made, Err(civic_hub::HubError::Invalid(_))),
        "{made:?}"
    );
    let refused = app
        .request(
            Method::POST,
            &format!("/api/v1/institutions/{}/users", admin.institution),
            Some(&token),
        )
        .json(&json!({"username": "auditor-bot", "display_name": "SIEM", "duties": ["security_auditor"], "machine_client": true}))
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::FORBIDDEN).await;
    let bot = app
        .machine("agency-bot", "mydata_operator", "ministry")
        .await;
    // People get no tokens: they sign in with a second factor.
    let refused = app
        .request(
            Method::POST,
            &format!("/api/v1/institutions/{}/api-tokens", admin.institution),
            Some(&token),
        )
        .json(&json!({"user_id": admin.id.0, "name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    // And machine clients cannot sign in with a password.
    assert_problem(
        app.login("agency-bot", None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let issued: Value = app
        .request(
            Method::POST,
            &format!("/api/v1/institutions/{}/api-tokens", bot.institution),
            Some(&token),
        )
        .json(&json!({"user_id": bot.id.0, "name": "Transfers", "valid_days": 30}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = issued["secret"].as_str().unwrap();
    assert!(secret.starts_with("cdh_t_"));
    let r = app
        .request(Method::GET, "/api/v1/mydata/transfers", Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let listed: Value = app
        .get_json(
            &format!("/api/v1/institutions/{}/api-tokens", bot.institution),
            Some(&token),
        )
        .await;
    assert!(
        listed.to_string().find("cdh_t_").is_none(),
        "secrets are never listed"
    );
    let id = issued["token"]["id"].as_i64().unwrap();
    assert_eq!(
        app.request(
            Method::DELETE,
            &format!("/api/v1/api-tokens/{id}"),
            Some(&token)
        )
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::NO_CONTENT
    );
    assert_problem(
        app.request(Method::GET, "/api/v1/mydata/transfers", Some(secret))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn tree_heads_and_proofs_verify_against_the_public_key(db: TestDb) {
    let app = spawn_app(db).await;
    let (auditor, secret) = app
        .user("aud", "security_auditor", "hub_operator", true)
        .await;
    let token = app.token(&auditor.username, secret.as_deref()).await;
    let first: Value = app.get_json("/api/v1/audit/tree-head", None).await;
    for i in 0..5 {
        app.hub
            .create_institution(&Ctx::local_operator(), &format!("I{i}"), "ministry")
            .await
            .unwrap();
    }
    let second: Value = app.get_json("/api/v1/audit/tree-head", None).await;
    let key_hex = second["public_key"].as_str().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(
        &data_encoding::HEXLOWER
            .decode(key_hex.as_bytes())
            .unwrap()
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let head1: civic_ledger::SignedTreeHead =
        serde_json::from_value(first["tree_head"].clone()).unwrap();
    let head2: civic_ledger::SignedTreeHead =
        serde_json::from_value(second["tree_head"].clone()).unwrap();
    let root1 = head1.verify(&key).unwrap();
    let root2 = head2.verify(&key).unwrap();
    assert!(head2.tree_size > head1.tree_size);

    let c: Value = app
        .get_json(
            &format!(
                "/api/v1/audit/consistency?first={}&second={}",
                head1.tree_size, head2.tree_size
            ),
            None,
        )
        .await;
    let proof: Vec<_> = c["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| civic_ledger::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    civic_ledger::verify_consistency(head1.tree_size, head2.tree_size, &root1, &root2, &proof)
        .unwrap();

    let seq = head2.tree_size - 2;
    let p: Value = app
        .get_json(
            &format!(
                "/api/v1/audit/inclusion?seq={seq}&tree_size={}",
                head2.tree_size
            ),
            Some(&token),
        )
        .await;
    let record: civic_core::audit::AuditRecord = serde_json::from_value(
        app.get_json(&format!("/api/v1/audit/records/{seq}"), Some(&token))
            .await,
    )
    .unwrap();
    let leaf = civic_ledger::record_leaf_hash(&record);
    assert_eq!(
        civic_ledger::to_hex(&leaf),
        p["leaf_hash"].as_str().unwrap()
    );
    let proof: Vec<_> = p["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| civic_ledger::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    civic_ledger::verify_inclusion(&leaf, seq, head2.tree_size, &proof, &root2).unwrap();

    let metrics = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("civic_http_requests_total{method=\"GET\",route=\"/api/v1/audit/tree-head\",status=\"200\"} 2"));
    assert!(
        !metrics.contains(&format!("/api/v1/audit/records/{seq}")),
        "metrics carry route templates, not paths"
    );
}

async fn sign_in_attempts_are_throttled_per_address(db: TestDb) {
    let app = spawn_app_with(db, |c| c.login_attempts_per_minute = 3).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = app
            .client
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({"username": format!("name-{i}"), "password": "whatever"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.headers()["retry-after"], "60");
            assert_problem(r, StatusCode::TOO_MANY_REQUESTS).await;
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the 4th attempt in a minute is refused"
    );
}

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
        .hub
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
        .hub
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
        .hub
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

async fn a_linkage_agreement_is_applied_for_discussed_and_approved_by_its_holder(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, h) = app
        .user("nhis-op", "mydata_operator", "public_institution", true)
        .await;
    let holder = app.token("nhis-op", h.as_deref()).await;
    let (_, a) = app
        .user("keis-op", "mydata_operator", "using_agency", true)
        .await;
    let agency = app.token("keis-op", a.as_deref()).await;
    let (_, i) = app
        .user("md-inv", "investigator:seoul", "health_authority", true)
        .await;
    let outsider = app.token("md-inv", i.as_deref()).await;
    let post = |path: &str, token: &str, body: Value| {
        app.request(Method::POST, path, Some(token))
            .json(&body)
            .send()
    };

    let offer = json!({
        "kind": "dataset", "code": "income-bracket", "title": "Income bracket (소득 분위)",
        "description": "The household's income bracket", "legal_basis": "NHI Act art. 96",
        "items": [
            {"name": "income_bracket", "type": "integer", "description": "1-10", "sensitivity": "sensitive", "legal_basis": "NHI Act", "retention_days": 180},
            {"name": "premium_monthly", "type": "integer", "description": "KRW", "sensitivity": "sensitive", "legal_basis": "NHI Act", "retention_days": 90}
        ]
    });
    let denied = post("/api/v1/mydata/catalogue", &agency, offer.clone())
        .await
        .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
    let published = post("/api/v1/mydata/catalogue", &holder, offer.clone())
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let published: Value = published.json().await.unwrap();
    let again = post("/api/v1/mydata/catalogue", &holder, offer)
        .await
        .unwrap();
    assert_problem(again, StatusCode::CONFLICT).await;

    // Anyone browses and searches the catalogue.
    let found: Value = app
        .get_json("/api/v1/mydata/catalogue?q=INCOME", None)
        .await;
    assert_eq!(found["offers"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["offers"][0]["holder"]["name"], "A public_institution");
    let none: Value = app
        .get_json("/api/v1/mydata/catalogue?q=vehicle", None)
        .await;
    assert_eq!(none["offers"], json!([]));

    let application = |items: Value, retention: i64| {
        json!({"offer_id": published["id"], "service": "Youth job subsidy", "items": items,
               "purpose": "Check the applicant's household income", "legal_basis": "Employment Insurance Act art. 25",
               "retention_days": retention})
    };
    // Items not offered, or kept longer than allowed, are refused.
    for (items, retention) in [
        (json!(["salary"]), 30),
        (json!(["income_bracket", "premium_monthly"]), 120),
    ] {
        let bad = post(
            "/api/v1/mydata/agreements",
            &agency,
            application(items, retention),
        )
        .await
        .unwrap();
        assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let applied = post(
        "/api/v1/mydata/agreements",
        &agency,
        application(json!(["income_bracket"]), 90),
    )
    .await
    .unwrap();
    assert_eq!(applied.status(), StatusCode::CREATED);
    let applied: Value = applied.json().await.unwrap();
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["version"], 1);
    let id = applied["id"].as_i64().unwrap();
    let notes = format!("/api/v1/mydata/agreements/{id}/notes");

    // Only the holder reviews; only the agency answers; outsiders see nothing.
    let r = post(&notes, &agency, json!({"kind": "approve", "text": "fine"}))
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = post(&notes, &outsider, json!({"kind": "comment", "text": "hi"}))
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = post(
        &notes,
        &holder,
        json!({"kind": "question", "text": "Why the premium too?"}),
    )
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "questioned");
    let r = post(&notes, &holder, json!({"kind": "approve", "text": "ok"}))
        .await
        .unwrap();
    assert_problem(r, StatusCode::CONFLICT).await;
    let r = post(&notes, &holder, json!({"kind": "answer", "text": "me"}))
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = post(
        &notes,
        &agency,
        json!({"kind": "answer", "text": "We ask for the bracket only."}),
    )
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "applied");
    let r = post(
        &notes,
        &holder,
        json!({"kind": "approve", "text": "Approved for the subsidy."}),
    )
    .await
    .unwrap();
    let approved: Value = r.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    let kinds: Vec<&str> = approved["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["apply", "question", "answer", "approve"]);

    // A new version supersedes the approved one once it is approved.
    let v2: Value = post(
        "/api/v1/mydata/agreements",
        &agency,
        application(json!(["income_bracket"]), 60),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v2["version"], 2);
    let v2_notes = format!("/api/v1/mydata/agreements/{}/notes", v2["id"]);
    post(&v2_notes, &holder, json!({"kind": "approve", "text": "ok"}))
        .await
        .unwrap();
    let v1: Value = app
        .get_json(&format!("/api/v1/mydata/agreements/{id}"), Some(&agency))
        .await;
    assert_eq!(v1["status"], "superseded");
    // A newer application replaces one still under discussion, which can
    // then no longer be approved over it.
    let v3: Value = post(
        "/api/v1/mydata/agreements",
        &agency,
        application(json!(["income_bracket"]), 30),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let v4: Value = post(
        "/api/v1/mydata/agreements",
        &agency,
        application(json!(["income_bracket"]), 20),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v4["version"], 4);
    let stale = post(
        &format!("/api/v1/mydata/agreements/{}/notes", v3["id"]),
        &holder,
        json!({"kind": "approve", "text": "ok"}),
    )
    .await
    .unwrap();
    let problem = assert_problem(stale, StatusCode::CONFLICT).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("superseded") && !detail.contains("already exists"),
        "{problem}"
    );
    let hidden = app
        .request(
            Method::GET,
            &format!("/api/v1/mydata/agreements/{id}"),
            Some(&outsider),
        )
        .send()
        .await
        .unwrap();
    assert_problem(hidden, StatusCode::FORBIDDEN).await;
    let list: Value = app
        .get_json("/api/v1/mydata/agreements", Some(&holder))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 4);

    // The catalogue counts the agreement in force.
    let catalogue: Value = app.get_json("/api/v1/mydata/catalogue", None).await;
    assert_eq!(
        catalogue["offers"][0]["demand"]["agreements"], 1,
        "{catalogue}"
    );
    assert_eq!(catalogue["stats"]["by_agency"][0]["datasets"], 1);
}

async fn institutions_open_tickets_that_the_support_centre_answers_and_trains_them(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, a) = app
        .user("helpdesk", "support_agent", "hub_operator", true)
        .await;
    let agent = app.token("helpdesk", a.as_deref()).await;
    let (nhis, n) = app
        .user("nhis-staff", "mydata_operator", "public_institution", true)
        .await;
    let staff = app.token("nhis-staff", n.as_deref()).await;
    let (_, o) = app
        .user("other-staff", "mydata_operator", "ministry", true)
        .await;
    let other = app.token("other-staff", o.as_deref()).await;
    let post = |path: String, token: &str, body: Value| {
        app.request(Method::POST, &path, Some(token))
            .json(&body)
            .send()
    };

    let bad = post(
        "/api/v1/support/tickets".into(),
        &staff,
        json!({"kind": "gossip", "subject": "s", "text": "t"}),
    )
    .await
    .unwrap();
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let opened = post(
        "/api/v1/support/tickets".into(),
        &staff,
        json!({"kind": "new_dataset", "subject": "Publish the long-term care grade", "text": "We would like to offer it as a dataset."}),
    )
    .await
    .unwrap();
    assert_eq!(opened.status(), StatusCode::CREATED);
    let ticket: Value = opened.json().await.unwrap();
    assert_eq!(ticket["status"], "open");
    let id = ticket["id"].as_i64().unwrap();

    // Another institution does not see it; the agent does, and answers.
    let hidden = app
        .request(
            Method::GET,
            &format!("/api/v1/support/tickets/{id}"),
            Some(&other),
        )
        .send()
        .await
        .unwrap();
    assert_problem(hidden, StatusCode::NOT_FOUND).await;
    let theirs: Value = app.get_json("/api/v1/support/tickets", Some(&other)).await;
    assert_eq!(theirs, json!([]));
    let answered: Value = post(
        format!("/api/v1/support/tickets/{id}/replies"),
        &agent,
        json!({"text": "Send us its items; we review them in a week."}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answered["status"], "answered");
    let reopened: Value = post(
        format!("/api/v1/support/tickets/{id}/replies"),
        &staff,
        json!({"text": "Items attached."}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(reopened["status"], "open");
    let closed: Value = post(
        format!("/api/v1/support/tickets/{id}/replies"),
        &agent,
        json!({"close": true}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["messages"].as_array().unwrap().len(), 3);
    let late = post(
        format!("/api/v1/support/tickets/{id}/replies"),
        &staff,
        json!({"text": "One more thing"}),
    )
    .await
    .unwrap();
    assert_problem(late, StatusCode::CONFLICT).await;

    // Lists come a page at a time, newest first, each ticket with its
    // messages; another institution's tickets are never on its pages.
    let mut ids = vec![id];
    for (token, subject) in [(&staff, "Second"), (&other, "Theirs"), (&staff, "Third")] {
        let t: Value = post(
            "/api/v1/support/tickets".into(),
            token,
            json!({"kind": "other", "subject": subject, "text": "A question."}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        ids.push(t["id"].as_i64().unwrap());
    }
    let page = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    let first: Value = app
        .get_json("/api/v1/support/tickets?limit=2", Some(&agent))
        .await;
    assert_eq!(page(&first), vec![ids[3], ids[2]]);
    let next: Value = app
        .get_json(
            &format!("/api/v1/support/tickets?limit=2&before={}", ids[2]),
            Some(&agent),
        )
        .await;
    assert_eq!(page(&next), vec![ids[1], ids[0]]);
    assert_eq!(next[1]["messages"].as_array().unwrap().len(), 3);
    assert_eq!(next[1]["institution"]["id"], json!(nhis.institution.0));
    let own: Value = app.get_json("/api/v1/support/tickets", Some(&staff)).await;
    assert_eq!(page(&own), vec![ids[3], ids[1], ids[0]]);
    let own_next: Value = app
        .get_json(
            &format!("/api/v1/support/tickets?before={}", ids[1]),
            Some(&staff),
        )
        .await;
    assert_eq!(page(&own_next), vec![ids[0]]);
    for bad in ["limit=0", "limit=501", "before=x", "before=0", "before=-3"] {
        let answer = app
            .request(
                Method::GET,
                &format!("/api/v1/support/tickets?{bad}"),
                Some(&agent),
            )
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_client_error(),
            "{bad}: {}",
            answer.status()
        );
    }
    let history: Value = app
        .get_json(
            &format!(
                "/api/v1/support/institutions/{}/history",
                nhis.institution.0
            ),
            Some(&agent),
        )
        .await;
    assert_eq!(page(&history["tickets"]), vec![ids[3], ids[1], ids[0]]);

    // Trainings: agents schedule them and record attendees.
    let denied = post(
        "/api/v1/support/trainings".into(),
        &staff,
        json!({"title": "t", "held_on": "2026-12-10", "place": "p"}),
    )
    .await
    .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
    let bad_date = post(
        "/api/v1/support/trainings".into(),
        &agent,
        json!({"title": "t", "held_on": "10/12/2026", "place": "p"}),
    )
    .await
    .unwrap();
    assert_problem(bad_date, StatusCode::UNPROCESSABLE_ENTITY).await;
    let training: Value = post(
        "/api/v1/support/trainings".into(),
        &agent,
        json!({"title": "Publishing datasets", "held_on": "2026-12-10", "place": "Sejong",
               "materials": [{"title": "Slides", "url": "https://support.example.go.kr/slides.pdf"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let tid = training["id"].as_i64().unwrap();
    let with: Value = post(
        format!("/api/v1/support/trainings/{tid}/attendees"),
        &agent,
        json!({"institution_id": nhis.institution.0, "name": "Kim Minji"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(with["attendees"][0]["name"], "Kim Minji");
    let twice = post(
        format!("/api/v1/support/trainings/{tid}/attendees"),
        &agent,
        json!({"institution_id": nhis.institution.0, "name": "Kim Minji"}),
    )
    .await
    .unwrap();
    assert_problem(twice, StatusCode::CONFLICT).await;
    let listed: Value = app
        .get_json("/api/v1/support/trainings", Some(&staff))
        .await;
    assert_eq!(listed[0]["materials"][0]["title"], "Slides");

    // The institution's consulting history: its ticket and its training.
    let history: Value = app
        .get_json(
            &format!(
                "/api/v1/support/institutions/{}/history",
                nhis.institution.0
            ),
            Some(&agent),
        )
        .await;
    assert_eq!(
        history["tickets"].as_array().unwrap().last().unwrap()["id"],
        id
    );
    assert_eq!(history["trainings"][0]["id"], tid);
    let denied = app
        .request(
            Method::GET,
            &format!(
                "/api/v1/support/institutions/{}/history",
                nhis.institution.0
            ),
            Some(&staff),
        )
        .send()
        .await
        .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
}

civic_store::backend_tests!(
    institutions_open_tickets_that_the_support_centre_answers_and_trains_them,
    a_linkage_agreement_is_applied_for_discussed_and_approved_by_its_holder,
    the_web_application_is_served_with_a_strict_policy,
    the_map_is_the_platforms_own_and_only_administrators_replace_it,
    auditors_verify_the_ledger_and_see_who_looks_up_far_more_cases,
    a_case_feed_streams_its_changes_and_cases_are_registered_as_json,
    a_node_enrols_once_with_its_token_and_then_talks_mutual_tls,
    sign_in_attempts_are_throttled_per_address,
    sign_in_enrols_and_uses_a_second_factor,
    failed_sign_ins_slow_every_name_alike_and_never_keep_the_owner_out,
    bad_input_gets_a_problem_and_changes_nothing,
    administrators_are_confined_to_their_institution_and_denials_are_audited,
    api_tokens_authenticate_machine_clients_until_revoked,
    tree_heads_and_proofs_verify_against_the_public_key,
);

#[tokio::test]
async fn the_openapi_document_is_3_1_and_describes_every_route() {
    let doc = serde_json::to_value(civic_api::openapi_document()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["paths"]["/api/v1/auth/login"]["post"]["requestBody"].is_object());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            // A path parameter is in the path; every other one is not.
            for p in op["parameters"].as_array().into_iter().flatten() {
                let in_template = path.contains(&format!("{{{}}}", p["name"].as_str().unwrap()));
                assert_eq!(p["in"] == "path", in_template, "{at}: {p}");
            }
            // Errors are problem documents, as served.
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object().unwrap();
                    assert!(
                        content.keys().all(|k| k == "application/problem+json"),
                        "{at} {status}: {content:?}"
                    );
                }
            }
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                for status in ["401", "403"] {
                    assert!(op["responses"][status].is_object(), "{at} lacks {status}");
                }
            }
            if op["requestBody"]["content"]["application/json"].is_object() {
                for status in ["400", "413", "415", "422"] {
                    assert!(op["responses"][status].is_object(), "{at} lacks {status}");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_api_serves_https_when_configured() {
    use std::sync::Arc;
    let db = civic_store::testing::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let tls = civic_api::tls_config(&cert_path, &key_path).unwrap();
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), Config::default());
    let running = civic_api::serve(hub, "127.0.0.1:0".parse().unwrap(), Some(tls))
        .await
        .unwrap();
    assert!(running.url().starts_with("https://"));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.ok();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"ok\""));
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::get(format!("http://{}/healthz", running.addr)).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    running.shutdown().await.unwrap();
}

/// The API document under review: a change to a route, a schema or a
/// status shows up as a diff of `snapshots/api__openapi.snap`.
#[test]
fn the_openapi_document_is_reviewed() {
    let doc = serde_json::to_value(civic_api::openapi_document()).unwrap();
    insta::assert_json_snapshot!("openapi", doc);
}
