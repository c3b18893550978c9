//! MyData's storage: its traits and records (`catalogue`, `transfers`,
//! `support`, `types`) and their SQL (`sql/`), written once with
//! `civic_store::kit` and mounted for each backend (`sqlite.rs`,
//! `postgres.rs`), so that `civic_store::Store` serves them as it serves
//! the platform's own.

mod catalogue;
mod postgres;
mod schema;
mod sqlite;
mod support;
mod transfers;
mod types;

pub use catalogue::MydataStore;
pub use civic_store::{Result, StoreError};
pub use schema::MIGRATIONS;
pub use support::SupportStore;
pub use transfers::{
    Bind, DecisionOp, DeliveryOp, FetchOp, Fetched, Party, TransferDecision, TransferEventStore,
    TransferFilter, TransferStore,
};
pub use types::*;

/// Creates or updates the application's tables (after the platform's, to
/// which they refer); safe at every start.
pub async fn migrate(store: &civic_store::Store) -> Result<()> {
    store.migrate_application(&MIGRATIONS).await
}
