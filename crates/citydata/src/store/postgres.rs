//! City data's SQL (`sql/`), compiled for PostgreSQL.

// Both backends mount the same SQL, each with its own `Db` and `Engine`:
// the one file compiled twice is the point.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;
type Db = sqlx::Postgres;
type Engine = civic_store::PostgresStore;
