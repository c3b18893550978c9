//! Public MyData's transfers on the hub: a using agency asks a citizen for
//! items of a catalogue entry under its approved agreement; the citizen,
//! signed in with a second factor, consents (once, or periodically until a
//! date) or refuses; on consent the hub issues a grant and the holder's
//! node issues a signed credential of exactly those items, encrypted to
//! the agency; the hub keeps the package sealed under the consent's data
//! key until the citizen withdraws, when the key is destroyed, the holder
//! revokes the credential in its status list and the agency is told to
//! delete. The citizen sees every transfer and every access to his data,
//! with consent receipts, and downloads everything the holders keep of
//! him.
//!
//! Agencies are told of each change by polling their events or by a
//! webhook (signed as the Standard Webhooks specification says:
//! HMAC-SHA-256 over `id.timestamp.body`).
//!
//! A transfer's audit records carry a pseudonym of the citizen as their
//! subject (never the identifier itself), so that his own view can find
//! them.

mod citizen;
mod delivery;
mod events;
mod requests;
mod withdrawal;

pub use citizen::portability_csv;
pub use events::webhook_signature;

use crate::catalogue::InstitutionNames;
use crate::MyData;
use civic_core::audit::{AuditEntry, AuditQuery, Outcome};
use civic_core::identity::{DutyKind, InstitutionId, Subject};
use civic_core::mydata::{ConsentMode, TransferState};
use civic_core::policy::Action;
use civic_core::time::Timestamp;
use civic_exchange::wire::{
    CredentialBatch, CredentialReplies, CredentialReply, IssuedPackage, PortabilityReply,
    StatusListReply, CREDENTIALS_PATH, MAX_CREDENTIAL_BATCH, PORTABILITY_PATH, REVOCATIONS_PATH,
    STATUS_LIST_PATH,
};
use civic_hub::exchange::{ExchangeError, NodeClient};
use civic_hub::group::Group;
use civic_hub::{invalid, Ctx, HubError, Result};

use crate::store::{
    DecisionOp, Delivery, DeliveryOp, FetchOp, Fetched, MydataStore, NewTransfer, Party, Transfer,
    TransferDecision, TransferEventStore, TransferFilter, TransferStore, Webhook,
};
use civic_exchange::{CredentialQuestion, Grant, Item as GrantItem, Question, Role, SignedGrant};
use civic_store::{AuditStore, InstitutionStore, NodeStore, StoreError};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The purpose every MyData grant names; holders' nodes give
/// administrative records for it only.
pub const MYDATA_PURPOSE: &str = "mydata transfer";

/// How long a node may take to answer a MyData request.
const NODE_DEADLINE: Duration = Duration::from_secs(10);

/// The hub's MyData state: one client for the holders' nodes (its TLS
/// connections are kept), a bell for the webhook sender, and the group
/// commits of the transfer's steps (citizens' answers, deliveries,
/// agencies' fetches): what arrives while one batch is written is written
/// by the next, in one transaction, and deliveries in one round trip per
/// holder.
pub(crate) struct MydataState {
    client: OnceLock<NodeClient>,
    pub(crate) events: tokio::sync::Notify,
    decisions: Arc<Group<DecisionOp, civic_store::Result<Transfer>>>,
    deliveries: Arc<Group<(Transfer, AuditEntry), Result<TransferView>>>,
    fetches: Arc<Group<FetchOp, civic_store::Result<Fetched>>>,
}

impl Default for MydataState {
    fn default() -> Self {
        Self {
            client: OnceLock::new(),
            events: tokio::sync::Notify::new(),
            decisions: Arc::default(),
            // Two batches in flight: one is kept while the holders work
            // on the next.
            deliveries: Arc::new(Group::new(256, 2)),
            fetches: Arc::default(),
        }
    }
}

/// Whose step an action on a transfer is (the policy decides who that
/// may be).
#[derive(Debug, Clone, Copy)]
enum By {
    Citizen,
    Agency,
    Either,
}

