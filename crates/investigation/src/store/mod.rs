//! The investigation's storage: its traits and records (`traits`,
//! `types`) and their SQL (`sql/`), written once with `civic_store::kit`
//! and mounted for each backend (`sqlite.rs`, `postgres.rs`), so that
//! `civic_store::Store` serves them as it serves the platform's own.

mod postgres;
mod sqlite;
mod traits;
mod types;

pub use civic_store::{Result, StoreError};
pub use traits::*;
pub use types::*;
