//! What the SQL of both backends shares that does not depend on the backend.

use crate::StoreError;
use civic_core::time::Timestamp;

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
