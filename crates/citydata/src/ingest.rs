//! MQTT ingestion: sensors publish JSON on topics; declarative mappings
//! (a TOML or JSON file) turn each message into an NGSI-LD entity
//! update, written in batches through the broker like any client's.
//!
//! A mapping names a topic filter (MQTT `+` and `#`), the entity's id and
//! type (templates: `{1}`… are the topic's wildcard segments, `{name}` a
//! payload member), the payload member holding the observation time, and
//! the attributes (payload paths, units). A message no mapping takes, or
//! one that does not read, is counted and dropped, never half-written.

use crate::entity::format_datetime;
use crate::problem::{NgsiError, Result};
use crate::CityData;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One attribute from the payload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttributeMap {
    /// The payload member (dots descend into objects).
    pub path: String,
    /// UN/CEFACT unit code, if any.
    #[serde(default)]
    pub unit: Option<String>,
    /// A Relationship (the value is an entity id) rather than a Property.
    #[serde(default)]
    pub relationship: bool,
}

/// A point location from two payload members.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocationMap {
    pub lat: String,
    pub lon: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// MQTT topic filter, e.g. `city/air/+/reading`.
    pub topic: String,
    /// The NGSI-LD tenant (default: the default tenant).
    #[serde(default)]
    pub tenant: String,
    /// Entity id template, e.g. `urn:ngsi-ld:AirQualityObserved:{1}`.
    pub id: String,
    /// Entity type (a short name).
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Payload member with the observation time (Unix seconds or an
    /// ISO 8601 date-time); the arrival time if absent.
    #[serde(default)]
    pub observed_at: Option<String>,
    #[serde(default)]
    pub location: Option<LocationMap>,
    /// Attribute names (short names, in the core context's default
    /// vocabulary) and where their values are.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeMap>,
    /// Also write the observation time as a Property of this name (a
    /// DateTime), as the Smart Data Models' `dateObserved`.
    #[serde(default)]
    pub observed_as: Option<String>,
    /// Attributes every message's entity has, written as given (NGSI-LD
    /// normalized); `{1}`… and `{member}` in an `object` or a string
    /// `value` are filled as in `id`. E.g. a ParkingSpot's `category`
    /// and `refParkingSite`, which its sensor does not send.
    #[serde(default)]
    pub fixed: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mappings {
    #[serde(default, rename = "mapping")]
    pub mappings: Vec<Mapping>,
}

impl Mappings {
    /// Reads mappings from TOML (`.toml`) or JSON text, checking each.
    pub fn parse(text: &str, toml_syntax: bool) -> std::result::Result<Mappings, String> {
        let m: Mappings = if toml_syntax {
            toml::from_str(text).map_err(|e| e.to_string())?
        } else {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        };
        for (n, mapping) in m.mappings.iter().enumerate() {
            let at = |what: &str| format!("mapping {} ({}): {what}", n + 1, mapping.topic);
            if mapping.topic.is_empty() || !valid_filter(&mapping.topic) {
                return Err(at(
                    "the topic filter is not valid (a `#` ends it, `+` fills a level)",
                ));
            }
            if !mapping.id.contains(':') {
                return Err(at("the id template must make a URI (urn:ngsi-ld:…)"));
            }
            if !crate::entity::is_valid_name(&mapping.entity_type) {
                return Err(at("the type is not a valid name"));
            }
            let named = mapping
                .attributes
                .keys()
                .chain(mapping.fixed.keys())
                .chain(mapping.observed_as.iter());
            for name in named {
                if !crate::entity::is_valid_name(name) || matches!(name.as_str(), "id" | "type") {
                    return Err(at(&format!("{name:?} is not a valid attribute name")));
                }
            }
            for (name, attr) in &mapping.fixed {
                let typed = attr
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| crate::entity::ATTRIBUTE_TYPES.contains(&t));
                if !typed {
                    return Err(at(&format!(
                        "the fixed attribute {name} is an NGSI-LD attribute: {{ type = \"Property\", value = … }}"
                    )));
                }
            }
        }
        Ok(m)
    }

    /// Reads a mapping file.
    pub fn load(path: &std::path::Path) -> std::result::Result<Mappings, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        Self::parse(&text, is_toml).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The mapping a topic falls under, and its wildcard segments.
    pub fn find(&self, topic: &str) -> Option<(&Mapping, Vec<String>)> {
        self.mappings
            .iter()
            .find_map(|m| topic_captures(&m.topic, topic).map(|c| (m, c)))
    }
}

fn valid_filter(f: &str) -> bool {
    let levels: Vec<&str> = f.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i + 1 == levels.len(),
        "+" => true,
        other => !other.contains(['#', '+']),
    })
}

