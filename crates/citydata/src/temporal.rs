//! The temporal evolution of entities (CIM 009 §4.5.7–4.5.10, §5.7.3–4):
//! the instances every write recorded, read back over a time interval
//! as instances, as `temporalValues`, or aggregated per period
//! (`aggrMethods` over `aggrPeriodDuration` buckets starting at
//! `timeAt`, as the ETSI suite expects).

use crate::entity::{format_datetime, parse_datetime, Entity, Instance};
use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use crate::store::{EntityStore, HistoryRow, Stats, ROLLUP_MS};
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
    /// Only the instances of these datasetIds (`@none`: the default
    /// instances), if given.
    pub datasets: Option<Vec<String>>,
    /// The most instances of one attribute shown (`city_temporal_instances`):
    /// beyond it the answer is cut (§6.3.10). None: all of them.
    pub limit: Option<usize>,
    /// Only the instances at these instants (inclusive): the cut of a
    /// query's page, applied to every entity on it.
    pub window: Option<(i64, i64)>,
    /// `timeproperty=deletedAt`: the deletions of attributes (recorded
    /// as NGSI-LD nulls with their `deletedAt`), which other answers
    /// leave out.
    pub deletions: bool,
}

/// Where a temporal answer was cut (§6.3.10): it shows every instance
/// between `from` and `to` and none beyond `to`. From the oldest instant
/// to the newest, or with `lastN` from the newest back to the oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub from: i64,
    pub to: i64,
}

impl Cut {
    /// An entity's cut, from the (oldest, newest) instants shown of each
    /// attribute that reached the limit: the answer ends where the first
    /// of them stops (the last, going back with `lastN`), and starts where
    /// the interval does, if it bounds that side.
    fn of(reached: &[(i64, i64)], r: &TemporalRender) -> Option<Cut> {
        let oldest = reached.iter().map(|x| x.0);
        let newest = reached.iter().map(|x| x.1);
        Some(if r.last_n.is_some() {
            let to = oldest.max()?;
            let from = match r.interval.until {
                i64::MAX => newest.max()?,
                until => until,
            };
            Cut { from, to }
        } else {
            let to = newest.min()?;
            let from = match r.interval.from {
                i64::MIN => oldest.min()?,
                from => from,
            };
            Cut { from, to }
        })
    }

    /// The cut of a page of entities: the narrowest of theirs, so that
    /// no entity shows what another's cut left for the next request.
    pub fn combine(cuts: impl IntoIterator<Item = Cut>, last_n: bool) -> Option<Cut> {
        cuts.into_iter().reduce(|a, b| {
            if last_n {
                Cut {
                    from: a.from.max(b.from),
                    to: a.to.max(b.to),
                }
            } else {
                Cut {
                    from: a.from.min(b.from),
                    to: a.to.min(b.to),
                }
            }
        })
    }

    /// The instants shown, lowest first.
    pub fn window(self) -> (i64, i64) {
        (self.from.min(self.to), self.from.max(self.to))
    }

    /// `Content-Range: date-time <from>-<to>/<lastN or *>`.
    pub fn content_range(self, last_n: Option<usize>) -> String {
        let size = last_n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        format!(
            "date-time {}-{}/{size}",
            instant(self.from),
            instant(self.to)
        )
    }
}

/// An attribute's instances with their instants, oldest first.
type Timed = Vec<(i64, Instance)>;

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

/// When an instance was true: its observedAt, else when it was written.
fn instant_of(i: &Instance, now: i64) -> i64 {
    i.get("observedAt")
        .and_then(Value::as_str)
        .and_then(parse_datetime)
        .or_else(|| i.get("modifiedAt").and_then(Value::as_i64))
        .unwrap_or(now)
}

/// A VocabProperty's value(s) compacted.
fn compact_vocab(v: &Value, ctx: &Context) -> Value {
    match v {
        Value::String(s) => Value::String(ctx.compact(s)),
        Value::Array(a) => Value::Array(a.iter().map(|x| compact_vocab(x, ctx)).collect()),
        other => other.clone(),
    }
}

