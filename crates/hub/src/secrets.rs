//! Passwords (Argon2id), one-time codes (TOTP, RFC 6238) and bearer tokens.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use civic_core::identity::Password;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// Argon2id with OWASP's recommended parameters (19 MiB, 2 passes).
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters"),
    )
}

pub fn hash_password(password: &Password) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("Argon2 hashing does not fail with valid parameters")
        .to_string()
}

pub fn verify_password(hash: &str, password: &Password) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// At most one Argon2 computation per core at a time, each on a blocking
/// thread: a burst of sign-ins neither stalls the async workers nor takes
/// 19 MiB per attempt without bound.
fn argon2_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::sync::Semaphore::new(cores)
    })
}

async fn on_blocking_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = argon2_permits()
        .acquire()
        .await
        .expect("the semaphore is never closed");
    tokio::task::spawn_blocking(work)
        .await
        .expect("Argon2 does not panic")
}

/// [`hash_password`] off the async threads.
pub async fn hash_password_async(password: Password) -> String {
    on_blocking_thread(move || hash_password(&password)).await
}

/// [`verify_password`] off the async threads.
pub async fn verify_password_async(hash: String, password: Password) -> bool {
    on_blocking_thread(move || verify_password(&hash, &password)).await
}

/// [`verify_nothing`] off the async threads.
pub async fn verify_nothing_async(password: Password) {
    on_blocking_thread(move || verify_nothing(&password)).await
}

/// Spends the time of a real verification, so that an unknown username
/// takes as long to refuse as a wrong password.
pub fn verify_nothing(password: &Password) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let hash =
        DUMMY.get_or_init(|| hash_password(&Password::offered("no such user").expect("valid")));
    let _ = verify_password(hash, password);
}

/// A 160-bit TOTP secret (RFC 4226 recommends at least 128 bits).
pub fn new_totp_secret() -> [u8; 20] {
    let mut secret = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

pub const TOTP_PERIOD: i64 = 30;
pub const TOTP_DIGITS: u32 = 6;

/// The HOTP value (RFC 4226) of `counter` with `digits` digits.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The TOTP code for Unix time `unix_seconds`, as the user types it.
pub fn totp_code(secret: &[u8], unix_seconds: i64) -> String {
    let step = unix_seconds.div_euclid(TOTP_PERIOD);
    format!("{:06}", hotp(secret, step as u64, TOTP_DIGITS))
}

/// Checks a typed code against the current step and one step either side
/// (clock drift); returns the step it matched.
pub fn totp_matches(secret: &[u8], code: &str, unix_seconds: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_seconds.div_euclid(TOTP_PERIOD);
    [now - 1, now, now + 1].into_iter().find(|&step| {
        let want = format!("{:06}", hotp(secret, step as u64, TOTP_DIGITS));
        constant_time_eq(want.as_bytes(), code.as_bytes())
    })
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    data_encoding::BASE32_NOPAD
        .decode(cleaned.trim_end_matches('=').as_bytes())
        .ok()
}

/// The `otpauth://` URI authenticator apps read from a QR code.
pub fn otpauth_uri(account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/Civic%20Data%20Hub:{account}?secret={}&issuer=Civic%20Data%20Hub&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_PERIOD}",
        base32(secret)
    )
}

/// A new bearer token: `prefix` and 256 random bits. Only its hash is stored.
pub fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{prefix}{}",
        data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase()
    )
}

pub fn token_hash(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}

/// Encrypts `plain` with XChaCha20-Poly1305 under `key`, bound to
/// `context` (associated data: sealed bytes copied elsewhere do not open
/// there); a random nonce leads.
pub fn seal(key: &[u8; 32], context: &str, plain: &[u8]) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    use rand::RngCore;
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: context.as_bytes(),
            },
        )
        .expect("XChaCha20-Poly1305 encryption does not fail");
    [nonce.as_slice(), &sealed].concat()
}

/// Opens what [`seal`] made under `key` for `context`.
pub fn open(key: &[u8; 32], context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};
    if sealed.len() < 24 {
        return None;
    }
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(&sealed[..24]),
            Payload {
                msg: &sealed[24..],
                aad: context.as_bytes(),
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_test_vectors() {
        // RFC 6238 appendix B, SHA-1, eight digits.
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(hotp(secret, t / 30, 8), want, "T = {t}");
        }
    }

    #[test]
    fn codes_match_within_one_step_only() {
        let secret = new_totp_secret();
        let now = 1_700_000_000;
        let code = totp_code(&secret, now);
        assert_eq!(totp_matches(&secret, &code, now), Some(now / 30));
        assert!(totp_matches(&secret, &code, now + 30).is_some());
        assert!(totp_matches(&secret, &code, now + 120).is_none());
        assert!(totp_matches(&secret, "12345", now).is_none());
        assert!(totp_matches(&secret, "abcdef", now).is_none());
        assert_eq!(from_base32(&base32(&secret)).unwrap(), secret);
    }

    #[test]
    fn passwords_verify() {
        let p = Password::parse_new("a long enough password").unwrap();
        let h = hash_password(&p);
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, &p));
        assert!(!verify_password(&h, &Password::offered("wrong").unwrap()));
        assert!(!verify_password("garbage", &p));
    }
}
