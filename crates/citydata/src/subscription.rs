//! Subscriptions (CIM 009 §5.2.12, §5.8): what a subscriber watches, the
//! checks a new one passes, how it is shown, and whether a change to an
//! entity concerns it. Delivery is `notify`'s.
//!
//! A subscription is kept as its document with the names it watches
//! expanded (entity types, watched and notified attributes) and the
//! `@context` it was made in, so that it can be shown in any context and
//! its notifications written in its own.

use crate::entity::{format_datetime, is_uri, parse_datetime, Entity};
use crate::geo::{GeoQuery, GeoRel, Geometry};
use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use crate::query::{parse_q, ScopeQ, TypeExpr, Q};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A subscription as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    /// The document, `@context` out, watched names expanded.
    pub doc: Map<String, Value>,
    /// The `@context` it was made in (a URL, a list or an object).
    pub context: Value,
    /// Notifications sent (counted as they go), the failed ones among them.
    #[serde(default)]
    pub times_sent: u64,
    #[serde(default)]
    pub times_failed: u64,
    #[serde(default)]
    pub last_notification: Option<i64>,
    /// When a periodic one was last due (sent or not: nothing selected).
    #[serde(skip)]
    pub last_due: Option<i64>,
    #[serde(default)]
    pub last_success: Option<i64>,
    #[serde(default)]
    pub last_failure: Option<i64>,
    pub created_at: i64,
    pub modified_at: i64,
    /// The URL of the @context the broker made for it (kind
    /// `ImplicitlyCreated`) when its own `@context` is not one URL: its
    /// `jsonldContext`, the document `{"@context": context}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implicit_context: Option<String>,
}

/// Whether an `@context` is more than one URL (a list of several, or
/// one with a context written inline), which a `Link` header cannot name.
pub fn is_compound(context: &Value) -> bool {
    match context {
        Value::Array(a) => a.len() > 1 || a.iter().any(|c| !c.is_string()),
        Value::Object(_) => true,
        _ => false,
    }
}

/// What a change does to an entity, for the triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    EntityCreated,
    EntityUpdated,
    EntityDeleted,
    AttributeCreated,
    AttributeUpdated,
    AttributeDeleted,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::EntityCreated => "entityCreated",
            Trigger::EntityUpdated => "entityUpdated",
            Trigger::EntityDeleted => "entityDeleted",
            Trigger::AttributeCreated => "attributeCreated",
            Trigger::AttributeUpdated => "attributeUpdated",
            Trigger::AttributeDeleted => "attributeDeleted",
        }
    }
}

const TRIGGERS: [&str; 6] = [
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
];

