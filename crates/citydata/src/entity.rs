//! NGSI-LD entities: parsed from their normalized or concise form into
//! the stored form (expanded names, every attribute an array of typed
//! instances, times in milliseconds), and rendered back in the form and
//! context a request asks for.
//!
//! The stored form is what the peers converge on (Antares' "expanded keys,
//! NGSI-LD-shaped values"): names are IRIs, values stay JSON; an instance
//! is a JSON object whose core members keep their short names (`type`,
//! `value`, `object`, `observedAt`, …) and whose other members are its
//! sub-attributes, by IRI.

use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One instance of an attribute (or a sub-attribute).
pub type Instance = Map<String, Value>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entity {
    pub id: String,
    /// Expanded type IRIs, in the order given, without duplicates.
    #[serde(rename = "type")]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<String>,
    #[serde(rename = "createdAt")]
    pub created_at: i64,
    #[serde(rename = "modifiedAt")]
    pub modified_at: i64,
    /// Expanded attribute name → its instances (distinct datasetIds; the
    /// default instance has none).
    pub attrs: BTreeMap<String, Vec<Instance>>,
}

/// The attribute types of NGSI-LD, as they are written.
pub const ATTRIBUTE_TYPES: [&str; 8] = [
    "Property",
    "Relationship",
    "GeoProperty",
    "LanguageProperty",
    "VocabProperty",
    "ListProperty",
    "ListRelationship",
    "JsonProperty",
];

const GEOMETRY_TYPES: [&str; 6] = [
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
];

/// Members of an instance that are not sub-attributes.
const CORE_MEMBERS: [&str; 14] = [
    "type",
    "value",
    "object",
    "languageMap",
    "vocab",
    "valueList",
    "objectList",
    "json",
    "datasetId",
    "observedAt",
    "unitCode",
    "objectType",
    "createdAt",
    "modifiedAt",
];

/// Attributes that must be GeoProperties (CIM 009 §4.7).
const GEO_ATTRIBUTES: [&str; 3] = [
    "https://uri.etsi.org/ngsi-ld/location",
    "https://uri.etsi.org/ngsi-ld/observationSpace",
    "https://uri.etsi.org/ngsi-ld/operationSpace",
];

/// Is `s` an absolute URI (a scheme, then something)?
pub fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    !rest.is_empty()
        && scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
}

/// Is `s` a name an attribute or a type may have (§4.6.2: no characters
/// that the query languages use)?
pub fn is_valid_name(s: &str) -> bool {
    // `@…` are JSON-LD's keywords, no one's names.
    !s.is_empty()
        && !s.starts_with('@')
        && !s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '<' | '>' | '"' | '\'' | '=' | ';' | '(' | ')' | '\\' | '&' | '?' | '*'
                )
        })
}

/// Parses a DateTime (ISO 8601 with a zone) to milliseconds.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Milliseconds to the DateTime the broker writes (UTC, milliseconds).
pub fn format_datetime(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an entity's `type` member into expanded IRIs.
pub fn parse_types(v: &Value, ctx: &Context) -> Result<Vec<String>> {
    let names: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) if !a.is_empty() => a
            .iter()
            .map(|t| {
                t.as_str()
                    .ok_or_else(|| NgsiError::bad_data("an entity type is a string"))
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(NgsiError::bad_data(
                "an entity's type is a string or a non-empty array of strings",
            ))
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !is_valid_name(n) {
            return Err(NgsiError::bad_data(format!(
                "{n:?} is not a valid entity type"
            )));
        }
        let iri = ctx.expand(n);
        if iri.starts_with('@') {
            return Err(NgsiError::bad_data(format!(
                "{n:?} is a JSON-LD keyword, not a type"
            )));
        }
        if !out.contains(&iri) {
            out.push(iri);
        }
    }
    Ok(out)
}

fn parse_scope(v: &Value) -> Result<Vec<String>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|s| {
            let s = s
                .as_str()
                .ok_or_else(|| NgsiError::bad_data("a scope is a string"))?;
            let valid = s.starts_with('/')
                && s[1..]
                    .split('/')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'));
            if valid {
                Ok(s.to_owned())
            } else {
                Err(NgsiError::bad_data(format!("{s:?} is not a valid scope")))
            }
        })
        .collect()
}

