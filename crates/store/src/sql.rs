//! The SQL of every store, written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` each mount this file (`#[path]`) beside
//! their `Db` (the sqlx database) and `Engine` (their store). Both
//! backends accept `$1`-style parameters, so the SQL text is the same;
//! what differs (transactions, locks, pools) is their [`crate::Backend`].

use super::{Db, Engine};
use crate::rows::{corrupt, ts};
use crate::*;
use civic_core::audit::{AuditEntry, AuditQuery, AuditRecord, Outcome};
use civic_core::identity::{ApiTokenId, Duty, InstitutionId, Region, UserId};
use civic_core::time::Timestamp;
use civic_exchange::{Direction, LogEntry, LogHead};
use civic_ledger::{record_leaf_hash, Frontier, Hash, NodeId, SignedTreeHead};
use futures_util::stream::{BoxStream, StreamExt};
use sqlx::Row;
use std::collections::HashMap;

type Tx = sqlx::Transaction<'static, Db>;
type DbRow = <Db as sqlx::Database>::Row;
use crate::rows::Value;

#[path = "identity/sql.rs"]
mod identity;
#[path = "investigation/sql.rs"]
mod investigation;
#[path = "ledger/sql.rs"]
mod ledger;
#[path = "mydata/sql.rs"]
mod mydata;
#[path = "nodes/sql.rs"]
mod nodes;
#[path = "support/sql.rs"]
mod support;
#[path = "transfers/sql.rs"]
mod transfers;

impl Engine {
    /// Opens a transaction holding the ledger lock, for actions that
    /// write: the lock comes first, so writers never deadlock.
    async fn begin_ledger(&self) -> Result<(Tx, Frontier)> {
        let mut tx = self.begin_tx().await?;
        let frontier = Self::lock_ledger(&mut tx).await?;
        Ok((tx, frontier))
    }

    /// Applies the migrations not yet recorded, inside `tx` (which
    /// the backend has made exclusive).
    pub(super) async fn apply_migrations(tx: &mut Tx, migrations: &[(i64, String)]) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .execute(&mut **tx)
            .await?;
        for (version, sql) in migrations {
            let done = sqlx::query("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut **tx)
                .await?;
            if done.is_none() {
                sqlx::raw_sql(sql).execute(&mut **tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(Timestamp::now().micros())
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }
}