fn expand_list(v: &Value, ctx: &Context, what: &str) -> Result<Value> {
    let list = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| NgsiError::bad_data(format!("{what} is a non-empty array of names")))?;
    list.iter()
        .map(|n| {
            n.as_str()
                .filter(|s| crate::entity::is_valid_name(s))
                .map(|s| Value::String(ctx.expand(s)))
                .ok_or_else(|| NgsiError::bad_data(format!("{what} holds attribute names")))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

fn check_endpoint(n: &Map<String, Value>) -> Result<()> {
    let endpoint = n
        .get("endpoint")
        .and_then(Value::as_object)
        .ok_or_else(|| NgsiError::bad_data("notification.endpoint is required"))?;
    let uri = endpoint
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| NgsiError::bad_data("notification.endpoint.uri is required"))?;
    let scheme_ok = ["http://", "https://", "mqtt://", "mqtts://"]
        .iter()
        .any(|p| uri.starts_with(p));
    if !is_uri(uri) || !scheme_ok {
        return Err(NgsiError::bad_data(
            "notification.endpoint.uri is an http(s) or mqtt URL",
        ));
    }
    if let Some(accept) = endpoint.get("accept") {
        if !matches!(
            accept.as_str(),
            Some("application/json" | "application/ld+json" | "application/geo+json")
        ) {
            return Err(NgsiError::bad_data(
                "notification.endpoint.accept is a JSON media type",
            ));
        }
    }
    Ok(())
}

/// Checks a notification member and expands its attribute names.
fn parse_notification(n: &Value, ctx: &Context, partial: bool) -> Result<Map<String, Value>> {
    let mut n = n
        .as_object()
        .cloned()
        .ok_or_else(|| NgsiError::bad_data("notification is an object"))?;
    if !partial || n.contains_key("endpoint") {
        check_endpoint(&n)?;
    }
    if let Some(a) = n.get("attributes") {
        let expanded = expand_list(a, ctx, "notification.attributes")?;
        n.insert("attributes".into(), expanded);
    }
    if let Some(f) = n.get("format") {
        if !matches!(
            f.as_str(),
            Some("normalized" | "keyValues" | "concise" | "simplified")
        ) {
            return Err(NgsiError::bad_data(
                "notification.format is normalized, concise or keyValues",
            ));
        }
    }
    let has = |k: &str| n.contains_key(k);
    if (has("pick") || has("omit")) && has("attributes") {
        return Err(NgsiError::bad_data(
            "notification.pick and omit exclude attributes",
        ));
    }
    if has("pick") && has("omit") {
        return Err(NgsiError::bad_data(
            "notification.pick and omit exclude each other",
        ));
    }
    for k in [
        "status",
        "timesSent",
        "timesFailed",
        "lastNotification",
        "lastSuccess",
        "lastFailure",
    ] {
        n.remove(k);
    }
    Ok(n)
}

/// Checks a subscription document (or, `partial`, a patch of one),
/// expanding the names it watches.
pub fn parse(body: &Value, ctx: &Context, partial: bool) -> Result<Map<String, Value>> {
    let obj = body
        .as_object()
        .ok_or_else(|| NgsiError::invalid("a subscription is a JSON object"))?;
    if obj.is_empty() {
        return Err(NgsiError::bad_data("the subscription is empty"));
    }
    let mut doc = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "@context" => {}
            "id" => {
                if !v.as_str().is_some_and(is_uri) {
                    return Err(NgsiError::bad_data("a subscription's id is a URI"));
                }
                doc.insert(k.clone(), v.clone());
            }
            "type" => {
                if v.as_str() != Some("Subscription") {
                    return Err(NgsiError::bad_data(
                        "a subscription's type is \"Subscription\"",
                    ));
                }
                doc.insert(k.clone(), v.clone());
            }
            "entities" => {
                let list = v
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| NgsiError::bad_data("entities is a non-empty array"))?;
                let mut out = Vec::new();
                for sel in list {
                    let mut sel = sel
                        .as_object()
                        .cloned()
                        .ok_or_else(|| NgsiError::bad_data("an entity selector is an object"))?;
                    let t = sel
                        .get("type")
                        .and_then(Value::as_str)
                        .ok_or_else(|| NgsiError::bad_data("an entity selector names a type"))?;
                    // Checked as an expression, kept as given with each name expanded.
                    TypeExpr::parse(t, ctx).map_err(|e| NgsiError::bad_data(e.detail))?;
                    let expanded = expand_type_expr(t, ctx);
                    sel.insert("type".into(), expanded.into());
                    if let Some(id) = sel.get("id") {
                        if !id.as_str().is_some_and(is_uri) {
                            return Err(NgsiError::bad_data("an entity selector's id is a URI"));
                        }
                    }
                    if let Some(p) = sel.get("idPattern") {
                        let ok = p.as_str().is_some_and(|p| regex::Regex::new(p).is_ok());
                        if !ok {
                            return Err(NgsiError::bad_data(
                                "idPattern is not a regular expression",
                            ));
                        }
                    }
                    out.push(Value::Object(sel));
                }
                doc.insert(k.clone(), Value::Array(out));
            }
            "watchedAttributes" => {
                doc.insert(k.clone(), expand_list(v, ctx, "watchedAttributes")?);
            }
            "notificationTrigger" => {
                let ok = v.as_array().is_some_and(|a| {
                    !a.is_empty()
                        && a.iter()
                            .all(|t| t.as_str().is_some_and(|t| TRIGGERS.contains(&t)))
                });
                if !ok {
                    return Err(NgsiError::bad_data("notificationTrigger lists triggers"));
                }
                doc.insert(k.clone(), v.clone());
            }
            "q" => {
                let q = v
                    .as_str()
                    .ok_or_else(|| NgsiError::bad_data("q is a string"))?;
                parse_q(q).map_err(|e| NgsiError::bad_data(e.detail))?;
                doc.insert(k.clone(), v.clone());
            }
            "scopeQ" => {
                let q = v
                    .as_str()
                    .ok_or_else(|| NgsiError::bad_data("scopeQ is a string"))?;
                ScopeQ::parse(q).map_err(|e| NgsiError::bad_data(e.detail))?;
                doc.insert(k.clone(), v.clone());
            }
            "geoQ" => {
                geo_of(v, ctx)?;
                doc.insert(k.clone(), v.clone());
            }
            "notification" => {
                doc.insert(
                    k.clone(),
                    Value::Object(parse_notification(v, ctx, partial)?),
                );
            }
            "expiresAt" => {
                let at = v
                    .as_str()
                    .and_then(parse_datetime)
                    .ok_or_else(|| NgsiError::bad_data("expiresAt is a DateTime"))?;
                if at <= crate::jsonld::now_ms() {
                    return Err(NgsiError::bad_data("expiresAt is in the past"));
                }
                doc.insert(k.clone(), v.clone());
            }
            "throttling" | "timeInterval" => {
                if !v
                    .as_f64()
                    .is_some_and(|n| n >= 0.0 && (k != "timeInterval" || n > 0.0))
                {
                    return Err(NgsiError::bad_data(format!(
                        "{k} is a positive number of seconds"
                    )));
                }
                doc.insert(k.clone(), v.clone());
            }
            "isActive" | "showChanges" | "sysAttrs" | "localOnly" => {
                if !v.is_boolean() {
                    return Err(NgsiError::bad_data(format!("{k} is true or false")));
                }
                doc.insert(k.clone(), v.clone());
            }
            "jsonldContext" => {
                if !v
                    .as_str()
                    .is_some_and(|u| u.starts_with("http://") || u.starts_with("https://"))
                {
                    return Err(NgsiError::bad_data(
                        "jsonldContext is the URL of an @context",
                    ));
                }
                doc.insert(k.clone(), v.clone());
            }
            "status" | "createdAt" | "modifiedAt" => {}
            // Name, description, lang, csf, temporalQ and what a newer
            // version adds: kept as given.
            _ => {
                doc.insert(k.clone(), v.clone());
            }
        }
    }
    if !partial {
        if !doc.contains_key("notification") {
            return Err(NgsiError::bad_data("a subscription needs a notification"));
        }
        if !doc.contains_key("entities") && !doc.contains_key("watchedAttributes") {
            return Err(NgsiError::bad_data(
                "a subscription needs entities or watchedAttributes",
            ));
        }
    }
    if doc.contains_key("timeInterval")
        && (doc.contains_key("watchedAttributes") || doc.contains_key("throttling"))
    {
        return Err(NgsiError::bad_data(
            "timeInterval excludes watchedAttributes and throttling",
        ));
    }
    Ok(doc)
}

