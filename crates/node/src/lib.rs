//! An institution node's own data, and the engine that answers the
//! heaviest question of the platform: who was at these places between
//! these times? For a telco, on towers ("tower dump"); for a card company,
//! at merchants; for a transit operator, at stations.
//!
//! Population-wide data never leaves its holder: this crate is what runs
//! at the holder. It knows nothing of grants or HTTP; the node's server
//! checks the grant and then asks the store.

pub mod csv;
pub mod events;
mod segment;
pub mod wal;

pub use wal::BatchId;

pub use events::{
    read_events, AppendReport, EventStore, ExposureAnswer, ExposureQuery, Kind, StoreError,
    TowerSelection,
};