/// Renders one entity's history (rows of one entity, in attr, at order),
/// and where it was cut if an attribute had more instances than shown.
pub fn render(
    id: &str,
    types: &[String],
    rows: &[HistoryRow],
    ctx: &Context,
    r: &TemporalRender,
) -> (Map<String, Value>, Option<Cut>) {
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
    let mut by_attr: BTreeMap<&str, Timed> = BTreeMap::new();
    for row in rows {
        if let Ok(Value::Object(i)) = serde_json::from_str::<Value>(&row.instance) {
            if crate::store::is_deletion(&i) != r.deletions {
                continue;
            }
            by_attr
                .entry(row.attr.as_str())
                .or_default()
                .push((row.at, i));
        }
    }
    // What is shown of each attribute: its instances of the datasetIds
    // asked for, within the page's window, the last N, at most `limit`
    // of them (the first, or the last with lastN).
    // (Each attribute's type is its first instance's, before any cut
    // leaves it none.)
    let mut shown: Vec<(&str, String, Timed)> = Vec::new();
    let mut reached: Vec<(i64, i64)> = Vec::new();
    for (attr, mut instances) in by_attr {
        if let Some(wanted) = &r.datasets {
            instances.retain(|(_, i)| wanted.iter().any(|d| d == crate::entity::dataset_key(i)));
            if instances.is_empty() {
                continue;
            }
        }
        let kind = instances
            .first()
            .and_then(|(_, i)| i.get("type").and_then(Value::as_str))
            .unwrap_or("Property")
            .to_owned();
        if let Some((lo, hi)) = r.window {
            instances.retain(|(at, _)| (lo..=hi).contains(at));
        }
        if let Some(n) = r.last_n {
            let skip = instances.len().saturating_sub(n);
            instances.drain(..skip);
        }
        if let (Some(limit), None) = (r.limit, &r.aggregate) {
            if instances.len() > limit {
                if r.last_n.is_some() {
                    instances.drain(..instances.len() - limit);
                } else {
                    instances.truncate(limit);
                }
                reached.push((instances[0].0, instances[instances.len() - 1].0));
            }
        }
        shown.push((attr, kind, instances));
    }
    // Cut where the first attribute that reached the limit stops: every
    // attribute shows its instances up to there (none, if they all come
    // after), so that the next request, from there on, misses nothing.
    let cut = Cut::of(&reached, r);
    if let Some(cut) = cut {
        let (lo, hi) = cut.window();
        for (_, _, instances) in &mut shown {
            instances.retain(|(at, _)| (lo..=hi).contains(at));
        }
    }
    for (attr, kind, instances) in shown {
        let (member, plural) = value_member(&kind);
        let name = ctx.compact(attr);
        if let Some((methods, period)) = &r.aggregate {
            out.insert(name, aggregate(&kind, &instances, methods, *period, r));
            continue;
        }
        if r.temporal_values {
            // One series per datasetId, the default instances' first.
            let mut series: BTreeMap<Option<&str>, Vec<&(i64, Instance)>> = BTreeMap::new();
            for x in &instances {
                series
                    .entry(x.1.get("datasetId").and_then(Value::as_str))
                    .or_default()
                    .push(x);
            }
            let mut shown: Vec<Value> = Vec::new();
            for (dataset, instances) in series {
                let values: Vec<Value> = instances
                    .iter()
                    .map(|(at, i)| {
                        let t = i
                            .get("observedAt")
                            .cloned()
                            .unwrap_or_else(|| instant(*at).into());
                        let v = i.get(member).cloned().unwrap_or(Value::Null);
                        // Values that are not plain are named by their member
                        // (§4.5.9: `{"json": …}`, `{"vocab": …}`, `{"languageMap": …}`).
                        let v = match member {
                            "json" | "languageMap" => json!({ member: v }),
                            "vocab" => json!({ member: compact_vocab(&v, ctx) }),
                            _ => v,
                        };
                        json!([v, t])
                    })
                    .collect();
                let mut one = json!({ "type": kind, plural: values });
                if let Some(d) = dataset {
                    one["datasetId"] = d.into();
                }
                shown.push(one);
            }
            let shown = match shown.len() {
                // Every instance beyond the answer's cut.
                0 => json!({ "type": kind, plural: [] }),
                1 => shown.remove(0),
                _ => Value::Array(shown),
            };
            out.insert(name, shown);
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
    (out, cut)
}

fn aggregate(
    kind: &str,
    instances: &[(i64, Instance)],
    methods: &[String],
    period: i64,
    r: &TemporalRender,
) -> Value {
    let (member, _) = value_member(kind);
    let Some(first) = instances.first().map(|(at, _)| *at) else {
        return json!({ "type": kind });
    };
    let last = instances[instances.len() - 1].0;
    let (origin, period) = buckets(r, period, first, last);
    // Bucket → its instances' values.
    let mut values: BTreeMap<i64, Vec<&Value>> = BTreeMap::new();
    for (at, i) in instances {
        if *at < origin {
            continue;
        }
        if let Some(v) = i.get(member) {
            values.entry((at - origin) / period).or_default().push(v);
        }
    }
    let stats: BTreeMap<i64, Stats> = values
        .iter()
        .map(|(k, vs)| {
            let mut s = Stats::default();
            for v in vs {
                s.add(&Stats::of(v.as_f64()));
            }
            (*k, s)
        })
        .collect();
    series(kind, methods, origin, period, &stats, |k, m| {
        let vs = &values[&k];
        match m {
            "distinctCount" => {
                let mut seen: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
                seen.sort();
                seen.dedup();
                Some(seen.len().into())
            }
            // Strings and date-times order too.
            _ => {
                let mut s: Vec<&str> = vs.iter().filter_map(|v| v.as_str()).collect();
                s.sort();
                let pick = if m == "min" { s.first() } else { s.last() };
                pick.map(|x| Value::String((*x).to_owned()))
            }
        }
    })
}

/// The buckets' origin and length: `timeAt`, else the first instance;
/// the period, or the whole interval (to its end, else past the last
/// instance) when it is none.
fn buckets(r: &TemporalRender, period: i64, first: i64, last: i64) -> (i64, i64) {
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
    (origin, period)
}

/// An aggregated attribute from its buckets' stats (bucket k starts at
/// `origin + k * period`); `values` answers what stats cannot (distinct
/// counts, bounds of values that are not numbers).
fn series(
    kind: &str,
    methods: &[String],
    origin: i64,
    period: i64,
    stats: &BTreeMap<i64, Stats>,
    values: impl Fn(i64, &str) -> Option<Value>,
) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), kind.into());
    for m in methods {
        let mut points = Vec::new();
        for (k, s) in stats {
            let numbers = s.nn > 0;
            let mean = s.sum / s.nn as f64;
            let result: Option<Value> = match m.as_str() {
                "totalCount" => Some(s.n.into()),
                "sum" if numbers => Some(s.sum.into()),
                "avg" if numbers => Some(mean.into()),
                "min" if numbers => s.min.map(Value::from),
                "max" if numbers => s.max.map(Value::from),
                "sumsq" if numbers => Some(s.sumsq.into()),
                "stddev" if numbers => {
                    Some((s.sumsq / s.nn as f64 - mean * mean).max(0.0).sqrt().into())
                }
                "distinctCount" | "min" | "max" => values(*k, m),
                _ => None,
            };
            if let Some(v) = result {
                let start = origin + k * period;
                points.push(json!([v, instant(start), instant(start + period)]));
            }
        }
        out.insert(m.clone(), Value::Array(points));
    }
    Value::Object(out)
}

