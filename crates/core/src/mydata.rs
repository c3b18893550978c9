//! Public MyData's transfers as the domain knows them: their states and
//! the one machine that moves them.
//!
//! A **transfer** is a using agency's request for a citizen's items from a
//! holder, under an approved agreement. The citizen consents (once, or
//! periodically until a date) or refuses; the holder's credentials arrive
//! (again, for a periodic consent) or the holder could not issue; the
//! citizen may withdraw a live consent, which destroys its data key; the
//! holder then marks the credentials revoked and the agency confirms its
//! deletion.
//!
//! A transfer stands on an **agreement** between the agency and the holder
//! of an offer, reached in a consultation; the **support centre**'s
//! tickets are how institutions ask for help.

use serde::{Deserialize, Serialize};
use std::fmt;

id_type!(OfferId, "an entry of the MyData catalogue");
id_type!(AgreementId, "a version of a linkage agreement");
id_type!(TransferId, "a MyData transfer");
id_type!(TicketId, "a support ticket");
id_type!(TrainingId, "a training session of the support centre");

states!(
    /// Where a transfer stands.
    TransferState {
        AwaitingConsent = "awaiting_consent",
        Refused = "refused",
        Consented = "consented",
        Delivered = "delivered",
        Failed = "failed",
        Withdrawn = "withdrawn",
    }
);

states!(
    /// How long a consent lasts.
    ConsentMode {
        /// One credential, at once.
        Once = "once",
        /// A fresh credential at most once an interval, until a day.
        Periodic = "periodic",
    }
);

/// What can happen to a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStep {
    Consent,
    Refuse,
    /// A holder's credential arrives.
    Deliver,
    /// The holder could not issue.
    Fail,
    /// The citizen withdraws the consent (its data key is destroyed).
    Withdraw,
    /// The holder marked the withdrawn consent's credentials revoked.
    MarkRevoked,
    /// The agency confirmed it deleted what it received.
    ConfirmDeletion,
}

impl TransferState {
    /// The state `step` leads to from this one, or why it cannot happen
    /// (to follow "transfer 7 is …"). The transfer machine, in one place.
    pub fn after(self, step: TransferStep) -> Result<TransferState, String> {
        use TransferState::*;
        use TransferStep::*;
        match (self, step) {
            (AwaitingConsent, Consent) => Ok(Consented),
            (AwaitingConsent, Refuse) => Ok(Refused),
            (Consented | Delivered, Deliver) => Ok(Delivered),
            (Consented, Fail) => Ok(Failed),
            (Consented | Delivered, Withdraw) => Ok(Withdrawn),
            (Withdrawn, MarkRevoked | ConfirmDeletion) => Ok(Withdrawn),
            (_, Consent | Refuse) => Err(format!("{self}, not awaiting consent")),
            (_, Deliver | Fail) => Err(format!("{self}: its consent is not live")),
            (_, Withdraw) => Err(format!("{self}: there is no live consent to withdraw")),
            (_, MarkRevoked | ConfirmDeletion) => Err(format!("{self}, not withdrawn")),
        }
    }

    /// The event the agency is told of when `step` happens, if any.
    pub fn event(step: TransferStep) -> Option<&'static str> {
        match step {
            TransferStep::Consent => Some("transfer.consented"),
            TransferStep::Refuse => Some("transfer.refused"),
            TransferStep::Deliver => Some("transfer.delivered"),
            TransferStep::Fail => Some("transfer.failed"),
            TransferStep::Withdraw => Some("consent.withdrawn"),
            TransferStep::MarkRevoked | TransferStep::ConfirmDeletion => None,
        }
    }

    /// The states `step` may start from (for a query that picks them).
    pub fn before(step: TransferStep) -> Vec<TransferState> {
        Self::ALL
            .iter()
            .copied()
            .filter(|s| s.after(step).is_ok())
            .collect()
    }
}

states!(
    /// Where a version of a linkage agreement stands.
    AgreementStatus {
        Applied = "applied",
        Questioned = "questioned",
        Approved = "approved",
        Rejected = "rejected",
        /// A later version was applied for or approved.
        Superseded = "superseded",
    }
);

states!(
    /// A step of an agreement's consultation, kept as a note.
    AgreementStep {
        /// The agency applies (the first note of a version).
        Apply = "apply",
        /// The holder asks the agency a question.
        Question = "question",
        /// The agency answers it.
        Answer = "answer",
        Approve = "approve",
        Reject = "reject",
        /// Either comments; the status stays.
        Comment = "comment",
    }
);

impl AgreementStatus {
    /// The status `step` leads to (`None`: it stays), or why the step
    /// cannot happen now (to follow "agreement 7 is …"). The
    /// consultation's machine, in one place.
    pub fn after(self, step: AgreementStep) -> Result<Option<AgreementStatus>, String> {
        use AgreementStatus::*;
        use AgreementStep::*;
        match (self, step) {
            (_, Comment) => Ok(None),
            (Applied, Question) => Ok(Some(Questioned)),
            (Applied, Approve) => Ok(Some(Approved)),
            (Applied | Questioned, Reject) => Ok(Some(Rejected)),
            (Questioned, Answer) => Ok(Some(Applied)),
            _ => Err(format!("{self}: the step {step} does not apply to it now")),
        }
    }

    /// Whether the consultation has ended in a decision.
    pub fn decided(self) -> bool {
        matches!(self, AgreementStatus::Approved | AgreementStatus::Rejected)
    }
}

