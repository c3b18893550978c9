//! The support centre: tickets and training sessions. Every write audits in its transaction.

civic_store::store_trait! {
/// What a support store does.
pub trait SupportStore {
    /// Opens a ticket with its first message.
    fn open_ticket(&self, institution: civic_core::identity::InstitutionId, user: civic_core::identity::UserId, kind: civic_core::mydata::TicketKind, subject: &str, text: &str, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Ticket>;
    /// Tickets newest first: of one institution or all, those older than
    /// `before` (an id) if given, at most `limit`.
    fn tickets(&self, institution: Option<civic_core::identity::InstitutionId>, before: Option<civic_core::mydata::TicketId>, limit: i64) -> crate::store::Result<Vec<crate::store::Ticket>>;
    fn ticket(&self, id: civic_core::mydata::TicketId) -> crate::store::Result<Option<crate::store::Ticket>>;
    /// The messages of several tickets, in one query, in order.
    fn messages_of_tickets(&self, ids: &[civic_core::mydata::TicketId]) -> crate::store::Result<Vec<crate::store::TicketMessage>>;
    /// Adds a message (if any) and moves the ticket by a reply or a close,
    /// by an agent or by the institution (`TicketStatus::after`, checked in
    /// the transaction: a conflict once it is closed).
    fn update_ticket(&self, id: civic_core::mydata::TicketId, user: civic_core::identity::UserId, text: Option<&str>, close: bool, by_agent: bool, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Ticket>;
    fn create_training(&self, title: &str, held_on: &str, place: &str, materials: &str, user: civic_core::identity::UserId, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Training>;
    fn add_attendee(&self, session: civic_core::mydata::TrainingId, institution: civic_core::identity::InstitutionId, name: &str, audit: civic_core::audit::AuditEntry) -> crate::store::Result<crate::store::Training>;
    fn trainings(&self) -> crate::store::Result<Vec<crate::store::Training>>;
    fn training(&self, id: civic_core::mydata::TrainingId) -> crate::store::Result<Option<crate::store::Training>>;
}
}