/// An attribute's aggregation as the store sums it: whole hours from
/// its rollups, the hours that straddle buckets or the interval's ends
/// from its instances. None when the methods need the values themselves
/// (`distinctCount`, `lastN`, bounds of values that are not numbers).
async fn aggregate_from_sums(
    c: &CityData,
    tenant: &str,
    id: &str,
    attr: &str,
    methods: &[String],
    period: i64,
    r: &TemporalRender,
) -> Result<Option<Option<Value>>> {
    if r.last_n.is_some()
        || r.deletions
        || r.datasets.is_some()
        || methods.iter().any(|m| m == "distinctCount")
    {
        return Ok(None);
    }
    let iv = r.interval;
    let store = &c.store;
    let first_of = || store.history_edge(tenant, id, Some(attr), iv.from, iv.until, false);
    // The first instance is the buckets' origin unless `timeAt` is.
    let mut first = None;
    if r.origin.is_none() {
        match first_of().await? {
            Some(f) => first = Some(f),
            None => return Ok(Some(None)),
        }
    }
    // The last instance bounds the buckets only without a period and an
    // end; otherwise the interval's end will do.
    let last = if period <= 0 && iv.until == i64::MAX {
        match store
            .history_edge(tenant, id, Some(attr), iv.from, iv.until, true)
            .await?
        {
            Some(last) => last.at,
            None => return Ok(Some(None)),
        }
    } else {
        i64::MAX - 1
    };
    let (origin, period) = buckets(r, period, first.as_ref().map_or(0, |f| f.at), last);
    let (lo, hi) = (iv.from.max(origin), iv.until.min(last + 1));
    // Whole hours within [lo, hi); the rest is read instance by instance.
    let h_lo = lo.div_euclid(ROLLUP_MS) + i64::from(lo.rem_euclid(ROLLUP_MS) != 0);
    let h_hi = hi.div_euclid(ROLLUP_MS);
    let mut stats: BTreeMap<i64, Stats> = BTreeMap::new();
    let mut raw: Vec<(i64, i64)> = Vec::new();
    let mut read = |from: i64, until: i64| {
        if from >= until {
            return;
        }
        match raw.last_mut() {
            Some(r) if r.1 == from => r.1 = until,
            _ => raw.push((from, until)),
        }
    };
    if h_lo >= h_hi {
        read(lo, hi);
    } else {
        read(lo, h_lo * ROLLUP_MS);
        for (h, s) in store.rollups(tenant, id, attr, h_lo, h_hi).await? {
            let start = h * ROLLUP_MS;
            let k = (start - origin) / period;
            if k == (start + ROLLUP_MS - 1 - origin) / period {
                stats.entry(k).or_default().add(&s);
            } else {
                read(start, start + ROLLUP_MS);
            }
        }
        read(h_hi * ROLLUP_MS, hi);
    }
    for (from, until) in raw {
        for (k, s) in store
            .history_buckets(tenant, id, attr, from, until, (origin, period))
            .await?
        {
            stats.entry(k).or_default().add(&s);
        }
    }
    if stats.is_empty() {
        return Ok(Some(None));
    }
    let bounds = methods.iter().any(|m| m == "min" || m == "max");
    if bounds && stats.values().any(|s| s.nn == 0 && s.n > 0) {
        return Ok(None);
    }
    // Numbers are recorded of Properties only; else the first instance
    // tells the attribute's type.
    let kind = if stats.values().any(|s| s.nn > 0) {
        "Property".to_owned()
    } else {
        let first = match first {
            Some(f) => Some(f),
            None => first_of().await?,
        };
        first
            .and_then(|f| serde_json::from_str::<Value>(&f.instance).ok())
            .and_then(|i| i.get("type").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| "Property".into())
    };
    Ok(Some(Some(series(
        &kind,
        methods,
        origin,
        period,
        &stats,
        |_, _| None,
    ))))
}

