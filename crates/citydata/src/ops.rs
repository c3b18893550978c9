//! The entity operations of CIM 009 §5.6 (provision) over the broker:
//! each parses its payload in the request's context, stages its change
//! and commits it whole, or answers why not.

use crate::broker::Txn;
use crate::entity::{
    dataset_of, is_uri, keep_created, parse_attribute, parse_entity, parse_fragment,
    parse_instance, Entity, Instance, Nulls, DELETE_MARK,
};
use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use crate::CityData;
use serde_json::{Map, Value};

/// Which attributes an update changed, and why the others were not.
#[derive(Debug, Default, Clone)]
pub struct UpdateResult {
    pub updated: Vec<String>,
    pub not_updated: Vec<(String, String)>,
}

impl UpdateResult {
    /// The UpdateResult (§5.2.18), attributes by IRI.
    pub fn body(&self) -> Value {
        serde_json::json!({
            "updated": self.updated,
            "notUpdated": self.not_updated.iter().map(|(a, why)| serde_json::json!({
                "attributeName": a, "reason": why
            })).collect::<Vec<_>>(),
        })
    }
}

/// One entity's outcome in a batch.
pub type BatchResult = Vec<(String, Result<bool>)>;

fn not_found(id: &str) -> NgsiError {
    NgsiError::not_found(format!("there is no entity {id}"))
}

/// Puts instances into an attribute: each replaces the one with its
/// datasetId (keeping its createdAt), or joins.
fn put_instances(target: &mut Vec<Instance>, new: Vec<Instance>) {
    for mut i in new {
        if i.contains_key(DELETE_MARK) {
            target.retain(|old| dataset_of(old) != dataset_of(&i));
            continue;
        }
        match target
            .iter_mut()
            .find(|old| dataset_of(old) == dataset_of(&i))
        {
            Some(old) => {
                keep_created(&mut i, old);
                *old = i;
            }
            None => target.push(i),
        }
    }
}

/// Merges `patch` into `old` (merge-patch: members overlay, sub-attributes
/// merge, nulls delete).
fn merge_instance(old: &mut Instance, patch: Instance, now: i64) {
    let kind_changes = patch.get("type") != old.get("type");
    if kind_changes {
        for m in [
            "value",
            "object",
            "languageMap",
            "vocab",
            "valueList",
            "objectList",
            "json",
        ] {
            old.remove(m);
        }
    }
    for (k, v) in patch {
        match (k.as_str(), v) {
            ("createdAt", _) => {}
            (_, Value::Null) => {
                old.remove(&k);
            }
            (key, Value::Object(sub)) if !is_core_member(key) => match old.get_mut(&k) {
                Some(Value::Object(existing)) => merge_instance(existing, sub, now),
                _ => {
                    old.insert(k, Value::Object(sub));
                }
            },
            (_, v) => {
                old.insert(k, v);
            }
        }
    }
    old.insert("modifiedAt".into(), now.into());
}

fn is_core_member(k: &str) -> bool {
    matches!(
        k,
        "type"
            | "value"
            | "object"
            | "languageMap"
            | "vocab"
            | "valueList"
            | "objectList"
            | "json"
            | "datasetId"
            | "observedAt"
            | "unitCode"
            | "objectType"
            | "createdAt"
            | "modifiedAt"
    )
}

/// Adds a fragment's types (never removes one).
fn add_types(e: &mut Entity, types: Option<Vec<String>>) {
    for t in types.unwrap_or_default() {
        if !e.types.contains(&t) {
            e.types.push(t);
        }
    }
}

/// Applies one attribute of a fragment: `None` deletes it; instances
/// replace theirs (by datasetId), join, or (NGSI-LD null) delete theirs.
fn apply_attr(e: &mut Entity, name: &str, instances: Option<Vec<Instance>>) {
    let Some(instances) = instances else {
        e.attrs.remove(name);
        return;
    };
    let target = e.attrs.entry(name.to_owned()).or_default();
    put_instances(target, instances);
    if target.is_empty() {
        e.attrs.remove(name);
    }
}

