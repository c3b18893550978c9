//! Public MyData's SQL, written once for both backends (expanded beside
//! `impl_backend!`, whose helpers it uses). The catalogue and the
//! agreements hold no personal data: institutions, documents, items and
//! the officials who discuss them.

store_trait! {
/// What a MyData store does.
pub trait MydataStore {
    fn create_offer(&self, new: crate::NewOffer, audit: civic_core::audit::AuditEntry) -> crate::Result<crate::Offer>;
    fn offers(&self) -> crate::Result<Vec<crate::Offer>>;
    fn offer(&self, id: civic_core::mydata::OfferId) -> crate::Result<Option<crate::Offer>>;
    /// A new version of the agreement on (offer, agency, service), applied.
    fn apply_agreement(&self, new: crate::NewAgreement, audit: civic_core::audit::AuditEntry) -> crate::Result<crate::Agreement>;
    fn agreements(&self) -> crate::Result<Vec<crate::Agreement>>;
    fn agreement(&self, id: civic_core::mydata::AgreementId) -> crate::Result<Option<crate::Agreement>>;
    /// Adds a note to an agreement's history and moves it by the note's
    /// step (`AgreementStatus::after`, checked in the transaction: a
    /// conflict if the step does not apply now); an approval supersedes
    /// the earlier approved version. Applying for a new version supersedes
    /// the earlier ones still under discussion.
    fn note_agreement(&self, note: crate::NewAgreementNote, audit: civic_core::audit::AuditEntry) -> crate::Result<crate::Agreement>;
    fn agreement_notes(&self, id: civic_core::mydata::AgreementId) -> crate::Result<Vec<crate::AgreementNote>>;
}
}
