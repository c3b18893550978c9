//! Subscriptions kept and served, and notifications sent: the broker
//! hands every committed change here (after its commit, never before);
//! each subscription it concerns gets a Notification over HTTP(S) or MQTT,
//! in its own @context and format, throttled as it asks.
//!
//! Delivery runs beside the writes, never in their way: a slow or dead
//! endpoint costs its own subscription, not the broker.

use crate::entity::format_datetime;
use crate::entity::{render, Entity, Format, Render};
use crate::jsonld::{now_ms, Context};
use crate::problem::{NgsiError, Result};
use crate::store::{EntityStore, SubscriptionStore};
use crate::subscription::{changes, notification, parse, Subscription, Trigger};
use crate::CityData;
use civic_core::audit::AuditEntry;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// A committed change to one entity.
#[derive(Debug, Clone)]
pub struct Change {
    pub tenant: String,
    pub before: Option<Arc<Entity>>,
    pub after: Option<Arc<Entity>>,
}

/// Every tenant's subscriptions, loaded from the store on first use.
#[derive(Default)]
pub struct Subscriptions {
    by_tenant:
        tokio::sync::OnceCell<tokio::sync::RwLock<HashMap<String, BTreeMap<String, Subscription>>>>,
    /// Sends every notification, of entity subscriptions and of
    /// subscriptions to registrations.
    sender: std::sync::OnceLock<Arc<Sender>>,
}

/// Which kind of subscription a notification is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Entities,
    Registrations,
}

pub(crate) type Table = tokio::sync::RwLock<HashMap<String, BTreeMap<String, Subscription>>>;

/// The periodic subscriptions of `table` due at `now` — active, with a
/// `timeInterval`, last notified at least that long ago — each marked as
/// notified now, before it is sent.
pub(crate) async fn take_due(table: &Table, now: i64) -> Vec<(String, Subscription)> {
    let mut all = table.write().await;
    let mut due = Vec::new();
    for (tenant, subs) in all.iter_mut() {
        for s in subs.values_mut() {
            let Some(every) = s.doc.get("timeInterval").and_then(Value::as_f64) else {
                continue;
            };
            let waited = s
                .last_due
                .is_none_or(|last| (now - last) as f64 >= every * 1000.0);
            if s.is_active(now) && waited {
                s.last_due = Some(now);
                due.push((tenant.clone(), s.clone()));
            }
        }
    }
    due
}

impl CityData {
    async fn subscriptions(&self) -> Result<&Table> {
        self.subs
            .by_tenant
            .get_or_try_init(|| async {
                let mut all: HashMap<String, BTreeMap<String, Subscription>> = HashMap::new();
                for (tenant, doc) in self.store.load_subscriptions().await? {
                    match serde_json::from_str::<Subscription>(&doc) {
                        Ok(s) => {
                            self.host_implicit_context(&s);
                            all.entry(tenant).or_default().insert(s.id.clone(), s);
                        }
                        Err(_) => tracing::error!(
                            "city data: a stored subscription does not read; skipped"
                        ),
                    }
                }
                Ok::<_, NgsiError>(tokio::sync::RwLock::new(all))
            })
            .await
    }

    fn audit(action: &str, tenant: &str, id: &str) -> AuditEntry {
        crate::tenancy::audit_entry(action, &format!("ngsi-subscription:{tenant}/{id}"))
    }

    /// What a subscription's notifications are compacted with (its
    /// `jsonldContext`, if the subscriber named one); `ctx`, its own
    /// resolved, if that does not resolve.
    async fn compaction_context(&self, sub: &Subscription, ctx: Arc<Context>) -> Arc<Context> {
        let wanted = sub.notification_context();
        if *wanted == sub.context {
            return ctx;
        }
        self.broker
            .contexts
            .resolve(Some(wanted))
            .await
            .unwrap_or(ctx)
    }

