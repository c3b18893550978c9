//! Enrolling institution nodes: an administrator of the institution issues
//! a one-time token for a named node; the node presents it with a
//! certificate signing request and its Ed25519 public key, and receives a
//! certificate from the hub's CA, the CA certificate, and the hub's name
//! and key. The node's private keys never leave it.

use crate::secrets::{self, token_hash};
use crate::{ClientInfo, Ctx, Hub, HubError, Result};
use civic_core::audit::Outcome;
use civic_core::identity::InstitutionId;
use civic_core::policy::Action;
use civic_core::time::Timestamp;
use civic_core::ValidationError;
use civic_store::{AuditStore, InstitutionStore, NewEnrolment, NewNode, NodeStore, StoreError};

/// A node's Ed25519 key, as enrolled.
pub fn node_key(node: &civic_store::Node) -> Result<ed25519_dalek::VerifyingKey> {
    data_encoding::HEXLOWER_PERMISSIVE
        .decode(node.signing_key.as_bytes())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
        .ok_or_else(|| {
            HubError::Store(civic_store::StoreError::Corrupt(format!(
                "node {}'s key is malformed",
                node.name
            )))
        })
}

pub const ENROLMENT_PREFIX: &str = "cdh_e_";
/// The name in the certificate the hub presents to nodes.
pub const HUB_NODE_NAME: &str = "hub.civic";

/// What a node receives when it enrols.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Enrolled {
    pub name: String,
    /// The institution the node holds data for: grants must name it.
    pub institution: String,
    pub certificate: String,
    pub ca: String,
    pub hub_name: String,
    pub hub_key: String,
}

