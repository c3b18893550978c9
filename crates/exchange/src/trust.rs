//! Who is who on the wire: the hub's certificate authority, node enrolment
//! by certificate signing request (the node's private key never leaves
//! it), and the rustls configurations for mutual TLS — every connection
//! between hub and nodes proves both ends with a certificate from the CA.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Invalid(String),
}

const CA_NAME: &str = "Civic Data Hub CA";

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The hub's certificate authority.
pub struct CertificateAuthority {
    key: KeyPair,
    cert: rcgen::Certificate,
}

/// A certificate and its chain, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    /// The CA certificate, which the holder trusts for its peers.
    pub ca_pem: String,
}

impl CertificateAuthority {
    pub fn generate() -> Result<Self, TrustError> {
        Self::from_key_pem(&KeyPair::generate()?.serialize_pem())
    }

    /// Re-creates the CA from its key: the subject and key are the same, so
    /// the trust anchor peers hold is too.
    pub fn from_key_pem(key_pem: &str) -> Result<Self, TrustError> {
        let key = KeyPair::from_pem(key_pem)?;
        let cert = ca_params().self_signed(&key)?;
        Ok(Self { key, cert })
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// Signs a node's (or the hub's) certificate signing request for
    /// `name`, usable as a TLS client and server for `name` and loopback.
    pub fn sign_request(&self, csr_pem: &str, name: &str) -> Result<Issued, TrustError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(TrustError::Invalid(format!(
                "{name:?} is not a node name (a-z, 0-9, '-', '.')"
            )));
        }
        let mut request = CertificateSigningRequestParams::from_pem(csr_pem)?;
        // The CA decides what the certificate says, not the requester.
        let mut params = CertificateParams::new(vec![name.to_owned(), "localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(std::net::IpAddr::from([
                127, 0, 0, 1,
            ])));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        request.params = params;
        let cert = request.signed_by(&self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            ca_pem: self.cert_pem(),
        })
    }
}

/// A new key pair and a certificate signing request for `name` (what a
/// node sends to enrol, keeping the key).
pub fn new_request(name: &str) -> Result<(String, String), TrustError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![name.to_owned()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TrustError::Invalid(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TrustError::Invalid("no certificate in the PEM".into()));
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, TrustError> {
    let der = rustls_pemfile::pkcs8_private_keys(&mut pem.as_bytes())
        .next()
        .ok_or_else(|| TrustError::Invalid("no PKCS#8 key in the PEM".into()))?
        .map_err(|e| TrustError::Invalid(format!("key PEM: {e}")))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        der.secret_pkcs8_der().to_vec(),
    )))
}