    /// Keeps the @context made for a subscription (on creation, and again
    /// at start: the stored contexts live in memory).
    fn host_implicit_context(&self, sub: &Subscription) {
        let Some(url) = &sub.implicit_context else {
            return;
        };
        if self.broker.contexts.find(url).is_some() {
            return;
        }
        let id = url.rsplit('/').next().unwrap_or_default().to_owned();
        self.broker.contexts.host(
            id,
            url.clone(),
            serde_json::json!({ "@context": sub.context }),
            crate::jsonld::ContextKind::ImplicitlyCreated,
        );
    }

    async fn persist(&self, tenant: &str, s: &Subscription, action: &str) -> Result<()> {
        let doc = serde_json::to_string(s)
            .map_err(|_| NgsiError::internal("a subscription did not serialise"))?;
        self.store
            .put_subscription(tenant, &s.id, &doc, Self::audit(action, tenant, &s.id))
            .await?;
        Ok(())
    }

    /// A notification endpoint must be one the broker may reach.
    pub(crate) async fn check_endpoint(&self, doc: &serde_json::Map<String, Value>) -> Result<()> {
        let uri = doc
            .get("notification")
            .and_then(|n| n.get("endpoint"))
            .and_then(|e| e.get("uri"))
            .and_then(Value::as_str);
        if let Some(uri) = uri {
            crate::egress::check_url(uri, self.config.city_egress_private)
                .await
                .map_err(|why| NgsiError::bad_data(format!("notification.endpoint.uri: {why}")))?;
        }
        Ok(())
    }

    /// A new subscription of a checked document (an entity subscription's
    /// or a subscription to registrations): its type, its jsonldContext
    /// (notifications are compacted with it: it must resolve now) and its
    /// endpoint checked; its id given or made.
    pub(crate) async fn new_subscription(
        &self,
        doc: serde_json::Map<String, Value>,
        ctx: &Context,
    ) -> Result<Subscription> {
        if doc.get("type").and_then(Value::as_str) != Some("Subscription") {
            return Err(NgsiError::bad_data(
                "a subscription's type is \"Subscription\"",
            ));
        }
        if let Some(url) = doc.get("jsonldContext") {
            self.broker.contexts.resolve(Some(url)).await?;
        }
        self.check_endpoint(&doc).await?;
        let id = doc
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(crate::subscription::new_id);
        Ok(Subscription::new(id, doc, ctx.original.clone(), now_ms()))
    }

