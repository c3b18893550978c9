//! The broker: tenants, each an in-memory index of its entities over the
//! durable copy in the store. Every write is staged (`Txn`), written to
//! the database, and only then made visible: a failed write changes
//! nothing, and nothing acknowledged is only in memory.
//!
//! Writes commit in groups: while one transaction commits, the writes
//! that arrive are staged on top of it (each sees what the ones before
//! it staged) and then commit together in the next one, so that 64
//! writers in flight cost a few transactions, not 64. If a transaction
//! fails, its writes and the ones staged on top of it fail, and nothing
//! of them becomes visible.

use crate::entity::Entity;
use crate::geo::{GeoQuery, Geometry};
use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use crate::query::{ScopeQ, TypeExpr, Q};
use crate::store::{EntityStore, StoredEntity};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// How long a tenant's committer keeps the write connection while
/// groups keep coming: long enough to spare the pool's round trips
/// between groups, short enough that other writers (SQLite has one
/// connection for them all) wait little.
const HOLD_WRITER: std::time::Duration = std::time::Duration::from_millis(20);

/// One tenant's entities, in creation order, with their indexes.
#[derive(Default)]
pub struct Entities {
    by_seq: BTreeMap<i64, Arc<Entity>>,
    seq_of: HashMap<String, i64>,
    index: crate::index::Indexes,
}

impl Entities {
    /// Adds or replaces the entity with this sequence number.
    fn put(&mut self, seq: i64, e: Arc<Entity>) {
        if let Some(old) = self.by_seq.get(&seq) {
            self.index.remove(seq, old);
        }
        self.index.insert(seq, &e);
        self.seq_of.insert(e.id.clone(), seq);
        self.by_seq.insert(seq, e);
    }

    fn remove(&mut self, id: &str) {
        if let Some(seq) = self.seq_of.remove(id) {
            if let Some(old) = self.by_seq.remove(&seq) {
                self.index.remove(seq, &old);
            }
        }
    }

