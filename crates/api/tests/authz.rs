//! The authorisation matrix, generated from the router: every route of
//! the OpenAPI document, called anonymously, by a person of every duty
//! (with a second factor, and without one), by a machine client holding
//! every duty, and by callers of another region, institution, agency or
//! citizen with ids that are not theirs. Each answer is checked against the
//! route table (`core/src/policy/routes.tsv`), and no refusal — nor any
//! answer to a caller from elsewhere — may carry a personal value she may
//! not see. On SQLite and PostgreSQL.

mod common;

use civic_core::audit::Outcome;
use civic_core::identity::{DutyKind, InstitutionId, Name, Username};
use civic_core::policy::{AuthMethod, Principal};
use civic_hub::admin::UserRequest;
use civic_hub::{Actor, ClientInfo, Ctx};
use civic_store::testing::TestDb;
use civic_store::{InstitutionStore, NewUser, UserStore};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

civic_store::backend_tests!(every_route_answers_every_caller_as_the_policy_says);

/// Personal values of the Seoul cases, which only Seoul's investigators
/// (and, for numbers and onsets, approvers) may see.
const SEOUL_SECRETS: [&str; 8] = [
    "S-KIM-0001",
    "S-LEE-0002",
    "Kim Minji-Secret",
    "010-5550-0101",
    "Seoul Hidden Chapel",
    "37.571111",
    "126.991111",
    "426922661225",
];
/// Where the Seoul cases met: their routes, which approvers may not see.
const SEOUL_ROUTE: [&str; 3] = ["Seoul Hidden Chapel", "37.571111", "126.991111"];
const CITIZEN_A: &str = "citizenA7781";
const CITIZEN_B: &str = "citizenB9902";

/// A caller as a person of her duty signed in with two factors sees her.
async fn as_person(app: &TestApp, username: &str) -> Ctx {
    let user = app
        .hub
        .store
        .user_by_username(username)
        .await
        .unwrap()
        .unwrap();
    let institution = app
        .hub
        .store
        .institution(user.institution)
        .await
        .unwrap()
        .unwrap();
    Ctx {
        actor: Actor::User {
            principal: Principal {
                user: user.id,
                username: user.username,
                institution: user.institution,
                institution_kind: institution.kind,
                duties: user.duties,
                auth: AuthMethod::PasswordAndTotp,
            },
            session: None,
        },
        client: ClientInfo::default(),
    }
}

/// What the walk calls with, and what it must not see.
struct Fixture {
    response: i64,
    seoul_case: i64,
    /// Citizen A's transfer, asked for by agency A.
    transfer_a: i64,
    agreement: i64,
    /// Users to manage: one at the hub operator, one at KDCA.
    hub_user: i64,
    kdca_user: i64,
    kdca: InstitutionId,
    machine: i64,
    api_token: i64,
}

