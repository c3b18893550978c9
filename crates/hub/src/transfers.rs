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

use crate::exchange::{ExchangeError, NodeClient};
use crate::group::Group;
use crate::mydata::InstitutionNames;
use crate::{invalid, Ctx, Hub, HubError, Result};
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
use civic_exchange::{CredentialQuestion, Grant, Item as GrantItem, Question, Role, SignedGrant};
use civic_store::{
    AuditStore, DecisionOp, Delivery, DeliveryOp, FetchOp, Fetched, InstitutionStore, MydataStore,
    NewTransfer, NodeStore, Party, StoreError, Transfer, TransferDecision, TransferFilter,
    TransferStore, Webhook,
};
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
    pub agreement_id: i64,
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
    pub id: i64,
    pub agreement_id: i64,
    pub offer: crate::mydata::OfferRef,
    pub agency: crate::mydata::InstitutionRef,
    pub holder: crate::mydata::InstitutionRef,
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
    pub transfer_id: i64,
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
    pub transfer_id: i64,
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
    keys: &crate::HubKeys,
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
fn key_context(id: i64) -> String {
    format!("mydata-consent:{id}")
}

/// The sealing context of a delivery's package.
fn package_context(transfer: i64) -> String {
    format!("mydata-package:{transfer}")
}

