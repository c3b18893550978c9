//! What the SQL of both backends shares that does not depend on the backend.

use crate::StoreError;
use civic_core::time::Timestamp;
use civic_ledger::Frontier;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn ts(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

/// A single bind value of either type, for the few queries that choose
/// their filter at run time.
pub(crate) enum Value {
    Int(i64),
    Text(String),
}

/// The ledger head as stored (its frontier's bytes).
pub(crate) fn frontier_from(bytes: &[u8]) -> crate::Result<Frontier> {
    Frontier::from_bytes(bytes).ok_or_else(|| corrupt("the ledger head is malformed"))
}

/// The one result of a batch of one.
pub(crate) fn only<T>(results: Vec<crate::Result<T>>) -> crate::Result<T> {
    results
        .into_iter()
        .next()
        .expect("one result per operation")
}

/// A list kept as JSON text in its column (items, item names).
pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("a list of plain values serialises")
}

/// A JSON column read back as its list; a value the store never writes
/// is corrupt.
pub(crate) fn from_json_text<T: serde::de::DeserializeOwned>(
    what: &str,
    text: &str,
) -> crate::Result<T> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what}: {e}")))
}
