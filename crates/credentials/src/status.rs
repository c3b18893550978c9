//! Token Status Lists (IETF OAuth "Token Status List"): one bit per
//! credential a holder issued, 0 valid and 1 revoked, published as a
//! signed JWT (`typ` `statuslist+jwt`) whose `status_list.lst` is the bit
//! string compressed with DEFLATE in the ZLIB format, base64url. Bit `i`
//! is bit `i % 8` (least significant first) of byte `i / 8`.

use crate::jwk::JwkSet;
use crate::sdjwt::{verify_jws, Issuer, VerifyError};
use crate::{b64, unb64};
use serde_json::json;
use std::io::{Read, Write};

pub const TYP: &str = "statuslist+jwt";

/// Entries a list may hold (a list is fetched whole by every verifier).
pub const MAX_ENTRIES: u64 = 1 << 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusListError {
    #[error(transparent)]
    Token(#[from] VerifyError),
    #[error("the status list token is not for {0}")]
    WrongList(String),
    #[error("the status list is malformed: {0}")]
    Malformed(&'static str),
    #[error("index {0} is outside the status list")]
    OutOfRange(u64),
}

/// A holder's list of its credentials' states.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusList {
    bytes: Vec<u8>,
}

impl StatusList {
    /// A list of `len` valid entries.
    pub fn new(len: u64) -> Self {
        Self {
            bytes: vec![0; len.min(MAX_ENTRIES).div_ceil(8) as usize],
        }
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 * 8
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Marks entry `idx` revoked (it never becomes valid again).
    pub fn revoke(&mut self, idx: u64) -> Result<(), StatusListError> {
        let byte = usize::try_from(idx / 8)
            .ok()
            .and_then(|i| self.bytes.get_mut(i))
            .ok_or(StatusListError::OutOfRange(idx))?;
        *byte |= 1 << (idx % 8);
        Ok(())
    }

    pub fn is_revoked(&self, idx: u64) -> Result<bool, StatusListError> {
        let byte = usize::try_from(idx / 8)
            .ok()
            .and_then(|i| self.bytes.get(i))
            .ok_or(StatusListError::OutOfRange(idx))?;
        Ok(byte & (1 << (idx % 8)) != 0)
    }

    fn compressed(&self) -> String {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&self.bytes).expect("writing to memory");
        b64(&z.finish().expect("writing to memory"))
    }

    /// The list as a signed token for `uri` (the `sub` a verifier checks),
    /// valid `ttl` seconds from `iat`.
    pub fn to_token(&self, issuer: &Issuer, uri: &str, iat: i64, ttl: i64) -> String {
        let payload = json!({
            "sub": uri,
            "iat": iat,
            "exp": iat + ttl,
            "ttl": ttl,
            "status_list": {"bits": 1, "lst": self.compressed()},
        });
        issuer.sign_jws(TYP, &payload)
    }

    /// Reads a signed list for `uri`, checking its signature and expiry.
    pub fn from_token(
        token: &str,
        keys: &JwkSet,
        uri: &str,
        now: i64,
    ) -> Result<Self, StatusListError> {
        let (_, payload) = verify_jws(token, keys, TYP)?;
        if payload["sub"] != uri {
            return Err(StatusListError::WrongList(uri.to_owned()));
        }
        if payload["exp"].as_i64().is_some_and(|exp| exp <= now) {
            return Err(StatusListError::Token(VerifyError::Expired));
        }
        let list = &payload["status_list"];
        if list["bits"] != 1 {
            return Err(StatusListError::Malformed("only 1-bit lists are used"));
        }
        let packed = list["lst"]
            .as_str()
            .and_then(unb64)
            .ok_or(StatusListError::Malformed("lst is not base64url"))?;
        let mut bytes = Vec::new();
        flate2::read::ZlibDecoder::new(packed.as_slice())
            .take(MAX_ENTRIES / 8 + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| StatusListError::Malformed("lst is not ZLIB"))?;
        if bytes.len() as u64 > MAX_ENTRIES / 8 {
            return Err(StatusListError::Malformed("the list is too long"));
        }
        Ok(Self { bytes })
    }
}

/// Whether a credential's status entry says it is revoked, given the
/// holder's signed list at `uri`.
pub fn is_revoked(
    token: &str,
    keys: &JwkSet,
    uri: &str,
    idx: u64,
    now: i64,
) -> Result<bool, StatusListError> {
    StatusList::from_token(token, keys, uri, now)?.is_revoked(idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn bits_are_least_significant_first() {
        // The specification's example: indexes 0, 3, 4, 5, 7, 8, 9, 13, 15
        // revoked give the bytes B9 A3.
        let mut list = StatusList::new(16);
        for i in [0, 3, 4, 5, 7, 8, 9, 13, 15] {
            list.revoke(i).unwrap();
        }
        assert_eq!(list.bytes, [0xB9, 0xA3]);
        assert!(list.is_revoked(13).unwrap());
        assert!(!list.is_revoked(14).unwrap());
        assert_eq!(list.revoke(16), Err(StatusListError::OutOfRange(16)));
    }

    #[test]
    fn a_signed_list_reads_back_and_is_bound_to_its_uri_and_key() {
        let issuer = Issuer::new(SigningKey::from_bytes(&[5; 32]), "https://h.example");
        let mut list = StatusList::new(100_000);
        list.revoke(4_242).unwrap();
        let uri = "https://h.example/status/1";
        let token = list.to_token(&issuer, uri, 1_000, 3_600);
        assert!(
            token.len() < 1_000,
            "a sparse list compresses: {}",
            token.len()
        );
        assert!(is_revoked(&token, &issuer.jwks(), uri, 4_242, 1_500).unwrap());
        assert!(!is_revoked(&token, &issuer.jwks(), uri, 4_243, 1_500).unwrap());
        assert_eq!(
            StatusList::from_token(&token, &issuer.jwks(), "https://h.example/status/2", 1_500),
            Err(StatusListError::WrongList(
                "https://h.example/status/2".into()
            ))
        );
        assert!(StatusList::from_token(&token, &issuer.jwks(), uri, 5_000).is_err());
        let other = Issuer::new(SigningKey::from_bytes(&[6; 32]), "x");
        assert!(StatusList::from_token(&token, &other.jwks(), uri, 1_500).is_err());
    }
}
