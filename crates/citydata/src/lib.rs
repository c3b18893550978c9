//! City data, an application of the platform: an NGSI-LD context broker
//! (ETSI GS CIM 009) for a city's sensors and services.
//!
//! - `jsonld`: the JSON-LD subset NGSI-LD needs, the core context built in;
//! - `entity`: entities parsed to their stored form and rendered back;
//! - `query`, `geo`: the selection languages, decided in code;
//! - `broker`: tenants and their in-memory index over the store;
//! - `ops`: the provision operations; `store`: the durable copy;
//! - `models`: the Smart Data Models shipped, their contexts built in;
//! - `csource`, `registry`: context source registrations and the
//!   subscriptions to them;
//! - `tenancy`: tenants' institutions and settings, who may do what;
//! - `routes` (feature `http`): the API under `/ngsi-ld/v1`.

pub mod broker;
pub mod csource;
pub mod egress;
pub mod entity;
pub mod federation;
pub mod geo;
pub mod index;
pub mod ingest;
pub mod join;
pub mod jsonld;
pub mod models;
pub mod notify;
pub mod ops;
pub mod problem;
pub mod query;
pub mod registry;
pub mod store;
pub mod subscription;
pub mod table;
pub mod temporal;
pub mod tenancy;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "http")]
pub mod routes;

use civic_hub::Hub;
use std::sync::Arc;

/// The city data service: the hub, and the broker on its store.
#[derive(Clone)]
pub struct CityData {
    hub: Hub,
    pub broker: Arc<broker::Broker>,
    /// The MQTT ingestion, once started.
    ingestion: Arc<std::sync::OnceLock<ingest::Ingestion>>,
    /// Subscriptions, loaded on first use.
    subs: Arc<notify::Subscriptions>,
    /// Context source registrations and subscriptions to them, loaded on
    /// first use.
    registry: Arc<registry::Registry>,
    /// Tenants' settings, loaded on first use.
    tenancy: Arc<tenancy::Tenancy>,
    /// Requests per minute of each caller with a token (`gate`).
    throttle: Arc<civic_hub::auth::Throttle>,
}

impl std::ops::Deref for CityData {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        &self.hub
    }
}

impl CityData {
    /// The broker on the hub's store (its tables migrated by
    /// `store::migrate`); tenants' entities are read on first use.
    pub fn new(hub: Hub) -> CityData {
        let mut broker = broker::Broker::new(hub.store.clone(), hub.config.city_egress_private);
        broker.check_models = hub.config.city_check_models;
        CityData {
            hub,
            broker: Arc::new(broker),
            ingestion: Arc::default(),
            subs: Arc::default(),
            registry: Arc::default(),
            tenancy: Arc::default(),
            throttle: Arc::default(),
        }
    }

    /// Starts MQTT ingestion as the configuration says (`mqtt_url` and
    /// `mqtt_mappings`), if it does; once.
    pub fn start_ingestion(&self) -> Result<(), String> {
        let (Some(url), Some(path)) = (&self.hub.config.mqtt_url, &self.hub.config.mqtt_mappings)
        else {
            return Ok(());
        };
        if self.ingestion.get().is_some() {
            return Ok(());
        }
        let mappings = ingest::Mappings::load(path)?;
        let running = self.ingest_mqtt(url, mappings)?;
        let _ = self.ingestion.set(running);
        Ok(())
    }

    /// What MQTT ingestion has done, if it runs.
    pub fn ingestion(&self) -> Option<ingest::StatsView> {
        self.ingestion.get().map(ingest::Ingestion::view)
    }
}
