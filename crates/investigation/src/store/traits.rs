//! The epidemic investigation's records: responses and their data keys,
//! cases, data requests and decisions, collections and their answers,
//! contacts, the notification outbox, deletion certificates. The SQL is
//! in `sql/`.
//!
//! Everything personal is a sealed blob here (the hub seals it under the
//! response's data key); a method that hands one out or takes one in
//! appends its audit entry in the same transaction. Writes to a response
//! that is not open are refused (`Conflict`), so nothing is added while
//! it closes.

use crate::store::*;
use civic_core::audit::AuditEntry;
use civic_core::identity::UserId;
use civic_core::investigation::{
    CaseId, CollectionStatus, ContactId, ContactStatus, DataRequestId, RequestStatus, ResponseId,
    ResponseStatus,
};
use civic_core::time::Timestamp;

/// Which data requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub id: Option<DataRequestId>,
    pub case: Option<CaseId>,
    pub response: Option<ResponseId>,
    /// Any of these (empty: all).
    pub statuses: Vec<RequestStatus>,
}

civic_store::store_trait! {
/// A response (an outbreak's investigation under one legal basis): its data key, its status, its counts, its closing with deletion certificates.
pub trait ResponseStore {
    fn create_response(&self, new: NewResponse, audit: AuditEntry) -> Result<Response>;
    fn responses(&self) -> Result<Vec<Response>>;
    fn response(&self, id: ResponseId) -> Result<Option<Response>>;
    /// The sealed data key; `None` once destroyed.
    fn response_key(&self, id: ResponseId) -> Result<Option<Vec<u8>>>;
    /// Moves a response from `from` to `to` (`Conflict` if it is not in
    /// `from`).
    fn set_response_status(&self, id: ResponseId, from: ResponseStatus, to: ResponseStatus, audit: AuditEntry) -> Result<()>;
    fn response_counts(&self, id: ResponseId) -> Result<ResponseCounts>;
    /// Every (node, exchange id) the response's collections used.
    fn exchange_ids(&self, id: ResponseId) -> Result<Vec<(String, String)>>;
    /// In one transaction: destroys the response's data key, deletes every
    /// record of it but the response itself, marks it closed, keeps the
    /// deletion certificate and audits — or does nothing. The response
    /// must be closing.
    fn close_response(&self, id: ResponseId, certificate: String, signature: String, audit: AuditEntry) -> Result<DeletionCertificate>;
    fn deletion_certificates(&self, id: ResponseId) -> Result<Vec<DeletionCertificate>>;
}
}

civic_store::store_trait! {
/// A response's cases: their sealed documents (interview, routes), their assignments to investigators.
pub trait CaseStore {
    /// Registers cases, all or none (`Conflict` naming a case number
    /// already registered in the response).
    fn create_cases(&self, new: Vec<NewCase>, audit: AuditEntry) -> Result<Vec<CaseRecord>>;
    /// A case without its sealed part (for access decisions).
    fn case_meta(&self, id: CaseId) -> Result<Option<CaseRecord>>;
    fn case_by_number(&self, response: ResponseId, number: &str) -> Result<Option<CaseRecord>>;
    /// Cases of a response without their sealed parts.
    fn case_metas(&self, response: ResponseId) -> Result<Vec<CaseRecord>>;
    /// Cases with their sealed parts (`ids` empty: all of the response).
    fn read_cases(&self, response: ResponseId, ids: &[CaseId], audit: AuditEntry) -> Result<Vec<CaseRecord>>;
    fn assign_case(&self, id: CaseId, users: Vec<UserId>, audit: AuditEntry) -> Result<()>;
    fn put_document(&self, case: CaseId, kind: CaseDocument, sealed: Vec<u8>, audit: AuditEntry) -> Result<()>;
    /// Several documents at once, in one transaction with one audit entry.
    fn put_documents(&self, documents: Vec<(CaseId, CaseDocument, Vec<u8>)>, audit: AuditEntry) -> Result<()>;
    /// Documents of one kind of a response's cases (`cases` empty: all).
    fn documents(&self, response: ResponseId, cases: &[CaseId], kind: CaseDocument, audit: AuditEntry) -> Result<Vec<(CaseId, Vec<u8>)>>;
    /// Every case of a response with its sealed record, timeline and
    /// published route, in id order: one query, one audit entry (what
    /// the clusters are built from).
    fn sealed_routes(&self, response: ResponseId, audit: AuditEntry) -> Result<Vec<SealedRoutes>>;
    /// People (not machine clients) with the investigator duty, their
    /// region and how many open cases each is assigned.
    fn investigator_loads(&self) -> Result<Vec<(UserId, civic_core::identity::Region, u64)>>;
}
}

