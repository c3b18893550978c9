//! The packages open and verify with independent implementations from the
//! npm registry (`jose` for the JWE, `@sd-jwt/sd-jwt-vc` for the SD-JWT
//! VC; installed in `web/` by `scripts/test`), and a revoked credential
//! fails there too. Without Node or the
//! package the test says so and passes, except with `CI=true`.

use civic_credentials::{EncryptionJwk, Issuer, StatusList};
use ed25519_dalek::SigningKey;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::process::Command;

fn web_dir() -> Option<PathBuf> {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let ready = web.join("node_modules/@sd-jwt/sd-jwt-vc").is_dir()
        && Command::new("node").arg("--version").output().is_ok();
    if ready {
        return Some(web);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true needs node and web/node_modules (scripts/test installs them)"
    );
    eprintln!("SKIPPED: node or web/node_modules/@sd-jwt/sd-jwt-vc missing (run scripts/test)");
    None
}

fn verify_elsewhere(web: &PathBuf, input: Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.json");
    std::fs::write(&file, input.to_string()).unwrap();
    let out = Command::new("node")
        .arg(web.join("tests/sdjwt-verify.mjs"))
        .arg(&file)
        .current_dir(web)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_package_verifies_with_an_independent_implementation_until_revoked() {
    let Some(web) = web_dir() else { return };
    let issuer = Issuer::new(
        SigningKey::from_bytes(&[9; 32]),
        "https://nhis.example.go.kr",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let uri = "https://nhis.example.go.kr/mydata/status/1";
    let items = [
        ("income_bracket".to_owned(), json!(4)),
        ("household_size".to_owned(), json!(3)),
        ("name".to_owned(), json!("홍길동")),
    ];
    let issued = issuer
        .issue(
            "https://civic.example/vct/health-insurance-eligibility",
            Map::new(),
            &items,
            now - 5,
            now + 3_600,
            Some((uri, 42)),
        )
        .unwrap();
    let mut list = StatusList::new(1_024);
    let valid = list.to_token(&issuer, uri, now - 5, 600);
    let out = verify_elsewhere(
        &web,
        json!({"compact": issued.compact, "jwk": issuer.jwk(), "status_token": valid}),
    );
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["claims"]["income_bracket"], 4);
    assert_eq!(out["claims"]["name"], "홍길동");
    assert_eq!(out["iss"], "https://nhis.example.go.kr");

    // Encrypted to the agency, it opens with jose and verifies as well.
    let agency = x25519_dalek::StaticSecret::from([11u8; 32]);
    let public = EncryptionJwk::x25519(&x25519_dalek::PublicKey::from(&agency));
    let jwe =
        civic_credentials::jwe::encrypt(issued.compact.as_bytes(), &public, "dc+sd-jwt").unwrap();
    let private = json!({
        "kty": "OKP", "crv": "X25519", "x": public.x,
        "d": data_encoding::BASE64URL_NOPAD.encode(agency.as_bytes()),
    });
    let out = verify_elsewhere(
        &web,
        json!({"jwe": jwe, "agency_jwk": private, "jwk": issuer.jwk(), "status_token": valid}),
    );
    assert_eq!(out["ok"], true, "{out}");
    assert_eq!(out["claims"]["household_size"], 3);

    // The citizen withdraws his consent: the holder revokes the entry.
    list.revoke(42).unwrap();
    let revoked = list.to_token(&issuer, uri, now - 5, 600);
    let out = verify_elsewhere(
        &web,
        json!({"compact": issued.compact, "jwk": issuer.jwk(), "status_token": revoked}),
    );
    assert_eq!(out["ok"], false, "{out}");

    // A forged disclosure never passes for the holder's: that library
    // drops a disclosure whose digest the holder did not sign (RFC 9901
    // asks a verifier to refuse the whole credential, as ours does).
    let parts: Vec<&str> = issued.compact.split('~').collect();
    let forged = "WyJzYWx0IiwiaW5jb21lX2JyYWNrZXQiLDFd"; // ["salt","income_bracket",1]
    let tampered = format!("{}~{forged}~", parts[0]);
    let out = verify_elsewhere(
        &web,
        json!({"compact": tampered, "jwk": issuer.jwk(), "status_token": valid}),
    );
    assert!(
        out["ok"] == false || out["claims"].get("income_bracket").is_none(),
        "{out}"
    );
    assert!(civic_credentials::sdjwt::verify(&tampered, &issuer.jwks(), now).is_err());
}
