//! Public MyData's catalogue and linkage agreements. The catalogue and the
//! agreements hold no personal data: institutions, documents, items and
//! the officials who discuss them.

civic_store::store_trait! {
/// What a MyData store does.
pub trait MydataStore {
    fn create_offer(&self, new: crate::store::NewOffer, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Offer>;
    fn offers(&self) -> crate::store::Result<Vec<crate::store::Offer>>;
    fn offer(&self, id: civic_core::mydata::OfferId) -> crate::store::Result<Option<crate::store::Offer>>;
    /// A new version of the agreement on (offer, agency, service), applied.
    fn apply_agreement(&self, new: crate::store::NewAgreement, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Agreement>;
    fn agreements(&self) -> crate::store::Result<Vec<crate::store::Agreement>>;
    fn agreement(&self, id: civic_core::mydata::AgreementId) -> crate::store::Result<Option<crate::store::Agreement>>;
    /// Adds a note to an agreement's history and moves it by the note's
    /// step (`AgreementStatus::after`, checked in the transaction: a
    /// conflict if the step does not apply now); an approval supersedes
    /// the earlier approved version. Applying for a new version supersedes
    /// the earlier ones still under discussion.
    fn note_agreement(&self, note: crate::store::NewAgreementNote, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Agreement>;
    fn agreement_notes(&self, id: civic_core::mydata::AgreementId) -> crate::store::Result<Vec<crate::store::AgreementNote>>;
}
}
