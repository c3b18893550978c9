//! `verify_ledger` on an untouched ledger and on ledgers edited directly
//! in the database, on both backends.

use civic_hub::ledger::{verify_ledger, VerifyError};
use civic_hub::{Config, Ctx, Hub, HubKeys};
use civic_store::testing::TestDb;

/// A hub with 12 audit records and a signed tree head over them.
async fn ledger(db: &TestDb) -> Hub {
    let hub = Hub::new(db.store.clone(), HubKeys::ephemeral(), Config::default());
    let ctx = Ctx::local_operator();
    for i in 0..12 {
        hub.create_institution(&ctx, &format!("Institution {i}"), "ministry")
            .await
            .unwrap();
    }
    hub.tree_head().await.unwrap();
    hub
}

/// Removes the append-only triggers, as an attacker with database
/// administrator rights could.
async fn unprotect(db: &TestDb) {
    let sql = if db.schema.is_some() {
        "DROP TRIGGER audit_records_append_only ON audit_records; DROP TRIGGER audit_nodes_append_only ON audit_nodes;"
    } else {
        "DROP TRIGGER audit_records_no_update; DROP TRIGGER audit_records_no_delete; \
         DROP TRIGGER audit_nodes_no_update; DROP TRIGGER audit_nodes_no_delete;"
    };
    db.execute_raw(sql).await.unwrap();
}

async fn verify(hub: &Hub) -> Result<u64, VerifyError> {
    let key = hub.keys().signing_key().verifying_key();
    verify_ledger(&hub.store, &key, &[], |_| {})
        .await
        .map(|r| r.records)
}

async fn an_untouched_ledger_verifies(db: TestDb) {
    let hub = ledger(&db).await;
    assert_eq!(verify(&hub).await.unwrap(), 12);
    // Growth after the signed head is fine, and reported as unsigned.
    hub.create_institution(&Ctx::local_operator(), "Late", "ministry")
        .await
        .unwrap();
    let key = hub.keys().signing_key().verifying_key();
    let report = verify_ledger(&hub.store, &key, &[], |_| {}).await.unwrap();
    assert_eq!(
        (report.records, report.unsigned_tail, report.tree_heads),
        (13, 1, 1)
    );
}

async fn an_edited_record_is_named(db: TestDb) {
    let hub = ledger(&db).await;
    unprotect(&db).await;
    db.execute_raw("UPDATE audit_records SET actor_name = 'someone else' WHERE seq = 5")
        .await
        .unwrap();
    let err = verify(&hub).await.unwrap_err();
    assert!(matches!(err, VerifyError::Changed { seq: 5 }), "{err}");
    assert!(err.to_string().contains("record 5"));
}

async fn a_removed_record_is_named(db: TestDb) {
    let hub = ledger(&db).await;
    unprotect(&db).await;
    db.execute_raw("DELETE FROM audit_records WHERE seq = 7")
        .await
        .unwrap();
    let err = verify(&hub).await.unwrap_err();
    assert!(matches!(err, VerifyError::Missing { seq: 7, .. }), "{err}");
}

async fn a_record_removed_from_the_end_is_named(db: TestDb) {
    let hub = ledger(&db).await;
    unprotect(&db).await;
    db.execute_raw("DELETE FROM audit_records WHERE seq = 11")
        .await
        .unwrap();
    let err = verify(&hub).await.unwrap_err();
    assert!(err.to_string().contains("11"), "{err}");
}

async fn an_inserted_record_is_named(db: TestDb) {
    let hub = ledger(&db).await;
    db.execute_raw(
        "INSERT INTO audit_records (seq, at, action, resource, outcome) VALUES (12, 0, 'auth.login', 'session', 'allowed')",
    )
    .await
    .unwrap();
    let err = verify(&hub).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Inserted { seq: 12, .. }),
        "{err}"
    );
}

async fn reordered_records_are_named(db: TestDb) {
    let hub = ledger(&db).await;
    unprotect(&db).await;
    db.execute_raw(
        "UPDATE audit_records SET seq = 100 WHERE seq = 3; \
         UPDATE audit_records SET seq = 3 WHERE seq = 4; \
         UPDATE audit_records SET seq = 4 WHERE seq = 100;",
    )
    .await
    .unwrap();
    let err = verify(&hub).await.unwrap_err();
    assert!(matches!(err, VerifyError::Changed { seq: 3 }), "{err}");
}

async fn rewritten_history_is_caught_by_the_signed_tree_head(db: TestDb) {
    // The attacker edits a record and recomputes every node and the head:
    // only the signature, which needs the hub's key, gives it away.
    let hub = ledger(&db).await;
    unprotect(&db).await;
    db.execute_raw("UPDATE audit_records SET outcome = 'denied' WHERE seq = 2")
        .await
        .unwrap();
    let forged = Hub::new(db.reopen().await, HubKeys::ephemeral(), Config::default());
    // Rebuild nodes and head from the edited records.
    db.execute_raw("DELETE FROM audit_nodes").await.unwrap();
    use civic_store::AuditStore;
    use futures_util::TryStreamExt;
    let records: Vec<_> = forged
        .store
        .stream_audit_records(u64::MAX)
        .try_collect()
        .await
        .unwrap();
    let mut frontier = civic_ledger::Frontier::default();
    let mut sql = String::new();
    for r in &records {
        for (id, h) in frontier.push(civic_ledger::record_leaf_hash(r)) {
            let hex = civic_ledger::to_hex(&h);
            let literal = if db.schema.is_some() {
                format!("'\\x{hex}'::bytea")
            } else {
                format!("X'{hex}'")
            };
            sql.push_str(&format!(
                "INSERT INTO audit_nodes (seq, level, hash) VALUES ({}, {}, {literal});",
                id.completed_by(),
                id.level
            ));
        }
    }
    let head_hex = data_encoding::HEXLOWER.encode(&frontier.to_bytes());
    let head_literal = if db.schema.is_some() {
        format!("'\\x{head_hex}'::bytea")
    } else {
        format!("X'{head_hex}'")
    };
    sql.push_str(&format!(
        "UPDATE audit_head SET frontier = {head_literal} WHERE id = 1;"
    ));
    db.execute_raw(&sql).await.unwrap();
    let err = verify(&hub).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::TreeHeadMismatch { size: 12 }),
        "{err}"
    );
}