/// An observation's place in an attribute's history: the attribute, when
/// it was observed, its datasetId.
type ObservedKey = (String, i64, Option<String>);

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
    /// An entity's types: its current ones, else those its history
    /// recorded; not found if it has neither a current form nor history.
    pub async fn temporal_types(&self, tenant: &str, id: &str) -> Result<Vec<String>> {
        crate::ops::check_id(id)?;
        if let Ok(e) = self.broker.get(tenant, id).await {
            return Ok(e.types.clone());
        }
        match self
            .store
            .history_edge(tenant, id, None, i64::MIN, i64::MAX, false)
            .await?
        {
            Some(r) => Ok(serde_json::from_str(&r.types).unwrap_or_default()),
            None => Err(NgsiError::not_found(format!(
                "there is no temporal entity {id}"
            ))),
        }
    }

    /// An entity's temporal representation as `r` says: aggregations
    /// from the store's sums where they serve, the instances otherwise;
    /// and where it was cut, if it was.
    pub async fn temporal_render(
        &self,
        tenant: &str,
        id: &str,
        types: &[String],
        attrs: Option<&[String]>,
        ctx: &Context,
        r: &TemporalRender,
    ) -> Result<(Map<String, Value>, Option<Cut>)> {
        let Some((methods, period)) = &r.aggregate else {
            let rows = self
                .store
                .history(tenant, id, attrs, r.interval.from, r.interval.until)
                .await?;
            let (mut out, cut) = render(id, types, &rows, ctx, r);
            // The scope is the entity's as it is now (it has no history).
            if let Ok(e) = self.broker.get(tenant, id).await {
                if !e.scope.is_empty() {
                    let scope: Vec<Value> = e.scope.iter().cloned().map(Value::String).collect();
                    out.insert(
                        "scope".into(),
                        if scope.len() == 1 {
                            scope[0].clone()
                        } else {
                            Value::Array(scope)
                        },
                    );
                }
            }
            return Ok((out, cut));
        };
        let (mut out, _) = render(id, types, &[], ctx, r);
        let names = match attrs {
            Some(a) => a.to_vec(),
            None => self.store.history_attrs(tenant, id).await?,
        };
        for attr in names {
            match aggregate_from_sums(self, tenant, id, &attr, methods, *period, r).await? {
                Some(Some(v)) => {
                    out.insert(ctx.compact(&attr), v);
                }
                Some(None) => {}
                None => {
                    let one = std::slice::from_ref(&attr);
                    let rows = self
                        .store
                        .history(tenant, id, Some(one), r.interval.from, r.interval.until)
                        .await?;
                    out.extend(render(id, types, &rows, ctx, r).0);
                }
            }
        }
        Ok((out, None))
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
        let existed = self
            .store
            .history_edge(tenant, &e.id, None, i64::MIN, i64::MAX, false)
            .await?
            .is_some()
            || self.broker.get(tenant, &e.id).await.is_ok();
        // An instance observed when one already recorded was (same
        // attribute and datasetId) replaces it (§5.6.11, 008_01): those
        // are found now and forgotten once the new ones are stored, so
        // that a failure in between leaves both, never neither.
        let replaced = if existed {
            self.observed_again(tenant, &e, now).await?
        } else {
            Vec::new()
        };
        // The entity as it is now takes each attribute's latest instance
        // of each datasetId (§5.6.11: creating a temporal representation
        // creates or updates the entity); the others are history only,
        // recorded in the same transaction.
        let mut current: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        let mut past: Vec<(String, Instance)> = Vec::new();
        for (attr, instances) in &e.attrs {
            let slot = current.entry(attr.clone()).or_default();
            for i in instances {
                match slot
                    .iter_mut()
                    .find(|x| x.get("datasetId") == i.get("datasetId"))
                {
                    Some(x) if instant_of(x, now) > instant_of(i, now) => {
                        past.push((attr.clone(), i.clone()))
                    }
                    Some(x) => past.push((attr.clone(), std::mem::replace(x, i.clone()))),
                    None => slot.push(i.clone()),
                }
            }
        }
        let row = |attr: &str, i: Instance| {
            let mut recorded = i;
            recorded.insert(
                "instanceId".into(),
                format!("urn:ngsi-ld:attribute:instance:{}", uuid::Uuid::new_v4()).into(),
            );
            HistoryRow {
                tenant: tenant.to_owned(),
                entity_id: e.id.clone(),
                types: serde_json::to_string(&e.types).unwrap_or_else(|_| "[]".into()),
                attr: attr.to_owned(),
                at: instant_of(&recorded, now),
                num: crate::store::number_of(&recorded),
                deleted: crate::store::is_deletion(&recorded),
                instance: Value::Object(recorded).to_string(),
                recorded_at: now,
            }
        };
        let mut rows: Vec<HistoryRow> = past.into_iter().map(|(a, i)| row(&a, i)).collect();
        self.broker
            .write_entity(tenant, &e.id, |txn| {
                match txn.get_mut(&e.id) {
                    Some(cur) => {
                        for t in &e.types {
                            if !cur.types.contains(t) {
                                cur.types.push(t.clone());
                            }
                        }
                        for (attr, latest) in current {
                            let slot = cur.attrs.entry(attr.clone()).or_default();
                            for i in latest {
                                match slot
                                    .iter_mut()
                                    .find(|x| x.get("datasetId") == i.get("datasetId"))
                                {
                                    // What the entity holds is more recent.
                                    Some(x) if instant_of(x, now) > instant_of(&i, now) => {
                                        rows.push(row(&attr, i))
                                    }
                                    Some(x) => *x = i,
                                    None => slot.push(i),
                                }
                            }
                        }
                        cur.modified_at = now;
                    }
                    None => {
                        let mut fresh = e.clone();
                        fresh.attrs = current;
                        txn.put(fresh);
                    }
                }
                txn.record(std::mem::take(&mut rows));
                Ok(())
            })
            .await?;
        if !replaced.is_empty() {
            // Forget each only where a new one was recorded beside it (an
            // instance equal to the entity's own is not recorded again).
            let now_recorded = self.observed_again(tenant, &e, now).await?;
            let was_there = |r: &HistoryRow| replaced.iter().any(|(_, o)| o.instance == r.instance);
            for (key, old) in &replaced {
                let again = now_recorded.iter().any(|(k, r)| k == key && !was_there(r));
                if again {
                    self.store.replace_instance(old, None).await?;
                }
            }
        }
        Ok(!existed)
    }

    /// The recorded instances of `e`'s attributes observed at the same
    /// instant, with the same datasetId, as one of `e`'s; with that key.
    async fn observed_again(
        &self,
        tenant: &str,
        e: &Entity,
        now: i64,
    ) -> Result<Vec<(ObservedKey, HistoryRow)>> {
        let key = |attr: &str, i: &Instance| {
            i.get("observedAt")?;
            Some((
                attr.to_owned(),
                instant_of(i, now),
                i.get("datasetId")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            ))
        };
        let wanted: std::collections::HashSet<_> = e
            .attrs
            .iter()
            .flat_map(|(attr, is)| is.iter().filter_map(move |i| key(attr, i)))
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let attrs: Vec<String> = e.attrs.keys().cloned().collect();
        let rows = self
            .store
            .history(tenant, &e.id, Some(&attrs), i64::MIN, i64::MAX)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let k = serde_json::from_str::<Instance>(&r.instance)
                    .ok()
                    .and_then(|i| key(&r.attr, &i))?;
                wanted.contains(&k).then_some((k, r))
            })
            .collect())
    }

    /// One recorded instance, its path checked (§5.6.14–15).
    async fn recorded_instance(
        &self,
        tenant: &str,
        id: &str,
        attr: &str,
        instance_id: &str,
    ) -> Result<HistoryRow> {
        crate::ops::check_id(id)?;
        if !crate::entity::is_uri(instance_id) {
            return Err(NgsiError::bad_data(format!(
                "{instance_id:?} is not an instanceId (a URI)"
            )));
        }
        self.store
            .history_instance(tenant, id, attr, instance_id)
            .await?
            .ok_or_else(|| {
                NgsiError::not_found(format!(
                    "there is no instance {instance_id} of that attribute of {id}"
                ))
            })
    }

    /// PATCH …/attrs/{attr}/{instanceId}: a fragment's members replace the
    /// recorded instance's; it keeps its instanceId.
    pub async fn modify_instance(
        &self,
        tenant: &str,
        id: &str,
        attr: &str,
        instance_id: &str,
        fragment: &Value,
        ctx: &Context,
    ) -> Result<()> {
        let old = self
            .recorded_instance(tenant, id, attr, instance_id)
            .await?;
        let now = crate::jsonld::now_ms();
        let patch =
            crate::entity::parse_instance(attr, fragment, ctx, now, crate::entity::Nulls::Refuse)?;
        let mut instance: Instance = serde_json::from_str(&old.instance)
            .map_err(|_| NgsiError::internal("a recorded instance does not read"))?;
        for (k, v) in patch {
            if k != "instanceId" && k != "createdAt" {
                instance.insert(k, v);
            }
        }
        instance.insert("modifiedAt".into(), now.into());
        let at = instance
            .get("observedAt")
            .and_then(Value::as_str)
            .and_then(parse_datetime)
            .unwrap_or(old.at);
        let new = HistoryRow {
            at,
            num: crate::store::number_of(&instance),
            deleted: crate::store::is_deletion(&instance),
            instance: Value::Object(instance).to_string(),
            ..old.clone()
        };
        if !self.store.replace_instance(&old, Some(&new)).await? {
            return Err(NgsiError::not_found(format!(
                "the instance {instance_id} was changed meanwhile"
            )));
        }
        Ok(())
    }

    /// DELETE …/attrs/{attr}/{instanceId}.
    pub async fn delete_instance(
        &self,
        tenant: &str,
        id: &str,
        attr: &str,
        instance_id: &str,
    ) -> Result<()> {
        let old = self
            .recorded_instance(tenant, id, attr, instance_id)
            .await?;
        if !self.store.replace_instance(&old, None).await? {
            return Err(NgsiError::not_found(format!(
                "the instance {instance_id} was deleted meanwhile"
            )));
        }
        Ok(())
    }

    /// Forgets an attribute's instances of a datasetId (none: its
    /// default instances).
    pub async fn delete_temporal_dataset(
        &self,
        tenant: &str,
        id: &str,
        attr: &str,
        dataset: Option<&str>,
    ) -> Result<()> {
        crate::ops::check_id(id)?;
        if self.store.delete_dataset(tenant, id, attr, dataset).await? == 0 {
            return Err(NgsiError::not_found(format!(
                "{id} has no such instances of that attribute"
            )));
        }
        Ok(())
    }

    /// Forgets an entity's history (or one attribute's); the whole
    /// temporal representation goes with the entity itself.
    pub async fn delete_temporal(&self, tenant: &str, id: &str, attr: Option<&str>) -> Result<()> {
        crate::ops::check_id(id)?;
        let removed = match attr {
            None => self
                .broker
                .write(tenant, |txn| Ok(txn.remove(id)))
                .await
                .unwrap_or(false),
            Some(_) => false,
        };
        let gone = self.store.delete_history(tenant, id, attr).await?;
        if gone == 0 && !removed {
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

    /// Rows of one attribute (its short name) of `urn:v`.
    fn rows(attr: &str, points: &[(f64, &str)]) -> Vec<HistoryRow> {
        points
            .iter()
            .map(|(v, t)| HistoryRow {
                tenant: String::new(),
                entity_id: "urn:v".into(),
                types: "[]".into(),
                attr: format!("https://uri.etsi.org/ngsi-ld/default-context/{attr}"),
                at: parse_datetime(t).unwrap(),
                instance: json!({"type": "Property", "value": v, "observedAt": t}).to_string(),
                recorded_at: 0,
                num: Some(*v),
                deleted: false,
            })
            .collect()
    }

    fn plain() -> TemporalRender {
        TemporalRender {
            temporal_values: false,
            aggregate: None,
            last_n: None,
            sys_attrs: false,
            interval: Interval::ALL,
            origin: None,
            datasets: None,
            limit: None,
            window: None,
            deletions: false,
        }
    }

    /// `n` instances a minute apart on a day of January 2020, from minute `first` after 01:00.
    fn minutes(attr: &str, day: u32, first: u32, n: u32) -> Vec<HistoryRow> {
        let times: Vec<String> = (first..first + n)
            .map(|m| format!("2020-01-{day:02}T{:02}:{:02}:00Z", 1 + m / 60, m % 60))
            .collect();
        let points: Vec<(f64, &str)> = times.iter().map(|t| (1.0, t.as_str())).collect();
        rows(attr, &points)
    }

    fn shown(out: &Map<String, Value>, attr: &str) -> Vec<String> {
        out[attr]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["observedAt"].as_str().unwrap().to_owned())
            .collect()
    }

    fn at(t: &str) -> i64 {
        parse_datetime(t).unwrap()
    }

    #[test]
    fn answers_are_cut_at_the_limit_and_say_where() {
        let ctx = Context::core();
        // As the ETSI suite's vehicle: two attributes of 20 instances each,
        // the second two minutes behind the first.
        let mut both = minutes("speed", 1, 1, 20);
        both.extend(minutes("fuelLevel", 1, 3, 20));
        let cut_at = |r: &TemporalRender| render("urn:v", &[], &both, &ctx, r);

        // Within the limit: everything, no cut.
        let (out, cut) = cut_at(&TemporalRender {
            limit: Some(20),
            ..plain()
        });
        assert_eq!((shown(&out, "speed").len(), cut), (20, None));

        // Oldest first: each attribute's first 10, up to where speed stops.
        let r = TemporalRender {
            limit: Some(10),
            ..plain()
        };
        let (out, cut) = cut_at(&r);
        let cut = cut.expect("cut");
        assert_eq!(cut.from, at("2020-01-01T01:01:00Z"));
        assert_eq!(cut.to, at("2020-01-01T01:10:00Z"));
        assert_eq!(shown(&out, "speed").len(), 10);
        assert_eq!(
            shown(&out, "fuelLevel"),
            (3..=10)
                .map(|m| format!("2020-01-01T01:{m:02}:00Z"))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            cut.content_range(None),
            "date-time 2020-01-01T01:01:00Z-2020-01-01T01:10:00Z/*"
        );
        // After an instant: the cut starts there.
        let after = TemporalRender {
            interval: Interval::parse(Some("after"), Some("2019-01-01T00:00:00Z"), None).unwrap(),
            ..r.clone()
        };
        assert_eq!(
            cut_at(&after).1.map(|c| c.from),
            Some(at("2019-01-01T00:00:00Z"))
        );

        // lastN beyond the limit: the newest 10, back to where fuelLevel
        // stops, newest first in the range, lastN as its size.
        let last = TemporalRender {
            last_n: Some(20),
            ..r.clone()
        };
        let (out, cut) = cut_at(&last);
        let cut = cut.expect("cut");
        assert_eq!(cut.from, at("2020-01-01T01:22:00Z"));
        assert_eq!(cut.to, at("2020-01-01T01:13:00Z"));
        assert_eq!(shown(&out, "speed").len(), 8);
        assert_eq!(shown(&out, "fuelLevel").len(), 10);
        assert!(cut.content_range(Some(20)).ends_with("/20"));
        // lastN within the limit is the limit: no cut.
        let few = TemporalRender {
            last_n: Some(5),
            ..r.clone()
        };
        let (out, cut) = cut_at(&few);
        assert_eq!((shown(&out, "fuelLevel").len(), cut), (5, None));

        // Attributes that do not overlap: the later one is shown empty,
        // its instances all beyond the cut.
        let mut apart = minutes("speed", 1, 1, 59);
        apart.extend(minutes("fuelLevel", 2, 1, 59));
        let (out, cut) = render("urn:v", &[], &apart, &ctx, &r);
        assert_eq!(cut.map(|c| c.to), Some(at("2020-01-01T01:10:00Z")));
        assert!(shown(&out, "fuelLevel").is_empty());
        let values = TemporalRender {
            temporal_values: true,
            ..r.clone()
        };
        let (out, _) = render("urn:v", &[], &apart, &ctx, &values);
        assert_eq!(out["fuelLevel"], json!({"type": "Property", "values": []}));

        // A page's cut is the narrowest of its entities'; every entity on
        // it is then shown within it.
        let a = Cut { from: 10, to: 50 };
        let b = Cut { from: 5, to: 40 };
        assert_eq!(Cut::combine([a, b], false), Some(Cut { from: 5, to: 40 }));
        let (a, b) = (Cut { from: 90, to: 50 }, Cut { from: 80, to: 60 });
        assert_eq!(Cut::combine([a, b], true), Some(Cut { from: 90, to: 60 }));
        let windowed = TemporalRender {
            window: Some((at("2020-01-01T01:05:00Z"), at("2020-01-01T01:06:00Z"))),
            ..r
        };
        let (out, cut) = cut_at(&windowed);
        assert_eq!((shown(&out, "speed").len(), cut), (2, None));
    }

    #[test]
    fn aggregation_buckets_start_at_the_origin() {
        let rows = rows(
            "speed",
            &[
                (120.0, "2020-08-01T12:03:00Z"),
                (80.0, "2020-08-01T12:05:00Z"),
                (100.0, "2020-08-01T13:07:00Z"),
            ],
        );
        let r = TemporalRender {
            aggregate: Some((vec!["avg".into(), "max".into()], 3_600_000)),
            origin: parse_datetime("2020-08-01T12:03:00Z"),
            ..plain()
        };
        let (out, _) = render(
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
