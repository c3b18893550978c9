//! The entities' rows.

/// An entity as stored: its tenant, id, creation order and document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntity {
    pub tenant: String,
    pub id: String,
    pub seq: i64,
    pub doc: String,
}

/// One write's rows: entities inserted or replaced, entities deleted
/// (with their history), instances recorded. Several writes go to the
/// store in one transaction, each applied in turn (history, then puts,
/// then deletes), so that a batch means what its writes meant one by one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Write {
    pub put: Vec<StoredEntity>,
    /// (tenant, entity id)
    pub delete: Vec<(String, String)>,
    pub history: Vec<HistoryRow>,
}

/// One recorded attribute instance.
#[derive(Debug, Clone, PartialEq)]
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
    /// Its value, if a Property's value is a number (what aggregations
    /// sum).
    pub num: Option<f64>,
    /// A deletion (an NGSI-LD null with its `deletedAt`), which the
    /// hourly sums and the counts leave out.
    pub deleted: bool,
}

/// The span of the history's rollups: an hour (milliseconds). Every
/// recorded instance is summed into its attribute's hour (`Stats`), in
/// the transaction that records it, so that aggregations over whole
/// hours read one row an hour instead of every instance.
pub const ROLLUP_MS: i64 = 3_600_000;

/// What aggregations need of a span of one attribute's instances: how
/// many there are, how many are numbers, and the numbers' sums and
/// bounds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    pub n: i64,
    pub nn: i64,
    pub sum: f64,
    pub sumsq: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Stats {
    /// One instance's part.
    pub fn of(num: Option<f64>) -> Stats {
        Stats {
            n: 1,
            nn: num.is_some() as i64,
            sum: num.unwrap_or(0.0),
            sumsq: num.map_or(0.0, |x| x * x),
            min: num,
            max: num,
        }
    }

    /// Adds another span's.
    pub fn add(&mut self, o: &Stats) {
        self.n += o.n;
        self.nn += o.nn;
        self.sum += o.sum;
        self.sumsq += o.sumsq;
        self.min = match (self.min, o.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, o.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

civic_store::store_trait! {
/// What the broker's entity store does.
pub trait EntityStore {
    /// Every entity of every tenant, in creation order (the broker's index
    /// is rebuilt from them at start).
    fn load_entities(&self) -> crate::store::Result<Vec<crate::store::StoredEntity>>;
    /// Applies writes in turn, in one transaction: all of them or none.
    fn write_entities(&self, writes: &[crate::store::Write]) -> crate::store::Result<()>;
    /// `write_entities` on a connection held for several in a row.
    fn write_entities_on(&self, writer: &mut civic_store::Writer, writes: &[crate::store::Write]) -> crate::store::Result<()>;
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
    /// Whether an entity has recorded instances (of `attrs` if given)
    /// with `from <= at < until`.
    fn history_exists(&self, tenant: &str, entity_id: &str, attrs: Option<&[String]>, from: i64, until: i64) -> crate::store::Result<bool>;
    /// An attribute's first (or, if `last`, last) recorded instance with
    /// `from <= at < until`; without an attribute, any one instance.
    fn history_edge(&self, tenant: &str, entity_id: &str, attr: Option<&str>, from: i64, until: i64, last: bool) -> crate::store::Result<Option<crate::store::HistoryRow>>;
    /// The attributes of an entity with recorded instances, by name.
    fn history_attrs(&self, tenant: &str, entity_id: &str) -> crate::store::Result<Vec<String>>;
    /// An attribute's rollups: (hour, its stats) for the hours (`at`
    /// divided by `ROLLUP_MS`, rounded down) `from_hour <= hour < until_hour`, in order.
    fn rollups(&self, tenant: &str, entity_id: &str, attr: &str, from_hour: i64, until_hour: i64) -> crate::store::Result<Vec<(i64, crate::store::Stats)>>;
    /// An attribute's instances with `from <= at < until` (and `origin <= at`)
    /// summed per bucket of `(origin, period)`: (`(at - origin) / period`,
    /// its stats), in order.
    fn history_buckets(&self, tenant: &str, entity_id: &str, attr: &str, from: i64, until: i64, buckets: (i64, i64)) -> crate::store::Result<Vec<(i64, crate::store::Stats)>>;
    /// Forgets an attribute's instances of one datasetId (none: its
    /// default instances), its sums summed again; how many rows.
    fn delete_dataset(&self, tenant: &str, entity_id: &str, attr: &str, dataset: Option<&str>) -> crate::store::Result<u64>;
    /// An attribute's recorded instance by its `instanceId`.
    fn history_instance(&self, tenant: &str, entity_id: &str, attr: &str, instance_id: &str) -> crate::store::Result<Option<crate::store::HistoryRow>>;
    /// Replaces a recorded instance (`old`, as read) by `new`, or deletes it
    /// when `new` is none, its hours' sums summed again, in one
    /// transaction; false if it was no longer there.
    fn replace_instance(&self, old: &crate::store::HistoryRow, new: Option<&crate::store::HistoryRow>) -> crate::store::Result<bool>;
    /// Sums history recorded before rollups existed (migration 6) into
    /// them and lists its entities, once; how many rows.
    fn rebuild_rollups(&self) -> crate::store::Result<u64>;
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

/// Whether a recorded instance is a deletion: an NGSI-LD null with its
/// `deletedAt` (what `timeproperty=deletedAt` reads, and no count holds).
pub fn is_deletion(instance: &serde_json::Map<String, serde_json::Value>) -> bool {
    instance.contains_key("deletedAt")
}

/// A recorded instance's number: a Property's value, when it is one.
pub fn number_of(instance: &serde_json::Map<String, serde_json::Value>) -> Option<f64> {
    match instance.get("type").and_then(serde_json::Value::as_str) {
        None | Some("Property") => instance.get("value")?.as_f64(),
        Some(_) => None,
    }
}
