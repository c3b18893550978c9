//! An institution node's own data, and the engine that answers the
//! heaviest question of the platform: who was on these towers between
//! these times ("tower dump")?
//!
//! Population-wide data never leaves its holder: this crate is what runs
//! at the holder. It knows nothing of grants or HTTP; the node's server
//! checks the grant and then asks this store.

pub mod csv;
pub mod pings;

pub use pings::{ExposureAnswer, ExposureQuery, PingStore, StoreError};