/// An agency's request for a citizen's items.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferRequest {
    /// An approved agreement of the caller's agency.
    pub agreement_id: civic_core::mydata::AgreementId,
    /// The citizen, as the holders know him.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::subject))]
    pub subject: String,
    /// The items wanted: some or all of the agreement's.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::names))]
    pub items: Vec<String>,
    /// The agency's X25519 public key (an OKP JWK) the package is
    /// encrypted to.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub recipient_key: Value,
}

/// The citizen's consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentRequest {
    /// `once` (one sending) or `periodic` (the agency may ask again every
    /// `interval_days` until `until`).
    #[cfg_attr(feature = "openapi", schema(schema_with = consent_mode))]
    pub mode: String,
    /// For `periodic`: the last day (YYYY-MM-DD, UTC) the consent lasts.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::date_or_null))]
    pub until: Option<String>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 366))]
    pub interval_days: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefusalRequest {
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::text_500_or_null))]
    pub reason: Option<String>,
}

/// One item of a transfer, as the citizen is shown it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferItem {
    pub name: String,
    pub description: String,
    pub sensitivity: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    pub id: i64,
    pub status_index: i64,
    pub status_uri: String,
    /// RFC 3339.
    pub delivered_at: String,
    pub fetched_at: Option<String>,
    /// Whether the hub still keeps the package (false once shredded).
    pub kept: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransferView {
    pub id: civic_core::mydata::TransferId,
    pub agreement_id: civic_core::mydata::AgreementId,
    pub offer: crate::catalogue::OfferRef,
    pub agency: crate::catalogue::InstitutionRef,
    pub holder: crate::catalogue::InstitutionRef,
    pub subject: String,
    pub items: Vec<TransferItem>,
    pub service: String,
    pub purpose: String,
    pub legal_basis: String,
    /// How long the agency may keep what it receives (days).
    pub retention_days: i64,
    pub state: TransferState,
    pub mode: Option<ConsentMode>,
    pub consent_until: Option<String>,
    pub interval_days: Option<i64>,
    pub reason: Option<String>,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub withdrawn_at: Option<String>,
    pub revoked_at: Option<String>,
    pub deletion_confirmed_at: Option<String>,
    pub deliveries: Vec<DeliveryView>,
}

/// What the agency fetches: the holder's package and where to check it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageView {
    pub transfer_id: civic_core::mydata::TransferId,
    /// The SD-JWT VC as a compact JWE to the agency's key.
    pub credential: String,
    /// For a provided document: the rendered document and the holder's
    /// signature, as a compact JWE to the agency's key.
    pub document: Option<String>,
    pub status_index: i64,
    pub status_uri: String,
    /// Where the holder's keys are published (JWK set).
    pub jwks_uri: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// An event an agency is told of.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    pub seq: i64,
    /// `transfer.consented`, `transfer.refused`, `transfer.delivered`,
    /// `transfer.failed`, `consent.withdrawn`.
    #[serde(rename = "type")]
    pub kind: String,
    pub transfer_id: civic_core::mydata::TransferId,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookRequest {
    /// `https://…`, or `http://` to a loopback address.
    #[cfg_attr(feature = "openapi", schema(schema_with = civic_core::schemas::webhook_url))]
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookView {
    pub url: String,
    /// The signing secret (`whsec_…`), shown once.
    pub secret: String,
}

/// A credential an agency asks the hub to check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyRequest {
    /// The SD-JWT VC (decrypted from the package).
    pub credential: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyView {
    pub valid: bool,
    /// Why not, if not.
    pub error: Option<String>,
    pub issuer: Option<String>,
    pub revoked: Option<bool>,
    /// The disclosed claims of a valid credential; null otherwise.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub claims: Value,
}

/// An access to the citizen's data, from the audit ledger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessView {
    pub seq: u64,
    pub at: String,
    pub who: Option<String>,
    pub institution: Option<String>,
    pub action: String,
    pub resource: String,
    pub purpose: Option<String>,
    pub outcome: String,
}

fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339()
}

fn now_s() -> i64 {
    Timestamp::now().micros().div_euclid(1_000_000)
}

