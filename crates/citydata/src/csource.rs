//! Context source registrations (CIM 009 §5.2.9, §5.9): what a context
//! source says it can answer (entities by type, id or pattern, their
//! attributes, where and when), the checks a registration passes, how it
//! is shown, and whether it matches a discovery query or a subscription
//! to registrations (§5.11).
//!
//! A registration is kept as its document with the names it registers
//! expanded (entity types, property and relationship names, and its own
//! context source properties), dates and geometries exactly as given,
//! and the `@context` it was made in.

use crate::entity::{format_datetime, is_uri, parse_datetime, Entity};
use crate::geo::{GeoQuery, Geometry};
use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use crate::query::{TypeExpr, Q};
use crate::subscription::Subscription;
use crate::temporal::Interval;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A registration as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    /// The document, `@context` out, registered names expanded.
    pub doc: Map<String, Value>,
    /// The `@context` it was made in.
    pub context: Value,
    pub created_at: i64,
    pub modified_at: i64,
}

const MODES: [&str; 4] = ["inclusive", "exclusive", "redirect", "auxiliary"];

/// Members that may be removed by a patch's null.
const OPTIONAL: [&str; 16] = [
    "mode",
    "operations",
    "expiresAt",
    "observationInterval",
    "managementInterval",
    "location",
    "observationSpace",
    "operationSpace",
    "registrationName",
    "description",
    "tenant",
    "contextSourceInfo",
    "refreshRate",
    "cacheDuration",
    "management",
    "scope",
];

/// Is `k` a member of a registration (the optional ones, those it must
/// have, those the broker keeps), not a context source property?
fn is_member(k: &str) -> bool {
    OPTIONAL.contains(&k)
        || [
            "id",
            "type",
            "information",
            "endpoint",
            "status",
            "timesSent",
        ]
        .contains(&k)
}

fn names(v: &Value, ctx: &Context, what: &str) -> Result<Value> {
    let list = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| NgsiError::bad_data(format!("{what} is a non-empty array of names")))?;
    let mut out = Vec::new();
    for n in list {
        let n = n
            .as_str()
            .filter(|n| crate::entity::is_valid_name(n) || n.contains(':'))
            .ok_or_else(|| NgsiError::bad_data(format!("{what} lists names")))?;
        out.push(Value::String(ctx.expand(n)));
    }
    Ok(Value::Array(out))
}

/// An EntityInfo's `type` (a name or a list of them), expanded.
fn entity_type(v: Option<&Value>, ctx: &Context) -> Result<Value> {
    match v {
        Some(Value::String(t)) if !t.is_empty() => Ok(Value::String(ctx.expand(t))),
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(|t| t.is_string()) => {
            Ok(Value::Array(
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|t| Value::String(ctx.expand(t)))
                    .collect(),
            ))
        }
        _ => Err(NgsiError::bad_data("an EntityInfo names its type")),
    }
}

/// Checks the `entities` of a RegistrationInfo or a subscription,
/// expanding their types.
pub fn entity_infos(v: &Value, ctx: &Context) -> Result<Value> {
    let list = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| NgsiError::bad_data("entities is a non-empty array"))?;
    let mut out = Vec::new();
    for info in list {
        let mut info = info
            .as_object()
            .cloned()
            .ok_or_else(|| NgsiError::bad_data("an EntityInfo is an object"))?;
        let t = entity_type(info.get("type"), ctx)?;
        info.insert("type".into(), t);
        if let Some(id) = info.get("id") {
            if !id.as_str().is_some_and(is_uri) {
                return Err(NgsiError::bad_data("an EntityInfo's id is a URI"));
            }
        }
        if let Some(p) = info.get("idPattern") {
            if p.as_str().is_none_or(|p| regex::Regex::new(p).is_err()) {
                return Err(NgsiError::bad_data(
                    "an EntityInfo's idPattern is a regular expression",
                ));
            }
        }
        out.push(Value::Object(info));
    }
    Ok(Value::Array(out))
}

