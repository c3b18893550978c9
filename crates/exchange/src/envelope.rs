//! Signed envelopes: every request and answer between hub and node.

use crate::grant::{key_id, SignedGrant};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How far a sender's clock may be from the receiver's.
pub const MAX_SKEW_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub request_id: String,
    /// The sender's key id.
    pub sender: String,
    pub timestamp: i64,
    /// Hex SHA-256 of the body that travels with the envelope.
    pub body_digest: String,
    pub grant: Option<SignedGrant>,
    /// Base64 Ed25519 signature over everything above.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the envelope is signed by key {0}, not by its sender's")]
    WrongSender(String),
    #[error("the envelope's signature does not verify")]
    BadSignature,
    #[error("the envelope's timestamp is {0} s away from this clock")]
    Skewed(i64),
    #[error("the body does not match the envelope's digest")]
    BodyChanged,
}

#[derive(Serialize)]
struct Signed<'a> {
    request_id: &'a str,
    sender: &'a str,
    timestamp: i64,
    body_digest: &'a str,
    grant: &'a Option<SignedGrant>,
}

fn digest(body: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(body))
}

impl Envelope {
    fn message(&self) -> Vec<u8> {
        let mut out = b"civic-envelope-v1\n".to_vec();
        out.extend(
            serde_json::to_vec(&Signed {
                request_id: &self.request_id,
                sender: &self.sender,
                timestamp: self.timestamp,
                body_digest: &self.body_digest,
                grant: &self.grant,
            })
            .expect("an envelope serialises"),
        );
        out
    }

    /// Seals `body` for sending.
    pub fn seal(
        request_id: &str,
        key: &SigningKey,
        timestamp: i64,
        body: &[u8],
        grant: Option<SignedGrant>,
    ) -> Self {
        Self::seal_digest(request_id, key, timestamp, &digest(body), grant)
    }

    /// Seals a body known by its hex SHA-256 (one written as it streamed).
    pub fn seal_digest(
        request_id: &str,
        key: &SigningKey,
        timestamp: i64,
        body_digest: &str,
        grant: Option<SignedGrant>,
    ) -> Self {
        let mut envelope = Self {
            request_id: request_id.to_owned(),
            sender: key_id(&key.verifying_key()),
            timestamp,
            body_digest: body_digest.to_owned(),
            grant,
            signature: String::new(),
        };
        envelope.signature =
            data_encoding::BASE64.encode(&key.sign(&envelope.message()).to_bytes());
        envelope
    }

    /// Checks the envelope came from `sender`, unchanged, recently, with
    /// this `body`.
    pub fn open(&self, sender: &VerifyingKey, body: &[u8], now: i64) -> Result<(), EnvelopeError> {
        self.open_digest(sender, &digest(body), now)
    }

    /// Like [`Envelope::open`], for a body that streamed past: its hex
    /// SHA-256 instead of the body.
    pub fn open_digest(
        &self,
        sender: &VerifyingKey,
        body_digest: &str,
        now: i64,
    ) -> Result<(), EnvelopeError> {
        if self.sender != key_id(sender) {
            return Err(EnvelopeError::WrongSender(self.sender.clone()));
        }
        let bytes: [u8; 64] = data_encoding::BASE64
            .decode(self.signature.as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(EnvelopeError::BadSignature)?;
        sender
            .verify(&self.message(), &Signature::from_bytes(&bytes))
            .map_err(|_| EnvelopeError::BadSignature)?;
        let skew = (now - self.timestamp).abs();
        if skew > MAX_SKEW_SECONDS {
            return Err(EnvelopeError::Skewed(skew));
        }
        if body_digest != self.body_digest {
            return Err(EnvelopeError::BodyChanged);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_verify_and_every_change_is_caught() {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let body = br#"{"windows":1}"#;
        let e = Envelope::seal("r-1", &key, 1_000, body, None);
        assert_eq!(e.open(&key.verifying_key(), body, 1_010), Ok(()));
        assert_eq!(
            e.open(&key.verifying_key(), b"{}", 1_010),
            Err(EnvelopeError::BodyChanged)
        );
        assert_eq!(
            e.open(&key.verifying_key(), body, 2_000),
            Err(EnvelopeError::Skewed(1_000))
        );
        let other = SigningKey::generate(&mut rand::rngs::OsRng);
        assert!(matches!(
            e.open(&other.verifying_key(), body, 1_010),
            Err(EnvelopeError::WrongSender(_))
        ));
        let mut renamed = e.clone();
        renamed.request_id = "r-2".into();
        assert_eq!(
            renamed.open(&key.verifying_key(), body, 1_010),
            Err(EnvelopeError::BadSignature)
        );
        // Round trip through JSON, as it travels.
        let wire: Envelope = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(wire.open(&key.verifying_key(), body, 1_010), Ok(()));
    }
}