fn exchange_error(e: ExchangeError) -> HubError {
    match e {
        ExchangeError::Refused(why) => HubError::Conflict(format!("the holder refused: {why}")),
        other => HubError::BadRequest(format!("the holder's node: {other}")),
    }
}

fn random_id(prefix: &str) -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}-{}", data_encoding::HEXLOWER.encode(&b))
}

/// A MyData grant for one holder: the hub's endorsement, the consent (or
/// request) it rests on, five minutes to use it.
fn mydata_grant(
    keys: &civic_hub::HubKeys,
    requester: String,
    holder: String,
    legal_basis: String,
    consent_id: String,
    question: Question,
) -> SignedGrant {
    let now = now_s();
    let grant = Grant {
        grant_id: random_id("mydata"),
        requester,
        holder,
        purpose: MYDATA_PURPOSE.into(),
        legal_basis,
        case_id: None,
        consent_id: Some(consent_id),
        items: vec![GrantItem::AdministrativeRecords],
        question,
        data_from: now,
        data_until: now,
        issued_at: now - 5,
        expires_at: now + 300,
    };
    SignedGrant::new(grant).endorse(Role::Hub, "hub", keys.signing_key())
}

/// The sealing context of a transfer's consent key.
fn key_context(id: civic_core::mydata::TransferId) -> String {
    format!("mydata-consent:{id}")
}

/// The sealing context of a delivery's package.
fn package_context(transfer: civic_core::mydata::TransferId) -> String {
    format!("mydata-package:{transfer}")
}

impl MyData {
    fn mydata_client(&self) -> Result<&NodeClient> {
        if let Some(c) = self.state.client.get() {
            return Ok(c);
        }
        let client = self
            .node_client()
            .map_err(|e| HubError::BadRequest(e.to_string()))?;
        Ok(self.state.client.get_or_init(|| client))
    }

    /// The audit subject for a citizen: a pseudonym, never his identifier.
    pub(crate) fn citizen_tag(&self, subject: &str) -> String {
        format!(
            "citizen:{}",
            self.keys().pseudonym(&format!("subject:{subject}"))
        )
    }

    /// The URL the hub publishes a records node's keys under (its
    /// credentials' `iss`).
    pub fn issuer_url(&self, node: &str) -> String {
        format!(
            "{}/api/v1/mydata/issuers/{node}",
            self.public_url().trim_end_matches('/')
        )
    }

    /// The holder's records node: (name, url, key).
    async fn records_node(
        &self,
        holder: InstitutionId,
    ) -> Result<(String, String, ed25519_dalek::VerifyingKey)> {
        records_node_of(&self.store.nodes().await?, holder)
    }

    /// The records node named `name`: (url, key).
    async fn records_node_named(
        &self,
        name: &str,
    ) -> Result<(String, ed25519_dalek::VerifyingKey)> {
        let node = self
            .store
            .nodes()
            .await?
            .into_iter()
            .find(|n| n.name == name && n.route.as_ref().is_some_and(|r| r.kind == "records"))
            .ok_or_else(|| HubError::NotFound(format!("issuer {name:?}")))?;
        let key = civic_hub::nodes::node_key(&node)?;
        Ok((node.route.map(|r| r.url).unwrap_or_default(), key))
    }

    /// Appends a refusal after the policy allowed the action (what the
    /// request asked for is not allowed), and returns the error.
    async fn refuse(&self, mut entry: AuditEntry, reason: &'static str, err: HubError) -> HubError {
        entry.outcome = Outcome::Denied;
        entry.reason = Some(reason.to_owned());
        if let Err(e) = self.store.append_audit(entry).await {
            return e.into();
        }
        err
    }

    fn citizen_subject(ctx: &Ctx) -> Result<Subject> {
        ctx.principal()
            .and_then(|p| p.duties.iter().find(|d| d.kind == DutyKind::Citizen))
            .and_then(|d| d.subject.clone())
            .ok_or_else(|| HubError::BadRequest("only a citizen has his own data".into()))
    }