fn expand_type_expr(t: &str, ctx: &Context) -> String {
    let mut out = String::new();
    let mut name = String::new();
    for ch in t.chars().chain(std::iter::once('\0')) {
        if matches!(ch, ',' | '|' | ';' | '(' | ')' | '\0') {
            if !name.is_empty() {
                out.push_str(&ctx.expand(name.trim()));
                name.clear();
            }
            if ch != '\0' {
                out.push(ch);
            }
        } else {
            name.push(ch);
        }
    }
    out
}

fn compact_type_expr(t: &str, ctx: &Context) -> String {
    // Expanded names hold `:` and `/` but none of `,|;()`.
    let mut out = String::new();
    let mut name = String::new();
    for ch in t.chars().chain(std::iter::once('\0')) {
        if matches!(ch, ',' | '|' | ';' | '(' | ')' | '\0') {
            if !name.is_empty() {
                out.push_str(&ctx.compact(&name));
                name.clear();
            }
            if ch != '\0' {
                out.push(ch);
            }
        } else {
            name.push(ch);
        }
    }
    out
}

/// A `geoQ` member to a geo-query.
pub fn geo_of(v: &Value, ctx: &Context) -> Result<GeoQuery> {
    let rel = v
        .get("georel")
        .and_then(Value::as_str)
        .and_then(GeoRel::parse)
        .ok_or_else(|| NgsiError::bad_data("geoQ.georel is not a relation"))?;
    let coordinates = match v.get("coordinates") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(c) => c.clone(),
        None => Value::Null,
    };
    let geometry = v
        .get("geometry")
        .and_then(Value::as_str)
        .and_then(|g| Geometry::from_parts(g, &coordinates))
        .ok_or_else(|| {
            NgsiError::bad_data("geoQ's geometry and coordinates are not a GeoJSON geometry")
        })?;
    let property = ctx.expand(
        v.get("geoproperty")
            .and_then(Value::as_str)
            .unwrap_or("location"),
    );
    Ok(GeoQuery {
        rel,
        geometry,
        property,
    })
}

