//! MyData's and the support centre's records as stored.

use civic_core::identity::{InstitutionId, UserId};
use civic_core::time::Timestamp;

/// A provided document or dataset in the MyData catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOffer {
    pub holder: InstitutionId,
    /// `document` or `dataset`.
    pub kind: String,
    pub code: String,
    pub title: String,
    pub description: String,
    pub legal_basis: String,
    pub items: Vec<civic_core::mydata::Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub id: civic_core::mydata::OfferId,
    pub holder: InstitutionId,
    pub kind: String,
    pub code: String,
    pub title: String,
    pub description: String,
    pub legal_basis: String,
    pub items: Vec<civic_core::mydata::Item>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAgreement {
    pub offer: civic_core::mydata::OfferId,
    pub agency: InstitutionId,
    pub service: String,
    /// The names of the items.
    pub items: Vec<String>,
    pub purpose: String,
    pub legal_basis: String,
    pub retention_days: i64,
    pub created_by: UserId,
}

/// One version of a linkage agreement.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub id: civic_core::mydata::AgreementId,
    pub offer: civic_core::mydata::OfferId,
    pub agency: InstitutionId,
    pub service: String,
    pub version: i64,
    pub items: Vec<String>,
    pub purpose: String,
    pub legal_basis: String,
    pub retention_days: i64,
    pub status: civic_core::mydata::AgreementStatus,
    pub created_by: UserId,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAgreementNote {
    pub agreement: civic_core::mydata::AgreementId,
    pub user: UserId,
    pub kind: civic_core::mydata::AgreementStep,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgreementNote {
    pub agreement: civic_core::mydata::AgreementId,
    pub user: UserId,
    pub kind: civic_core::mydata::AgreementStep,
    pub text: String,
    pub created_at: Timestamp,
}

/// A support ticket an institution opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: civic_core::mydata::TicketId,
    pub institution: InstitutionId,
    pub opened_by: UserId,
    pub kind: civic_core::mydata::TicketKind,
    pub subject: String,
    pub status: civic_core::mydata::TicketStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TicketMessage {
    pub ticket: civic_core::mydata::TicketId,
    pub user: UserId,
    pub text: String,
    pub created_at: Timestamp,
}

/// A training session of the support centre.
#[derive(Debug, Clone, PartialEq)]
pub struct Training {
    pub id: civic_core::mydata::TrainingId,
    pub title: String,
    /// YYYY-MM-DD.
    pub held_on: String,
    pub place: String,
    /// JSON array of {title, url}.
    pub materials: String,
    pub created_by: UserId,
    pub created_at: Timestamp,
    /// (institution, attendee's name)
    pub attendees: Vec<(InstitutionId, String)>,
}

/// A using agency's request for a citizen's items of a catalogue entry,
/// under an approved agreement, and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTransfer {
    pub agreement: civic_core::mydata::AgreementId,
    pub offer: civic_core::mydata::OfferId,
    pub agency: InstitutionId,
    pub holder: InstitutionId,
    /// The citizen, as the holders know him.
    pub subject: String,
    /// The citizen's pseudonym, the subject of every audit record of the
    /// transfer (the ledger never holds his identifier).
    pub subject_tag: String,
    /// The names of the items.
    pub items: Vec<String>,
    pub service: String,
    pub purpose: String,
    pub legal_basis: String,
    pub retention_days: i64,
    /// The agency's X25519 public key (OKP JWK, JSON).
    pub recipient_key: String,
    pub created_by: UserId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    pub id: civic_core::mydata::TransferId,
    pub agreement: civic_core::mydata::AgreementId,
    pub offer: civic_core::mydata::OfferId,
    pub agency: InstitutionId,
    pub holder: InstitutionId,
    pub subject: String,
    pub subject_tag: String,
    pub items: Vec<String>,
    pub service: String,
    pub purpose: String,
    pub legal_basis: String,
    pub retention_days: i64,
    pub recipient_key: String,
    pub state: civic_core::mydata::TransferState,
    /// Once consented.
    pub mode: Option<civic_core::mydata::ConsentMode>,
    /// Until when the consent lasts (periodic sending).
    pub consent_until: Option<Timestamp>,
    pub interval_days: Option<i64>,
    pub reason: Option<String>,
    /// The consent's data key, sealed by the hub; `None` once destroyed.
    pub consent_key: Option<Vec<u8>>,
    pub created_by: UserId,
    pub created_at: Timestamp,
    pub decided_at: Option<Timestamp>,
    pub withdrawn_at: Option<Timestamp>,
    /// When the holder marked its credentials revoked.
    pub revoked_at: Option<Timestamp>,
    pub deletion_confirmed_at: Option<Timestamp>,
}

/// One credential a holder issued under a transfer's consent.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub transfer: civic_core::mydata::TransferId,
    pub node: String,
    pub status_index: i64,
    pub status_uri: String,
    /// The package as the holder sent it, sealed under the consent's
    /// data key; `None` once the key is destroyed.
    pub package: Option<Vec<u8>>,
    pub delivered_at: Timestamp,
    pub fetched_at: Option<Timestamp>,
}

/// A change an agency is told of, by webhook or by polling.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferEvent {
    pub seq: i64,
    pub agency: InstitutionId,
    pub transfer: civic_core::mydata::TransferId,
    /// `transfer.consented`, `transfer.refused`, `transfer.delivered`,
    /// `transfer.failed`, `consent.withdrawn`.
    pub kind: String,
    pub at: Timestamp,
}

/// Where an agency is told of events, and how far it was told.
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub agency: InstitutionId,
    pub url: String,
    /// The signing secret, sealed by the hub.
    pub secret: Vec<u8>,
    pub delivered_seq: i64,
}