/// Append Entity Attributes (§5.6.3): the attributes given replace or
/// join theirs (with noOverwrite, existing ones are left and reported);
/// types are added; a scope given replaces the entity's (with
/// noOverwrite, its scopes are added).
fn append_into(
    txn: &mut Txn,
    id: &str,
    body: &Value,
    ctx: &Context,
    overwrite: bool,
    nulls: Nulls,
) -> Result<UpdateResult> {
    let now = txn.now;
    let f = parse_fragment(body, ctx, now, nulls)?;
    if f.id.as_deref().is_some_and(|given| given != id) {
        return Err(NgsiError::bad_data("the payload's id is not the entity's"));
    }
    let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
    let mut result = UpdateResult::default();
    add_types(e, f.types);
    match f.scope {
        Some(scope) if overwrite => e.scope = scope,
        scope => {
            for s in scope.unwrap_or_default() {
                if !e.scope.contains(&s) {
                    e.scope.push(s);
                }
            }
        }
    }
    for (name, instances) in f.attrs {
        let exists = |e: &Entity, i: &Instance| {
            e.attrs
                .get(&name)
                .is_some_and(|t| t.iter().any(|o| dataset_of(o) == dataset_of(i)))
        };
        if !overwrite
            && instances
                .as_ref()
                .is_some_and(|is| is.iter().any(|i| exists(e, i)))
        {
            result.not_updated.push((
                name,
                "the attribute exists and noOverwrite was asked".into(),
            ));
            continue;
        }
        apply_attr(e, &name, instances);
        result.updated.push(name);
    }
    e.modified_at = now;
    Ok(result)
}

/// Update Entity Attributes (§5.6.2, as the suite reads v1.8): the
/// attributes given replace their instances or join; types are added; a
/// scope replaces the entity's only if it has one.
fn update_into(txn: &mut Txn, id: &str, body: &Value, ctx: &Context) -> Result<UpdateResult> {
    let now = txn.now;
    let f = parse_fragment(body, ctx, now, Nulls::Delete)?;
    if f.id.as_deref().is_some_and(|given| given != id) {
        return Err(NgsiError::bad_data("the payload's id is not the entity's"));
    }
    let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
    let mut result = UpdateResult::default();
    add_types(e, f.types);
    if let Some(scope) = f.scope {
        if e.scope.is_empty() {
            result
                .not_updated
                .push(("scope".into(), "the entity has no scope to update".into()));
        } else {
            e.scope = scope;
        }
    }
    for (name, instances) in f.attrs {
        apply_attr(e, &name, instances);
        result.updated.push(name);
    }
    e.modified_at = now;
    Ok(result)
}

/// Merge Entity (§5.6.17): members overlay, NGSI-LD nulls delete.
fn merge_into(txn: &mut Txn, id: &str, body: &Value, ctx: &Context, nulls: Nulls) -> Result<()> {
    let now = txn.now;
    let f = parse_fragment(body, ctx, now, nulls)?;
    if f.id.as_deref().is_some_and(|given| given != id) {
        return Err(NgsiError::bad_data("the payload's id is not the entity's"));
    }
    let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
    add_types(e, f.types);
    if let Some(scope) = f.scope {
        e.scope = scope;
    }
    for (name, instances) in f.attrs {
        let Some(new) = instances else {
            e.attrs.remove(&name);
            continue;
        };
        let target = e.attrs.entry(name.clone()).or_default();
        for i in new {
            if i.contains_key(DELETE_MARK) {
                target.retain(|o| dataset_of(o) != dataset_of(&i));
                continue;
            }
            match target.iter_mut().find(|o| dataset_of(o) == dataset_of(&i)) {
                Some(old) => merge_instance(old, i, now),
                None => target.push(i),
            }
        }
        if target.is_empty() {
            e.attrs.remove(&name);
        }
    }
    e.modified_at = now;
    Ok(())
}

fn replace_into(txn: &mut Txn, id: &str, body: &Value, ctx: &Context) -> Result<()> {
    let now = txn.now;
    let f = parse_fragment(body, ctx, now, Nulls::Refuse)?;
    if f.id.as_deref().is_some_and(|given| given != id) {
        return Err(NgsiError::bad_data("the payload's id is not the entity's"));
    }
    let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
    if let Some(types) = f.types {
        e.types = types;
    }
    e.scope = f.scope.unwrap_or_default();
    e.attrs = f
        .attrs
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    e.modified_at = now;
    Ok(())
}

/// An entity from a batch item, with its id for the error report.
fn batch_entity(item: &Value, ctx: &Context, now: i64) -> (String, Result<Entity>) {
    let id = item
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    (id, parse_entity(item, ctx, now))
}

