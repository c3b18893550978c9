//! The storage suite: every test runs on SQLite and on PostgreSQL.

use civic_core::audit::{AuditEntry, AuditQuery, Outcome};
use civic_core::identity::{Duty, InstitutionKind, Name, UserId, Username};
use civic_core::time::Timestamp;
use civic_ledger::{
    fold_range, inclusion_plan, range_nodes, record_leaf_hash, verify_inclusion, Frontier,
};
use civic_store::testing::TestDb;
use civic_store::testing::{audit, institution, user};
use civic_store::*;
use futures_util::TryStreamExt;

async fn institutions_are_created_listed_and_unique(db: TestDb) {
    let s = &db.store;
    let kdca = institution(
        s,
        "Disease Control Agency",
        InstitutionKind::HealthAuthority,
    )
    .await;
    institution(s, "Seoul Police", InstitutionKind::Police).await;
    assert_eq!(s.institution(kdca.id).await.unwrap(), Some(kdca.clone()));
    assert_eq!(s.institutions().await.unwrap().len(), 2);
    let before = s.ledger_head().await.unwrap().size();
    let dup = s
        .create_institution(
            NewInstitution {
                name: Name::parse("name", "Disease Control Agency").unwrap(),
                kind: InstitutionKind::Police,
            },
            audit("admin.institution.create"),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // A refused write changes nothing, not even the ledger.
    assert_eq!(s.ledger_head().await.unwrap().size(), before);
    assert_eq!(s.institutions().await.unwrap().len(), 2);
}

async fn users_keep_their_duties(db: TestDb) {
    let s = &db.store;
    let kdca = institution(s, "KDCA", InstitutionKind::HealthAuthority).await;
    let kim = user(s, &kdca, "kim", &["investigator:seoul", "approver"]).await;
    assert_eq!(kim.duties.len(), 2);
    assert_eq!(s.user_by_username("kim").await.unwrap().unwrap().id, kim.id);
    assert!(s.user_by_username("nobody").await.unwrap().is_none());

    s.set_duties(
        kim.id,
        vec![Duty::parse("investigator:daegu").unwrap()],
        audit("admin.user.duties"),
    )
    .await
    .unwrap();
    let kim = s.user(kim.id).await.unwrap().unwrap();
    assert_eq!(kim.duties, vec![Duty::parse("investigator:daegu").unwrap()]);

    let listed = s.users_of(kdca.id, audit("admin.user.list")).await.unwrap();
    assert_eq!(listed, vec![kim.clone()]);

    let dup = s
        .create_user(
            NewUser {
                institution: kdca.id,
                username: Username::parse("kim").unwrap(),
                display_name: Name::parse("display_name", "Other Kim").unwrap(),
                password_hash: "x".into(),
                machine_client: false,
                duties: vec![],
            },
            audit("admin.user.create"),
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
    let missing = s
        .set_duties(UserId(999), vec![], audit("admin.user.duties"))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

async fn sign_in_failures_make_the_next_attempt_wait_and_codes_are_not_replayed(db: TestDb) {
    let s = &db.store;
    let kdca = institution(s, "KDCA", InstitutionKind::HealthAuthority).await;
    let kim = user(s, &kdca, "kim", &["approver"]).await;
    let now = Timestamp::now();
    let backoff = Backoff {
        free: 2,
        first_delay_seconds: 60,
        max_delay_seconds: 900,
        forget_after_seconds: 86_400,
    };
    let keys = [
        ("name:kim".to_owned(), backoff),
        ("address:a".to_owned(), backoff),
    ];
    let judged = ["name:kim".to_owned(), "address:a".to_owned()];
    // The first failure sets no wait; the `free`-th does, doubling after.
    assert_eq!(
        s.login_failed(&keys, now, audit("auth.login"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.sign_in_wait(&judged, now).await.unwrap(), None);
    let wait = s
        .login_failed(&keys, now, audit("auth.login"))
        .await
        .unwrap();
    assert_eq!(wait, Some(now.plus_seconds(60)));
    let wait = s
        .login_failed(&keys, now, audit("auth.login"))
        .await
        .unwrap();
    assert_eq!(wait, Some(now.plus_seconds(120)));
    assert_eq!(
        s.sign_in_wait(&judged, now).await.unwrap(),
        Some(now.plus_seconds(120))
    );
    // Another key is not slowed.
    assert_eq!(
        s.sign_in_wait(&["name:lee".to_owned()], now).await.unwrap(),
        None
    );
    // A success cannot slip past a wait set meanwhile.
    let early = NewSession {
        token_hash: "early".into(),
        user: kim.id,
        created_at: now,
        expires_at: now.plus_seconds(3600),
        second_factor: false,
    };
    assert!(matches!(
        s.login_succeeded(early, None, &judged, &judged[..1], audit("auth.login"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // An administrator's unlock forgets the name's failures; the
    // address's stay.
    s.clear_sign_in_failures(&judged[..1], audit("admin.user.unlock"))
        .await
        .unwrap();
    assert_eq!(s.sign_in_wait(&judged[..1], now).await.unwrap(), None);
    assert!(s.sign_in_wait(&judged[1..], now).await.unwrap().is_some());
    // Failures long past are forgotten.
    let later = now.plus_seconds(86_401 + 900);
    assert_eq!(
        s.login_failed(&keys[1..], later, audit("auth.login"))
            .await
            .unwrap(),
        None
    );

    s.set_totp_pending(kim.id, vec![1, 2, 3], audit("auth.totp.enrol"))
        .await
        .unwrap();
    s.enable_totp(kim.id, 100, None, audit("auth.totp.confirm"))
        .await
        .unwrap();
    let kim = s.user(kim.id).await.unwrap().unwrap();
    assert!(kim.totp_enabled);
    assert_eq!(kim.totp_secret_sealed.as_deref(), Some(&[1u8, 2, 3][..]));
    // A confirmed factor cannot be overwritten by a new enrolment.
    assert!(matches!(
        s.set_totp_pending(kim.id, vec![9], audit("auth.totp.enrol"))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let session = |hash: &str| NewSession {
        token_hash: hash.into(),
        user: kim.id,
        created_at: Timestamp::now(),
        expires_at: Timestamp::now().plus_seconds(3600),
        second_factor: true,
    };
    s.login_succeeded(session("a"), Some(101), &[], &[], audit("auth.login"))
        .await
        .unwrap();
    // The same step again, or an older one, is a replay.
    assert!(matches!(
        s.login_succeeded(session("b"), Some(101), &[], &[], audit("auth.login"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.session("b").await.unwrap().is_none());
    let a = s.session("a").await.unwrap().unwrap();
    assert!(a.second_factor && !a.revoked);
    s.revoke_session("a", audit("auth.logout")).await.unwrap();
    assert!(s.session("a").await.unwrap().unwrap().revoked);

    s.reset_totp(kim.id, audit("admin.user.totp_reset"))
        .await
        .unwrap();
    let kim = s.user(kim.id).await.unwrap().unwrap();
    assert!(!kim.totp_enabled && kim.totp_secret_sealed.is_none());
}

async fn api_tokens_are_found_by_hash_and_revoked(db: TestDb) {
    let s = &db.store;
    let telco = institution(s, "SKT", InstitutionKind::Telco).await;
    let bot = user(s, &telco, "skt-node", &["mydata_operator"]).await;
    let token = s
        .create_api_token(
            NewApiToken {
                user: bot.id,
                name: Name::parse("name", "node uplink").unwrap(),
                token_hash: "h1".into(),
                created_at: Timestamp::now(),
                expires_at: None,
            },
            audit("admin.token.create"),
        )
        .await
        .unwrap();
    assert_eq!(token.institution, telco.id);
    assert_eq!(
        s.api_token_by_hash("h1").await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(s.api_tokens_of(telco.id).await.unwrap().len(), 1);
    s.revoke_api_token(token.id, audit("admin.token.revoke"))
        .await
        .unwrap();
    assert!(s.api_token(token.id).await.unwrap().unwrap().revoked);
}

async fn every_write_is_in_the_ledger_and_proofs_verify(db: TestDb) {
    let s = &db.store;
    let kdca = institution(s, "KDCA", InstitutionKind::HealthAuthority).await;
    for i in 0..20 {
        user(s, &kdca, &format!("user{i}"), &["analyst"]).await;
    }
    let head = s.ledger_head().await.unwrap();
    // One institution and twenty users: twenty-one records, in order.
    assert_eq!(head.size(), 21);
    assert_eq!(s.count_audit_records().await.unwrap(), 21);
    let records: Vec<_> = s
        .stream_audit_records(u64::MAX)
        .try_collect()
        .await
        .unwrap();
    let mut recomputed = Frontier::default();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        recomputed.push(record_leaf_hash(r));
    }
    assert_eq!(recomputed.root(), head.root());
    // The stored perfect subtrees give the root of any prefix …
    let prefix = s.ledger_nodes(&range_nodes(0, 13)).await.unwrap();
    let mut first13 = Frontier::default();
    records[..13].iter().for_each(|r| {
        first13.push(record_leaf_hash(r));
    });
    assert_eq!(fold_range(&prefix), first13.root());
    // … and inclusion proofs that verify.
    let plan = inclusion_plan(5, 21).unwrap();
    let mut proof = Vec::new();
    for range in &plan {
        proof.push(fold_range(&s.ledger_nodes(range).await.unwrap()));
    }
    verify_inclusion(&record_leaf_hash(&records[5]), 5, 21, &proof, &head.root()).unwrap();
}

async fn audit_search_filters_and_is_itself_audited(db: TestDb) {
    let s = &db.store;
    let mut e = AuditEntry::new("case.read", "case:1042", Outcome::Allowed).subject("case:1042");
    e.actor = Some(UserId(3));
    s.append_audit(e.clone()).await.unwrap();
    e.subject = Some("case:7".into());
    e.resource = "case:7".into();
    s.append_audit(e).await.unwrap();
    s.append_audit(AuditEntry::new("auth.login", "user:4", Outcome::Failed))
        .await
        .unwrap();

    let by_subject = s
        .search_audit(
            AuditQuery {
                subject: Some("case:1042".into()),
                limit: 10,
                ..Default::default()
            },
            audit("audit.search"),
        )
        .await
        .unwrap();
    assert_eq!(by_subject.len(), 1);
    assert_eq!(by_subject[0].entry.resource, "case:1042");
    let by_actor = s
        .search_audit(
            AuditQuery {
                actor: Some(UserId(3)),
                limit: 10,
                ..Default::default()
            },
            audit("audit.search"),
        )
        .await
        .unwrap();
    assert_eq!(by_actor.len(), 2);
    assert!(by_actor[0].seq > by_actor[1].seq, "newest first");
    let future = s
        .search_audit(
            AuditQuery {
                from: Some(Timestamp::now().plus_seconds(60)),
                limit: 10,
                ..Default::default()
            },
            audit("audit.search"),
        )
        .await
        .unwrap();
    assert!(future.is_empty());
    // Three events and three searches.
    assert_eq!(s.ledger_head().await.unwrap().size(), 6);
}

async fn the_ledger_refuses_updates_and_deletes(db: TestDb) {
    let s = &db.store;
    s.append_audit(audit("auth.login")).await.unwrap();
    assert!(db
        .execute_raw("UPDATE audit_records SET outcome = 'denied' WHERE seq = 0")
        .await
        .is_err());
    assert!(db
        .execute_raw("DELETE FROM audit_records WHERE seq = 0")
        .await
        .is_err());
    assert!(db.execute_raw("DELETE FROM audit_nodes").await.is_err());
    assert_eq!(s.count_audit_records().await.unwrap(), 1);
}

async fn concurrent_appends_keep_the_ledger_gapless(db: TestDb) {
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append_audit(AuditEntry::new(
                    "test.concurrent",
                    format!("r:{i}"),
                    Outcome::Allowed,
                ))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let records: Vec<_> = db
        .store
        .stream_audit_records(u64::MAX)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records.len(), 40);
    let mut f = Frontier::default();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
        f.push(record_leaf_hash(r));
    }
    assert_eq!(f.root(), db.store.ledger_head().await.unwrap().root());
}

async fn the_exchange_log_is_a_gapless_chain_that_shows_every_edit(db: TestDb) {
    use civic_exchange::{message_digest, Direction, MessageLog};
    let mut tasks = Vec::new();
    for i in 0..30 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let direction = if i % 2 == 0 {
                Direction::Sent
            } else {
                Direction::Received
            };
            store
                .log_exchange(
                    1_600_000_000 + i,
                    direction,
                    &format!("req-{}", i / 2),
                    "0123456789abcdef",
                    message_digest(format!("message {i}").as_bytes()),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let entries = db.store.exchange_log(0, 1000).await.unwrap();
    assert_eq!(entries.len(), 30);
    assert_eq!(db.store.exchange_log(25, 100).await.unwrap(), entries[25..]);
    // The hub signs heads of its log for nodes to keep as witnesses.
    let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let head = MessageLog::from_entries(entries.clone()).head(&key);
    MessageLog::verify(&entries, std::slice::from_ref(&head), &key.verifying_key()).unwrap();

    // A node's heads are kept once per size.
    let s = &db.store;
    s.keep_node_log_head("node-key", &head, Timestamp::now())
        .await
        .unwrap();
    s.keep_node_log_head("node-key", &head, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(
        s.node_log_heads("node-key").await.unwrap(),
        vec![head.clone()]
    );
    assert!(s.node_log_heads("other").await.unwrap().is_empty());

    // The log refuses edits; one made after dropping its triggers (as a
    // database administrator could) breaks the chain at that entry.
    assert!(db
        .execute_raw("UPDATE exchange_log SET request_id = 'req-forged' WHERE seq = 7")
        .await
        .is_err());
    assert!(db.execute_raw("DELETE FROM exchange_log").await.is_err());
    assert!(db
        .execute_raw("DELETE FROM exchange_witnesses")
        .await
        .is_err());
    db.execute_raw(if db.schema.is_some() {
        "DROP TRIGGER exchange_log_append_only ON exchange_log"
    } else {
        "DROP TRIGGER exchange_log_no_update"
    })
    .await
    .unwrap();
    db.execute_raw("UPDATE exchange_log SET request_id = 'req-forged' WHERE seq = 7")
        .await
        .unwrap();
    let edited = db.store.exchange_log(0, 1000).await.unwrap();
    assert_eq!(
        MessageLog::verify(&edited, &[], &key.verifying_key()),
        Err(civic_exchange::LogError::Broken(7))
    );
}

async fn migrations_are_idempotent_and_meta_round_trips(db: TestDb) {
    db.store.migrate().await.unwrap();
    db.reopen().await.migrate().await.unwrap();
    db.store.set_meta("hub.public_key", "abc").await.unwrap();
    db.store.set_meta("hub.public_key", "def").await.unwrap();
    assert_eq!(
        db.store.meta("hub.public_key").await.unwrap().as_deref(),
        Some("def")
    );
    assert_eq!(db.store.meta("missing").await.unwrap(), None);
    db.store.ping().await.unwrap();
}

async fn enrolment_tokens_are_used_once_and_only_in_time(db: TestDb) {
    let s = &db.store;
    let telco = institution(s, "SK Telecom", InstitutionKind::Telco).await;
    let now = Timestamp::now();
    let token = |hash: &str, name: &str, expires: Timestamp| NewEnrolment {
        token_hash: hash.into(),
        institution: telco.id,
        node_name: name.into(),
        created_at: now,
        expires_at: expires,
    };
    let node = |key: &str| NewNode {
        name: "node-skt".into(),
        signing_key: key.into(),
        certificate: "PEM".into(),
        enrolled_at: Timestamp::now(),
    };
    s.create_enrolment(
        token("t1", "node-skt", now.plus_seconds(3600)),
        audit("admin.node.token"),
    )
    .await
    .unwrap();
    s.create_enrolment(
        token("t2", "node-skt", now.plus_seconds(3600)),
        audit("admin.node.token"),
    )
    .await
    .unwrap();
    s.create_enrolment(
        token("old", "node-old", now.plus_seconds(-1)),
        audit("admin.node.token"),
    )
    .await
    .unwrap();

    let enrolled = s
        .enrol_node("t1", node("aa"), audit("node.enrol"))
        .await
        .unwrap();
    assert_eq!(
        (enrolled.name.as_str(), enrolled.institution),
        ("node-skt", telco.id)
    );
    assert!(
        matches!(
            s.enrol_node("t1", node("bb"), audit("node.enrol")).await,
            Err(StoreError::NotFound(_))
        ),
        "used once"
    );
    assert!(
        matches!(
            s.enrol_node("old", node("bb"), audit("node.enrol")).await,
            Err(StoreError::NotFound(_))
        ),
        "expired"
    );
    assert!(matches!(
        s.enrol_node("nope", node("bb"), audit("node.enrol")).await,
        Err(StoreError::NotFound(_))
    ));
    // A token enrols only the node it was issued for.
    let other = NewNode {
        name: "node-other".into(),
        ..node("dd")
    };
    assert!(matches!(
        s.enrol_node("t2", other, audit("node.enrol")).await,
        Err(StoreError::NotFound(_))
    ));
    // A second token for a taken name fails, and is not used up by failing.
    let before = s.ledger_head().await.unwrap().size();
    assert!(matches!(
        s.enrol_node("t2", node("cc"), audit("node.enrol")).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.ledger_head().await.unwrap().size(), before);
    assert_eq!(s.nodes().await.unwrap().len(), 1);
}

async fn nodes_are_registered_with_their_address(db: TestDb) {
    let s = &db.store;
    let telco = institution(s, "SK Telecom", InstitutionKind::Telco).await;
    s.create_enrolment(
        NewEnrolment {
            token_hash: "h".into(),
            institution: telco.id,
            node_name: "node-skt".into(),
            created_at: Timestamp::now(),
            expires_at: Timestamp::now().plus_seconds(60),
        },
        audit("admin.node.token"),
    )
    .await
    .unwrap();
    s.enrol_node(
        "h",
        NewNode {
            name: "node-skt".into(),
            signing_key: "00".into(),
            certificate: "pem".into(),
            enrolled_at: Timestamp::now(),
        },
        audit("node.enrol"),
    )
    .await
    .unwrap();
    assert_eq!(s.nodes().await.unwrap()[0].route, None);
    let route = NodeRoute {
        url: "https://127.0.0.1:9443".into(),
        kind: "pings".into(),
        code: "skt".into(),
    };
    s.set_node_route("node-skt", route.clone(), audit("admin.node.route"))
        .await
        .unwrap();
    assert_eq!(s.nodes().await.unwrap()[0].route, Some(route.clone()));
    assert!(matches!(
        s.set_node_route("node-x", route, audit("admin.node.route"))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

civic_store::backend_tests!(
    nodes_are_registered_with_their_address,
    enrolment_tokens_are_used_once_and_only_in_time,
    institutions_are_created_listed_and_unique,
    users_keep_their_duties,
    sign_in_failures_make_the_next_attempt_wait_and_codes_are_not_replayed,
    api_tokens_are_found_by_hash_and_revoked,
    every_write_is_in_the_ledger_and_proofs_verify,
    audit_search_filters_and_is_itself_audited,
    the_ledger_refuses_updates_and_deletes,
    concurrent_appends_keep_the_ledger_gapless,
    migrations_are_idempotent_and_meta_round_trips,
    the_exchange_log_is_a_gapless_chain_that_shows_every_edit,
);
