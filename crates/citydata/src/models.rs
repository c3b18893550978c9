//! FIWARE Smart Data Models shipped with the broker: the six city models
//! (`AirQualityObserved`, `WeatherObserved`, `TrafficFlowObserved`,
//! `CrowdFlowObserved`, `ParkingSpot`, `Streetlight`), and the
//! `@context` of each of their subjects, built in.
//!
//! `models/smart-data-models.json` is written by
//! `scripts/smart-data-models.py` from the SDM's own database of their
//! attributes (pysmartdatamodels on PyPI): each attribute's NGSI-LD kind,
//! JSON type, format, enumeration and units, and each model's required
//! members. An entity whose type is one of these models is checked
//! against it whenever a write leaves it changed: a write that would
//! leave a value the model does not allow is refused (`BadRequestData`,
//! naming every attribute at fault) and changes nothing. Attributes the
//! model does not name are the writer's own and pass, as in the SDM
//! schemas; required attributes that are absent are not refused (an
//! entity is built up by several writes, and across brokers), but
//! `civic city import --dry-run` reports them.
//!
//! A model's type and attributes are recognised under the names the
//! usual contexts give them: the core context's default vocabulary (no
//! `@context`, as the demo's sensors write), the subject's context
//! (`…/dataModel.Environment/pm25`), the unified SDM context
//! (`https://smartdatamodels.org/name`) and the core's own terms
//! (`location`, `status`).

use crate::entity::{Entity, Instance};
use crate::jsonld::{DEFAULT_VOCAB, NGSI_LD};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

const DATA: &str = include_str!("../models/smart-data-models.json");
const SDM: &str = "https://smartdatamodels.org/";

/// One shipped model.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SmartDataModel))]
pub struct Model {
    /// The entity type, e.g. `AirQualityObserved`.
    #[serde(rename = "type")]
    pub name: String,
    /// The SDM subject (repository), e.g. `dataModel.Environment`.
    pub subject: String,
    pub version: String,
    pub title: String,
    pub description: String,
    /// The model's JSON Schema, for reference.
    pub schema: String,
    /// Attributes the model requires (an entity without them is taken,
    /// and `civic city import --dry-run` reports it).
    pub required: Vec<String>,
    pub attributes: BTreeMap<String, Attribute>,
    /// Expanded attribute IRI → the model's name for it.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    by_iri: HashMap<String, String>,
}

/// What a model says of one attribute.
#[derive(Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SmartDataModelAttribute))]
pub struct Attribute {
    /// Its IRI in the unified SDM context.
    pub iri: String,
    /// `Property`, `Relationship` or `GeoProperty` (shown, not checked).
    pub kind: String,
    /// The JSON types its value may have (`number`, `string`, `array`,
    /// …; several where the schema gives alternatives); empty: any.
    pub types: Vec<String>,
    /// The value's format (`date-time`, `uri`), if the model sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The values allowed, if the model lists them.
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
    /// The unit, as the model writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    models: Vec<Model>,
    contexts: BTreeMap<String, Value>,
}

struct Shipped {
    models: Vec<Model>,
    /// Expanded type IRI → index in `models`.
    by_type: HashMap<String, usize>,
    /// A subject's context document by the URLs it is published at.
    contexts: HashMap<String, Arc<Value>>,
}

