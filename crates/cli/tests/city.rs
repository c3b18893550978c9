//! `civic city` as a city developer runs it against the demo: a dirty
//! CSV of Korean public data in, a bad file refused whole, a closed
//! tenant only with a token, and the entities, their history and its
//! aggregation out as CSV and Parquet — the Parquet read back by DuckDB.

mod common;

use common::*;
use std::path::Path;

/// A file like a city's open data: a BOM, Korean headers, a quoted name
/// with a comma, codes with leading zeros, an empty cell, times without
/// an offset.
const DOCKS: &str = "\u{feff}대여소번호,대여소명,위도,경도,거치대수,전화,기준시각,비고\r\n\
0150,\"시청 앞, 1번\",37.5663,126.9779,12,02-120,2026-12-07 09:00,\r\n\
0151,광화문,37.5714,126.9768,8,02-121,2026-12-07 09:00,점검 중\r\n\
0152,을지로입구,37.5660,126.9826,15,,2026-12-07 09:00,\r\n";

fn count(url: &str, tenant: Option<&str>, token: Option<&str>) -> (u16, u64) {
    let mut args = vec![
        "-s".to_owned(),
        "-o".into(),
        "/dev/null".into(),
        "-D".into(),
        "-".into(),
        format!("{url}/ngsi-ld/v1/entities?type=BicycleDock&count=true&limit=1"),
    ];
    if let Some(t) = tenant {
        args.extend(["-H".into(), format!("NGSILD-Tenant: {t}")]);
    }
    if let Some(t) = token {
        args.extend(["-H".into(), format!("Authorization: Bearer {t}")]);
    }
    let out = std::process::Command::new("curl")
        .args(&args)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let n = head
        .lines()
        .find_map(|l| l.strip_prefix("ngsild-results-count:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (status, n)
}

fn duckdb(sql: &str) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            &format!("import duckdb; print(duckdb.sql({sql:?}).fetchall())"),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("No module named 'duckdb'"),
            "DuckDB refused the query: {err}"
        );
        // scripts/test installs it; CI must have it.
        assert!(std::env::var("CI").is_err(), "DuckDB is not installed");
        eprintln!("DuckDB is not installed here (python3 -m pip install duckdb): the Parquet file is not read back");
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn files_go_in_and_out_of_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = spawn_demo(&data, &[], &[], false);
    let url = demo.url.clone();
    let hub = ["--hub", url.as_str()];
    let path = |name: &str| dir.path().join(name);
    let write = |name: &str, text: &str| {
        std::fs::write(path(name), text).unwrap();
        path(name).to_str().unwrap().to_owned()
    };
    let city = |args: &[&str]| {
        let mut all = vec!["city"];
        all.extend(args);
        all.extend(hub);
        civic(&all, &[], None)
    };

    // In: the whole file is read before anything is sent.
    let docks = write("docks.csv", DOCKS);
    let import = [
        "import",
        docks.as_str(),
        "--type",
        "BicycleDock",
        "--id-column",
        "대여소번호",
        "--observed-at",
        "기준시각",
        "--utc-offset",
        "+09:00",
        "--unit",
        "거치대수=C62",
    ];
    let printed = ok(&city(&import));
    assert!(printed.contains("imported 3 entities"), "{printed}");
    assert_eq!(count(&url, None, None), (200, 3));

    // A bad row (latitude and longitude swapped) stops it, naming its
    // line, and nothing of the file arrives.
    let bad = write(
        "bad.csv",
        "id,lat,lon,n\r\nA,37.5,127.0,1\r\nB,127.0,37.5,2\r\n",
    );
    let err = fails_in_one_line(&city(&["import", &bad, "--type", "BicycleDock"]));
    assert!(err.contains("line 3") && err.contains("swapped"), "{err}");
    assert_eq!(count(&url, None, None), (200, 3));
    let cp949 = path("cp949.csv");
    std::fs::write(&cp949, b"id,\xb4\xeb\xbf\xa9\r\n1,2\r\n").unwrap();
    let err = fails_in_one_line(&city(&[
        "import",
        cp949.to_str().unwrap(),
        "--type",
        "BicycleDock",
    ]));
    assert!(err.contains("not UTF-8") && err.contains("iconv"), "{err}");

    // The Smart Data Models the broker ships: listed, and a file of one
    // checked against it before anything is sent.
    let models = ok(&city(&["models"]));
    for model in [
        "AirQualityObserved",
        "ParkingSpot",
        "Streetlight",
        "dataModel.Environment/master/context.jsonld",
    ] {
        assert!(models.contains(model), "{models}");
    }
    let spot = ok(&city(&["models", "parkingspot"]));
    assert!(
        spot.contains("closed | free | occupied | unknown"),
        "{spot}"
    );
    fails_in_one_line(&city(&["models", "Parking"]));
    let spots = write(
        "spots.csv",
        "id,lat,lon,status\r\nA,37.5663,126.9779,free\r\nB,37.5714,126.9768,taken\r\n",
    );
    let spot_import = ["import", spots.as_str(), "--type", "ParkingSpot"];
    let err = fails_in_one_line(&city(&[&spot_import[..], &["--dry-run"]].concat()));
    assert!(
        err.contains("1 of 2 entities break their Smart Data Model")
            && err.contains("urn:ngsi-ld:ParkingSpot:B: status: one of closed, free, occupied, unknown, not \"taken\""),
        "{err}"
    );
    // Sent all the same, the broker refuses that one, and says so.
    let err = fails_in_one_line(&city(&spot_import));
    assert!(err.contains("taken"), "{err}");

    // The closed tenant takes it only with its operator's token.
    let seoul = [&import[..], &["--tenant", "seoul"]].concat();
    let err = fails_in_one_line(&city(&seoul));
    assert!(err.contains("401"), "{err}");
    let logins = logins(&data);
    let operator = logins
        .iter()
        .find(|l| l["username"] == "city.seoul")
        .unwrap();
    let login = std::process::Command::new("curl")
        .args([
            "-s",
            &format!("{url}/api/v1/auth/login"),
            "-H",
            "content-type: application/json",
            "-d",
            &serde_json::json!({"username": "city.seoul", "password": operator["password"]})
                .to_string(),
        ])
        .output()
        .unwrap();
    let session: serde_json::Value = serde_json::from_slice(&login.stdout).unwrap();
    let token = session["token"].as_str().unwrap();
    ok(&city(&[&seoul[..], &["--token", token]].concat()));
    assert_eq!(count(&url, Some("seoul"), Some(token)), (200, 3));
    assert_eq!(count(&url, Some("seoul"), None).0, 401);

    // Out: the latest values as CSV and as Parquet.
    let csv_out = path("docks-out.csv");
    let csv_arg = csv_out.to_str().unwrap();
    ok(&city(&[
        "export",
        "--type",
        "BicycleDock",
        "--out",
        csv_arg,
    ]));
    let text = std::fs::read_to_string(&csv_out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,type,location,거치대수,대여소명,비고,전화")
    );
    assert!(text.contains("urn:ngsi-ld:BicycleDock:0150,BicycleDock,"));
    assert!(text.contains("\"시청 앞, 1번\""), "{text}");
    assert_eq!(lines.count(), 3);
    let parquet = path("docks.parquet");
    let parquet_arg = parquet.to_str().unwrap();
    ok(&city(&[
        "export",
        "--type",
        "BicycleDock",
        "--q",
        "거치대수>10",
        "--out",
        parquet_arg,
    ]));
    if let Some(rows) = duckdb(&format!(
        "select id, 거치대수, 전화 from '{parquet_arg}' order by id"
    )) {
        assert_eq!(
            rows,
            "[('urn:ngsi-ld:BicycleDock:0150', 12.0, '02-120'), ('urn:ngsi-ld:BicycleDock:0152', 15.0, None)]"
        );
    }

    // Their history, and its aggregation per hour, the same way.
    let history = path("history.parquet");
    let history_arg = history.to_str().unwrap();
    ok(&city(&[
        "export",
        "--type",
        "BicycleDock",
        "--history",
        "--attrs",
        "거치대수",
        "--out",
        history_arg,
    ]));
    if let Some(rows) = duckdb(&format!(
        "select count(*), sum(value), min(observedAt) from '{history_arg}'"
    )) {
        assert_eq!(rows, "[(3, 35.0, '2026-12-07T00:00:00.000Z')]");
    }
    let hourly = city(&[
        "export",
        "--type",
        "BicycleDock",
        "--history",
        "--attrs",
        "거치대수",
        "--aggregate",
        "max,avg",
        "--period",
        "PT1H",
    ]);
    let hourly = ok(&hourly);
    assert!(
        hourly.starts_with("entity,type,attribute,method,start,end,value"),
        "{hourly}"
    );
    assert!(
        hourly.contains("urn:ngsi-ld:BicycleDock:0151,BicycleDock,거치대수,max,2026-12-07T00:00:00Z,2026-12-07T01:00:00Z,8"),
        "{hourly}"
    );
    let err = fails_in_one_line(&city(&[
        "export",
        "--type",
        "BicycleDock",
        "--aggregate",
        "max",
    ]));
    assert!(err.contains("--history"), "{err}");
    let err = fails_in_one_line(&city(&[
        "export",
        "--type",
        "BicycleDock",
        "--out",
        "x.xlsx",
    ]));
    assert!(err.contains(".parquet"), "{err}");
    drop(demo);
    let _ = Path::new(&data);
}
