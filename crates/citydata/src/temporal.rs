//! The temporal evolution of entities (CIM 009 §4.5.7–4.5.10, §5.7.3–4):
//! the instances every write recorded, read back over a time interval
//! as instances, as `temporalValues`, or aggregated per period
//! (`aggrMethods` over `aggrPeriodDuration` buckets starting at
//! `timeAt`, as the ETSI suite expects).

use crate::entity::{format_datetime, parse_datetime, Entity, Instance};
use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use crate::store::{EntityStore, HistoryRow};
use crate::CityData;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// `timerel` with its instants (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub from: i64,
    pub until: i64,
}

impl Interval {
    pub const ALL: Interval = Interval {
        from: i64::MIN,
        until: i64::MAX,
    };

    /// From `timerel`, `timeAt`, `endTimeAt`.
    pub fn parse(
        timerel: Option<&str>,
        time_at: Option<&str>,
        end: Option<&str>,
    ) -> Result<Interval> {
        let t = |s: Option<&str>, what: &str| -> Result<i64> {
            s.and_then(parse_datetime)
                .ok_or_else(|| NgsiError::bad_data(format!("{what} is a DateTime")))
        };
        Ok(match timerel {
            None if time_at.is_none() && end.is_none() => Interval::ALL,
            None => return Err(NgsiError::bad_data("timeAt needs timerel")),
            Some("before") => Interval {
                from: i64::MIN,
                until: t(time_at, "timeAt")?,
            },
            Some("after") => Interval {
                from: t(time_at, "timeAt")?,
                until: i64::MAX,
            },
            Some("between") => {
                let (from, until) = (t(time_at, "timeAt")?, t(end, "endTimeAt")?);
                if until <= from {
                    return Err(NgsiError::bad_data("endTimeAt comes after timeAt"));
                }
                Interval { from, until }
            }
            Some(other) => {
                return Err(NgsiError::bad_data(format!(
                    "timerel {other:?} is before, after or between"
                )))
            }
        })
    }
}

/// The aggregation methods (§4.5.19).
pub const METHODS: [&str; 8] = [
    "totalCount",
    "distinctCount",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "sumsq",
];

/// An ISO 8601 duration in milliseconds (`PT1H`, `P1D`, `P1Y2M…` with
/// months as 30 days and years as 365); 0 means the whole interval.
pub fn parse_duration(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut ms: i64 = 0;
    let mut take = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let unit = units.iter().find(|(u, _)| *u == c)?.1;
                let n: f64 = num.parse().ok()?;
                ms += (n * unit as f64) as i64;
                num.clear();
            }
        }
        num.is_empty().then_some(())
    };
    const S: i64 = 1000;
    take(
        date,
        &[
            ('Y', 365 * 86_400 * S),
            ('M', 30 * 86_400 * S),
            ('W', 7 * 86_400 * S),
            ('D', 86_400 * S),
        ],
    )?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        take(t, &[('H', 3600 * S), ('M', 60 * S), ('S', S)])?;
    }
    Some(ms)
}

/// Instants in the form the temporal answers use (seconds unless there
/// are milliseconds).
fn instant(ms: i64) -> String {
    let full = format_datetime(ms);
    if ms.rem_euclid(1000) == 0 {
        format!("{}Z", &full[..19])
    } else {
        full
    }
}

/// How to render a temporal answer.
#[derive(Debug, Clone)]
pub struct TemporalRender {
    pub temporal_values: bool,
    pub aggregate: Option<(Vec<String>, i64)>,
    pub last_n: Option<usize>,
    pub sys_attrs: bool,
    pub interval: Interval,
    /// The aggregation buckets' origin (`timeAt`, else the first instance).
    pub origin: Option<i64>,
}

fn value_member(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Relationship" => ("object", "objects"),
        "LanguageProperty" => ("languageMap", "languageMaps"),
        "VocabProperty" => ("vocab", "vocabs"),
        "JsonProperty" => ("json", "jsons"),
        "ListProperty" => ("valueList", "valueLists"),
        "ListRelationship" => ("objectList", "objectsLists"),
        _ => ("value", "values"),
    }
}

