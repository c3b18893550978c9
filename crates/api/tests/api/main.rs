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

mod citydata;
#[path = "../common/mod.rs"]
mod common;
mod investigation;
mod mydata;

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

civic_store::backend_tests!(
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
    civic_api::migrate_applications(&db.store).await.unwrap();
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
