//! The storage suite of Public MyData and its support centre: every test
//! runs on SQLite and on PostgreSQL. Each state machine (core's
//! `after`) is enforced by the store inside its transaction: a step out
//! of turn is a conflict and writes nothing, not even an audit record.

use civic_core::identity::InstitutionKind;
use civic_core::mydata::{AgreementStatus, AgreementStep, TicketKind, TicketStatus, TransferState};
use civic_mydata::store::*;
use civic_store::testing::TestDb;
use civic_store::testing::{audit, institution, user};
use civic_store::*;

/// A holder's offer and an agency's agreement on it, applied.
async fn applied(s: &Store) -> (Agreement, User, User) {
    let holder = institution(s, "Ministry of Employment", InstitutionKind::Ministry).await;
    let agency = institution(s, "Seoul Welfare Office", InstitutionKind::UsingAgency).await;
    let reviewer = user(s, &holder, "reviewer", &["mydata_operator"]).await;
    let applicant = user(s, &agency, "applicant", &["mydata_operator"]).await;
    let offer = s
        .create_offer(
            NewOffer {
                holder: holder.id,
                kind: "document".into(),
                code: "employment".into(),
                title: "Employment insurance".into(),
                description: "Periods insured".into(),
                legal_basis: "Employment Insurance Act".into(),
                items: vec![civic_core::mydata::Item {
                    name: "periods".into(),
                    kind: "string".into(),
                    description: "Periods insured".into(),
                    sensitivity: "normal".into(),
                    legal_basis: "Employment Insurance Act".into(),
                    retention_days: 30,
                }],
            },
            audit("mydata.offer.create"),
        )
        .await
        .unwrap();
    let agreement = s
        .apply_agreement(
            NewAgreement {
                offer: offer.id,
                agency: agency.id,
                service: "housing benefit".into(),
                items: vec!["periods".into()],
                purpose: "eligibility".into(),
                legal_basis: "Housing Benefit Act".into(),
                retention_days: 30,
                created_by: applicant.id,
            },
            audit("mydata.agreement.apply"),
        )
        .await
        .unwrap();
    assert_eq!(agreement.status, AgreementStatus::Applied);
    (agreement, reviewer, applicant)
}

async fn note(
    s: &Store,
    agreement: &Agreement,
    by: &User,
    kind: AgreementStep,
) -> Result<Agreement> {
    s.note_agreement(
        NewAgreementNote {
            agreement: agreement.id,
            user: by.id,
            kind,
            text: format!("{kind}"),
        },
        audit("mydata.agreement.note"),
    )
    .await
}

async fn a_consultation_follows_its_machine_in_the_store(db: TestDb) {
    let s = &db.store;
    civic_mydata::store::migrate(s).await.unwrap();
    let (agreement, reviewer, applicant) = applied(s).await;
    let questioned = note(s, &agreement, &reviewer, AgreementStep::Question)
        .await
        .unwrap();
    assert_eq!(questioned.status, AgreementStatus::Questioned);
    // Out of turn: refused, and nothing written.
    let before = s.ledger_head().await.unwrap().size();
    let early = note(s, &agreement, &reviewer, AgreementStep::Approve).await;
    assert!(matches!(early, Err(StoreError::Conflict(_))), "{early:?}");
    assert_eq!(s.ledger_head().await.unwrap().size(), before);
    assert_eq!(
        s.agreement_notes(agreement.id).await.unwrap().len(),
        2,
        "apply and question"
    );
    let answered = note(s, &agreement, &applicant, AgreementStep::Answer)
        .await
        .unwrap();
    assert_eq!(answered.status, AgreementStatus::Applied);
    let comment = note(s, &agreement, &applicant, AgreementStep::Comment)
        .await
        .unwrap();
    assert_eq!(comment.status, AgreementStatus::Applied);
    let approved = note(s, &agreement, &reviewer, AgreementStep::Approve)
        .await
        .unwrap();
    assert_eq!(approved.status, AgreementStatus::Approved);
    assert!(approved.decided_at.is_some());
    let kinds: Vec<AgreementStep> = s
        .agreement_notes(agreement.id)
        .await
        .unwrap()
        .iter()
        .map(|n| n.kind)
        .collect();
    use AgreementStep::*;
    assert_eq!(kinds, [Apply, Question, Answer, Comment, Approve]);
    let late = note(s, &agreement, &reviewer, AgreementStep::Reject).await;
    assert!(
        matches!(late, Err(StoreError::Conflict(_))),
        "a decision is final: {late:?}"
    );
}