/// Renders one entity's history (rows of one entity, in attr, at order).
pub fn render(
    id: &str,
    types: &[String],
    rows: &[HistoryRow],
    ctx: &Context,
    r: &TemporalRender,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), id.into());
    let t: Vec<Value> = types
        .iter()
        .map(|t| Value::String(ctx.compact(t)))
        .collect();
    out.insert(
        "type".into(),
        if t.len() == 1 {
            t[0].clone()
        } else {
            Value::Array(t)
        },
    );
    let mut by_attr: BTreeMap<&str, Vec<(i64, Instance)>> = BTreeMap::new();
    for row in rows {
        if let Ok(Value::Object(i)) = serde_json::from_str::<Value>(&row.instance) {
            by_attr
                .entry(row.attr.as_str())
                .or_default()
                .push((row.at, i));
        }
    }
    for (attr, mut instances) in by_attr {
        if let Some(n) = r.last_n {
            let skip = instances.len().saturating_sub(n);
            instances.drain(..skip);
        }
        let kind = instances
            .first()
            .and_then(|(_, i)| i.get("type").and_then(Value::as_str))
            .unwrap_or("Property")
            .to_owned();
        let (member, plural) = value_member(&kind);
        let name = ctx.compact(attr);
        if let Some((methods, period)) = &r.aggregate {
            out.insert(name, aggregate(&kind, &instances, methods, *period, r));
            continue;
        }
        if r.temporal_values {
            let values: Vec<Value> = instances
                .iter()
                .map(|(at, i)| {
                    let t = i
                        .get("observedAt")
                        .cloned()
                        .unwrap_or_else(|| instant(*at).into());
                    json!([i.get(member).cloned().unwrap_or(Value::Null), t])
                })
                .collect();
            out.insert(name, json!({ "type": kind, plural: values }));
            continue;
        }
        let rendered: Vec<Value> = instances
            .iter()
            .map(|(_, i)| {
                let render = crate::entity::Render {
                    sys_attrs: r.sys_attrs,
                    ..Default::default()
                };
                let mut v = crate::entity::render_instance(i, ctx, &render);
                if let (Some(o), Some(id)) = (v.as_object_mut(), i.get("instanceId")) {
                    o.insert("instanceId".into(), id.clone());
                }
                v
            })
            .collect();
        out.insert(name, Value::Array(rendered));
    }
    out
}

fn aggregate(
    kind: &str,
    instances: &[(i64, Instance)],
    methods: &[String],
    period: i64,
    r: &TemporalRender,
) -> Value {
    let (member, _) = value_member(kind);
    let mut out = Map::new();
    out.insert("type".into(), kind.into());
    if instances.is_empty() {
        return Value::Object(out);
    }
    let first = instances[0].0;
    let last = instances[instances.len() - 1].0;
    let origin = r.origin.unwrap_or(first);
    let end = if r.interval.until == i64::MAX {
        last + 1
    } else {
        r.interval.until
    };
    let period = if period <= 0 {
        (end - origin).max(1)
    } else {
        period
    };
    // Bucket → its instances' values.
    let mut buckets: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for (at, i) in instances {
        if *at < origin {
            continue;
        }
        let b = origin + (at - origin) / period * period;
        if let Some(v) = i.get(member) {
            buckets.entry(b).or_default().push(v);
        }
    }
    for m in methods {
        let mut series = Vec::new();
        for (start, values) in &buckets {
            let nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
            let n = nums.len() as f64;
            let sum: f64 = nums.iter().sum();
            let result: Option<Value> = match m.as_str() {
                "totalCount" => Some(values.len().into()),
                "distinctCount" => {
                    let mut seen: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                    seen.sort();
                    seen.dedup();
                    Some(seen.len().into())
                }
                "sum" if n > 0.0 => Some(sum.into()),
                "avg" if n > 0.0 => Some((sum / n).into()),
                "min" if n > 0.0 => Some(nums.iter().cloned().fold(f64::INFINITY, f64::min).into()),
                "max" if n > 0.0 => Some(
                    nums.iter()
                        .cloned()
                        .fold(f64::NEG_INFINITY, f64::max)
                        .into(),
                ),
                "sumsq" if n > 0.0 => Some(nums.iter().map(|x| x * x).sum::<f64>().into()),
                "stddev" if n > 0.0 => {
                    let mean = sum / n;
                    let var = nums.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                    Some(var.sqrt().into())
                }
                "min" | "max" => {
                    // Strings and date-times order too.
                    let mut s: Vec<&str> = values.iter().filter_map(|v| v.as_str()).collect();
                    s.sort();
                    let pick = if m == "min" { s.first() } else { s.last() };
                    pick.map(|x| Value::String((*x).to_owned()))
                }
                _ => None,
            };
            if let Some(v) = result {
                series.push(json!([v, instant(*start), instant(start + period)]));
            }
        }
        out.insert(m.clone(), Value::Array(series));
    }
    Value::Object(out)
}