/// What an incoming entity or fragment holds besides its attributes.
#[derive(Debug, Default)]
pub struct Fragment {
    pub id: Option<String>,
    pub types: Option<Vec<String>>,
    pub scope: Option<Vec<String>>,
    /// Attributes by IRI; `None` where a merge deletes the attribute
    /// (`"urn:ngsi-ld:null"` or JSON null).
    pub attrs: BTreeMap<String, Option<Vec<Instance>>>,
}

/// How nulls read in a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    Refuse,
    /// Merge-patch: null deletes.
    Delete,
    /// Only `urn:ngsi-ld:null` deletes; a JSON null is refused (batch
    /// update and merge, as the ETSI suite reads §5.6.x).
    DeleteMarked,
}

impl Nulls {
    /// Does this value of `name`, where a fragment may delete, delete?
    fn deletes(self, v: &Value, name: &str) -> Result<bool> {
        Ok(match self {
            Nulls::Refuse => false,
            Nulls::Delete => v.is_null() || v.as_str() == Some(NGSI_LD_NULL),
            Nulls::DeleteMarked if v.is_null() => {
                return Err(NgsiError::bad_data(format!(
                    "{name}: JSON null is not a value here (urn:ngsi-ld:null deletes)"
                )))
            }
            Nulls::DeleteMarked => v.as_str() == Some(NGSI_LD_NULL),
        })
    }
}

/// The NGSI-LD null: a value that deletes, or that shows what was deleted.
pub const NGSI_LD_NULL: &str = "urn:ngsi-ld:null";

/// Parses an entity or a fragment of one (`@context` already taken out).
pub fn parse_fragment(body: &Value, ctx: &Context, now: i64, nulls: Nulls) -> Result<Fragment> {
    let obj = body
        .as_object()
        .ok_or_else(|| NgsiError::invalid("the payload must be a JSON object"))?;
    let mut f = Fragment::default();
    for (key, v) in obj {
        match key.as_str() {
            "@context" => {}
            "id" | "@id" => {
                let id = v
                    .as_str()
                    .filter(|s| is_uri(s))
                    .ok_or_else(|| NgsiError::bad_data("the entity id must be a URI"))?;
                f.id = Some(id.to_owned());
            }
            "type" | "@type" => f.types = Some(parse_types(v, ctx)?),
            "scope" => {
                f.scope = if v.is_null() && nulls != Nulls::Refuse {
                    Some(Vec::new())
                } else {
                    Some(parse_scope(v)?)
                }
            }
            "createdAt" | "modifiedAt" | "deletedAt" => {}
            name => {
                if !is_valid_name(name) {
                    return Err(NgsiError::bad_data(format!(
                        "{name:?} is not a valid attribute name"
                    )));
                }
                let iri = ctx.expand(name);
                if nulls.deletes(v, name)? {
                    f.attrs.insert(iri, None);
                    continue;
                }
                let instances = parse_attribute(&iri, v, ctx, now, nulls)?;
                f.attrs.insert(iri, Some(instances));
            }
        }
    }
    Ok(f)
}

/// The member of a staged instance that says "delete the instance of
/// this datasetId" (never stored).
pub const DELETE_MARK: &str = "@delete";

/// Does this instance delete (its value member null, as `nulls` reads
/// nulls)?
fn deletes_instance(obj: &Map<String, Value>, nulls: Nulls, name: &str) -> Result<bool> {
    for m in [
        "value",
        "object",
        "vocab",
        "valueList",
        "objectList",
        "json",
    ] {
        if let Some(v) = obj.get(m) {
            return match v.as_array().map(Vec::as_slice) {
                Some([one]) => nulls.deletes(one, name),
                _ => nulls.deletes(v, name),
            };
        }
    }
    match obj.get("languageMap") {
        Some(Value::Object(map)) if map.len() == 1 => match map.get("@none") {
            Some(none) => nulls.deletes(none, name),
            None => Ok(false),
        },
        Some(Value::Null) => nulls.deletes(&Value::Null, name),
        _ => Ok(false),
    }
}

