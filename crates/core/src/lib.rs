//! Domain types, errors and the access policy of Civic Data Hub.
//!
//! Everything here is pure: no I/O, no HTTP, no database. Values are parsed
//! once at the edge (`parse` constructors) so that every value inside the
//! program is valid; the policy decides who may do what from a principal's
//! duties, institution and assignment.
//!
//! This crate must never depend on storage, HTTP or the CLI.

/// Declares an `i64` identifier type (serialised as the bare number).
macro_rules! id_type {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Identifier of ", $what, ".")]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

/// Lets serde build a text newtype only through its `parse` (its
/// `#[serde(try_from = "String")]`).
macro_rules! through_parse {
    ($name:ident, $parse:expr) => {
        impl TryFrom<String> for $name {
            type Error = ValidationError;

            fn try_from(raw: String) -> Result<Self, ValidationError> {
                ($parse)(raw.as_str())
            }
        }
    };
}

pub mod audit;
pub mod error;
pub mod identity;
pub mod investigation;
pub mod policy;
#[cfg(feature = "openapi")]
pub mod schemas;
pub mod time;

pub use error::ValidationError;
