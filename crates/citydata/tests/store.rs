//! The broker's storage suite: every test on SQLite and on PostgreSQL.
//! The database is the broker's durable copy: what a write acknowledged
//! is there after a restart, and a write that fails leaves nothing.

use civic_citydata::broker::Broker;
use civic_citydata::entity::parse_entity;
use civic_citydata::jsonld::Context;
use civic_citydata::problem::NgsiError;
use civic_citydata::store::*;
use civic_store::testing::TestDb;
use serde_json::json;

fn row(tenant: &str, id: &str, seq: i64) -> StoredEntity {
    StoredEntity {
        tenant: tenant.into(),
        id: id.into(),
        seq,
        doc: format!("{{\"id\":\"{id}\"}}"),
    }
}

async fn entities_are_written_replaced_and_deleted_in_one_transaction(db: TestDb) {
    let s = &db.store;
    migrate(s).await.unwrap();
    s.write_entities(
        &[
            row("", "urn:a", 1),
            row("", "urn:b", 2),
            row("city", "urn:a", 3),
        ],
        &[],
        &[],
    )
    .await
    .unwrap();
    let mut replaced = row("", "urn:a", 1);
    replaced.doc = "{\"id\":\"urn:a\",\"v\":2}".into();
    s.write_entities(&[replaced.clone()], &[("".into(), "urn:b".into())], &[])
        .await
        .unwrap();
    let all = s.load_entities().await.unwrap();
    assert_eq!(all, vec![replaced, row("city", "urn:a", 3)]);
}

fn building(id: &str) -> serde_json::Value {
    json!({"id": id, "type": "Building", "name": {"type": "Property", "value": "Tower"}})
}

async fn what_the_broker_acknowledged_is_there_after_a_restart(db: TestDb) {
    migrate(&db.store).await.unwrap();
    let broker = Broker::new(db.store.clone(), false);
    let ctx = Context::core();
    for n in 0..3 {
        let e = parse_entity(&building(&format!("urn:ngsi-ld:Building:{n}")), &ctx, 0).unwrap();
        broker
            .write("", |txn| {
                txn.put(e);
                Ok(())
            })
            .await
            .unwrap();
    }
    broker
        .write("", |txn| {
            assert!(txn.remove("urn:ngsi-ld:Building:1"));
            Ok(())
        })
        .await
        .unwrap();
    let reopened = Broker::new(db.reopen().await, false);
    let all = reopened.all("").await.unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["urn:ngsi-ld:Building:0", "urn:ngsi-ld:Building:2"]);
    assert_eq!(all[0].attrs.len(), 1);
    // An entity created after the restart comes after the others.
    let e = parse_entity(&building("urn:ngsi-ld:Building:9"), &ctx, 0).unwrap();
    reopened
        .write("", |txn| {
            txn.put(e);
            Ok(())
        })
        .await
        .unwrap();
    let again = Broker::new(db.reopen().await, false);
    let last = again.all("").await.unwrap().last().unwrap().id.clone();
    assert_eq!(last, "urn:ngsi-ld:Building:9");
}

