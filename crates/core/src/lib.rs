//! Domain types, errors and the access policy of Civic Data Hub.
//!
//! Everything here is pure: no I/O, no HTTP, no database. Values are parsed
//! once at the edge (`parse` constructors) so that every value inside the
//! program is valid; the policy decides who may do what from a principal's
//! duties, institution and assignment.
//!
//! This crate must never depend on storage, HTTP or the CLI.

pub mod audit;
pub mod error;
pub mod identity;
pub mod investigation;
pub mod policy;
pub mod time;

pub use error::ValidationError;