/// The segments a topic's wildcards matched, if it matches the filter.
pub fn topic_captures(filter: &str, topic: &str) -> Option<Vec<String>> {
    let mut caps = Vec::new();
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match f {
            "#" => {
                caps.push(t.collect::<Vec<_>>().join("/"));
                return Some(caps);
            }
            "+" => caps.push(t.next()?.to_owned()),
            level => {
                if t.next()? != level {
                    return None;
                }
            }
        }
    }
    t.next().is_none().then_some(caps)
}

fn member<'a>(payload: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(payload, |v, k| v.get(k))
}

/// Fills `{1}` (wildcard segments) and `{name}` (payload members).
fn fill(template: &str, caps: &[String], payload: &Value) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}')? + open;
        let key = &rest[open + 1..close];
        let value = match key.parse::<usize>() {
            Ok(n) if n >= 1 => caps.get(n - 1)?.clone(),
            _ => match member(payload, key)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            },
        };
        if value.is_empty()
            || value
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        {
            return None;
        }
        out.push_str(&value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The entity update a message makes, in normalized form.
pub fn entity_of(
    mapping: &Mapping,
    caps: &[String],
    payload: &Value,
    now_ms: i64,
) -> Result<Value> {
    let id = fill(&mapping.id, caps, payload)
        .ok_or_else(|| NgsiError::bad_data("the id template names a member the message lacks"))?;
    let observed = match mapping
        .observed_at
        .as_deref()
        .and_then(|p| member(payload, p))
    {
        Some(Value::Number(n)) => {
            let secs = n
                .as_f64()
                .ok_or_else(|| NgsiError::bad_data("a bad time"))?;
            format_datetime((secs * 1000.0) as i64)
        }
        Some(Value::String(s)) if crate::entity::parse_datetime(s).is_some() => s.clone(),
        Some(_) => {
            return Err(NgsiError::bad_data(
                "the observation time is neither Unix seconds nor a date-time",
            ))
        }
        None => format_datetime(now_ms),
    };
    let mut e = Map::new();
    e.insert("id".into(), id.into());
    e.insert("type".into(), mapping.entity_type.clone().into());
    let mut any = false;
    for (name, a) in &mapping.attributes {
        let Some(v) = member(payload, &a.path) else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        let mut attr = if a.relationship {
            json!({"type": "Relationship", "object": v})
        } else {
            json!({"type": "Property", "value": v})
        };
        attr["observedAt"] = observed.clone().into();
        if let Some(u) = &a.unit {
            attr["unitCode"] = u.clone().into();
        }
        e.insert(name.clone(), attr);
        any = true;
    }
    if any {
        if let Some(name) = &mapping.observed_as {
            e.insert(
                name.clone(),
                json!({"type": "Property", "value": {"@type": "DateTime", "@value": observed}}),
            );
        }
        for (name, attr) in &mapping.fixed {
            let mut attr = attr.clone();
            for key in ["object", "value"] {
                if let Some(Value::String(t)) = attr.get(key) {
                    if t.contains('{') {
                        let filled = fill(t, caps, payload).ok_or_else(|| {
                            NgsiError::bad_data(format!(
                                "the fixed attribute {name} names a member the message lacks"
                            ))
                        })?;
                        attr[key] = filled.into();
                    }
                }
            }
            e.insert(name.clone(), attr);
        }
    }
    if let Some(loc) = &mapping.location {
        if let (Some(lat), Some(lon)) = (
            member(payload, &loc.lat).and_then(Value::as_f64),
            member(payload, &loc.lon).and_then(Value::as_f64),
        ) {
            e.insert(
                "location".into(),
                json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}),
            );
        }
    }
    if !any {
        return Err(NgsiError::bad_data(
            "the message holds none of the mapped attributes",
        ));
    }
    Ok(Value::Object(e))
}

