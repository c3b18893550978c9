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
    s.write_entities(&[puts(vec![
        row("", "urn:a", 1),
        row("", "urn:b", 2),
        row("city", "urn:a", 3),
    ])])
    .await
    .unwrap();
    let mut replaced = row("", "urn:a", 1);
    replaced.doc = "{\"id\":\"urn:a\",\"v\":2}".into();
    s.write_entities(&[Write {
        put: vec![replaced.clone()],
        delete: vec![("".into(), "urn:b".into())],
        history: vec![],
    }])
    .await
    .unwrap();
    let all = s.load_entities().await.unwrap();
    assert_eq!(all, vec![replaced.clone(), row("city", "urn:a", 3)]);
    // A group of writes means what its writes meant one after another:
    // deleted then made again, an entity is there (with no history from
    // before); made then deleted, it is not.
    let mut again = row("", "urn:b", 4);
    again.doc = "{\"id\":\"urn:b\",\"v\":3}".into();
    s.write_entities(&[
        Write {
            history: vec![recorded("t", 10, json!(1), 100)],
            ..puts(vec![row("city", "urn:s", 5)])
        },
        Write {
            delete: vec![("".into(), "urn:a".into()), ("city".into(), "urn:s".into())],
            ..Write::default()
        },
        puts(vec![again.clone(), row("city", "urn:s", 6)]),
        Write {
            delete: vec![("".into(), "urn:b".into())],
            ..Write::default()
        },
        puts(vec![again.clone()]),
    ])
    .await
    .unwrap();
    let all = s.load_entities().await.unwrap();
    assert_eq!(
        all,
        vec![again, row("city", "urn:a", 3), row("city", "urn:s", 6)]
    );
    assert!(!s
        .history_exists("city", "urn:s", None, i64::MIN, i64::MAX)
        .await
        .unwrap());
}

fn puts(put: Vec<StoredEntity>) -> Write {
    Write {
        put,
        ..Write::default()
    }
}

fn building(id: &str) -> serde_json::Value {
    json!({"id": id, "type": "Building", "name": {"type": "Property", "value": "Tower"}})
}

/// A write that makes the building `id`.
fn make(id: &str) -> impl FnOnce(&mut civic_citydata::broker::Txn) -> Result<(), NgsiError> {
    let e = parse_entity(&building(id), &Context::core(), 0).unwrap();
    move |txn| {
        txn.put(e);
        Ok(())
    }
}

