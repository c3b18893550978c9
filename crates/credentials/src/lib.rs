//! Public MyData's credentials, independent of storage and HTTP.
//!
//! A holding institution sends a citizen's items to a using agency as an
//! SD-JWT VC (RFC 9901, `dc+sd-jwt`) signed with the holder's Ed25519 key:
//! each item is a disclosure the holder includes only when the citizen
//! consented to it. The agency verifies the signature against the
//! holder's published JWK set, the disclosures against their digests, the
//! expiry, and the credential's entry in the holder's status list (a
//! withdrawn consent revokes it).
//!
//! This crate must never log, store or send anything: it only builds and
//! checks bytes.

pub mod jwe;
pub mod jwk;
pub mod sdjwt;
pub mod status;

pub use jwe::{EncryptionJwk, JweError};
pub use jwk::{Jwk, JwkSet};
pub use sdjwt::{Issued, Issuer, Verified, VerifyError};
pub use status::{StatusList, StatusListError};

/// Base64url without padding, as JOSE writes it.
pub(crate) fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Option<Vec<u8>> {
    data_encoding::BASE64URL_NOPAD.decode(text.as_bytes()).ok()
}
