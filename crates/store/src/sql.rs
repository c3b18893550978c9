//! The SQL of every store, written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` each mount this file (`#[path]`) beside
//! their `Db` (the sqlx database) and `Engine` (their store). Both
//! backends accept `$1`-style parameters, so the SQL text is the same;
//! what differs (transactions, locks, pools) is their [`Backend`].

use super::{Db, Engine};
use crate::rows::{corrupt, from_json_text, frontier_from, json_text, only, ts};
use crate::*;
use civic_core::audit::{AuditEntry, AuditQuery, AuditRecord, Outcome};
use civic_core::identity::{ApiTokenId, Duty, InstitutionId, Region, UserId};
use civic_core::time::Timestamp;
use civic_exchange::{Direction, LogEntry, LogHead};
use civic_ledger::{record_leaf_hash, Frontier, Hash, NodeId, SignedTreeHead};
use futures_util::stream::{BoxStream, StreamExt};
use sqlx::Row;
use std::collections::HashMap;

use crate::backend::Backend;
use crate::rows::Value;

type Tx = sqlx::Transaction<'static, Db>;
type DbRow = <Db as sqlx::Database>::Row;

#[path = "identity/sql.rs"]
mod identity;
#[path = "investigation/sql/mod.rs"]
mod investigation;
#[path = "ledger/sql.rs"]
mod ledger;
#[path = "mydata/sql.rs"]
mod mydata;
#[path = "nodes/sql.rs"]
mod nodes;
#[path = "support/sql.rs"]
mod support;
#[path = "transfers/sql/mod.rs"]
mod transfers;

/// An audited write: a transaction that holds the ledger lock and
/// appends its audit record as it commits. Every write a store audits
/// goes through it (open, change, check, append, commit), and so does
/// every audited read ([`Engine::commit_reads`]).
pub(super) struct Audited {
    tx: Tx,
    head: Frontier,
}

impl std::ops::Deref for Audited {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for Audited {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

impl Audited {
    /// Appends `entry` and commits: the change and its record, or neither.
    pub(super) async fn commit(self, entry: AuditEntry) -> Result<AuditRecord> {
        let mut records = self.commit_all(vec![entry]).await?;
        Ok(records.pop().expect("one record per entry"))
    }

    /// Appends `entries` in order and commits (a group commit's).
    pub(super) async fn commit_all(mut self, entries: Vec<AuditEntry>) -> Result<Vec<AuditRecord>> {
        let records = Engine::append_many_in(&mut self.tx, &mut self.head, entries).await?;
        self.tx.commit().await?;
        Ok(records)
    }
}

/// Checks that a change found its row; else the refusal `refused` names,
/// and the transaction (dropped by the `?`) writes nothing.
pub(super) fn changed(
    done: <Db as sqlx::Database>::QueryResult,
    refused: impl FnOnce() -> StoreError,
) -> Result<()> {
    if done.rows_affected() == 0 {
        return Err(refused());
    }
    Ok(())
}

impl Engine {
    /// Opens an audited write. The ledger lock comes first, so writers
    /// never deadlock.
    pub(super) async fn audited(&self) -> Result<Audited> {
        let mut tx = self.begin().await?;
        let head = Self::lock_ledger(&mut tx).await?;
        Ok(Audited { tx, head })
    }

    /// Audits what `tx` read and commits it. The ledger lock is taken only
    /// now, after the reads, so it is held briefly.
    pub(super) async fn commit_reads(mut tx: Tx, audit: AuditEntry) -> Result<()> {
        let head = Self::lock_ledger(&mut tx).await?;
        Audited { tx, head }.commit(audit).await?;
        Ok(())
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