async fn what_the_broker_acknowledged_is_there_after_a_restart(db: TestDb) {
    migrate(&db.store).await.unwrap();
    let broker = Broker::new(db.store.clone(), false);
    for n in 0..3 {
        let id = format!("urn:ngsi-ld:Building:{n}");
        broker.write("", make(&id)).await.unwrap();
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
    reopened
        .write("", make("urn:ngsi-ld:Building:9"))
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

/// An attribute instance with this value.
fn instance(v: usize) -> civic_citydata::entity::Instance {
    serde_json::from_value(json!({"type": "Property", "value": v})).unwrap()
}

async fn writes_at_once_build_on_each_other_and_commit_in_groups(db: TestDb) {
    migrate(&db.store).await.unwrap();
    let broker = std::sync::Arc::new(Broker::new(db.store.clone(), false));
    let ctx = Context::core();
    let id = "urn:ngsi-ld:Building:1";
    broker.write("", make(id)).await.unwrap();
    // Forty writers at once, each adding an attribute to what the ones
    // before it staged (none is lost), and one that deletes then another
    // that makes a second entity again.
    let mut writers = tokio::task::JoinSet::new();
    for n in 0..40 {
        let broker = broker.clone();
        writers.spawn(async move {
            broker
                .write("", |txn| {
                    let e = txn.get_mut(id).expect("staged or committed");
                    e.attrs.insert(format!("urn:attr:{n}"), vec![instance(n)]);
                    Ok(())
                })
                .await
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap().unwrap();
    }
    let counted = |e: &civic_citydata::entity::Entity| e.attrs.len();
    assert_eq!(counted(&broker.get("", id).await.unwrap()), 41);
    let (made, gone, again) = tokio::join!(
        broker.write("", |txn| {
            txn.put(parse_entity(&building("urn:ngsi-ld:Building:2"), &ctx, 0)?);
            Ok(())
        }),
        broker.write("", |txn| Ok(txn.remove("urn:ngsi-ld:Building:2"))),
        broker.write("", |txn| {
            let fresh = txn.get("urn:ngsi-ld:Building:2").is_none();
            txn.put(parse_entity(&building("urn:ngsi-ld:Building:2"), &ctx, 0)?);
            Ok(fresh)
        }),
    );
    made.unwrap();
    assert!(gone.unwrap(), "the delete saw the staged entity");
    assert!(again.unwrap(), "and the third write saw it deleted");
    let reopened = Broker::new(db.reopen().await, false);
    let all = reopened.all("").await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(counted(&all[0]), 41);
    assert_eq!(all[1].id, "urn:ngsi-ld:Building:2");
}

async fn a_group_that_fails_to_commit_changes_nothing(db: TestDb) {
    migrate(&db.store).await.unwrap();
    let broker = Broker::new(db.store.clone(), false);
    let put = |n: usize| make(&format!("urn:ngsi-ld:Building:{n}"));
    broker.write("", put(1)).await.unwrap();
    // The database refuses every entity from now on.
    let (refuse, allow) = match &db.store {
        civic_store::Store::Sqlite(_) => (
            "CREATE TRIGGER refuse BEFORE INSERT ON ngsi_entities \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
            "DROP TRIGGER refuse",
        ),
        civic_store::Store::Postgres(_) => (
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ \
             LANGUAGE plpgsql; CREATE TRIGGER refuse BEFORE INSERT ON ngsi_entities \
             FOR EACH ROW EXECUTE FUNCTION refuse()",
            "DROP TRIGGER refuse ON ngsi_entities",
        ),
    };
    db.execute_raw(refuse).await.unwrap();
    // The second write builds on the first, which fails: both fail.
    let (first, second) = tokio::join!(
        broker.write("", put(2)),
        broker.write("", |txn| {
            let e = txn.get_mut("urn:ngsi-ld:Building:2").expect("staged");
            e.attrs.insert("urn:attr:x".into(), vec![instance(1)]);
            Ok(())
        }),
    );
    assert_eq!(first.unwrap_err().kind.status(), 500);
    assert_eq!(second.unwrap_err().kind.status(), 500);
    let ids = |all: Vec<std::sync::Arc<civic_citydata::entity::Entity>>| {
        all.iter().map(|e| e.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(broker.all("").await.unwrap()),
        ["urn:ngsi-ld:Building:1"]
    );
    db.execute_raw(allow).await.unwrap();
    // Nothing of them is staged any more.
    let seen = broker
        .write("", |txn| Ok(txn.get("urn:ngsi-ld:Building:2").is_some()))
        .await
        .unwrap();
    assert!(!seen);
    broker.write("", put(3)).await.unwrap();
    let reopened = Broker::new(db.reopen().await, false);
    assert_eq!(
        ids(reopened.all("").await.unwrap()),
        ["urn:ngsi-ld:Building:1", "urn:ngsi-ld:Building:3"]
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
        deleted: false,
    }
}

/// An attribute's deletion as the broker records it: an NGSI-LD null.
fn deletion(attr: &str, at: i64, recorded_at: i64) -> HistoryRow {
    let instance = json!({"type": "Property", "value": "urn:ngsi-ld:null", "deletedAt": "1970-01-01T00:00:00.025Z"});
    HistoryRow {
        instance: instance.to_string(),
        num: None,
        deleted: true,
        ..recorded(attr, at, json!(null), recorded_at)
    }
}

/// Every recorded instance is summed into its hour in the transaction
/// that records it; the retention and deletions keep the sums true.
async fn hourly_sums_follow_what_is_recorded_and_forgotten(db: TestDb) {
    let s = &db.store;
    migrate(s).await.unwrap();
    let h = ROLLUP_MS;
    s.write_entities(&[Write {
        history: vec![
            recorded("t", 10, json!(2.0), 100),
            recorded("t", 20, json!(4), 200),
            recorded("t", h + 5, json!("off"), 100),
            recorded("t", -1, json!(7.5), 100),
            deletion("t", 25, 100),
        ],
        ..Write::default()
    }])
    .await
    .unwrap();
    s.write_entities(&[Write {
        history: vec![recorded("t", 30, json!(-1.0), 300)],
        ..Write::default()
    }])
    .await
    .unwrap();
    let sums = s.rollups("city", "urn:s", "t", -10, 10).await.unwrap();
    let hour = |k: i64| sums.iter().find(|(x, _)| *x == k).map(|(_, st)| *st);
    assert_eq!(hour(-1).unwrap().sum, 7.5, "before 1970 rounds down");
    let zero = hour(0).unwrap();
    assert_eq!(
        (zero.n, zero.nn, zero.sum, zero.sumsq),
        (3, 3, 5.0, 21.0),
        "a deletion is not counted"
    );
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
    assert_eq!(s.prune_history(150).await.unwrap(), 4);
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
    s.write_entities(&[Write {
        history: vec![old],
        ..Write::default()
    }])
    .await
    .unwrap();
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
    writes_at_once_build_on_each_other_and_commit_in_groups,
    a_group_that_fails_to_commit_changes_nothing,
);