fn shipped() -> &'static Shipped {
    static SHIPPED: OnceLock<Shipped> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let data: Data = serde_json::from_str(DATA).expect("the shipped models are JSON");
        let mut models = data.models;
        let mut by_type = HashMap::new();
        for (n, m) in models.iter_mut().enumerate() {
            for iri in [
                format!("{DEFAULT_VOCAB}{}", m.name),
                format!("{SDM}{}/{}", m.subject, m.name),
                format!("{SDM}{}", m.name),
            ] {
                by_type.insert(iri, n);
            }
            let mut by_iri = HashMap::new();
            for (name, a) in &m.attributes {
                for iri in [
                    a.iri.clone(),
                    format!("{DEFAULT_VOCAB}{name}"),
                    format!("{SDM}{}/{name}", m.subject),
                    format!("{SDM}{name}"),
                    format!("{NGSI_LD}{name}"),
                ] {
                    by_iri.entry(iri).or_insert_with(|| name.clone());
                }
            }
            m.by_iri = by_iri;
        }
        let mut contexts = HashMap::new();
        for (subject, doc) in data.contexts {
            let doc = Arc::new(doc);
            for url in context_urls(&subject) {
                contexts.insert(url, doc.clone());
            }
        }
        Shipped {
            models,
            by_type,
            contexts,
        }
    })
}

/// Where a subject's `@context` is published (its repository's file, and
/// the same on its GitHub pages).
fn context_urls(subject: &str) -> [String; 2] {
    [
        format!(
            "https://raw.githubusercontent.com/smart-data-models/{subject}/master/context.jsonld"
        ),
        format!("https://smart-data-models.github.io/{subject}/context.jsonld"),
    ]
}

/// The shipped models.
pub fn all() -> &'static [Model] {
    &shipped().models
}

/// The model an entity of these (expanded) types is of, if any.
pub fn of(types: &[String]) -> Option<&'static Model> {
    let s = shipped();
    types
        .iter()
        .find_map(|t| s.by_type.get(t))
        .map(|&n| &s.models[n])
}

/// A subject's built-in `@context` document, by a URL it is published at.
pub fn context_document(url: &str) -> Option<Arc<Value>> {
    shipped().contexts.get(url).cloned()
}

/// The URLs whose `@context` is built in.
pub fn context_urls_built_in() -> Vec<String> {
    let mut urls: Vec<String> = shipped().contexts.keys().cloned().collect();
    urls.sort();
    urls
}

impl Model {
    /// What in `e` breaks this model: one line per attribute whose value
    /// the model does not allow, empty if none. Attributes the model
    /// requires and `e` lacks are not faults here (`missing`): an NGSI-LD
    /// entity is built up by several writes, and across brokers (a
    /// registered source may hold the rest of it).
    pub fn faults(&self, e: &Entity) -> Vec<String> {
        let mut faults = Vec::new();
        for (iri, instances) in &e.attrs {
            let Some(name) = self.by_iri.get(iri) else {
                continue;
            };
            let a = &self.attributes[name];
            if let Some(fault) = instances.iter().find_map(|i| a.fault(i)) {
                faults.push(format!("{name}: {fault}"));
            }
        }
        faults
    }

    /// The attributes this model requires that `e` does not have.
    pub fn missing(&self, e: &Entity) -> Vec<&str> {
        let present: std::collections::HashSet<&str> = e
            .attrs
            .keys()
            .filter_map(|iri| self.by_iri.get(iri).map(String::as_str))
            .collect();
        self.required
            .iter()
            .map(String::as_str)
            .filter(|name| !present.contains(name))
            .collect()
    }

    /// `Err` naming every fault if `e` breaks this model.
    pub fn check(&self, e: &Entity) -> crate::problem::Result<()> {
        let faults = self.faults(e);
        if faults.is_empty() {
            return Ok(());
        }
        Err(crate::problem::NgsiError::bad_data(format!(
            "the entity {} is not a valid {} (Smart Data Models {}, {}): {}",
            e.id,
            self.name,
            self.subject,
            self.version,
            faults.join("; ")
        )))
    }
}

/// Checks an entity against its shipped model, if it has one.
pub fn check(e: &Entity) -> crate::problem::Result<()> {
    match of(&e.types) {
        Some(model) => model.check(e),
        None => Ok(()),
    }
}

