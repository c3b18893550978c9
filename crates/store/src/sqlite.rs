//! The embedded backend: one SQLite file in WAL mode.
//!
//! SQLite has one writer at a time; an audited transaction starts with
//! `BEGIN IMMEDIATE`, which takes the write lock at once, so two audited
//! transactions never deadlock on upgrading a read lock. Write
//! transactions go through a pool of one connection: writers wait their
//! turn in its queue (woken when it is free) rather than in SQLite's busy
//! handler (which sleeps and polls, milliseconds at a time); reads use the
//! other pool and, in WAL mode, never wait for a writer.

use crate::backend::{Backend, Tx};
use crate::schema::{migrations, render, Dialect, Migrations};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::time::Duration;

/// How SQLite says what the schema needs.
const DIALECT: Dialect = Dialect {
    id: "INTEGER PRIMARY KEY AUTOINCREMENT",
    head_id: "INTEGER",
    bytes: "BLOB",
    empty_frontier: "X'0000000000000000'",
    append_only: r#"CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
    BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END;
CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes
    BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END;
CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes
    BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END;
CREATE TRIGGER audit_tree_heads_no_update BEFORE UPDATE ON audit_tree_heads
    BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END;
CREATE TRIGGER audit_tree_heads_no_delete BEFORE DELETE ON audit_tree_heads
    BEGIN SELECT RAISE(ABORT, 'the audit ledger is append-only'); END;
"#,
    exchange_append_only: r#"CREATE TRIGGER exchange_log_no_update BEFORE UPDATE ON exchange_log
    BEGIN SELECT RAISE(ABORT, 'the exchange log is append-only'); END;
CREATE TRIGGER exchange_log_no_delete BEFORE DELETE ON exchange_log
    BEGIN SELECT RAISE(ABORT, 'the exchange log is append-only'); END;
CREATE TRIGGER exchange_witnesses_no_update BEFORE UPDATE ON exchange_witnesses
    BEGIN SELECT RAISE(ABORT, 'the exchange log is append-only'); END;
CREATE TRIGGER exchange_witnesses_no_delete BEFORE DELETE ON exchange_witnesses
    BEGIN SELECT RAISE(ABORT, 'the exchange log is append-only'); END;
"#,
};

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path) -> crate::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed transaction survives a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Deleted content is overwritten, so that a destroyed data key
            // (crypto-shredding) is not left in free pages.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // A file in this process: nothing to test before each use (a
            // test is a round trip to the connection's thread).
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        // The one writer keeps a statement's undo pages (the statement
        // journal of a multi-row upsert) in memory, not in a temporary
        // file written and read back in every transaction: bounded by
        // what one statement changes, and a commit is as durable as
        // before.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.pragma("temp_store", "MEMORY"))
            .await?;
        Ok(Self { pool, writer })
    }

    pub async fn ping(&self) -> crate::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn scrub(&self, _table: &str) -> crate::Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Applies an application's migrations not yet applied.
    pub async fn migrate_application(&self, m: &Migrations) -> crate::Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Self::apply_application_migrations(&mut tx, m.application, &render(&DIALECT, m)).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn migrate(&self) -> crate::Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Self::apply_migrations(&mut tx, &migrations(&DIALECT)).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Backend for SqliteStore {
    type Db = sqlx::Sqlite;

    fn reads(&self) -> &sqlx::Pool<sqlx::Sqlite> {
        &self.pool
    }

    /// Where a write outside a transaction goes.
    fn writes(&self) -> &sqlx::Pool<sqlx::Sqlite> {
        &self.writer
    }

    /// Opens a write transaction: `BEGIN IMMEDIATE` takes SQLite's write
    /// lock at once, so no two writers deadlock upgrading a read lock.
    async fn begin(&self) -> crate::Result<Tx<Self>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn begin_on(
        conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    ) -> crate::Result<sqlx::Transaction<'_, sqlx::Sqlite>> {
        Ok(sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await?)
    }

    fn held(w: &mut crate::Writer) -> crate::Result<&mut sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        match w {
            crate::Writer::Sqlite(c) => Ok(c),
            crate::Writer::Postgres(_) => Err(crate::StoreError::Corrupt(
                "a PostgreSQL writer was given to SQLite".into(),
            )),
        }
    }

    /// Serialises the exchange log's appends: the transaction already
    /// holds SQLite's one write lock.
    async fn lock_exchange_log(_tx: &mut Tx<Self>) -> crate::Result<()> {
        Ok(())
    }

    /// Reads the ledger head; the transaction already holds the write lock.
    async fn lock_ledger(tx: &mut Tx<Self>) -> crate::Result<civic_ledger::Frontier> {
        let head: Vec<u8> = sqlx::query_scalar("SELECT frontier FROM audit_head WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
        crate::rows::frontier_from(&head)
    }
}

/// The SQL of every store (`sql.rs`), compiled for this backend.
// Both backends mount the same SQL, each with its own `Db` and `Engine`:
// the one file compiled twice is the point.
#[allow(clippy::duplicate_mod)]
#[path = "sql.rs"]
mod sql;
type Db = sqlx::Sqlite;
type Engine = SqliteStore;
