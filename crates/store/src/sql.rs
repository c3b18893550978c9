//! The SQL of every store, written once and compiled once per backend:
//! `sqlite.rs` and `postgres.rs` each mount this file (`#[path]`) beside
//! their `Db` (the sqlx database) and `Engine` (their store). Both
//! backends accept `$1`-style parameters, so the SQL text is the same;
//! what differs (transactions, locks, pools) is their [`Backend`].

use super::{Db, Engine};
use crate::rows::{changed, corrupt, frontier_from, map_unique, ts};
use crate::*;
use civic_core::audit::{AuditEntry, AuditQuery, AuditRecord, Outcome};
use civic_core::identity::{ApiTokenId, Duty, InstitutionId, UserId};
use civic_core::time::Timestamp;
use civic_exchange::{Direction, LogEntry, LogHead};
use civic_ledger::{record_leaf_hash, Frontier, Hash, NodeId, SignedTreeHead};
use futures_util::stream::{BoxStream, StreamExt};
use sqlx::Row;
use std::collections::HashMap;

use crate::backend::{Audited, Backend};
use crate::rows::Value;

type Tx = sqlx::Transaction<'static, Db>;
type DbRow = <Db as sqlx::Database>::Row;

#[path = "identity/sql.rs"]
mod identity;
#[path = "ledger/sql.rs"]
mod ledger;
#[path = "nodes/sql.rs"]
mod nodes;

impl Audited<Db> {
    /// Appends `entry` and commits: the change and its record, or neither.
    pub async fn commit(self, entry: AuditEntry) -> Result<AuditRecord> {
        let mut records = self.commit_all(vec![entry]).await?;
        Ok(records.pop().expect("one record per entry"))
    }

    /// Appends `entries` in order and commits (a group commit's).
    pub async fn commit_all(mut self, entries: Vec<AuditEntry>) -> Result<Vec<AuditRecord>> {
        let records = Engine::append_many_in(&mut self.tx, &mut self.head, entries).await?;
        self.tx.commit().await?;
        Ok(records)
    }
}

impl Engine {
    /// Opens an audited write. The ledger lock comes first, so writers
    /// never deadlock.
    pub async fn audited(&self) -> Result<Audited<Db>> {
        let mut tx = self.begin().await?;
        let head = Self::lock_ledger(&mut tx).await?;
        Ok(Audited { tx, head })
    }

    /// Audits what `tx` read and commits it. The ledger lock is taken only
    /// now, after the reads, so it is held briefly.
    pub async fn commit_reads(mut tx: Tx, audit: AuditEntry) -> Result<()> {
        let head = Self::lock_ledger(&mut tx).await?;
        Audited { tx, head }.commit(audit).await?;
        Ok(())
    }

    /// Applies an application's migrations not yet recorded (apart from
    /// the platform's, in `application_migrations`), inside `tx`.
    pub(super) async fn apply_application_migrations(
        tx: &mut Tx,
        application: &str,
        migrations: &[(i64, String)],
    ) -> Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS application_migrations (application TEXT NOT NULL, \
             version BIGINT NOT NULL, applied_at BIGINT NOT NULL, PRIMARY KEY (application, version))",
        )
        .execute(&mut **tx)
        .await?;
        for (version, sql) in migrations {
            let done = sqlx::query(
                "SELECT version FROM application_migrations WHERE application = $1 AND version = $2",
            )
            .bind(application)
            .bind(version)
            .fetch_optional(&mut **tx)
            .await?;
            if done.is_none() {
                sqlx::raw_sql(sql).execute(&mut **tx).await?;
                sqlx::query(
                    "INSERT INTO application_migrations (application, version, applied_at) VALUES ($1, $2, $3)",
                )
                .bind(application)
                .bind(version)
                .bind(Timestamp::now().micros())
                .execute(&mut **tx)
                .await?;
            }
        }
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