    /// Creates a subscription; its id.
    pub async fn create_subscription(
        &self,
        tenant: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<String> {
        let mut sub = self.new_subscription(parse(body, ctx, false)?, ctx).await?;
        // A compound @context gets a URL of the broker's (§5.8.1: the
        // subscription's jsonldContext), unless the subscriber named one.
        // (Subscriptions to registrations are not given one: nothing asks.)
        if !sub.doc.contains_key("jsonldContext") && crate::subscription::is_compound(&sub.context)
        {
            let url = format!(
                "{}/ngsi-ld/v1/jsonldContexts/{}",
                self.public_url(),
                uuid::Uuid::new_v4().simple()
            );
            sub.doc.insert("jsonldContext".into(), url.clone().into());
            sub.implicit_context = Some(url);
        }
        let id = sub.id.clone();
        let table = self.subscriptions().await?;
        let mut all = table.write().await;
        let of_tenant = all.entry(tenant.to_owned()).or_default();
        if of_tenant.contains_key(&id) {
            return Err(NgsiError::exists(format!("the subscription {id} exists")));
        }
        self.persist(tenant, &sub, "citydata.subscription.create")
            .await?;
        self.host_implicit_context(&sub);
        of_tenant.insert(id.clone(), sub);
        Ok(id)
    }

    pub async fn subscription(&self, tenant: &str, id: &str) -> Result<Subscription> {
        crate::ops::check_id(id)?;
        let table = self.subscriptions().await?;
        let all = table.read().await;
        all.get(tenant)
            .and_then(|t| t.get(id))
            .cloned()
            .ok_or_else(|| NgsiError::not_found(format!("there is no subscription {id}")))
    }

    pub async fn list_subscriptions(&self, tenant: &str) -> Result<Vec<Subscription>> {
        let table = self.subscriptions().await?;
        let all = table.read().await;
        Ok(all
            .get(tenant)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default())
    }

    /// Applies a patch (members replace theirs; `notification`'s merge).
    pub async fn update_subscription(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        crate::ops::check_id(id)?;
        let patch = parse(body, ctx, true)?;
        // A notification given is whole enough to send: it names where.
        if patch
            .get("notification")
            .is_some_and(|n| n.get("endpoint").is_none())
        {
            return Err(NgsiError::bad_data(
                "a subscription's notification names its endpoint",
            ));
        }
        if let Some(url) = patch.get("jsonldContext") {
            self.broker.contexts.resolve(Some(url)).await?;
        }
        self.check_endpoint(&patch).await?;
        if patch
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|given| given != id)
        {
            return Err(NgsiError::bad_data(
                "the patch's id is not the subscription's",
            ));
        }
        let table = self.subscriptions().await?;
        let mut all = table.write().await;
        let sub = all
            .get_mut(tenant)
            .and_then(|t| t.get_mut(id))
            .ok_or_else(|| NgsiError::not_found(format!("there is no subscription {id}")))?;
        let mut next = sub.clone();
        for (k, v) in patch {
            match (k.as_str(), v, next.doc.get_mut("notification")) {
                ("notification", Value::Object(n), Some(Value::Object(old))) => {
                    for (nk, nv) in n {
                        old.insert(nk, nv);
                    }
                }
                (_, v, _) => {
                    next.doc.insert(k, v);
                }
            }
        }
        if next.doc.contains_key("timeInterval") && next.doc.contains_key("watchedAttributes") {
            return Err(NgsiError::bad_data(
                "timeInterval excludes watchedAttributes",
            ));
        }
        next.context = ctx.original.clone();
        next.modified_at = now_ms();
        self.persist(tenant, &next, "citydata.subscription.update")
            .await?;
        *sub = next;
        Ok(())
    }

    pub async fn delete_subscription(&self, tenant: &str, id: &str) -> Result<()> {
        crate::ops::check_id(id)?;
        let table = self.subscriptions().await?;
        let mut all = table.write().await;
        if !all.get(tenant).is_some_and(|t| t.contains_key(id)) {
            return Err(NgsiError::not_found(format!(
                "there is no subscription {id}"
            )));
        }
        self.store
            .delete_subscription(
                tenant,
                id,
                Self::audit("citydata.subscription.delete", tenant, id),
            )
            .await?;
        if let Some(gone) = all.get_mut(tenant).and_then(|t| t.remove(id)) {
            if let Some(url) = gone.implicit_context {
                self.broker.contexts.forget(&url);
            }
        }
        Ok(())
    }

