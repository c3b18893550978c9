//! The embedded backend: one SQLite file in WAL mode.
//!
//! SQLite has one writer at a time; an audited transaction starts with
//! `BEGIN IMMEDIATE`, which takes the write lock at once, so two audited
//! transactions never deadlock on upgrading a read lock.

use crate::shared::impl_backend;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::time::Duration;

/// Migrations, in order; never edit one that has shipped: add another.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE institutions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    machine_client BOOLEAN NOT NULL DEFAULT FALSE,
    totp_secret BLOB,
    totp_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step BIGINT,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX users_institution ON users(institution_id);
CREATE TABLE user_duties (
    user_id BIGINT NOT NULL REFERENCES users(id),
    duty TEXT NOT NULL,
    region TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, duty, region)
);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    second_factor BOOLEAN NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE audit_records (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_id BIGINT,
    actor_name TEXT,
    institution_id BIGINT,
    duty TEXT,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    subject TEXT,
    purpose TEXT,
    legal_basis TEXT,
    grant_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    client_addr TEXT,
    request_id TEXT
);
CREATE INDEX audit_by_actor ON audit_records(actor_id, seq);
CREATE INDEX audit_by_actor_name ON audit_records(actor_name, seq);
CREATE INDEX audit_by_subject ON audit_records(subject, seq);
CREATE INDEX audit_by_resource ON audit_records(resource, seq);
CREATE INDEX audit_by_time ON audit_records(at);
CREATE TABLE audit_nodes (
    seq BIGINT NOT NULL,
    level BIGINT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (seq, level)
);
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    frontier BLOB NOT NULL
);
INSERT INTO audit_head (id, frontier) VALUES (1, X'0000000000000000');
CREATE TABLE audit_tree_heads (
    tree_size BIGINT PRIMARY KEY,
    root_hash TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TABLE hub_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
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
    ),
    (
        2,
        r#"
CREATE TABLE node_enrolments (
    token_hash TEXT PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    node_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    signing_key TEXT NOT NULL,
    certificate TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL
);
"#,
    ),
];

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
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
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub async fn ping(&self) -> crate::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn migrate(&self) -> crate::Result<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Self::apply_migrations(&mut tx, MIGRATIONS).await?;
        tx.commit().await?;
        Ok(())
    }
    /// Opens a write transaction: `BEGIN IMMEDIATE` takes SQLite's write
    /// lock at once, so no two writers deadlock upgrading a read lock.
    async fn begin_tx(&self) -> crate::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Reads the ledger head; the transaction already holds the write lock.
    async fn lock_ledger(
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    ) -> crate::Result<civic_ledger::Frontier> {
        use sqlx::Row;
        let row = sqlx::query("SELECT frontier FROM audit_head WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
        civic_ledger::Frontier::from_bytes(&row.try_get::<Vec<u8>, _>("frontier")?)
            .ok_or_else(|| crate::StoreError::Corrupt("the ledger head is malformed".into()))
    }
}

impl_backend!(SqliteStore, sqlx::Sqlite);