impl Subscription {
    /// A new subscription, nothing sent yet.
    pub fn new(id: String, doc: Map<String, Value>, context: Value, now: i64) -> Subscription {
        Subscription {
            id,
            doc,
            context,
            times_sent: 0,
            times_failed: 0,
            last_notification: None,
            last_due: None,
            last_success: None,
            last_failure: None,
            created_at: now,
            modified_at: now,
            implicit_context: None,
        }
    }

    /// The `@context` notifications are compacted with: the one named
    /// by `jsonldContext` if the subscriber gave one, else its own (the
    /// context made for it holds no more than its own).
    pub fn notification_context(&self) -> &Value {
        match self.doc.get("jsonldContext") {
            Some(url) if self.implicit_context.is_none() => url,
            _ => &self.context,
        }
    }

    pub fn is_active(&self, now: i64) -> bool {
        self.doc
            .get("isActive")
            .and_then(Value::as_bool)
            .unwrap_or(true)
            && !self.expired(now)
    }

    pub fn expired(&self, now: i64) -> bool {
        self.doc
            .get("expiresAt")
            .and_then(Value::as_str)
            .and_then(parse_datetime)
            .is_some_and(|t| t <= now)
    }

    pub fn status(&self, now: i64) -> &'static str {
        if self.expired(now) {
            "expired"
        } else if self.doc.get("isActive").and_then(Value::as_bool) == Some(false) {
            "paused"
        } else {
            "active"
        }
    }

    /// The URL of its @context, for a `Link` header and `jsonldContext`.
    pub fn context_url(&self) -> String {
        if let Some(url) = &self.implicit_context {
            return url.clone();
        }
        match &self.context {
            Value::String(s) => s.clone(),
            Value::Array(a) if a.len() == 1 && a[0].is_string() => {
                a[0].as_str().unwrap_or_default().to_owned()
            }
            _ => crate::jsonld::CORE_CONTEXT_URL.to_owned(),
        }
    }

    /// The subscription as shown in `ctx`.
    pub fn render(&self, ctx: &Context, now: i64, sys_attrs: bool) -> Value {
        let mut out = self.doc.clone();
        out.insert("id".into(), self.id.clone().into());
        out.insert("type".into(), "Subscription".into());
        let compact_list = |v: &Value| {
            Value::Array(
                v.as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(|s| Value::String(ctx.compact(s)))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        };
        if let Some(Value::Array(sels)) = out.get_mut("entities") {
            for sel in sels.iter_mut() {
                if let Some(t) = sel
                    .get("type")
                    .and_then(Value::as_str)
                    .map(|t| compact_type_expr(t, ctx))
                {
                    sel["type"] = t.into();
                }
            }
        }
        if let Some(w) = out.get("watchedAttributes").map(compact_list) {
            out.insert("watchedAttributes".into(), w);
        }
        if let Some(Value::Object(n)) = out.get_mut("notification") {
            if let Some(a) = n.get("attributes").map(compact_list) {
                n.insert("attributes".into(), a);
            }
            n.entry("format").or_insert("normalized".into());
            if self.times_sent > 0 {
                n.insert("timesSent".into(), self.times_sent.into());
                if self.times_failed > 0 {
                    n.insert("timesFailed".into(), self.times_failed.into());
                }
                n.insert(
                    "status".into(),
                    if self.last_failure > self.last_success {
                        "failed"
                    } else {
                        "ok"
                    }
                    .into(),
                );
            }
            for (k, t) in [
                ("lastNotification", self.last_notification),
                ("lastSuccess", self.last_success),
                ("lastFailure", self.last_failure),
            ] {
                if let Some(t) = t {
                    n.insert(k.into(), format_datetime(t).into());
                }
            }
        }
        out.insert("status".into(), self.status(now).into());
        if sys_attrs {
            out.insert("createdAt".into(), format_datetime(self.created_at).into());
            out.insert(
                "modifiedAt".into(),
                format_datetime(self.modified_at).into(),
            );
        }
        Value::Object(out)
    }

    /// The triggers it listens to.
    pub(crate) fn triggers(&self) -> Vec<&str> {
        match self
            .doc
            .get("notificationTrigger")
            .and_then(Value::as_array)
        {
            Some(list) => list.iter().filter_map(Value::as_str).collect(),
            None => vec![
                "attributeCreated",
                "attributeUpdated",
                "entityCreated",
                "entityUpdated",
            ],
        }
    }

    /// Does a change concern it? `changed` are the attributes (IRIs) the
    /// change created, updated or deleted, and the trigger of each.
    pub fn concerns(
        &self,
        e: &Entity,
        changed: &[(String, Trigger)],
        whole: Option<Trigger>,
        ctx: &Context,
    ) -> bool {
        if !self.names(e, ctx) {
            return false;
        }
        let triggers = self.triggers();
        let watched: Option<Vec<&str>> = self
            .doc
            .get("watchedAttributes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        let by_attr = changed.iter().any(|(attr, t)| {
            triggers.contains(&t.name())
                && watched.as_ref().is_none_or(|w| w.contains(&attr.as_str()))
        });
        let by_entity = whole.is_some_and(|t| triggers.contains(&t.name()) && watched.is_none());
        if !by_attr && !by_entity {
            return false;
        }
        whole == Some(Trigger::EntityDeleted) || self.filters(e, ctx)
    }

    /// Whether the subscription selects `e`, as it is now: its entity
    /// selectors and its filters (a periodic notification's entities).
    pub fn selects(&self, e: &Entity, ctx: &Context) -> bool {
        self.names(e, ctx) && self.filters(e, ctx)
    }

    /// Whether one of the subscription's entity selectors names `e`.
    fn names(&self, e: &Entity, ctx: &Context) -> bool {
        let Some(Value::Array(sels)) = self.doc.get("entities") else {
            return true;
        };
        sels.iter().any(|sel| {
            let type_ok = sel.get("type").and_then(Value::as_str).is_none_or(|t| {
                TypeExpr::parse(&compact_type_expr(t, ctx), ctx)
                    .is_ok_and(|te| te.matches(&e.types))
            });
            let id_ok = sel
                .get("id")
                .and_then(Value::as_str)
                .is_none_or(|id| id == e.id);
            let pattern_ok = sel
                .get("idPattern")
                .and_then(Value::as_str)
                .is_none_or(|p| regex::Regex::new(p).is_ok_and(|r| r.is_match(&e.id)));
            type_ok && id_ok && pattern_ok
        })
    }

    /// Whether `e` passes the subscription's `q`, `scopeQ` and `geoQ`.
    fn filters(&self, e: &Entity, ctx: &Context) -> bool {
        if let Some(q) = q_of(self) {
            if !q.matches(e, ctx) {
                return false;
            }
        }
        if let Some(s) = self
            .doc
            .get("scopeQ")
            .and_then(Value::as_str)
            .and_then(|s| ScopeQ::parse(s).ok())
        {
            if !s.matches(&e.scope) {
                return false;
            }
        }
        if let Some(g) = self.doc.get("geoQ").and_then(|g| geo_of(g, ctx).ok()) {
            let hit = e.attrs.get(&g.property).is_some_and(|is| {
                is.iter().any(|i| {
                    i.get("value")
                        .and_then(Geometry::from_geojson)
                        .is_some_and(|geom| g.matches(&geom))
                })
            });
            if !hit {
                return false;
            }
        }
        true
    }
}

