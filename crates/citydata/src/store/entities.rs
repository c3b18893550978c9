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
