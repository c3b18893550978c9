//! The deployment backend: PostgreSQL.
//!
//! An audited transaction locks the single ledger-head row (`FOR UPDATE`)
//! as its first statement, which serialises appends without blocking
//! plain reads.

use crate::backend::{Backend, Tx};
use crate::schema::{migrations, render, Dialect, Migrations};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// How PostgreSQL says what the schema needs.
const DIALECT: Dialect = Dialect {
    id: "BIGSERIAL PRIMARY KEY",
    head_id: "BIGINT",
    bytes: "BYTEA",
    empty_frontier: r"'\x0000000000000000'::bytea",
    append_only: r#"CREATE FUNCTION civic_append_only() RETURNS trigger LANGUAGE plpgsql AS $f$
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
    exchange_append_only: r#"CREATE TRIGGER exchange_log_append_only BEFORE UPDATE OR DELETE ON exchange_log
    FOR EACH ROW EXECUTE FUNCTION civic_append_only();
CREATE TRIGGER exchange_log_no_truncate BEFORE TRUNCATE ON exchange_log
    FOR EACH STATEMENT EXECUTE FUNCTION civic_append_only();
CREATE TRIGGER exchange_witnesses_append_only BEFORE UPDATE OR DELETE ON exchange_witnesses
    FOR EACH ROW EXECUTE FUNCTION civic_append_only();
CREATE TRIGGER exchange_witnesses_no_truncate BEFORE TRUNCATE ON exchange_witnesses
    FOR EACH STATEMENT EXECUTE FUNCTION civic_append_only();
"#,
};

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
            // No ping before each use (a round trip each time): a broken
            // connection fails its statement, and the pool replaces it.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub async fn ping(&self) -> crate::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn scrub(&self, table: &str) -> crate::Result<()> {
        if table.is_empty() || !table.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(crate::StoreError::Corrupt(format!("no table {table:?}")));
        }
        sqlx::query(&format!("VACUUM FULL {table}"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Applies an application's migrations not yet applied.
    pub async fn migrate_application(&self, m: &Migrations) -> crate::Result<()> {
        let mut tx = self.pool.begin().await?;
        // Two hubs starting at once must not both migrate.
        sqlx::query("SELECT pg_advisory_xact_lock(7410203)")
            .execute(&mut *tx)
            .await?;
        Self::apply_application_migrations(&mut tx, m.application, &render(&DIALECT, m)).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn migrate(&self) -> crate::Result<()> {
        let mut tx = self.pool.begin().await?;
        // Two hubs starting at once must not both migrate.
        sqlx::query("SELECT pg_advisory_xact_lock(7410203)")
            .execute(&mut *tx)
            .await?;
        Self::apply_migrations(&mut tx, &migrations(&DIALECT)).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Backend for PostgresStore {
    type Db = sqlx::Postgres;

    fn reads(&self) -> &sqlx::Pool<sqlx::Postgres> {
        &self.pool
    }

    /// Where a write outside a transaction goes.
    fn writes(&self) -> &sqlx::Pool<sqlx::Postgres> {
        &self.pool
    }

    /// Opens a transaction (READ COMMITTED).
    async fn begin(&self) -> crate::Result<Tx<Self>> {
        Ok(self.pool.begin().await?)
    }

    async fn begin_on(
        conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>,
    ) -> crate::Result<sqlx::Transaction<'_, sqlx::Postgres>> {
        Ok(sqlx::Connection::begin(&mut **conn).await?)
    }

    fn held(
        w: &mut crate::Writer,
    ) -> crate::Result<&mut sqlx::pool::PoolConnection<sqlx::Postgres>> {
        match w {
            crate::Writer::Postgres(c) => Ok(c),
            crate::Writer::Sqlite(_) => Err(crate::StoreError::Corrupt(
                "an SQLite writer was given to PostgreSQL".into(),
            )),
        }
    }

    /// Serialises the exchange log's appends until commit (a lock of its
    /// own, so that logging a message does not wait for the audit
    /// ledger's appends, nor they for it).
    async fn lock_exchange_log(tx: &mut Tx<Self>) -> crate::Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(7410204)")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Locks the ledger head row until commit: appends are serialised,
    /// sequence numbers gapless.
    async fn lock_ledger(tx: &mut Tx<Self>) -> crate::Result<civic_ledger::Frontier> {
        let head: Vec<u8> =
            sqlx::query_scalar("SELECT frontier FROM audit_head WHERE id = 1 FOR UPDATE")
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
type Db = sqlx::Postgres;
type Engine = PostgresStore;