/// A temporal representation: like an entity, but an attribute's
/// instances may share a datasetId (they are its values over time).
fn parse_temporal(body: &Value, ctx: &Context, now: i64) -> Result<Entity> {
    let obj = body
        .as_object()
        .ok_or_else(|| NgsiError::invalid("the payload must be a JSON object"))?;
    let mut bare = Map::new();
    let mut attrs: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
    for (k, v) in obj {
        match k.as_str() {
            "id" | "@id" | "type" | "@type" | "scope" | "@context" | "createdAt" | "modifiedAt" => {
                bare.insert(k.clone(), v.clone());
            }
            name => {
                if !crate::entity::is_valid_name(name) {
                    return Err(NgsiError::bad_data(format!(
                        "{name:?} is not a valid attribute name"
                    )));
                }
                let iri = ctx.expand(name);
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                for item in items {
                    let i = crate::entity::parse_instance(
                        &iri,
                        item,
                        ctx,
                        now,
                        crate::entity::Nulls::Refuse,
                    )?;
                    attrs.entry(iri.clone()).or_default().push(i);
                }
            }
        }
    }
    let mut e = crate::entity::parse_entity(&Value::Object(bare), ctx, now)?;
    e.attrs = attrs;
    Ok(e)
}

impl CityData {
    /// An entity's types and recorded rows, in `attrs` (IRIs), over the
    /// interval; not found if it has neither history nor a current form.
    pub async fn temporal_entity(
        &self,
        tenant: &str,
        id: &str,
        attrs: Option<&[String]>,
        interval: Interval,
    ) -> Result<(Vec<String>, Vec<HistoryRow>)> {
        crate::ops::check_id(id)?;
        let rows = self
            .store
            .history(tenant, id, attrs, interval.from, interval.until)
            .await?;
        let current = self.broker.get(tenant, id).await.ok();
        let types = match (&current, rows.first()) {
            (Some(e), _) => e.types.clone(),
            (None, Some(r)) => serde_json::from_str(&r.types).unwrap_or_default(),
            (None, None) => {
                // History of another interval still proves the entity.
                let any = self
                    .store
                    .history(tenant, id, None, i64::MIN, i64::MAX)
                    .await?;
                match any.first() {
                    Some(r) => serde_json::from_str(&r.types).unwrap_or_default(),
                    None => {
                        return Err(NgsiError::not_found(format!(
                            "there is no temporal entity {id}"
                        )))
                    }
                }
            }
        };
        Ok((types, rows))
    }

    /// Ids and types of every entity with history, or a current form.
    pub async fn temporal_ids(&self, tenant: &str) -> Result<Vec<(String, Vec<String>)>> {
        let mut all: BTreeMap<String, Vec<String>> = self
            .store
            .history_entities(tenant)
            .await?
            .into_iter()
            .map(|(id, t)| (id, serde_json::from_str(&t).unwrap_or_default()))
            .collect();
        if let Ok(current) = self.broker.all(tenant).await {
            for e in current {
                all.insert(e.id.clone(), e.types.clone());
            }
        }
        Ok(all.into_iter().collect())
    }

