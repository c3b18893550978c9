//! What the API tests share: the server started for real on
//! 127.0.0.1:0 over a fresh database, users of every duty, the route table.
#![allow(dead_code)]

use civic_core::audit::Outcome;
use civic_core::identity::{DutyKind, InstitutionId};
use civic_hub::admin::UserRequest;
use civic_hub::{secrets, Config, Ctx, Hub, HubKeys};
use civic_store::testing::TestDb;
use civic_store::{AuditStore, UserStore};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub hub: Hub,
    pub running: Option<civic_api::Running>,
    pub _db: TestDb,
    pub _data_dir: tempfile::TempDir,
}

impl TestApp {
    /// Public MyData on the app's hub (for setting up what a test reads).
    #[allow(dead_code)]
    pub fn mydata(&self) -> civic_mydata::MyData {
        civic_mydata::MyData::new(self.hub.clone())
    }

    /// The investigation on the app's hub (for setting up what a test
    /// reads).
    #[allow(dead_code)]
    pub fn investigation(&self) -> civic_investigation::Investigation {
        civic_investigation::Investigation::new(self.hub.clone())
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

pub async fn spawn_app(db: TestDb) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

pub async fn spawn_app_with(db: TestDb, configure: impl FnOnce(&mut Config)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        max_body_bytes: 64 * 1024,
        data_dir: data_dir.path().to_owned(),
        ..Config::default()
    };
    configure(&mut config);
    civic_api::migrate_applications(&db.store).await.unwrap();
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), config);
    let running = civic_api::serve(hub.clone(), "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    TestApp {
        url: running.url(),
        client: reqwest::Client::new(),
        hub,
        running: Some(running),
        _db: db,
        _data_dir: data_dir,
    }
}

pub fn institution_kind_for(duty: DutyKind) -> &'static str {
    match duty {
        DutyKind::Investigator | DutyKind::Approver | DutyKind::Analyst => "health_authority",
        DutyKind::PoliceLocationOfficer => "police",
        DutyKind::CityDataOperator => "local_government",
        DutyKind::MydataOperator => "ministry",
        DutyKind::SecurityAuditor
        | DutyKind::SupportAgent
        | DutyKind::Administrator
        | DutyKind::Citizen => "hub_operator",
    }
}

impl TestApp {
    pub async fn institution(&self, kind: &str) -> InstitutionId {
        let ctx = Ctx::local_operator();
        let existing = self.hub.list_institutions(&ctx).await.unwrap();
        if let Some(i) = existing.iter().find(|i| i.kind.as_str() == kind) {
            return i.id;
        }
        self.hub
            .create_institution(&ctx, &format!("A {kind}"), kind)
            .await
            .unwrap()
            .id
    }

    /// Creates a user; with `totp`, enrols a second factor and returns its secret.
    pub async fn user(
        &self,
        username: &str,
        duty: &str,
        kind: &str,
        totp: bool,
    ) -> (civic_store::User, Option<Vec<u8>>) {
        let ctx = Ctx::local_operator();
        let inst = self.institution(kind).await;
        let user = self
            .hub
            .create_user(
                &ctx,
                inst,
                UserRequest {
                    username: username.into(),
                    display_name: "Test".into(),
                    password: Some(PASSWORD.into()),
                    duties: vec![duty.into()],
                    machine_client: false,
                },
            )
            .await
            .unwrap();
        if !totp {
            return (user, None);
        }
        let secret = secrets::new_totp_secret();
        let sealed = self.hub.keys().seal(&format!("totp:{}", user.id), &secret);
        let entry = ctx.entry("auth.totp.enrol", "user", Outcome::Allowed);
        self.hub
            .store
            .set_totp_pending(user.id, sealed, entry.clone())
            .await
            .unwrap();
        self.hub
            .store
            .enable_totp(user.id, 0, None, entry)
            .await
            .unwrap();
        (user, Some(secret.to_vec()))
    }

    /// A machine-client account (API tokens only).
    pub async fn machine(&self, username: &str, duty: &str, kind: &str) -> civic_store::User {
        let inst = self.institution(kind).await;
        let request = UserRequest {
            username: username.into(),
            display_name: "Machine".into(),
            password: None,
            duties: vec![duty.into()],
            machine_client: true,
        };
        self.hub
            .create_user(&Ctx::local_operator(), inst, request)
            .await
            .unwrap()
    }

    pub async fn login(&self, username: &str, secret: Option<&[u8]>) -> reqwest::Response {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let body = json!({"username": username, "password": PASSWORD, "totp": secret.map(|s| secrets::totp_code(s, now))});
        self.client
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn token(&self, username: &str, secret: Option<&[u8]>) -> String {
        let r = self.login(username, secret).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, format!("{}{}", self.url, path));
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// A GET answered with JSON.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> Value {
        self.request(Method::GET, path, token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn ledger_size(&self) -> u64 {
        self.hub.store.ledger_head().await.unwrap().size()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            drop(tokio::spawn(r.shutdown()));
        }
    }
}

pub async fn assert_problem(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status, "{:?}", r.url().path());
    let ct = r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(body["request_id"].is_string());
    body
}

/// A row of the route table (`civic_core::policy::ROUTE_TABLE`).
pub struct Route {
    pub method: String,
    pub path: String,
    /// None for a public route; else whether a person holding each duty
    /// (in `DutyKind::ALL`'s order) with a second factor may call it.
    pub duties: Option<Vec<bool>>,
    /// Whether a machine client's token may call it (holding a duty whose
    /// column allows it and that a machine client may hold).
    pub machine: bool,
}

pub fn table() -> Vec<Route> {
    civic_core::policy::ROUTE_TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let session = cols[2] == "session";
            if session {
                // Every duty, then the machine client's column.
                assert_eq!(cols.len(), 3 + DutyKind::ALL.len() + 1, "{l}");
            }
            let allow = |c: &str| c == "allow";
            Route {
                method: cols[0].to_owned(),
                path: cols[1].to_owned(),
                duties: session.then(|| {
                    cols[3..3 + DutyKind::ALL.len()]
                        .iter()
                        .map(|c| allow(c))
                        .collect()
                }),
                machine: session && allow(cols[3 + DutyKind::ALL.len()]),
            }
        })
        .collect()
}
