//! Tree heads signed with the hub's Ed25519 key.
//!
//! The signed message is `"civic-tree-head-v1" || tree_size (u64 BE) ||
//! root_hash (32 bytes) || timestamp (i64 BE, microseconds since the epoch)`.

use crate::merkle::{from_hex, to_hex, Hash};
use civic_core::time::Timestamp;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"civic-tree-head-v1";

/// A tree head as served and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedTreeHead {
    pub tree_size: u64,
    /// Hex SHA-256 root of the first `tree_size` records.
    pub root_hash: String,
    /// Microseconds since the Unix epoch.
    pub timestamp: i64,
    /// Hex of the first 8 bytes of SHA-256 of the public key.
    pub key_id: String,
    /// Base64 Ed25519 signature.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeHeadError {
    #[error("the tree head is malformed: {0}")]
    Malformed(&'static str),
    #[error("the tree head was signed by another key ({0})")]
    WrongKey(String),
    #[error("the tree head's signature does not verify")]
    BadSignature,
}

fn message(tree_size: u64, root: &Hash, timestamp: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 48);
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&tree_size.to_be_bytes());
    m.extend_from_slice(root);
    m.extend_from_slice(&timestamp.to_be_bytes());
    m
}

pub fn key_id(key: &VerifyingKey) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The hub's signing identity.
pub struct HubSigner {
    key: SigningKey,
}

impl HubSigner {
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(&self, tree_size: u64, root: &Hash, at: Timestamp) -> SignedTreeHead {
        let signature = self.key.sign(&message(tree_size, root, at.micros()));
        SignedTreeHead {
            tree_size,
            root_hash: to_hex(root),
            timestamp: at.micros(),
            key_id: key_id(&self.verifying_key()),
            signature: data_encoding::BASE64.encode(&signature.to_bytes()),
        }
    }
}

impl SignedTreeHead {
    pub fn root(&self) -> Result<Hash, TreeHeadError> {
        from_hex(&self.root_hash).ok_or(TreeHeadError::Malformed("root_hash is not 32 hex bytes"))
    }

    /// Checks the signature against a trusted public key.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Hash, TreeHeadError> {
        if self.key_id != key_id(key) {
            return Err(TreeHeadError::WrongKey(self.key_id.clone()));
        }
        let root = self.root()?;
        let sig: [u8; 64] = data_encoding::BASE64
            .decode(self.signature.as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(TreeHeadError::Malformed("signature is not 64 base64 bytes"))?;
        key.verify(
            &message(self.tree_size, &root, self.timestamp),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| TreeHeadError::BadSignature)?;
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_heads_verify_and_forgeries_do_not() {
        let signer = HubSigner::new(SigningKey::generate(&mut rand::rngs::OsRng));
        let root = [7u8; 32];
        let head = signer.sign(10, &root, Timestamp::from_micros(1_000));
        assert_eq!(head.verify(&signer.verifying_key()).unwrap(), root);

        let mut bigger = head.clone();
        bigger.tree_size = 11;
        assert_eq!(
            bigger.verify(&signer.verifying_key()),
            Err(TreeHeadError::BadSignature)
        );

        let other = HubSigner::new(SigningKey::generate(&mut rand::rngs::OsRng));
        assert!(matches!(
            head.verify(&other.verifying_key()),
            Err(TreeHeadError::WrongKey(_))
        ));
    }
}
