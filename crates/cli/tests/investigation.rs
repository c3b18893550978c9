//! The epidemic investigation through the CLI against the demo.

mod common;

use common::*;
use std::process::Output;

/// The investigation as its people run it from the command line, against
/// the demo: an administrator opens a response, an investigator registers
/// cases and asks for one's data, the approver and the police decide, the
/// route and contacts come back, published routes are clustered, and the
/// response is closed with its certificate; each step refuses the wrong
/// duty.
#[test]
fn the_investigation_runs_through_the_cli_against_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Demo {
        process: demo,
        url,
        printed,
    } = spawn_demo(
        &data,
        &[],
        &["--sim-people", "1500", "--sim-days", "10"],
        false,
    );
    assert!(printed.contains("outbreak response 1"), "{printed}");
    let logins = logins(&data);
    // Each person signs in once, with her own session directory.
    let login = |user: &str| -> std::path::PathBuf {
        let home = dir.path().join(user);
        let l = logins.iter().find(|l| l["username"] == user).unwrap();
        let secret = civic_hub::secrets::from_base32(l["totp_secret"].as_str().unwrap()).unwrap();
        let code = civic_hub::secrets::totp_code(
            &secret,
            time::OffsetDateTime::now_utc().unix_timestamp(),
        );
        let out = civic(
            &["login", "--hub", &url, "--username", user, "--totp", &code],
            &[("CIVIC_HOME", home.to_str().unwrap())],
            Some(&format!("{}\n", l["password"].as_str().unwrap())),
        );
        assert!(ok(&out).contains("with a second factor"));
        home
    };
    let as_ = |home: &std::path::Path, args: &[&str]| {
        let mut all = vec!["eiss", "--format", "json"];
        all.extend_from_slice(args);
        civic(&all, &[("CIVIC_HOME", home.to_str().unwrap())], None)
    };
    let json = |out: &Output| -> serde_json::Value { serde_json::from_str(&ok(out)).unwrap() };
    let admin = login("admin");
    let inv = login("investigator.seoul");
    let daegu = login("investigator.daegu");
    let approver = login("approver");
    let police = login("police");

    let response = json(&as_(
        &admin,
        &[
            "open-response",
            "--name",
            "COVID-19 test",
            "--legal-basis",
            "IDCPA art. 76-2",
        ],
    ));
    let r = response[0]["id"].to_string();
    let err = fails_in_one_line(&as_(
        &inv,
        &["open-response", "--name", "x", "--legal-basis", "y"],
    ));
    assert!(err.contains("403"), "{err}");
    let register = data.join("city/case-register.csv");
    let err = fails_in_one_line(&as_(
        &daegu,
        &["import-cases", "--response", &r, register.to_str().unwrap()],
    ));
    assert!(err.contains("403"), "{err}");
    let cases = json(&as_(
        &inv,
        &["import-cases", "--response", &r, register.to_str().unwrap()],
    ));
    let interviews = data.join("city/interviews.csv");
    ok(&as_(
        &inv,
        &[
            "import-interviews",
            "--response",
            &r,
            interviews.to_str().unwrap(),
        ],
    ));
    // A case with a phone (the register's sixth column).
    let text = std::fs::read_to_string(&register).unwrap();
    let number = text
        .lines()
        .skip(1)
        .find(|l| !l.split(',').nth(5).unwrap_or("").is_empty())
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let case = cases
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["number"] == number.as_str())
        .unwrap()["id"]
        .to_string();
    fails_in_one_line(&as_(&daegu, &["case", &case]));
    let detail = json(&as_(&inv, &["case", &case]));
    assert!(detail["subject"]["phones"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));

    // The due procedure, in order.
    let request = json(&as_(
        &inv,
        &[
            "request",
            "--case",
            &case,
            "--reason",
            "route and contacts of a confirmed case",
        ],
    ));
    let id = request[0]["id"].to_string();
    let err = fails_in_one_line(&as_(&police, &["decide", "--request", &id, "--approve"]));
    assert!(err.contains("409"), "not the police's turn: {err}");
    fails_in_one_line(&as_(&inv, &["decide", "--request", &id, "--approve"]));
    let inbox = json(&as_(&approver, &["requests"]));
    assert!(inbox
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["id"] == request[0]["id"]));
    let err = fails_in_one_line(&as_(&approver, &["decide", "--request", &id, "--reject"]));
    assert!(err.contains("reason"), "{err}");
    ok(&as_(&approver, &["decide", "--request", &id, "--approve"]));
    ok(&as_(&police, &["decide", "--request", &id, "--approve"]));
    let started = std::time::Instant::now();
    loop {
        let requests = json(&as_(&inv, &["requests", "--case", &case]));
        if requests[0]["status"] == "collected" {
            break;
        }
        assert!(started.elapsed().as_secs() < 120, "{requests}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let timeline = json(&as_(&inv, &["timeline", "--case", &case]));
    assert!(!timeline["stays"].as_array().unwrap().is_empty());
    let contacts = ok(&civic(
        &["eiss", "--format", "csv", "contacts", "--case", &case],
        &[("CIVIC_HOME", inv.to_str().unwrap())],
        None,
    ));
    assert!(
        contacts.starts_with("id,case,holder,identifier,"),
        "{contacts}"
    );
    assert!(contacts.lines().count() > 1);
    let notices = json(&as_(&inv, &["notices", "--case", &case]));
    assert!(notices
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "patient_notice"));

    // Routes published elsewhere, clustered.
    let published = json(&as_(
        &admin,
        &[
            "open-response",
            "--name",
            "Published routes",
            "--legal-basis",
            "IDCPA art. 34-2",
        ],
    ));
    let p = published[0]["id"].to_string();
    let out = civic(
        &[
            "eiss",
            "import-routes",
            "--response",
            &p,
            interviews.to_str().unwrap(),
        ],
        &[("CIVIC_HOME", inv.to_str().unwrap())],
        None,
    );
    assert!(ok(&out).contains("cases created"));
    let csv = ok(&civic(
        &["eiss", "clusters", "--response", &p, "--format", "csv"],
        &[("CIVIC_HOME", inv.to_str().unwrap())],
        None,
    ));
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("case_id,cluster_id,place,infector,link_date,link_place,link_setting,link_basis,link_strength")
    );
    assert!(lines.count() > 3);

    // The published view, as a new user would run it: the register with
    // its missing onsets, the routes, the clusters, their score.
    let published = json(&as_(
        &admin,
        &[
            "open-response",
            "--name",
            "Published view",
            "--legal-basis",
            "IDCPA art. 34-2",
        ],
    ));
    let p = published[0]["id"].to_string();
    let register = data.join("city/published-register.csv");
    let cases = json(&as_(
        &inv,
        &["import-cases", "--response", &p, register.to_str().unwrap()],
    ));
    assert!(cases
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["onset_estimated"] == true));
    // A city this small may give no link: two colleagues make sure of one.
    let routes = dir.path().join("published-routes.csv");
    let mut text = std::fs::read_to_string(data.join("city/published-routes.csv")).unwrap();
    text.push_str(
        "P-1,2020-03-02,37.5665,126.978,,,workplace\n\
         P-1,2020-03-03,37.5665,126.978,,,workplace\n\
         P-2,2020-03-03,37.5665,126.978,,,workplace\n",
    );
    std::fs::write(&routes, text).unwrap();
    ok(&civic(
        &[
            "eiss",
            "import-routes",
            "--response",
            &p,
            routes.to_str().unwrap(),
        ],
        &[("CIVIC_HOME", inv.to_str().unwrap())],
        None,
    ));
    let csv = ok(&civic(
        &["eiss", "clusters", "--response", &p, "--format", "csv"],
        &[("CIVIC_HOME", inv.to_str().unwrap())],
        None,
    ));
    let linked: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter(|l| !l.split(',').nth(3).unwrap_or("").is_empty())
        .collect();
    assert!(
        linked.iter().any(|l| l.starts_with("P-2,P-1,")),
        "the colleagues are linked:\n{csv}"
    );
    for line in &linked {
        let f: Vec<&str> = line.split(',').collect();
        assert!(
            ["home", "care", "regular", "transit", "other"].contains(&f[6])
                && ["same_time", "same_day", "same_setting"].contains(&f[7])
                && f[8].parse::<f64>().is_ok_and(|s| s > 0.0),
            "a link carries its evidence: {line}"
        );
    }
    let found = tempfile::tempdir().unwrap();
    // The simulator's cases only: the two colleagues are not in its truth.
    let simulated: String = csv
        .lines()
        .filter(|l| !l.starts_with("P-"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(found.path().join("clusters.csv"), simulated).unwrap();
    let score = ok(&civic(
        &[
            "sim",
            "score",
            "--truth",
            data.join("city").to_str().unwrap(),
            "--found",
            found.path().to_str().unwrap(),
        ],
        &[],
        None,
    ));
    assert!(score.contains("groups_adjusted_rand_index"), "{score}");

    // The end, with its certificate.
    fails_in_one_line(&as_(&inv, &["close-response", &r]));
    let closed = ok(&civic(
        &["eiss", "--format", "table", "close-response", &r],
        &[("CIVIC_HOME", admin.to_str().unwrap())],
        None,
    ));
    assert!(
        closed.contains("deletion certificate") && closed.contains("confirmed"),
        "{closed}"
    );
    assert!(!closed.contains("NOT CONFIRMED"), "{closed}");
    fails_in_one_line(&as_(&inv, &["case", &case]));

    // MyData through the CLI: the public catalogue, an agreement applied
    // for and approved, and a support ticket answered.
    let cli = |home: Option<&std::path::Path>, args: &[&str]| {
        let env: Vec<(&str, &str)> = home
            .map(|h| vec![("CIVIC_HOME", h.to_str().unwrap())])
            .unwrap_or_default();
        civic(args, &env, None)
    };
    let catalogue = json(&cli(
        Some(dir.path()),
        &[
            "mydata",
            "--hub",
            &url,
            "--format",
            "json",
            "catalogue",
            "--q",
            "income",
        ],
    ));
    assert_eq!(catalogue[0]["code"], "income-bracket", "{catalogue}");
    let offer = catalogue[0]["id"].to_string();
    let agency = login("mydata.agency");
    let holder = login("mydata.nhis");
    let applied = json(&cli(
        Some(&agency),
        &[
            "mydata",
            "--format",
            "json",
            "apply",
            "--offer",
            &offer,
            "--service",
            "Youth job subsidy",
            "--items",
            "income_bracket",
            "--purpose",
            "household income",
            "--legal-basis",
            "Employment Insurance Act art. 25",
            "--retention-days",
            "90",
        ],
    ));
    let agreement = applied[0]["id"].to_string();
    let err = fails_in_one_line(&cli(
        Some(&agency),
        &[
            "mydata", "note", &agreement, "--kind", "approve", "--text", "mine",
        ],
    ));
    assert!(err.contains("403"), "{err}");
    let approved = json(&cli(
        Some(&holder),
        &[
            "mydata", "--format", "json", "note", &agreement, "--kind", "approve", "--text", "ok",
        ],
    ));
    assert_eq!(approved[0]["status"], "approved");

    // A transfer: the agency asks, the citizen consents, the agency opens
    // and verifies the package, the citizen withdraws, the credential is
    // then refused as revoked.
    let key = dir.path().join("agency-key.json");
    let public = json(&cli(None, &["mydata", "keygen", key.to_str().unwrap()]));
    assert_eq!(public["crv"], "X25519");
    assert!(public.get("d").is_none(), "{public}");
    fails_in_one_line(&cli(None, &["mydata", "keygen", key.to_str().unwrap()]));
    let citizen_login = logins
        .iter()
        .find(|l| l["username"] == "citizen")
        .unwrap()
        .clone();
    let subject = citizen_login["duty"]
        .as_str()
        .unwrap()
        .trim_start_matches("citizen:")
        .to_owned();
    let err = fails_in_one_line(&cli(
        Some(&agency),
        &[
            "mydata",
            "request",
            "--agreement",
            &agreement,
            "--subject",
            &subject,
            "--items",
            "income_bracket,premium_monthly",
            "--key",
            key.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("premium_monthly is not in agreement"), "{err}");
    let asked = json(&cli(
        Some(&agency),
        &[
            "mydata",
            "--format",
            "json",
            "request",
            "--agreement",
            &agreement,
            "--subject",
            &subject,
            "--items",
            "income_bracket",
            "--key",
            key.to_str().unwrap(),
        ],
    ));
    assert_eq!(asked[0]["state"], "awaiting_consent");
    let transfer = asked[0]["id"].to_string();
    let citizen = login("citizen");
    let mine = json(&cli(
        Some(&citizen),
        &["mydata", "--format", "json", "transfers"],
    ));
    assert_eq!(mine[0]["agency"], "Korea Employment Information Service");
    let consented = json(&cli(
        Some(&citizen),
        &["mydata", "--format", "json", "consent", &transfer],
    ));
    assert_eq!(consented[0]["state"], "delivered", "{consented}");
    let fetched = json(&cli(
        Some(&agency),
        &[
            "mydata",
            "--format",
            "json",
            "fetch",
            &transfer,
            "--key",
            key.to_str().unwrap(),
        ],
    ));
    assert_eq!(fetched[0]["item"], "income_bracket", "{fetched}");
    assert!(fetched[0]["value"].is_number(), "{fetched}");
    let receipt = json(&cli(Some(&citizen), &["mydata", "receipt", &transfer]));
    assert_eq!(receipt["consent_status"], "given");
    let csv = ok(&cli(Some(&citizen), &["mydata", "export", "--as", "csv"]));
    assert!(csv.contains("income_bracket"), "{csv}");
    let withdrawn = json(&cli(
        Some(&citizen),
        &["mydata", "--format", "json", "withdraw", &transfer],
    ));
    assert_eq!(withdrawn[0]["state"], "withdrawn");
    let err = fails_in_one_line(&cli(
        Some(&agency),
        &["mydata", "fetch", &transfer, "--key", key.to_str().unwrap()],
    ));
    assert!(err.contains("409"), "{err}");
    let events = json(&cli(
        Some(&agency),
        &["mydata", "--format", "json", "events"],
    ));
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "consent.withdrawn"),
        "{events}"
    );
    let deleted = json(&cli(
        Some(&agency),
        &["mydata", "--format", "json", "deletion", &transfer],
    ));
    assert_eq!(deleted[0]["state"], "withdrawn");

    let ticket = json(&cli(
        Some(&holder),
        &[
            "support",
            "--format",
            "json",
            "open",
            "--kind",
            "error",
            "--subject",
            "Linkage",
            "--text",
            "The agency sees an error",
        ],
    ));
    let id = ticket[0]["id"].to_string();
    let support = login("support");
    let answered = json(&cli(
        Some(&support),
        &[
            "support", "--format", "json", "reply", &id, "--text", "Fixed",
        ],
    ));
    assert_eq!(answered[0]["status"], "answered");
    let listed = json(&cli(
        Some(&support),
        &["support", "--format", "json", "tickets", "--limit", "1"],
    ));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"].to_string(), id);
    let older = json(&cli(
        Some(&support),
        &["support", "--format", "json", "tickets", "--before", &id],
    ));
    assert!(older
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["id"].as_i64() < id.parse().ok()));
    let err = fails_in_one_line(&cli(
        Some(&support),
        &["support", "tickets", "--limit", "0"],
    ));
    assert!(err.contains("422"), "{err}");
    let err = fails_in_one_line(&cli(
        Some(&holder),
        &[
            "support",
            "schedule",
            "--title",
            "t",
            "--date",
            "2026-12-10",
            "--place",
            "p",
        ],
    ));
    assert!(err.contains("403"), "{err}");
    drop(demo);
}
