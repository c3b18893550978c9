//! Public keys as OKP JWKs (RFC 8037) — Ed25519 to verify signatures,
//! X25519 to encrypt to — named by their RFC 7638 thumbprint, and the key
//! set a holder publishes.

use crate::{b64, unb64};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A public key: an institution's signing key (Ed25519) or an agency's
/// encryption key (X25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl Jwk {
    fn okp(crv: &str, raw: &[u8], use_: &str, alg: &str) -> Self {
        let x = b64(raw);
        Self {
            kid: okp_thumbprint(crv, &x),
            kty: "OKP".into(),
            crv: crv.into(),
            x,
            use_: Some(use_.into()),
            alg: Some(alg.into()),
        }
    }

    pub fn ed25519(key: &VerifyingKey) -> Self {
        Self::okp("Ed25519", key.as_bytes(), "sig", "EdDSA")
    }

    pub fn x25519(key: &x25519_dalek::PublicKey) -> Self {
        Self::okp("X25519", key.as_bytes(), "enc", "ECDH-ES")
    }

    /// The raw key, if this is an OKP key of curve `crv` whose `kid` is its
    /// thumbprint.
    fn raw(&self, crv: &str) -> Option<[u8; 32]> {
        if self.kty != "OKP" || self.crv != crv || self.kid != okp_thumbprint(crv, &self.x) {
            return None;
        }
        unb64(&self.x)?.try_into().ok()
    }

    /// The key, if this is an Ed25519 key whose `kid` is its thumbprint.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        VerifyingKey::from_bytes(&self.raw("Ed25519")?).ok()
    }

    /// The key, if this is an X25519 key whose `kid` is its thumbprint.
    pub fn public_key(&self) -> Option<x25519_dalek::PublicKey> {
        self.raw("X25519").map(x25519_dalek::PublicKey::from)
    }
}

/// The RFC 7638 thumbprint of an OKP key (RFC 8037) of curve `crv`:
/// SHA-256 over the required members in lexical order.
fn okp_thumbprint(crv: &str, x: &str) -> String {
    let canonical = format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#);
    b64(&Sha256::digest(canonical.as_bytes()))
}

/// A holder's published keys (`/.well-known/jwks.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    pub fn find(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .and_then(Jwk::verifying_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_and_a_changed_one_is_refused() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let jwk = Jwk::ed25519(&key);
        assert_eq!(jwk.verifying_key(), Some(key));
        let set = JwkSet {
            keys: vec![jwk.clone()],
        };
        assert_eq!(set.find(&jwk.kid), Some(key));
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]).verifying_key();
        let forged = Jwk {
            x: b64(other.as_bytes()),
            ..jwk
        };
        assert_eq!(
            forged.verifying_key(),
            None,
            "the kid no longer names the key"
        );
    }

    #[test]
    fn the_thumbprint_follows_rfc_7638_and_8037() {
        // RFC 8037 appendix A.3: the thumbprint of its Ed25519 example key.
        assert_eq!(
            okp_thumbprint("Ed25519", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
