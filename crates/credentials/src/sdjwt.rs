//! SD-JWT VCs (RFC 9901; `typ` `dc+sd-jwt`), issued by a holding
//! institution with its Ed25519 key, without key binding.
//!
//! Issued form: `<JWS>~<disclosure>~…~`. The JWS payload carries the
//! always-visible claims (`iss`, `iat`, `exp`, `vct`, `status`, and what
//! the issuer names plain) and, for each item, only the SHA-256 digest of
//! its disclosure `[salt, name, value]` in `_sd`, sorted so that the
//! order says nothing of the items.

use crate::jwk::{Jwk, JwkSet};
use crate::{b64, unb64};
use ed25519_dalek::{Signature, Signer, SigningKey};
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

pub const TYP: &str = "dc+sd-jwt";

/// Names a disclosure may not take: they would overwrite the structure.
pub const RESERVED: [&str; 10] = [
    "_sd", "_sd_alg", "...", "iss", "iat", "exp", "nbf", "vct", "status", "cnf",
];

/// A holder that signs credentials.
pub struct Issuer {
    key: SigningKey,
    /// The holder's identifier (`iss`): the URL its keys are published at.
    pub iss: String,
    jwk: Jwk,
}

/// A credential as issued: the compact form and what it discloses.
#[derive(Debug, Clone)]
pub struct Issued {
    pub compact: String,
    /// The item names it discloses, in the order given.
    pub items: Vec<String>,
}

impl Issuer {
    pub fn new(key: SigningKey, iss: impl Into<String>) -> Self {
        let jwk = Jwk::ed25519(&key.verifying_key());
        Self {
            key,
            iss: iss.into(),
            jwk,
        }
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// Signs `header.payload` as a JWS (EdDSA).
    pub fn sign_jws(&self, typ: &str, payload: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": typ, "kid": self.jwk.kid});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    /// Issues a credential of type `vct` with `plain` claims visible and
    /// each of `items` selectively disclosable (all disclosed here: the
    /// holder includes only the items the citizen consented to).
    /// `status` is the credential's entry in a status list: (uri, index).
    pub fn issue(
        &self,
        vct: &str,
        plain: Map<String, Value>,
        items: &[(String, Value)],
        iat: i64,
        exp: i64,
        status: Option<(&str, u64)>,
    ) -> Result<Issued, String> {
        let mut payload = plain;
        for name in payload.keys() {
            if RESERVED.contains(&name.as_str()) {
                return Err(format!("{name} is set by the issuer"));
            }
        }
        let mut disclosures = Vec::with_capacity(items.len());
        let mut digests = Vec::with_capacity(items.len());
        let mut names = BTreeSet::new();
        for (name, value) in items {
            if RESERVED.contains(&name.as_str()) || payload.contains_key(name) {
                return Err(format!("{name} cannot be an item"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("{name} is given twice"));
            }
            let disclosure = disclosure(name, value);
            digests.push(digest(&disclosure));
            disclosures.push(disclosure);
        }
        digests.sort();
        payload.insert("iss".into(), self.iss.clone().into());
        payload.insert("iat".into(), iat.into());
        payload.insert("exp".into(), exp.into());
        payload.insert("vct".into(), vct.into());
        if let Some((uri, idx)) = status {
            payload.insert(
                "status".into(),
                json!({"status_list": {"idx": idx, "uri": uri}}),
            );
        }
        payload.insert("_sd".into(), digests.into());
        payload.insert("_sd_alg".into(), "sha-256".into());
        let jws = self.sign_jws(TYP, &Value::Object(payload));
        let mut compact = jws;
        compact.push('~');
        for d in &disclosures {
            compact.push_str(d);
            compact.push('~');
        }
        Ok(Issued {
            compact,
            items: items.iter().map(|(n, _)| n.clone()).collect(),
        })
    }
}

fn disclosure(name: &str, value: &Value) -> String {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    b64(json!([b64(&salt), name, value]).to_string().as_bytes())
}

/// The digest of a disclosure as it appears in `_sd`.
pub fn digest(disclosure: &str) -> String {
    b64(&Sha256::digest(disclosure.as_bytes()))
}

/// What verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not an SD-JWT: {0}")]
    Malformed(&'static str),
    #[error("the credential's key {0} is not among the holder's published keys")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    Signature,
    #[error("the credential is not of type dc+sd-jwt signed with EdDSA")]
    Header,
    #[error("a disclosure is not in the signed digests, or is given twice")]
    Disclosure,
    #[error("the credential expired")]
    Expired,
    #[error("the credential is not valid yet")]
    NotYetValid,
}

/// A verified credential: the issuer's claims with the disclosed items in
/// place of their digests.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub kid: String,
    pub claims: Map<String, Value>,
    /// The names of the disclosed items.
    pub items: Vec<String>,
}

impl Verified {
    /// The credential's status list entry, if it has one.
    pub fn status(&self) -> Option<(String, u64)> {
        let entry = self.claims.get("status")?.get("status_list")?;
        Some((
            entry.get("uri")?.as_str()?.to_owned(),
            entry.get("idx")?.as_u64()?,
        ))
    }
}

/// Splits a JWS into its header, payload (decoded) and checks its EdDSA
/// signature against `keys`.
pub fn verify_jws(jws: &str, keys: &JwkSet, typ: &str) -> Result<(String, Value), VerifyError> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed("a JWS has three parts"));
    };
    let header: Value = unb64(h)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed("the header is not base64url JSON"))?;
    if header["alg"] != "EdDSA" || header["typ"] != typ {
        return Err(VerifyError::Header);
    }
    let kid = header["kid"]
        .as_str()
        .ok_or(VerifyError::Malformed("the header names no key"))?;
    let key = keys
        .find(kid)
        .ok_or_else(|| VerifyError::UnknownKey(kid.to_owned()))?;
    let sig: [u8; 64] = unb64(s)
        .and_then(|b| b.try_into().ok())
        .ok_or(VerifyError::Malformed("the signature is not 64 bytes"))?;
    key.verify_strict(format!("{h}.{p}").as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| VerifyError::Signature)?;
    let payload: Value = unb64(p)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(VerifyError::Malformed("the payload is not base64url JSON"))?;
    Ok((kid.to_owned(), payload))
}

