//! The entities' rows.

/// An entity as stored: its tenant, id, creation order and document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntity {
    pub tenant: String,
    pub id: String,
    pub seq: i64,
    pub doc: String,
}

civic_store::store_trait! {
/// What the broker's entity store does.
pub trait EntityStore {
    /// Every entity of every tenant, in creation order (the broker's index
    /// is rebuilt from them at start).
    fn load_entities(&self) -> crate::store::Result<Vec<crate::store::StoredEntity>>;
    /// Writes entities (inserted or replaced) and deletes others, in one
    /// transaction: all of them or none.
    fn write_entities(&self, put: &[crate::store::StoredEntity], delete: &[(String, String)]) -> crate::store::Result<()>;
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
