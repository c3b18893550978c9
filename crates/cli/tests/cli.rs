//! The `civic` binary as an operator runs it.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn civic(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_civic"));
    cmd.args(args)
        .env_remove("CIVIC_DATABASE_URL")
        .env_remove("CIVIC_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("civic runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails with exactly one line on stderr.
fn fails_in_one_line(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn seed(dir: &Path, env: &[(&str, &str)]) {
    let data = dir.to_str().unwrap();
    let mut env = env.to_vec();
    env.push(("CIVIC_DATA_DIR", data));
    ok(&civic(&["migrate"], &env, None));
    ok(&civic(
        &[
            "admin",
            "institution",
            "create",
            "--name",
            "KDCA",
            "--kind",
            "health_authority",
        ],
        &env,
        None,
    ));
    let out = ok(&civic(
        &[
            "admin",
            "user",
            "create",
            "--institution",
            "1",
            "--username",
            "kim",
            "--display-name",
            "Kim",
            "--duty",
            "investigator:seoul",
        ],
        &env,
        Some("correct horse battery staple\n"),
    ));
    assert!(out.contains("created user 1"));
    let listed = ok(&civic(
        &[
            "admin",
            "user",
            "list",
            "--institution",
            "1",
            "--format",
            "csv",
        ],
        &env,
        None,
    ));
    assert!(
        listed.starts_with("id,username,display name,duties"),
        "{listed}"
    );
    assert!(listed.contains("investigator:seoul"));
}

#[test]
fn admin_commands_and_bad_input_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [("CIVIC_DATA_DIR", data.as_str())];
    seed(dir.path(), &[]);
    // Bad input: one line, non-zero exit, nothing changed.
    let err = fails_in_one_line(&civic(
        &[
            "admin",
            "institution",
            "create",
            "--name",
            "X",
            "--kind",
            "bakery",
        ],
        &env,
        None,
    ));
    assert!(err.contains("unknown institution kind"), "{err}");
    fails_in_one_line(&civic(
        &[
            "admin",
            "user",
            "create",
            "--institution",
            "1",
            "--username",
            "lee",
            "--display-name",
            "Lee",
            "--duty",
            "police_location_officer",
        ],
        &env,
        Some("correct horse battery staple\n"),
    ));
    fails_in_one_line(&civic(
        &[
            "admin",
            "user",
            "create",
            "--institution",
            "1",
            "--username",
            "lee",
            "--display-name",
            "Lee",
        ],
        &env,
        Some("short\n"),
    ));
    fails_in_one_line(&civic(
        &["admin", "user", "unlock", "--user", "99"],
        &env,
        None,
    ));
    fails_in_one_line(&civic(
        &["serve"],
        &[("CIVIC_ADDR", "not-an-address")],
        None,
    ));
    let listed = ok(&civic(
        &["admin", "institution", "list", "--format", "json"],
        &env,
        None,
    ));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let users = ok(&civic(
        &[
            "admin",
            "user",
            "list",
            "--institution",
            "1",
            "--format",
            "json",
        ],
        &env,
        None,
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&users)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Tokens: only for machine clients; the secret is printed once.
    fails_in_one_line(&civic(
        &["admin", "token", "issue", "--user", "1", "--name", "uplink"],
        &env,
        None,
    ));
    let created = ok(&civic(
        &[
            "admin",
            "user",
            "create",
            "--institution",
            "1",
            "--username",
            "kdca-node",
            "--display-name",
            "Node",
            "--machine-client",
            "--duty",
            "analyst",
        ],
        &env,
        None,
    ));
    assert!(created.contains("created user 2"), "{created}");
    let secret = ok(&civic(
        &["admin", "token", "issue", "--user", "2", "--name", "uplink"],
        &env,
        None,
    ));
    assert!(secret.trim().starts_with("cdh_t_"));
    // The ledger verifies.
    let verified = ok(&civic(&["audit", "verify", "--data-dir", &data], &[], None));
    assert!(verified.contains("ledger verified"), "{verified}");
}

#[test]
fn audit_verify_names_an_edited_record_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    seed(dir.path(), &[]);
    ok(&civic(&["audit", "verify", "--data-dir", &data], &[], None));
    let db = dir.path().join("civic.db");
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute('DROP TRIGGER audit_records_no_update'); \
             c.execute(\"UPDATE audit_records SET actor_name='nobody' WHERE seq=1\"); c.commit()",
        )
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let err = fails_in_one_line(&civic(&["audit", "verify", "--data-dir", &data], &[], None));
    assert!(err.contains("record 1 was changed"), "{err}");
}

#[test]
fn audit_verify_names_a_record_whose_duty_no_longer_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    seed(dir.path(), &[]);
    let db = dir.path().join("civic.db");
    let status = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             c.execute('DROP TRIGGER audit_records_no_update'); \
             c.execute(\"UPDATE audit_records SET duty='overlord' WHERE seq=2\"); c.commit()",
        )
        .arg(&db)
        .status()
        .unwrap();
    assert!(status.success());
    let err = fails_in_one_line(&civic(&["audit", "verify", "--data-dir", &data], &[], None));
    assert!(err.contains("record 2 was changed"), "{err}");
    assert!(err.contains("overlord"), "{err}");
}

