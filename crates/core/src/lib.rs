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

/// Declares a string-valued state enum with `as_str`, `parse` and `ALL`.
macro_rules! states {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }

            /// Every value's name, in order (for errors and schemas).
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|s| s.as_str()).collect()
            }

            /// The value named exactly `raw`, as the API spells it.
            pub fn from_name(raw: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|s| s.as_str() == raw)
            }

            pub fn parse(raw: &str) -> Result<Self, $crate::ValidationError> {
                let raw = raw.trim().replace('-', "_");
                Self::ALL
                    .iter()
                    .copied()
                    .find(|s| s.as_str() == raw)
                    .ok_or_else(|| {
                        $crate::ValidationError::new(
                            stringify!($name),
                            format!("unknown value; expected one of {}", Self::names().join(", ")),
                        )
                    })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod audit;
pub mod error;
pub mod identity;
pub mod investigation;
pub mod mydata;
pub mod policy;
#[cfg(feature = "openapi")]
pub mod schemas;
pub mod time;

pub use error::ValidationError;
