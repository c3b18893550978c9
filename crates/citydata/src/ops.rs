//! The entity operations of CIM 009 §5.6 (provision) over the broker:
//! each parses its payload in the request's context, stages its change
//! and commits it whole, or answers why not.

use crate::broker::Txn;
use crate::entity::{
    dataset_of, is_uri, keep_created, parse_attribute, parse_entity, parse_fragment,
    parse_instance, Entity, Instance, Nulls,
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
    pub fn body(&self, ctx: &Context) -> Value {
        serde_json::json!({
            "updated": self.updated.iter().map(|a| ctx.compact(a)).collect::<Vec<_>>(),
            "notUpdated": self.not_updated.iter().map(|(a, why)| serde_json::json!({
                "attributeName": ctx.compact(a), "reason": why
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

fn append_into(
    txn: &mut Txn,
    id: &str,
    body: &Value,
    ctx: &Context,
    overwrite: bool,
) -> Result<UpdateResult> {
    let now = txn.now;
    let f = parse_fragment(body, ctx, now, Nulls::Refuse)?;
    if f.id.as_deref().is_some_and(|given| given != id) {
        return Err(NgsiError::bad_data("the payload's id is not the entity's"));
    }
    let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
    let mut result = UpdateResult::default();
    if let Some(types) = f.types {
        for t in types {
            if !e.types.contains(&t) {
                e.types.push(t);
            }
        }
    }
    if let Some(scope) = f.scope {
        e.scope = scope;
    }
    for (name, instances) in f.attrs {
        let instances = instances.unwrap_or_default();
        let target = e.attrs.entry(name.clone()).or_default();
        if !overwrite
            && instances
                .iter()
                .any(|i| target.iter().any(|o| dataset_of(o) == dataset_of(i)))
        {
            result.not_updated.push((
                name,
                "the attribute exists and noOverwrite was asked".into(),
            ));
            continue;
        }
        put_instances(target, instances);
        result.updated.push(name);
    }
    e.modified_at = now;
    Ok(result)
}

fn update_into(txn: &mut Txn, id: &str, body: &Value, ctx: &Context) -> Result<UpdateResult> {
    let now = txn.now;
    let f = parse_fragment(body, ctx, now, Nulls::Refuse)?;
    let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
    let mut result = UpdateResult::default();
    for (name, instances) in f.attrs {
        let Some(target) = e.attrs.get_mut(&name) else {
            result
                .not_updated
                .push((name, "the entity has no such attribute".into()));
            continue;
        };
        let instances = instances.unwrap_or_default();
        if instances
            .iter()
            .any(|i| !target.iter().any(|o| dataset_of(o) == dataset_of(i)))
        {
            result.not_updated.push((
                name,
                "the attribute has no instance with that datasetId".into(),
            ));
            continue;
        }
        put_instances(target, instances);
        result.updated.push(name);
    }
    if !result.updated.is_empty() {
        e.modified_at = now;
    }
    Ok(result)
}

fn merge_into(txn: &mut Txn, id: &str, body: &Value, ctx: &Context) -> Result<()> {
    let now = txn.now;
    let f = parse_fragment(body, ctx, now, Nulls::Delete)?;
    if f.id.as_deref().is_some_and(|given| given != id) {
        return Err(NgsiError::bad_data("the payload's id is not the entity's"));
    }
    let e = txn.get_mut(id).ok_or_else(|| not_found(id))?;
    if let Some(types) = f.types {
        for t in types {
            if !e.types.contains(&t) {
                e.types.push(t);
            }
        }
    }
    if let Some(scope) = f.scope {
        e.scope = scope;
    }
    for (name, instances) in f.attrs {
        match instances {
            None => {
                e.attrs.remove(&name);
            }
            Some(new) => {
                let target = e.attrs.entry(name).or_default();
                for i in new {
                    match target.iter_mut().find(|o| dataset_of(o) == dataset_of(&i)) {
                        Some(old) => merge_instance(old, i, now),
                        None => target.push(i),
                    }
                }
            }
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

/// The `@context` of one batch item when the request is JSON-LD: each
/// entity carries its own.
pub type ItemContexts = Vec<std::sync::Arc<Context>>;

impl CityData {
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
                txn.put(e);
                Ok(())
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
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| append_into(txn, id, body, ctx, overwrite))
            .await
    }

    pub async fn update_attrs(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<UpdateResult> {
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| update_into(txn, id, body, ctx))
            .await
    }

    pub async fn merge_entity(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| merge_into(txn, id, body, ctx))
            .await
    }

    pub async fn replace_entity(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        check_id(id)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| replace_into(txn, id, body, ctx))
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
            .write(tenant, |txn| {
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
                let old = instances
                    .iter_mut()
                    .find(|i| dataset_of(i) == dataset.as_deref())
                    .ok_or_else(|| {
                        NgsiError::not_found(format!("attribute {attr} has no such datasetId"))
                    })?;
                if !fragment.contains_key("type") {
                    if let Some(t) = old.get("type") {
                        fragment.insert("type".into(), t.clone());
                    }
                }
                let patch =
                    parse_instance(&iri, &Value::Object(fragment), ctx, now, Nulls::Delete)?;
                merge_instance(old, patch, now);
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
            .write(tenant, |txn| {
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
        let iri = ctx.expand(attr);
        self.broker
            .write(tenant, |txn| {
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
        ctxs: &[std::sync::Arc<Context>],
    ) -> Result<BatchResult> {
        let items = batch_items(body)?;
        self.broker
            .write(tenant, |txn| {
                let now = txn.now;
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| {
                        let (id, parsed) = batch_entity(item, &ctxs[n.min(ctxs.len() - 1)], now);
                        let r = parsed.and_then(|e| {
                            if txn.get(&e.id).is_some() {
                                return Err(NgsiError::exists(format!(
                                    "the entity {} exists",
                                    e.id
                                )));
                            }
                            txn.put(e);
                            Ok(true)
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
        ctxs: &[std::sync::Arc<Context>],
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
                        let ctx = &ctxs[n.min(ctxs.len() - 1)];
                        let (id, parsed) = batch_entity(item, ctx, now);
                        let r = parsed.and_then(|e| match txn.get(&e.id).is_some() {
                            false => {
                                txn.put(e);
                                Ok(true)
                            }
                            true if update => {
                                append_into(txn, &e.id, item, ctx, true).map(|_| false)
                            }
                            true => {
                                let created = txn.get(&e.id).map(|o| o.created_at).unwrap_or(now);
                                let mut e = e;
                                e.created_at = created;
                                txn.put(e);
                                Ok(false)
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
        ctxs: &[std::sync::Arc<Context>],
        overwrite: bool,
    ) -> Result<BatchResult> {
        let items = batch_items(body)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| {
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| {
                        let ctx = &ctxs[n.min(ctxs.len() - 1)];
                        let id = item
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned();
                        let r = if id.is_empty() || !is_uri(&id) {
                            Err(NgsiError::bad_data("the entity has no valid id"))
                        } else {
                            append_into(txn, &id, item, ctx, overwrite).and_then(|r| {
                                if r.not_updated.is_empty() {
                                    Ok(false)
                                } else {
                                    Err(NgsiError::bad_data("some attributes were not updated"))
                                }
                            })
                        };
                        (id, r)
                    })
                    .collect())
            })
            .await
    }

    pub async fn batch_merge(
        &self,
        tenant: &str,
        body: &Value,
        ctxs: &[std::sync::Arc<Context>],
    ) -> Result<BatchResult> {
        let items = batch_items(body)?;
        self.broker.tenant(tenant).await?;
        self.broker
            .write(tenant, |txn| {
                Ok(items
                    .iter()
                    .enumerate()
                    .map(|(n, item)| {
                        let ctx = &ctxs[n.min(ctxs.len() - 1)];
                        let id = item
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned();
                        let r = if id.is_empty() || !is_uri(&id) {
                            Err(NgsiError::bad_data("the entity has no valid id"))
                        } else {
                            merge_into(txn, &id, item, ctx).map(|_| false)
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

    /// Purge: deletes every entity a filter selects; how many.
    pub async fn purge(
        &self,
        tenant: &str,
        filter: &crate::broker::Filter,
        ctx: &Context,
    ) -> Result<usize> {
        let page = self
            .broker
            .query(tenant, filter, ctx, 0, usize::MAX)
            .await?;
        let ids: Vec<String> = page.entities.iter().map(|e| e.id.clone()).collect();
        let n = ids.len();
        self.broker
            .write(tenant, |txn| {
                for id in &ids {
                    txn.remove(id);
                }
                Ok(())
            })
            .await?;
        Ok(n)
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
