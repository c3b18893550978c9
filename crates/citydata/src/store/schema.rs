//! City data's schema, migrated by `civic_store::Store::migrate_application`.

use civic_store::kit::Migrations;

/// The broker's entities: one row per entity and tenant, its document the
/// stored form (JSON). `seq` orders them as they were created, which is
/// the order of query answers.
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS ngsi_entities (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
"#;

/// Subscriptions: one row each, its document (the stored form of
/// `crate::subscription::Subscription`). Creating and deleting one is
/// audited.
const V2: &str = r#"
CREATE TABLE IF NOT EXISTS ngsi_subscriptions (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (tenant, id)
);
"#;

/// The temporal evolution: one row per attribute instance as it was
/// written (every entity write records what it changed), timed by its
/// observedAt, else its modification; the entity's types beside it, so
/// that history outlives the entity; kept for the retention
/// (`recorded_at`: when it was written, whatever it observed).
const V3: &str = r#"
CREATE TABLE IF NOT EXISTS ngsi_history (
    tenant TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    types TEXT NOT NULL,
    attr TEXT NOT NULL,
    at BIGINT NOT NULL,
    instance TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS ngsi_history_by_entity ON ngsi_history(tenant, entity_id, attr, at);
CREATE INDEX IF NOT EXISTS ngsi_history_by_recording ON ngsi_history(recorded_at);
"#;

/// Context source registrations and the subscriptions to them: one row
/// each, `kind` telling which (`registration`, `csourceSubscription`),
/// its document the stored form (`crate::csource`). Every change is
/// audited.
const V4: &str = r#"
CREATE TABLE IF NOT EXISTS ngsi_registrations (
    kind TEXT NOT NULL,
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (kind, tenant, id)
);
"#;

/// Tenants' settings, as administrators set them (the stored form of
/// `crate::tenancy::TenantSettings`): who owns each, whether it is open,
/// which institutions it lets in. Every change is audited.
const V5: &str = r#"
CREATE TABLE IF NOT EXISTS ngsi_tenants (
    name TEXT NOT NULL PRIMARY KEY,
    doc TEXT NOT NULL
);
"#;

/// Aggregations without reading every instance: each recorded instance's
/// number (`num`, when its value is one) and, per attribute and hour
/// (`crate::store::ROLLUP_MS`), the count, sums and bounds of its
/// instances, kept in the transaction that records them. `recorded_min`
/// and `recorded_max` tell the retention which hours it empties and
/// which it must sum again. `ngsi_history_entities` lists the entities
/// with history and their latest types, so that a temporal query finds
/// them without reading every instance.
const V6: &str = r#"
ALTER TABLE ngsi_history ADD COLUMN num DOUBLE PRECISION;
CREATE TABLE IF NOT EXISTS ngsi_rollups (
    tenant TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    attr TEXT NOT NULL,
    hour BIGINT NOT NULL,
    n BIGINT NOT NULL,
    nn BIGINT NOT NULL,
    sum DOUBLE PRECISION NOT NULL,
    sumsq DOUBLE PRECISION NOT NULL,
    min DOUBLE PRECISION,
    max DOUBLE PRECISION,
    recorded_min BIGINT NOT NULL,
    recorded_max BIGINT NOT NULL,
    PRIMARY KEY (tenant, entity_id, attr, hour)
);
CREATE INDEX IF NOT EXISTS ngsi_rollups_by_recording ON ngsi_rollups(recorded_min);
CREATE TABLE IF NOT EXISTS ngsi_history_entities (
    tenant TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    types TEXT NOT NULL,
    PRIMARY KEY (tenant, entity_id)
);
"#;

/// Deletions in the history (an attribute's, or a datasetId's instance,
/// recorded as an NGSI-LD null with its `deletedAt`) marked, so that the
/// hourly sums and the buckets' counts leave them out as the instances'
/// answers do; those recorded before are found by their `deletedAt` and
/// taken out of the counts of their hours (they have no number: only the
/// count held them).
const V7: &str = r#"
ALTER TABLE ngsi_history ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE ngsi_history SET deleted = TRUE WHERE instance LIKE '%"deletedAt":%';
UPDATE ngsi_rollups SET n = n - (SELECT COUNT(*) FROM ngsi_history h
    WHERE h.deleted AND h.tenant = ngsi_rollups.tenant AND h.entity_id = ngsi_rollups.entity_id
    AND h.attr = ngsi_rollups.attr AND h.at >= ngsi_rollups.hour * 3600000
    AND h.at < (ngsi_rollups.hour + 1) * 3600000)
WHERE EXISTS (SELECT 1 FROM ngsi_history h
    WHERE h.deleted AND h.tenant = ngsi_rollups.tenant AND h.entity_id = ngsi_rollups.entity_id
    AND h.attr = ngsi_rollups.attr AND h.at >= ngsi_rollups.hour * 3600000
    AND h.at < (ngsi_rollups.hour + 1) * 3600000);
"#;

/// City data's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    application: "citydata",
    versions: &[
        (1, V1),
        (2, V2),
        (3, V3),
        (4, V4),
        (5, V5),
        (6, V6),
        (7, V7),
    ],
};
