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

/// City data's migrations.
pub const MIGRATIONS: Migrations = Migrations {
    application: "citydata",
    versions: &[(1, V1), (2, V2)],
};