async fn a_transfer_follows_its_machine_in_the_store(db: TestDb) {
    let s = &db.store;
    civic_mydata::store::migrate(s).await.unwrap();
    let (agreement, reviewer, applicant) = applied(s).await;
    let new = NewTransfer {
        agreement: agreement.id,
        offer: agreement.offer,
        agency: agreement.agency,
        holder: s.offer(agreement.offer).await.unwrap().unwrap().holder,
        subject: "900101-1".into(),
        subject_tag: "tag-1".into(),
        items: agreement.items.clone(),
        service: agreement.service.clone(),
        purpose: agreement.purpose.clone(),
        legal_basis: agreement.legal_basis.clone(),
        retention_days: agreement.retention_days,
        recipient_key: "{}".into(),
        created_by: applicant.id,
    };
    let unapproved = s
        .create_transfer(new.clone(), audit("mydata.transfer.request"))
        .await;
    assert!(
        matches!(unapproved, Err(StoreError::Conflict(_))),
        "{unapproved:?}"
    );
    note(s, &agreement, &reviewer, AgreementStep::Approve)
        .await
        .unwrap();
    let t = s
        .create_transfer(new, audit("mydata.transfer.request"))
        .await
        .unwrap();
    assert_eq!(t.state, TransferState::AwaitingConsent);
    let citizen = Party::Subject("900101-1".into());
    // Nothing arrives before a consent.
    let early = s
        .record_delivery(
            t.id,
            "node",
            0,
            "urn:status",
            vec![1],
            audit("mydata.transfer.deliver"),
        )
        .await;
    assert!(matches!(early, Err(StoreError::Conflict(_))), "{early:?}");
    let consent = TransferDecision::Consent {
        mode: civic_core::mydata::ConsentMode::Once,
        until: None,
        interval_days: None,
        sealed_key: vec![7; 32],
    };
    let t = s
        .decide_transfer(
            t.id,
            &citizen,
            consent.clone(),
            audit("mydata.transfer.consent"),
        )
        .await
        .unwrap();
    assert_eq!(t.state, TransferState::Consented);
    let twice = s
        .decide_transfer(t.id, &citizen, consent, audit("mydata.transfer.consent"))
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    let (t, _) = s
        .record_delivery(
            t.id,
            "node",
            0,
            "urn:status",
            vec![1],
            audit("mydata.transfer.deliver"),
        )
        .await
        .unwrap();
    assert_eq!(t.state, TransferState::Delivered);
    let gone = s
        .confirm_deletion(t.id, &Party::Hub, audit("mydata.transfer.deleted"))
        .await;
    assert!(
        matches!(gone, Err(StoreError::Conflict(_))),
        "not withdrawn yet: {gone:?}"
    );
    let t = s
        .withdraw_transfer(t.id, &citizen, audit("mydata.transfer.withdraw"))
        .await
        .unwrap();
    assert_eq!(t.state, TransferState::Withdrawn);
    assert!(
        t.consent_key.is_none(),
        "the key is destroyed with the withdrawal"
    );
    let after = s
        .record_delivery(
            t.id,
            "node",
            1,
            "urn:status",
            vec![1],
            audit("mydata.transfer.deliver"),
        )
        .await;
    assert!(matches!(after, Err(StoreError::Conflict(_))), "{after:?}");
    assert_eq!(s.unrevoked().await.unwrap(), vec![t.id]);
    let t = s
        .mark_revoked(t.id, audit("mydata.transfer.revoked"))
        .await
        .unwrap();
    assert_eq!(t.state, TransferState::Withdrawn);
    assert!(t.revoked_at.is_some());
    assert!(s.unrevoked().await.unwrap().is_empty());
    // The agency was told of each step that concerns it, once, in order.
    let told: Vec<String> = s
        .events_after(agreement.agency, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        told,
        [
            "transfer.consented",
            "transfer.delivered",
            "consent.withdrawn"
        ]
    );
}

async fn a_ticket_is_answered_reopened_and_closed_once(db: TestDb) {
    let s = &db.store;
    civic_mydata::store::migrate(s).await.unwrap();
    let city = institution(s, "Seoul City", InstitutionKind::LocalGovernment).await;
    let hub = institution(s, "Hub", InstitutionKind::HubOperator).await;
    let clerk = user(s, &city, "clerk", &["mydata_operator"]).await;
    let agent = user(s, &hub, "agent", &["support_agent"]).await;
    let t = s
        .open_ticket(
            city.id,
            clerk.id,
            TicketKind::LinkageProblem,
            "A transfer failed",
            "Transfer 7 failed twice.",
            audit("support.ticket.open"),
        )
        .await
        .unwrap();
    assert_eq!(
        (t.kind, t.status),
        (TicketKind::LinkageProblem, TicketStatus::Open)
    );
    let reply = |text: &'static str, close: bool, by_agent: bool| {
        let who = if by_agent { agent.id } else { clerk.id };
        s.update_ticket(
            t.id,
            who,
            Some(text),
            close,
            by_agent,
            audit("support.ticket.update"),
        )
    };
    assert_eq!(
        reply("Look at the holder.", false, true)
            .await
            .unwrap()
            .status,
        TicketStatus::Answered
    );
    assert_eq!(
        reply("It failed again.", false, false)
            .await
            .unwrap()
            .status,
        TicketStatus::Open
    );
    assert_eq!(
        reply("Fixed.", true, true).await.unwrap().status,
        TicketStatus::Closed
    );
    let before = s.ledger_head().await.unwrap().size();
    let late = reply("One more thing.", false, false).await;
    assert!(matches!(late, Err(StoreError::Conflict(_))), "{late:?}");
    assert_eq!(s.ledger_head().await.unwrap().size(), before);
    assert_eq!(s.messages_of_tickets(&[t.id]).await.unwrap().len(), 4);
}

civic_store::backend_tests!(
    a_consultation_follows_its_machine_in_the_store,
    a_transfer_follows_its_machine_in_the_store,
    a_ticket_is_answered_reopened_and_closed_once,
);
