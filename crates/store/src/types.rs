//! The records storage reads and writes.

use civic_core::identity::{
    ApiTokenId, Duty, DutyKind, InstitutionId, InstitutionKind, Name, Region, UserId, Username,
};
use civic_core::investigation::{
    CaseId, CaseStatus, CollectionPurpose, CollectionStatus, ContactId, ContactStatus, DataItem,
    DataRequestId, RequestStatus, ResponseId, ResponseStatus,
};
use civic_core::time::Timestamp;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Institution {
    pub id: InstitutionId,
    pub name: String,
    pub kind: InstitutionKind,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewInstitution {
    pub name: Name,
    pub kind: InstitutionKind,
}

/// A user as stored. Holds secrets (the password hash, the sealed TOTP
/// secret): never serialise it as is; the API has its own view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub institution: InstitutionId,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    /// A machine client signs in only with API tokens, never a password.
    pub machine_client: bool,
    /// The TOTP secret, sealed with the hub's secret key.
    pub totp_secret_sealed: Option<Vec<u8>>,
    pub totp_enabled: bool,
    /// The last TOTP time step accepted, so that no code is used twice.
    pub totp_last_step: Option<i64>,
    pub duties: Vec<Duty>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub institution: InstitutionId,
    pub username: Username,
    pub display_name: Name,
    pub password_hash: String,
    pub machine_client: bool,
    pub duties: Vec<Duty>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the bearer token, hex: the token itself is never stored.
    pub token_hash: String,
    pub user: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_seen: Timestamp,
    pub second_factor: bool,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub user: UserId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub second_factor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub user: UserId,
    pub institution: InstitutionId,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct NewApiToken {
    pub user: UserId,
    pub name: Name,
    pub token_hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// How failed sign-ins counted under one key (a pseudonym of a name, of
/// an address or of a device) slow the next attempt under it: after
/// `free` failures in a row the next attempt waits `first_delay_seconds`,
/// and each further failure doubles the wait, up to `max_delay_seconds`. A key with no failure for `forget_after_seconds`
/// starts again. Nothing is ever locked: a wait ends by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub free: i64,
    pub first_delay_seconds: i64,
    pub max_delay_seconds: i64,
    pub forget_after_seconds: i64,
}

impl Backoff {
    /// The wait after the `failures`-th failure in a row.
    pub fn delay_seconds(&self, failures: i64) -> i64 {
        let over = failures - self.free;
        if over < 0 {
            0
        } else {
            self.first_delay_seconds
                .saturating_mul(1i64 << over.min(40))
                .min(self.max_delay_seconds)
        }
    }
}

/// A one-time enrolment token for a node, before use.
#[derive(Debug, Clone)]
pub struct NewEnrolment {
    pub token_hash: String,
    pub institution: InstitutionId,
    pub node_name: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewNode {
    /// The name the node enrols under: the token's.
    pub name: String,
    /// The Ed25519 key the node signs envelopes with (hex).
    pub signing_key: String,
    /// The certificate issued to it (PEM).
    pub certificate: String,
    pub enrolled_at: Timestamp,
}

/// An enrolled node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub name: String,
    pub institution: InstitutionId,
    pub signing_key: String,
    #[serde(skip)]
    pub certificate: String,
    pub enrolled_at: Timestamp,
    /// Where it answers and what it holds, once registered.
    #[serde(skip)]
    pub route: Option<NodeRoute>,
}

/// An endorser's signing key, sealed by the hub, with the hub's
/// certificate for it (JSON).
#[derive(Debug, Clone)]
pub struct EndorserKey {
    pub user: UserId,
    /// `health_approver` or `police_location_officer`.
    pub role: String,
    pub public_key: String,
    pub secret_sealed: Vec<u8>,
    pub certificate: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// An outbreak response as stored: its rules are JSON (civic-eiss's
/// `Rules`); its data key is kept apart (`response_keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    pub id: ResponseId,
    pub name: String,
    pub legal_basis: String,
    pub rules: String,
    pub status: ResponseStatus,
    pub opened_by: Option<UserId>,
    pub opened_at: Timestamp,
    pub closed_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewResponse {
    pub name: String,
    pub legal_basis: String,
    pub rules: String,
    /// The response's data key, sealed under the hub's sealing key.
    pub key_sealed: Vec<u8>,
    pub opened_by: Option<UserId>,
}

/// A case as stored. `sealed` holds everything personal (who, the
/// dates), encrypted under the response's data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub id: CaseId,
    pub response: ResponseId,
    /// The health authority's case number.
    pub number: String,
    pub region: Region,
    pub status: CaseStatus,
    /// For a case that was a positive contact: the case it was exposed to.
    pub source_case: Option<CaseId>,
    pub assigned: Vec<UserId>,
    pub sealed: Vec<u8>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewCase {
    pub response: ResponseId,
    pub number: String,
    pub region: Region,
    pub source_case: Option<CaseId>,
    pub assigned: Vec<UserId>,
    pub sealed: Vec<u8>,
}

/// A case's sealed documents: its interview, its reconstructed timeline,
/// a route published elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseDocument {
    Interview,
    Timeline,
    PublishedRoute,
}

impl CaseDocument {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interview => "interview",
            Self::Timeline => "timeline",
            Self::PublishedRoute => "published_route",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Interview, Self::Timeline, Self::PublishedRoute]
            .into_iter()
            .find(|d| d.as_str() == raw)
    }
}