fn roots(ca_pem: &str) -> Result<Arc<rustls::RootCertStore>, TrustError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c)?;
    }
    Ok(Arc::new(roots))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server that accepts only clients with a certificate from the CA.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<rustls::ServerConfig, TrustError> {
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider())
            .build()
            .map_err(|e| TrustError::Invalid(format!("client verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert_pem)?, key(key_pem)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A TLS client that proves itself with its certificate and trusts only
/// servers with a certificate from the CA.
/// A server that shows its certificate but asks none of its clients (they
/// prove themselves another way: the node's ingest endpoint takes a token).
pub fn server_config_without_client_auth(
    cert_pem: &str,
    key_pem: &str,
) -> Result<rustls::ServerConfig, TrustError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(certs(cert_pem)?, key(key_pem)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

pub fn client_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<rustls::ClientConfig, TrustError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(certs(cert_pem)?, key(key_pem)?)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The common name of a peer's certificate (who is on the other end).
pub fn peer_name(cert: &CertificateDer<'_>) -> Option<String> {
    let params = rcgen::CertificateParams::from_ca_cert_der(cert).ok()?;
    params
        .distinguished_name
        .iter()
        .find_map(|(t, v)| match (t, v) {
            (DnType::CommonName, rcgen::DnValue::Utf8String(s)) => Some(s.clone()),
            (DnType::CommonName, rcgen::DnValue::PrintableString(s)) => Some(s.as_str().to_owned()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Party {
        cert: String,
        key: String,
        ca: String,
    }

    fn enrol(ca: &CertificateAuthority, name: &str) -> Party {
        let (key, csr) = new_request(name).unwrap();
        let issued = ca.sign_request(&csr, name).unwrap();
        Party {
            cert: issued.cert_pem,
            key,
            ca: issued.ca_pem,
        }
    }

    /// Serves one TLS connection; returns the client's name and what it said.
    async fn serve_once(
        server: Party,
    ) -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<Result<(Option<String>, String), String>>,
    ) {
        let config = server_config(&server.cert, &server.key, &server.ca).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
            let name = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(peer_name);
            let mut buf = vec![0u8; 5];
            tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            tls.write_all(b"pong!").await.map_err(|e| e.to_string())?;
            Ok((name, String::from_utf8_lossy(&buf).into_owned()))
        });
        (addr, task)
    }

    async fn call(
        addr: std::net::SocketAddr,
        config: rustls::ClientConfig,
    ) -> Result<String, String> {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut tls = connector
            .connect("hub.civic".try_into().unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping!").await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 5];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    #[tokio::test]
    async fn enrolled_parties_talk_mutual_tls_and_strangers_do_not() {
        let ca = CertificateAuthority::generate().unwrap();
        let hub = enrol(&ca, "hub.civic");
        let node = enrol(&ca, "node-skt.civic");

        // An enrolled node and the hub: both ends proven, the hub sees who.
        let (addr, server) = serve_once(Party {
            cert: hub.cert.clone(),
            key: hub.key.clone(),
            ca: hub.ca.clone(),
        })
        .await;
        let answer = call(
            addr,
            client_config(&node.cert, &node.key, &node.ca).unwrap(),
        )
        .await;
        assert_eq!(answer.unwrap(), "pong!");
        let (name, said) = server.await.unwrap().unwrap();
        assert_eq!(
            (name.as_deref(), said.as_str()),
            (Some("node-skt.civic"), "ping!")
        );

        // A client with a certificate from another CA is refused.
        let other = CertificateAuthority::generate().unwrap();
        let stranger = enrol(&other, "node-skt.civic");
        let (addr, server) = serve_once(Party {
            cert: hub.cert.clone(),
            key: hub.key.clone(),
            ca: hub.ca.clone(),
        })
        .await;
        let client = client_config(&stranger.cert, &stranger.key, &hub.ca).unwrap();
        assert!(call(addr, client).await.is_err());
        assert!(server.await.unwrap().is_err());

        // A client trusting another CA does not accept the hub either.
        let (addr, server) = serve_once(Party {
            cert: hub.cert.clone(),
            key: hub.key.clone(),
            ca: hub.ca.clone(),
        })
        .await;
        let client = client_config(&stranger.cert, &stranger.key, &stranger.ca).unwrap();
        assert!(call(addr, client).await.is_err());
        let _ = server.await;

        // The CA re-created from its key issues certificates old peers trust.
        let reloaded = CertificateAuthority::from_key_pem(&ca.key_pem()).unwrap();
        let late = enrol(&reloaded, "node-kt.civic");
        let (addr, server) = serve_once(Party {
            cert: hub.cert,
            key: hub.key,
            ca: hub.ca.clone(),
        })
        .await;
        assert_eq!(
            call(addr, client_config(&late.cert, &late.key, &hub.ca).unwrap())
                .await
                .unwrap(),
            "pong!"
        );
        assert_eq!(
            server.await.unwrap().unwrap().0.as_deref(),
            Some("node-kt.civic")
        );
    }

    #[test]
    fn names_are_checked_and_the_ca_decides_what_a_certificate_says() {
        let ca = CertificateAuthority::generate().unwrap();
        let (_, csr) = new_request("anything").unwrap();
        assert!(ca.sign_request(&csr, "bad name!").is_err());
        assert!(ca.sign_request("not a csr", "node").is_err());
    }
}