#[test]
fn output_cut_short_by_its_reader_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    seed(dir.path(), &[]);
    // `civic audit verify … | head -1`: the reader is gone before the
    // command writes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(["audit", "verify", "--data-dir", &data])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}

#[tokio::test]
async fn audit_verify_names_an_edited_record_on_postgres() {
    let Some(db) = civic_store::testing::postgres().await else {
        return;
    };
    let schema = db.schema.clone().unwrap();
    let url = format!("{}?options=-csearch_path%3D{schema}", db.url);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let env = [("CIVIC_DATABASE_URL", url.as_str())];
    seed(dir.path(), &env);
    ok(&civic(
        &[
            "audit",
            "verify",
            "--data-dir",
            &data,
            "--database-url",
            &url,
        ],
        &[],
        None,
    ));
    db.execute_raw("DROP TRIGGER audit_records_append_only ON audit_records; UPDATE audit_records SET outcome = 'denied' WHERE seq = 2")
        .await
        .unwrap();
    let err = fails_in_one_line(&civic(
        &[
            "audit",
            "verify",
            "--data-dir",
            &data,
            "--database-url",
            &url,
        ],
        &[],
        None,
    ));
    assert!(err.contains("record 2 was changed"), "{err}");
}

#[test]
fn the_cli_explains_itself() {
    let help = ok(&civic(&["--help"], &[], None));
    for sub in ["demo", "serve", "migrate", "audit", "admin"] {
        assert!(help.contains(sub), "{help}");
    }
    let out = civic(
        &["audit", "verify", "--data-dir", "/nonexistent/dir"],
        &[],
        None,
    );
    fails_in_one_line(&out);
}