/// A decision on a data request, in the decider's duty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub duty: DutyKind,
    pub user: UserId,
    pub approve: bool,
    /// The reason, sealed.
    pub sealed: Vec<u8>,
    pub decided_at: Timestamp,
}

/// A data request as stored. `sealed` holds the investigator's reason
/// and, once the first approval is given, the grants (which name the
/// case's identifiers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRequest {
    pub id: DataRequestId,
    pub case: CaseId,
    pub response: ResponseId,
    pub items: Vec<DataItem>,
    /// Whether the holders are also asked who was where the case was.
    pub contacts: bool,
    pub data_from: i64,
    pub data_until: i64,
    pub status: RequestStatus,
    pub requested_by: UserId,
    pub created_at: Timestamp,
    pub sealed: Vec<u8>,
    pub decisions: Vec<Decision>,
}

#[derive(Debug, Clone)]
pub struct NewDataRequest {
    pub case: CaseId,
    pub items: Vec<DataItem>,
    pub contacts: bool,
    pub data_from: i64,
    pub data_until: i64,
    pub requested_by: UserId,
    pub sealed: Vec<u8>,
}

/// One question to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub id: i64,
    pub request: DataRequestId,
    pub case: CaseId,
    pub node: String,
    pub purpose: CollectionPurpose,
    /// The request id the node knows it by (fixed: every retry reuses it).
    pub exchange_id: String,
    pub status: CollectionStatus,
    /// A refusal's or failure's reason (the node's words; no personal data).
    pub detail: Option<String>,
    /// The signed grant (and for contacts, the windows), sealed.
    pub sealed: Vec<u8>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewCollection {
    pub node: String,
    pub purpose: CollectionPurpose,
    pub exchange_id: String,
    pub sealed: Vec<u8>,
}

/// A contact as stored: `tag` is a keyed digest of the person's
/// identifier under the response's key (so the same person is one contact
/// of a case, and nothing links tags once the key is destroyed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    pub id: ContactId,
    pub case: CaseId,
    pub tag: String,
    pub status: ContactStatus,
    pub overlap_minutes: i64,
    pub linked_case: Option<CaseId>,
    pub sealed: Vec<u8>,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewContact {
    pub tag: String,
    pub overlap_minutes: i64,
    pub sealed: Vec<u8>,
}

/// A message waiting for the notification sender (an SMS gateway, or
/// none: the outbox is the record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub response: ResponseId,
    pub case: Option<CaseId>,
    /// `patient_notice` or `contact_notice`.
    pub kind: String,
    /// Recipient and text, sealed.
    pub sealed: Vec<u8>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewOutboxMessage {
    pub response: ResponseId,
    pub case: Option<CaseId>,
    pub kind: String,
    pub sealed: Vec<u8>,
}

/// What a response holds, counted (for its deletion certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ResponseCounts {
    pub cases: u64,
    pub documents: u64,
    pub data_requests: u64,
    pub decisions: u64,
    pub collections: u64,
    pub answers: u64,
    pub contacts: u64,
    pub outbox: u64,
}

/// A signed record of what was destroyed when a response closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeletionCertificate {
    pub id: i64,
    pub response: ResponseId,
    /// The certificate (JSON) and the hub's signature over it.
    pub body: String,
    pub signature: String,
    pub created_at: Timestamp,
}

/// Where the hub reaches a node, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoute {
    pub url: String,
    /// `pings`, `transactions` or `taps`.
    pub kind: String,
    /// The code of the holder in case registers (`skt`, `shinhan`).
    pub code: String,
}