civic_store::store_trait! {
/// Data requests (an investigator's ask for a case's data), their decisions, the collections from the nodes that answer them and their sealed answers, and how each node is reached.
pub trait DataRequestStore {
    fn create_data_request(&self, new: NewDataRequest, audit: AuditEntry) -> Result<DataRequest>;
    /// Requests without their sealed parts (for access decisions and
    /// lists of states).
    fn request_metas(&self, filter: RequestFilter) -> Result<Vec<DataRequest>>;
    /// Requests with their sealed parts.
    fn read_requests(&self, filter: RequestFilter, audit: AuditEntry) -> Result<Vec<DataRequest>>;
    /// Records a decision and moves the request from `expected` to `next`
    /// (replacing its sealed part if given); `Conflict` if it is no longer
    /// `expected` or this duty decided already.
    #[allow(clippy::too_many_arguments)]
    fn decide_request(&self, id: DataRequestId, decision: Decision, expected: RequestStatus, next: RequestStatus, sealed: Option<Vec<u8>>, audit: AuditEntry) -> Result<()>;
    /// Adds collections to a request and moves it from `expected` to
    /// `next` (replacing its sealed part if given), with the outbox
    /// messages the step sends.
    #[allow(clippy::too_many_arguments)]
    fn add_collections(&self, request: DataRequestId, expected: RequestStatus, next: RequestStatus, sealed: Option<Vec<u8>>, collections: Vec<NewCollection>, outbox: Vec<NewOutboxMessage>, audit: AuditEntry) -> Result<Vec<Collection>>;
    /// Collections without their sealed parts.
    fn collection_metas(&self, case: Option<CaseId>, status: Option<CollectionStatus>) -> Result<Vec<Collection>>;
    /// One collection with its sealed grant.
    fn read_collection(&self, id: i64, audit: AuditEntry) -> Result<Option<Collection>>;
    /// Ends a pending collection with its answer (sealed) or reason;
    /// `Conflict` if it was no longer pending.
    fn finish_collection(&self, id: i64, status: CollectionStatus, detail: Option<String>, answer: Option<Vec<u8>>, audit: AuditEntry) -> Result<()>;
    /// Moves a request to `next` if it is `expected` (no conflict if not).
    fn set_request_status(&self, id: DataRequestId, expected: RequestStatus, next: RequestStatus) -> Result<bool>;
    /// A case's answers: (collection, sealed answer), of one purpose or
    /// all.
    fn answers(&self, case: CaseId, purpose: Option<civic_core::investigation::CollectionPurpose>, audit: AuditEntry) -> Result<Vec<(Collection, Vec<u8>)>>;
}
}

civic_store::store_trait! {
/// A case's contacts, their follow-up, and the notifications sent to them (the outbox).
pub trait ContactStore {
    /// Adds or refreshes a case's contacts (by tag: a follow-up status is
    /// kept, the longer overlap wins); returns how many were new.
    fn put_contacts(&self, case: CaseId, contacts: Vec<NewContact>, audit: AuditEntry) -> Result<u64>;
    /// Contacts of a case or of a whole response, with sealed parts.
    fn read_contacts(&self, response: ResponseId, case: Option<CaseId>, audit: AuditEntry) -> Result<Vec<ContactRecord>>;
    /// One contact with its sealed part (an audited read).
    fn read_contact(&self, id: ContactId, audit: AuditEntry) -> Result<Option<ContactRecord>>;
    fn contact_meta(&self, id: ContactId) -> Result<Option<ContactRecord>>;
    /// Sets a contact's follow-up status from `expected` (`Conflict` if
    /// it changed meanwhile); with `new_case` (a positive contact)
    /// registers that case and links the contact to it (`Conflict` if it
    /// has one), all in one transaction with the outbox messages and the
    /// audit entry.
    fn set_contact_status(&self, id: ContactId, expected: ContactStatus, status: ContactStatus, new_case: Option<NewCase>, outbox: Vec<NewOutboxMessage>, audit: AuditEntry) -> Result<Option<CaseRecord>>;
    fn read_outbox(&self, response: ResponseId, case: Option<CaseId>, audit: AuditEntry) -> Result<Vec<OutboxMessage>>;
    /// Notices not yet handed to the notification sender, oldest first.
    fn unsent_outbox(&self, limit: u32, audit: AuditEntry) -> Result<Vec<OutboxMessage>>;
    /// Records that the sender took a notice.
    fn mark_sent(&self, id: i64, at: Timestamp) -> Result<()>;
}
}
