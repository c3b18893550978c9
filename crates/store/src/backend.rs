//! What a backend is: the contract `sql.rs` is written against. The SQL
//! is the same for both backends; how they open transactions, serialise
//! the audit ledger's and the exchange log's appends and pool their
//! connections is not, and is all there is to [`SqliteStore`](crate::SqliteStore)
//! and [`PostgresStore`](crate::PostgresStore) besides their DDL.

use civic_ledger::Frontier;
use std::future::Future;

pub(crate) type Tx<B> = sqlx::Transaction<'static, <B as Backend>::Db>;

pub(crate) trait Backend {
    /// The sqlx database.
    type Db: sqlx::Database;

    /// Where reads go (in WAL mode, SQLite's never wait for a writer).
    fn reads(&self) -> &sqlx::Pool<Self::Db>;

    /// Where a write outside a transaction goes (SQLite's one writer).
    fn writes(&self) -> &sqlx::Pool<Self::Db>;

    /// Opens a write transaction.
    fn begin(&self) -> impl Future<Output = crate::Result<Tx<Self>>> + Send;

    /// Takes the audit ledger's lock in `tx`, until it ends, and reads
    /// the ledger's head: appends are serialised, sequence numbers
    /// gapless.
    fn lock_ledger(tx: &mut Tx<Self>) -> impl Future<Output = crate::Result<Frontier>> + Send;

    /// Serialises the exchange log's appends until `tx` ends.
    fn lock_exchange_log(tx: &mut Tx<Self>) -> impl Future<Output = crate::Result<()>> + Send;
}
