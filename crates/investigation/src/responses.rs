//! Outbreak responses: opened with their legal basis and rules, closed
//! with their data destroyed and a signed deletion certificate.

use super::{DataKey, PURPOSE};
use crate::store::{Response, ResponseCounts, ResponseStore};
use crate::Investigation;
use civic_core::investigation::{parse_title, ResponseId, ResponseStatus};
use civic_core::policy::Action;
use civic_eiss::Rules;
use civic_exchange::wire::PurgeRequest;
use civic_hub::{Ctx, HubError, Result};
use civic_store::NodeStore;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A response as shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResponseView {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub id: ResponseId,
    pub name: String,
    pub legal_basis: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub rules: Rules,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: ResponseStatus,
    /// RFC 3339.
    pub opened_at: String,
    pub closed_at: Option<String>,
}

impl ResponseView {
    fn of(r: Response) -> Result<Self> {
        Ok(Self {
            id: r.id,
            rules: serde_json::from_str(&r.rules).map_err(|e| {
                HubError::Store(civic_store::StoreError::Corrupt(format!(
                    "response rules: {e}"
                )))
            })?,
            name: r.name,
            legal_basis: r.legal_basis,
            status: r.status,
            opened_at: r.opened_at.to_rfc3339(),
            closed_at: r.closed_at.map(|t| t.to_rfc3339()),
        })
    }
}

/// What one node did with what it had answered for the response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeDeletion {
    pub node: String,
    /// The node confirmed with a signed receipt.
    pub confirmed: bool,
    /// Answers deleted, and their bytes.
    pub answers_deleted: u64,
    pub bytes_deleted: u64,
    /// Requests of which the node kept nothing.
    pub absent: u64,
    /// What the receipt says (when, by which key), or why there is none
    /// or it does not cover every answer the node gave.
    pub receipt: String,
    /// The node's signed receipt as it came (the exchange message, JSON:
    /// envelope and body), verifiable with the node's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_receipt: Option<String>,
}

/// The content of a deletion certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateBody {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub response: ResponseId,
    pub name: String,
    pub legal_basis: String,
    pub purpose: String,
    /// Who closed it, and when (RFC 3339).
    pub closed_by: String,
    pub closed_at: String,
    /// The data key (fingerprint of its sealed form) that was destroyed:
    /// everything sealed under it is unreadable from now on.
    pub data_key_destroyed: String,
    /// The hub's records deleted with it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub hub_records: ResponseCounts,
    pub nodes: Vec<NodeDeletion>,
    /// The hub's key id, which signs the certificate.
    pub issuer: String,
}

/// A deletion certificate as shown: its body, the hub's signature over it
/// and the audit record that holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Certificate {
    pub id: i64,
    pub body: CertificateBody,
    /// Base64 Ed25519 signature over `civic-deletion-certificate-v1\n`
    /// and the body's JSON as stored.
    pub signature: String,
    /// The body's JSON exactly as signed.
    pub signed_json: String,
    pub created_at: String,
}

const CERTIFICATE_TAG: &[u8] = b"civic-deletion-certificate-v1\n";

impl Certificate {
    /// Checks the hub's signature over the certificate.
    pub fn verify(&self, hub: &ed25519_dalek::VerifyingKey) -> bool {
        let Some(sig) = data_encoding::BASE64
            .decode(self.signature.as_bytes())
            .ok()
            .and_then(|v| <[u8; 64]>::try_from(v).ok())
        else {
            return false;
        };
        let message = [CERTIFICATE_TAG, self.signed_json.as_bytes()].concat();
        hub.verify(&message, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
            && serde_json::from_str::<CertificateBody>(&self.signed_json)
                .ok()
                .as_ref()
                == Some(&self.body)
    }

    fn of(c: crate::store::DeletionCertificate) -> Result<Self> {
        Ok(Self {
            id: c.id,
            body: serde_json::from_str(&c.body).map_err(|e| {
                HubError::Store(civic_store::StoreError::Corrupt(format!(
                    "certificate: {e}"
                )))
            })?,
            signature: c.signature,
            signed_json: c.body,
            created_at: c.created_at.to_rfc3339(),
        })
    }
}

impl Investigation {
    /// Opens a response (administrators of the health authority or the
    /// hub operator).
    pub async fn open_response(
        &self,
        ctx: &Ctx,
        name: &str,
        legal_basis: &str,
        rules: Option<Rules>,
    ) -> Result<ResponseView> {
        let name = parse_title("name", name)?;
        let legal_basis = parse_title("legal_basis", legal_basis)?;
        let rules = rules.unwrap_or_default();
        rules
            .check()
            .map_err(|m| HubError::Invalid(civic_core::ValidationError::new("rules", m)))?;
        let entry = self
            .authorize(
                ctx,
                Action::ManageResponses,
                "eiss.response.open",
                "response",
            )
            .await?
            .purpose(PURPOSE, &legal_basis);
        let key = DataKey::generate();
        let created = self
            .store
            .create_response(
                crate::store::NewResponse {
                    name,
                    legal_basis,
                    rules: serde_json::to_string(&rules).expect("rules serialise"),
                    key_sealed: self.keys().seal(super::KEY_CONTEXT, &key.0),
                    opened_by: ctx.principal().map(|p| p.user),
                },
                entry,
            )
            .await?;
        ResponseView::of(created)
    }