/// A deleted attribute instance as NGSI-LD shows it: its type, the
/// NGSI-LD null in its kind's value member, its datasetId.
pub fn null_instance(old: &Instance) -> Instance {
    let kind = old
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Property");
    let (member, null) = match kind {
        "Relationship" => ("object", Value::from(NGSI_LD_NULL)),
        "LanguageProperty" => ("languageMap", serde_json::json!({ "@none": NGSI_LD_NULL })),
        "JsonProperty" => ("json", Value::from(NGSI_LD_NULL)),
        "VocabProperty" => ("vocab", Value::from(NGSI_LD_NULL)),
        "ListProperty" => ("valueList", serde_json::json!([NGSI_LD_NULL])),
        "ListRelationship" => (
            "objectList",
            serde_json::json!([{ "object": NGSI_LD_NULL }]),
        ),
        _ => ("value", Value::from(NGSI_LD_NULL)),
    };
    let mut out = Map::new();
    out.insert("type".into(), kind.into());
    out.insert(member.into(), null);
    if let Some(d) = old.get("datasetId") {
        out.insert("datasetId".into(), d.clone());
    }
    out
}

/// Parses a whole entity: id and type required.
pub fn parse_entity(body: &Value, ctx: &Context, now: i64) -> Result<Entity> {
    let f = parse_fragment(body, ctx, now, Nulls::Refuse)?;
    let id =
        f.id.ok_or_else(|| NgsiError::bad_data("the entity has no id"))?;
    let types = f
        .types
        .ok_or_else(|| NgsiError::bad_data("the entity has no type"))?;
    Ok(Entity {
        id,
        types,
        scope: f.scope.unwrap_or_default(),
        created_at: now,
        modified_at: now,
        attrs: f
            .attrs
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
    })
}

/// Parses one attribute's value (one instance or several).
pub fn parse_attribute(
    iri: &str,
    v: &Value,
    ctx: &Context,
    now: i64,
    nulls: Nulls,
) -> Result<Vec<Instance>> {
    let instances = match v {
        Value::Array(items) if !items.is_empty() && items.iter().all(looks_like_instance) => items
            .iter()
            .map(|i| parse_instance(iri, i, ctx, now, nulls))
            .collect::<Result<Vec<_>>>()?,
        other => vec![parse_instance(iri, other, ctx, now, nulls)?],
    };
    let mut seen = std::collections::HashSet::new();
    for i in &instances {
        if !seen.insert(
            i.get("datasetId")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ) {
            return Err(NgsiError::bad_data(
                "two instances of an attribute have the same datasetId",
            ));
        }
    }
    Ok(instances)
}

fn looks_like_instance(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| ATTRIBUTE_TYPES.contains(&t))
            || [
                "value",
                "object",
                "languageMap",
                "vocab",
                "valueList",
                "objectList",
                "json",
            ]
            .iter()
            .any(|k| o.contains_key(*k))
    })
}

fn geometry_ok(v: &Value) -> bool {
    let Some(o) = v.as_object() else { return false };
    let Some(t) = o.get("type").and_then(Value::as_str) else {
        return false;
    };
    if !GEOMETRY_TYPES.contains(&t) {
        return false;
    }
    crate::geo::Geometry::from_geojson(v).is_some()
}

