//! The deployment backend: PostgreSQL.
//!
//! An audited transaction locks the single ledger-head row (`FOR UPDATE`)
//! as its first statement, which serialises appends without blocking
//! plain reads.

use crate::shared::impl_backend;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// Migrations, in order; never edit one that has shipped: add another.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE institutions (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    institution_id BIGINT NOT NULL REFERENCES institutions(id),
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    machine_client BOOLEAN NOT NULL DEFAULT FALSE,
    totp_secret BYTEA,
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
    id BIGSERIAL PRIMARY KEY,
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
    hash BYTEA NOT NULL,
    PRIMARY KEY (seq, level)
);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    frontier BYTEA NOT NULL
);
INSERT INTO audit_head (id, frontier) VALUES (1, '\x0000000000000000'::bytea);
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
CREATE FUNCTION civic_append_only() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION 'the audit ledger is append-only';
END
$f$;
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION civic_append_only();
CREATE TRIGGER audit_nodes_append_only BEFORE UPDATE OR DELETE ON audit_nodes
    FOR EACH ROW EXECUTE FUNCTION civic_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION civic_append_only();
CREATE TRIGGER audit_nodes_no_truncate BEFORE TRUNCATE ON audit_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION civic_append_only();
CREATE TRIGGER audit_tree_heads_append_only BEFORE UPDATE OR DELETE ON audit_tree_heads
    FOR EACH ROW EXECUTE FUNCTION civic_append_only();
CREATE TRIGGER audit_tree_heads_no_truncate BEFORE TRUNCATE ON audit_tree_heads
    FOR EACH STATEMENT EXECUTE FUNCTION civic_append_only();
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
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> crate::Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        Self::with_options(options).await
    }

    /// Connects with every table in `schema`, creating the schema if needed:
    /// how tests get a fresh database of their own.
    pub async fn connect_in_schema(url: &str, schema: &str) -> crate::Result<Self> {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(crate::StoreError::BadUrl(format!("schema {schema:?}")));
        }
        let options = PgConnectOptions::from_str(url)?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        Self::with_options(options.options([("search_path", schema)])).await
    }

    async fn with_options(options: PgConnectOptions) -> crate::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub async fn ping(&self) -> crate::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn migrate(&self) -> crate::Result<()> {
        let mut tx = self.pool.begin().await?;
        // Two hubs starting at once must not both migrate.
        sqlx::query("SELECT pg_advisory_xact_lock(7410203)")
            .execute(&mut *tx)
            .await?;
        Self::apply_migrations(&mut tx, MIGRATIONS).await?;
        tx.commit().await?;
        Ok(())
    }
    /// Opens a transaction (READ COMMITTED).
    async fn begin_tx(&self) -> crate::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Locks the ledger head row until commit: appends are serialised,
    /// sequence numbers gapless.
    async fn lock_ledger(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    ) -> crate::Result<civic_ledger::Frontier> {
        use sqlx::Row;
        let row = sqlx::query("SELECT frontier FROM audit_head WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut **tx)
            .await?;
        civic_ledger::Frontier::from_bytes(&row.try_get::<Vec<u8>, _>("frontier")?)
            .ok_or_else(|| crate::StoreError::Corrupt("the ledger head is malformed".into()))
    }
}

impl_backend!(PostgresStore, sqlx::Postgres);
