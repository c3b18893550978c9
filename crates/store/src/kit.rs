//! What an application's storage is written with. An application keeps
//! its SQL in ordinary Rust mounted once per backend, as this crate does
//! (see ARCHITECTURE.md, "Adding an application"): its traits declared
//! with [`store_trait!`](crate::store_trait) (so [`Store`](crate::Store)
//! forwards them), implemented for [`SqliteStore`](crate::SqliteStore)
//! and [`PostgresStore`](crate::PostgresStore) through their
//! [`Backend`], every audited write through the backend's `audited()`
//! ([`Audited`]), every audited read ending in its `commit_reads`.

pub use crate::backend::{Audited, Backend, Tx};
pub use crate::rows::*;
pub use crate::schema::Migrations;