impl Hub {
    fn mydata_client(&self) -> Result<&NodeClient> {
        if let Some(c) = self.mydata.client.get() {
            return Ok(c);
        }
        let client = self
            .node_client()
            .map_err(|e| HubError::BadRequest(e.to_string()))?;
        Ok(self.mydata.client.get_or_init(|| client))
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

    /// Where the hub is reached, for URLs it hands out: the configured
    /// `public_url`, else where the server bound, else `addr`.
    pub fn public_url(&self) -> String {
        self.config
            .public_url
            .clone()
            .or_else(|| self.bound_url.get().cloned())
            .unwrap_or_else(|| format!("http://{}", self.config.addr))
    }

    /// Records where the server bound (port 0 picks one).
    pub fn set_bound_url(&self, url: String) {
        let _ = self.bound_url.set(url);
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
        let key = crate::eiss::node_key(&node)?;
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
    let key = crate::eiss::node_key(node)?;
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
    offer: &civic_store::Offer,
    agency: crate::mydata::InstitutionRef,
    holder: crate::mydata::InstitutionRef,
) -> Result<TransferView> {
    let described = crate::mydata::items_of(offer)?;
    let names: Vec<String> = serde_json::from_str(&t.items).unwrap_or_default();
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
        offer: crate::mydata::OfferRef {
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

impl Hub {
    /// An agency asks a citizen for items under its approved agreement.
    pub async fn request_transfer(&self, ctx: &Ctx, req: TransferRequest) -> Result<TransferView> {
        let mut entry = self
            .authorize(
                ctx,
                Action::MydataTransfers,
                "mydata.transfer.request",
                "mydata-transfer",
            )
            .await?;
        let principal = ctx
            .principal()
            .ok_or_else(|| HubError::BadRequest("a transfer is asked for by an agency".into()))?;
        let subject = Subject::parse(&req.subject)?;
        entry.subject = Some(self.citizen_tag(subject.as_str()));
        let Some(agreement) = self
            .store
            .agreement(req.agreement_id)
            .await?
            .filter(|a| a.agency == principal.institution)
        else {
            let err = HubError::NotFound(format!("agreement {}", req.agreement_id));
            return Err(self.refuse(entry, "no agreement of the agency", err).await);
        };
        if agreement.status != civic_core::mydata::AgreementStatus::Approved {
            let err = HubError::Conflict(format!(
                "agreement {} is {}, not approved: no transfer may use it",
                agreement.id, agreement.status
            ));
            return Err(self
                .refuse(entry, "the agreement is not approved", err)
                .await);
        }
        let allowed: Vec<String> = serde_json::from_str(&agreement.items).unwrap_or_default();
        let asked: BTreeSet<&str> = req.items.iter().map(String::as_str).collect();
        if asked.is_empty() || asked.len() != req.items.len() {
            return Err(invalid("items", "must name each item once, at least one"));
        }
        if let Some(outside) = asked.iter().find(|n| !allowed.iter().any(|a| a == *n)) {
            let err = invalid(
                "items",
                format!("{outside} is not in agreement {}", agreement.id),
            );
            return Err(self
                .refuse(entry, "an item outside the agreement", err)
                .await);
        }
        let offer =
            self.store.offer(agreement.offer).await?.ok_or_else(|| {
                HubError::NotFound(format!("catalogue entry {}", agreement.offer))
            })?;
        if offer.kind == "document" && asked.len() != allowed.len() {
            return Err(invalid(
                "items",
                "a provided document is sent whole: ask for all its items",
            ));
        }
        let key: civic_mydata::Jwk = serde_json::from_value(req.recipient_key.clone())
            .map_err(|_| invalid("recipient_key", "must be an OKP JWK"))?;
        if key.crv != "X25519" || key.public_key().is_none() {
            return Err(invalid(
                "recipient_key",
                "must be an X25519 public key (OKP JWK)",
            ));
        }
        // The holder must be able to answer before the citizen is asked.
        self.records_node(offer.holder).await?;
        let transfer = self
            .store
            .create_transfer(
                NewTransfer {
                    agreement: agreement.id,
                    offer: offer.id,
                    agency: agreement.agency,
                    holder: offer.holder,
                    subject: subject.as_str().to_owned(),
                    subject_tag: self.citizen_tag(subject.as_str()),
                    items: serde_json::to_string(&req.items).expect("names serialise"),
                    service: agreement.service.clone(),
                    purpose: agreement.purpose.clone(),
                    legal_basis: agreement.legal_basis.clone(),
                    retention_days: agreement.retention_days,
                    recipient_key: serde_json::to_string(&key).expect("a JWK serialises"),
                    created_by: principal.user,
                },
                entry,
            )
            .await?;
        self.transfer_view(&transfer, Vec::new()).await
    }

    /// Who the caller is to a transfer, once the policy allows `action`
    /// (the citizen's own decisions, an agency's steps, or a read by
    /// either): the citizen himself, the agency, or an institution party
    /// to it (agency or holder). Storage finds the transfer only for a
    /// party to it.
    async fn party(&self, ctx: &Ctx, id: i64, action: &str, by: By) -> Result<(Party, AuditEntry)> {
        let policy = match by {
            By::Citizen => Action::MydataCitizen,
            By::Agency => Action::MydataTransfers,
            By::Either => Action::ReadMydataTransfers,
        };
        let (permit, entry) = self
            .authorize_with_permit(ctx, policy, action, &format!("mydata-transfer:{id}"))
            .await?;
        // The capacity the policy permitted it in.
        let citizen = permit.duty == Some(DutyKind::Citizen);
        let institution = || {
            ctx.principal().map(|p| p.institution).ok_or_else(|| {
                HubError::BadRequest("a transfer is handled by a signed-in user".into())
            })
        };
        let party = match (by, citizen) {
            (By::Citizen, _) | (By::Either, true) => {
                Party::Subject(Self::citizen_subject(ctx)?.as_str().to_owned())
            }
            (By::Agency, _) => Party::Agency(institution()?),
            (By::Either, false) => Party::Institution(institution()?),
        };
        Ok((party, entry))
    }

    /// A storage refusal because the caller is no party to the transfer
    /// (it is "not found") is itself recorded on the ledger.
    async fn as_party<T>(&self, result: civic_store::Result<T>, entry: AuditEntry) -> Result<T> {
        match result {
            Err(civic_store::StoreError::NotFound(what)) => Err(self
                .refuse(entry, "no party to the transfer", HubError::NotFound(what))
                .await),
            other => Ok(other?),
        }
    }

    /// The transfer and its credentials, for a party to it taking `by`'s
    /// step `action` (`fetched`: the agency takes the packages); anyone
    /// else finds nothing, which is recorded as a refusal.
    async fn found(
        &self,
        ctx: &Ctx,
        id: i64,
        action: &str,
        by: By,
        fetched: bool,
    ) -> Result<(Transfer, Vec<Delivery>)> {
        let (party, entry) = self.party(ctx, id, action, by).await?;
        let read = self
            .store
            .deliveries(id, &party, fetched, entry.clone())
            .await;
        self.as_party(read, entry).await
    }

    /// One transfer, with its deliveries.
    pub async fn transfer(&self, ctx: &Ctx, id: i64) -> Result<TransferView> {
        let (t, deliveries) = self
            .found(ctx, id, "mydata.transfer.read", By::Either, false)
            .await?;
        self.transfer_view(&t, deliveries).await
    }

    fn tagged(&self, mut entry: AuditEntry, subject: &str) -> AuditEntry {
        entry.subject = Some(self.citizen_tag(subject));
        entry
    }

    /// The caller's transfers: a citizen's own, an agency's or a holder's.
    pub async fn transfers(&self, ctx: &Ctx) -> Result<Vec<TransferView>> {
        let principal = ctx.principal().ok_or_else(|| {
            HubError::BadRequest("transfers are listed for a signed-in user".into())
        })?;
        let (permit, entry) = self
            .authorize_with_permit(
                ctx,
                Action::ReadMydataTransfers,
                "mydata.transfer.list",
                "mydata-transfer",
            )
            .await?;
        let (filter, entry) = if permit.duty == Some(DutyKind::Citizen) {
            let subject = Self::citizen_subject(ctx)?;
            let entry = self.tagged(entry, subject.as_str());
            (TransferFilter::Subject(subject.as_str().to_owned()), entry)
        } else {
            let kind = principal.institution_kind;
            if kind == civic_core::identity::InstitutionKind::UsingAgency {
                (TransferFilter::Agency(principal.institution), entry)
            } else {
                (TransferFilter::Holder(principal.institution), entry)
            }
        };
        let transfers = self.store.transfers_where(filter, entry).await?;
        // Entries and institutions once, not once a row.
        let offers: std::collections::HashMap<i64, civic_store::Offer> = self
            .store
            .offers()
            .await?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
        let names = self.institution_names().await?;
        transfers
            .iter()
            .map(|t| {
                let offer = offers
                    .get(&t.offer)
                    .ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", t.offer)))?;
                view_of(
                    t,
                    Vec::new(),
                    offer,
                    names.named(t.agency),
                    names.named(t.holder),
                )
            })
            .collect()
    }

    /// The citizen consents; the holder issues at once. Returns the
    /// transfer as it stands after the holder answered.
    pub async fn consent_transfer(
        &self,
        ctx: &Ctx,
        id: i64,
        req: ConsentRequest,
    ) -> Result<TransferView> {
        let (party, entry) = self
            .party(ctx, id, "mydata.transfer.consent", By::Citizen)
            .await?;
        let mode = ConsentMode::parse(&req.mode)
            .map_err(|_| invalid("mode", "must be once or periodic"))?;
        let (until, interval) = match mode {
            ConsentMode::Once => (None, None),
            ConsentMode::Periodic => {
                let raw = req
                    .until
                    .as_deref()
                    .ok_or_else(|| invalid("until", "a periodic consent needs its last day"))?;
                let day = time::Date::parse(
                    raw,
                    time::macros::format_description!("[year]-[month]-[day]"),
                )
                .map_err(|_| invalid("until", "must be YYYY-MM-DD"))?;
                let end = day.with_hms(23, 59, 59).expect("a valid time").assume_utc();
                let end = Timestamp::from_micros(end.unix_timestamp() * 1_000_000);
                // How long the agreement lets the agency keep it bounds the
                // consent (a read of the transfer, audited).
                let (t, _) = self
                    .as_party(
                        self.store
                            .deliveries(id, &party, false, entry.clone())
                            .await,
                        entry.clone(),
                    )
                    .await?;
                let max = (now_s() + t.retention_days.max(1) * 86_400) * 1_000_000;
                if end.micros() <= Timestamp::now().micros() || end.micros() > max {
                    return Err(invalid(
                        "until",
                        format!(
                            "must be a day from today to {} days on (the agreement's retention)",
                            t.retention_days
                        ),
                    ));
                }
                let every = req.interval_days.unwrap_or(30);
                if !(1..=366).contains(&every) {
                    return Err(invalid("interval_days", "must be 1-366"));
                }
                (Some(end), Some(every))
            }
        };
        let key = {
            use rand::RngCore;
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            k
        };
        let sealed_key = self.keys().seal(&key_context(id), &key);
        let decision = TransferDecision::Consent {
            mode,
            until,
            interval_days: interval,
            sealed_key,
        };
        let decided = self.decide(id, party, decision, entry.clone()).await;
        let t = self.as_party(decided, entry).await?;
        self.mydata.events.notify_one();
        // The consent stands once recorded: if the holder's node cannot
        // be reached now, the retry loop asks it again.
        match self.deliver(ctx, t.clone()).await {
            Ok(view) => Ok(view),
            Err(e) => {
                tracing::warn!(transfer = id, error = %e, "delivery left for the retry loop");
                self.transfer_view(&t, Vec::new()).await
            }
        }
    }

    /// Asks the holders again for the transfers consented more than
    /// `older_than` ago that they have not answered (their node was down);
    /// returns how many were delivered.
    pub async fn deliver_pending(&self, older_than: Duration) -> Result<usize> {
        let before =
            Timestamp::from_micros(Timestamp::now().micros() - older_than.as_micros() as i64);
        let op = Ctx::local_operator();
        // All at once: the deliveries go to each holder in batches.
        let tries = self.store.undelivered(before).await?.into_iter().map(|id| {
            let op = &op;
            async move {
                let entry = op.entry(
                    "mydata.transfer.read",
                    &format!("mydata-transfer:{id}"),
                    Outcome::Allowed,
                );
                let (t, _) = self.store.deliveries(id, &Party::Hub, false, entry).await?;
                match self.deliver(op, t).await {
                    Ok(_) => Ok(true),
                    // What can no longer be delivered (its agreement was
                    // superseded meanwhile) fails, and the agency is told;
                    // a node that is down is asked again next round.
                    Err(HubError::Conflict(why)) => {
                        let mut entry = op.entry(
                            "mydata.transfer.deliver",
                            &format!("mydata-transfer:{id}"),
                            Outcome::Failed,
                        );
                        entry.reason = Some("no longer deliverable".into());
                        self.store.fail_transfer(id, &why, entry).await?;
                        self.mydata.events.notify_one();
                        Ok(false)
                    }
                    Err(e) => {
                        tracing::warn!(transfer = id, error = %e, "delivery still pending");
                        Ok::<bool, HubError>(false)
                    }
                }
            }
        });
        let mut n = 0;
        for delivered in futures_util::future::join_all(tries).await {
            n += usize::from(delivered?);
        }
        Ok(n)
    }

    /// The citizen refuses.
    pub async fn refuse_transfer(
        &self,
        ctx: &Ctx,
        id: i64,
        req: RefusalRequest,
    ) -> Result<TransferView> {
        let (party, entry) = self
            .party(ctx, id, "mydata.transfer.refuse", By::Citizen)
            .await?;
        let reason = req
            .reason
            .map(|r| civic_core::error::parse_text("reason", &r, 500))
            .transpose()?;
        let decided = self
            .decide(
                id,
                party,
                TransferDecision::Refuse { reason },
                entry.clone(),
            )
            .await;
        let t = self.as_party(decided, entry).await?;
        self.mydata.events.notify_one();
        self.transfer_view(&t, Vec::new()).await
    }

    /// The consent's data key, opened; `gone` says why there is none (the
    /// consent was refused, withdrawn or failed: the key is destroyed).
    fn consent_key(&self, t: &Transfer, gone: impl FnOnce() -> String) -> Result<[u8; 32]> {
        let sealed = t
            .consent_key
            .as_deref()
            .ok_or_else(|| HubError::Conflict(gone()))?;
        self.keys()
            .open(&key_context(t.id), sealed)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                HubError::Store(civic_store::StoreError::Corrupt(format!(
                    "transfer {}: consent key",
                    t.id
                )))
            })
    }

    /// A citizen's answer, written in a batch with whatever other answers
    /// arrive meanwhile.
    async fn decide(
        &self,
        id: i64,
        party: Party,
        decision: TransferDecision,
        audit: AuditEntry,
    ) -> civic_store::Result<Transfer> {
        let op = DecisionOp {
            id,
            party,
            decision,
            audit,
        };
        self.in_batch(&self.mydata.decisions, op, |store, ops| async move {
            store.decide_transfers(ops).await
        })
        .await
    }

    /// Runs `op` in `group`'s next batch, which `write` (a storage batch
    /// method) writes in one transaction.
    async fn in_batch<I, T, W, F>(
        &self,
        group: &Arc<Group<I, civic_store::Result<T>>>,
        op: I,
        write: W,
    ) -> civic_store::Result<T>
    where
        I: Send + 'static,
        T: Send + 'static,
        W: Fn(civic_store::Store, Vec<I>) -> F + Copy + Send + Sync + 'static,
        F: std::future::Future<Output = civic_store::Result<Vec<civic_store::Result<T>>>>
            + Send
            + 'static,
    {
        let store = self.store.clone();
        group
            .run(op, move |ops| {
                let store = store.clone();
                async move {
                    let n = ops.len();
                    StoreError::each(write(store, ops).await, n)
                }
            })
            .await
            .unwrap_or_else(|| Err(StoreError::unanswered()))
    }

    /// Asks the holder's node for a credential under the transfer's live
    /// consent and keeps it sealed. A refusal by the holder fails the
    /// transfer (the agency is told); a node that cannot be reached leaves
    /// it consented, to be asked again. Deliveries that arrive together
    /// are asked of each holder in one request and kept in one
    /// transaction.
    async fn deliver(&self, ctx: &Ctx, t: Transfer) -> Result<TransferView> {
        let resource = format!("mydata-transfer:{}", t.id);
        let mut entry = ctx.entry("mydata.transfer.deliver", &resource, Outcome::Allowed);
        entry.purpose = Some(t.purpose.clone());
        entry.legal_basis = Some(t.legal_basis.clone());
        let hub = self.clone();
        self.mydata
            .deliveries
            .run((t, entry), move |batch| {
                let hub = hub.clone();
                async move { hub.deliver_batch(batch).await }
            })
            .await
            .unwrap_or_else(|| Err(StoreError::unanswered().into()))
    }

    /// Delivers a batch: the catalogue and the nodes looked up once, one
    /// request to each holder (at once), one transaction keeping every
    /// credential issued; each transfer as it stands after.
    async fn deliver_batch(&self, batch: Vec<(Transfer, AuditEntry)>) -> Vec<Result<TransferView>> {
        let mut out: Vec<Option<Result<Fetched>>> = batch.iter().map(|_| None).collect();
        let looked_up = async {
            let nodes = self.store.nodes().await?;
            Ok::<_, StoreError>((nodes, self.store.institutions().await?))
        };
        let (nodes, names) = match looked_up.await {
            Ok((nodes, institutions)) => (nodes, InstitutionNames::of(institutions)),
            Err(e) => return batch.iter().map(|_| Err(e.again().into())).collect(),
        };
        let mut offers = std::collections::HashMap::new();
        // Each holder's node and what to ask it: (op, grant, consent key).
        type Ask = (usize, SignedGrant, [u8; 32]);
        type Node = (String, String, ed25519_dalek::VerifyingKey);
        let mut asks: std::collections::BTreeMap<InstitutionId, (Node, Vec<Ask>)> =
            std::collections::BTreeMap::new();
        for (i, (t, _)) in batch.iter().enumerate() {
            let prepared = async {
                let key =
                    self.consent_key(t, || format!("transfer {}: the consent is not live", t.id))?;
                let node = records_node_of(&nodes, t.holder)?;
                let grant = self.credential_grant(t, &mut offers, &names).await?;
                Ok::<_, HubError>((node, grant, key))
            };
            match prepared.await {
                Ok((node, grant, key)) => asks
                    .entry(t.holder)
                    .or_insert_with(|| (node, Vec::new()))
                    .1
                    .push((i, grant, key)),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let calls = asks.values().map(|((_, url, node_key), items)| {
            let grants: Vec<SignedGrant> = items.iter().map(|(_, g, _)| g.clone()).collect();
            self.ask_credentials(url, node_key, grants)
        });
        let answers = futures_util::future::join_all(calls).await;
        let mut keep = Vec::new();
        let mut kept_at = Vec::new();
        for (((node, _, _), items), answer) in asks.into_values().zip(answers) {
            let replies = match answer {
                Ok(replies) => replies,
                Err(e) => {
                    let why = e.to_string();
                    for (i, ..) in items {
                        out[i] = Some(Err(HubError::BadRequest(why.clone())));
                    }
                    continue;
                }
            };
            for ((i, grant, key), reply) in items.into_iter().zip(replies) {
                let (t, entry) = &batch[i];
                let mut entry = entry.clone();
                entry.grant_id = Some(grant.grant.grant_id.clone());
                match reply {
                    CredentialReply::Issued(package) => {
                        let body = serde_json::to_vec(&package).expect("a package serialises");
                        let sealed = crate::secrets::seal(&key, &package_context(t.id), &body);
                        keep.push(DeliveryOp {
                            id: t.id,
                            node: node.clone(),
                            status_index: package.status_index as i64,
                            status_uri: package.status_uri,
                            package: sealed,
                            audit: entry,
                        });
                        kept_at.push(i);
                    }
                    CredentialReply::Refused(why) => {
                        entry.outcome = Outcome::Failed;
                        entry.reason = Some("the holder refused".into());
                        let failed = self
                            .store
                            .fail_transfer(t.id, &format!("the holder refused: {why}"), entry)
                            .await;
                        out[i] = Some(failed.map(|t| (t, Vec::new())).map_err(HubError::from));
                    }
                }
            }
        }
        let n = keep.len();
        for (i, kept) in kept_at.into_iter().zip(StoreError::each(
            self.store.record_deliveries(keep).await,
            n,
        )) {
            out[i] = Some(kept.map(|(t, d)| (t, vec![d])).map_err(HubError::from));
        }
        self.mydata.events.notify_one();
        out.into_iter()
            .map(|r| {
                let (t, deliveries) = r.unwrap_or_else(|| Err(StoreError::unanswered().into()))?;
                let offer = offers
                    .get(&t.offer)
                    .ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", t.offer)))?;
                view_of(
                    &t,
                    deliveries,
                    offer,
                    names.named(t.agency),
                    names.named(t.holder),
                )
            })
            .collect()
    }

    /// The grant for a credential under `t`'s consent (entries looked up
    /// once a batch).
    async fn credential_grant(
        &self,
        t: &Transfer,
        offers: &mut std::collections::HashMap<i64, civic_store::Offer>,
        names: &InstitutionNames,
    ) -> Result<SignedGrant> {
        if let std::collections::hash_map::Entry::Vacant(slot) = offers.entry(t.offer) {
            let offer = self.store.offer(t.offer).await?;
            slot.insert(
                offer.ok_or_else(|| HubError::NotFound(format!("catalogue entry {}", t.offer)))?,
            );
        }
        let offer = &offers[&t.offer];
        let now = now_s();
        let mut expires = now + t.retention_days.max(1) * 86_400;
        if let Some(until) = t.consent_until {
            expires = expires
                .min(until.micros().div_euclid(1_000_000))
                .max(now + 86_400);
        }
        let items: Vec<String> = serde_json::from_str(&t.items).unwrap_or_default();
        let agency_name = names.named(t.agency).name;
        Ok(mydata_grant(
            self.keys(),
            agency_name.clone(),
            names.named(t.holder).name,
            t.legal_basis.clone(),
            format!("mydata-transfer:{}", t.id),
            Question::Credential(CredentialQuestion {
                subject: t.subject.clone(),
                entry: offer.code.clone(),
                document: offer.kind == "document",
                items,
                recipient: agency_name,
                recipient_key: serde_json::from_str(&t.recipient_key).unwrap_or(Value::Null),
                credential_expires_at: expires,
            }),
        ))
    }

    /// Asks one holder's node for credentials under `grants` (in requests
    /// of at most [`MAX_CREDENTIAL_BATCH`]); one reply a grant, in order.
    async fn ask_credentials(
        &self,
        url: &str,
        node_key: &ed25519_dalek::VerifyingKey,
        grants: Vec<SignedGrant>,
    ) -> Result<Vec<CredentialReply>> {
        let mut replies = Vec::with_capacity(grants.len());
        for chunk in grants.chunks(MAX_CREDENTIAL_BATCH) {
            let body = serde_json::to_string(&CredentialBatch {
                grants: chunk.to_vec(),
            })
            .expect("grants serialise");
            let (message, _) = self
                .mydata_client()?
                .call(
                    url,
                    CREDENTIALS_PATH,
                    node_key,
                    &body,
                    None,
                    &random_id("req"),
                    NODE_DEADLINE,
                )
                .await
                .map_err(exchange_error)?;
            let answered: CredentialReplies = serde_json::from_str(&message.body)
                .map_err(|e| HubError::BadRequest(format!("the holder's answer: {e}")))?;
            if answered.results.len() != chunk.len() {
                return Err(HubError::BadRequest(
                    "the holder's answer does not answer every grant".into(),
                ));
            }
            replies.extend(answered.results);
        }
        Ok(replies)
    }

    /// Under a periodic consent, the agency asks for a fresh credential
    /// (at most once an interval, until the consent ends).
    pub async fn send_again(&self, ctx: &Ctx, id: i64) -> Result<TransferView> {
        let (t, last) = self
            .found(ctx, id, "mydata.transfer.resend", By::Agency, false)
            .await?;
        if t.mode != Some(ConsentMode::Periodic) || t.state != TransferState::Delivered {
            return Err(HubError::Conflict(format!(
                "transfer {id} is not a delivered periodic consent"
            )));
        }
        if t.consent_until
            .is_some_and(|u| u.micros() < Timestamp::now().micros())
        {
            return Err(HubError::Conflict(format!(
                "transfer {id}: the consent has ended"
            )));
        }
        let every = t.interval_days.unwrap_or(30) * 86_400 * 1_000_000;
        if last
            .last()
            .is_some_and(|d| Timestamp::now().micros() - d.delivered_at.micros() < every)
        {
            return Err(HubError::Conflict(format!(
                "transfer {id}: the next sending is due {} days after the last",
                t.interval_days.unwrap_or(30)
            )));
        }
        let mut view = self.deliver(ctx, t).await?;
        let fresh = std::mem::take(&mut view.deliveries);
        view.deliveries = last.into_iter().map(delivery_view).chain(fresh).collect();
        Ok(view)
    }

    /// The agency fetches its newest package (marked fetched).
    pub async fn transfer_package(&self, ctx: &Ctx, id: i64) -> Result<PackageView> {
        let (party, mut entry) = self
            .party(ctx, id, "mydata.transfer.fetch", By::Agency)
            .await?;
        entry.purpose = Some("the agency receives what the citizen consented to".into());
        let op = FetchOp {
            id,
            party,
            audit: entry.clone(),
        };
        let fetched = self
            .in_batch(&self.mydata.fetches, op, |store, ops| async move {
                store.fetch_packages(ops).await
            })
            .await;
        let (t, deliveries) = self.as_party(fetched, entry).await?;
        let key = self.consent_key(&t, || {
            format!("transfer {id} is {}: no package is kept", t.state)
        })?;
        let Some(d) = deliveries.iter().rev().find(|d| d.package.is_some()) else {
            return Err(HubError::Conflict(format!(
                "transfer {id} is {}: nothing delivered yet",
                t.state
            )));
        };
        let body = d
            .package
            .as_deref()
            .and_then(|p| crate::secrets::open(&key, &package_context(id), p))
            .ok_or_else(|| {
                HubError::Store(civic_store::StoreError::Corrupt(format!(
                    "transfer {id}: package"
                )))
            })?;
        let package: IssuedPackage = serde_json::from_slice(&body)
            .map_err(|e| HubError::Store(civic_store::StoreError::Corrupt(e.to_string())))?;
        Ok(PackageView {
            transfer_id: id,
            credential: package.credential,
            document: package.document,
            status_index: d.status_index,
            // Where the list is now (the credential names where it was
            // when issued; the path is the same).
            status_uri: format!("{}/status-list", self.issuer_url(&d.node)),
            jwks_uri: format!("{}/jwks", self.issuer_url(&d.node)),
            issued_at: package.issued_at,
            expires_at: package.expires_at,
        })
    }

    /// The citizen withdraws his consent: the hub's copy is destroyed at
    /// once (the consent's key and the packages, in one transaction), the
    /// agency is told to delete, and the holder revokes the credentials
    /// (now, or by the retry loop if its node is down).
    pub async fn withdraw_transfer(&self, ctx: &Ctx, id: i64) -> Result<TransferView> {
        let (party, entry) = self
            .party(ctx, id, "mydata.transfer.withdraw", By::Citizen)
            .await?;
        let withdrawn = self
            .store
            .withdraw_transfer(id, &party, entry.clone())
            .await;
        self.as_party(withdrawn, entry).await?;
        self.mydata.events.notify_one();
        if let Err(e) = self.revoke_at_holder(id).await {
            tracing::warn!(transfer = id, error = %e, "revocation left for the retry loop");
        }
        self.transfer(ctx, id).await
    }

    /// Asks the holder to revoke a withdrawn transfer's credentials, and
    /// keeps its new signed status list.
    pub async fn revoke_at_holder(&self, id: i64) -> Result<()> {
        let op = Ctx::local_operator();
        let entry = op.entry(
            "mydata.transfer.revoke",
            &format!("mydata-transfer:{id}"),
            Outcome::Allowed,
        );
        let (t, deliveries) = self
            .store
            .deliveries(id, &Party::Hub, false, entry.clone())
            .await?;
        if deliveries.is_empty() {
            self.store.mark_revoked(id, entry).await?;
            return Ok(());
        }
        // The node that issued them (the holder's, by name).
        let node = deliveries[0].node.clone();
        let (url, node_key) = self.records_node_named(&node).await?;
        let signed = mydata_grant(
            self.keys(),
            self.institution_ref(t.agency).await?.name,
            self.institution_ref(t.holder).await?.name,
            "the citizen's withdrawal of consent".into(),
            format!("mydata-transfer:{id}"),
            Question::Revocation {
                // A holder answers through one node; its indices.
                status_indices: deliveries
                    .iter()
                    .filter(|d| d.node == node)
                    .map(|d| d.status_index as u64)
                    .collect(),
            },
        );
        let (message, _) = self
            .mydata_client()?
            .call(
                &url,
                REVOCATIONS_PATH,
                &node_key,
                "{}",
                Some(signed),
                &random_id("req"),
                NODE_DEADLINE,
            )
            .await
            .map_err(exchange_error)?;
        let list: StatusListReply = serde_json::from_str(&message.body)
            .map_err(|e| HubError::BadRequest(format!("the holder's status list: {e}")))?;
        self.store
            .save_status_list(&node, &list.uri, &list.token)
            .await?;
        self.store.mark_revoked(id, entry).await?;
        Ok(())
    }

    /// Revokes every withdrawn transfer the holders have not revoked yet.
    pub async fn revoke_pending(&self) -> Result<usize> {
        let mut n = 0;
        for id in self.store.unrevoked().await? {
            match self.revoke_at_holder(id).await {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(transfer = id, error = %e, "revocation still pending"),
            }
        }
        Ok(n)
    }

    /// The agency confirms it deleted what it received of a withdrawn
    /// consent.
    pub async fn confirm_transfer_deletion(&self, ctx: &Ctx, id: i64) -> Result<TransferView> {
        let (party, entry) = self
            .party(ctx, id, "mydata.transfer.deletion", By::Agency)
            .await?;
        let confirmed = self.store.confirm_deletion(id, &party, entry.clone()).await;
        self.as_party(confirmed, entry).await?;
        self.transfer(ctx, id).await
    }

    /// The agency's events after `after` (polling).
    pub async fn transfer_events(
        &self,
        ctx: &Ctx,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventView>> {
        self.authorize(
            ctx,
            Action::MydataTransfers,
            "mydata.events.read",
            "mydata-events",
        )
        .await?;
        let agency = ctx
            .principal()
            .map(|p| p.institution)
            .ok_or_else(|| HubError::BadRequest("events are read by an agency".into()))?;
        let events = self
            .store
            .events_after(agency, after.max(0), limit.clamp(1, 1000))
            .await?;
        Ok(events
            .into_iter()
            .map(|e| EventView {
                seq: e.seq,
                kind: e.kind,
                transfer_id: e.transfer,
                at: rfc3339(e.at),
            })
            .collect())
    }

    /// Subscribes the agency's webhook; returns the new signing secret.
    pub async fn set_transfer_webhook(
        &self,
        ctx: &Ctx,
        req: WebhookRequest,
    ) -> Result<WebhookView> {
        let entry = self
            .authorize(
                ctx,
                Action::MydataTransfers,
                "mydata.webhook.set",
                "mydata-webhook",
            )
            .await?;
        let agency = ctx
            .principal()
            .map(|p| p.institution)
            .ok_or_else(|| HubError::BadRequest("a webhook is set by an agency".into()))?;
        if req.url.chars().count() > 500 || !webhook_url_ok(req.url.trim()) {
            return Err(invalid(
                "url",
                "must be https://HOST[:PORT][/PATH] (plain http only to a loopback address)",
            ));
        }
        let url = req.url.trim();
        let parsed = reqwest::Url::parse(url).map_err(|_| invalid("url", "is not a URL"))?;
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback)) {
            return Err(invalid(
                "url",
                "must be https (plain http only to a loopback address)",
            ));
        }
        let secret = {
            use rand::RngCore;
            let mut k = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut k);
            k
        };
        let sealed = self
            .keys()
            .seal(&format!("mydata-webhook:{agency}"), &secret);
        self.store
            .set_webhook(
                Webhook {
                    agency,
                    url: url.to_owned(),
                    secret: sealed,
                    delivered_seq: 0,
                },
                entry,
            )
            .await?;
        self.mydata.events.notify_one();
        Ok(WebhookView {
            url: url.to_owned(),
            secret: format!("whsec_{}", data_encoding::BASE64.encode(&secret)),
        })
    }

    /// Sends every webhook its pending events, in order; a failed send is
    /// tried again on the next round. Returns how many were delivered.
    pub async fn push_webhooks(&self, http: &reqwest::Client) -> Result<usize> {
        let mut sent = 0;
        for hook in self.store.webhooks().await? {
            let Some(secret) = self
                .keys()
                .open(&format!("mydata-webhook:{}", hook.agency), &hook.secret)
            else {
                continue;
            };
            let events = self
                .store
                .events_after(hook.agency, hook.delivered_seq, 100)
                .await?;
            for e in events {
                let id = format!("evt_{}", e.seq);
                let ts = now_s();
                let body = json!({
                    "type": e.kind,
                    "timestamp": rfc3339(e.at),
                    "data": {"seq": e.seq, "transfer_id": e.transfer},
                })
                .to_string();
                let signature = webhook_signature(&secret, &id, ts, &body);
                let ok = http
                    .post(&hook.url)
                    .header("content-type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if !ok {
                    break;
                }
                self.store.webhook_delivered(hook.agency, e.seq).await?;
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Runs the webhook sender and the revocation retry until the hub
    /// stops: on every new event, and every few seconds.
    pub fn spawn_mydata_workers(&self) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds");
            let mut round: u64 = 0;
            loop {
                tokio::select! {
                    () = hub.mydata.events.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                if let Err(e) = hub.push_webhooks(&http).await {
                    tracing::warn!(error = %e, "webhooks");
                }
                round += 1;
                if round.is_multiple_of(6) {
                    if let Err(e) = hub.revoke_pending().await {
                        tracing::warn!(error = %e, "revocations");
                    }
                    if let Err(e) = hub.deliver_pending(Duration::from_secs(30)).await {
                        tracing::warn!(error = %e, "deliveries");
                    }
                }
            }
        })
    }

    /// A records node's public keys (JWK set), for verifiers.
    pub async fn issuer_jwks(&self, node: &str) -> Result<civic_mydata::JwkSet> {
        let (_, key) = self.records_node_named(node).await?;
        Ok(civic_mydata::JwkSet {
            keys: vec![civic_mydata::Jwk::ed25519(&key)],
        })
    }

    /// A records node's signed status list, fetched again from the node
    /// when the kept one is past half its life.
    pub async fn issuer_status_list(&self, node: &str) -> Result<StatusListReply> {
        let (url, _) = self.records_node_named(node).await?;
        let kept = self.store.status_list(node).await?;
        let fresh_for = civic_exchange::wire::STATUS_LIST_TTL_SECONDS / 2 * 1_000_000;
        if let Some((uri, token, at)) = &kept {
            if Timestamp::now().micros() - at.micros() < fresh_for {
                return Ok(StatusListReply {
                    uri: uri.clone(),
                    token: token.clone(),
                });
            }
        }
        match self
            .mydata_client()?
            .get_json::<StatusListReply>(&url, STATUS_LIST_PATH)
            .await
        {
            Ok(list) => {
                self.store
                    .save_status_list(node, &list.uri, &list.token)
                    .await?;
                Ok(list)
            }
            // An older list still within its life serves while the node
            // is away.
            Err(e) => kept
                .map(|(uri, token, _)| StatusListReply { uri, token })
                .ok_or_else(|| exchange_error(e)),
        }
    }

    /// Checks a credential as an agency would: the issuer's key, the
    /// signature, the expiry and its entry in the issuer's status list.
    pub async fn verify_credential(&self, ctx: &Ctx, req: VerifyRequest) -> Result<VerifyView> {
        self.authorize(
            ctx,
            Action::MydataTransfers,
            "mydata.credential.verify",
            "mydata-credential",
        )
        .await?;
        let fail = |error: String| VerifyView {
            valid: false,
            error: Some(error),
            issuer: None,
            revoked: None,
            claims: Value::Null,
        };
        // The issuer is named in the payload; its keys are the hub's to
        // give, so the issuer is looked up, never fetched from the URL.
        let payload = req
            .credential
            .split('~')
            .next()
            .and_then(|jws| jws.split('.').nth(1))
            .and_then(|p| data_encoding::BASE64URL_NOPAD.decode(p.as_bytes()).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let Some(iss) = payload.as_ref().and_then(|p| p["iss"].as_str()) else {
            return Ok(fail("not an SD-JWT VC with an issuer".into()));
        };
        // The hub's own address may differ from the one a credential was
        // issued under (a demo on another port): the path names the
        // holder, and its key decides.
        let Some(node) = iss
            .rsplit('/')
            .next()
            .filter(|n| iss.ends_with(&format!("/api/v1/mydata/issuers/{n}")))
        else {
            return Ok(fail(format!("{iss} is not an issuer of this hub")));
        };
        let keys = match self.issuer_jwks(node).await {
            Ok(k) => k,
            Err(_) => return Ok(fail(format!("{iss} is not an issuer of this hub"))),
        };
        let verified = match civic_mydata::sdjwt::verify(&req.credential, &keys, now_s()) {
            Ok(v) => v,
            Err(e) => return Ok(fail(e.to_string())),
        };
        let mut revoked = None;
        if let Some((uri, idx)) = verified.status() {
            let list = self.issuer_status_list(node).await?;
            if list.uri != uri {
                return Ok(fail("the status list is not the issuer's".into()));
            }
            match civic_mydata::status::is_revoked(&list.token, &keys, &uri, idx, now_s()) {
                Ok(r) => revoked = Some(r),
                Err(e) => return Ok(fail(e.to_string())),
            }
        }
        let valid = revoked != Some(true);
        Ok(VerifyView {
            valid,
            error: (!valid).then(|| "the credential was revoked".to_owned()),
            issuer: Some(iss.to_owned()),
            revoked,
            claims: Value::Object(verified.claims),
        })
    }

    /// Every access to the citizen's data recorded in the ledger, newest
    /// first (his own included).
    pub async fn my_accesses(&self, ctx: &Ctx) -> Result<Vec<AccessView>> {
        let entry = self
            .authorize(
                ctx,
                Action::MydataCitizen,
                "mydata.accesses.read",
                "mydata-accesses",
            )
            .await?;
        let subject = Self::citizen_subject(ctx)?;
        let tag = self.citizen_tag(subject.as_str());
        let records = self
            .store
            .search_audit(
                AuditQuery {
                    subject: Some(tag.clone()),
                    limit: AuditQuery::MAX_LIMIT,
                    ..Default::default()
                },
                self.tagged(entry, subject.as_str()),
            )
            .await?;
        let names = self.institution_names().await?;
        Ok(records
            .into_iter()
            .map(|r| AccessView {
                seq: r.seq,
                at: rfc3339(r.entry.at),
                who: r.entry.actor_name.clone(),
                institution: r
                    .entry
                    .institution
                    .and_then(|i| names.name(i).map(str::to_owned)),
                action: r.entry.action.clone(),
                resource: r.entry.resource.clone(),
                purpose: r.entry.purpose.clone(),
                outcome: format!("{:?}", r.entry.outcome).to_lowercase(),
            })
            .collect())
    }

    /// A transfer's consent receipt, in the structure of ISO/IEC TS 27560
    /// (consent record information structure).
    pub async fn consent_receipt(&self, ctx: &Ctx, id: i64) -> Result<Value> {
        let view = self.transfer(ctx, id).await?;
        Ok(consent_record(&view, &self.public_url()))
    }

    /// Everything every holding institution keeps of the citizen, asked of
    /// each holder's node under a portability grant.
    pub async fn my_data(&self, ctx: &Ctx) -> Result<Value> {
        let entry = self
            .authorize(
                ctx,
                Action::MydataCitizen,
                "mydata.portability.export",
                "mydata-portability",
            )
            .await?;
        let subject = Self::citizen_subject(ctx)?;
        let mut holders = Vec::new();
        let nodes: Vec<_> = self
            .store
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.route.as_ref().is_some_and(|r| r.kind == "records"))
            .collect();
        for node in nodes {
            let key = crate::eiss::node_key(&node)?;
            let url = node
                .route
                .as_ref()
                .map(|r| r.url.clone())
                .unwrap_or_default();
            let holder = self.institution_ref(node.institution).await?;
            let signed = mydata_grant(
                self.keys(),
                "the citizen".into(),
                holder.name.clone(),
                "Personal Information Protection Act, art. 35-2 (right to transmission)".into(),
                format!("mydata-portability:{}", random_id("p")),
                Question::Portability {
                    subject: subject.as_str().to_owned(),
                },
            );
            let (message, _) = self
                .mydata_client()?
                .call(
                    &url,
                    PORTABILITY_PATH,
                    &key,
                    "{}",
                    Some(signed),
                    &random_id("req"),
                    NODE_DEADLINE,
                )
                .await
                .map_err(exchange_error)?;
            let reply: PortabilityReply = serde_json::from_str(&message.body)
                .map_err(|e| HubError::BadRequest(format!("the holder's records: {e}")))?;
            if !reply.records.is_empty() {
                holders.push(json!({
                    "institution": holder,
                    "issuer": self.issuer_url(&node.name),
                    "records": reply.records,
                    "credentials": reply.credentials,
                }));
            }
        }
        // The download itself is an access to his data.
        self.store
            .append_audit(self.tagged(entry, subject.as_str()))
            .await?;
        Ok(json!({
            "subject": subject.as_str(),
            "exported_at": rfc3339(Timestamp::now()),
            "holders": holders,
        }))
    }
}

/// The Standard Webhooks signature: `v1,` and the base64 HMAC-SHA-256 of
/// `{id}.{timestamp}.{body}` under the secret.
pub fn webhook_signature(secret: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        data_encoding::BASE64.encode(&mac.finalize().into_bytes())
    )
}

/// The citizen's data as CSV: one row an item.
pub fn portability_csv(export: &Value) -> String {
    let mut out = String::from("\u{feff}holder,entry,title,item,value\r\n");
    let cell = |s: &str| {
        let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    for h in export["holders"].as_array().into_iter().flatten() {
        let holder = h["institution"]["name"].as_str().unwrap_or_default();
        for r in h["records"].as_array().into_iter().flatten() {
            for (name, value) in r["items"].as_object().into_iter().flatten() {
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.push_str(&format!(
                    "{},{},{},{},{}\r\n",
                    cell(holder),
                    cell(r["entry"].as_str().unwrap_or_default()),
                    cell(r["title"].as_str().unwrap_or_default()),
                    cell(name),
                    cell(&value)
                ));
            }
        }
    }
    out
}

/// A consent record in the structure of ISO/IEC TS 27560:2023 (its
/// information elements, in the JSON names the DPV community's guide to
/// it uses).
fn consent_record(t: &TransferView, hub: &str) -> Value {
    let state = match t.state {
        TransferState::AwaitingConsent => "requested",
        TransferState::Refused => "refused",
        TransferState::Withdrawn => "withdrawn",
        TransferState::Consented | TransferState::Delivered | TransferState::Failed => "given",
    };
    let mut events = vec![
        json!({"event_time": t.created_at, "event_type": "requested", "event_by": t.agency.name}),
    ];
    if let Some(at) = &t.decided_at {
        events.push(json!({
            "event_time": at,
            "event_type": if t.state == TransferState::Refused { "refused" } else { "given" },
            "event_by": "data subject",
        }));
    }
    if let Some(at) = &t.withdrawn_at {
        events
            .push(json!({"event_time": at, "event_type": "withdrawn", "event_by": "data subject"}));
    }
    json!({
        "schema_version": "ISO/IEC TS 27560:2023",
        "record_id": format!("urn:civic:consent:{}", t.id),
        "pii_principal_id": t.subject,
        "consent_status": state,
        "notice": {
            "notice_id": format!("{hub}/api/v1/mydata/transfers/{}", t.id),
            "notice_text": format!(
                "{} asks for {} ({}) from {} for the service {}: {}",
                t.agency.name, t.offer.title, t.items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", "),
                t.holder.name, t.service, t.purpose
            ),
        },
        "pii_controllers": [
            {"name": t.agency.name, "role": "recipient"},
            {"name": t.holder.name, "role": "source"},
        ],
        "purposes": [{
            "purpose": t.purpose,
            "service": t.service,
            "lawful_basis": t.legal_basis,
            "pii_categories": t.items.iter().map(|i| json!({"name": i.name, "description": i.description, "sensitivity": i.sensitivity})).collect::<Vec<_>>(),
            "processing": ["transmission", "storage"],
            "storage_duration_days": t.retention_days,
        }],
        "consent_type": "explicit",
        "duration": {
            "mode": t.mode,
            "until": t.consent_until,
            "interval_days": t.interval_days,
        },
        "jurisdiction": "KR",
        "events": events,
        "credentials": t.deliveries.iter().map(|d| json!({"status_list": d.status_uri, "index": d.status_index, "kept_by_hub": d.kept})).collect::<Vec<_>>(),
    })
}

#[cfg(feature = "openapi")]
fn consent_mode() -> utoipa::openapi::Object {
    let modes: Vec<&str> = ConsentMode::ALL.iter().map(|m| m.as_str()).collect();
    civic_core::schemas::one_of(&modes)
}

/// Whether `url` is what `civic_core::schemas::webhook_url` describes
/// (the same grammar, by hand): `https://HOST` of letters, digits, `.` and
/// `-`, or `http://` to a loopback address; an optional port of 1-5
/// digits; an optional path of `A-Z a-z 0-9 . _ ~ % / -`.
fn webhook_url_ok(url: &str) -> bool {
    let rest = if let Some(r) = url.strip_prefix("https://") {
        let host = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(r.len());
        if host == 0 {
            return false;
        }
        &r[host..]
    } else if let Some(r) = url.strip_prefix("http://") {
        match ["127.0.0.1", "localhost", "[::1]"]
            .iter()
            .find(|h| r.starts_with(**h))
        {
            Some(h) => &r[h.len()..],
            None => return false,
        }
    } else {
        return false;
    };
    let rest = match rest.strip_prefix(':') {
        Some(r) => {
            let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            if !(1..=5).contains(&digits) {
                return false;
            }
            &r[digits..]
        }
        None => rest,
    };
    rest.is_empty()
        || (rest.starts_with('/')
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._~%/-".contains(c)))
}

#[cfg(test)]
mod webhook_url_tests {
    #[test]
    fn webhook_addresses_are_https_or_loopback_http() {
        for ok in [
            "https://agency.example/hook",
            "https://10.0.0.5:9443",
            "http://127.0.0.1:8080/x",
            "http://localhost",
        ] {
            assert!(super::webhook_url_ok(ok), "{ok}");
        }
        for bad in [
            "http://agency.example/hook",
            "http://localhost.evil.example/",
            "https://",
            "https://a/b*",
            "https://a:123456",
            "ftp://a",
        ] {
            assert!(!super::webhook_url_ok(bad), "{bad}");
        }
    }
}
