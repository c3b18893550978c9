//! The storage suite of the epidemic investigation, on SQLite and on
//! PostgreSQL: a response's cases, requests, collections and contacts kept
//! sealed, and destroyed whole when it closes.

use civic_core::identity::InstitutionKind;
use civic_core::time::Timestamp;
use civic_investigation::store::*;
use civic_store::testing::TestDb;
use civic_store::testing::{audit, institution, user};
use civic_store::*;

async fn an_investigation_is_kept_sealed_and_destroyed_whole(db: TestDb) {
    use civic_core::identity::Region;
    use civic_core::investigation::*;
    let s = &db.store;
    civic_investigation::store::migrate(s).await.unwrap();
    let kdca = institution(s, "KDCA", InstitutionKind::HealthAuthority).await;
    let inv = user(s, &kdca, "inv", &["investigator:seoul"]).await;
    let appr = user(s, &kdca, "appr", &["approver"]).await;
    let response = s
        .create_response(
            NewResponse {
                name: "COVID-19".into(),
                legal_basis: "IDCPA art. 76-2".into(),
                rules: "{}".into(),
                key_sealed: b"sealed-key".to_vec(),
                opened_by: None,
            },
            audit("eiss.response.open"),
        )
        .await
        .unwrap();
    assert_eq!(response.status, ResponseStatus::Open);
    assert_eq!(
        s.response_key(response.id).await.unwrap().as_deref(),
        Some(&b"sealed-key"[..])
    );
    let case = |n: &str| NewCase {
        response: response.id,
        number: n.into(),
        region: Region::parse("seoul-gangbuk").unwrap(),
        source_case: None,
        assigned: vec![inv.id],
        sealed: format!("sealed-{n}").into_bytes(),
    };
    let cases = s
        .create_cases(
            vec![case("1001"), case("1002")],
            audit("eiss.case.register"),
        )
        .await
        .unwrap();
    assert_eq!(cases.len(), 2);
    // A duplicate number refuses the whole batch and writes nothing.
    let before = s.ledger_head().await.unwrap().size();
    let dup = s
        .create_cases(
            vec![case("1003"), case("1001")],
            audit("eiss.case.register"),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert_eq!(s.ledger_head().await.unwrap().size(), before);
    assert_eq!(s.case_metas(response.id).await.unwrap().len(), 2);
    let meta = s.case_meta(cases[0].id).await.unwrap().unwrap();
    assert!(meta.sealed.is_empty(), "metadata carries nothing sealed");
    assert_eq!(meta.assigned, vec![inv.id]);
    let read = s
        .read_cases(response.id, &[cases[1].id], audit("eiss.case.read"))
        .await
        .unwrap();
    assert_eq!(read[0].sealed, b"sealed-1002");
    assert_eq!(
        s.ledger_head().await.unwrap().size(),
        before + 1,
        "the read is audited"
    );

    s.put_document(
        cases[0].id,
        CaseDocument::Interview,
        b"v1".to_vec(),
        audit("doc"),
    )
    .await
    .unwrap();
    s.put_document(
        cases[0].id,
        CaseDocument::Interview,
        b"v2".to_vec(),
        audit("doc"),
    )
    .await
    .unwrap();
    let docs = s
        .documents(response.id, &[], CaseDocument::Interview, audit("doc.read"))
        .await
        .unwrap();
    assert_eq!(docs, vec![(cases[0].id, b"v2".to_vec())]);

    // The due procedure: one decision per duty, in order.
    let request = s
        .create_data_request(
            NewDataRequest {
                case: cases[0].id,
                items: vec![DataItem::LocationPings, DataItem::CardTransactions],
                contacts: true,
                data_from: 1,
                data_until: 2,
                requested_by: inv.id,
                sealed: b"reason".to_vec(),
            },
            audit("eiss.request.create"),
        )
        .await
        .unwrap();
    let decision = |approve| Decision {
        duty: civic_core::identity::DutyKind::Approver,
        user: appr.id,
        approve,
        sealed: b"ok".to_vec(),
        decided_at: Timestamp::now(),
    };
    s.decide_request(
        request.id,
        decision(true),
        RequestStatus::AwaitingApprover,
        RequestStatus::AwaitingPolice,
        Some(b"reason+grants".to_vec()),
        audit("eiss.request.decide"),
    )
    .await
    .unwrap();
    let again = s
        .decide_request(
            request.id,
            decision(true),
            RequestStatus::AwaitingApprover,
            RequestStatus::AwaitingPolice,
            None,
            audit("eiss.request.decide"),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    let pending = s
        .request_metas(RequestFilter {
            statuses: vec![RequestStatus::AwaitingPolice],
            ..RequestFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].sealed.is_empty() && pending[0].decisions[0].sealed.is_empty());
    let full = s
        .read_requests(
            RequestFilter {
                case: Some(cases[0].id),
                ..RequestFilter::default()
            },
            audit("r"),
        )
        .await
        .unwrap();
    assert_eq!(full[0].sealed, b"reason+grants");
    assert_eq!(full[0].decisions.len(), 1);

    // Collections: added with the patient's notice, finished once.
    let added = s
        .add_collections(
            request.id,
            RequestStatus::AwaitingPolice,
            RequestStatus::Collecting,
            None,
            vec![
                NewCollection {
                    node: "node-skt".into(),
                    purpose: CollectionPurpose::Route,
                    exchange_id: "x-1".into(),
                    sealed: b"grant".to_vec(),
                },
                NewCollection {
                    node: "node-kt".into(),
                    purpose: CollectionPurpose::Contacts,
                    exchange_id: "x-2".into(),
                    sealed: b"grant".to_vec(),
                },
            ],
            vec![NewOutboxMessage {
                response: response.id,
                case: Some(cases[0].id),
                kind: "patient_notice".into(),
                sealed: b"notice".to_vec(),
            }],
            audit("eiss.collect"),
        )
        .await
        .unwrap();
    let pending = s
        .collection_metas(None, Some(CollectionStatus::Pending))
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    s.finish_collection(
        added[0].id,
        CollectionStatus::Answered,
        None,
        Some(b"answer".to_vec()),
        audit("a"),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.finish_collection(
            added[0].id,
            CollectionStatus::Failed,
            None,
            None,
            audit("a")
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    let answers = s.answers(cases[0].id, None, audit("a")).await.unwrap();
    assert_eq!(
        s.answers(cases[0].id, Some(CollectionPurpose::Route), audit("a"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s
        .answers(cases[0].id, Some(CollectionPurpose::Contacts), audit("a"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(answers[0].1, b"answer");
    assert_eq!(
        s.exchange_ids(response.id).await.unwrap(),
        vec![
            ("node-skt".into(), "x-1".into()),
            ("node-kt".into(), "x-2".into())
        ]
    );

    // Contacts: one per tag; the longer overlap wins; the status stays.
    let contact = |tag: &str, minutes| NewContact {
        tag: tag.into(),
        overlap_minutes: minutes,
        sealed: format!("{tag}:{minutes}").into_bytes(),
    };
    assert_eq!(
        s.put_contacts(
            cases[0].id,
            vec![contact("a", 10), contact("b", 30)],
            audit("c")
        )
        .await
        .unwrap(),
        2
    );
    let first = s
        .read_contacts(response.id, None, audit("c"))
        .await
        .unwrap();
    s.set_contact_status(
        first[0].id,
        ContactStatus::ToNotify,
        ContactStatus::Notified,
        None,
        vec![],
        audit("c"),
    )
    .await
    .unwrap();
    let one = s
        .read_contact(first[0].id, audit("c"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (one.status, one.sealed.as_slice()),
        (ContactStatus::Notified, first[0].sealed.as_slice())
    );
    assert!(s
        .read_contact(civic_core::investigation::ContactId(i64::MAX), audit("c"))
        .await
        .unwrap()
        .is_none());
    // A change from a status it no longer has is refused.
    assert!(matches!(
        s.set_contact_status(
            first[0].id,
            ContactStatus::ToNotify,
            ContactStatus::Notified,
            None,
            vec![],
            audit("c"),
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    // A positive contact becomes a case in the same transaction, once.
    let linked = s
        .set_contact_status(
            first[1].id,
            ContactStatus::ToNotify,
            ContactStatus::Positive,
            Some(NewCase {
                source_case: Some(cases[0].id),
                ..case("1003")
            }),
            vec![],
            audit("c"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.source_case, Some(cases[0].id));
    assert_eq!(
        s.contact_meta(first[1].id)
            .await
            .unwrap()
            .unwrap()
            .linked_case,
        Some(linked.id)
    );
    assert!(matches!(
        s.set_contact_status(
            first[1].id,
            ContactStatus::Positive,
            ContactStatus::Positive,
            Some(case("1004")),
            vec![],
            audit("c"),
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s
        .case_by_number(response.id, "1004")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.put_contacts(
            cases[0].id,
            vec![contact("a", 40), contact("b", 5), contact("c", 1)],
            audit("c")
        )
        .await
        .unwrap(),
        1
    );
    let now = s
        .read_contacts(response.id, Some(cases[0].id), audit("c"))
        .await
        .unwrap();
    assert_eq!(now.len(), 3);
    let a = now.iter().find(|c| c.tag == "a").unwrap();
    assert_eq!(
        (a.overlap_minutes, a.status, a.sealed.as_slice()),
        (40, ContactStatus::Notified, &b"a:40"[..])
    );
    let b = now.iter().find(|c| c.tag == "b").unwrap();
    assert_eq!((b.overlap_minutes, b.sealed.as_slice()), (30, &b"b:30"[..]));
    assert_eq!(
        s.read_outbox(response.id, None, audit("o"))
            .await
            .unwrap()
            .len(),
        1
    );

    // Closing: no new data, then everything goes with the key.
    s.set_response_status(
        response.id,
        ResponseStatus::Open,
        ResponseStatus::Closing,
        audit("close"),
    )
    .await
    .unwrap();
    assert!(matches!(
        s.create_cases(vec![case("1009")], audit("eiss.case.register"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.put_contacts(cases[0].id, vec![contact("z", 1)], audit("c"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // An answer arriving now is not kept.
    assert!(matches!(
        s.finish_collection(
            added[1].id,
            CollectionStatus::Answered,
            None,
            Some(b"late".to_vec()),
            audit("a")
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    let counts = s.response_counts(response.id).await.unwrap();
    assert_eq!(
        counts,
        ResponseCounts {
            cases: 3,
            documents: 1,
            data_requests: 1,
            decisions: 1,
            collections: 2,
            answers: 1,
            contacts: 3,
            outbox: 1,
        }
    );
    let cert = s
        .close_response(
            response.id,
            "{\"certificate\":1}".into(),
            "sig".into(),
            audit("eiss.response.close"),
        )
        .await
        .unwrap();
    assert_eq!(s.response_key(response.id).await.unwrap(), None);
    assert_eq!(
        s.response_counts(response.id).await.unwrap(),
        ResponseCounts::default()
    );
    assert_eq!(
        s.response(response.id).await.unwrap().unwrap().status,
        ResponseStatus::Closed
    );
    assert_eq!(
        s.deletion_certificates(response.id).await.unwrap(),
        vec![cert]
    );
    assert!(matches!(
        s.close_response(
            response.id,
            "{}".into(),
            "sig".into(),
            audit("eiss.response.close")
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn the_clusters_read_every_case_in_one_audited_read(db: TestDb) {
    use civic_core::identity::Region;
    let s = &db.store;
    civic_investigation::store::migrate(s).await.unwrap();
    let open = |name: &str| NewResponse {
        name: name.into(),
        legal_basis: "IDCPA art. 76-2".into(),
        rules: "{}".into(),
        key_sealed: b"k".to_vec(),
        opened_by: None,
    };
    let mut responses = Vec::new();
    for name in ["one", "other"] {
        responses.push(s.create_response(open(name), audit("open")).await.unwrap());
    }
    let case = |response: &Response, n: &str| NewCase {
        response: response.id,
        number: n.into(),
        region: Region::parse("seoul-gangbuk").unwrap(),
        source_case: None,
        assigned: Vec::new(),
        sealed: format!("sealed-{n}").into_bytes(),
    };
    let cases = s
        .create_cases(
            vec![
                case(&responses[0], "3"),
                case(&responses[0], "1"),
                case(&responses[0], "2"),
            ],
            audit("register"),
        )
        .await
        .unwrap();
    s.create_cases(vec![case(&responses[1], "9")], audit("register"))
        .await
        .unwrap();
    s.put_documents(
        vec![
            (cases[0].id, CaseDocument::Timeline, b"timeline-3".to_vec()),
            (
                cases[0].id,
                CaseDocument::Interview,
                b"interview-3".to_vec(),
            ),
            (
                cases[2].id,
                CaseDocument::PublishedRoute,
                b"route-2".to_vec(),
            ),
            (
                cases[0].id,
                CaseDocument::PublishedRoute,
                b"route-3".to_vec(),
            ),
        ],
        audit("documents"),
    )
    .await
    .unwrap();
    let before = s.ledger_head().await.unwrap().size();
    let read = s
        .sealed_routes(responses[0].id, audit("eiss.clusters.build"))
        .await
        .unwrap();
    let want = |i: usize, timeline: Option<&[u8]>, published: Option<&[u8]>| SealedRoutes {
        id: cases[i].id,
        number: cases[i].number.clone(),
        sealed: format!("sealed-{}", cases[i].number).into_bytes(),
        timeline: timeline.map(<[u8]>::to_vec),
        published: published.map(<[u8]>::to_vec),
    };
    assert_eq!(
        read,
        vec![
            want(0, Some(b"timeline-3"), Some(b"route-3")),
            want(1, None, None),
            want(2, None, Some(b"route-2")),
        ],
        "every case of the response, in id order, with no interview"
    );
    assert_eq!(
        s.ledger_head().await.unwrap().size(),
        before + 1,
        "one audited read"
    );
}

civic_store::backend_tests!(
    an_investigation_is_kept_sealed_and_destroyed_whole,
    the_clusters_read_every_case_in_one_audited_read
);