/// What ingestion has done, for the page and the logs.
#[derive(Debug, Default)]
pub struct Stats {
    pub connected: std::sync::atomic::AtomicBool,
    pub messages: AtomicU64,
    pub written: AtomicU64,
    pub rejected: AtomicU64,
    pub last_message_ms: std::sync::atomic::AtomicI64,
    pub last_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatsView {
    pub broker: String,
    pub connected: bool,
    pub mappings: usize,
    pub messages: u64,
    pub written: u64,
    pub rejected: u64,
    pub last_message: Option<String>,
    pub last_error: Option<String>,
}

/// A running MQTT ingestion.
#[derive(Clone)]
pub struct Ingestion {
    pub broker: String,
    pub mappings: Arc<Mappings>,
    pub stats: Arc<Stats>,
}

impl Ingestion {
    pub fn view(&self) -> StatsView {
        let last = self.stats.last_message_ms.load(Ordering::Relaxed);
        StatsView {
            broker: self.broker.clone(),
            connected: self.stats.connected.load(Ordering::Relaxed),
            mappings: self.mappings.mappings.len(),
            messages: self.stats.messages.load(Ordering::Relaxed),
            written: self.stats.written.load(Ordering::Relaxed),
            rejected: self.stats.rejected.load(Ordering::Relaxed),
            last_message: (last > 0).then(|| format_datetime(last)),
            last_error: self.stats.last_error.lock().expect("not poisoned").clone(),
        }
    }
}

/// `mqtt://host:port` to (host, port).
pub fn parse_mqtt_url(url: &str) -> std::result::Result<(String, u16), String> {
    let rest = url
        .strip_prefix("mqtt://")
        .ok_or_else(|| format!("{url}: an MQTT broker is mqtt://host:port"))?;
    let rest = rest.split('/').next().unwrap_or(rest);
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    let port = port
        .parse()
        .map_err(|_| format!("{url}: the port is not a number"))?;
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok((host.to_owned(), port))
}

impl CityData {
    /// Subscribes to the mappings' topics at `broker_url` and writes what
    /// arrives, in batches (up to 1000 messages or 100 ms). Reconnects
    /// by itself; runs until the process ends.
    pub fn ingest_mqtt(
        &self,
        broker_url: &str,
        mappings: Mappings,
    ) -> std::result::Result<Ingestion, String> {
        let (host, port) = parse_mqtt_url(broker_url)?;
        let ingestion = Ingestion {
            broker: broker_url.to_owned(),
            mappings: Arc::new(mappings),
            stats: Arc::new(Stats::default()),
        };
        let mut options = rumqttc::MqttOptions::new(
            format!("civic-citydata-{}", uuid::Uuid::new_v4().simple()),
            host,
            port,
        );
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = rumqttc::AsyncClient::new(options, 1024);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, Value)>(8192);
        let reader = ingestion.clone();
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        reader.stats.connected.store(true, Ordering::Relaxed);
                        for m in &reader.mappings.mappings {
                            if let Err(e) = client
                                .subscribe(m.topic.clone(), rumqttc::QoS::AtLeastOnce)
                                .await
                            {
                                tracing::warn!(error = %e, "city data: subscribing failed");
                            }
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let now = crate::jsonld::now_ms();
                        reader.stats.messages.fetch_add(1, Ordering::Relaxed);
                        reader.stats.last_message_ms.store(now, Ordering::Relaxed);
                        let made = reader
                            .mappings
                            .find(&p.topic)
                            .ok_or_else(|| NgsiError::bad_data("no mapping takes the topic"))
                            .and_then(|(m, caps)| {
                                let payload: Value = serde_json::from_slice(&p.payload)
                                    .map_err(|_| NgsiError::bad_data("the message is not JSON"))?;
                                Ok((m.tenant.clone(), entity_of(m, &caps, &payload, now)?))
                            });
                        match made {
                            Ok(update) => {
                                if tx.send(update).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                reader.stats.rejected.fetch_add(1, Ordering::Relaxed);
                                *reader.stats.last_error.lock().expect("not poisoned") =
                                    Some(format!("{}: {}", p.topic, e.detail));
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        reader.stats.connected.store(false, Ordering::Relaxed);
                        *reader.stats.last_error.lock().expect("not poisoned") =
                            Some(format!("MQTT connection: {e}"));
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
        // What ingestion does is itself an entity of the default tenant,
        // `urn:ngsi-ld:Ingestion:mqtt`, updated every ten seconds: the
        // page shows it, and a subscription can watch it.
        let reporter = self.clone();
        let status = ingestion.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                let v = status.view();
                let prop = |value: Value| json!({"type": "Property", "value": value});
                let mut e = json!({
                    "id": "urn:ngsi-ld:Ingestion:mqtt", "type": "Ingestion",
                    "broker": prop(v.broker.clone().into()), "connected": prop(v.connected.into()),
                    "mappings": prop(v.mappings.into()), "messages": prop(v.messages.into()),
                    "written": prop(v.written.into()), "rejected": prop(v.rejected.into()),
                });
                if let Some(err) = v.last_error {
                    e["lastError"] = prop(err.into());
                }
                let ctxs = vec![Ok(crate::jsonld::Context::core())];
                if let Err(err) = reporter
                    .batch_upsert("", &Value::Array(vec![e]), &ctxs, false)
                    .await
                {
                    tracing::warn!(error = %err.detail, "city data: recording the ingestion's status failed");
                }
            }
        });
        let writer = self.clone();
        let stats = ingestion.stats.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
                while batch.len() < 1000 {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(u)) => batch.push(u),
                        _ => break,
                    }
                }
                let mut by_tenant: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                for (tenant, e) in batch {
                    by_tenant.entry(tenant).or_default().push(e);
                }
                for (tenant, entities) in by_tenant {
                    let n = entities.len() as u64;
                    let body = Value::Array(entities);
                    let ctxs = vec![Ok(crate::jsonld::Context::core())];
                    match writer.batch_upsert(&tenant, &body, &ctxs, true).await {
                        Ok(results) => {
                            let failed = results.iter().filter(|(_, r)| r.is_err()).count() as u64;
                            stats.written.fetch_add(n - failed, Ordering::Relaxed);
                            stats.rejected.fetch_add(failed, Ordering::Relaxed);
                            if let Some((id, Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
                                *stats.last_error.lock().expect("not poisoned") =
                                    Some(format!("{id}: {}", e.detail));
                            }
                        }
                        Err(e) => {
                            stats.rejected.fetch_add(n, Ordering::Relaxed);
                            *stats.last_error.lock().expect("not poisoned") = Some(e.detail);
                        }
                    }
                }
            }
        });
        Ok(ingestion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_match_filters_and_give_their_wildcards() {
        assert_eq!(
            topic_captures("city/air/+/reading", "city/air/gangnam/reading"),
            Some(vec!["gangnam".into()])
        );
        assert_eq!(
            topic_captures("city/#", "city/a/b"),
            Some(vec!["a/b".into()])
        );
        assert_eq!(
            topic_captures("city/air/+/reading", "city/air/gangnam"),
            None
        );
        assert_eq!(topic_captures("city/air/+", "city/air/a/b"), None);
        assert!(!valid_filter("city/#/x") && valid_filter("city/+/x/#"));
    }

    #[test]
    fn a_message_becomes_an_entity_update_or_a_clear_refusal() {
        let m = Mappings::parse(
            r#"
            [[mapping]]
            topic = "city/air/+/reading"
            id = "urn:ngsi-ld:AirQualityObserved:{1}"
            type = "AirQualityObserved"
            observed_at = "ts"
            location = { lat = "lat", lon = "lon" }
            [mapping.attributes]
            pm25 = { path = "pm.25", unit = "GQ" }
            "#,
            true,
        )
        .unwrap();
        let (mapping, caps) = m.find("city/air/jongno/reading").unwrap();
        let e = entity_of(
            mapping,
            &caps,
            &json!({"pm": {"25": 31.5}, "ts": 1583020800, "lat": 37.57, "lon": 126.98}),
            0,
        )
        .unwrap();
        assert_eq!(e["id"], "urn:ngsi-ld:AirQualityObserved:jongno");
        assert_eq!(e["pm25"]["value"], 31.5);
        assert_eq!(e["pm25"]["unitCode"], "GQ");
        assert_eq!(e["pm25"]["observedAt"], "2020-03-01T00:00:00.000Z");
        assert_eq!(
            e["location"]["value"]["coordinates"],
            json!([126.98, 37.57])
        );
        assert!(entity_of(mapping, &caps, &json!({"other": 1}), 0).is_err());
        assert!(Mappings::parse(
            "[[mapping]]\ntopic = \"a/#/b\"\nid = \"urn:x:{1}\"\ntype = \"T\"",
            true
        )
        .is_err());
        assert!(Mappings::parse(
            "[[mapping]]\ntopic = \"a\"\nid = \"urn:x\"\ntype = \"T\"\nbogus = 1",
            true
        )
        .is_err());
    }

    #[test]
    fn what_a_model_needs_and_the_sensor_does_not_send_is_mapped_too() {
        let m = Mappings::parse(
            r#"
            [[mapping]]
            topic = "city/parking/+/status"
            id = "urn:ngsi-ld:ParkingSpot:{1}"
            type = "ParkingSpot"
            observed_at = "ts"
            observed_as = "dateObserved"
            [mapping.attributes]
            status = { path = "status" }
            [mapping.fixed]
            category = { type = "Property", value = ["offStreet"] }
            refParkingSite = { type = "Relationship", object = "urn:ngsi-ld:OffStreetParking:{1}" }
            "#,
            true,
        )
        .unwrap();
        let (mapping, caps) = m.find("city/parking/coex/status").unwrap();
        let e = entity_of(
            mapping,
            &caps,
            &json!({"status": "free", "ts": 1583020800}),
            0,
        )
        .unwrap();
        assert_eq!(
            e["dateObserved"]["value"]["@value"],
            "2020-03-01T00:00:00.000Z"
        );
        assert_eq!(e["category"]["value"], json!(["offStreet"]));
        assert_eq!(
            e["refParkingSite"]["object"],
            "urn:ngsi-ld:OffStreetParking:coex"
        );
        let bad =
            "[[mapping]]\ntopic = \"a\"\nid = \"urn:x\"\ntype = \"T\"\n[mapping.fixed]\nc = 1";
        let err = Mappings::parse(bad, true).unwrap_err();
        assert!(err.contains("the fixed attribute c"), "{err}");
    }
}