async fn a_truncated_ledger_is_caught_by_its_tree_heads_and_by_witnesses(db: TestDb) {
    // The attacker cuts the last records, rewrites the head to match, and
    // would delete the signed heads too: the database refuses that, and a
    // tree head kept outside the database catches it anyway.
    let hub = ledger(&db).await;
    let witness = hub.tree_head().await.unwrap();
    assert_eq!(witness.tree_size, 12);
    unprotect(&db).await;
    let mut frontier = civic_ledger::Frontier::default();
    use civic_store::AuditStore;
    use futures_util::TryStreamExt;
    let records: Vec<_> = hub
        .store
        .stream_audit_records(9)
        .try_collect()
        .await
        .unwrap();
    for r in &records {
        frontier.push(civic_ledger::record_leaf_hash(r));
    }
    let head_hex = data_encoding::HEXLOWER.encode(&frontier.to_bytes());
    let literal = if db.schema.is_some() {
        format!("'\\x{head_hex}'::bytea")
    } else {
        format!("X'{head_hex}'")
    };
    db.execute_raw(&format!(
        "DELETE FROM audit_records WHERE seq >= 9; DELETE FROM audit_nodes WHERE seq >= 9; \
         UPDATE audit_head SET frontier = {literal} WHERE id = 1;"
    ))
    .await
    .unwrap();
    assert!(
        db.execute_raw("DELETE FROM audit_tree_heads")
            .await
            .is_err(),
        "tree heads are append-only"
    );
    let err = verify(&hub).await.unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::TreeHeadBeyond {
                size: 12,
                records: 9
            }
        ),
        "{err}"
    );

    // Even with the stored heads gone, the witness remembers.
    let drop_heads = if db.schema.is_some() {
        "DROP TRIGGER audit_tree_heads_append_only ON audit_tree_heads; DELETE FROM audit_tree_heads;"
    } else {
        "DROP TRIGGER audit_tree_heads_no_delete; DELETE FROM audit_tree_heads;"
    };
    db.execute_raw(drop_heads).await.unwrap();
    let key = hub.keys().signing_key().verifying_key();
    assert!(
        verify_ledger(&hub.store, &key, &[], |_| {}).await.is_ok(),
        "without a witness the cut is invisible"
    );
    let err = verify_ledger(&hub.store, &key, &[witness], |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::TreeHeadBeyond {
                size: 12,
                records: 9
            }
        ),
        "{err}"
    );
}

async fn a_witness_from_another_key_is_refused(db: TestDb) {
    let hub = ledger(&db).await;
    let real = hub.tree_head().await.unwrap();
    let stranger =
        civic_ledger::HubSigner::new(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng));
    let forged = stranger.sign(
        real.tree_size,
        &real.root().unwrap(),
        civic_core::time::Timestamp::now(),
    );
    let key = hub.keys().signing_key().verifying_key();
    let err = verify_ledger(&hub.store, &key, &[forged], |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::TreeHeadSignature { .. }),
        "{err}"
    );
}

async fn the_exchange_log_names_its_first_edited_or_removed_entry(db: TestDb) {
    use civic_hub::ledger::verify_exchange_log;
    use civic_store::ExchangeLogStore;
    for i in 0..12 {
        db.store
            .log_exchange(
                1_700_000_000 + i,
                civic_exchange::Direction::Sent,
                &format!("req-{i}"),
                "abcd",
                civic_exchange::message_digest(b"m"),
            )
            .await
            .unwrap();
    }
    assert_eq!(verify_exchange_log(&db.store).await.unwrap(), 12);
    // As a database administrator could: the triggers dropped first.
    db.execute_raw(if db.schema.is_some() {
        "DROP TRIGGER exchange_log_append_only ON exchange_log"
    } else {
        "DROP TRIGGER exchange_log_no_update; DROP TRIGGER exchange_log_no_delete;"
    })
    .await
    .unwrap();
    db.execute_raw("UPDATE exchange_log SET at = at + 1 WHERE seq = 9")
        .await
        .unwrap();
    assert!(matches!(
        verify_exchange_log(&db.store).await,
        Err(VerifyError::ExchangeLog(9))
    ));
    db.execute_raw("DELETE FROM exchange_log WHERE seq = 4")
        .await
        .unwrap();
    assert!(matches!(
        verify_exchange_log(&db.store).await,
        Err(VerifyError::ExchangeLog(4))
    ));
}

civic_store::backend_tests!(
    the_exchange_log_names_its_first_edited_or_removed_entry,
    a_truncated_ledger_is_caught_by_its_tree_heads_and_by_witnesses,
    a_witness_from_another_key_is_refused,
    an_untouched_ledger_verifies,
    an_edited_record_is_named,
    a_removed_record_is_named,
    a_record_removed_from_the_end_is_named,
    an_inserted_record_is_named,
    reordered_records_are_named,
    rewritten_history_is_caught_by_the_signed_tree_head,
);