    async fn transfer_view(&self, t: &Transfer, deliveries: Vec<Delivery>) -> Result<TransferView> {
        let offer = self
            .store
            .offer(t.offer)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", t.offer)))?;
        let agency = self.institution_ref(t.agency).await?;
        let holder = self.institution_ref(t.holder).await?;
        view_of(t, deliveries, &offer, agency, holder)
    }
}

impl MyData {
    /// Asks a holder's records node at `url` the question at `path` (with
    /// `grant`, or a body that carries its grants), retried until
    /// [`NODE_DEADLINE`], and reads its JSON answer; `what` names the answer
    /// in an error.
    pub(super) async fn ask_holder<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        path: &str,
        node_key: &ed25519_dalek::VerifyingKey,
        body: &str,
        grant: Option<SignedGrant>,
        what: &str,
    ) -> Result<T> {
        let (message, _) = self
            .mydata_client()?
            .call(
                url,
                path,
                node_key,
                body,
                grant,
                &random_id("req"),
                NODE_DEADLINE,
            )
            .await
            .map_err(exchange_error)?;
        serde_json::from_str(&message.body)
            .map_err(|e| HubError::BadRequest(format!("{what}: {e}")))
    }
}

/// The holder's records node among `nodes`: (name, url, key).
fn records_node_of(
    nodes: &[civic_store::Node],
    holder: InstitutionId,
) -> Result<(String, String, ed25519_dalek::VerifyingKey)> {
    let node = nodes
        .iter()
        .find(|n| n.institution == holder && n.route.as_ref().is_some_and(|r| r.kind == "records"))
        .ok_or_else(|| {
            HubError::Conflict("the holding institution has no MyData node registered".into())
        })?;
    let key = civic_hub::nodes::node_key(node)?;
    let url = node
        .route
        .as_ref()
        .map(|r| r.url.clone())
        .unwrap_or_default();
    Ok((node.name.clone(), url, key))
}

/// A transfer as shown, from its entry and its parties.
fn view_of(
    t: &Transfer,
    deliveries: Vec<Delivery>,
    offer: &crate::store::Offer,
    agency: crate::catalogue::InstitutionRef,
    holder: crate::catalogue::InstitutionRef,
) -> Result<TransferView> {
    let described = &offer.items;
    let names = &t.items;
    let items = names
        .iter()
        .map(|n| {
            let d = described.iter().find(|i| &i.name == n);
            TransferItem {
                name: n.clone(),
                description: d.map(|i| i.description.clone()).unwrap_or_default(),
                sensitivity: d.map(|i| i.sensitivity.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Ok(TransferView {
        id: t.id,
        agreement_id: t.agreement,
        offer: crate::catalogue::OfferRef {
            id: offer.id,
            kind: offer.kind.clone(),
            code: offer.code.clone(),
            title: offer.title.clone(),
        },
        agency,
        holder,
        subject: t.subject.clone(),
        items,
        service: t.service.clone(),
        purpose: t.purpose.clone(),
        legal_basis: t.legal_basis.clone(),
        retention_days: t.retention_days,
        state: t.state,
        mode: t.mode,
        consent_until: t.consent_until.map(rfc3339),
        interval_days: t.interval_days,
        reason: t.reason.clone(),
        created_at: rfc3339(t.created_at),
        decided_at: t.decided_at.map(rfc3339),
        withdrawn_at: t.withdrawn_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
        deletion_confirmed_at: t.deletion_confirmed_at.map(rfc3339),
        deliveries: deliveries.into_iter().map(delivery_view).collect(),
    })
}

fn delivery_view(d: Delivery) -> DeliveryView {
    DeliveryView {
        id: d.id,
        status_index: d.status_index,
        status_uri: d.status_uri,
        delivered_at: rfc3339(d.delivered_at),
        fetched_at: d.fetched_at.map(rfc3339),
        kept: d.package.is_some(),
    }
}

#[cfg(feature = "openapi")]
fn consent_mode() -> utoipa::openapi::Object {
    civic_core::schemas::one_of(&ConsentMode::names())
}