/// Parses one instance (normalized or concise).
pub fn parse_instance(
    iri: &str,
    v: &Value,
    ctx: &Context,
    now: i64,
    nulls: Nulls,
) -> Result<Instance> {
    let name = ctx.compact(iri);
    let mut out = Instance::new();
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Err(NgsiError::bad_data(format!("attribute {name} is null"))),
        scalar_or_list => {
            out.insert("type".into(), "Property".into());
            out.insert("value".into(), scalar_or_list.clone());
            stamp(&mut out, now);
            return Ok(out);
        }
    };
    if deletes_instance(obj, nulls, &name)? {
        // An NGSI-LD null deletes the instance (of its datasetId).
        out.insert(DELETE_MARK.into(), Value::Bool(true));
        if let Some(d) = obj.get("datasetId") {
            out.insert("datasetId".into(), d.clone());
        }
        return Ok(out);
    }
    let given = obj.get("type").and_then(Value::as_str);
    let kind = match given {
        Some(t) if ATTRIBUTE_TYPES.contains(&t) => t,
        Some(t) if GEOMETRY_TYPES.contains(&t) && obj.contains_key("coordinates") => {
            if !geometry_ok(v) {
                return Err(NgsiError::bad_data(format!(
                    "attribute {name} is not a valid GeoJSON geometry"
                )));
            }
            out.insert("type".into(), "GeoProperty".into());
            out.insert("value".into(), v.clone());
            stamp(&mut out, now);
            return Ok(out);
        }
        Some(t) if !(obj.contains_key("value") || obj.contains_key("object")) => {
            return Err(NgsiError::bad_data(format!(
                "attribute {name} has an unknown type {t:?}"
            )))
        }
        Some(t) => {
            return Err(NgsiError::bad_data(format!(
                "attribute {name} has an unknown type {t:?}"
            )))
        }
        None => {
            if obj.contains_key("value") {
                if obj.get("value").is_some_and(geometry_ok) && GEO_ATTRIBUTES.contains(&iri) {
                    "GeoProperty"
                } else {
                    "Property"
                }
            } else if obj.contains_key("object") {
                "Relationship"
            } else if obj.contains_key("languageMap") {
                "LanguageProperty"
            } else if obj.contains_key("vocab") {
                "VocabProperty"
            } else if obj.contains_key("valueList") {
                "ListProperty"
            } else if obj.contains_key("objectList") {
                "ListRelationship"
            } else if obj.contains_key("json") {
                "JsonProperty"
            } else {
                // A concise compound value.
                out.insert("type".into(), "Property".into());
                out.insert("value".into(), v.clone());
                stamp(&mut out, now);
                return Ok(out);
            }
        }
    };
    out.insert("type".into(), kind.into());
    let need = |member: &str| -> Result<&Value> {
        match obj.get(member) {
            Some(Value::Null) | None => Err(NgsiError::bad_data(format!(
                "attribute {name}, a {kind}, has no {member}"
            ))),
            Some(v) => Ok(v),
        }
    };
    match kind {
        "Property" => {
            out.insert("value".into(), need("value")?.clone());
        }
        "GeoProperty" => {
            let value = need("value")?;
            if !geometry_ok(value) {
                return Err(NgsiError::bad_data(format!(
                    "attribute {name} is not a valid GeoJSON geometry"
                )));
            }
            out.insert("value".into(), value.clone());
        }
        "Relationship" => {
            let object = need("object")?;
            let ok = match object {
                Value::String(s) => is_uri(s),
                Value::Array(a) => {
                    !a.is_empty() && a.iter().all(|o| o.as_str().is_some_and(is_uri))
                }
                _ => false,
            };
            if !ok {
                return Err(NgsiError::bad_data(format!(
                    "relationship {name}'s object must be a URI"
                )));
            }
            out.insert("object".into(), object.clone());
            if let Some(t) = obj.get("objectType") {
                out.insert("objectType".into(), expand_vocab(t, ctx)?);
            }
        }
        "LanguageProperty" => {
            let map = need("languageMap")?.as_object().ok_or_else(|| {
                NgsiError::bad_data(format!("{name}'s languageMap must be an object"))
            })?;
            for v in map.values() {
                let ok =
                    v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
                if !ok {
                    return Err(NgsiError::bad_data(format!(
                        "{name}'s languageMap holds strings"
                    )));
                }
            }
            out.insert("languageMap".into(), Value::Object(map.clone()));
        }
        "VocabProperty" => {
            out.insert("vocab".into(), expand_vocab(need("vocab")?, ctx)?);
        }
        "ListProperty" => {
            let list = need("valueList")?;
            if !list.is_array() {
                return Err(NgsiError::bad_data(format!(
                    "{name}'s valueList must be an array"
                )));
            }
            out.insert("valueList".into(), list.clone());
        }
        "ListRelationship" => {
            let list = need("objectList")?.as_array().ok_or_else(|| {
                NgsiError::bad_data(format!("{name}'s objectList must be an array"))
            })?;
            let mut objects = Vec::with_capacity(list.len());
            for item in list {
                let uri = match item {
                    Value::String(s) => s.as_str(),
                    Value::Object(o) => o.get("object").and_then(Value::as_str).unwrap_or(""),
                    _ => "",
                };
                if !is_uri(uri) {
                    return Err(NgsiError::bad_data(format!(
                        "{name}'s objectList holds URIs"
                    )));
                }
                objects.push(serde_json::json!({ "object": uri }));
            }
            out.insert("objectList".into(), Value::Array(objects));
        }
        "JsonProperty" => {
            out.insert("json".into(), need("json")?.clone());
        }
        _ => unreachable!("the kinds are listed above"),
    }
    for (key, member) in obj {
        match key.as_str() {
            "type" | "value" | "object" | "languageMap" | "vocab" | "valueList" | "objectList"
            | "json" | "objectType" | "@context" | "createdAt" | "modifiedAt" | "instanceId"
            | "deletedAt" => {}
            "observedAt" => {
                let ok = member.as_str().and_then(parse_datetime).is_some();
                if !ok {
                    return Err(NgsiError::bad_data(format!(
                        "{name}'s observedAt is not a DateTime"
                    )));
                }
                out.insert("observedAt".into(), member.clone());
            }
            "datasetId" => {
                if !member.as_str().is_some_and(is_uri) {
                    return Err(NgsiError::bad_data(format!(
                        "{name}'s datasetId must be a URI"
                    )));
                }
                out.insert("datasetId".into(), member.clone());
            }
            "unitCode" => {
                if !member.is_string() {
                    return Err(NgsiError::bad_data(format!(
                        "{name}'s unitCode must be a string"
                    )));
                }
                out.insert("unitCode".into(), member.clone());
            }
            sub => {
                if !is_valid_name(sub) {
                    return Err(NgsiError::bad_data(format!(
                        "{sub:?} is not a valid attribute name"
                    )));
                }
                let sub_iri = ctx.expand(sub);
                if nulls.deletes(member, sub)? {
                    out.insert(sub_iri, Value::Null);
                    continue;
                }
                let inner = match member {
                    Value::Array(items) if items.len() == 1 && looks_like_instance(&items[0]) => {
                        &items[0]
                    }
                    other => other,
                };
                let parsed = parse_instance(&sub_iri, inner, ctx, now, nulls)?;
                out.insert(sub_iri, Value::Object(parsed));
            }
        }
    }
    stamp(&mut out, now);
    Ok(out)
}

