//! Packages encrypted to the using agency: JWE compact serialisation
//! (RFC 7516) with `alg` `ECDH-ES` (direct key agreement, RFC 7518 §4.6)
//! over X25519 (RFC 8037) and `enc` `A256GCM`. Only the agency's private
//! key opens a package; the hub relays it without reading it.

use crate::{b64, unb64};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};

/// An agency's public encryption key, as it publishes it: an X25519 JWK.
pub type EncryptionJwk = crate::jwk::Jwk;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JweError {
    #[error("not a JWE of this kind: {0}")]
    Malformed(&'static str),
    #[error("the recipient's key is not an X25519 key")]
    Key,
    #[error("the package was not encrypted to this key, or was changed")]
    Decrypt,
}

/// Concat KDF (NIST SP 800-56A, RFC 7518 §4.6.2) for one 256-bit key in
/// direct mode, without PartyUInfo or PartyVInfo.
fn concat_kdf(z: &[u8], enc: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update((enc.len() as u32).to_be_bytes());
    h.update(enc.as_bytes());
    h.update(0u32.to_be_bytes()); // PartyUInfo
    h.update(0u32.to_be_bytes()); // PartyVInfo
    h.update(256u32.to_be_bytes()); // SuppPubInfo: key length in bits
    h.finalize().into()
}

/// Encrypts `plaintext` to `recipient`; `cty` names what is inside
/// (e.g. `dc+sd-jwt`).
pub fn encrypt(plaintext: &[u8], recipient: &EncryptionJwk, cty: &str) -> Result<String, JweError> {
    let to = recipient.public_key().ok_or(JweError::Key)?;
    let ephemeral = EphemeralSecret::random_from_rng(rand::rngs::OsRng);
    let epk = PublicKey::from(&ephemeral);
    let z = ephemeral.diffie_hellman(&to);
    if !z.was_contributory() {
        return Err(JweError::Key);
    }
    let header = json!({
        "alg": "ECDH-ES",
        "enc": "A256GCM",
        "cty": cty,
        "kid": recipient.kid,
        "epk": {"kty": "OKP", "crv": "X25519", "x": b64(epk.as_bytes())},
    });
    let protected = b64(header.to_string().as_bytes());
    let key = concat_kdf(z.as_bytes(), "A256GCM");
    let mut iv = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let mut buffer = plaintext.to_vec();
    let tag = Aes256Gcm::new(&key.into())
        .encrypt_in_place_detached(Nonce::from_slice(&iv), protected.as_bytes(), &mut buffer)
        .map_err(|_| JweError::Malformed("the plaintext is too long"))?;
    Ok(format!(
        "{protected}..{}.{}.{}",
        b64(&iv),
        b64(&buffer),
        b64(&tag)
    ))
}

/// Opens a package with the agency's private key; returns what is inside
/// and its `cty`.
pub fn decrypt(jwe: &str, key: &StaticSecret) -> Result<(Vec<u8>, String), JweError> {
    let parts: Vec<&str> = jwe.splitn(6, '.').collect();
    let [protected, encrypted_key, iv, ciphertext, tag] = parts[..] else {
        return Err(JweError::Malformed("a compact JWE has five parts"));
    };
    if !encrypted_key.is_empty() {
        return Err(JweError::Malformed("ECDH-ES has no encrypted key"));
    }
    let header: Value = unb64(protected)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JweError::Malformed("the header is not base64url JSON"))?;
    if header["alg"] != "ECDH-ES"
        || header["enc"] != "A256GCM"
        || header["epk"]["kty"] != "OKP"
        || header["epk"]["crv"] != "X25519"
    {
        return Err(JweError::Malformed("only ECDH-ES over X25519 with A256GCM"));
    }
    // Nothing this implementation does not understand, and no party info
    // (its key derivation takes none).
    for unsupported in ["crit", "zip", "apu", "apv"] {
        if header.get(unsupported).is_some() {
            return Err(JweError::Malformed(
                "crit, zip, apu and apv are not supported",
            ));
        }
    }
    let epk: [u8; 32] = header["epk"]["x"]
        .as_str()
        .and_then(unb64)
        .and_then(|b| b.try_into().ok())
        .ok_or(JweError::Malformed("epk is not an X25519 key"))?;
    let z = key.diffie_hellman(&PublicKey::from(epk));
    if !z.was_contributory() {
        return Err(JweError::Decrypt);
    }
    let cek = concat_kdf(z.as_bytes(), "A256GCM");
    let iv: [u8; 12] = unb64(iv)
        .and_then(|b| b.try_into().ok())
        .ok_or(JweError::Malformed("the IV is not 96 bits"))?;
    let tag: [u8; 16] = unb64(tag)
        .and_then(|b| b.try_into().ok())
        .ok_or(JweError::Malformed("the tag is not 128 bits"))?;
    let mut buffer =
        unb64(ciphertext).ok_or(JweError::Malformed("the ciphertext is not base64url"))?;
    Aes256Gcm::new(&cek.into())
        .decrypt_in_place_detached(
            Nonce::from_slice(&iv),
            protected.as_bytes(),
            &mut buffer,
            Tag::from_slice(&tag),
        )
        .map_err(|_| JweError::Decrypt)?;
    let cty = header["cty"].as_str().unwrap_or_default().to_owned();
    Ok((buffer, cty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_agency_opens_its_package_and_a_change_is_detected() {
        let agency = StaticSecret::from([1u8; 32]);
        let jwk = EncryptionJwk::x25519(&PublicKey::from(&agency));
        let jwe = encrypt("소득 4분위".as_bytes(), &jwk, "dc+sd-jwt").unwrap();
        let (plain, cty) = decrypt(&jwe, &agency).unwrap();
        assert_eq!(String::from_utf8(plain).unwrap(), "소득 4분위");
        assert_eq!(cty, "dc+sd-jwt");
        let other = StaticSecret::from([2u8; 32]);
        assert_eq!(decrypt(&jwe, &other), Err(JweError::Decrypt));
        let mut parts: Vec<String> = jwe.split('.').map(str::to_owned).collect();
        parts[3] = b64(b"something else entirely");
        assert_eq!(decrypt(&parts.join("."), &agency), Err(JweError::Decrypt));
        assert!(matches!(
            decrypt("a.b", &agency),
            Err(JweError::Malformed(_))
        ));
    }
}
