//! The epidemic investigation (EISS), an application of the platform:
//! responses and their data keys, cases, the due procedure (request,
//! approver, police), collection from the holders' nodes, routes,
//! contacts, clusters, and the end of a response (crypto-shredding,
//! nodes' purges, the deletion certificate).
//!
//! Everything personal is sealed under its response's **data key**
//! (XChaCha20-Poly1305, bound to the row it belongs to) before it reaches
//! storage; the data key is sealed under the hub's sealing key and kept in
//! `response_keys`. Closing a response destroys that row in the same
//! transaction that deletes the rest and records the certificate: what
//! might linger (a backup, a free page) is ciphertext nobody can open.
//!
//! The analysis itself (stay points, windows, contacts, clusters) is in
//! `civic-eiss`; this crate reads, seals, decides and asks. Its storage is
//! `store`.
//!
//! [`Investigation`] is the application's service: the platform's [`Hub`]
//! (which it derefs to, for sign-in, the policy, audit, keys and nodes)
//! and the application's own state (responses' data keys in memory, the
//! cluster indexes, the cases' feeds, the collections' semaphore).

mod cases;
#[cfg(feature = "cli")]
pub mod cli;
mod clusters;
mod collect;
mod contacts;
mod notify;
mod requests;
mod responses;
#[cfg(feature = "http")]
pub mod routes;
pub mod store;

pub use cases::{CaseDetail, CaseFilter, CaseSummary, CollectionView, NewCaseRequest};
pub use clusters::{ClusterCase, ClusterRow, ClusterView, RoutesLoaded, TreeLink};
pub use contacts::{ContactUpdate, ContactView, Notice, OutboxView};
pub use notify::{NoticeSender, WebhookSender};
pub use requests::{DataRequestInput, RequestView, StepView};
pub use responses::{Certificate, CertificateBody, NodeDeletion, ResponseView};

use crate::store::ResponseStore;
use civic_core::audit::{AuditEntry, Outcome};
use civic_core::investigation::{CaseId, ResponseId};
use civic_eiss::clusters::ClusterIndex;
use civic_hub::{Hub, HubError, Result};
use civic_store::StoreError;
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The epidemic investigation on a platform.
#[derive(Clone)]
pub struct Investigation {
    hub: Hub,
    state: Arc<EissState>,
}

impl Investigation {
    /// The application on `hub` (its collections bounded by the hub's
    /// `collection_concurrency`).
    pub fn new(hub: Hub) -> Self {
        let state = Arc::new(EissState::new(hub.config.collection_concurrency));
        Self { hub, state }
    }

    /// The platform it stands on.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

impl std::ops::Deref for Investigation {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        &self.hub
    }
}

/// The purpose every grant of the investigation names, as nodes list it.
pub const PURPOSE: &str = "epidemic investigation";

/// What a response's data key is sealed for under the hub's sealing key.
/// (Not bound to the response: a sealed key moved to another response's
/// row opens, but no record of that response opens with it.)
const KEY_CONTEXT: &str = "response-key";

/// A response's data key, in memory only while the response is open.
pub(crate) struct DataKey([u8; 32]);

impl DataKey {
    fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// Encrypts `plain`, bound to `context`: sealed bytes moved to another
    /// row do not open.
    pub(crate) fn seal(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        civic_hub::secrets::seal(&self.0, context, plain)
    }

    pub(crate) fn open(&self, context: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        civic_hub::secrets::open(&self.0, context, sealed)
    }

    pub(crate) fn seal_json(&self, context: &str, value: &impl Serialize) -> Vec<u8> {
        self.seal(
            context,
            &serde_json::to_vec(value).expect("a sealed value serialises"),
        )
    }