/// The q a subscription filters with, parsed (for callers that cache).
/// It is read %-decoded, as a query's `q` is: clients write a q the same
/// way in both (`name=="Eiffel%20Tower"`); a `%` not followed by two hex
/// digits stays as it is.
pub fn q_of(s: &Subscription) -> Option<Q> {
    let q = s.doc.get("q").and_then(Value::as_str)?;
    parse_q(&crate::query::percent_decode(q)).ok()
}

/// A new subscription's id when it gives none.
pub fn new_id() -> String {
    format!("urn:ngsi-ld:Subscription:{}", uuid::Uuid::new_v4())
}

/// The changes between two versions of an entity, attribute by attribute.
pub fn changes(
    before: Option<&Entity>,
    after: Option<&Entity>,
) -> (Vec<(String, Trigger)>, Option<Trigger>) {
    match (before, after) {
        (None, Some(a)) => (
            a.attribute_names()
                .map(|n| (n.clone(), Trigger::AttributeCreated))
                .collect(),
            Some(Trigger::EntityCreated),
        ),
        (Some(b), None) => (
            b.attribute_names()
                .map(|n| (n.clone(), Trigger::AttributeDeleted))
                .collect(),
            Some(Trigger::EntityDeleted),
        ),
        (Some(b), Some(a)) => {
            let strip = |is: &Vec<crate::entity::Instance>| -> Vec<Map<String, Value>> {
                is.iter()
                    .map(|i| {
                        let mut i = i.clone();
                        i.remove("modifiedAt");
                        i.remove("createdAt");
                        i
                    })
                    .collect()
            };
            let mut out = Vec::new();
            for (n, is) in &a.attrs {
                match b.attrs.get(n) {
                    None => out.push((n.clone(), Trigger::AttributeCreated)),
                    // Instances of some datasetIds deleted, the others as
                    // they were.
                    Some(old)
                        if crate::entity::removed_instances(old, is).next().is_some() && {
                            let kept = strip(old);
                            strip(is).iter().all(|i| kept.contains(i))
                        } =>
                    {
                        out.push((n.clone(), Trigger::AttributeDeleted))
                    }
                    // An update that repeats a value still updates it (the
                    // peers notify on every write of a watched attribute).
                    Some(old) if strip(old) != strip(is) || old != is => {
                        out.push((n.clone(), Trigger::AttributeUpdated))
                    }
                    Some(_) => {}
                }
            }
            for n in b.attrs.keys() {
                if !a.attrs.contains_key(n) {
                    out.push((n.clone(), Trigger::AttributeDeleted));
                }
            }
            let whole = (!out.is_empty() || a.types != b.types || a.scope != b.scope)
                .then_some(Trigger::EntityUpdated);
            (out, whole)
        }
        (None, None) => (Vec::new(), None),
    }
}

/// The Notification document (§5.3.1).
pub fn notification(
    sub: &Subscription,
    data: Vec<Value>,
    trigger: Option<&str>,
    now: i64,
) -> Value {
    let mut n = json!({
        "id": format!("urn:ngsi-ld:Notification:{}", uuid::Uuid::new_v4()),
        "type": "Notification",
        "subscriptionId": sub.id,
        "notifiedAt": format_datetime(now),
        "data": data,
    });
    if let Some(t) = trigger {
        n["triggerReason"] = t.into();
    }
    n
}