    /// The entities that may match `filter` (all, or what the indexes
    /// narrow it to), in creation order.
    fn candidates<'a>(
        &'a self,
        filter: &Filter,
        ctx: &Context,
    ) -> Box<dyn Iterator<Item = &'a Arc<Entity>> + 'a> {
        let seqs = match &filter.ids {
            Some(ids) => {
                let mut s: Vec<i64> = ids
                    .iter()
                    .filter_map(|id| self.seq_of.get(id).copied())
                    .collect();
                s.sort_unstable();
                s.dedup();
                Some(s)
            }
            None => self.index.candidates(filter, ctx, self.by_seq.len()),
        };
        match seqs {
            Some(seqs) => Box::new(seqs.into_iter().filter_map(|s| self.by_seq.get(&s))),
            None => Box::new(self.by_seq.values()),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Entity>> {
        self.seq_of.get(id).and_then(|s| self.by_seq.get(s))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Entity>> {
        self.by_seq.values()
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }
}

pub struct Tenant {
    pub name: String,
    /// What is committed: what readers see.
    pub entities: tokio::sync::RwLock<Entities>,
    staging: tokio::sync::Mutex<Staging>,
}

impl Tenant {
    fn new(name: String, entities: Entities) -> Tenant {
        Tenant {
            name,
            entities: tokio::sync::RwLock::new(entities),
            staging: tokio::sync::Mutex::new(Staging::default()),
        }
    }
}

/// Writes staged on top of the committed entities, waiting for their
/// transaction.
#[derive(Default)]
struct Staging {
    /// The latest staged state of each entity a waiting write changed.
    overlay: HashMap<String, Staged>,
    /// Writes for the next transaction, in order.
    gathered: Vec<Pending>,
    /// Whether a committer is at work.
    committing: bool,
    /// Numbers the writes, so that a committed write's overlay entry is
    /// forgotten only if no later write changed it again.
    stage: u64,
}

struct Staged {
    stage: u64,
    seq: i64,
    entity: Option<Arc<Entity>>,
}

/// A staged write: its rows, what it makes visible once committed, the
/// changes it tells subscriptions of, and who waits for it.
struct Pending {
    rows: crate::store::Write,
    /// (id, stage, sequence number, the entity or none)
    visible: Vec<(String, u64, i64, Option<Arc<Entity>>)>,
    feed: Vec<crate::notify::Change>,
    done: tokio::sync::oneshot::Sender<Result<()>>,
}

/// The entities as a write starts from: committed, and staged by the
/// writes before it.
#[derive(Clone, Copy)]
struct View<'a> {
    base: &'a Entities,
    overlay: &'a HashMap<String, Staged>,
}

impl<'a> View<'a> {
    fn get(&self, id: &str) -> Option<&'a Arc<Entity>> {
        match self.overlay.get(id) {
            Some(s) => s.entity.as_ref(),
            None => self.base.get(id),
        }
    }

    /// The entity's creation sequence number, if it exists.
    fn seq_of(&self, id: &str) -> Option<i64> {
        match self.overlay.get(id) {
            Some(s) => s.entity.is_some().then_some(s.seq),
            None => self.base.seq_of.get(id).copied(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &'a Arc<Entity>> + 'a {
        let overlay = self.overlay;
        self.base
            .iter()
            .filter(move |e| !overlay.contains_key(&e.id))
            .chain(overlay.values().filter_map(|s| s.entity.as_ref()))
    }
}

/// Staged changes to one tenant: read through, written on commit.
pub struct Txn<'a> {
    base: View<'a>,
    changed: HashMap<String, Option<Entity>>,
    order: Vec<String>,
    /// History recorded beside what the changes record (instances of
    /// the past given through the temporal API).
    history: Vec<crate::store::HistoryRow>,
    pub now: i64,
    /// Whether entities of the shipped Smart Data Models are checked.
    pub check_models: bool,
}

/// One entity as a transaction had it before a change (`Txn::savepoint`).
pub struct Savepoint(Option<Option<Entity>>);

impl<'a> Txn<'a> {
    pub fn get(&self, id: &str) -> Option<&Entity> {
        match self.changed.get(id) {
            Some(staged) => staged.as_ref(),
            None => self.base.get(id).map(|e| e.as_ref()),
        }
    }

    /// The entities as this write started from (committed, and staged by
    /// the writes before it), in no particular order.
    pub fn before(&self) -> impl Iterator<Item = &Arc<Entity>> + '_ {
        self.base.iter()
    }

    /// The entity to change, copied from the committed one.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entity> {
        if !self.changed.contains_key(id) {
            let e = self.base.get(id)?.as_ref().clone();
            self.changed.insert(id.to_owned(), Some(e));
            self.order.push(id.to_owned());
        }
        self.changed.get_mut(id).and_then(Option::as_mut)
    }

    /// Records instances of the past in the same transaction.
    pub fn record(&mut self, rows: Vec<crate::store::HistoryRow>) {
        self.history.extend(rows);
    }

    /// Where one entity stands now, to go back to if a change to it is
    /// refused after it was made (`rollback`). Costs a copy only if this
    /// transaction changed the entity already.
    pub fn savepoint(&self, id: &str) -> Savepoint {
        Savepoint(self.changed.get(id).cloned())
    }

    /// Puts one entity back as it was at `point`.
    pub fn rollback(&mut self, id: &str, point: Savepoint) {
        match point.0 {
            Some(staged) => {
                self.changed.insert(id.to_owned(), staged);
            }
            None => {
                if self.changed.remove(id).is_some() {
                    self.order.retain(|o| o != id);
                }
            }
        }
    }

    /// Runs `change` on the entity `id`; if the entity it leaves breaks
    /// its Smart Data Model (`models`), puts it back and refuses.
    pub fn checked<T>(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        if !self.check_models {
            return change(self);
        }
        let point = self.savepoint(id);
        let out = change(self)?;
        if let Some(Err(refused)) = self.get(id).map(crate::models::check) {
            self.rollback(id, point);
            return Err(refused);
        }
        Ok(out)
    }

    /// Puts a whole entity, if it keeps to its Smart Data Model.
    pub fn put_checked(&mut self, e: Entity) -> Result<()> {
        if self.check_models {
            crate::models::check(&e)?;
        }
        self.put(e);
        Ok(())
    }

    pub fn put(&mut self, e: Entity) {
        if !self.changed.contains_key(&e.id) {
            self.order.push(e.id.clone());
        }
        self.changed.insert(e.id.clone(), Some(e));
    }

    /// Removes an entity; false if there was none.
    pub fn remove(&mut self, id: &str) -> bool {
        if self.get(id).is_none() {
            return false;
        }
        if !self.changed.contains_key(id) {
            self.order.push(id.to_owned());
        }
        self.changed.insert(id.to_owned(), None);
        true
    }
}

