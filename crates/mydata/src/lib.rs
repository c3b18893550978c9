//! Public MyData, an application of the platform: citizens send their own
//! administrative information from the institutions that hold it to the
//! agencies that need it, by consent (`transfers`); the catalogue of what
//! holders provide and the linkage agreements agencies consult on
//! (`catalogue`); the support centre of the institutions that take part
//! (`support`). Its storage is `store`; its credentials' cryptography is
//! the leaf crate `civic-credentials`.
//!
//! [`MyData`] is the application's service: the platform's [`Hub`] (which
//! it derefs to, for sign-in, the policy, audit, keys and nodes) and the
//! application's own state (the transfers' group commits, the holders'
//! client, the agencies' event wake-ups).

pub mod catalogue;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "http")]
pub mod routes;
pub mod store;
pub mod support;
pub mod transfers;

use civic_hub::Hub;
use std::sync::Arc;

/// Public MyData on a platform.
#[derive(Clone)]
pub struct MyData {
    hub: Hub,
    state: Arc<transfers::MydataState>,
}

impl MyData {
    /// The application on `hub`.
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            state: Arc::default(),
        }
    }

    /// The platform it stands on.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

impl std::ops::Deref for MyData {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        &self.hub
    }
}
