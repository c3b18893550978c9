//! What the SQL of every store shares that does not depend on the backend
//! (exported to applications' storage as `civic_store::kit`).

use crate::StoreError;
use civic_core::time::Timestamp;
use civic_ledger::Frontier;

pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub fn ts(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

/// A single bind value of either type, for the few queries that choose
/// their filter at run time.
pub enum Value {
    Int(i64),
    Text(String),
}

/// The ledger head as stored (its frontier's bytes).
pub fn frontier_from(bytes: &[u8]) -> crate::Result<Frontier> {
    Frontier::from_bytes(bytes).ok_or_else(|| corrupt("the ledger head is malformed"))
}

/// The one result of a batch of one.
pub fn only<T>(results: Vec<crate::Result<T>>) -> crate::Result<T> {
    results
        .into_iter()
        .next()
        .expect("one result per operation")
}

/// A list kept as JSON text in its column (items, item names).
pub fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("a list of plain values serialises")
}

/// A JSON column read back as its list; a value the store never writes
/// is corrupt.
pub fn from_json_text<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> crate::Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Checks that a change found its row (`rows` affected); else the refusal
/// `refused` names, and the transaction (dropped by the `?`) writes
/// nothing.
pub fn changed(rows: u64, refused: impl FnOnce() -> StoreError) -> crate::Result<()> {
    if rows == 0 {
        return Err(refused());
    }
    Ok(())
}

/// A unique violation as a conflict ("… already exists"); any other
/// database error as itself.
pub fn map_unique(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{} already exists", what()))
        }
        _ => StoreError::Database(err),
    }
}