    pub(crate) fn open_json<T: DeserializeOwned>(&self, context: &str, sealed: &[u8]) -> Result<T> {
        let plain = self.open(context, sealed).ok_or_else(|| {
            HubError::Store(StoreError::Corrupt(format!(
                "a sealed record ({context}) does not open with its response's key"
            )))
        })?;
        // serde's message may quote the record's content: only where and
        // what kind of error it is.
        serde_json::from_slice(&plain).map_err(|e| {
            HubError::Store(StoreError::Corrupt(format!(
                "a sealed record ({context}) is not what it should be ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            )))
        })
    }

    /// A keyed digest of an identifier: the same person gives the same
    /// tag within a response, and nothing gives the identifier back (nor
    /// links tags once the key is gone).
    pub(crate) fn tag(&self, value: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC takes any key length");
        mac.update(b"contact-tag:");
        mac.update(value.as_bytes());
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()[..16])
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        // Not left in freed memory.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// Something that changed in a case, for its live feed.
#[derive(Debug, Clone, Serialize)]
pub struct CaseEvent {
    pub case: CaseId,
    /// `collection`, `stay_points`, `contacts` or `cluster`.
    pub kind: &'static str,
    pub data: serde_json::Value,
}

/// The investigation's state on a hub: data keys of open responses, each
/// response's cluster index, the live feed.
pub struct EissState {
    /// `None` for a response whose key this hub destroyed: a load that
    /// raced the close cannot bring it back.
    keys: Mutex<HashMap<ResponseId, Option<Arc<DataKey>>>>,
    clusters: tokio::sync::Mutex<HashMap<ResponseId, Arc<tokio::sync::Mutex<ClusterIndex>>>>,
    feed: tokio::sync::broadcast::Sender<CaseEvent>,
    in_flight: Arc<tokio::sync::Semaphore>,
    client: tokio::sync::OnceCell<Arc<civic_hub::exchange::NodeClient>>,
    /// One lock a case, ordering the updates of its route and contacts.
    case_locks: tokio::sync::Mutex<HashMap<CaseId, Arc<tokio::sync::Mutex<()>>>>,
}

impl EissState {
    pub fn new(concurrency: usize) -> Self {
        Self {
            keys: Mutex::new(HashMap::new()),
            clusters: tokio::sync::Mutex::new(HashMap::new()),
            feed: tokio::sync::broadcast::channel(1024).0,
            in_flight: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
            client: tokio::sync::OnceCell::new(),
            case_locks: tokio::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl Investigation {
    /// The data key of an open response (unsealed once, then kept in
    /// memory); `Conflict` once it has been destroyed.
    pub(crate) async fn data_key(&self, response: ResponseId) -> Result<Arc<DataKey>> {
        let destroyed = || {
            HubError::Conflict(format!(
                "response {response} has ended: its data key was destroyed"
            ))
        };
        if let Some(k) = self
            .state
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&response)
        {
            return k.clone().ok_or_else(destroyed);
        }
        let sealed = self
            .store
            .response_key(response)
            .await?
            .ok_or_else(destroyed)?;
        let plain = self.keys().open(KEY_CONTEXT, &sealed).ok_or_else(|| {
            HubError::Store(StoreError::Corrupt(
                "a response's data key does not open with this hub's sealing key".into(),
            ))
        })?;
        let bytes: [u8; 32] = plain.try_into().map_err(|_| {
            HubError::Store(StoreError::Corrupt(
                "a response's data key is malformed".into(),
            ))
        })?;
        let key = Arc::new(DataKey(bytes));
        self.state
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(response)
            .or_insert(Some(key))
            .clone()
            .ok_or_else(destroyed)
    }

    /// Drops a destroyed data key from memory, for good.
    pub(crate) fn forget_data_key(&self, response: ResponseId) {
        self.state
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(response, None);
    }

    /// Subscribes to the live feed of every case (the caller filters).
    pub fn case_events(&self) -> tokio::sync::broadcast::Receiver<CaseEvent> {
        self.state.feed.subscribe()
    }

    pub(crate) fn publish(&self, case: CaseId, kind: &'static str, data: serde_json::Value) {
        // No subscriber is no error.
        let _ = self.state.feed.send(CaseEvent { case, kind, data });
    }

    /// An audit entry for the hub's own work (collecting, rebuilding).
    pub(crate) fn system_entry(&self, action: &str, resource: String) -> AuditEntry {
        let mut e = AuditEntry::new(action, resource, Outcome::Allowed);
        e.actor_name = Some("hub:collector".into());
        e.purpose = Some(PURPOSE.into());
        e
    }
}

/// The JSON of a value, for feeds and views.
pub(crate) fn json(value: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// A date field of a request: `YYYY-MM-DD`, years 2000–2099.
pub(crate) fn date_field(
    field: &'static str,
    raw: &str,
) -> std::result::Result<time::Date, civic_core::ValidationError> {
    civic_eiss::formats::parse_date(raw).ok_or_else(|| {
        civic_core::ValidationError::new(field, "must be a date YYYY-MM-DD (years 2000-2099)")
    })
}
