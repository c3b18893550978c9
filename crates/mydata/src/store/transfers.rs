//! Public MyData's transfers: a using agency's request for a citizen's items,
//! the citizen's consent or refusal, the credentials the holder issued
//! (sealed under the consent's data key), the withdrawal that destroys
//! that key, and the events agencies are told of.
//!
//! Every method that reads or writes a transfer takes an audit entry and
//! appends it in its transaction. A state change is checked against the
//! state it must come from inside the transaction, so two racing changes
//! cannot both happen.

civic_store::store_trait! {
/// What a transfer store does.
pub trait TransferStore {
    /// A new request, awaiting the citizen's consent. A conflict unless the
    /// agreement it names is approved (checked in the transaction).
    fn create_transfer(&self, new: crate::store::NewTransfer, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Transfer>;
    fn transfer(&self, id: civic_core::mydata::TransferId, audit: civic_core::audit::AuditEntry) -> crate::store::Result<Option<crate::store::Transfer>>;
    /// Transfers of one citizen (`subject`), of one agency or of one
    /// holder, newest first.
    fn transfers_where(&self, filter: crate::store::TransferFilter, audit: civic_core::audit::AuditEntry) -> crate::store::Result<Vec<crate::store::Transfer>>;
    /// The citizen's answer: consent (with the consent's sealed data key)
    /// or refusal. A conflict unless the transfer awaits consent and its
    /// agreement is still approved.
    fn decide_transfer(&self, id: civic_core::mydata::TransferId, party: &crate::store::Party, decision: crate::store::TransferDecision, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Transfer>;
    /// Many citizens' answers in one transaction (a group commit): each
    /// is judged alone, as [`TransferStore::decide_transfer`] would, and
    /// gets its own result; what is refused writes nothing. The outer
    /// error is the database's: then nothing of the batch is written.
    fn decide_transfers(&self, ops: Vec<DecisionOp>) -> crate::store::Result<Vec<crate::store::Result<crate::store::Transfer>>>;
    /// Many credentials in one transaction, each judged alone as
    /// [`TransferStore::record_delivery`] would.
    fn record_deliveries(&self, ops: Vec<DeliveryOp>) -> crate::store::Result<Vec<crate::store::Result<(crate::store::Transfer, crate::store::Delivery)>>>;
    /// Keeps a credential the holder issued. A conflict unless the consent
    /// is live (consented or delivered, its key not destroyed).
    fn record_delivery(&self, id: civic_core::mydata::TransferId, node: &str, status_index: i64, status_uri: &str, package: Vec<u8>, audit: civic_core::audit::AuditEntry) -> crate::store::Result<(crate::store::Transfer, crate::store::Delivery)>;
    /// The holder could not issue: the transfer failed, with the reason.
    fn fail_transfer(&self, id: civic_core::mydata::TransferId, reason: &str, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Transfer>;
    /// A transfer, if `party` is party to it (else not found), with its
    /// credentials oldest first; `fetched` marks them fetched by the
    /// agency.
    fn deliveries(&self, id: civic_core::mydata::TransferId, party: &crate::store::Party, fetched: bool, audit: civic_core::audit::AuditEntry) -> crate::store::Result<(crate::store::Transfer, Vec<crate::store::Delivery>)>;
    /// Many agencies' fetches in one transaction: for each, what
    /// [`TransferStore::deliveries`] with `fetched` gives.
    fn fetch_packages(&self, ops: Vec<FetchOp>) -> crate::store::Result<Vec<crate::store::Result<Fetched>>>;
    /// The citizen withdraws: the consent's key and every kept package are
    /// destroyed in the transaction. A conflict unless consented or
    /// delivered.
    fn withdraw_transfer(&self, id: civic_core::mydata::TransferId, party: &crate::store::Party, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Transfer>;
    /// The holder revoked the transfer's credentials.
    fn mark_revoked(&self, id: civic_core::mydata::TransferId, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Transfer>;
    /// The agency confirms it deleted what it received. A conflict unless
    /// withdrawn.
    fn confirm_deletion(&self, id: civic_core::mydata::TransferId, party: &crate::store::Party, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Transfer>;
    /// Withdrawn transfers whose holder has not yet revoked.
    fn unrevoked(&self) -> crate::store::Result<Vec<civic_core::mydata::TransferId>>;
    /// Consented transfers the holder has not answered yet (its node was
    /// down), consented before `before`.
    fn undelivered(&self, before: civic_core::time::Timestamp) -> crate::store::Result<Vec<civic_core::mydata::TransferId>>;
    /// Delivered transfers per (offer, agency, year of delivery).
    fn transfer_counts(&self) -> crate::store::Result<Vec<(civic_core::mydata::OfferId, civic_core::identity::InstitutionId, i64, i64)>>;
}
}

civic_store::store_trait! {
/// What agencies are told of transfers after the fact (the events, and
/// the webhooks that push them) and what the platform learns of the
/// holders' credentials (their signed status lists).
pub trait TransferEventStore {
    /// An agency's events after `after`, at most `limit`.
    fn events_after(&self, agency: civic_core::identity::InstitutionId, after: i64, limit: i64) -> crate::store::Result<Vec<crate::store::TransferEvent>>;
    fn set_webhook(&self, hook: crate::store::Webhook, audit: civic_core::audit::AuditEntry) -> crate::store::Result<()>;
    fn webhooks(&self) -> crate::store::Result<Vec<crate::store::Webhook>>;
    fn webhook_delivered(&self, agency: civic_core::identity::InstitutionId, seq: i64) -> crate::store::Result<()>;
    fn save_status_list(&self, node: &str, uri: &str, token: &str) -> crate::store::Result<()>;
    /// A holder node's last signed status list: (uri, token, fetched at).
    fn status_list(&self, node: &str) -> crate::store::Result<Option<(String, String, civic_core::time::Timestamp)>>;
}
}

/// A transfer and its credentials, oldest first.
pub type Fetched = (crate::store::Transfer, Vec<crate::store::Delivery>);

/// Who asks about a transfer: only a party to it finds it (checked in
/// the transaction that reads or changes it).
#[derive(Debug, Clone, PartialEq)]
pub enum Party {
    /// The citizen it is about.
    Subject(String),
    /// The agency that asked.
    Agency(civic_core::identity::InstitutionId),
    /// The agency that asked or the holder that issues.
    Institution(civic_core::identity::InstitutionId),
    /// The hub itself (its retry loop).
    Hub,
}

impl Party {
    /// Whether this party may see `t`.
    pub fn sees(&self, t: &crate::store::Transfer) -> bool {
        match self {
            Party::Subject(s) => &t.subject == s,
            Party::Agency(a) => t.agency == *a,
            Party::Institution(i) => t.agency == *i || t.holder == *i,
            Party::Hub => true,
        }
    }
}

/// Which transfers to list.
#[derive(Debug, Clone, PartialEq)]
pub enum TransferFilter {
    Subject(String),
    Agency(civic_core::identity::InstitutionId),
    Holder(civic_core::identity::InstitutionId),
}

/// The citizen's answer to a request.
#[derive(Debug, Clone, PartialEq)]
pub enum TransferDecision {
    Consent {
        mode: civic_core::mydata::ConsentMode,
        until: Option<civic_core::time::Timestamp>,
        interval_days: Option<i64>,
        sealed_key: Vec<u8>,
    },
    Refuse {
        reason: Option<String>,
    },
}

/// A citizen's answer to one transfer, one of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionOp {
    pub id: civic_core::mydata::TransferId,
    pub party: Party,
    pub decision: TransferDecision,
    pub audit: civic_core::audit::AuditEntry,
}

/// A credential the holder issued for one transfer, one of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOp {
    pub id: civic_core::mydata::TransferId,
    pub node: String,
    pub status_index: i64,
    pub status_uri: String,
    /// Sealed under the consent's data key.
    pub package: Vec<u8>,
    pub audit: civic_core::audit::AuditEntry,
}

/// An agency's fetch of one transfer's packages, one of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchOp {
    pub id: civic_core::mydata::TransferId,
    pub party: Party,
    pub audit: civic_core::audit::AuditEntry,
}

/// A value bound to a state change's assignments.
#[doc(hidden)]
pub enum Bind {
    Int(i64),
    Text(String),
    OptText(Option<String>),
}
