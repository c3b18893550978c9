//! What a backend is: the contract `sql.rs` is written against. The SQL
//! is the same for both backends; how they open transactions, serialise
//! the audit ledger's and the exchange log's appends and pool their
//! connections is not, and is all there is to [`SqliteStore`](crate::SqliteStore)
//! and [`PostgresStore`](crate::PostgresStore) besides their DDL.

use civic_ledger::Frontier;
use std::future::Future;

pub type Tx<B> = sqlx::Transaction<'static, <B as Backend>::Db>;

pub trait Backend {
    /// The sqlx database.
    type Db: sqlx::Database;

    /// Where reads go (in WAL mode, SQLite's never wait for a writer).
    fn reads(&self) -> &sqlx::Pool<Self::Db>;

    /// Where a write outside a transaction goes (SQLite's one writer).
    fn writes(&self) -> &sqlx::Pool<Self::Db>;

    /// Opens a write transaction.
    fn begin(&self) -> impl Future<Output = crate::Result<Tx<Self>>> + Send;

    /// Opens a write transaction, as `begin` does, on a connection held
    /// for several in a row ([`Writer`](crate::Writer)).
    fn begin_on(
        conn: &mut sqlx::pool::PoolConnection<Self::Db>,
    ) -> impl Future<Output = crate::Result<sqlx::Transaction<'_, Self::Db>>> + Send;

    /// This backend's connection in a [`Writer`](crate::Writer) (one of
    /// the other backend's is a caller's mistake, refused).
    fn held(w: &mut crate::Writer) -> crate::Result<&mut sqlx::pool::PoolConnection<Self::Db>>;

    /// Takes the audit ledger's lock in `tx`, until it ends, and reads
    /// the ledger's head: appends are serialised, sequence numbers
    /// gapless.
    fn lock_ledger(tx: &mut Tx<Self>) -> impl Future<Output = crate::Result<Frontier>> + Send;

    /// Serialises the exchange log's appends until `tx` ends.
    fn lock_exchange_log(tx: &mut Tx<Self>) -> impl Future<Output = crate::Result<()>> + Send;
}

/// An audited write: a transaction that holds the ledger lock and
/// appends its audit record as it commits (`commit`, `commit_all`, per
/// backend in `sql.rs`). Every write a store audits goes through it
/// (open with the backend's `audited()`, change, check with
/// [`changed`](crate::kit::changed), commit), and every audited read ends
/// in the backend's `commit_reads`.
pub struct Audited<DB: sqlx::Database> {
    pub(crate) tx: sqlx::Transaction<'static, DB>,
    pub(crate) head: Frontier,
}

impl<DB: sqlx::Database> std::ops::Deref for Audited<DB> {
    type Target = sqlx::Transaction<'static, DB>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Audited<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