fn node_name(raw: &str) -> Result<String> {
    let name = raw.trim().to_ascii_lowercase();
    let ok = (3..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    if ok && name != HUB_NODE_NAME {
        Ok(name)
    } else {
        Err(ValidationError::new(
            "name",
            "a node name is 3-64 characters of a-z, 0-9, '-', '.', starting with a letter",
        )
        .into())
    }
}

impl Hub {
    /// Issues a one-time enrolment token for the node `name` of
    /// `institution`, valid for `valid_hours` (default 24, at most 168).
    pub async fn issue_enrolment_token(
        &self,
        ctx: &Ctx,
        institution: InstitutionId,
        name: &str,
        valid_hours: Option<i64>,
    ) -> Result<(String, Timestamp)> {
        let entry = self
            .authorize(
                ctx,
                Action::ManageNodes { institution },
                "admin.node.token",
                &format!("institution:{institution}/nodes"),
            )
            .await?;
        let name = node_name(name)?;
        let hours = valid_hours.unwrap_or(24);
        if !(1..=168).contains(&hours) {
            return Err(ValidationError::new("valid_hours", "must be 1-168").into());
        }
        if self.store.institution(institution).await?.is_none() {
            return Err(HubError::NotFound(format!("institution {institution}")));
        }
        let token = secrets::new_token(ENROLMENT_PREFIX);
        let now = Timestamp::now();
        let expires_at = now.plus_seconds(hours * 3600);
        let enrolment = NewEnrolment {
            token_hash: token_hash(&token),
            institution,
            node_name: name.clone(),
            created_at: now,
            expires_at,
        };
        self.store
            .create_enrolment(enrolment, entry.subject(format!("node:{name}")))
            .await?;
        Ok((token, expires_at))
    }

    /// A node enrols with its token, a certificate signing request and
    /// its Ed25519 public key (hex).
    pub async fn enrol_node(
        &self,
        token: &str,
        name: &str,
        csr_pem: &str,
        signing_key: &str,
        client: &ClientInfo,
    ) -> Result<Enrolled> {
        let name = node_name(name)?;
        let key: [u8; 32] = data_encoding::HEXLOWER_PERMISSIVE
            .decode(signing_key.trim().as_bytes())
            .ok()
            .and_then(|v| v.try_into().ok())
            .filter(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_ok())
            .ok_or_else(|| {
                ValidationError::new(
                    "signing_key",
                    "must be an Ed25519 public key, 64 hex digits",
                )
            })?;
        if !self.admit_attempt(client) {
            return Err(HubError::TooManyRequests);
        }
        let mut entry =
            Ctx::local_operator().entry("node.enrol", &format!("node:{name}"), Outcome::Allowed);
        entry.actor_name = Some(format!("node:{name}"));
        entry.client_addr = client.addr.clone();
        entry.request_id = client.request_id.clone();
        let issued = self.keys().ca().sign_request(csr_pem, &name).map_err(|e| {
            crate::invalid("csr", format!("not a certificate signing request: {e}"))
        })?;
        let node = NewNode {
            name: name.clone(),
            signing_key: data_encoding::HEXLOWER.encode(&key),
            certificate: issued.cert_pem.clone(),
            enrolled_at: Timestamp::now(),
        };
        match self
            .store
            .enrol_node(&token_hash(token.trim()), node, entry.clone())
            .await
        {
            Ok(node) => Ok(Enrolled {
                institution: self
                    .store
                    .institution(node.institution)
                    .await?
                    .map(|i| i.name)
                    .unwrap_or_default(),
                name,
                certificate: issued.cert_pem,
                ca: issued.ca_pem,
                hub_name: HUB_NODE_NAME.into(),
                hub_key: self.public_key_hex(),
            }),
            Err(StoreError::NotFound(_)) => {
                entry.outcome = Outcome::Failed;
                entry.reason = Some("unknown, used or expired enrolment token".into());
                self.store.append_audit(entry).await?;
                Err(HubError::Unauthenticated(
                    "the enrolment token is unknown, used, expired or for another node",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Hub {
    /// Records where an enrolled node answers, what it holds (`pings`,
    /// `transactions`, `taps`) and its holder code in case registers
    /// (`skt`, `shinhan`): an administrator of the node's institution.
    pub async fn register_node(
        &self,
        ctx: &Ctx,
        name: &str,
        url: &str,
        kind: &str,
        code: &str,
    ) -> Result<()> {
        let nodes = self.store.nodes().await?;
        let institution = nodes
            .iter()
            .find(|n| n.name == name.trim())
            .map(|n| n.institution)
            .unwrap_or(InstitutionId(-1));
        let entry = self
            .authorize(
                ctx,
                Action::ManageNodes { institution },
                "admin.node.register",
                &format!("node:{}", name.trim()),
            )
            .await?;
        let url = url.trim();
        if !(url.starts_with("https://") && url.len() <= 300 && !url.contains(char::is_whitespace))
        {
            return Err(ValidationError::new("url", "must be an https:// URL").into());
        }
        if !matches!(kind, "pings" | "transactions" | "taps" | "records") {
            return Err(ValidationError::new(
                "kind",
                "must be pings, transactions, taps or records",
            )
            .into());
        }
        let code = civic_core::identity::holder_code(code).ok_or_else(|| {
            ValidationError::new("code", "must be 1-32 characters of a-z, 0-9, '-', '_'")
        })?;
        if institution.0 < 0 {
            return Err(HubError::NotFound(format!("node {name:?}")));
        }
        // A node holds what its institution holds: a telco pings, a card
        // company transactions, a transit operator taps, a MyData holder
        // administrative records.
        let kind_of = self
            .store
            .institution(institution)
            .await?
            .map(|i| i.kind)
            .ok_or_else(|| HubError::NotFound(format!("institution {institution}")))?;
        if node_kind(kind_of) != Some(kind) {
            return Err(ValidationError::new(
                "kind",
                format!("a node of a {kind_of} institution cannot hold {kind}"),
            )
            .into());
        }
        // A holder code names one institution.
        if let Some(other) = nodes.iter().find(|n| {
            n.institution != institution
                && n.route
                    .as_ref()
                    .is_some_and(|r| r.kind == kind && r.code == code)
        }) {
            return Err(HubError::Conflict(format!(
                "holder code {code:?} already belongs to another institution's node {}",
                other.name
            )));
        }
        self.store
            .set_node_route(
                name.trim(),
                civic_store::NodeRoute {
                    url: url.trim_end_matches('/').to_owned(),
                    kind: kind.to_owned(),
                    code,
                },
                entry,
            )
            .await?;
        Ok(())
    }
}

/// What a node of an institution of this kind holds, if anything.
pub fn node_kind(kind: civic_core::identity::InstitutionKind) -> Option<&'static str> {
    use civic_core::identity::InstitutionKind as K;
    match kind {
        K::Telco => Some("pings"),
        K::CardCompany => Some("transactions"),
        K::TransitOperator => Some("taps"),
        // MyData's holding institutions keep administrative records.
        K::Ministry | K::PublicInstitution | K::LocalGovernment => Some("records"),
        _ => None,
    }
}