fn information(v: &Value, ctx: &Context) -> Result<Value> {
    let list = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| NgsiError::bad_data("information is a non-empty array"))?;
    let mut out = Vec::new();
    for info in list {
        let obj = info
            .as_object()
            .ok_or_else(|| NgsiError::bad_data("a RegistrationInfo is an object"))?;
        let mut info = Map::new();
        for (k, v) in obj {
            let v = match k.as_str() {
                "entities" => entity_infos(v, ctx)?,
                "propertyNames" | "relationshipNames" => names(v, ctx, k)?,
                _ => v.clone(),
            };
            info.insert(k.clone(), v);
        }
        out.push(Value::Object(info));
    }
    Ok(Value::Array(out))
}

fn time_interval(v: &Value, what: &str) -> Result<()> {
    let start = v
        .get("startAt")
        .and_then(Value::as_str)
        .and_then(parse_datetime);
    let end = v.get("endAt").map(|e| e.as_str().and_then(parse_datetime));
    match (start, end) {
        (Some(_), None) => Ok(()),
        (Some(s), Some(Some(e))) if e >= s => Ok(()),
        _ => Err(NgsiError::bad_data(format!(
            "{what} has a startAt DateTime and, if an endAt, a later one"
        ))),
    }
}

/// Checks a registration (or, `partial`, a patch of one), expanding the
/// names it registers; a patch's nulls stay, to remove their members.
pub fn parse(body: &Value, ctx: &Context, partial: bool) -> Result<Map<String, Value>> {
    let obj = body
        .as_object()
        .ok_or_else(|| NgsiError::invalid("a registration is a JSON object"))?;
    let mut doc = Map::new();
    for (k, v) in obj {
        if v.is_null() {
            if partial && OPTIONAL.contains(&k.as_str()) {
                doc.insert(k.clone(), Value::Null);
                continue;
            }
            if partial && !is_member(k) && k != "@context" {
                doc.insert(ctx.expand(k), Value::Null);
                continue;
            }
            return Err(NgsiError::bad_data(format!("{k} may not be null")));
        }
        let value = match k.as_str() {
            "@context" | "status" | "createdAt" | "modifiedAt" | "timesSent" => continue,
            "id" => {
                if !v.as_str().is_some_and(is_uri) {
                    return Err(NgsiError::bad_data("a registration's id is a URI"));
                }
                v.clone()
            }
            "type" => {
                if v.as_str() != Some("ContextSourceRegistration") {
                    return Err(NgsiError::bad_data(
                        "a registration's type is \"ContextSourceRegistration\"",
                    ));
                }
                v.clone()
            }
            "information" => information(v, ctx)?,
            "endpoint" => {
                if !v.as_str().is_some_and(is_uri) {
                    return Err(NgsiError::bad_data("endpoint is a URI"));
                }
                v.clone()
            }
            "mode" => {
                if !v.as_str().is_some_and(|m| MODES.contains(&m)) {
                    return Err(NgsiError::bad_data(
                        "mode is inclusive, exclusive, redirect or auxiliary",
                    ));
                }
                v.clone()
            }
            "operations" => {
                if !v
                    .as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
                {
                    return Err(NgsiError::bad_data("operations lists operation names"));
                }
                v.clone()
            }
            "expiresAt" => {
                let at = v
                    .as_str()
                    .and_then(parse_datetime)
                    .ok_or_else(|| NgsiError::bad_data("expiresAt is a DateTime"))?;
                if !partial && at <= crate::jsonld::now_ms() {
                    return Err(NgsiError::bad_data("expiresAt is in the past"));
                }
                v.clone()
            }
            "observationInterval" | "managementInterval" => {
                time_interval(v, k)?;
                v.clone()
            }
            "location" | "observationSpace" | "operationSpace" => {
                if Geometry::from_geojson(v).is_none() {
                    return Err(NgsiError::bad_data(format!("{k} is a GeoJSON geometry")));
                }
                v.clone()
            }
            "registrationName" | "description" | "tenant" => {
                if !v.is_string() {
                    return Err(NgsiError::bad_data(format!("{k} is a string")));
                }
                v.clone()
            }
            "refreshRate" | "cacheDuration" => {
                if v.as_str()
                    .is_none_or(|d| crate::temporal::parse_duration(d).is_none())
                {
                    return Err(NgsiError::bad_data(format!("{k} is an ISO 8601 duration")));
                }
                v.clone()
            }
            "contextSourceInfo" => {
                context_source_info(v)?;
                v.clone()
            }
            "management" | "scope" => v.clone(),
            // A context source property, by its expanded name.
            _ => {
                doc.insert(ctx.expand(k), v.clone());
                continue;
            }
        };
        doc.insert(k.clone(), value);
    }
    if !partial {
        if doc.get("type").is_none() {
            return Err(NgsiError::bad_data(
                "a registration's type is \"ContextSourceRegistration\"",
            ));
        }
        if !doc.contains_key("information") {
            return Err(NgsiError::bad_data("a registration needs information"));
        }
        if !doc.contains_key("endpoint") {
            return Err(NgsiError::bad_data("a registration needs an endpoint"));
        }
    }
    Ok(doc)
}