fn expand_vocab(v: &Value, ctx: &Context) -> Result<Value> {
    match v {
        Value::String(s) => Ok(Value::String(ctx.expand(s))),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(|s| Value::String(ctx.expand(s)))
                    .ok_or_else(|| NgsiError::bad_data("a vocab is a string"))
            })
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
        _ => Err(NgsiError::bad_data(
            "a vocab is a string or an array of strings",
        )),
    }
}

fn stamp(i: &mut Instance, now: i64) {
    i.insert("createdAt".into(), now.into());
    i.insert("modifiedAt".into(), now.into());
}

/// Keeps an instance's createdAt when it replaces an older one.
pub fn keep_created(new: &mut Instance, old: &Instance) {
    if let Some(c) = old.get("createdAt") {
        new.insert("createdAt".into(), c.clone());
    }
}

/// The datasetId of an instance, if any.
pub fn dataset_of(i: &Instance) -> Option<&str> {
    i.get("datasetId").and_then(Value::as_str)
}

/// An instance's datasetId as the API names it in lists and keys:
/// `@none` for the default instance.
pub fn dataset_key(i: &Instance) -> &str {
    dataset_of(i).unwrap_or("@none")
}

/// The instances of an attribute (`before`) whose datasetId it no longer
/// has (`after`).
pub fn removed_instances<'a>(
    before: &'a [Instance],
    after: &'a [Instance],
) -> impl Iterator<Item = &'a Instance> {
    before.iter().filter(|o| {
        let d = dataset_of(o);
        !after.iter().any(|i| dataset_of(i) == d)
    })
}

/// The form of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Normalized,
    KeyValues,
    Concise,
}

/// How to render entities.
#[derive(Debug, Clone, Default)]
pub struct Render {
    pub format: Format,
    pub sys_attrs: bool,
    /// Only these attributes (IRIs), if given.
    pub attrs: Option<Vec<String>>,
    /// Picked members (IRIs, or `id`/`type`/`scope` …), if given.
    pub pick: Option<Vec<String>>,
    pub omit: Option<Vec<String>>,
    pub lang: Option<String>,
    /// Only the instances of these datasetIds (`@none`: the default).
    pub datasets: Option<Vec<String>>,
}

