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

    /// The states `step` may start from (for a query that picks them).
    pub fn before(step: TransferStep) -> Vec<TransferState> {
        Self::ALL
            .iter()
            .copied()
            .filter(|s| s.after(step).is_ok())
            .collect()
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
}