/// The instances a write adds to the temporal evolution: each one new or
/// changed, timed by its observedAt, else its modification; and each
/// one it deleted from an entity that stays, as an NGSI-LD null with its
/// `deletedAt` (what `timeproperty=deletedAt` reads back).
fn history_of(
    tenant: &str,
    committed: View,
    staged: &[(String, i64, Option<Entity>)],
) -> Vec<crate::store::HistoryRow> {
    let mut out = Vec::new();
    for (id, _, after) in staged {
        let Some(after) = after else { continue };
        let before = committed.get(id);
        let types = serde_json::to_string(&after.types).unwrap_or_else(|_| "[]".into());
        let mut record = |attr: &str, mut recorded: crate::entity::Instance, at: i64| {
            recorded.insert(
                "instanceId".into(),
                format!("urn:ngsi-ld:attribute:instance:{}", uuid::Uuid::new_v4()).into(),
            );
            out.push(crate::store::HistoryRow {
                tenant: tenant.to_owned(),
                entity_id: id.clone(),
                types: types.clone(),
                attr: attr.to_owned(),
                at,
                num: crate::store::number_of(&recorded),
                deleted: crate::store::is_deletion(&recorded),
                instance: serde_json::Value::Object(recorded).to_string(),
                recorded_at: crate::jsonld::now_ms(),
            });
        };
        for (attr, instances) in &after.attrs {
            let old = before.and_then(|b| b.attrs.get(attr));
            for i in instances {
                if old.is_some_and(|o| o.contains(i)) {
                    continue;
                }
                let at = i
                    .get("observedAt")
                    .and_then(serde_json::Value::as_str)
                    .and_then(crate::entity::parse_datetime)
                    .or_else(|| i.get("modifiedAt").and_then(serde_json::Value::as_i64))
                    .unwrap_or(after.modified_at);
                record(attr, i.clone(), at);
            }
        }
        for (attr, old) in before.map(|b| &b.attrs).into_iter().flatten() {
            let now = after.attrs.get(attr).map_or(&[][..], Vec::as_slice);
            for o in crate::entity::removed_instances(old, now) {
                let mut deleted = crate::entity::null_instance(o);
                deleted.insert(
                    "deletedAt".into(),
                    crate::entity::format_datetime(after.modified_at).into(),
                );
                record(attr, deleted, after.modified_at);
            }
        }
        // The scope has no history but its deletion (as the suite reads
        // it back: a Property of no scopes).
        if before.is_some_and(|b| !b.scope.is_empty()) && after.scope.is_empty() {
            let mut deleted = crate::entity::Instance::new();
            deleted.insert("type".into(), "Property".into());
            deleted.insert("value".into(), serde_json::Value::Array(Vec::new()));
            deleted.insert(
                "deletedAt".into(),
                crate::entity::format_datetime(after.modified_at).into(),
            );
            record(SCOPE, deleted, after.modified_at);
        }
    }
    out
}

/// The scope's IRI, as its deletion is recorded in the history.
const SCOPE: &str = "https://uri.etsi.org/ngsi-ld/scope";

/// What selects entities in a query.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub ids: Option<Vec<String>>,
    pub id_pattern: Option<regex::Regex>,
    pub types: Option<TypeExpr>,
    /// Entities with at least one of these attributes (IRIs).
    pub attrs: Option<Vec<String>>,
    pub q: Option<Q>,
    pub scope: Option<ScopeQ>,
    pub geo: Option<GeoQuery>,
}