/// Checks `contextSourceInfo`: key-value pairs (CIM 009 §5.2.9), both
/// strings.
fn context_source_info(v: &Value) -> Result<()> {
    let pairs = v
        .as_array()
        .ok_or_else(|| NgsiError::bad_data("contextSourceInfo is an array of {key, value}"))?;
    for p in pairs {
        let ok = p.as_object().is_some_and(|o| {
            o.get("key")
                .is_some_and(|k| k.as_str().is_some_and(|k| !k.is_empty()))
                && o.get("value").is_some_and(Value::is_string)
        });
        if !ok {
            return Err(NgsiError::bad_data(
                "contextSourceInfo is an array of {key, value}, both strings",
            ));
        }
    }
    Ok(())
}

/// The `contextSourceInfo` pairs a forward to the source carries as
/// HTTP headers (as the peers do: a source's `Authorization`, an API
/// key): those whose key is a header name and a header the broker does
/// not set itself.
pub fn forwarded_headers(doc: &Map<String, Value>) -> Vec<(String, String)> {
    const OWN: [&str; 10] = [
        "host",
        "via",
        "content-type",
        "content-length",
        "link",
        "accept",
        "ngsild-tenant",
        "connection",
        "transfer-encoding",
        "jsonldcontext",
    ];
    doc.get("contextSourceInfo")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let key = p.get("key")?.as_str()?;
            let value = p.get("value")?.as_str()?;
            let name_ok = key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let value_ok = value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
            (name_ok && value_ok && !OWN.contains(&key.to_ascii_lowercase().as_str()))
                .then(|| (key.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Whether a `contextSourceInfo` key names a credential, whose value is
/// sent to the source and shown to no one.
fn is_credential(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || [
        "token", "secret", "password", "apikey", "api-key", "api_key",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// The credential value shown in place of one.
pub const WITHHELD: &str = "(withheld)";

/// A new registration's id when it gives none.
pub fn new_id() -> String {
    format!(
        "urn:ngsi-ld:ContextSourceRegistration:{}",
        uuid::Uuid::new_v4()
    )
}

fn compact_names(v: &mut Value, ctx: &Context) {
    if let Value::Array(a) = v {
        for n in a.iter_mut() {
            if let Some(s) = n.as_str() {
                *n = Value::String(ctx.compact(s));
            }
        }
    } else if let Some(s) = v.as_str() {
        *v = Value::String(ctx.compact(s));
    }
}

/// RegistrationInfos as shown in `ctx`; entity types as lists if
/// `type_lists`.
fn render_information(infos: &[Value], ctx: &Context, type_lists: bool) -> Vec<Value> {
    infos
        .iter()
        .map(|info| {
            let mut info = info.clone();
            if let Some(Value::Array(es)) = info.get_mut("entities") {
                for e in es.iter_mut() {
                    if let Some(t) = e.get_mut("type") {
                        compact_names(t, ctx);
                        if type_lists && t.is_string() {
                            *t = Value::Array(vec![t.clone()]);
                        }
                    }
                }
            }
            for k in ["propertyNames", "relationshipNames"] {
                if let Some(v) = info.get_mut(k) {
                    compact_names(v, ctx);
                }
            }
            info
        })
        .collect()
}

impl Registration {
    /// The registration as shown in `ctx`.
    pub fn render(&self, ctx: &Context, sys_attrs: bool) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), self.id.clone().into());
        out.insert("type".into(), "ContextSourceRegistration".into());
        for (k, v) in &self.doc {
            match k.as_str() {
                "id" | "type" => {}
                "information" => {
                    let infos = v.as_array().map(Vec::as_slice).unwrap_or_default();
                    out.insert(k.clone(), render_information(infos, ctx, false).into());
                }
                // Credentials for the source go to it, and are shown to
                // no one who reads the registration.
                "contextSourceInfo" => {
                    let mut pairs = v.clone();
                    for p in pairs.as_array_mut().into_iter().flatten() {
                        if p["key"].as_str().is_some_and(is_credential) {
                            p["value"] = WITHHELD.into();
                        }
                    }
                    out.insert(k.clone(), pairs);
                }
                _ if is_member(k) => {
                    out.insert(k.clone(), v.clone());
                }
                _ => {
                    out.insert(ctx.compact(k), v.clone());
                }
            }
        }
        if sys_attrs {
            out.insert("createdAt".into(), format_datetime(self.created_at).into());
            out.insert(
                "modifiedAt".into(),
                format_datetime(self.modified_at).into(),
            );
        }
        Value::Object(out)
    }

    fn infos(&self) -> &[Value] {
        self.doc
            .get("information")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn expired(&self, now: i64) -> bool {
        self.doc
            .get("expiresAt")
            .and_then(Value::as_str)
            .and_then(parse_datetime)
            .is_some_and(|t| t <= now)
    }

    /// Its context source properties as an entity's attributes (what `q`
    /// reads).
    fn as_entity(&self) -> Entity {
        let attrs = self
            .doc
            .iter()
            .filter(|(k, _)| !is_member(k))
            .map(|(k, v)| {
                let mut i = Map::new();
                i.insert("type".into(), "Property".into());
                i.insert("value".into(), v.clone());
                (k.clone(), vec![i])
            })
            .collect();
        Entity {
            id: self.id.clone(),
            types: vec!["ContextSourceRegistration".into()],
            scope: Vec::new(),
            created_at: self.created_at,
            modified_at: self.modified_at,
            attrs,
        }
    }

    /// Its geometry `property` names (`location`, `observationSpace`,
    /// `operationSpace`, by short name or IRI).
    fn geometry(&self, property: &str) -> Option<Geometry> {
        let short = property.rsplit('/').next().unwrap_or(property);
        self.doc.get(short).and_then(Geometry::from_geojson)
    }

    /// Does it hold an interval that meets `t`? `timeproperty`
    /// `observedAt` (the default) reads `observationInterval`; the others
    /// `managementInterval`.
    fn in_time(&self, t: &TimeQuery) -> bool {
        let key = if t.property == "observedAt" {
            "observationInterval"
        } else {
            "managementInterval"
        };
        let Some(iv) = self.doc.get(key) else {
            return false;
        };
        let start = iv
            .get("startAt")
            .and_then(Value::as_str)
            .and_then(parse_datetime)
            .unwrap_or(i64::MIN);
        let end = iv
            .get("endAt")
            .and_then(Value::as_str)
            .and_then(parse_datetime)
            .unwrap_or(i64::MAX);
        start < t.interval.until && end > t.interval.from
    }
}

/// A temporal query over registrations' intervals.
#[derive(Debug, Clone)]
pub struct TimeQuery {
    pub interval: Interval,
    /// `observedAt`, `createdAt` or `modifiedAt`.
    pub property: String,
}

/// What selects registrations (§5.12, discovery) or which registrations
/// a subscription to them watches.
#[derive(Debug, Clone, Default)]
pub struct RegFilter {
    /// Entity selectors, each type an expression of expanded names.
    pub entities: Vec<Selector>,
    /// Attribute names (IRIs): registrations of any of them.
    pub attrs: Option<Vec<String>>,
    pub q: Option<Q>,
    pub geo: Option<GeoQuery>,
    pub time: Option<TimeQuery>,
}

/// Which entities a query asks about.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub types: Option<TypeExpr>,
    pub ids: Option<Vec<String>>,
    pub id_pattern: Option<String>,
}

impl Selector {
    /// Could an EntityInfo give entities this selector wants?
    fn meets(&self, info: &Map<String, Value>) -> bool {
        if let Some(t) = &self.types {
            let types: Vec<String> = match info.get("type") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            if !t.matches(&types) {
                return false;
            }
        }
        let (id, pattern) = (
            info.get("id").and_then(Value::as_str),
            info.get("idPattern").and_then(Value::as_str),
        );
        let regex = |p: &str| regex::Regex::new(p).ok();
        if let Some(ids) = &self.ids {
            let ok = match (id, pattern) {
                (Some(id), _) => ids.iter().any(|x| x == id),
                (None, Some(p)) => regex(p).is_some_and(|r| ids.iter().any(|x| r.is_match(x))),
                (None, None) => true,
            };
            if !ok {
                return false;
            }
        }
        if let Some(want) = &self.id_pattern {
            let ok = match (id, pattern) {
                (Some(id), _) => regex(want).is_some_and(|r| r.is_match(id)),
                (None, Some(p)) => p == want,
                (None, None) => true,
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

impl RegFilter {
    /// Does a RegistrationInfo register what the filter asks about?
    fn meets_info(&self, info: &Map<String, Value>) -> bool {
        if !self.entities.is_empty() {
            if let Some(Value::Array(es)) = info.get("entities") {
                let hit = es
                    .iter()
                    .filter_map(Value::as_object)
                    .any(|e| self.entities.iter().any(|s| s.meets(e)));
                if !hit {
                    return false;
                }
            }
            // Without entities it registers entities of every type.
        }
        if let Some(want) = &self.attrs {
            let listed: Vec<&str> = ["propertyNames", "relationshipNames"]
                .iter()
                .filter_map(|k| info.get(*k).and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let all_attributes =
                !info.contains_key("propertyNames") && !info.contains_key("relationshipNames");
            if !all_attributes && !want.iter().any(|a| listed.contains(&a.as_str())) {
                return false;
            }
        }
        true
    }

    /// Does the registration match? Its RegistrationInfos that do, if
    /// any (the whole registration matches through them).
    pub fn matching_infos<'a>(&self, r: &'a Registration, ctx: &Context) -> Option<Vec<&'a Value>> {
        let infos: Vec<&Value> = r
            .infos()
            .iter()
            .filter(|i| i.as_object().is_some_and(|i| self.meets_info(i)))
            .collect();
        if infos.is_empty() {
            return None;
        }
        if let Some(q) = &self.q {
            if !q.matches(&r.as_entity(), ctx) {
                return None;
            }
        }
        if let Some(g) = &self.geo {
            if !r.geometry(&g.property).is_some_and(|geom| g.matches(&geom)) {
                return None;
            }
        }
        if let Some(t) = &self.time {
            if !r.in_time(t) {
                return None;
            }
        }
        Some(infos)
    }

    pub fn matches(&self, r: &Registration, ctx: &Context) -> bool {
        self.matching_infos(r, ctx).is_some()
    }
}

/// What a subscription to registrations watches, as a filter (its
/// `entities`, `watchedAttributes`, `q`, `geoQ`, `temporalQ`).
pub fn subscription_filter(sub: &Subscription, ctx: &Context) -> RegFilter {
    let entities = sub
        .doc
        .get("entities")
        .and_then(Value::as_array)
        .map(|sels| {
            sels.iter()
                .map(|s| Selector {
                    types: s
                        .get("type")
                        .and_then(Value::as_str)
                        .map(|t| TypeExpr(vec![vec![t.to_owned()]])),
                    ids: s
                        .get("id")
                        .and_then(Value::as_str)
                        .map(|id| vec![id.to_owned()]),
                    id_pattern: s
                        .get("idPattern")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default();
    let attrs = sub
        .doc
        .get("watchedAttributes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        });
    let q = sub
        .doc
        .get("q")
        .and_then(Value::as_str)
        .and_then(|q| crate::query::parse_q(q).ok());
    let geo = sub
        .doc
        .get("geoQ")
        .and_then(|g| crate::subscription::geo_of(g, ctx).ok());
    let time = sub.doc.get("temporalQ").and_then(|t| {
        let interval = Interval::parse(
            t.get("timerel").and_then(Value::as_str),
            t.get("timeAt").and_then(Value::as_str),
            t.get("endTimeAt").and_then(Value::as_str),
        )
        .ok()?;
        Some(TimeQuery {
            interval,
            property: t
                .get("timeproperty")
                .and_then(Value::as_str)
                .unwrap_or("observedAt")
                .to_owned(),
        })
    });
    RegFilter {
        entities,
        attrs,
        q,
        geo,
        time,
    }
}

/// A registration as a subscription to registrations is told of it: in
/// the subscription's context, with the RegistrationInfos that match.
pub fn notified(r: &Registration, infos: &[&Value], ctx: &Context) -> Value {
    let mut out = r.render(ctx, false);
    let infos: Vec<Value> = infos.iter().map(|v| (*v).clone()).collect();
    out["information"] = render_information(&infos, ctx, true).into();
    out
}

/// Checks a subscription to registrations: as an entity subscription,
/// but without entity-only members, and a `q` must compare something.
pub fn parse_subscription(
    body: &Value,
    ctx: &Context,
    partial: bool,
) -> Result<Map<String, Value>> {
    let mut doc = crate::subscription::parse(body, ctx, partial)?;
    if let Some(q) = doc.get("q").and_then(Value::as_str) {
        let has_operator = ["==", "!=", ">", "<", "~="].iter().any(|op| q.contains(op));
        if !has_operator {
            return Err(NgsiError::bad_data(
                "q compares context source properties with values",
            ));
        }
    }
    if let Some(t) = doc.get("temporalQ") {
        Interval::parse(
            t.get("timerel").and_then(Value::as_str),
            t.get("timeAt").and_then(Value::as_str),
            t.get("endTimeAt").and_then(Value::as_str),
        )?;
    }
    if let Some(Value::Array(sels)) = doc.get_mut("entities") {
        // Entity types here are names, not expressions.
        for s in sels.iter_mut() {
            if s.get("type").is_none() {
                return Err(NgsiError::bad_data("an entity selector names a type"));
            }
        }
    }
    doc.remove("notificationTrigger");
    Ok(doc)
}

/// A subscription to registrations as shown: its delivery counted as a
/// whole (`timesSent` counts failed attempts too).
pub fn render_subscription(sub: &Subscription, ctx: &Context, now: i64, sys: bool) -> Value {
    let mut out = sub.render(ctx, now, sys);
    if let Some(Value::Object(n)) = out.get_mut("notification") {
        n.remove("timesFailed");
        if sub.times_sent + sub.times_failed > 0 {
            n.insert(
                "timesSent".into(),
                (sub.times_sent + sub.times_failed).into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg(v: Value) -> Registration {
        let ctx = Context::core();
        Registration {
            id: v["id"].as_str().unwrap().into(),
            doc: parse(&v, &ctx, false).unwrap(),
            context: Value::Null,
            created_at: 0,
            modified_at: 0,
        }
    }

    #[test]
    fn registrations_check_and_keep_what_they_were_given() {
        let ctx = Context::core();
        let body = json!({
            "id": "urn:ngsi-ld:ContextSourceRegistration:1",
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": "Building"}], "propertyNames": ["name"]}],
            "endpoint": "http://cs.example:1026",
            "expiresAt": "2035-11-29T14:53:15Z",
            "location": {"type": "Point", "coordinates": [-8.521, 41.2]},
            "csourceProperty1": "aValue"
        });
        let r = reg(body.clone());
        let shown = r.render(&ctx, false);
        assert_eq!(
            shown, body,
            "shown in the context it was made in, dates as given"
        );
        let mut bad = body.clone();
        bad["information"] = Value::Null;
        assert!(parse(&bad, &ctx, false).is_err());
        bad = body.clone();
        bad["expiresAt"] = " 2018-11-29T14:53:15Z".into();
        assert!(parse(&bad, &ctx, false).is_err());
        bad = body.clone();
        bad.as_object_mut().unwrap().remove("endpoint");
        assert!(parse(&bad, &ctx, false).is_err());
        bad = body;
        bad["type"] = "building".into();
        assert!(parse(&bad, &ctx, false).is_err());
        // A patch's null removes an optional member, never a required one.
        assert!(parse(&json!({"expiresAt": null}), &ctx, true).is_ok());
        assert!(parse(&json!({"information": null}), &ctx, true).is_err());
    }

    #[test]
    fn discovery_matches_types_ids_attributes_places_and_times() {
        let ctx = Context::core();
        let r = reg(json!({
            "id": "urn:ngsi-ld:ContextSourceRegistration:2",
            "type": "ContextSourceRegistration",
            "information": [
                {"entities": [{"type": "Vehicle", "id": "urn:ngsi-ld:Vehicle:A456"}],
                 "propertyNames": ["speed"]},
                {"entities": [{"type": "OffStreetParking", "idPattern": ".*downtown$"}]},
                {"propertyNames": ["name"]}
            ],
            "endpoint": "http://cs.example:1026",
            "location": {"type": "Point", "coordinates": [-8.521, 41.2]},
            "observationInterval": {"startAt": "2020-08-01T22:07:00Z", "endAt": "2021-08-01T21:07:00Z"},
            "csourceProperty1": "aValue"
        }));
        let by_type = |t: &str| RegFilter {
            entities: vec![Selector {
                types: Some(TypeExpr::parse(t, &ctx).unwrap()),
                ..Selector::default()
            }],
            ..RegFilter::default()
        };
        // An info without entities registers every type.
        assert_eq!(
            by_type("Building").matching_infos(&r, &ctx).unwrap().len(),
            1
        );
        assert_eq!(
            by_type("Vehicle").matching_infos(&r, &ctx).unwrap().len(),
            2
        );
        let mut f = by_type("OffStreetParking");
        f.entities[0].id_pattern = Some(".*downtown$".into());
        assert!(f.matches(&r, &ctx));
        f.entities[0].id_pattern = None;
        f.entities[0].ids = Some(vec!["urn:ngsi-ld:OffStreetParking:downtown".into()]);
        assert!(f.matches(&r, &ctx));
        let attrs = RegFilter {
            attrs: Some(vec![ctx.expand("speed")]),
            ..by_type("Vehicle")
        };
        assert_eq!(attrs.matching_infos(&r, &ctx).unwrap().len(), 1);
        let q = RegFilter {
            q: Some(crate::query::parse_q("csourceProperty1==\"aValue\"").unwrap()),
            ..by_type("Vehicle")
        };
        assert!(q.matches(&r, &ctx));
        let near = RegFilter {
            geo: Some(GeoQuery {
                rel: crate::geo::GeoRel::parse("near;maxDistance==2000").unwrap(),
                geometry: Geometry::from_geojson(
                    &json!({"type":"Point","coordinates":[-8.503,41.202]}),
                )
                .unwrap(),
                property: ctx.expand("location"),
            }),
            ..by_type("Vehicle")
        };
        assert!(near.matches(&r, &ctx));
        let when = |rel: &str, at: &str, property: &str| RegFilter {
            time: Some(TimeQuery {
                interval: Interval::parse(Some(rel), Some(at), None).unwrap(),
                property: property.into(),
            }),
            ..by_type("Vehicle")
        };
        assert!(when("before", "2021-08-01T22:00:00Z", "observedAt").matches(&r, &ctx));
        assert!(!when("before", "2019-01-01T00:00:00Z", "observedAt").matches(&r, &ctx));
        assert!(!when("after", "2022-01-01T00:00:00Z", "observedAt").matches(&r, &ctx));
        // No managementInterval: a query on it does not match.
        assert!(!when("before", "2021-08-01T22:00:00Z", "modifiedAt").matches(&r, &ctx));
    }
}
