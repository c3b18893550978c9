//! City data's storage: the broker's entities, per tenant, as documents
//! (the stored form of `crate::entity`), on both backends with one SQL
//! (`sql/`). The database is the durable copy; the broker answers from
//! its in-memory index, rebuilt from here at start (see ARCHITECTURE.md).
//! Entity writes are not personal data and are not audited one by one;
//! the broker's administrative acts are (tenants, subscriptions,
//! registrations).

mod entities;
mod postgres;
mod schema;
mod sqlite;

pub use civic_store::{Result, StoreError};
pub use entities::{is_deletion, number_of};
pub use entities::{
    EntityStore, HistoryRow, RegistrationStore, Stats, StoredEntity, SubscriptionStore,
    TenantStore, Write, ROLLUP_MS,
};
pub use schema::MIGRATIONS;

/// Creates or updates the application's tables; safe at every start.
pub async fn migrate(store: &civic_store::Store) -> Result<()> {
    store.migrate_application(&MIGRATIONS).await?;
    EntityStore::rebuild_rollups(store).await?;
    Ok(())
}
