//! Context source registrations and the subscriptions to them, kept and
//! served: each kept in memory over its row, every change audited in its
//! transaction; a change to a registration notifies the subscriptions it
//! concerns (`newlyMatching`, `updated`, `noLongerMatching`), after its
//! commit, through the notifications' sender.

use crate::csource::{self, notified, subscription_filter, RegFilter, Registration};
use crate::entity::format_datetime;
use crate::jsonld::{now_ms, Context};
use crate::notify::Kind;
use crate::problem::{NgsiError, Result};
use crate::store::RegistrationStore;
use crate::subscription::Subscription;
use crate::CityData;
use civic_core::audit::AuditEntry;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type Table<T> = tokio::sync::RwLock<HashMap<String, BTreeMap<String, T>>>;

/// Registrations and subscriptions to them, of every tenant, loaded from
/// the store on first use.
#[derive(Default)]
pub struct Registry {
    registrations: tokio::sync::OnceCell<Table<Registration>>,
    subscriptions: tokio::sync::OnceCell<Table<Subscription>>,
}

/// One kind of document: its rows' kind, its audit's names.
trait Doc: Serialize + DeserializeOwned + Clone {
    const KIND: &'static str;
    const WHAT: &'static str;
    fn id(&self) -> &str;
}

impl Doc for Registration {
    const KIND: &'static str = "registration";
    const WHAT: &'static str = "registration";
    fn id(&self) -> &str {
        &self.id
    }
}

impl Doc for Subscription {
    const KIND: &'static str = "csourceSubscription";
    const WHAT: &'static str = "csource_subscription";
    fn id(&self) -> &str {
        &self.id
    }
}

