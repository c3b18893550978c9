//! The epidemic investigation's identifiers and states.
//!
//! A **response** is one official response to an outbreak: its legal
//! basis, its rules, and everything collected for it, which is deleted
//! when it closes. A **case** is a confirmed infection in a response. A
//! **data request** asks, for one case, which data and why; it goes to an
//! approver of the health authority and, for location data, to a police
//! location officer; only then are **collections** sent to the holders'
//! nodes. **Contacts** are the people the holders found exposed to a case.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

id_type!(ResponseId, "an outbreak response");
id_type!(CaseId, "a case");
id_type!(DataRequestId, "a data request");
id_type!(ContactId, "a contact");

states!(
    /// Whether a response still collects, or has ended (its data deleted).
    ResponseStatus {
        Open = "open",
        /// Ending: no new data is taken while the nodes delete theirs.
        Closing = "closing",
        Closed = "closed",
    }
);

states!(
    /// Where a case's investigation stands.
    CaseStatus {
        Open = "open",
        Closed = "closed",
    }
);

states!(
    /// The data a case's investigation may ask for.
    DataItem {
        /// Telecom location: every telco's pings of the case's phone.
        LocationPings = "location_pings",
        /// Card transactions of the case's cards.
        CardTransactions = "card_transactions",
        /// Transit taps of the case's transit cards.
        TransitTaps = "transit_taps",
    }
);

impl DataItem {
    /// Location data needs a police location officer's approval too.
    pub fn is_location(self) -> bool {
        matches!(self, DataItem::LocationPings)
    }
}

states!(
    /// Where a data request stands in its due procedure.
    RequestStatus {
        /// Waiting for an approver of the health authority.
        AwaitingApprover = "awaiting_approver",
        /// Approved by the health authority; waiting for a police location
        /// officer (location data only).
        AwaitingPolice = "awaiting_police",
        /// Every approval given; being collected from the holders.
        Collecting = "collecting",
        /// Every holder has answered (or refused, or failed).
        Collected = "collected",
        Rejected = "rejected",
        /// Its grants expired before the chain was complete.
        Expired = "expired",
    }
);

states!(
    /// One question to one holder's node.
    CollectionStatus {
        /// Sent, or to be sent (again, after a restart), until answered.
        Pending = "pending",
        Answered = "answered",
        /// The node refused (its reason is kept).
        Refused = "refused",
        /// The node did not answer before the deadline.
        Failed = "failed",
    }
);

states!(
    /// A contact's follow-up.
    ContactStatus {
        ToNotify = "to_notify",
        Notified = "notified",
        InQuarantine = "in_quarantine",
        Tested = "tested",
        /// Tested negative: followed up, no case.
        Negative = "negative",
        /// Tested positive: now a case of its own, linked to its source.
        Positive = "positive",
    }
);

states!(
    /// What a collection asks a node.
    CollectionPurpose {
        /// The case's own records (its route).
        Route = "route",
        /// Who was where the case was (exposure windows).
        Contacts = "contacts",
    }
);

/// A response's name or a legal basis: 1-300 characters.
pub fn parse_title(field: &'static str, raw: &str) -> Result<String, ValidationError> {
    crate::error::parse_text(field, raw, 300)
}

/// A reason given for a request or a decision: 1-2000 characters.
pub fn parse_reason(raw: &str) -> Result<String, ValidationError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ValidationError::new("reason", "must not be empty"));
    }
    if raw.chars().count() > 2000 {
        return Err(ValidationError::new(
            "reason",
            "must be at most 2000 characters",
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ValidationError::new(
            "reason",
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_name_their_values() {
        for s in RequestStatus::ALL {
            assert_eq!(RequestStatus::parse(s.as_str()).unwrap(), *s);
        }
        assert_eq!(
            ContactStatus::parse("in-quarantine").unwrap(),
            ContactStatus::InQuarantine
        );
        let e = DataItem::parse("dna").unwrap_err();
        assert!(e.message.contains("location_pings"), "{e}");
        assert!(DataItem::LocationPings.is_location());
        assert!(!DataItem::TransitTaps.is_location());
    }

    #[test]
    fn reasons_are_bounded_text() {
        assert!(parse_reason("  ").is_err());
        assert!(parse_reason("route for contact tracing\nconfirmed 3 March").is_ok());
        assert!(parse_reason("a\u{0}b").is_err());
        assert!(parse_reason(&"x".repeat(2001)).is_err());
    }
}