impl Filter {
    pub fn matches(&self, e: &Entity, ctx: &Context) -> bool {
        if let Some(ids) = &self.ids {
            if !ids.contains(&e.id) {
                return false;
            }
        }
        if let Some(p) = &self.id_pattern {
            if !p.is_match(&e.id) {
                return false;
            }
        }
        if let Some(t) = &self.types {
            if !t.matches(&e.types) {
                return false;
            }
        }
        if let Some(a) = &self.attrs {
            if !a
                .iter()
                .any(|iri| e.attrs.get(iri).is_some_and(|v| !v.is_empty()))
            {
                return false;
            }
        }
        if let Some(s) = &self.scope {
            if !s.matches(&e.scope) {
                return false;
            }
        }
        if let Some(g) = &self.geo {
            let hit = e.attrs.get(&g.property).is_some_and(|instances| {
                instances.iter().any(|i| {
                    i.get("value")
                        .and_then(Geometry::from_geojson)
                        .is_some_and(|geom| g.matches(&geom))
                })
            });
            if !hit {
                return false;
            }
        }
        if let Some(q) = &self.q {
            if !q.matches(e, ctx) {
                return false;
            }
        }
        true
    }
}

/// `orderBy`: paths (`id`, `type`, `createdAt`, `modifiedAt`, or an
/// attribute's IRI then sub-attribute IRIs or members), each descending
/// or not.
#[derive(Debug, Clone, Default)]
pub struct OrderBy(pub Vec<(Vec<String>, bool)>);

impl OrderBy {
    /// An entity's sort keys, one per path.
    pub fn keys(&self, e: &Entity) -> Vec<Option<serde_json::Value>> {
        self.0.iter().map(|(p, _)| sort_key(e, p)).collect()
    }

    /// Two entities' order by their keys.
    pub fn compare(
        &self,
        a: &[Option<serde_json::Value>],
        b: &[Option<serde_json::Value>],
    ) -> std::cmp::Ordering {
        for (n, (_, desc)) in self.0.iter().enumerate() {
            let o = compare_keys(&a[n], &b[n]);
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }
}

fn sort_key(e: &Entity, path: &[String]) -> Option<serde_json::Value> {
    use serde_json::Value;
    let first = path.first()?;
    match (first.as_str(), path.len()) {
        ("id", 1) => return Some(Value::String(e.id.clone())),
        ("type", 1) => return e.types.first().map(|t| Value::String(t.clone())),
        ("createdAt", 1) => return Some(e.created_at.into()),
        ("modifiedAt", 1) => return Some(e.modified_at.into()),
        _ => {}
    }
    let instances = e.attrs.get(first)?;
    let mut cur = instances
        .iter()
        .find(|i| !i.contains_key("datasetId"))
        .or(instances.first())?;
    for step in &path[1..] {
        match cur.get(step)? {
            Value::Object(sub) => cur = sub,
            member => return Some(member.clone()),
        }
    }
    ["value", "object", "vocab", "json"]
        .iter()
        .find_map(|m| cur.get(*m).cloned())
}

fn compare_keys(
    a: &Option<serde_json::Value>,
    b: &Option<serde_json::Value>,
) -> std::cmp::Ordering {
    use serde_json::Value;
    use std::cmp::Ordering;
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Which page of a query's answer, in which order; `counted`: whether
/// the total is wanted (else the scan stops when the page is full).
#[derive(Debug, Clone, Copy)]
pub struct Paging<'a> {
    pub order: Option<&'a OrderBy>,
    pub offset: usize,
    pub limit: usize,
    pub counted: bool,
}

/// A page of a query's answer.
pub struct Page {
    pub entities: Vec<Arc<Entity>>,
    /// How many match in all.
    pub count: usize,
}

pub struct Broker {
    store: civic_store::Store,
    pub contexts: crate::jsonld::Contexts,
    /// Loaded from the store on first use.
    tenants: tokio::sync::OnceCell<RwLock<HashMap<String, Arc<Tenant>>>>,
    seq: AtomicI64,
    /// Where committed changes go (subscriptions' notifications).
    changes: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Vec<crate::notify::Change>>>,
    /// Whether entities of the shipped Smart Data Models are held to
    /// them (`city_check_models`; `models`).
    pub check_models: bool,
}

/// Whether a tenant may have this name: at most 64 letters, digits, '_',
/// '-' or '.' (`""` is the default tenant).
pub fn valid_tenant_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The tenant a request without `NGSILD-Tenant` uses; it always exists.
pub const DEFAULT_TENANT: &str = "";

impl Broker {
    /// The broker over its store; its entities are read on first use.
    /// `allow_private`: whether @contexts may be fetched from loopback and
    /// private addresses (`egress`).
    pub fn new(store: civic_store::Store, allow_private: bool) -> Broker {
        Broker {
            store,
            contexts: crate::jsonld::Contexts::new(
                std::time::Duration::from_secs(5),
                allow_private,
            ),
            tenants: tokio::sync::OnceCell::new(),
            seq: AtomicI64::new(0),
            changes: std::sync::OnceLock::new(),
            check_models: true,
        }
    }