/// Kills the child if the test ends early.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[test]
fn serve_makes_a_missing_data_directory_for_its_owner_only() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh/data");
    let config = dir.path().join("civic.toml");
    std::fs::write(
        &config,
        format!(
            "addr = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env_remove("CIVIC_DATABASE_URL")
        .env_remove("CIVIC_DATA_DIR")
        .env_remove("CIVIC_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut hub = Running(child);
    let stderr = hub.0.stderr.take().unwrap();
    let mut said = String::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        said.push_str(&line);
        if line.contains("hub serving") {
            break;
        }
    }
    assert!(said.contains("hub serving"), "{said}");
    assert!(data.join("hub-ca-key.pem").is_file());
    assert!(data.join("civic.db").is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
}

#[tokio::test]
async fn the_demo_serves_signs_in_with_totp_and_keeps_secrets_out_of_the_logs() {
    use std::io::{BufRead, Read};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args([
            "--log-format",
            "json",
            "demo",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env_remove("CIVIC_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = Running(child);
    let stdout = demo.0.stdout.take().unwrap();
    let mut printed = String::new();
    let mut url = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.split("running at ").nth(1) {
            url = Some(rest.trim().to_owned());
        }
        if line.starts_with("Logins are kept in") {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("the demo printed no address:\n{printed}"));

    let logins: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("demo-credentials.json")).unwrap())
            .unwrap();
    let logins = logins.as_array().unwrap();
    assert_eq!(
        logins.len(),
        12,
        "one login per duty, MyData's holder and agency, and a citizen"
    );
    for login in logins {
        assert!(
            printed.contains(login["password"].as_str().unwrap()),
            "every login is printed"
        );
    }
    let auditor = logins.iter().find(|l| l["username"] == "auditor").unwrap();
    let password = auditor["password"].as_str().unwrap();
    let secret = civic_hub::secrets::from_base32(auditor["totp_secret"].as_str().unwrap()).unwrap();

    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let doc: serde_json::Value = client
        .get(format!("{url}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let code =
        civic_hub::secrets::totp_code(&secret, time::OffsetDateTime::now_utc().unix_timestamp());
    let login: serde_json::Value = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "auditor", "password": password, "totp": code}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    assert_eq!(login["user"]["authenticated_with"], "password_and_totp");
    let search = client
        .get(format!("{url}/api/v1/audit/records?actor_name=auditor"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(search.status(), 200);
    // A failed sign-in, whose password must not be logged either.
    let wrong = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": "my-secret-guess-1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // SIGTERM: a graceful stop that signs a final tree head.
    let pid = demo.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = demo.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut logs = String::new();
    demo.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    for line in logs.lines() {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        assert!(parsed["level"].is_string());
    }
    assert!(logs.contains("final tree head signed"));
    // (The six-digit code is looked for as a value: its digits alone may
    // occur by chance inside a timestamp.)
    let quoted_code = format!("\"{code}\"");
    for secret in [
        password,
        token.as_str(),
        quoted_code.as_str(),
        "my-secret-guess-1234",
        auditor["totp_secret"].as_str().unwrap(),
    ] {
        assert!(!logs.contains(secret), "a secret reached the log");
    }

    let verified = ok(&civic(
        &["audit", "verify", "--data-dir", data.to_str().unwrap()],
        &[],
        None,
    ));
    assert!(
        verified.contains("ledger verified") && !verified.contains("not yet"),
        "{verified}"
    );

    // The nodes were enrolled, filled and served; a second start reuses
    // them rather than enrolling again.
    for node in [
        "node-skt",
        "node-kt",
        "node-lguplus",
        "node-shinhan",
        "node-kb",
        "node-samsung",
        "node-seoul-metro",
    ] {
        assert!(printed.contains(node), "{node} is not listed:\n{printed}");
        assert!(data.join("nodes").join(node).join("node.pem").exists());
    }
    let child = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args([
            "demo",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut again = Running(child);
    let lines: Vec<String> = std::io::BufReader::new(again.0.stdout.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .take_while(|l| !l.starts_with("Logins are kept in"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("node-seoul-metro") && l.contains("https://127.0.0.1:")),
        "{lines:?}"
    );
    let _ = again.0.kill();
}

#[test]
fn a_database_is_refused_with_another_hubs_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    seed(dir.path(), &[]);
    // The same database, but keys from an empty directory.
    let elsewhere = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("civic.db").display());
    let env = [
        ("CIVIC_DATA_DIR", elsewhere.path().to_str().unwrap()),
        ("CIVIC_DATABASE_URL", url.as_str()),
    ];
    let err = fails_in_one_line(&civic(&["admin", "institution", "list"], &env, None));
    assert!(err.contains("signed by the hub key"), "{err}");
    // And the ledger still verifies with the right key.
    ok(&civic(&["audit", "verify", "--data-dir", &data], &[], None));
}

#[test]
fn audit_verify_needs_a_trusted_key_and_honours_witnesses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    seed(dir.path(), &[]);
    let url = format!("sqlite://{}", dir.path().join("civic.db").display());
    // Without a key file, no silent fallback to the database's own key.
    let elsewhere = tempfile::tempdir().unwrap();
    let err = fails_in_one_line(&civic(
        &[
            "audit",
            "verify",
            "--data-dir",
            elsewhere.path().to_str().unwrap(),
            "--database-url",
            &url,
        ],
        &[],
        None,
    ));
    assert!(err.contains("no trusted public key"), "{err}");
    let out = civic(
        &[
            "audit",
            "verify",
            "--data-dir",
            elsewhere.path().to_str().unwrap(),
            "--database-url",
            &url,
            "--trust-database-key",
        ],
        &[],
        None,
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));

    // A witness signed by another key is refused.
    let forged = r#"{"tree_head":{"tree_size":1,"root_hash":"00","timestamp":0,"key_id":"x","signature":"AA=="},"public_key":"00"}"#;
    let witness = dir.path().join("witness.json");
    std::fs::write(&witness, forged).unwrap();
    let err = fails_in_one_line(&civic(
        &[
            "audit",
            "verify",
            "--data-dir",
            &data,
            "--tree-head",
            witness.to_str().unwrap(),
        ],
        &[],
        None,
    ));
    assert!(err.contains("tree head"), "{err}");
    std::fs::write(&witness, "not json").unwrap();
    fails_in_one_line(&civic(
        &[
            "audit",
            "verify",
            "--data-dir",
            &data,
            "--tree-head",
            witness.to_str().unwrap(),
        ],
        &[],
        None,
    ));
}

#[test]
fn sim_generates_scores_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("city");
    let o = out.to_str().unwrap();
    let printed = ok(&civic(
        &[
            "sim", "generate", "--people", "800", "--days", "3", "--seed", "4", "--out", o,
        ],
        &[],
        None,
    ));
    assert!(printed.contains("800 people, 3 days"), "{printed}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["pings"].as_u64().unwrap() > 0);

    let found = dir.path().join("found");
    std::fs::create_dir(&found).unwrap();
    std::fs::copy(out.join("clusters.csv"), found.join("clusters.csv")).unwrap();
    let scored = ok(&civic(
        &[
            "sim",
            "score",
            "--truth",
            o,
            "--found",
            found.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
        None,
    ));
    let scored: serde_json::Value = serde_json::from_str(&scored).unwrap();
    assert_eq!(scored["clusters"]["adjusted_rand_index"], 1.0);

    for bad in [
        vec!["sim", "generate", "--people", "0", "--out", o],
        vec!["sim", "generate", "--days", "0", "--out", o],
        vec!["sim", "generate", "--start", "yesterday", "--out", o],
        vec!["sim", "generate", "--bbox", "1,2,3", "--out", o],
        vec!["sim", "score", "--truth", o, "--found", "/nonexistent"],
    ] {
        fails_in_one_line(&civic(&bad, &[], None));
    }
    let scenario = dir.path().join("bad.toml");
    std::fs::write(&scenario, "handover_noise = 7\n").unwrap();
    let err = fails_in_one_line(&civic(
        &[
            "sim",
            "generate",
            "--out",
            o,
            "--scenario",
            scenario.to_str().unwrap(),
        ],
        &[],
        None,
    ));
    assert!(err.contains("handover_noise"), "{err}");
}

#[test]
fn node_import_and_exposure_as_an_operator_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("city");
    let node = dir.path().join("node");
    let (c, n) = (city.to_str().unwrap(), node.to_str().unwrap());
    ok(&civic(
        &[
            "sim", "generate", "--people", "1500", "--days", "2", "--seed", "8", "--out", c,
        ],
        &[],
        None,
    ));
    let towers = city.join("towers.csv");
    let pings = city.join("pings-skt.csv");
    // Bad input first: nothing to import, a missing file, an empty store.
    fails_in_one_line(&civic(&["node", "import", "--data-dir", n], &[], None));
    fails_in_one_line(&civic(
        &[
            "node",
            "import",
            "--data-dir",
            n,
            "--pings",
            "/nonexistent.csv",
        ],
        &[],
        None,
    ));
    let queries = dir.path().join("queries.csv");
    std::fs::write(
        &queries,
        "query_id,lat,lon,radius_m,t_start,t_end\n1,37.56,126.98,2000,1583020800,1583107199\n",
    )
    .unwrap();
    fails_in_one_line(&civic(
        &[
            "node",
            "exposure",
            "--data-dir",
            n,
            "--queries",
            queries.to_str().unwrap(),
        ],
        &[],
        None,
    ));

    let imported = ok(&civic(
        &[
            "node",
            "import",
            "--data-dir",
            n,
            "--towers",
            towers.to_str().unwrap(),
            "--pings",
            pings.to_str().unwrap(),
        ],
        &[],
        None,
    ));
    assert!(imported.contains("imported"), "{imported}");
    let counts = ok(&civic(
        &[
            "node",
            "exposure",
            "--data-dir",
            n,
            "--queries",
            queries.to_str().unwrap(),
        ],
        &[],
        None,
    ));
    let ids = ok(&civic(
        &[
            "node",
            "exposure",
            "--data-dir",
            n,
            "--queries",
            queries.to_str().unwrap(),
            "--ids",
        ],
        &[],
        None,
    ));
    let mut lines = counts.lines();
    assert_eq!(lines.next(), Some("query_id,count"));
    let count: usize = lines
        .next()
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(count > 0);
    assert_eq!(ids.lines().next(), Some("query_id,subscriber_id"));
    assert_eq!(
        ids.lines().count() - 1,
        count,
        "--ids lists as many subscribers as the count"
    );

    std::fs::write(
        &queries,
        "query_id,lat,lon,radius_m,t_start,t_end\n1,37.56,126.98,2000,1583107199,1583020800\n",
    )
    .unwrap();
    let err = fails_in_one_line(&civic(
        &[
            "node",
            "exposure",
            "--data-dir",
            n,
            "--queries",
            queries.to_str().unwrap(),
        ],
        &[],
        None,
    ));
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn a_node_enrols_with_a_token_from_the_admin_cli() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let child = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args([
            "demo",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--sim-people",
            "200",
            "--sim-days",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut demo = Running(child);
    let stdout = demo.0.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let url = lines
        .by_ref()
        .map(|l| l.unwrap())
        .find_map(|l| l.split("running at ").nth(1).map(|u| u.trim().to_owned()))
        .expect("the demo prints its address");
    // Keep reading what the demo prints, so that it never writes to a
    // closed pipe.
    std::thread::spawn(move || lines.for_each(drop));

    let env = [("CIVIC_DATA_DIR", data.to_str().unwrap())];
    // Institution 5 of the demo is SK Telecom.
    let token = ok(&civic(
        &[
            "admin",
            "node",
            "token",
            "--institution",
            "5",
            "--name",
            "node-extra",
        ],
        &env,
        None,
    ));
    let token = token.trim();
    assert!(token.starts_with("cdh_e_"));
    let node_dir = dir.path().join("node");
    let n = node_dir.to_str().unwrap();
    let out = ok(&civic(
        &[
            "node",
            "enrol",
            "--hub",
            &url,
            "--token",
            token,
            "--name",
            "node-extra",
            "--dir",
            n,
        ],
        &[],
        None,
    ));
    assert!(out.contains("enrolled node-extra"), "{out}");
    let config = civic_node_server::NodeConfig::load(&node_dir.join("node.toml")).unwrap();
    assert_eq!(
        (
            config.name.as_str(),
            config.holder.as_str(),
            config.hub_name.as_str()
        ),
        ("node-extra", "SK Telecom", "hub.civic")
    );
    assert!(node_dir.join("node-key.pem").exists() && node_dir.join("ca.pem").exists());

    // The holder fills its node over HTTPS: an ingest listener opened in
    // node.toml, a token issued, towers and pings sent while it serves.
    let city = data.join("city");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (serve_port, ingest_port) = (free(), free());
    let toml_path = node_dir.join("node.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("addr = ") {
                format!(
                    "addr = \"127.0.0.1:{serve_port}\"\ningest_addr = \"127.0.0.1:{ingest_port}\""
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&toml_path, text).unwrap();
    let config_arg = toml_path.to_str().unwrap();
    let ingest_token = ok(&civic(
        &[
            "node",
            "ingest-token",
            "--config",
            config_arg,
            "--name",
            "skt-loader",
        ],
        &[],
        None,
    ));
    let ingest_token = ingest_token.trim().to_owned();
    let node = Running(
        Command::new(env!("CARGO_BIN_EXE_civic"))
            .args(["node", "serve", "--config", config_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ingest_url = format!("https://127.0.0.1:{ingest_port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", ingest_port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pings = city.join("pings-skt.csv");
    let rows = std::fs::read_to_string(&pings).unwrap().lines().count() - 1;
    let towers = city.join("towers.csv");
    let append = |token: &str| {
        civic(
            &[
                "node",
                "append",
                "--url",
                &ingest_url,
                "--ca",
                node_dir.join("ca.pem").to_str().unwrap(),
                "--places",
                towers.to_str().unwrap(),
                "--events",
                pings.to_str().unwrap(),
                "--batch-rows",
                "1000",
            ],
            &[("CIVIC_INGEST_TOKEN", token)],
            None,
        )
    };
    let err = fails_in_one_line(&append("civic-ingest-wrong"));
    assert!(err.contains("not one this node issued"), "{err}");
    let out = ok(&append(&ingest_token));
    assert!(out.contains(&format!("appended {rows} rows")), "{out}");
    assert!(out.contains("added "), "{out}");
    drop(node);
    let out = ok(&civic(&["node", "compact", "--data-dir", n], &[], None));
    assert!(
        out.contains(&format!("compacted {rows} appended rows")),
        "{out}"
    );

    // The token worked once; other mistakes are one line each.
    let again = dir.path().join("again");
    let err = fails_in_one_line(&civic(
        &[
            "node",
            "enrol",
            "--hub",
            &url,
            "--token",
            token,
            "--name",
            "node-extra",
            "--dir",
            again.to_str().unwrap(),
        ],
        &[],
        None,
    ));
    assert!(err.contains("the hub refused"), "{err}");
    fails_in_one_line(&civic(
        &[
            "node",
            "enrol",
            "--hub",
            &url,
            "--token",
            token,
            "--name",
            "node-extra",
            "--dir",
            n,
        ],
        &[],
        None,
    ));
    fails_in_one_line(&civic(
        &[
            "node",
            "enrol",
            "--hub",
            "https://hub.example",
            "--token",
            token,
            "--name",
            "x-node",
            "--dir",
            again.to_str().unwrap(),
        ],
        &[],
        None,
    ));
    fails_in_one_line(&civic(
        &[
            "node",
            "enrol",
            "--hub",
            "http://hub.example",
            "--token",
            token,
            "--name",
            "x-node",
            "--dir",
            again.to_str().unwrap(),
        ],
        &[],
        None,
    ));
    fails_in_one_line(&civic(
        &[
            "admin",
            "node",
            "token",
            "--institution",
            "5",
            "--name",
            "Bad Name",
        ],
        &env,
        None,
    ));
}

/// The investigation as its people run it from the command line, against
/// the demo: an administrator opens a response, an investigator registers
/// cases and asks for one's data, the approver and the police decide, the
/// route and contacts come back, published routes are clustered, and the
/// response is closed with its certificate; each step refuses the wrong
/// duty.
#[test]
fn the_investigation_runs_through_the_cli_against_the_demo() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_civic"))
        .args([
            "demo",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--sim-people",
            "1500",
            "--sim-days",
            "10",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = Running(child);
    let stderr = demo.0.stderr.take().unwrap();
    std::thread::spawn(move || std::io::BufReader::new(stderr).lines().for_each(drop));
    let mut url = None;
    let mut printed = String::new();
    for line in std::io::BufReader::new(demo.0.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.split("running at ").nth(1) {
            url = Some(rest.trim().to_owned());
        }
        if line.starts_with("Logins are kept in") {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no address:\n{printed}"));
    assert!(printed.contains("outbreak response 1"), "{printed}");
    let logins: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("demo-credentials.json")).unwrap())
            .unwrap();
    // Each person signs in once, with her own session directory.
    let login = |user: &str| -> std::path::PathBuf {
        let home = dir.path().join(user);
        let l = logins
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["username"] == user)
            .unwrap();
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
        .as_array()
        .unwrap()
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
    let _ = demo.0.kill();
}
