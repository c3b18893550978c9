//! The entities' rows.

/// An entity as stored: its tenant, id, creation order and document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntity {
    pub tenant: String,
    pub id: String,
    pub seq: i64,
    pub doc: String,
}

/// One recorded attribute instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub tenant: String,
    pub entity_id: String,
    /// The entity's types then (a JSON array of IRIs).
    pub types: String,
    pub attr: String,
    /// Milliseconds: its observedAt, else when it was written.
    pub at: i64,
    /// The instance (JSON, the stored form).
    pub instance: String,
    /// When it was written (milliseconds), for the retention.
    pub recorded_at: i64,
}

civic_store::store_trait! {
/// What the broker's entity store does.
pub trait EntityStore {
    /// Every entity of every tenant, in creation order (the broker's index
    /// is rebuilt from them at start).
    fn load_entities(&self) -> crate::store::Result<Vec<crate::store::StoredEntity>>;
    /// Writes entities (inserted or replaced) and deletes others, in one
    /// transaction: all of them or none.
    fn write_entities(&self, put: &[crate::store::StoredEntity], delete: &[(String, String)], history: &[crate::store::HistoryRow]) -> crate::store::Result<()>;
    /// An entity's recorded instances, in time order: of `attrs` (IRIs)
    /// if given, with `from <= at < until`.
    fn history(&self, tenant: &str, entity_id: &str, attrs: Option<&[String]>, from: i64, until: i64) -> crate::store::Result<Vec<crate::store::HistoryRow>>;
    /// The ids of entities with history, of a tenant, in id order.
    fn history_entities(&self, tenant: &str) -> crate::store::Result<Vec<(String, String)>>;
    /// Forgets what was recorded before `before` (milliseconds), of every
    /// tenant; how many rows.
    fn prune_history(&self, before: i64) -> crate::store::Result<u64>;
    /// Forgets an entity's history (of one attribute, if given); how many rows.
    fn delete_history(&self, tenant: &str, entity_id: &str, attr: Option<&str>) -> crate::store::Result<u64>;
}
}

civic_store::store_trait! {
/// What the broker's subscription store does: every change audited in
/// its transaction.
pub trait SubscriptionStore {
    /// Every subscription of every tenant: (tenant, document).
    fn load_subscriptions(&self) -> crate::store::Result<Vec<(String, String)>>;
    /// Creates or replaces a subscription.
    fn put_subscription(&self, tenant: &str, id: &str, doc: &str, audit: civic_core::audit::AuditEntry) -> crate::store::Result<()>;
    /// Deletes a subscription; false if there was none (nothing audited).
    fn delete_subscription(&self, tenant: &str, id: &str, audit: civic_core::audit::AuditEntry) -> crate::store::Result<bool>;
}
}

civic_store::store_trait! {
/// What the store of context source registrations and of subscriptions
/// to them does (`kind` tells which): every change audited in its
/// transaction.
pub trait RegistrationStore {
    /// Every document of a kind, of every tenant: (tenant, document).
    fn load_registrations(&self, kind: &str) -> crate::store::Result<Vec<(String, String)>>;
    /// Creates or replaces one.
    fn put_registration(&self, kind: &str, tenant: &str, id: &str, doc: &str, audit: civic_core::audit::AuditEntry) -> crate::store::Result<()>;
    /// Deletes one; false if there was none (nothing audited).
    fn delete_registration(&self, kind: &str, tenant: &str, id: &str, audit: civic_core::audit::AuditEntry) -> crate::store::Result<bool>;
}
}

civic_store::store_trait! {
/// What the store of tenants' settings does: every change audited in its
/// transaction.
pub trait TenantStore {
    /// Every tenant's settings: (name, document), by name.
    fn load_tenants(&self) -> crate::store::Result<Vec<(String, String)>>;
    /// Creates or replaces a tenant's settings.
    fn put_tenant(&self, name: &str, doc: &str, audit: civic_core::audit::AuditEntry) -> crate::store::Result<()>;
}
}
