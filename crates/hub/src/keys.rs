//! The hub's own keys, kept as files in the data directory (mode 0600):
//! `hub-signing.key` (Ed25519: tree heads, envelopes, grants),
//! `hub-sealing.key` (XChaCha20-Poly1305: secrets at rest such as TOTP
//! seeds) and `hub-ca-key.pem` (the certificate authority of hub–node
//! mutual TLS). The database never holds any of them.

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use std::path::Path;

pub struct HubKeys {
    signing: SigningKey,
    sealing: [u8; 32],
    ca_key_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot use key file {0}: {1}")]
    Io(String, std::io::Error),
    #[error("key file {0} is malformed")]
    Malformed(String),
}

fn read_or_create(path: &Path) -> Result<[u8; 32], KeyError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => data_encoding::HEXLOWER_PERMISSIVE
            .decode(text.trim().as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(KeyError::Malformed(shown)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| KeyError::Io(shown.clone(), e))?;
            }
            write_private(path, &data_encoding::HEXLOWER.encode(&key))
                .map_err(|e| KeyError::Io(shown, e))?;
            Ok(key)
        }
        Err(e) => Err(KeyError::Io(shown, e)),
    }
}

/// Creates `dir` and any missing parents, readable by their owner only
/// (the data directory holds the keys and the embedded database).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

impl HubKeys {
    /// Loads the keys from `dir`, creating any that do not exist yet.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        create_private_dir(dir).map_err(|e| KeyError::Io(dir.display().to_string(), e))?;
        let ca_path = dir.join("hub-ca-key.pem");
        let shown = ca_path.display().to_string();
        let ca_key_pem = match std::fs::read_to_string(&ca_path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = civic_exchange::trust::CertificateAuthority::generate()
                    .map_err(|_| KeyError::Malformed(shown.clone()))?
                    .key_pem();
                write_private(&ca_path, &pem).map_err(|e| KeyError::Io(shown.clone(), e))?;
                pem
            }
            Err(e) => return Err(KeyError::Io(shown, e)),
        };
        Ok(Self {
            signing: SigningKey::from_bytes(&read_or_create(&dir.join("hub-signing.key"))?),
            sealing: read_or_create(&dir.join("hub-sealing.key"))?,
            ca_key_pem,
        })
    }

    /// The public half of the signing key in `dir`, if the key exists.
    pub fn public_key_in(dir: &Path) -> Result<Option<VerifyingKey>, KeyError> {
        let path = dir.join("hub-signing.key");
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(
            SigningKey::from_bytes(&read_or_create(&path)?).verifying_key(),
        ))
    }

    /// Throw-away keys (tests).
    pub fn ephemeral() -> Self {
        let mut sealing = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut sealing);
        Self {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
            sealing,
            ca_key_pem: civic_exchange::trust::CertificateAuthority::generate()
                .expect("a new CA key")
                .key_pem(),
        }
    }

    /// The certificate authority of hub–node mutual TLS.
    pub fn ca(&self) -> civic_exchange::trust::CertificateAuthority {
        civic_exchange::trust::CertificateAuthority::from_key_pem(&self.ca_key_pem)
            .expect("the CA key was checked when loaded")
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Encrypts `plain`, bound to `context` (e.g. `totp:12`): a sealed
    /// value copied to another row does not open.
    pub fn seal(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        crate::secrets::seal(&self.sealing, context, plain)
    }

    /// A stable pseudonym of `value` (HMAC-SHA-256 under the sealing key,
    /// 64 bits in hex): the same input always gives the same pseudonym, and
    /// nothing gives the input back. Used where a value may be a secret
    /// typed in the wrong field, such as an unknown username.
    pub fn pseudonym(&self, value: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.sealing)
            .expect("HMAC takes any key length");
        mac.update(b"pseudonym:");
        mac.update(value.as_bytes());
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()[..8])
    }

    /// An HMAC-SHA-256 of `value` under the sealing key, for `context`:
    /// proof that the hub itself made a value it gets back (a device
    /// token), which only the hub can check.
    pub fn tag(&self, context: &str, value: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.sealing)
            .expect("HMAC takes any key length");
        mac.update(context.as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn open(&self, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        crate::secrets::open(&self.sealing, context, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_sealed_values_open_only_in_their_context() {
        let dir = tempfile::tempdir().unwrap();
        let a = HubKeys::load_or_create(dir.path()).unwrap();
        let b = HubKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(a.signing_key().to_bytes(), b.signing_key().to_bytes());
        let sealed = a.seal("totp:1", b"secret");
        assert_eq!(b.open("totp:1", &sealed).as_deref(), Some(&b"secret"[..]));
        assert_eq!(b.open("totp:2", &sealed), None);
        assert_eq!(
            HubKeys::public_key_in(dir.path()).unwrap(),
            Some(a.signing_key().verifying_key())
        );
    }

    #[test]
    fn a_missing_data_directory_is_made_for_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("not/yet/there");
        HubKeys::load_or_create(&data).unwrap();
        assert!(data.join("hub-ca-key.pem").is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&data).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        }
    }
}