/// A response with cases of Seoul and Daegu linked in one cluster, and a
/// MyData agreement under which agency A asked citizens A and B for data.
async fn fixture(app: &TestApp) -> Fixture {
    let operator = Ctx::local_operator();
    let response = app
        .investigation()
        .open_response(&operator, "Matrix", "IDCPA art. 76-2", None)
        .await
        .unwrap();
    let case = |number: &str, region: &str, onset, confirmed, subject| {
        civic_eiss::formats::RegisteredCase {
            number: number.into(),
            region: region.into(),
            onset: Some(onset),
            confirmed,
            subject,
        }
    };
    use time::macros::date;
    let secret_subject = civic_eiss::formats::Subject {
        phones: vec![("skt".into(), 426_922_661_225)],
        name: Some("Kim Minji-Secret".into()),
        phone_number: Some("010-5550-0101".into()),
        ..Default::default()
    };
    let cases = app
        .investigation()
        .register_cases(
            &operator,
            response.id,
            vec![
                case(
                    "S-KIM-0001",
                    "seoul",
                    date!(2020 - 03 - 02),
                    date!(2020 - 03 - 04),
                    secret_subject,
                ),
                case(
                    "S-LEE-0002",
                    "seoul-gangbuk",
                    date!(2020 - 03 - 05),
                    date!(2020 - 03 - 07),
                    Default::default(),
                ),
                case(
                    "D-PARK-0003",
                    "daegu",
                    date!(2020 - 03 - 05),
                    date!(2020 - 03 - 08),
                    Default::default(),
                ),
            ],
        )
        .await
        .unwrap();
    // All three were at the chapel on 2 March, the first already ill.
    let mut routes = String::from("case_id,date,lat,lon,start_time,end_time,place\n");
    for number in ["S-KIM-0001", "S-LEE-0002", "D-PARK-0003"] {
        routes.push_str(&format!(
            "{number},2020-03-02,37.571111,126.991111,10:00,12:00,Seoul Hidden Chapel\n"
        ));
    }
    app.investigation()
        .import_routes(&operator, response.id, &routes)
        .await
        .unwrap();
    let clusters = app
        .investigation()
        .clusters(&operator, response.id)
        .await
        .unwrap();
    assert!(
        clusters.iter().any(|c| c.cases.len() == 3),
        "the walk needs a cluster across regions: {clusters:?}"
    );

    // MyData: the ministry holds, agency A asks.
    let ministry = app.institution("ministry").await;
    let agency_a = app
        .hub
        .create_institution(&operator, "Agency A", "using_agency")
        .await
        .unwrap()
        .id;
    let agency_b = app
        .hub
        .create_institution(&operator, "Agency B", "using_agency")
        .await
        .unwrap()
        .id;
    for (name, inst) in [("agency-a", agency_a), ("agency-b", agency_b)] {
        app.hub
            .create_user(
                &operator,
                inst,
                UserRequest {
                    username: name.into(),
                    display_name: "Operator".into(),
                    password: Some(PASSWORD.into()),
                    duties: vec!["mydata_operator".into()],
                    machine_client: false,
                },
            )
            .await
            .unwrap();
    }
    let holder = as_person(app, "u-mydata-operator").await;
    let offer = app
        .mydata()
        .publish_offer(
            &holder,
            serde_json::from_value(json!({
                "kind": "dataset", "code": "income-bracket", "title": "Income bracket",
                "description": "The household's income bracket", "legal_basis": "PIPA art. 35-2",
                "items": [{"name": "income_bracket", "type": "string", "description": "bracket",
                    "sensitivity": "sensitive", "legal_basis": "PIPA", "retention_days": 90}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let agency = as_person(app, "agency-a").await;
    let agreement = app
        .mydata()
        .apply_agreement(
            &agency,
            serde_json::from_value(json!({
                "offer_id": offer.id, "service": "Subsidy", "items": ["income_bracket"],
                "purpose": "Eligibility", "legal_basis": "Employment Insurance Act", "retention_days": 30
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    app.mydata()
        .note_agreement(
            &holder,
            agreement.id,
            serde_json::from_value(json!({"kind": "approve", "text": "Approved."})).unwrap(),
        )
        .await
        .unwrap();
    // The holder's records node, registered (never called: no consent is
    // given in the walk before the citizen's own).
    let (token, _) = app
        .hub
        .issue_enrolment_token(&operator, ministry, "node-mois", None)
        .await
        .unwrap();
    let (_, csr) = civic_exchange::trust::new_request("node-mois").unwrap();
    let signing = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    app.hub
        .enrol_node(
            &token,
            "node-mois",
            &csr,
            &data_encoding::HEXLOWER.encode(signing.verifying_key().as_bytes()),
            &ClientInfo::default(),
        )
        .await
        .unwrap();
    app.hub
        .register_node(
            &operator,
            "node-mois",
            "https://127.0.0.1:9",
            "records",
            "mois",
        )
        .await
        .unwrap();
    let key = serde_json::to_value(civic_credentials::Jwk::x25519(
        &x25519_dalek::PublicKey::from([5u8; 32]),
    ))
    .unwrap();
    let mut transfers = Vec::new();
    for subject in [CITIZEN_A, CITIZEN_B] {
        let t = app
            .mydata()
            .request_transfer(
                &agency,
                serde_json::from_value(json!({
                    "agreement_id": agreement.id, "subject": subject,
                    "items": ["income_bracket"], "recipient_key": key
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        transfers.push(t.id);
    }

    let (hub_user, _) = app
        .user("target-user", "analyst", "hub_operator", false)
        .await;
    let (kdca_user, _) = app
        .user("kdca-user", "analyst", "health_authority", false)
        .await;
    let machine = app
        .machine("machine-client", "analyst", "hub_operator")
        .await;
    let issued = app
        .hub
        .issue_api_token(&operator, machine.institution, machine.id, "uplink", None)
        .await
        .unwrap();
    Fixture {
        response: response.id.0,
        seoul_case: cases[0].id.0,
        transfer_a: transfers[0].0,
        agreement: agreement.id.0,
        hub_user: hub_user.id.0,
        kdca_user: kdca_user.id.0,
        kdca: kdca_user.institution,
        machine: machine.id.0,
        api_token: issued.token.id.0,
    }
}

/// Whose ids a caller is given: hers, or someone else's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ids {
    Own,
    /// The Seoul case for a Daegu investigator.
    OtherRegion,
    /// KDCA's users and tokens for a telco's administrator.
    OtherInstitution,
    /// Citizen A's transfer for citizen B or agency B.
    OtherParty,
}

/// The route's path with ids filled in, its query and a body that passes
/// validation (so a refusal is the policy's, not the parser's).
fn request_for(
    route: &Route,
    f: &Fixture,
    institution: InstitutionId,
    ids: Ids,
    n: usize,
) -> (String, Value) {
    // The Seoul case is a Seoul investigator's own and the Daegu one's
    // other region; citizen A's transfer is his and agency A's, and
    // another party's for citizen B and agency B.
    let (case, transfer) = (f.seoul_case, f.transfer_a);
    let (institution, user) = if ids == Ids::OtherInstitution {
        (f.kdca, f.kdca_user)
    } else {
        (institution, f.hub_user)
    };
    let path = route
        .path
        .replace(
            "/institutions/{id}",
            &format!("/institutions/{institution}"),
        )
        .replace("/users/{id}", &format!("/users/{user}"))
        .replace("/api-tokens/{id}", &format!("/api-tokens/{}", f.api_token))
        .replace("/responses/{id}", &format!("/responses/{}", f.response))
        .replace("/cases/{id}", &format!("/cases/{case}"))
        .replace("/data-requests/{id}", "/data-requests/999999")
        .replace("/contacts/{id}", "/contacts/999999")
        .replace("/nodes/{name}", "/nodes/node-none")
        .replace(
            "/mydata/agreements/{id}",
            &format!("/mydata/agreements/{}", f.agreement),
        )
        .replace(
            "/mydata/transfers/{id}",
            &format!("/mydata/transfers/{transfer}"),
        )
        .replace("/issuers/{name}", "/issuers/node-mois")
        .replace("/support/tickets/{id}", "/support/tickets/999999")
        .replace("/support/trainings/{id}", "/support/trainings/999999")
        .replace("{seq}", "0");
    let query = match route.path.as_str() {
        "/api/v1/audit/inclusion" => "?seq=0",
        "/api/v1/audit/consistency" => "?first=0&second=1",
        _ => "",
    };
    let body = match (route.method.as_str(), route.path.as_str()) {
        ("POST", "/api/v1/institutions") => {
            json!({"name": format!("Institution {n}"), "kind": "ministry"})
        }
        ("POST", "/api/v1/institutions/{id}/users") => {
            json!({"username": format!("new-{n}"), "display_name": "New", "password": PASSWORD, "duties": ["analyst"]})
        }
        ("PUT", "/api/v1/users/{id}/duties") => json!({"duties": ["analyst"]}),
        ("POST", "/api/v1/institutions/{id}/api-tokens") => {
            json!({"user_id": f.machine, "name": "t"})
        }
        ("POST", "/api/v1/auth/totp/confirm") => json!({"code": "123456"}),
        ("POST", "/api/v1/auth/login") => json!({"username": "nobody", "password": "x"}),
        ("POST", "/api/v1/institutions/{id}/node-tokens") => json!({"name": format!("node-{n}")}),
        ("POST", "/api/v1/mydata/catalogue") => json!({
            "kind": "dataset", "code": format!("walk-{n}"), "title": "Walk", "description": "d",
            "legal_basis": "PIPA art. 35-2",
            "items": [{"name": "a", "type": "string", "description": "a", "sensitivity": "normal", "legal_basis": "b", "retention_days": 30}]
        }),
        ("POST", "/api/v1/mydata/agreements") => json!({
            "offer_id": 999999, "service": "s", "items": ["a"], "purpose": "p", "legal_basis": "b", "retention_days": 1
        }),
        ("POST", "/api/v1/mydata/agreements/{id}/notes") => {
            json!({"kind": "comment", "text": "hello"})
        }
        ("POST", "/api/v1/support/tickets") => {
            json!({"kind": "error", "subject": "walk", "text": "the walk"})
        }
        ("POST", "/api/v1/support/tickets/{id}/replies") => json!({"text": "walk"}),
        ("POST", "/api/v1/support/trainings") => {
            json!({"title": "Walk", "held_on": "2026-12-01", "place": "Sejong"})
        }
        ("POST", "/api/v1/support/trainings/{id}/attendees") => {
            json!({"institution_id": institution.0, "name": "Walker"})
        }
        ("POST", "/api/v1/nodes/enrol") => {
            json!({"token": "cdh_e_none", "name": "node-x", "csr": "-", "signing_key": "00".repeat(32)})
        }
        ("PUT", "/api/v1/nodes/{name}/route") => {
            json!({"url": "https://127.0.0.1:1", "kind": "pings", "code": "skt"})
        }
        ("POST", "/api/v1/responses") => {
            json!({"name": format!("Response {n}"), "legal_basis": "IDCPA art. 76-2"})
        }
        ("POST", "/api/v1/responses/{id}/cases") => {
            json!([{"number": format!("c-{n}"), "region": "seoul-gangbuk", "onset_date": "2020-03-01", "confirmed_date": "2020-03-02"}])
        }
        ("PUT", "/api/v1/cases/{id}/assignees") => json!({"users": []}),
        ("PUT", "/api/v1/cases/{id}/interview") => json!([]),
        ("POST", "/api/v1/cases/{id}/data-requests") => {
            json!({"items": ["transit_taps"], "reason": "the route-by-duty walk"})
        }
        ("POST", "/api/v1/data-requests/{id}/decision") => json!({"approve": true}),
        ("PATCH", "/api/v1/contacts/{id}") => json!({"status": "notified"}),
        ("POST", "/api/v1/contacts/notify") => json!({"contacts": [999999]}),
        ("POST", "/api/v1/responses/{id}/close") => json!({}),
        ("POST", "/api/v1/mydata/transfers") => json!({
            "agreement_id": 999999, "subject": "1001", "items": ["x"],
            "recipient_key": {"kty": "OKP", "crv": "X25519", "x": "", "kid": ""}
        }),
        ("POST", "/api/v1/mydata/transfers/{id}/consent") => json!({"mode": "once"}),
        ("POST", "/api/v1/mydata/transfers/{id}/refusal") => json!({}),
        ("PUT", "/api/v1/citydata/tenants") => {
            json!({"name": "authz", "institution": 1, "access": "closed"})
        }
        ("PUT", "/api/v1/mydata/webhook") => json!({"url": "https://agency.example/hook"}),
        ("POST", "/api/v1/mydata/verify") => json!({"credential": "x"}),
        _ => Value::Null,
    };
    (format!("{path}{query}"), body)
}

/// Whether a caller may call a route, given its row.
type Expectation = Box<dyn Fn(&Route) -> Option<bool>>;

/// Who calls, with what.
struct Caller {
    label: String,
    token: Option<String>,
    institution: InstitutionId,
    ids: Ids,
    /// Whether the caller may call a route, given its row (none: the walk
    /// only scans the answer for what she must not see).
    may: Expectation,
    /// Values the caller must not see in any answer.
    secret: Vec<&'static str>,
}

fn duty_spec(duty: DutyKind) -> String {
    match duty {
        DutyKind::Investigator => "investigator:seoul".into(),
        DutyKind::Citizen => format!("citizen:{CITIZEN_A}"),
        d => d.as_str().to_owned(),
    }
}

/// Routes a person may call before her second factor: her account.
fn own_account(route: &Route) -> bool {
    matches!(
        route.path.as_str(),
        "/api/v1/me"
            | "/api/v1/auth/logout"
            | "/api/v1/auth/totp/enrol"
            | "/api/v1/auth/totp/confirm"
    )
}

async fn every_route_answers_every_caller_as_the_policy_says(db: TestDb) {
    // The holder's records node is registered but never runs: asking it
    // (a citizen's portability download) gives up after a second.
    let app = spawn_app_with(db, |c| c.collection_deadline_seconds = 1).await;
    let table = table();
    // The table covers exactly the routes the server has.
    let doc = serde_json::to_value(civic_api::openapi_document()).unwrap();
    let mut served = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            served.insert((method.to_uppercase(), path.clone()));
        }
    }
    let listed: BTreeSet<_> = table
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(served, listed, "routes and the policy table differ");

    // People of every duty, with two factors (analysts need none).
    let mut callers: Vec<Caller> = Vec::new();
    let mut home: Vec<Caller> = Vec::new();
    for (i, duty) in DutyKind::ALL.into_iter().enumerate() {
        let kind = institution_kind_for(duty);
        let username = format!("u-{}", duty.as_str().replace('_', "-"));
        let (user, secret) = app
            .user(&username, &duty_spec(duty), kind, duty.sees_personal_data())
            .await;
        let token = app.token(&user.username, secret.as_deref()).await;
        // Approvers read cases, not their routes.
        let hidden = if duty == DutyKind::Approver {
            SEOUL_ROUTE.to_vec()
        } else {
            Vec::new()
        };
        home.push(Caller {
            label: format!("{duty:?}"),
            token: Some(token),
            institution: user.institution,
            ids: Ids::Own,
            may: Box::new(move |r: &Route| Some(r.duties.as_ref().is_none_or(|d| d[i]))),
            secret: hidden,
        });
        // The same duty with a password alone: its account only.
        if duty.sees_personal_data() {
            let (user, _) = app
                .user(&format!("{username}-1f"), &duty_spec(duty), kind, false)
                .await;
            callers.push(Caller {
                label: format!("{duty:?} without a second factor"),
                token: Some(app.token(&user.username, None).await),
                institution: user.institution,
                ids: Ids::Own,
                may: Box::new(|r: &Route| Some(r.duties.is_none() || own_account(r))),
                secret: SEOUL_SECRETS.to_vec(),
            });
        }
        // A machine client holding the duty, made in the database as an
        // account made before machine clients' duties were bounded would
        // be: its token reaches only what a machine client may do.
        let inst = app.institution(kind).await;
        let machine = app
            .hub
            .store
            .create_user(
                NewUser {
                    institution: inst,
                    username: Username::parse(&format!("bot-{}", duty.as_str().replace('_', "-")))
                        .unwrap(),
                    display_name: Name::parse("display_name", "Bot").unwrap(),
                    password_hash: "!machine-client".into(),
                    machine_client: true,
                    duties: vec![civic_core::identity::Duty::parse(&duty_spec(duty)).unwrap()],
                },
                Ctx::local_operator().entry("admin.user.create", "user", Outcome::Allowed),
            )
            .await
            .unwrap();
        let issued = app
            .hub
            .issue_api_token(&Ctx::local_operator(), inst, machine.id, "bot", None)
            .await
            .unwrap();
        let holdable = civic_core::policy::machine_client_may_hold(duty);
        callers.push(Caller {
            label: format!("a machine client holding {duty:?}"),
            token: Some(issued.secret),
            institution: inst,
            ids: Ids::Own,
            // Its own account it may see, whatever its duty (a token is
            // not signed out: that is a bad request, not a refusal).
            may: Box::new(move |r: &Route| {
                Some(match &r.duties {
                    None => true,
                    Some(d) => {
                        (holdable && d[i] && r.machine)
                            || matches!(r.path.as_str(), "/api/v1/me" | "/api/v1/auth/logout")
                    }
                })
            }),
            secret: SEOUL_SECRETS.to_vec(),
        });
    }
    let f = fixture(&app).await;

    // Callers from elsewhere, with ids that are not theirs.
    let (daegu, s) = app
        .user("inv-daegu", "investigator:daegu", "health_authority", true)
        .await;
    callers.push(Caller {
        label: "a Daegu investigator with a Seoul case".into(),
        token: Some(app.token(&daegu.username, s.as_deref()).await),
        institution: daegu.institution,
        ids: Ids::OtherRegion,
        // No route of the Seoul case, nor registering cases in Seoul
        // (the walk's body names Seoul); everything she reads is scanned.
        may: Box::new(|r: &Route| {
            let seoul = r.path.starts_with("/api/v1/cases/")
                || (r.method == "POST" && r.path == "/api/v1/responses/{id}/cases");
            seoul.then_some(false)
        }),
        secret: SEOUL_SECRETS.to_vec(),
    });
    let (telco_admin, s) = app
        .user("telco-admin", "administrator", "telco", true)
        .await;
    callers.push(Caller {
        label: "a telco's administrator with KDCA's users".into(),
        token: Some(app.token(&telco_admin.username, s.as_deref()).await),
        institution: telco_admin.institution,
        ids: Ids::OtherInstitution,
        // KDCA's users and tokens are not hers to manage.
        may: Box::new(|r: &Route| {
            let theirs = r.path.contains("/institutions/{id}")
                || r.path.contains("/users/{id}")
                || r.path.contains("/api-tokens/{id}");
            theirs.then_some(false)
        }),
        secret: vec!["kdca-user"],
    });
    let (citizen_b, s) = app
        .user(
            "citizen-b",
            &format!("citizen:{CITIZEN_B}"),
            "hub_operator",
            true,
        )
        .await;
    callers.push(Caller {
        label: "citizen B with citizen A's transfer".into(),
        token: Some(app.token(&citizen_b.username, s.as_deref()).await),
        institution: citizen_b.institution,
        ids: Ids::OtherParty,
        // The policy lets a citizen act; storage finds only his own.
        may: Box::new(|r: &Route| r.path.contains("/transfers/{id}").then_some(false)),
        secret: vec![CITIZEN_A],
    });
    let agency_b = app
        .hub
        .store
        .user_by_username("agency-b")
        .await
        .unwrap()
        .unwrap();
    let mut totp = None;
    {
        let secret = civic_hub::secrets::new_totp_secret();
        let sealed = app
            .hub
            .keys()
            .seal(&format!("totp:{}", agency_b.id), &secret);
        let entry = Ctx::local_operator().entry("auth.totp.enrol", "user", Outcome::Allowed);
        app.hub
            .store
            .set_totp_pending(agency_b.id, sealed, entry.clone())
            .await
            .unwrap();
        app.hub
            .store
            .enable_totp(agency_b.id, 0, None, entry)
            .await
            .unwrap();
        totp.get_or_insert(secret.to_vec());
    }
    callers.push(Caller {
        label: "agency B's operator with agency A's transfer".into(),
        token: Some(app.token("agency-b", totp.as_deref()).await),
        institution: agency_b.institution,
        ids: Ids::OtherParty,
        may: Box::new(|r: &Route| r.path.contains("/transfers/{id}").then_some(false)),
        secret: vec![CITIZEN_A, CITIZEN_B],
    });
    callers.push(Caller {
        label: "anonymous".into(),
        token: None,
        institution: InstitutionId(1),
        ids: Ids::Own,
        may: Box::new(|r: &Route| Some(r.duties.is_none())),
        secret: SEOUL_SECRETS
            .iter()
            .copied()
            .chain([CITIZEN_A, CITIZEN_B])
            .collect(),
    });
    // The home callers last: they take every step they may (close, sign
    // out), which ends what the others use.
    callers.extend(home);

    let mut rows: Vec<&Route> = table.iter().collect();
    rows.sort_by_key(|r| (r.path.ends_with("/logout"), r.path.ends_with("/close")));
    let mut calls = 0;
    let mut failures = Vec::new();

    for caller in &callers {
        for route in &rows {
            calls += 1;
            let (path, body) = request_for(route, &f, caller.institution, caller.ids, calls);
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let mut rb = app.request(method.clone(), &path, caller.token.as_deref());
            if !body.is_null() {
                rb = rb.json(&body);
            }
            let response = rb.send().await.unwrap();

            let status = response.status();
            // A live feed streams until its caller goes: its refusals are
            // read, an open feed only seen open.
            let text = if route.path.ends_with("/feed") && status.is_success() {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            let refused = status == StatusCode::FORBIDDEN || status == StatusCode::UNAUTHORIZED;
            let public_auth = route.path.ends_with("/login") || route.path.ends_with("/enrol");
            let ok = match (caller.may)(route) {
                None => true,
                Some(true) => {
                    !refused
                        || (route.duties.is_none()
                            && public_auth
                            && status == StatusCode::UNAUTHORIZED)
                }
                Some(false) if caller.token.is_none() => status == StatusCode::UNAUTHORIZED,
                // Refused, or (another party's object) not found: either
                // says nothing of it.
                Some(false) => {
                    refused || (caller.ids == Ids::OtherParty && status == StatusCode::NOT_FOUND)
                }
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {}: {status} (expected {})",
                    route.method,
                    route.path,
                    caller.label,
                    if (caller.may)(route) == Some(true) {
                        "allowed"
                    } else {
                        "refused"
                    }
                ));
            }
            for secret in &caller.secret {
                if text.contains(secret) {
                    failures.push(format!(
                        "{} {} as {} ({status}) shows {secret:?}",
                        route.method, route.path, caller.label
                    ));
                }
            }
        }
    }
    eprintln!(
        "the matrix: {calls} calls, {} callers × {} routes",
        callers.len(),
        rows.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {calls} calls went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Without a token, every session route asks for one.
    for route in &table {
        if route.duties.is_some() {
            let r = app
                .request(
                    Method::from_bytes(route.method.as_bytes()).unwrap(),
                    &route.path.replace("{id}", "1").replace("{seq}", "0"),
                    None,
                )
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{} {}",
                route.method,
                route.path
            );
        }
    }
}
