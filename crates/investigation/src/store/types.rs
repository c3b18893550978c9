//! The investigation's records as stored.

use civic_core::identity::{DutyKind, Region, UserId};
use civic_core::investigation::*;
use civic_core::time::Timestamp;
use serde::Serialize;

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

/// What a case's place in the clusters is made from, as stored: its
/// sealed record and its sealed timeline and published route, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRoutes {
    pub id: CaseId,
    /// The case number (the sealed record's context).
    pub number: String,
    pub sealed: Vec<u8>,
    pub timeline: Option<Vec<u8>>,
    pub published: Option<Vec<u8>>,
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