fn batch_items(body: &Value) -> Result<&Vec<Value>> {
    match body.as_array() {
        Some(items) if !items.is_empty() => Ok(items),
        Some(_) => Err(NgsiError::bad_data("the batch is empty")),
        None => Err(NgsiError::bad_data("a batch is a JSON array")),
    }
}

/// Each batch item's `@context` (a JSON-LD batch's entities carry their
/// own), or why it has none: that item fails, the others go on.
pub type ItemContexts = Vec<Result<std::sync::Arc<Context>>>;

fn item_ctx(ctxs: &ItemContexts, n: usize) -> Result<&std::sync::Arc<Context>> {
    match ctxs.get(n).or(ctxs.last()) {
        Some(Ok(c)) => Ok(c),
        Some(Err(e)) => Err(e.clone()),
        None => Err(NgsiError::internal("a batch item without a context")),
    }
}

fn item_id(item: &Value) -> String {
    item.get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

impl CityData {
    /// Runs a change to one existing entity of an existing tenant.
    async fn on_entity<T>(
        &self,
        tenant: &str,
        id: &str,
        change: impl FnOnce(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        self.broker.write_entity(tenant, id, change).await
    }

    pub async fn create_entity(&self, tenant: &str, body: &Value, ctx: &Context) -> Result<String> {
        let e = parse_entity(body, ctx, crate::jsonld::now_ms())?;
        let id = e.id.clone();
        self.broker
            .write(tenant, |txn| {
                if txn.get(&e.id).is_some() {
                    return Err(NgsiError::exists(format!("the entity {} exists", e.id)));
                }
                let mut e = e;
                e.created_at = txn.now;
                e.modified_at = txn.now;
                txn.put_checked(e)
            })
            .await?;
        Ok(id)
    }

    pub async fn delete_entity(&self, tenant: &str, id: &str) -> Result<()> {
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| {
                if txn.remove(id) {
                    Ok(())
                } else {
                    Err(not_found(id))
                }
            })
            .await
    }

    pub async fn append_attrs(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
        overwrite: bool,
    ) -> Result<UpdateResult> {
        self.on_entity(tenant, id, |txn| {
            append_into(txn, id, body, ctx, overwrite, Nulls::Delete)
        })
        .await
    }

    pub async fn update_attrs(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<UpdateResult> {
        self.on_entity(tenant, id, |txn| update_into(txn, id, body, ctx))
            .await
    }

    pub async fn merge_entity(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        self.on_entity(tenant, id, |txn| {
            merge_into(txn, id, body, ctx, Nulls::Delete)
        })
        .await
    }

    pub async fn replace_entity(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        self.on_entity(tenant, id, |txn| replace_into(txn, id, body, ctx))
            .await
    }

    /// PATCH /entities/{id}/attrs/{attr}: the members given overlay the
    /// instance (of `datasetId`, if the payload names one).
    pub async fn partial_update_attr(
        &self,
        tenant: &str,
        id: &str,
        attr: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        let iri = ctx.expand(attr);
        self.broker
            .write_entity(tenant, id, |txn| {
                let now = txn.now;
                let obj = body
                    .as_object()
                    .ok_or_else(|| NgsiError::bad_data("the payload must be an object"))?;
                let mut fragment: Map<String, Value> = obj.clone();
                fragment.remove("@context");
                let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
                let instances = e.attrs.get_mut(&iri).ok_or_else(|| {
                    NgsiError::not_found(format!("the entity has no attribute {attr}"))
                })?;
                let dataset = fragment
                    .get("datasetId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let at = instances
                    .iter()
                    .position(|i| dataset_of(i) == dataset.as_deref())
                    .ok_or_else(|| {
                        NgsiError::not_found(format!("attribute {attr} has no such datasetId"))
                    })?;
                if fragment.is_empty() {
                    return Err(NgsiError::bad_data("the fragment is empty"));
                }
                let old = &instances[at];
                if let Some(t) = fragment.get("type") {
                    if Some(t) != old.get("type") {
                        return Err(NgsiError::bad_data(format!(
                            "attribute {attr} is a {}; a partial update keeps its type",
                            old.get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("Property")
                        )));
                    }
                }
                // The instance as it would be, checked whole: the old
                // members with the fragment's over them (names expanded,
                // so that a sub-attribute given by its short name
                // replaces the stored one).
                let mut merged = old.clone();
                merged.remove("createdAt");
                merged.remove("modifiedAt");
                for (k, v) in fragment {
                    let key = if is_core_member(&k) {
                        k
                    } else {
                        ctx.expand(&k)
                    };
                    merged.insert(key, v);
                }
                let mut new =
                    parse_instance(&iri, &Value::Object(merged), ctx, now, Nulls::Delete)?;
                if new.contains_key(DELETE_MARK) {
                    instances.remove(at);
                    if instances.is_empty() {
                        e.attrs.remove(&iri);
                    }
                } else {
                    keep_created(&mut new, &instances[at]);
                    new.retain(|_, v| !v.is_null());
                    instances[at] = new;
                }
                e.modified_at = now;
                Ok(())
            })
            .await
    }

    /// PUT /entities/{id}/attrs/{attr}: the attribute replaced.
    pub async fn replace_attr(
        &self,
        tenant: &str,
        id: &str,
        attr: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        let iri = ctx.expand(attr);
        self.broker
            .write_entity(tenant, id, |txn| {
                let now = txn.now;
                let mut body = body.clone();
                if let Some(o) = body.as_object_mut() {
                    o.remove("@context");
                }
                let new = parse_attribute(&iri, &body, ctx, now, Nulls::Refuse)?;
                let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
                let target = e.attrs.get_mut(&iri).ok_or_else(|| {
                    NgsiError::not_found(format!("the entity has no attribute {attr}"))
                })?;
                put_instances(target, new);
                e.modified_at = now;
                Ok(())
            })
            .await
    }

    pub async fn delete_attr(
        &self,
        tenant: &str,
        id: &str,
        attr: &str,
        dataset: Option<&str>,
        all: bool,
        ctx: &Context,
    ) -> Result<()> {
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        if attr == "scope" {
            return self
                .broker
                .write_entity(tenant, id, |txn| {
                    let now = txn.now;
                    let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
                    if e.scope.is_empty() {
                        return Err(NgsiError::not_found("the entity has no scope"));
                    }
                    e.scope.clear();
                    e.modified_at = now;
                    Ok(())
                })
                .await;
        }
        let iri = ctx.expand(attr);
        self.broker
            .write_entity(tenant, id, |txn| {
                let now = txn.now;
                let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
                let missing =
                    || NgsiError::not_found(format!("the entity has no attribute {attr}"));
                let instances = e.attrs.get_mut(&iri).ok_or_else(missing)?;
                if all {
                    instances.clear();
                } else {
                    let before = instances.len();
                    instances.retain(|i| dataset_of(i) != dataset);
                    if instances.len() == before {
                        return Err(missing());
                    }
                }
                if instances.is_empty() {
                    e.attrs.remove(&iri);
                }
                e.modified_at = now;
                Ok(())
            })
            .await
    }

    /// Batch create: each entity created or reported; the created are
    /// written together.
    pub async fn batch_create(
        &self,
        tenant: &str,
        body: &Value,
        ctxs: &ItemContexts,
    ) -> Result<BatchResult> {
        let items = batch_items(body)?;
        self.broker
            .write(tenant, |txn| {
                let now = txn.now;
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| {
                        let (id, parsed) = match item_ctx(ctxs, n) {
                            Ok(ctx) => batch_entity(item, ctx, now),
                            Err(e) => (item_id(item), Err(e)),
                        };
                        let r = parsed.and_then(|e| {
                            if txn.get(&e.id).is_some() {
                                return Err(NgsiError::exists(format!(
                                    "the entity {} exists",
                                    e.id
                                )));
                            }
                            txn.put_checked(e).map(|_| true)
                        });
                        (id, r)
                    })
                    .collect())
            })
            .await
    }

    /// Batch upsert: created if new (`true`), else replaced or (with
    /// `update`) appended to (`false`).
    pub async fn batch_upsert(
        &self,
        tenant: &str,
        body: &Value,
        ctxs: &ItemContexts,
        update: bool,
    ) -> Result<BatchResult> {
        let items = batch_items(body)?;
        self.broker
            .write(tenant, |txn| {
                let now = txn.now;
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| {
                        let ctx = match item_ctx(ctxs, n) {
                            Ok(ctx) => ctx,
                            Err(e) => return (item_id(item), Err(e)),
                        };
                        let (id, parsed) = batch_entity(item, ctx, now);
                        let r = parsed.and_then(|e| match txn.get(&e.id).is_some() {
                            false => txn.put_checked(e).map(|_| true),
                            true if update => txn
                                .checked(&e.id, |txn| {
                                    append_into(txn, &e.id, item, ctx, true, Nulls::Delete)
                                })
                                .map(|_| false),
                            true => {
                                let created = txn.get(&e.id).map(|o| o.created_at).unwrap_or(now);
                                let mut e = e;
                                e.created_at = created;
                                txn.put_checked(e).map(|_| false)
                            }
                        });
                        (id, r)
                    })
                    .collect())
            })
            .await
    }

    /// Batch update: each entity's attributes appended (or, with
    /// `noOverwrite`, only the new ones).
    pub async fn batch_update(
        &self,
        tenant: &str,
        body: &Value,
        ctxs: &ItemContexts,
        overwrite: bool,
    ) -> Result<BatchResult> {
        self.batch_on_existing(tenant, body, ctxs, |txn, id, item, ctx| {
            let r = append_into(txn, id, item, ctx, overwrite, Nulls::DeleteMarked)?;
            if r.not_updated.is_empty() {
                Ok(false)
            } else {
                Err(NgsiError::bad_data("some attributes were not updated"))
            }
        })
        .await
    }

    pub async fn batch_merge(
        &self,
        tenant: &str,
        body: &Value,
        ctxs: &ItemContexts,
    ) -> Result<BatchResult> {
        self.batch_on_existing(tenant, body, ctxs, |txn, id, item, ctx| {
            merge_into(txn, id, item, ctx, Nulls::DeleteMarked).map(|_| false)
        })
        .await
    }

    /// Applies `change` to each batch item (by its valid id, in its
    /// context), every outcome reported, the successes written together.
    async fn batch_on_existing(
        &self,
        tenant: &str,
        body: &Value,
        ctxs: &ItemContexts,
        mut change: impl FnMut(&mut Txn, &str, &Value, &Context) -> Result<bool>,
    ) -> Result<BatchResult> {
        let items = batch_items(body)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| {
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| {
                        let id = item_id(item);
                        let r = match item_ctx(ctxs, n) {
                            Err(e) => Err(e),
                            Ok(_) if !is_uri(&id) => {
                                Err(NgsiError::bad_data("the entity has no valid id"))
                            }
                            Ok(ctx) => txn.checked(&id, |txn| change(txn, &id, item, ctx)),
                        };
                        (id, r)
                    })
                    .collect())
            })
            .await
    }

    pub async fn batch_delete(&self, tenant: &str, body: &Value) -> Result<BatchResult> {
        let items = batch_items(body)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| {
                Ok(items
                    .iter()
                    .map(|item| {
                        let id = item.as_str().unwrap_or("").to_owned();
                        let r = if !is_uri(&id) {
                            Err(NgsiError::bad_data("an entity id is a URI"))
                        } else if txn.remove(&id) {
                            Ok(false)
                        } else {
                            Err(not_found(&id))
                        };
                        (id, r)
                    })
                    .collect())
            })
            .await
    }

    /// Purge (§5.6.21): every entity the filter selects is deleted or,
    /// with `drop` or `keep` (attribute IRIs), loses those attributes or
    /// all others. How many entities it touched.
    pub async fn purge(
        &self,
        tenant: &str,
        filter: &crate::broker::Filter,
        ctx: &Context,
        drop: Option<Vec<String>>,
        keep: Option<Vec<String>>,
    ) -> Result<usize> {
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| {
                let ids: Vec<String> = txn
                    .before()
                    .filter(|e| filter.matches(e, ctx))
                    .map(|e| e.id.clone())
                    .collect();
                let now = txn.now;
                for id in &ids {
                    match (&drop, &keep) {
                        (None, None) => {
                            txn.remove(id);
                        }
                        (drop, keep) => {
                            if let Some(e) = txn.get_mut(id) {
                                e.attrs.retain(|name, _| {
                                    !drop.as_ref().is_some_and(|d| d.contains(name))
                                        && keep.as_ref().is_none_or(|k| k.contains(name))
                                });
                                e.modified_at = now;
                            }
                        }
                    }
                }
                Ok(ids.len())
            })
            .await
    }
}

/// An entity id in a path must be a URI.
pub fn check_id(id: &str) -> Result<()> {
    if is_uri(id) {
        Ok(())
    } else {
        Err(NgsiError::bad_data(format!("{id:?} is not a URI")))
    }
}