/// Renders an entity in a request's context.
pub fn render(e: &Entity, ctx: &Context, r: &Render) -> Map<String, Value> {
    let mut out = Map::new();
    let keep_core = |m: &str| {
        r.pick.as_ref().is_none_or(|p| p.iter().any(|x| x == m))
            && !r.omit.as_ref().is_some_and(|o| o.iter().any(|x| x == m))
    };
    if keep_core("id") {
        out.insert("id".into(), e.id.clone().into());
    }
    if keep_core("type") {
        let types: Vec<Value> = e
            .types
            .iter()
            .map(|t| Value::String(ctx.compact(t)))
            .collect();
        out.insert(
            "type".into(),
            if types.len() == 1 {
                types.into_iter().next().expect("one")
            } else {
                Value::Array(types)
            },
        );
    }
    if !e.scope.is_empty() && keep_core("scope") {
        out.insert(
            "scope".into(),
            if e.scope.len() == 1 {
                e.scope[0].clone().into()
            } else {
                e.scope.clone().into()
            },
        );
    }
    if r.sys_attrs && r.format != Format::KeyValues {
        out.insert("createdAt".into(), format_datetime(e.created_at).into());
        out.insert("modifiedAt".into(), format_datetime(e.modified_at).into());
    }
    for (iri, instances) in &e.attrs {
        if instances.is_empty() {
            continue;
        }
        if let Some(only) = &r.attrs {
            if !only.contains(iri) {
                continue;
            }
        }
        if let Some(p) = &r.pick {
            if !p.contains(iri) {
                continue;
            }
        }
        if let Some(o) = &r.omit {
            if o.contains(iri) {
                continue;
            }
        }
        let shown: Vec<&Instance> = instances
            .iter()
            .filter(|i| {
                r.datasets
                    .as_ref()
                    .is_none_or(|ds| ds.iter().any(|d| d == dataset_key(i)))
            })
            .collect();
        let value = match shown.as_slice() {
            [] => continue,
            [one] => render_instance(one, ctx, r),
            // Several in keyValues: `{"dataset": {datasetId: value,
            // "@none": the default's}}` (§4.5.3).
            many if r.format == Format::KeyValues => {
                let dataset: Map<String, Value> = many
                    .iter()
                    .map(|i| {
                        let key = dataset_key(i).to_owned();
                        (key, render_instance(i, ctx, r))
                    })
                    .collect();
                serde_json::json!({ "dataset": dataset })
            }
            many => Value::Array(many.iter().map(|i| render_instance(i, ctx, r)).collect()),
        };
        out.insert(ctx.compact(iri), value);
    }
    out
}

fn compact_vocab(v: &Value, ctx: &Context) -> Value {
    match v {
        Value::String(s) => Value::String(ctx.compact(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| compact_vocab(x, ctx)).collect()),
        other => other.clone(),
    }
}

/// The language-map entry `lang` asks for: the tag, else `@none`, else
/// the first.
fn pick_language<'a>(map: &'a Map<String, Value>, lang: &str) -> Option<(&'a String, &'a Value)> {
    if lang == "*" {
        return map.iter().next();
    }
    map.iter()
        .find(|(k, _)| k.as_str() == lang)
        .or_else(|| map.iter().find(|(k, _)| k.as_str() == "@none"))
        .or_else(|| map.iter().next())
}