    pub async fn list_responses(&self, ctx: &Ctx) -> Result<Vec<ResponseView>> {
        self.authorize(
            ctx,
            Action::ListResponses,
            "eiss.response.list",
            "responses",
        )
        .await?;
        self.store
            .responses()
            .await?
            .into_iter()
            .map(ResponseView::of)
            .collect()
    }

    pub async fn get_response(&self, ctx: &Ctx, id: ResponseId) -> Result<ResponseView> {
        self.authorize(
            ctx,
            Action::ListResponses,
            "eiss.response.read",
            &format!("response:{id}"),
        )
        .await?;
        let r = self
            .store
            .response(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("response {id}")))?;
        ResponseView::of(r)
    }

    /// A response that is open, for work on it.
    pub(crate) async fn open_response_record(&self, id: ResponseId) -> Result<(Response, Rules)> {
        let r = self
            .store
            .response(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("response {id}")))?;
        if r.status != ResponseStatus::Open {
            return Err(HubError::Conflict(format!(
                "response {id} is {}: it takes no new data",
                r.status
            )));
        }
        let rules = serde_json::from_str(&r.rules).map_err(|e| {
            HubError::Store(civic_store::StoreError::Corrupt(format!(
                "response rules: {e}"
            )))
        })?;
        Ok((r, rules))
    }

    /// Ends a response: no new data from now on; every node that answered
    /// for it is told to delete what it kept; the data key and every
    /// record of the response are destroyed in one transaction that also
    /// keeps the signed deletion certificate and its audit record.
    pub async fn close_response(&self, ctx: &Ctx, id: ResponseId) -> Result<Certificate> {
        let resource = format!("response:{id}");
        let entry = self
            .authorize(
                ctx,
                Action::ManageResponses,
                "eiss.response.close",
                &resource,
            )
            .await?;
        let response = self
            .store
            .response(id)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("response {id}")))?;
        match response.status {
            ResponseStatus::Closed => {
                return Err(HubError::Conflict(format!(
                    "response {id} is closed already"
                )))
            }
            ResponseStatus::Open => {
                let mut closing = entry.clone().purpose(PURPOSE, &response.legal_basis);
                closing.action = "eiss.response.closing".into();
                self.store
                    .set_response_status(id, ResponseStatus::Open, ResponseStatus::Closing, closing)
                    .await?;
            }
            // A close that stopped half-way goes on.
            ResponseStatus::Closing => {}
        }
        let sealed_key = self.store.response_key(id).await?.unwrap_or_default();
        let nodes = self.purge_nodes(id).await?;
        let counts = self.store.response_counts(id).await?;
        use sha2::Digest;
        let body = CertificateBody {
            response: id,
            name: response.name.clone(),
            legal_basis: response.legal_basis.clone(),
            purpose: PURPOSE.into(),
            closed_by: entry.actor_name.clone().unwrap_or_default(),
            closed_at: civic_core::time::Timestamp::now().to_rfc3339(),
            data_key_destroyed: data_encoding::HEXLOWER
                .encode(&sha2::Sha256::digest(&sealed_key)[..16]),
            hub_records: counts,
            nodes,
            issuer: civic_exchange::key_id(&self.keys().signing_key().verifying_key()),
        };
        let signed_json = serde_json::to_string(&body).expect("a certificate serialises");
        let signature = data_encoding::BASE64.encode(
            &self
                .keys()
                .signing_key()
                .sign(&[CERTIFICATE_TAG, signed_json.as_bytes()].concat())
                .to_bytes(),
        );
        let digest = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(signed_json.as_bytes()));
        let mut entry = entry
            .purpose(PURPOSE, &response.legal_basis)
            .reason(format!("deletion certificate sha256:{digest}"));
        entry.resource = resource;
        let stored = self
            .store
            .close_response(id, signed_json, signature, entry)
            .await?;
        self.forget_data_key(id);
        self.state.clusters.lock().await.remove(&id);
        if let Err(e) = self.store.scrub("response_keys").await {
            tracing::warn!(error = %e, "scrubbing free space after a response closed");
        }
        Certificate::of(stored)
    }

    /// Asks every node that answered for the response to delete what it
    /// kept; each node's signed receipt, or why none came.
    async fn purge_nodes(&self, id: ResponseId) -> Result<Vec<NodeDeletion>> {
        let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (node, exchange_id) in self.store.exchange_ids(id).await? {
            by_node.entry(node).or_default().push(exchange_id);
        }
        if by_node.is_empty() {
            return Ok(Vec::new());
        }
        let nodes = self.store.nodes().await?;
        let client = self.collector_client().await?;
        let me = civic_exchange::key_id(&self.keys().signing_key().verifying_key());
        let mut tasks = Vec::new();
        for (name, request_ids) in by_node {
            let node = nodes.iter().find(|n| n.name == name).cloned();
            let client = client.clone();
            let request_id = format!("{me}.purge.r{id}.{name}");
            tasks.push(tokio::spawn(async move {
                let failed = |why: String| NodeDeletion {
                    node: name.clone(),
                    confirmed: false,
                    answers_deleted: 0,
                    bytes_deleted: 0,
                    absent: 0,
                    receipt: why,
                    signed_receipt: None,
                };
                let Some((node, route)) = node.and_then(|n| n.route.clone().map(|r| (n, r))) else {
                    return failed("the node is not registered with an address".into());
                };
                let Ok(key) = civic_hub::nodes::node_key(&node) else {
                    return failed("the node's key is malformed".into());
                };
                let request = PurgeRequest {
                    purpose: format!("response:{id}"),
                    request_ids,
                };
                match client
                    .purge(
                        &route.url,
                        &key,
                        &request,
                        &request_id,
                        Duration::from_secs(30),
                    )
                    .await
                {
                    Ok((receipt, signed)) => {
                        // The receipt must account for every answer asked.
                        let accounted: std::collections::HashSet<&str> = receipt
                            .deleted
                            .iter()
                            .map(|(r, _)| r.as_str())
                            .chain(receipt.absent.iter().map(String::as_str))
                            .collect();
                        let missing = request
                            .request_ids
                            .iter()
                            .filter(|r| !accounted.contains(r.as_str()))
                            .count();
                        let covers = missing == 0 && receipt.purpose == request.purpose;
                        NodeDeletion {
                            node: name.clone(),
                            confirmed: covers,
                            answers_deleted: receipt.deleted.len() as u64,
                            bytes_deleted: receipt.deleted.iter().map(|d| d.1).sum(),
                            absent: receipt.absent.len() as u64,
                            receipt: if covers {
                                format!(
                                    "signed receipt at {} by key {}",
                                    receipt.at,
                                    civic_exchange::key_id(&key)
                                )
                            } else {
                                format!(
                                    "the signed receipt leaves {missing} of {} answers unaccounted for",
                                    request.request_ids.len()
                                )
                            },
                            signed_receipt: Some(signed),
                        }
                    }
                    Err(e) => failed(e.to_string()),
                }
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| HubError::BadRequest(e.to_string()))?);
        }
        Ok(out)
    }

    /// The deletion certificate of a closed response.
    pub async fn deletion_certificate(&self, ctx: &Ctx, id: ResponseId) -> Result<Certificate> {
        self.authorize(
            ctx,
            Action::ListResponses,
            "eiss.response.certificate",
            &format!("response:{id}"),
        )
        .await?;
        let certs = self.store.deletion_certificates(id).await?;
        match certs.into_iter().last() {
            Some(last) => Certificate::of(last),
            // An open response has its certificate to come; one that never
            // existed has none.
            None if self.store.response(id).await?.is_some() => Err(HubError::Conflict(format!(
                "response {id} is open: its deletion certificate is made when it closes"
            ))),
            None => Err(HubError::NotFound(format!(
                "a deletion certificate of response {id}"
            ))),
        }
    }
}