impl CityData {
    async fn table<'a, T: Doc>(
        &self,
        cell: &'a tokio::sync::OnceCell<Table<T>>,
    ) -> Result<&'a Table<T>> {
        cell.get_or_try_init(|| async {
            let mut all: HashMap<String, BTreeMap<String, T>> = HashMap::new();
            for (tenant, doc) in self.store.load_registrations(T::KIND).await? {
                match serde_json::from_str::<T>(&doc) {
                    Ok(d) => {
                        all.entry(tenant).or_default().insert(d.id().to_owned(), d);
                    }
                    Err(_) => tracing::error!(
                        kind = T::KIND,
                        "city data: a stored registration document does not read; skipped"
                    ),
                }
            }
            Ok::<_, NgsiError>(tokio::sync::RwLock::new(all))
        })
        .await
    }

    async fn registrations(&self) -> Result<&Table<Registration>> {
        self.table(&self.registry.registrations).await
    }

    async fn csource_subscriptions(&self) -> Result<&Table<Subscription>> {
        self.table(&self.registry.subscriptions).await
    }

    fn audit_of<T: Doc>(verb: &str, tenant: &str, id: &str) -> AuditEntry {
        crate::tenancy::audit_entry(
            &format!("citydata.{}.{verb}", T::WHAT),
            &format!("ngsi-{}:{tenant}/{id}", T::KIND),
        )
    }

    async fn put_doc<T: Doc>(&self, tenant: &str, d: &T, verb: &str) -> Result<()> {
        let doc = serde_json::to_string(d)
            .map_err(|_| NgsiError::internal("a registration did not serialise"))?;
        self.store
            .put_registration(
                T::KIND,
                tenant,
                d.id(),
                &doc,
                Self::audit_of::<T>(verb, tenant, d.id()),
            )
            .await?;
        Ok(())
    }

    async fn delete_doc<T: Doc>(&self, table: &Table<T>, tenant: &str, id: &str) -> Result<T> {
        crate::ops::check_id(id)?;
        let mut all = table.write().await;
        let Some(old) = all.get(tenant).and_then(|t| t.get(id)).cloned() else {
            return Err(NgsiError::not_found(format!(
                "there is no {} {id}",
                T::WHAT
            )));
        };
        self.store
            .delete_registration(
                T::KIND,
                tenant,
                id,
                Self::audit_of::<T>("delete", tenant, id),
            )
            .await?;
        if let Some(t) = all.get_mut(tenant) {
            t.remove(id);
        }
        Ok(old)
    }

    async fn get_doc<T: Doc>(&self, table: &Table<T>, tenant: &str, id: &str) -> Result<T> {
        crate::ops::check_id(id)?;
        table
            .read()
            .await
            .get(tenant)
            .and_then(|t| t.get(id))
            .cloned()
            .ok_or_else(|| NgsiError::not_found(format!("there is no {} {id}", T::WHAT)))
    }

    /// Registers a context source; its registration's id.
    pub async fn create_registration(
        &self,
        tenant: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<String> {
        let doc = csource::parse(body, ctx, false)?;
        let id = doc
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(csource::new_id);
        let now = now_ms();
        let reg = Registration {
            id: id.clone(),
            doc,
            context: ctx.original.clone(),
            created_at: now,
            modified_at: now,
        };
        let table = self.registrations().await?;
        {
            let mut all = table.write().await;
            let of_tenant = all.entry(tenant.to_owned()).or_default();
            if of_tenant.contains_key(&id) {
                return Err(NgsiError::exists(format!("the registration {id} exists")));
            }
            self.put_doc(tenant, &reg, "create").await?;
            of_tenant.insert(id.clone(), reg.clone());
        }
        self.registration_changed(tenant, None, Some(&reg)).await;
        Ok(id)
    }

    pub async fn registration(&self, tenant: &str, id: &str) -> Result<Registration> {
        self.get_doc(self.registrations().await?, tenant, id).await
    }

    /// The registrations a filter selects, oldest first.
    pub async fn query_registrations(
        &self,
        tenant: &str,
        filter: &RegFilter,
        ctx: &Context,
    ) -> Result<Vec<Registration>> {
        let table = self.registrations().await?;
        let all = table.read().await;
        let now = now_ms();
        let mut out: Vec<Registration> = all
            .get(tenant)
            .map(|t| {
                t.values()
                    .filter(|r| !r.expired(now) && filter.matches(r, ctx))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// A tenant's registrations that have not expired (what distributed
    /// operations consult); none, cheaply, when there are none.
    pub async fn live_registrations(&self, tenant: &str) -> Result<Vec<Registration>> {
        let table = self.registrations().await?;
        let all = table.read().await;
        let now = now_ms();
        Ok(all
            .get(tenant)
            .map(|t| t.values().filter(|r| !r.expired(now)).cloned().collect())
            .unwrap_or_default())
    }

    /// Applies a patch: members replace theirs, nulls remove them.
    pub async fn update_registration(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        crate::ops::check_id(id)?;
        let patch = csource::parse(body, ctx, true)?;
        if patch.is_empty() {
            return Err(NgsiError::bad_data("the patch changes nothing"));
        }
        if patch
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|given| given != id)
        {
            return Err(NgsiError::bad_data(
                "the patch's id is not the registration's",
            ));
        }
        let table = self.registrations().await?;
        let (before, after) = {
            let mut all = table.write().await;
            let reg = all
                .get_mut(tenant)
                .and_then(|t| t.get_mut(id))
                .ok_or_else(|| NgsiError::not_found(format!("there is no registration {id}")))?;
            let before = reg.clone();
            let mut next = reg.clone();
            for (k, v) in patch {
                if v.is_null() {
                    next.doc.remove(&k);
                } else {
                    next.doc.insert(k, v);
                }
            }
            next.modified_at = now_ms();
            self.put_doc(tenant, &next, "update").await?;
            *reg = next.clone();
            (before, next)
        };
        self.registration_changed(tenant, Some(&before), Some(&after))
            .await;
        Ok(())
    }

    pub async fn delete_registration(&self, tenant: &str, id: &str) -> Result<()> {
        let old = self
            .delete_doc(self.registrations().await?, tenant, id)
            .await?;
        self.registration_changed(tenant, Some(&old), None).await;
        Ok(())
    }

    /// Creates a subscription to registrations; its id.
    pub async fn create_csource_subscription(
        &self,
        tenant: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<String> {
        let sub = self
            .new_subscription(csource::parse_subscription(body, ctx, false)?, ctx)
            .await?;
        let id = sub.id.clone();
        let table = self.csource_subscriptions().await?;
        {
            let mut all = table.write().await;
            let of_tenant = all.entry(tenant.to_owned()).or_default();
            if of_tenant.contains_key(&id) {
                return Err(NgsiError::exists(format!("the subscription {id} exists")));
            }
            self.put_doc(tenant, &sub, "create").await?;
            of_tenant.insert(id.clone(), sub.clone());
        }
        self.tell_matching(tenant, &sub).await;
        Ok(id)
    }

    pub async fn csource_subscription(&self, tenant: &str, id: &str) -> Result<Subscription> {
        self.get_doc(self.csource_subscriptions().await?, tenant, id)
            .await
    }

    pub async fn list_csource_subscriptions(&self, tenant: &str) -> Result<Vec<Subscription>> {
        let table = self.csource_subscriptions().await?;
        let all = table.read().await;
        let mut out: Vec<Subscription> = all
            .get(tenant)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// Applies a patch (members replace theirs, `notification` whole).
    pub async fn update_csource_subscription(
        &self,
        tenant: &str,
        id: &str,
        body: &Value,
        ctx: &Context,
    ) -> Result<()> {
        crate::ops::check_id(id)?;
        if body.get("type").is_some_and(Value::is_null) {
            return Err(NgsiError::bad_data("type may not be null"));
        }
        let patch = csource::parse_subscription(body, ctx, true)?;
        if let Some(n) = patch.get("notification") {
            if n.get("endpoint").is_none() {
                return Err(NgsiError::bad_data("a notification names its endpoint"));
            }
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
        let table = self.csource_subscriptions().await?;
        let next = {
            let mut all = table.write().await;
            let sub = all
                .get_mut(tenant)
                .and_then(|t| t.get_mut(id))
                .ok_or_else(|| NgsiError::not_found(format!("there is no subscription {id}")))?;
            let mut next = sub.clone();
            for (k, v) in patch {
                next.doc.insert(k, v);
            }
            next.modified_at = now_ms();
            self.put_doc(tenant, &next, "update").await?;
            *sub = next.clone();
            next
        };
        self.tell_matching(tenant, &next).await;
        Ok(())
    }

    pub async fn delete_csource_subscription(&self, tenant: &str, id: &str) -> Result<()> {
        self.delete_doc(self.csource_subscriptions().await?, tenant, id)
            .await
            .map(|_| ())
    }

    /// Records a delivery's outcome on a subscription to registrations.
    pub(crate) async fn csource_delivered(&self, tenant: &str, id: &str, ok: bool, at: i64) {
        let Ok(table) = self.csource_subscriptions().await else {
            return;
        };
        let mut all = table.write().await;
        if let Some(s) = all.get_mut(tenant).and_then(|t| t.get_mut(id)) {
            s.last_notification = Some(at);
            if ok {
                s.times_sent += 1;
                s.last_success = Some(at);
            } else {
                s.times_failed += 1;
                s.last_failure = Some(at);
            }
        }
    }

    /// The context a subscription's notifications are written in.
    async fn notification_context(&self, sub: &Subscription) -> Option<Arc<Context>> {
        self.broker
            .contexts
            .resolve(Some(sub.notification_context()))
            .await
            .ok()
    }

    async fn send_csource(
        &self,
        tenant: &str,
        sub: &Subscription,
        ctx: Arc<Context>,
        reason: Option<&str>,
        data: Vec<Value>,
    ) {
        let mut body = json!({
            "id": format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4()),
            "type": "ContextSourceNotification",
            "subscriptionId": sub.id,
            "notifiedAt": format_datetime(now_ms()),
            "data": data,
        });
        if let Some(r) = reason {
            body["triggerReason"] = r.into();
        }
        self.sender()
            .enqueue(self, Kind::Registrations, tenant, sub.clone(), ctx, body)
            .await;
    }

    /// Tells a subscription (new or changed, and active) of every
    /// registration it matches now, if there is one.
    async fn tell_matching(&self, tenant: &str, sub: &Subscription) {
        let now = now_ms();
        if !sub.is_active(now) || sub.doc.contains_key("timeInterval") {
            return;
        }
        let Some(ctx) = self.notification_context(sub).await else {
            return;
        };
        let data = match self.matching_data(tenant, sub, &ctx).await {
            Ok(d) if !d.is_empty() => d,
            _ => return,
        };
        self.send_csource(tenant, sub, ctx, Some("newlyMatching"), data)
            .await;
    }

    /// The registrations a subscription matches, as it is told of them.
    async fn matching_data(
        &self,
        tenant: &str,
        sub: &Subscription,
        ctx: &Context,
    ) -> Result<Vec<Value>> {
        let sub_ctx = self.broker.contexts.resolve(Some(&sub.context)).await?;
        let filter = subscription_filter(sub, &sub_ctx);
        let table = self.registrations().await?;
        let all = table.read().await;
        let now = now_ms();
        Ok(all
            .get(tenant)
            .map(|t| {
                t.values()
                    .filter(|r| !r.expired(now))
                    .filter_map(|r| {
                        filter
                            .matching_infos(r, &sub_ctx)
                            .map(|infos| notified(r, &infos, ctx))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Notifies the subscriptions a change to a registration concerns.
    async fn registration_changed(
        &self,
        tenant: &str,
        before: Option<&Registration>,
        after: Option<&Registration>,
    ) {
        let Ok(table) = self.csource_subscriptions().await else {
            return;
        };
        let subs: Vec<Subscription> = match table.read().await.get(tenant) {
            Some(t) => t.values().cloned().collect(),
            None => return,
        };
        let now = now_ms();
        for sub in subs {
            if !sub.is_active(now) || sub.doc.contains_key("timeInterval") {
                continue;
            }
            let Ok(sub_ctx) = self.broker.contexts.resolve(Some(&sub.context)).await else {
                continue;
            };
            let filter = subscription_filter(&sub, &sub_ctx);
            let was = before.and_then(|r| filter.matching_infos(r, &sub_ctx));
            let is = after.and_then(|r| filter.matching_infos(r, &sub_ctx));
            let (reason, reg, infos) = match (was, is, before, after) {
                (None, Some(infos), _, Some(r)) => ("newlyMatching", r, infos),
                (Some(_), Some(infos), _, Some(r)) => ("updated", r, infos),
                (Some(infos), None, Some(r), _) => ("noLongerMatching", r, infos),
                _ => continue,
            };
            let Some(ctx) = self.notification_context(&sub).await else {
                continue;
            };
            let data = vec![notified(reg, &infos, &ctx)];
            self.send_csource(tenant, &sub, ctx, Some(reason), data)
                .await;
        }
    }

    /// Sends each periodic subscription to registrations due at `now`
    /// what it matches (`notify::start_periodic_notifications` calls it
    /// each second).
    pub(crate) async fn notify_csource_periodically(&self, now: i64) {
        let Ok(table) = self.csource_subscriptions().await else {
            return;
        };
        for (tenant, sub) in crate::notify::take_due(table, now).await {
            let Some(ctx) = self.notification_context(&sub).await else {
                continue;
            };
            let data = self
                .matching_data(&tenant, &sub, &ctx)
                .await
                .unwrap_or_default();
            self.send_csource(&tenant, &sub, ctx, None, data).await;
        }
    }
}