/// Renders one instance.
pub fn render_instance(i: &Instance, ctx: &Context, r: &Render) -> Value {
    let kind = i.get("type").and_then(Value::as_str).unwrap_or("Property");
    if r.format == Format::KeyValues {
        return match kind {
            "Relationship" => i.get("object").cloned().unwrap_or(Value::Null),
            "LanguageProperty" => {
                let map = i.get("languageMap").and_then(Value::as_object);
                match (map, &r.lang) {
                    (Some(m), Some(lang)) => match pick_language(m, lang) {
                        Some((_, v)) => v.clone(),
                        None => serde_json::json!({ "languageMap": m }),
                    },
                    (Some(m), None) => serde_json::json!({ "languageMap": m }),
                    _ => Value::Null,
                }
            }
            "VocabProperty" => serde_json::json!({ "vocab": compact_vocab(&i["vocab"], ctx) }),
            "ListProperty" => serde_json::json!({ "valueList": i.get("valueList") }),
            "ListRelationship" => serde_json::json!({ "objectList": i.get("objectList") }),
            "JsonProperty" => serde_json::json!({ "json": i.get("json") }),
            _ => i.get("value").cloned().unwrap_or(Value::Null),
        };
    }
    let mut out = Map::new();
    let mut kind_out = kind;
    for (k, v) in i {
        match k.as_str() {
            "type" => {}
            "createdAt" | "modifiedAt" => {
                if r.sys_attrs {
                    if let Some(ms) = v.as_i64() {
                        out.insert(k.clone(), format_datetime(ms).into());
                    }
                }
            }
            // Only the history's deletion instances have one (an instant).
            "deletedAt" => {
                out.insert(k.clone(), v.clone());
            }
            "vocab" | "objectType" => {
                out.insert(k.clone(), compact_vocab(v, ctx));
            }
            "languageMap" => match (&r.lang, v.as_object()) {
                (Some(lang), Some(m)) => match pick_language(m, lang) {
                    Some((tag, value)) => {
                        kind_out = "Property";
                        out.insert("value".into(), value.clone());
                        out.insert("lang".into(), tag.clone().into());
                    }
                    None => {
                        out.insert(k.clone(), v.clone());
                    }
                },
                _ => {
                    out.insert(k.clone(), v.clone());
                }
            },
            m if CORE_MEMBERS.contains(&m) => {
                out.insert(k.clone(), v.clone());
            }
            sub => {
                if let Value::Object(s) = v {
                    let sub_r = Render {
                        attrs: None,
                        pick: None,
                        omit: None,
                        ..r.clone()
                    };
                    out.insert(ctx.compact(sub), render_instance(s, ctx, &sub_r));
                }
            }
        }
    }
    if r.format == Format::Concise {
        // The type is implied by the member that holds the value; a
        // Property or GeoProperty with nothing else is its value.
        let only_value = out.len() == 1 && out.contains_key("value");
        if only_value && kind_out == "Property" && !out["value"].is_object() {
            return out.remove("value").expect("checked");
        }
        if only_value && kind_out == "GeoProperty" {
            return out.remove("value").expect("checked");
        }
        return Value::Object(out);
    }
    let mut full = Map::with_capacity(out.len() + 1);
    full.insert("type".into(), kind_out.into());
    full.extend(out);
    Value::Object(full)
}

impl Entity {
    /// The attribute names a caller may see (IRIs).
    pub fn attribute_names(&self) -> impl Iterator<Item = &String> {
        self.attrs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What each reading of nulls makes of a fragment's nulls: merge-patch
    /// deletes with either null, batch update and merge only with
    /// `urn:ngsi-ld:null` (a JSON null is bad data), creation with neither.
    #[test]
    fn nulls_delete_as_the_operation_reads_them() {
        let ctx = Context::core();
        let parse = |body: Value, nulls: Nulls| parse_fragment(&body, &ctx, 0, nulls);
        let iri = ctx.expand("level");
        let deleted = |f: &Fragment| f.attrs.get(&iri).is_some_and(Option::is_none);
        let marked = |f: &Fragment| {
            f.attrs
                .get(&iri)
                .and_then(Option::as_ref)
                .is_some_and(|is| is[0].contains_key(DELETE_MARK))
        };
        let ngsi_null = json!({"level": "urn:ngsi-ld:null"});
        let json_null = json!({"level": null});
        let member_ngsi_null = json!({"level": {"type": "Property", "value": "urn:ngsi-ld:null"}});
        let member_json_null = json!({"level": {"type": "Property", "value": null}});
        let map_null = json!({"level": {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"}}});

        for nulls in [Nulls::Delete, Nulls::DeleteMarked] {
            assert!(deleted(&parse(ngsi_null.clone(), nulls).unwrap()));
            assert!(marked(&parse(member_ngsi_null.clone(), nulls).unwrap()));
            assert!(marked(&parse(map_null.clone(), nulls).unwrap()));
        }
        assert!(deleted(&parse(json_null.clone(), Nulls::Delete).unwrap()));
        assert!(marked(
            &parse(member_json_null.clone(), Nulls::Delete).unwrap()
        ));
        for refused in [json_null.clone(), member_json_null.clone()] {
            let e = parse(refused, Nulls::DeleteMarked).unwrap_err();
            assert_eq!(e.kind, crate::problem::ErrorKind::BadRequestData);
        }
        // Creation: the NGSI-LD null is a value like any other.
        let f = parse(member_ngsi_null, Nulls::Refuse).unwrap();
        assert!(!marked(&f) && !deleted(&f));
        assert!(parse(json_null, Nulls::Refuse).is_err());
    }
}
