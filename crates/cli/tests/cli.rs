//! The `civic` binary as an operator runs it: administration, audit,
//! the simulator, a node's files.

mod common;

use common::*;
use std::process::{Command, Stdio};

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
    // City data's tenants: set up for an institution, bad settings refused.
    let tenant = |name: &str, institution: &str, access: &str| {
        let args = [
            "admin",
            "city-tenant",
            "set",
            "--name",
            name,
            "--institution",
            institution,
            "--access",
            access,
            "--reader",
            "1",
        ];
        civic(&args, &env, None)
    };
    let err = fails_in_one_line(&tenant("city", "1", "wide"));
    assert!(err.contains("open or closed"), "{err}");
    fails_in_one_line(&tenant("city", "99", "closed"));
    fails_in_one_line(&tenant("no spaces", "1", "closed"));
    assert!(ok(&tenant("city", "1", "closed")).contains("set up"));
    assert!(ok(&tenant("city", "1", "open")).contains("changed"));
    let tenants = ok(&civic(
        &["admin", "city-tenant", "list", "--format", "json"],
        &env,
        None,
    ));
    let tenants: serde_json::Value = serde_json::from_str(&tenants).unwrap();
    assert_eq!(tenants[0]["name"], "city");
    assert_eq!(tenants[0]["access"], "open");
    assert_eq!(tenants[0]["readers"], serde_json::json!([1]));
    assert_eq!(tenants.as_array().unwrap().len(), 1);
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