async fn a_write_that_fails_changes_nothing(db: TestDb) {
    migrate(&db.store).await.unwrap();
    let broker = Broker::new(db.store.clone(), false);
    let ctx = Context::core();
    let e = parse_entity(&building("urn:ngsi-ld:Building:1"), &ctx, 0).unwrap();
    let err = broker
        .write("", |txn| {
            txn.put(e);
            Err::<(), _>(NgsiError::bad_data(
                "the second entity of the batch was invalid",
            ))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind.status(), 400);
    assert!(broker.all("").await.unwrap().is_empty());
    assert!(db.store.load_entities().await.unwrap().is_empty());
    // A tenant that was never written does not exist for readers.
    assert_eq!(
        broker.all("elsewhere").await.unwrap_err().kind.status(),
        404
    );
}

async fn registrations_are_kept_by_kind_and_tenant(db: TestDb) {
    use civic_core::audit::{AuditEntry, Outcome};
    let s = &db.store;
    migrate(s).await.unwrap();
    let audit = || {
        AuditEntry::new(
            "citydata.registration.create",
            "ngsi-registration:/r",
            Outcome::Allowed,
        )
    };
    s.put_registration("registration", "", "urn:r", "{\"v\":1}", audit())
        .await
        .unwrap();
    s.put_registration("registration", "", "urn:r", "{\"v\":2}", audit())
        .await
        .unwrap();
    s.put_registration("csourceSubscription", "", "urn:r", "{}", audit())
        .await
        .unwrap();
    s.put_registration("registration", "city", "urn:r", "{}", audit())
        .await
        .unwrap();
    let regs = s.load_registrations("registration").await.unwrap();
    assert_eq!(
        regs,
        vec![
            ("".into(), "{\"v\":2}".into()),
            ("city".into(), "{}".into())
        ]
    );
    assert!(s
        .delete_registration("registration", "", "urn:r", audit())
        .await
        .unwrap());
    assert!(!s
        .delete_registration("registration", "", "urn:r", audit())
        .await
        .unwrap());
    let reopened = db.reopen().await;
    assert_eq!(
        reopened
            .load_registrations("registration")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        reopened
            .load_registrations("csourceSubscription")
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn tenant_settings_are_kept_and_their_changes_audited(db: TestDb) {
    use civic_core::audit::{AuditEntry, Outcome};
    let s = &db.store;
    migrate(s).await.unwrap();
    let audit = |verb: &str| {
        AuditEntry::new(
            format!("citydata.tenant.{verb}"),
            "ngsi-tenant:city",
            Outcome::Allowed,
        )
    };
    s.put_tenant("city", "{\"v\":1}", audit("create"))
        .await
        .unwrap();
    s.put_tenant("", "{}", audit("create")).await.unwrap();
    s.put_tenant("city", "{\"v\":2}", audit("update"))
        .await
        .unwrap();
    let reopened = db.reopen().await;
    assert_eq!(
        reopened.load_tenants().await.unwrap(),
        vec![
            ("".into(), "{}".into()),
            ("city".into(), "{\"v\":2}".into())
        ]
    );
    use civic_store::AuditStore as _;
    let ledger = reopened.count_audit_records().await.unwrap();
    assert_eq!(ledger, 3, "each change is in the ledger");
}

fn recorded(attr: &str, at: i64, value: serde_json::Value, recorded_at: i64) -> HistoryRow {
    let instance = json!({"type": "Property", "value": value});
    HistoryRow {
        tenant: "city".into(),
        entity_id: "urn:s".into(),
        types: "[\"Sensor\"]".into(),
        attr: attr.into(),
        at,
        num: number_of(instance.as_object().unwrap()),
        instance: instance.to_string(),
        recorded_at,
    }
}

/// Every recorded instance is summed into its hour in the transaction
/// that records it; the retention and deletions keep the sums true.
async fn hourly_sums_follow_what_is_recorded_and_forgotten(db: TestDb) {
    let s = &db.store;
    migrate(s).await.unwrap();
    let h = ROLLUP_MS;
    s.write_entities(
        &[],
        &[],
        &[
            recorded("t", 10, json!(2.0), 100),
            recorded("t", 20, json!(4), 200),
            recorded("t", h + 5, json!("off"), 100),
            recorded("t", -1, json!(7.5), 100),
        ],
    )
    .await
    .unwrap();
    s.write_entities(&[], &[], &[recorded("t", 30, json!(-1.0), 300)])
        .await
        .unwrap();
    let sums = s.rollups("city", "urn:s", "t", -10, 10).await.unwrap();
    let hour = |k: i64| sums.iter().find(|(x, _)| *x == k).map(|(_, st)| *st);
    assert_eq!(hour(-1).unwrap().sum, 7.5, "before 1970 rounds down");
    let zero = hour(0).unwrap();
    assert_eq!((zero.n, zero.nn, zero.sum, zero.sumsq), (3, 3, 5.0, 21.0));
    assert_eq!((zero.min, zero.max), (Some(-1.0), Some(4.0)));
    let one = hour(1).unwrap();
    assert_eq!(
        (one.n, one.nn, one.min),
        (1, 0, None),
        "a string counts, no sum"
    );
    let buckets = s
        .history_buckets("city", "urn:s", "t", -h, 2 * h, (-h, 2 * h))
        .await
        .unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(
        (buckets[0].0, buckets[0].1.n, buckets[0].1.sum),
        (0, 4, 12.5)
    );
    // The retention drops what was recorded before 150: hour 0 is summed
    // again from what is left, hours -1 and 1 go.
    assert_eq!(s.prune_history(150).await.unwrap(), 3);
    let sums = s.rollups("city", "urn:s", "t", -10, 10).await.unwrap();
    assert_eq!(sums.len(), 1, "{sums:?}");
    assert_eq!((sums[0].0, sums[0].1.n, sums[0].1.sum), (0, 2, 3.0));
    assert_eq!(s.history_attrs("city", "urn:s").await.unwrap(), vec!["t"]);
    assert_eq!(
        s.delete_history("city", "urn:s", Some("t")).await.unwrap(),
        2
    );
    assert!(s
        .rollups("city", "urn:s", "t", -10, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(s.history_attrs("city", "urn:s").await.unwrap().is_empty());
    // History recorded before the sums existed (migration 6) is summed
    // once, at the next start.
    let mut old = recorded("t", 40, json!(3), 400);
    old.num = None;
    s.write_entities(&[], &[], &[old]).await.unwrap();
    db.execute_raw("DELETE FROM ngsi_rollups").await.unwrap();
    db.execute_raw("DELETE FROM ngsi_history_entities")
        .await
        .unwrap();
    db.execute_raw("UPDATE ngsi_history SET num = NULL")
        .await
        .unwrap();
    migrate(s).await.unwrap();
    let sums = s.rollups("city", "urn:s", "t", -10, 10).await.unwrap();
    assert_eq!(sums.len(), 1);
    assert_eq!((sums[0].1.n, sums[0].1.nn, sums[0].1.sum), (1, 1, 3.0));
    assert_eq!(s.rebuild_rollups().await.unwrap(), 0, "only once");
    assert_eq!(
        s.history_entities("city").await.unwrap(),
        vec![("urn:s".to_owned(), "[\"Sensor\"]".to_owned())]
    );
}

civic_store::backend_tests!(
    hourly_sums_follow_what_is_recorded_and_forgotten,
    tenant_settings_are_kept_and_their_changes_audited,
    registrations_are_kept_by_kind_and_tenant,
    entities_are_written_replaced_and_deleted_in_one_transaction,
    what_the_broker_acknowledged_is_there_after_a_restart,
    a_write_that_fails_changes_nothing,
);
