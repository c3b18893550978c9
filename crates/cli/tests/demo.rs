//! `civic demo` as a user starts it: signs in, keeps secrets out of its
//! logs, stops gracefully, reuses its nodes; a node enrolled with a token.

mod common;

use common::*;
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_demo_serves_signs_in_with_totp_and_keeps_secrets_out_of_the_logs() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Demo {
        process: mut demo,
        url,
        printed,
    } = spawn_demo(&data, &["--log-format", "json"], &[], true);
    let logins = logins(&data);
    assert_eq!(
        logins.len(),
        13,
        "one login per duty, MyData's holder and agency, a citizen and Seoul's city data operator"
    );
    for login in &logins {
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

    // The closed city data tenant answers Seoul's operator, and no one
    // without a token; the open default tenant anyone.
    let seoul = |token: Option<&str>| {
        let rb = client
            .get(format!("{url}/ngsi-ld/v1/entities?type=ParkingSpot"))
            .header("NGSILD-Tenant", "seoul");
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    };
    assert_eq!(seoul(None).send().await.unwrap().status(), 401);
    let operator = logins
        .iter()
        .find(|l| l["username"] == "city.seoul")
        .unwrap();
    let session: serde_json::Value = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "city.seoul", "password": operator["password"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let city_token = session["token"].as_str().unwrap();
    assert_eq!(seoul(Some(city_token)).send().await.unwrap().status(), 200);
    let open = client
        .get(format!("{url}/ngsi-ld/v1/types"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);

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
    let again = spawn_demo(&data, &[], &[], false);
    assert!(
        again
            .printed
            .lines()
            .any(|l| l.contains("node-seoul-metro") && l.contains("https://127.0.0.1:")),
        "{}",
        again.printed
    );
}

#[test]
fn a_node_enrols_with_a_token_from_the_admin_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("hub");
    let Demo {
        process: _demo,
        url,
        ..
    } = spawn_demo(
        &data,
        &[],
        &["--sim-people", "200", "--sim-days", "1"],
        false,
    );

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