/// Verifies an SD-JWT VC against the holder's keys at time `now` (Unix
/// seconds). The status list is checked apart ([`crate::StatusList`]).
pub fn verify(compact: &str, keys: &JwkSet, now: i64) -> Result<Verified, VerifyError> {
    // A credential of ours carries tens of items: a bound keeps hostile
    // input from costing more than one.
    if compact.len() > 1 << 20 || compact.matches('~').count() > 1_000 {
        return Err(VerifyError::Malformed("longer than any credential"));
    }
    let mut parts = compact.split('~');
    let jws = parts.next().unwrap_or_default();
    let mut rest: Vec<&str> = parts.collect();
    // Without key binding the last part is empty (the form ends with ~).
    if rest.pop() != Some("") {
        return Err(VerifyError::Malformed(
            "it must end with ~ (no key binding)",
        ));
    }
    let (kid, payload) = verify_jws(jws, keys, TYP)?;
    let Value::Object(mut claims) = payload else {
        return Err(VerifyError::Malformed("the payload is not an object"));
    };
    // RFC 9901: sha-256 when absent.
    match claims.remove("_sd_alg") {
        None => {}
        Some(Value::String(alg)) if alg == "sha-256" => {}
        Some(_) => return Err(VerifyError::Malformed("_sd_alg must be sha-256")),
    }
    let digests: BTreeSet<String> = match claims.remove("_sd") {
        Some(Value::Array(d)) => {
            let count = d.len();
            let set: BTreeSet<String> = d
                .into_iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or(VerifyError::Malformed("_sd holds a non-string"))?;
            if set.len() != count {
                return Err(VerifyError::Malformed("_sd holds a digest twice"));
            }
            set
        }
        None => BTreeSet::new(),
        Some(_) => return Err(VerifyError::Malformed("_sd is not an array")),
    };
    let mut used = BTreeSet::new();
    let mut items = Vec::with_capacity(rest.len());
    for d in rest {
        let hash = digest(d);
        if !digests.contains(&hash) || !used.insert(hash) {
            return Err(VerifyError::Disclosure);
        }
        let array: Value = unb64(d)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(VerifyError::Malformed("a disclosure is not base64url JSON"))?;
        let Some([_salt, Value::String(name), value]) = array.as_array().map(Vec::as_slice) else {
            return Err(VerifyError::Malformed(
                "a disclosure is not [salt, name, value]",
            ));
        };
        if RESERVED.contains(&name.as_str()) || claims.contains_key(name) {
            return Err(VerifyError::Disclosure);
        }
        claims.insert(name.clone(), value.clone());
        items.push(name.clone());
    }
    match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) if exp > now => {}
        Some(_) => return Err(VerifyError::Expired),
        None => return Err(VerifyError::Malformed("no exp")),
    }
    // A minute of clock skew between holder and agency.
    if claims
        .get("iat")
        .and_then(Value::as_i64)
        .is_none_or(|iat| iat > now + 60)
    {
        return Err(VerifyError::NotYetValid);
    }
    if claims.get("vct").and_then(Value::as_str).is_none() {
        return Err(VerifyError::Malformed("no vct"));
    }
    Ok(Verified { kid, claims, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> Issuer {
        Issuer::new(
            SigningKey::from_bytes(&[3; 32]),
            "https://nhis.example.go.kr",
        )
    }

    fn items() -> Vec<(String, Value)> {
        vec![
            ("income_bracket".into(), json!(4)),
            ("household_size".into(), json!(3)),
        ]
    }

    #[test]
    fn an_issued_credential_verifies_with_its_items() {
        let i = issuer();
        let issued = i
            .issue(
                "https://civic.example/vct/income",
                Map::new(),
                &items(),
                1_000,
                2_000,
                Some(("https://nhis.example.go.kr/status/1", 7)),
            )
            .unwrap();
        let v = verify(&issued.compact, &i.jwks(), 1_500).unwrap();
        assert_eq!(v.claims["income_bracket"], 4);
        assert_eq!(v.claims["household_size"], 3);
        assert_eq!(v.items, ["income_bracket", "household_size"]);
        assert!(!v.claims.contains_key("_sd"));
        assert_eq!(
            v.status(),
            Some(("https://nhis.example.go.kr/status/1".into(), 7))
        );
        // The signed part names no item: only digests.
        let jws = issued.compact.split('~').next().unwrap();
        let payload = String::from_utf8(unb64(jws.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert!(!payload.contains("income_bracket"), "{payload}");
    }

    #[test]
    fn dropping_a_disclosure_hides_its_item_and_nothing_else() {
        let i = issuer();
        let issued = i
            .issue("t", Map::new(), &items(), 1_000, 2_000, None)
            .unwrap();
        let parts: Vec<&str> = issued.compact.split('~').collect();
        let fewer = format!("{}~{}~", parts[0], parts[2]);
        let v = verify(&fewer, &i.jwks(), 1_500).unwrap();
        assert_eq!(v.items, ["household_size"]);
        assert!(!v.claims.contains_key("income_bracket"));
    }

    #[test]
    fn tampering_is_refused() {
        let i = issuer();
        let issued = i
            .issue("t", Map::new(), &items(), 1_000, 2_000, None)
            .unwrap();
        let parts: Vec<&str> = issued.compact.split('~').collect();
        // A disclosure of the issuer's making, with another value.
        let forged = b64(json!(["c2FsdA", "income_bracket", 1])
            .to_string()
            .as_bytes());
        let swapped = format!("{}~{forged}~{}~", parts[0], parts[2]);
        assert_eq!(
            verify(&swapped, &i.jwks(), 1_500),
            Err(VerifyError::Disclosure)
        );
        let twice = format!("{}~{}~{}~", parts[0], parts[1], parts[1]);
        assert_eq!(
            verify(&twice, &i.jwks(), 1_500),
            Err(VerifyError::Disclosure)
        );
        // Another holder's keys.
        let other = Issuer::new(SigningKey::from_bytes(&[4; 32]), "x");
        assert!(matches!(
            verify(&issued.compact, &other.jwks(), 1_500),
            Err(VerifyError::UnknownKey(_))
        ));
        // A changed payload.
        let jws: Vec<&str> = parts[0].split('.').collect();
        let payload = String::from_utf8(unb64(jws[1]).unwrap())
            .unwrap()
            .replace("2000", "9000");
        let changed = format!(
            "{}.{}.{}~{}~",
            jws[0],
            b64(payload.as_bytes()),
            jws[2],
            parts[1]
        );
        assert_eq!(
            verify(&changed, &i.jwks(), 1_500),
            Err(VerifyError::Signature)
        );
        assert_eq!(
            verify(&issued.compact, &i.jwks(), 2_000),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify(&issued.compact, &i.jwks(), 800),
            Err(VerifyError::NotYetValid)
        );
        assert!(matches!(
            verify("nonsense", &i.jwks(), 1_500),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn reserved_names_and_repeated_items_are_refused() {
        let i = issuer();
        let bad = [("exp".to_owned(), json!(1))];
        assert!(i.issue("t", Map::new(), &bad, 1, 2, None).is_err());
        let twice = [("a".to_owned(), json!(1)), ("a".to_owned(), json!(2))];
        assert!(i.issue("t", Map::new(), &twice, 1, 2, None).is_err());
    }
}
