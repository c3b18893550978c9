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

civic_store::backend_tests!(
    tenant_settings_are_kept_and_their_changes_audited,
    registrations_are_kept_by_kind_and_tenant,
    entities_are_written_replaced_and_deleted_in_one_transaction,
    what_the_broker_acknowledged_is_there_after_a_restart,
    a_write_that_fails_changes_nothing,
);