states!(
    /// What a support ticket is about.
    TicketKind {
        NewDataset = "new_dataset",
        LinkageProblem = "linkage_problem",
        Error = "error",
        Other = "other",
    }
);

states!(
    /// Where a support ticket stands.
    TicketStatus {
        /// Waiting for the support centre.
        Open = "open",
        /// Waiting for the institution.
        Answered = "answered",
        Closed = "closed",
    }
);

impl TicketStatus {
    /// The status after a reply or a close, by an agent or by the
    /// institution, or why it cannot change (to follow "ticket 7 is …").
    pub fn after(self, close: bool, by_agent: bool) -> Result<TicketStatus, String> {
        match (self, close, by_agent) {
            (TicketStatus::Closed, _, _) => Err("closed: open a new one".into()),
            (_, true, _) => Ok(TicketStatus::Closed),
            (_, false, true) => Ok(TicketStatus::Answered),
            (_, false, false) => Ok(TicketStatus::Open),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TransferState::*;
    use super::TransferStep::*;
    use super::*;

    #[test]
    fn a_transfer_moves_only_along_its_machine() {
        assert_eq!(AwaitingConsent.after(Consent), Ok(Consented));
        assert_eq!(Consented.after(Deliver), Ok(Delivered));
        assert_eq!(
            Delivered.after(Deliver),
            Ok(Delivered),
            "a periodic consent sends again"
        );
        assert_eq!(Delivered.after(Withdraw), Ok(Withdrawn));
        assert_eq!(Withdrawn.after(MarkRevoked), Ok(Withdrawn));
        assert!(Refused.after(Consent).is_err(), "a decision is final");
        assert!(Consented.after(Refuse).is_err());
        assert!(
            Withdrawn.after(Deliver).is_err(),
            "nothing arrives after a withdrawal"
        );
        assert!(Failed.after(Withdraw).is_err());
        assert!(Delivered.after(Fail).is_err());
        assert_eq!(
            AwaitingConsent.after(Withdraw).unwrap_err(),
            "awaiting_consent: there is no live consent to withdraw"
        );
        assert_eq!(TransferState::before(Withdraw), vec![Consented, Delivered]);
        for state in TransferState::ALL {
            assert_eq!(TransferState::parse(state.as_str()), Ok(*state));
        }
    }

    #[test]
    fn a_consultation_moves_only_along_its_machine() {
        use AgreementStatus::*;
        use AgreementStep::*;
        assert_eq!(Applied.after(Question), Ok(Some(Questioned)));
        assert_eq!(Questioned.after(Answer), Ok(Some(Applied)));
        assert_eq!(Questioned.after(Reject), Ok(Some(Rejected)));
        assert_eq!(Applied.after(Approve), Ok(Some(Approved)));
        assert_eq!(Approved.after(Comment), Ok(None));
        assert!(
            Questioned.after(Approve).is_err(),
            "a question is answered first"
        );
        assert!(Approved.after(Reject).is_err(), "a decision is final");
        assert!(Superseded.after(Approve).is_err());
        assert!(Applied.after(Answer).is_err());
        assert!(Approved.decided() && Rejected.decided() && !Applied.decided());
    }

    #[test]
    fn a_ticket_is_answered_reopened_and_closed() {
        use TicketStatus::*;
        assert_eq!(Open.after(false, true), Ok(Answered));
        assert_eq!(Answered.after(false, false), Ok(Open));
        assert_eq!(Answered.after(true, false), Ok(Closed));
        assert!(Closed.after(false, true).is_err());
        assert_eq!(
            TicketKind::parse("linkage-problem"),
            Ok(TicketKind::LinkageProblem)
        );
        // The API takes a value only as it spells it.
        assert_eq!(
            TicketKind::from_name("linkage_problem"),
            Some(TicketKind::LinkageProblem)
        );
        assert_eq!(TicketKind::from_name("linkage-problem"), None);
        assert_eq!(ConsentMode::from_name(" once"), None);
    }
}

/// One item of a provided document or dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Item {
    /// `[a-z0-9_]`, 1-64 characters, unique in its entry.
    #[cfg_attr(feature = "openapi", schema(schema_with = item_name))]
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `date` or `document`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(schema_with = item_type))]
    pub kind: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::text_500))]
    pub description: String,
    /// `normal`, `sensitive` (health, disability, …) or `unique_id`.
    #[cfg_attr(feature = "openapi", schema(schema_with = sensitivity))]
    pub sensitivity: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::schemas::text_500))]
    pub legal_basis: String,
    /// How long the using agency may keep it (days).
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 3650))]
    pub retention_days: i64,
}

pub const ITEM_TYPES: [&str; 6] = ["string", "integer", "number", "boolean", "date", "document"];
pub const SENSITIVITIES: [&str; 3] = ["normal", "sensitive", "unique_id"];

/// An item's name: `a-z 0-9 _` (not one of the few names credentials
/// reserve, which the pattern cannot say).
#[cfg(feature = "openapi")]
fn item_name() -> utoipa::openapi::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(r"^[a-z0-9_]{1,64}$"))
        .build()
}

#[cfg(feature = "openapi")]
fn item_type() -> utoipa::openapi::Object {
    crate::schemas::one_of(&ITEM_TYPES)
}

#[cfg(feature = "openapi")]
fn sensitivity() -> utoipa::openapi::Object {
    crate::schemas::one_of(&SENSITIVITIES)
}