impl Attribute {
    /// What is wrong with one instance, if anything: its value (a
    /// Relationship's object) read as the model's JSON Schema reads an
    /// attribute's value in keyValues. Whether the attribute is written
    /// as a Property or a Relationship is not checked: the models' own
    /// examples write references both ways.
    fn fault(&self, i: &Instance) -> Option<String> {
        let value = match i.get("type").and_then(Value::as_str).unwrap_or("Property") {
            "Relationship" => i.get("object"),
            "ListRelationship" => i.get("objectList"),
            "ListProperty" => i.get("valueList"),
            "JsonProperty" => i.get("json"),
            // Strings in several languages, or a term: their JSON type
            // is not the model's to check.
            "LanguageProperty" | "VocabProperty" => return None,
            _ => i.get("value"),
        }?;
        self.value_fault(value)
    }

    fn value_fault(&self, v: &Value) -> Option<String> {
        let shown = || {
            let s = v.to_string();
            if s.chars().count() > 60 {
                format!("{}…", s.chars().take(60).collect::<String>())
            } else {
                s
            }
        };
        // A DateTime written as JSON-LD (`{"@type": "DateTime", "@value": …}`)
        // is its string.
        let v = match v.get("@value") {
            Some(inner) if v.get("@type").is_some() => inner,
            _ => v,
        };
        let is = |t: &str| match t {
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => true,
        };
        if !self.types.is_empty() && !self.types.iter().any(|t| is(t)) {
            let what = self.types.join(" or ");
            let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            return Some(format!("{article} {what}, not {}", shown()));
        }
        if self.format.as_deref() == Some("date-time") {
            if let Some(s) = v.as_str() {
                if crate::entity::parse_datetime(s).is_none() {
                    return Some(format!("a date-time (RFC 3339), not {}", shown()));
                }
            }
        }
        if let Some(allowed) = &self.allowed {
            let ok = |s: &Value| s.as_str().is_none_or(|s| allowed.iter().any(|a| a == s));
            let all_ok = match v {
                Value::Array(items) => items.iter().all(ok),
                other => ok(other),
            };
            if !all_ok {
                return Some(format!("one of {}, not {}", allowed.join(", "), shown()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonld::Context;

    fn entity(body: Value) -> Entity {
        crate::entity::parse_entity(&body, &Context::core(), 0).expect("an entity")
    }

    #[test]
    fn the_shipped_models_and_contexts_load() {
        let names: Vec<&str> = all().iter().map(|m| m.name.as_str()).collect();
        for want in [
            "AirQualityObserved",
            "WeatherObserved",
            "TrafficFlowObserved",
            "CrowdFlowObserved",
            "ParkingSpot",
            "Streetlight",
        ] {
            assert!(names.contains(&want), "{want} is shipped");
        }
        let doc = context_document(
            "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld",
        )
        .expect("the Environment context is built in");
        assert_eq!(
            doc["@context"]["pm25"],
            "https://smartdatamodels.org/dataModel.Environment/pm25"
        );
        assert!(context_document("https://example.org/context.jsonld").is_none());
    }

    #[test]
    fn entities_are_held_to_their_model() {
        let good = entity(serde_json::json!({
            "id": "urn:ngsi-ld:ParkingSpot:1", "type": "ParkingSpot",
            "status": {"type": "Property", "value": "free"},
            "category": {"type": "Property", "value": ["onStreet"]},
            "refParkingSite": {"type": "Relationship", "object": "urn:ngsi-ld:OnStreetParking:1"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [126.9, 37.5]}},
            "myOwnNote": {"type": "Property", "value": 3}
        }));
        assert!(check(&good).is_ok(), "{:?}", check(&good));
        let bad = entity(serde_json::json!({
            "id": "urn:ngsi-ld:ParkingSpot:2", "type": "ParkingSpot",
            "status": {"type": "Property", "value": "taken"},
            "category": {"type": "Property", "value": "onStreet"},
            "refParkingSite": {"type": "Relationship", "object": ["urn:a:1", "urn:a:2"]},
        }));
        let faults = of(&bad.types).expect("a model").faults(&bad);
        assert_eq!(
            faults,
            vec![
                "category: an array, not \"onStreet\"",
                "refParkingSite: a string, not [\"urn:a:1\",\"urn:a:2\"]",
                "status: one of closed, free, occupied, unknown, not \"taken\"",
            ]
        );
        assert_eq!(
            of(&bad.types).expect("a model").missing(&bad),
            vec!["location"]
        );
        assert!(of(&good.types).expect("a model").missing(&good).is_empty());
        let untyped = entity(serde_json::json!({
            "id": "urn:ngsi-ld:Thing:1", "type": "Thing",
            "status": {"type": "Property", "value": "taken"}
        }));
        assert!(check(&untyped).is_ok(), "other types are not checked");
    }

    #[test]
    fn dates_numbers_and_datasets_are_read_as_ngsi_ld_writes_them() {
        let air = |pm25: Value, date: Value| {
            entity(serde_json::json!({
                "id": "urn:ngsi-ld:AirQualityObserved:1", "type": "AirQualityObserved",
                "dateObserved": {"type": "Property", "value": date},
                "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [126.9, 37.5]}},
                "pm25": pm25
            }))
        };
        let at = serde_json::json!({"@type": "DateTime", "@value": "2026-12-07T10:00:00Z"});
        let ok = air(
            serde_json::json!([
                {"type": "Property", "value": 12.5},
                {"type": "Property", "value": 14, "datasetId": "urn:ngsi-ld:Dataset:b"}
            ]),
            at.clone(),
        );
        assert!(check(&ok).is_ok(), "{:?}", check(&ok));
        let plain_date = air(
            serde_json::json!({"type": "Property", "value": 1}),
            "2026-12-07T10:00:00Z".into(),
        );
        assert!(check(&plain_date).is_ok());
        let bad = air(
            serde_json::json!([
                {"type": "Property", "value": 12.5},
                {"type": "Property", "value": "high", "datasetId": "urn:ngsi-ld:Dataset:b"}
            ]),
            "2016-03-15T11:00:00/2016-03-15T12:00:00".into(),
        );
        let faults = of(&bad.types).expect("a model").faults(&bad);
        assert_eq!(
            faults,
            vec![
                "dateObserved: a date-time (RFC 3339), not \"2016-03-15T11:00:00/2016-03-15T12:00:00\"",
                "pm25: a number, not \"high\"",
            ]
        );
    }

    /// The models' own published examples, as they are (read with the
    /// core context alone, which gives their terms the names the models
    /// know them by): each keeps to its model but one, which is not
    /// NGSI-LD as written, and which once read breaks its own model.
    #[test]
    fn the_models_own_examples_are_read_as_they_are() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smart-data-models");
        let example = |name: &str| -> Value {
            let text = std::fs::read_to_string(dir.join(format!("{name}.jsonld")))
                .expect("an example per model");
            let mut body: Value = serde_json::from_str(&text).expect("JSON");
            body.as_object_mut().expect("an object").remove("@context");
            body
        };
        let verdict = |body: &Value| match crate::entity::parse_entity(body, &Context::core(), 0) {
            Err(e) => format!("not NGSI-LD: {}", e.detail),
            Ok(e) => of(&e.types).expect("its model").faults(&e).join("; "),
        };
        for m in all() {
            let body = example(&m.name);
            let want = match m.name.as_str() {
                // Concise, with an address object that has a `type`.
                "AirQualityObserved" => {
                    "not NGSI-LD: attribute address has an unknown type \"PostalAddress\""
                }
                _ => "",
            };
            assert_eq!(verdict(&body), want, "{}", m.name);
        }
        // Its dateObserved is an interval, which the model's date-time is not.
        let mut air = example("AirQualityObserved");
        air.as_object_mut().expect("an object").remove("address");
        assert_eq!(
            verdict(&air),
            "dateObserved: a date-time (RFC 3339), not \"2016-03-15T11:00:00/2016-03-15T12:00:00\""
        );
    }
}