    /// POST /temporal/entities: records the instances given (creating the
    /// entity's temporal representation); whether it is new.
    pub async fn create_temporal(&self, tenant: &str, body: &Value, ctx: &Context) -> Result<bool> {
        let now = crate::jsonld::now_ms();
        let e = parse_temporal(body, ctx, now)?;
        let existed = !self
            .store
            .history(tenant, &e.id, None, i64::MIN, i64::MAX)
            .await?
            .is_empty()
            || self.broker.get(tenant, &e.id).await.is_ok();
        let types = serde_json::to_string(&e.types).unwrap_or_else(|_| "[]".into());
        let mut rows = Vec::new();
        for (attr, instances) in &e.attrs {
            for i in instances {
                let at = i
                    .get("observedAt")
                    .and_then(Value::as_str)
                    .and_then(parse_datetime)
                    .unwrap_or(now);
                let mut recorded = i.clone();
                recorded.insert(
                    "instanceId".into(),
                    format!("urn:ngsi-ld:attribute:instance:{}", uuid::Uuid::new_v4()).into(),
                );
                rows.push(HistoryRow {
                    tenant: tenant.to_owned(),
                    entity_id: e.id.clone(),
                    types: types.clone(),
                    attr: attr.clone(),
                    at,
                    instance: Value::Object(recorded).to_string(),
                    recorded_at: crate::jsonld::now_ms(),
                });
            }
        }
        if rows.is_empty() {
            // An entity with no attribute still has a temporal form.
            rows.push(HistoryRow {
                tenant: tenant.to_owned(),
                entity_id: e.id.clone(),
                types,
                attr: String::new(),
                at: now,
                instance: "{}".into(),
                recorded_at: now,
            });
        }
        self.broker.tenant_for_write(tenant).await?;
        self.store.write_entities(&[], &[], &rows).await?;
        Ok(!existed)
    }

    /// Forgets an entity's history (or one attribute's).
    pub async fn delete_temporal(&self, tenant: &str, id: &str, attr: Option<&str>) -> Result<()> {
        crate::ops::check_id(id)?;
        let gone = self.store.delete_history(tenant, id, attr).await?;
        if gone == 0 {
            return Err(NgsiError::not_found(format!(
                "there is no temporal entity {id}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_iso_8601() {
        assert_eq!(parse_duration("PT1H"), Some(3_600_000));
        assert_eq!(parse_duration("P1D"), Some(86_400_000));
        assert_eq!(parse_duration("P1DT30M"), Some(88_200_000));
        assert_eq!(parse_duration("PT0S"), Some(0));
        assert_eq!(parse_duration("1H"), None);
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(parse_duration("PT5X"), None);
    }

    #[test]
    fn aggregation_buckets_start_at_the_origin() {
        let rows: Vec<HistoryRow> = [
            (120.0, "2020-08-01T12:03:00Z"),
            (80.0, "2020-08-01T12:05:00Z"),
            (100.0, "2020-08-01T13:07:00Z"),
        ]
        .iter()
        .map(|(v, t)| HistoryRow {
            tenant: String::new(),
            entity_id: "urn:v".into(),
            types: "[]".into(),
            attr: "https://uri.etsi.org/ngsi-ld/default-context/speed".into(),
            at: parse_datetime(t).unwrap(),
            instance: json!({"type": "Property", "value": v, "observedAt": t}).to_string(),
            recorded_at: 0,
        })
        .collect();
        let r = TemporalRender {
            temporal_values: false,
            aggregate: Some((vec!["avg".into(), "max".into()], 3_600_000)),
            last_n: None,
            sys_attrs: false,
            interval: Interval::ALL,
            origin: parse_datetime("2020-08-01T12:03:00Z"),
        };
        let out = render(
            "urn:v",
            &["https://uri.etsi.org/ngsi-ld/default-context/Vehicle".into()],
            &rows,
            &Context::core(),
            &r,
        );
        assert_eq!(
            out["speed"]["avg"],
            json!([
                [100.0, "2020-08-01T12:03:00Z", "2020-08-01T13:03:00Z"],
                [100.0, "2020-08-01T13:03:00Z", "2020-08-01T14:03:00Z"]
            ])
        );
        assert_eq!(out["speed"]["max"][0][0], 120.0);
    }
}
