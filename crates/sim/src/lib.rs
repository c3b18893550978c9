//! `civic sim`: a synthetic city of people who live, work, shop, ride the
//! subway and meet; phones that ping towers; cards that pay at merchants;
//! an outbreak spreading through real contacts, with the truth recorded —
//! and the scorer that compares what the platform found with that truth.
//!
//! Everything is deterministic: the same seed and parameters give
//! byte-identical files, whatever the number of threads. Generation
//! streams to disk day by day with memory bounded by the population.

pub mod city;
pub mod geo;
pub mod out;
pub mod rng;
pub mod scenario;
pub mod score;
pub mod world;

pub use geo::BBox;
pub use scenario::Scenario;
pub use world::{generate, Params, Summary};
