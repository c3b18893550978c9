//! Ed25519 public keys as JWKs (RFC 8037), named by their RFC 7638
//! thumbprint, and the key set a holder publishes.

use crate::{b64, unb64};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A public signing key.
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
    pub fn ed25519(key: &VerifyingKey) -> Self {
        let x = b64(key.as_bytes());
        Self {
            kid: thumbprint(&x),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            use_: Some("sig".into()),
            alg: Some("EdDSA".into()),
        }
    }

    /// The key, if this is an Ed25519 key whose `kid` is its thumbprint.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        if self.kty != "OKP" || self.crv != "Ed25519" || self.kid != thumbprint(&self.x) {
            return None;
        }
        let bytes: [u8; 32] = unb64(&self.x)?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok()
    }
}

/// RFC 7638: SHA-256 over the required members in lexical order.
fn thumbprint(x: &str) -> String {
    okp_thumbprint("Ed25519", x)
}

/// The RFC 7638 thumbprint of an OKP key (RFC 8037) of curve `crv`.
pub(crate) fn okp_thumbprint(crv: &str, x: &str) -> String {
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
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}