    /// Forgets, every ten minutes, the history recorded longer ago than
    /// the retention (`city_history_hours`).
    pub fn start_retention(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                let keep_ms = me.config.city_history_hours.saturating_mul(3_600_000);
                match me.store.prune_history(now_ms() - keep_ms).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(rows = n, "city data: history past its retention forgotten")
                    }
                    Err(e) => tracing::warn!(error = %e, "city data: pruning history failed"),
                }
            }
        });
    }

    /// Starts sending notifications for committed changes (once).
    pub fn start_notifications(&self) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<Change>>();
        if !self.broker.set_change_feed(tx) {
            return;
        }
        self.start_periodic_notifications();
        let me = self.clone();
        tokio::spawn(async move {
            let sender = me.sender();
            while let Some(batch) = rx.recv().await {
                for change in batch {
                    if let Err(e) = me.notify(&sender, &change).await {
                        tracing::warn!(error = %e.detail, "city data: notifying failed");
                    }
                }
            }
        });
    }

    /// Periodic notifications (§5.8.1), checked each second, of entity
    /// subscriptions and of subscriptions to registrations with a
    /// `timeInterval`: an entity subscription gets the entities it selects
    /// then (nothing when none), a subscription to registrations what it
    /// matches. Changes never trigger these subscriptions (`notify`).
    fn start_periodic_notifications(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let now = now_ms();
                if let Ok(table) = me.subscriptions().await {
                    for (tenant, sub) in take_due(table, now).await {
                        if let Err(e) = me.notify_periodically(&tenant, sub, now).await {
                            tracing::warn!(error = %e.detail, "city data: a periodic notification failed");
                        }
                    }
                }
                me.notify_csource_periodically(now).await;
            }
        });
    }

    /// One periodic notification: the entities `sub` selects now, each
    /// rendered as an on-change notification renders it.
    async fn notify_periodically(&self, tenant: &str, sub: Subscription, now: i64) -> Result<()> {
        let ctx = self.broker.contexts.resolve(Some(&sub.context)).await?;
        let Ok(entities) = self.broker.all(tenant).await else {
            return Ok(());
        };
        let selected: Vec<Arc<Entity>> = entities
            .into_iter()
            .filter(|e| sub.selects(e, &ctx))
            .collect();
        if selected.is_empty() {
            return Ok(());
        }
        let ctx = self.compaction_context(&sub, ctx).await;
        let data: Vec<Value> = selected
            .into_iter()
            .map(|e| {
                let change = Change {
                    tenant: tenant.to_owned(),
                    before: None,
                    after: Some(e),
                };
                let mut one = self.notification_of(&sub, &change, &[], None, &ctx, None, now);
                one["data"][0].take()
            })
            .collect();
        let body = notification(&sub, data, None, now);
        {
            let mut all = self.subscriptions().await?.write().await;
            if let Some(s) = all.get_mut(tenant).and_then(|t| t.get_mut(&sub.id)) {
                s.last_notification = Some(now);
            }
        }
        self.sender()
            .enqueue(self, Kind::Entities, tenant, sub, ctx, body)
            .await;
        Ok(())
    }

    /// The notifications' sender.
    pub(crate) fn sender(&self) -> Arc<Sender> {
        self.subs
            .sender
            .get_or_init(|| {
                Arc::new(Sender {
                    allow_private: self.config.city_egress_private,
                    ..Sender::default()
                })
            })
            .clone()
    }

    async fn notify(&self, sender: &Arc<Sender>, change: &Change) -> Result<()> {
        let table = self.subscriptions().await?;
        let candidates: Vec<Subscription> = {
            let all = table.read().await;
            match all.get(&change.tenant) {
                Some(t) if !t.is_empty() => t.values().cloned().collect(),
                _ => return Ok(()),
            }
        };
        let (attrs, whole) = changes(change.before.as_deref(), change.after.as_deref());
        let Some(entity) = change.after.as_ref().or(change.before.as_ref()) else {
            return Ok(());
        };
        let now = now_ms();
        for sub in candidates {
            if !sub.is_active(now) || sub.doc.contains_key("timeInterval") {
                continue;
            }
            let throttle_ms = sub
                .doc
                .get("throttling")
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
                * 1000.0;
            if sub
                .last_notification
                .is_some_and(|t| ((now - t) as f64) < throttle_ms)
            {
                continue;
            }
            let ctx = match self.broker.contexts.resolve(Some(&sub.context)).await {
                Ok(c) => c,
                Err(_) => continue,
            };
            if !sub.concerns(entity, &attrs, whole, &ctx) {
                continue;
            }
            let trigger = attrs
                .first()
                .map(|(_, t)| t.name())
                .or(whole.map(|w| w.name()));
            let ctx = self.compaction_context(&sub, ctx).await;
            let mut body = self.notification_of(&sub, change, &attrs, whole, &ctx, trigger, now);
            if whole != Some(Trigger::EntityDeleted) {
                self.join_linked(&sub, change, &ctx, &mut body).await;
            }
            // Throttling counts from the decision; the delivery goes in
            // the subscription's own queue.
            {
                let mut all = table.write().await;
                if let Some(s) = all.get_mut(&change.tenant).and_then(|t| t.get_mut(&sub.id)) {
                    s.last_notification = Some(now);
                }
            }
            sender
                .enqueue(self, Kind::Entities, &change.tenant, sub, ctx, body)
                .await;
        }
        Ok(())
    }

    /// Counts a notification of an entity subscription as sent, before
    /// it goes (`timesSent` counts the failed ones too, §5.2.14): a
    /// receiver that reads the subscription as soon as it is notified
    /// sees it counted.
    async fn sending(&self, kind: Kind, tenant: &str, id: &str) {
        if kind == Kind::Registrations {
            return;
        }
        let Ok(table) = self.subscriptions().await else {
            return;
        };
        let mut all = table.write().await;
        if let Some(s) = all.get_mut(tenant).and_then(|t| t.get_mut(id)) {
            s.times_sent += 1;
        }
    }

    /// Records a delivery's outcome on its subscription.
    async fn delivered(&self, kind: Kind, tenant: &str, id: &str, ok: bool, at: i64) {
        if kind == Kind::Registrations {
            return self.csource_delivered(tenant, id, ok, at).await;
        }
        let Ok(table) = self.subscriptions().await else {
            return;
        };
        let mut all = table.write().await;
        if let Some(s) = all.get_mut(tenant).and_then(|t| t.get_mut(id)) {
            if ok {
                s.last_success = Some(at);
            } else {
                s.times_failed += 1;
                s.last_failure = Some(at);
            }
        }
    }

    /// With the subscription's `join` (`notification.join`,
    /// `joinLevel`), the entities the notified one links to, inline or
    /// after it in `data`.
    async fn join_linked(
        &self,
        sub: &Subscription,
        change: &Change,
        ctx: &Context,
        body: &mut Value,
    ) {
        let n = sub.doc.get("notification");
        let Some(after) = change.after.clone() else {
            return;
        };
        let level = n.and_then(|n| n.get("joinLevel")).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let Ok(Some(l)) = crate::join::Linking::from_params(
            n.and_then(|n| n.get("join")).and_then(Value::as_str),
            level.as_deref(),
            None,
            None,
        ) else {
            return;
        };
        let Some(Value::Object(shown)) = body
            .get_mut("data")
            .and_then(|d| d.get_mut(0))
            .map(Value::take)
        else {
            return;
        };
        let r = notification_render(sub, ctx);
        let joined = self
            .broker
            .read(&change.tenant, |get| {
                crate::join::join(&[after], vec![shown], ctx, &r, &l, get)
            })
            .await;
        if let Ok(Ok((main, flat))) = joined {
            body["data"] = Value::Array(main.into_iter().map(Value::Object).chain(flat).collect());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn notification_of(
        &self,
        sub: &Subscription,
        change: &Change,
        attrs: &[(String, Trigger)],
        whole: Option<Trigger>,
        ctx: &Context,
        trigger: Option<&str>,
        now: i64,
    ) -> Value {
        let r = notification_render(sub, ctx);
        let format = r.format;
        let show_changes = notification_flag(sub, "showChanges");
        let wanted = |iri: &str| r.attrs.as_ref().is_none_or(|a| a.iter().any(|x| x == iri));
        let before = change.before.as_deref();
        let deleted = |old: &crate::entity::Instance| {
            deleted_instance(old, ctx, format, show_changes, r.sys_attrs.then_some(now))
        };
        // An entity's own system attributes.
        let stamp = |out: &mut serde_json::Map<String, Value>, e: &Entity| {
            out.insert("createdAt".into(), format_datetime(e.created_at).into());
            out.insert("modifiedAt".into(), format_datetime(e.modified_at).into());
        };
        let data = match (whole, change.after.as_deref(), before) {
            (Some(Trigger::EntityDeleted), _, Some(b)) => {
                let mut out = serde_json::Map::new();
                out.insert("id".into(), b.id.clone().into());
                let types: Vec<Value> = b
                    .types
                    .iter()
                    .map(|t| Value::String(ctx.compact(t)))
                    .collect();
                out.insert(
                    "type".into(),
                    if types.len() == 1 {
                        types[0].clone()
                    } else {
                        Value::Array(types)
                    },
                );
                if r.sys_attrs {
                    stamp(&mut out, b);
                }
                out.insert("deletedAt".into(), format_datetime(now).into());
                // The attributes go as NGSI-LD nulls with showChanges, or
                // to a subscription to the deletion of (these) attributes.
                let watched = sub.doc.get("watchedAttributes").and_then(Value::as_array);
                let told = |iri: &str| {
                    show_changes
                        || (sub.triggers().contains(&"attributeDeleted")
                            && watched.is_none_or(|w| w.iter().any(|x| x == iri)))
                };
                for (iri, instances) in &b.attrs {
                    if let (true, true, Some(old)) = (wanted(iri), told(iri), instances.first()) {
                        out.insert(ctx.compact(iri), deleted(old));
                    }
                }
                out
            }
            (_, Some(a), _) => {
                // Instances deleted from an attribute that stays are shown
                // as NGSI-LD nulls beside the others.
                let mut shown = std::borrow::Cow::Borrowed(a);
                for (iri, t) in attrs {
                    let (Some(old), Some(now)) =
                        (before.and_then(|b| b.attrs.get(iri)), a.attrs.get(iri))
                    else {
                        continue;
                    };
                    if *t == Trigger::AttributeDeleted {
                        let gone: Vec<_> = crate::entity::removed_instances(old, now)
                            .map(crate::entity::null_instance)
                            .collect();
                        if let Some(is) = shown.to_mut().attrs.get_mut(iri) {
                            is.extend(gone);
                        }
                    }
                }
                let mut out = render(&shown, ctx, &r);
                // sysAttrs are the entity's too in keyValues (§5.2.14).
                if r.sys_attrs && format == Format::KeyValues {
                    stamp(&mut out, a);
                }
                for (iri, t) in attrs {
                    let old = before
                        .and_then(|b| b.attrs.get(iri))
                        .and_then(|is| is.first());
                    match (t, old) {
                        (Trigger::AttributeDeleted, Some(old))
                            if wanted(iri) && !a.attrs.contains_key(iri) =>
                        {
                            out.insert(ctx.compact(iri), deleted(old));
                        }
                        (Trigger::AttributeUpdated, Some(old))
                            if show_changes && format != Format::KeyValues =>
                        {
                            if let Some(Value::Object(now_attr)) = out.get_mut(&ctx.compact(iri)) {
                                if let Some((k, v)) = previous(old, ctx) {
                                    now_attr.insert(k.into(), v);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                out
            }
            _ => serde_json::Map::new(),
        };
        notification(sub, vec![Value::Object(data)], trigger, now)
    }
}

/// A flag of a subscription's notifications (`showChanges`,
/// `sysAttrs`): in its `notification`, else at its top, else off.
fn notification_flag(sub: &Subscription, k: &str) -> bool {
    sub.doc
        .get("notification")
        .and_then(|n| n.get(k))
        .and_then(Value::as_bool)
        .or(sub.doc.get(k).and_then(Value::as_bool))
        .unwrap_or(false)
}

/// How a subscription's notifications show entities.
fn notification_render(sub: &Subscription, ctx: &Context) -> Render {
    let n = sub.doc.get("notification").cloned().unwrap_or(Value::Null);
    let format = match n.get("format").and_then(Value::as_str) {
        Some("keyValues" | "simplified") => Format::KeyValues,
        Some("concise") => Format::Concise,
        _ => Format::Normalized,
    };
    let names = |k: &str| {
        n.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|s| match s {
                    "id" | "type" | "scope" | "createdAt" | "modifiedAt" => s.to_owned(),
                    s if s.contains(':') => s.to_owned(),
                    s => ctx.expand(s),
                })
                .collect::<Vec<_>>()
        })
    };
    Render {
        format,
        sys_attrs: notification_flag(sub, "sysAttrs"),
        attrs: names("attributes"),
        pick: names("pick"),
        omit: names("omit"),
        lang: sub
            .doc
            .get("lang")
            .and_then(Value::as_str)
            .map(str::to_owned),
        datasets: sub.doc.get("datasetId").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        }),
    }
}

/// The member that says what an attribute was (showChanges).
fn previous(old: &crate::entity::Instance, ctx: &Context) -> Option<(&'static str, Value)> {
    let kind = old
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Property");
    let (member, name) = match kind {
        "Relationship" => ("object", "previousObject"),
        "LanguageProperty" => ("languageMap", "previousLanguageMap"),
        "JsonProperty" => ("json", "previousJson"),
        "VocabProperty" => ("vocab", "previousVocab"),
        "ListProperty" => ("valueList", "previousValueList"),
        "ListRelationship" => ("objectList", "previousObjectList"),
        _ => ("value", "previousValue"),
    };
    let v = old.get(member)?.clone();
    let v = match (kind, v) {
        ("VocabProperty", Value::String(s)) => Value::String(ctx.compact(&s)),
        (_, v) => v,
    };
    Some((name, v))
}

/// A deleted attribute as a notification shows it: its value an
/// NGSI-LD null (and, with showChanges, what it was; with sysAttrs,
/// `deleted_at`, when it was made, changed and deleted).
fn deleted_instance(
    old: &crate::entity::Instance,
    ctx: &Context,
    format: Format,
    show_changes: bool,
    deleted_at: Option<i64>,
) -> Value {
    if format == Format::KeyValues {
        return crate::entity::NGSI_LD_NULL.into();
    }
    let mut out = crate::entity::null_instance(old);
    if show_changes {
        if let Some((k, v)) = previous(old, ctx) {
            out.insert(k.into(), v);
        }
    }
    if let Some(at) = deleted_at {
        for k in ["createdAt", "modifiedAt"] {
            if let Some(t) = old.get(k).and_then(Value::as_i64) {
                out.insert(k.into(), format_datetime(t).into());
            }
        }
        out.insert("deletedAt".into(), format_datetime(at).into());
    }
    Value::Object(out)
}

/// A notification waiting in its subscription's queue.
struct Job {
    kind: Kind,
    sub: Subscription,
    ctx: Arc<Context>,
    body: Value,
}

/// How many notifications may wait for one subscription; more are
/// dropped and counted as failed (its endpoint is not keeping up).
const QUEUE: usize = 1000;

/// Sends notifications: HTTP through one client, MQTT through one client
/// per broker; each subscription through its own queue, in order, so that
/// a slow or dead endpoint holds up its own subscription only.
#[derive(Default)]
pub(crate) struct Sender {
    queues: tokio::sync::Mutex<HashMap<(Kind, String, String), tokio::sync::mpsc::Sender<Job>>>,
    /// Whether endpoints on loopback and private addresses are reached.
    allow_private: bool,
    http: std::sync::OnceLock<reqwest::Client>,
    mqtt: tokio::sync::Mutex<HashMap<(String, u16), rumqttc::AsyncClient>>,
}

impl Sender {
    pub(crate) async fn enqueue(
        self: &Arc<Self>,
        city: &CityData,
        kind: Kind,
        tenant: &str,
        sub: Subscription,
        ctx: Arc<Context>,
        body: Value,
    ) {
        let key = (kind, tenant.to_owned(), sub.id.clone());
        let id = sub.id.clone();
        let queue = {
            let mut queues = self.queues.lock().await;
            queues
                .entry(key)
                .or_insert_with(|| {
                    let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
                    let (me, city, tenant) = (self.clone(), city.clone(), tenant.to_owned());
                    tokio::spawn(async move {
                        while let Some(job) = rx.recv().await {
                            city.sending(job.kind, &tenant, &job.sub.id).await;
                            let ok = me.send(&job.sub, &job.ctx, job.body).await;
                            city.delivered(job.kind, &tenant, &job.sub.id, ok, now_ms())
                                .await;
                        }
                    });
                    tx
                })
                .clone()
        };
        if queue
            .try_send(Job {
                kind,
                sub,
                ctx,
                body,
            })
            .is_err()
        {
            city.sending(kind, tenant, &id).await;
            city.delivered(kind, tenant, &id, false, now_ms()).await;
        }
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            // Title-case header names: some receivers (the ETSI suite's
            // among them) read `Link` by its case.
            reqwest::Client::builder()
                .http1_title_case_headers()
                .connect_timeout(Duration::from_secs(3))
                .timeout(Duration::from_secs(10))
                .build()
                .expect("the HTTP client builds")
        })
    }

    /// Delivers one notification; whether the endpoint took it.
    async fn send(&self, sub: &Subscription, ctx: &Context, mut body: Value) -> bool {
        let endpoint = sub
            .doc
            .get("notification")
            .and_then(|n| n.get("endpoint"))
            .cloned()
            .unwrap_or(Value::Null);
        let Some(uri) = endpoint.get("uri").and_then(Value::as_str) else {
            return false;
        };
        if crate::egress::check_url(uri, self.allow_private)
            .await
            .is_err()
        {
            return false;
        }
        let ld = endpoint.get("accept").and_then(Value::as_str) == Some("application/ld+json");
        let link = format!(
            "<{}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"",
            sub.context_url()
        );
        if ld {
            // Each entity carries the @context too (§5.3.3.2: a JSON-LD
            // notification's entities are JSON-LD documents of their own).
            if let Some(Value::Array(data)) = body.get_mut("data") {
                for e in data.iter_mut().filter(|e| e.is_object()) {
                    e["@context"] = ctx.original.clone();
                }
            }
            body["@context"] = ctx.original.clone();
        }
        let content_type = if ld {
            "application/ld+json"
        } else {
            "application/json"
        };
        let extra: Vec<(String, String)> = endpoint
            .get("receiverInfo")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|kv| {
                        Some((
                            kv.get("key")?.as_str()?.to_owned(),
                            kv.get("value")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if uri.starts_with("http://") || uri.starts_with("https://") {
            let mut req = self.http().post(uri).header("content-type", content_type);
            if !ld {
                req = req.header("link", link);
            }
            for (k, v) in &extra {
                req = req.header(k.as_str(), v.as_str());
            }
            return match req.body(body.to_string()).send().await {
                Ok(r) => r.status().is_success(),
                Err(_) => false,
            };
        }
        // mqtt://host[:port]/topic (§7.3): metadata and body in one message.
        let Some(rest) = uri.strip_prefix("mqtt://") else {
            return false;
        };
        let (authority, topic) = rest.split_once('/').unwrap_or((rest, ""));
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let Ok((host, port)) = crate::ingest::parse_mqtt_url(&format!("mqtt://{authority}")) else {
            return false;
        };
        if topic.is_empty() {
            return false;
        }
        let mut metadata = json!({ "Content-Type": content_type });
        if !ld {
            metadata["Link"] = link.into();
        }
        for (k, v) in extra {
            metadata[k] = v.into();
        }
        let message = json!({ "metadata": metadata, "body": body });
        let client = {
            let mut clients = self.mqtt.lock().await;
            clients
                .entry((host.clone(), port))
                .or_insert_with(|| {
                    let mut o = rumqttc::MqttOptions::new(
                        format!("civic-citydata-notify-{}", uuid::Uuid::new_v4().simple()),
                        host.clone(),
                        port,
                    );
                    o.set_keep_alive(Duration::from_secs(30));
                    let (client, mut events) = rumqttc::AsyncClient::new(o, 1024);
                    tokio::spawn(async move {
                        loop {
                            if events.poll().await.is_err() {
                                tokio::time::sleep(Duration::from_secs(2)).await;
                            }
                        }
                    });
                    client
                })
                .clone()
        };
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, message.to_string())
            .await
            .is_ok()
    }
}