    /// Sends every committed change to `feed` from now on; false if a
    /// feed was set already.
    pub fn set_change_feed(
        &self,
        feed: tokio::sync::mpsc::UnboundedSender<Vec<crate::notify::Change>>,
    ) -> bool {
        self.changes.set(feed).is_ok()
    }

    async fn tenants(&self) -> Result<&RwLock<HashMap<String, Arc<Tenant>>>> {
        self.tenants.get_or_try_init(|| self.load()).await
    }

    /// Every tenant's entities, from the store.
    async fn load(&self) -> Result<RwLock<HashMap<String, Arc<Tenant>>>> {
        let rows = self.store.load_entities().await?;
        let mut tenants: HashMap<String, Entities> = HashMap::new();
        tenants.entry(DEFAULT_TENANT.to_owned()).or_default();
        let mut max_seq = 0;
        let mut unreadable = 0usize;
        for row in rows {
            max_seq = max_seq.max(row.seq);
            let Ok(e) = serde_json::from_str::<Entity>(&row.doc) else {
                unreadable += 1;
                continue;
            };
            tenants
                .entry(row.tenant)
                .or_default()
                .put(row.seq, Arc::new(e));
        }
        if unreadable > 0 {
            tracing::error!(
                unreadable,
                "city data: entity documents that do not read were skipped"
            );
        }
        self.seq.fetch_max(max_seq, Ordering::Relaxed);
        Ok(RwLock::new(
            tenants
                .into_iter()
                .map(|(name, entities)| (name.clone(), Arc::new(Tenant::new(name, entities))))
                .collect(),
        ))
    }

    /// A tenant to read: it must exist.
    pub async fn tenant(&self, name: &str) -> Result<Arc<Tenant>> {
        self.tenants()
            .await?
            .read()
            .expect("not poisoned")
            .get(name)
            .cloned()
            .ok_or_else(|| NgsiError::no_tenant(format!("there is no tenant {name:?}")))
    }

