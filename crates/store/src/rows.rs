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