    /// A tenant to write: made on first use, as the peers do.
    pub async fn tenant_for_write(&self, name: &str) -> Result<Arc<Tenant>> {
        if let Ok(t) = self.tenant(name).await {
            return Ok(t);
        }
        if !valid_tenant_name(name) {
            return Err(NgsiError::bad_data(
                "a tenant name has at most 64 letters, digits, '_', '-' or '.'",
            ));
        }
        let mut tenants = self.tenants().await?.write().expect("not poisoned");
        Ok(tenants
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Tenant::new(name.to_owned(), Entities::default())))
            .clone())
    }

    /// Runs `f` over a tenant's entities as staged so far; writes what it
    /// changed to the store (in the next group's transaction); then makes
    /// it visible and answers. If `f` or the store fails, nothing changes.
    pub async fn write<T>(&self, tenant: &str, f: impl FnOnce(&mut Txn) -> Result<T>) -> Result<T> {
        let tenant = self.tenant_for_write(tenant).await?;
        let (out, done, lead) = {
            let mut staging = tenant.staging.lock().await;
            let entities = tenant.entities.read().await;
            let staging = &mut *staging;
            let view = View {
                base: &entities,
                overlay: &staging.overlay,
            };
            let mut txn = Txn {
                base: view,
                changed: HashMap::new(),
                order: Vec::new(),
                history: Vec::new(),
                now: crate::jsonld::now_ms(),
                check_models: self.check_models,
            };
            let out = f(&mut txn)?;
            let Txn {
                mut changed,
                order,
                history: recorded,
                ..
            } = txn;
            if order.is_empty() && recorded.is_empty() {
                return Ok(out);
            }
            staging.stage += 1;
            let stage = staging.stage;
            let mut rows = crate::store::Write::default();
            let mut staged = Vec::with_capacity(order.len());
            for id in order {
                match changed.remove(&id).flatten() {
                    Some(e) => {
                        let seq = view
                            .seq_of(&id)
                            .unwrap_or_else(|| self.seq.fetch_add(1, Ordering::Relaxed) + 1);
                        let doc = serde_json::to_string(&e)
                            .map_err(|_| NgsiError::internal("an entity did not serialise"))?;
                        rows.put.push(StoredEntity {
                            tenant: tenant.name.clone(),
                            id: id.clone(),
                            seq,
                            doc,
                        });
                        staged.push((id, seq, Some(e)));
                    }
                    None => {
                        if view.seq_of(&id).is_some() {
                            rows.delete.push((tenant.name.clone(), id.clone()));
                        }
                        staged.push((id, 0, None));
                    }
                }
            }
            rows.history = history_of(&tenant.name, view, &staged);
            rows.history.extend(recorded);
            let mut visible = Vec::with_capacity(staged.len());
            let mut feed = Vec::with_capacity(staged.len());
            for (id, seq, e) in staged {
                let after = e.map(Arc::new);
                feed.push(crate::notify::Change {
                    tenant: tenant.name.clone(),
                    before: view.get(&id).cloned(),
                    after: after.clone(),
                });
                visible.push((id, stage, seq, after));
            }
            for (id, stage, seq, entity) in &visible {
                staging.overlay.insert(
                    id.clone(),
                    Staged {
                        stage: *stage,
                        seq: *seq,
                        entity: entity.clone(),
                    },
                );
            }
            let (tx, done) = tokio::sync::oneshot::channel();
            staging.gathered.push(Pending {
                rows,
                visible,
                feed,
                done: tx,
            });
            let lead = !std::mem::replace(&mut staging.committing, true);
            (out, done, lead)
        };
        if lead {
            self.commit_in_groups(tenant);
        }
        done.await
            .map_err(|_| NgsiError::internal("the write's transaction was lost"))??;
        Ok(out)
    }

    /// `write` of a change to one entity, which is refused (and changes
    /// nothing) if it leaves the entity outside its Smart Data Model.
    pub async fn write_entity<T>(
        &self,
        tenant: &str,
        id: &str,
        f: impl FnOnce(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        self.write(tenant, |txn| txn.checked(id, f)).await
    }

    /// Commits what writers stage on `tenant`, a group at a time, until
    /// nothing waits. A task of its own, so that a writer that goes away
    /// does not strand the others.
    fn commit_in_groups(&self, tenant: Arc<Tenant>) {
        let store = self.store.clone();
        let feed = self.changes.get().cloned();
        tokio::spawn(async move {
            // The write connection, kept from one group to the next for
            // at most `HOLD_WRITER` (SQLite has one: other writers wait
            // while it is held), and given back when nothing waits.
            let mut writer: Option<(civic_store::Writer, std::time::Instant)> = None;
            loop {
                let mut group = {
                    let mut staging = tenant.staging.lock().await;
                    if staging.gathered.is_empty() {
                        staging.committing = false;
                        return;
                    }
                    std::mem::take(&mut staging.gathered)
                };
                let rows: Vec<crate::store::Write> = group
                    .iter_mut()
                    .map(|p| std::mem::take(&mut p.rows))
                    .collect();
                if writer
                    .as_ref()
                    .is_some_and(|(_, since)| since.elapsed() > HOLD_WRITER)
                {
                    writer = None;
                }
                let started = std::time::Instant::now();
                let written = match &mut writer {
                    Some((w, _)) => store.write_entities_on(w, &rows).await,
                    None => match store.writer().await {
                        Ok(mut w) => {
                            let written = store.write_entities_on(&mut w, &rows).await;
                            writer = Some((w, std::time::Instant::now()));
                            written
                        }
                        Err(e) => Err(e),
                    },
                };
                tracing::debug!(
                    tenant = %tenant.name,
                    writes = rows.len(),
                    ms = started.elapsed().as_secs_f64() * 1000.0,
                    "a group of writes committed"
                );
                if let Err(e) = written {
                    drop(writer.take());
                    // What was staged on top of the group built on it:
                    // it fails too, and the overlay goes.
                    let err = NgsiError::from(e);
                    let later = {
                        let mut staging = tenant.staging.lock().await;
                        staging.overlay.clear();
                        staging.committing = false;
                        std::mem::take(&mut staging.gathered)
                    };
                    for p in group {
                        let _ = p.done.send(Err(err.clone()));
                    }
                    for p in later {
                        let _ = p.done.send(Err(NgsiError::internal(
                            "an earlier write this one built on failed; nothing was changed",
                        )));
                    }
                    return;
                }
                {
                    let mut entities = tenant.entities.write().await;
                    for p in &group {
                        for (id, _, seq, e) in &p.visible {
                            match e {
                                Some(e) => entities.put(*seq, e.clone()),
                                None => entities.remove(id),
                            }
                        }
                    }
                }
                {
                    let mut staging = tenant.staging.lock().await;
                    for p in &group {
                        for (id, stage, ..) in &p.visible {
                            if staging.overlay.get(id).is_some_and(|s| s.stage == *stage) {
                                staging.overlay.remove(id);
                            }
                        }
                    }
                }
                for p in group {
                    if let Some(feed) = &feed {
                        let _ = feed.send(p.feed);
                    }
                    let _ = p.done.send(Ok(()));
                }
            }
        });
    }

    /// One entity.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Arc<Entity>> {
        let t = self.tenant(tenant).await?;
        let entities = t.entities.read().await;
        entities
            .get(id)
            .cloned()
            .ok_or_else(|| NgsiError::not_found(format!("there is no entity {id}")))
    }

    /// The entities a filter selects, in creation order or `order`,
    /// `offset` and `limit` applied; `counted`: how many match in all
    /// (else `count` is only a lower bound).
    pub async fn query(
        &self,
        tenant: &str,
        filter: &Filter,
        ctx: &Context,
        paging: Paging<'_>,
    ) -> Result<Page> {
        let Paging {
            order,
            offset,
            limit,
            counted,
        } = paging;
        let t = self.tenant(tenant).await?;
        let entities = t.entities.read().await;
        if let Some(order) = order {
            let mut all: Vec<&Arc<Entity>> = entities
                .candidates(filter, ctx)
                .filter(|e| filter.matches(e, ctx))
                .collect();
            let keys: HashMap<&str, Vec<Option<serde_json::Value>>> =
                all.iter().map(|e| (e.id.as_str(), order.keys(e))).collect();
            all.sort_by(|a, b| order.compare(&keys[a.id.as_str()], &keys[b.id.as_str()]));
            let count = all.len();
            let entities = all.into_iter().skip(offset).take(limit).cloned().collect();
            return Ok(Page { entities, count });
        }
        let mut count = 0;
        let mut page = Vec::new();
        for e in entities.candidates(filter, ctx) {
            if filter.matches(e, ctx) {
                if count >= offset && page.len() < limit {
                    page.push(e.clone());
                }
                count += 1;
                // Without a count asked for, the page is the answer: the
                // scan stops when it is full.
                if !counted && page.len() == limit {
                    break;
                }
            }
        }
        Ok(Page {
            entities: page,
            count,
        })
    }

    /// Runs `f` with a reader of the tenant's entities by id (one view
    /// for all its reads: a join's).
    pub async fn read<T>(
        &self,
        tenant: &str,
        f: impl FnOnce(&dyn Fn(&str) -> Option<Arc<Entity>>) -> T,
    ) -> Result<T> {
        let t = self.tenant(tenant).await?;
        let entities = t.entities.read().await;
        Ok(f(&|id: &str| entities.get(id).cloned()))
    }

    /// Every entity of a tenant (for discovery), as a snapshot.
    pub async fn all(&self, tenant: &str) -> Result<Vec<Arc<Entity>>> {
        let t = self.tenant(tenant).await?;
        let entities = t.entities.read().await;
        Ok(entities.iter().cloned().collect())
    }
}
