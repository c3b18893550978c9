//! The temporal API (§6.18–6.22).

use super::{
    accept, answer, body_context, created, link_context, no_content, tenant, Answer, Params,
};
use crate::problem::{NgsiError, Result};
use crate::query::TypeExpr;
use crate::store::EntityStore;
use crate::temporal::{parse_duration, Cut, Interval, TemporalRender, METHODS};
use crate::CityData;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

const READ_PARAMS: [&str; 16] = [
    "attrs",
    "timerel",
    "timeAt",
    "endTimeAt",
    "lastN",
    "options",
    "format",
    "aggrMethods",
    "aggrPeriodDuration",
    "timeproperty",
    "local",
    "lang",
    "pick",
    "omit",
    "datasetId",
    "join",
];

/// `pick` and `omit` (§4.21) of a temporal representation: its members
/// by the names the answer shows, checked as for entities.
#[derive(Debug, Clone, Default)]
struct Projection {
    pick: Option<Vec<String>>,
    omit: Option<Vec<String>>,
}

impl Projection {
    fn parse(p: &Params) -> Result<Projection> {
        let (pick, omit) = (p.get("pick"), p.get("omit"));
        if pick.is_some() && omit.is_some() {
            return Err(NgsiError::bad_data("pick and omit exclude each other"));
        }
        if (pick.is_some() || omit.is_some()) && p.get("attrs").is_some() {
            return Err(NgsiError::bad_data("pick and omit exclude attrs"));
        }
        let list = |s: Option<&str>| {
            s.map(|s| crate::query::parse_projection(s).map_err(|e| NgsiError::bad_data(e.detail)))
                .transpose()
        };
        Ok(Projection {
            pick: list(pick)?,
            omit: list(omit)?,
        })
    }

    fn apply(&self, body: &mut serde_json::Map<String, Value>) {
        if let Some(pick) = &self.pick {
            body.retain(|k, _| pick.contains(k));
        }
        if let Some(omit) = &self.omit {
            body.retain(|k, _| !omit.contains(k));
        }
    }
}

fn temporal_render(c: &CityData, p: &Params) -> Result<TemporalRender> {
    let interval = Interval::parse(p.get("timerel"), p.get("timeAt"), p.get("endTimeAt"))?;
    let mut options = p.options();
    for o in &options {
        if !matches!(
            o.as_str(),
            "temporalValues" | "aggregatedValues" | "sysAttrs" | "normalized" | "concise" | ""
        ) {
            return Err(NgsiError::invalid(format!(
                "options: {o:?} is not an option of the temporal API"
            )));
        }
    }
    // A format takes precedence over the representation options name.
    if let Some(format) = p.get("format") {
        options.retain(|o| o != "temporalValues" && o != "aggregatedValues");
        match format {
            "normalized" => {}
            "temporalValues" | "aggregatedValues" => options.push(format.to_owned()),
            "simplified" => options.push("temporalValues".into()),
            other => {
                return Err(NgsiError::invalid(format!(
                    "format: {other:?} is not a temporal representation"
                )))
            }
        }
    }
    if options.iter().any(|o| o == "temporalValues")
        && options.iter().any(|o| o == "aggregatedValues")
    {
        return Err(NgsiError::bad_data(
            "temporalValues and aggregatedValues exclude each other",
        ));
    }
    let aggregated = options.iter().any(|o| o == "aggregatedValues");
    let aggregate = if aggregated {
        let methods: Vec<String> = p
            .list("aggrMethods")
            .ok_or_else(|| NgsiError::bad_data("aggregatedValues needs aggrMethods"))?;
        if let Some(bad) = methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
            return Err(NgsiError::bad_data(format!(
                "{bad:?} is not an aggregation method"
            )));
        }
        let period = match p.get("aggrPeriodDuration") {
            None => 0,
            Some(d) => parse_duration(d)
                .ok_or_else(|| NgsiError::bad_data("aggrPeriodDuration is an ISO 8601 duration"))?,
        };
        Some((methods, period))
    } else {
        None
    };
    let last_n = match p.get("lastN") {
        None => None,
        Some(n) => Some(
            n.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| NgsiError::bad_data("lastN is a positive whole number"))?,
        ),
    };
    Ok(TemporalRender {
        temporal_values: options.iter().any(|o| o == "temporalValues"),
        aggregate,
        last_n,
        sys_attrs: options.iter().any(|o| o == "sysAttrs"),
        interval,
        origin: (interval.from != i64::MIN).then_some(interval.from),
        datasets: p.list("datasetId"),
        limit: Some(c.config.city_temporal_instances as usize),
        window: None,
        deletions: match p.get("timeproperty") {
            None | Some("observedAt" | "createdAt" | "modifiedAt") => false,
            Some("deletedAt") => true,
            Some(other) => {
                return Err(NgsiError::bad_data(format!(
                    "timeproperty {other:?} is observedAt, createdAt, modifiedAt or deletedAt"
                )))
            }
        },
    })
}

/// An answer cut at the limit of instances is partial, and says up to
/// where (§6.3.10); the client asks again from there.
fn partial(
    mut resp: axum::response::Response,
    cut: Option<Cut>,
    r: &TemporalRender,
) -> axum::response::Response {
    if let Some(cut) = cut {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&cut.content_range(r.last_n)) {
            resp.headers_mut()
                .insert(axum::http::header::CONTENT_RANGE, v);
        }
    }
    resp
}

pub async fn retrieve(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q.as_deref(), &READ_PARAMS)?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
    let r = temporal_render(&c, &p)?;
    let attrs: Option<Vec<String>> = p
        .list("attrs")
        .map(|l| l.iter().map(|n| ctx.expand(n)).collect());
    let projection = Projection::parse(&p)?;
    let t = tenant(&headers);
    let types = c.temporal_types(&t, &id).await?;
    let (mut body, cut) = c
        .temporal_render(&t, &id, &types, attrs.as_deref(), &ctx, &r)
        .await?;
    // None of the attributes asked for, or nothing left to show, is
    // "not found" (§5.7.1, as for entities).
    if attrs.is_some()
        && !body
            .keys()
            .any(|k| !matches!(k.as_str(), "id" | "type" | "scope"))
    {
        return Err(NgsiError::not_found(format!(
            "the temporal entity {id} has none of the attributes asked for"
        ))
        .into());
    }
    projection.apply(&mut body);
    if body.is_empty() {
        return Err(NgsiError::not_found(format!(
            "nothing of the temporal entity {id} is left to show"
        ))
        .into());
    }
    let resp = answer(StatusCode::OK, a, &ctx, Value::Object(body));
    Ok(partial(resp, cut, &r))
}

/// What a temporal query takes.
const QUERY_PARAMS: [&str; 14] = [
    "type",
    "id",
    "idPattern",
    "q",
    "scopeQ",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "limit",
    "offset",
    "count",
    "csf",
    "orderBy",
];

pub async fn query(State(c): State<CityData>, headers: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    let p = Params::parse(
        q.as_deref(),
        &[&READ_PARAMS[..], &QUERY_PARAMS[..]].concat(),
    )?;
    let ctx = link_context(&c, &headers).await?;
    query_with(c, &headers, p, ctx).await
}

/// POST /temporal/entityOperations/query: the query in the body (§5.7.4,
/// a Query with its `temporalQ`), as the parameters of a GET say it.
pub async fn post_query(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    let mut p = Params::parse(
        q.as_deref(),
        &[&READ_PARAMS[..], &QUERY_PARAMS[..]].concat(),
    )?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let obj = value
        .as_object()
        .ok_or_else(|| NgsiError::bad_data("a query is an object"))?;
    if obj.get("type").and_then(Value::as_str) != Some("Query") {
        return Err(NgsiError::bad_data("a query's type is \"Query\"").into());
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut types = Vec::new();
    let mut ids = Vec::new();
    for sel in obj
        .get("entities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = sel.get("type").and_then(Value::as_str) {
            types.push(t.to_owned());
        }
        if let Some(id) = sel.get("id").and_then(Value::as_str) {
            ids.push(id.to_owned());
        }
        if let Some(x) = sel.get("idPattern").and_then(Value::as_str) {
            p.push("idPattern", x);
        }
    }
    if !types.is_empty() {
        p.push("type", &types.join(","));
    }
    if !ids.is_empty() {
        p.push("id", &ids.join(","));
    }
    if let Some(attrs) = obj.get("attrs").and_then(Value::as_array) {
        let names: Vec<String> = attrs.iter().map(text).collect();
        p.push("attrs", &names.join(","));
    }
    for k in ["q", "scopeQ", "csf"] {
        if let Some(v) = obj.get(k) {
            p.push(k, &text(v));
        }
    }
    for (member, keys) in [
        (
            "geoQ",
            &["georel", "geometry", "coordinates", "geoproperty"][..],
        ),
        (
            "temporalQ",
            &["timerel", "timeAt", "endTimeAt", "timeproperty"][..],
        ),
    ] {
        if let Some(m) = obj.get(member) {
            for k in keys {
                if let Some(v) = m.get(*k) {
                    p.push(k, &text(v));
                }
            }
        }
    }
    query_with(c, &headers, p, ctx).await
}

async fn query_with(
    c: CityData,
    headers: &HeaderMap,
    p: Params,
    ctx: std::sync::Arc<crate::jsonld::Context>,
) -> Answer {
    let a = accept(headers, false)?;
    let r = temporal_render(&c, &p)?;
    let projection = Projection::parse(&p)?;
    // Ids alone do not make a query of the whole history (§5.7.4), unless
    // it is local.
    if p.get("type").is_none()
        && p.get("attrs").is_none()
        && p.get("q").is_none()
        && p.get("georel").is_none()
        && !p.flag("local")?
    {
        return Err(NgsiError::bad_data("a temporal query needs type, attrs, q or georel").into());
    }
    let types = p
        .get("type")
        .map(|t| TypeExpr::parse(t, &ctx))
        .transpose()?;
    let ids = p.list("id");
    let pattern = p
        .get("idPattern")
        .map(super::entities::id_pattern)
        .transpose()?;
    // q, scopeQ and the geo-query select by the entity as it is now.
    let mut now_filter = crate::broker::Filter {
        q: p.get("q")
            .map(crate::query::parse_q)
            .transpose()
            .map_err(|e| NgsiError::bad_data(e.detail))?,
        scope: p
            .get("scopeQ")
            .map(crate::query::ScopeQ::parse)
            .transpose()
            .map_err(|e| NgsiError::bad_data(e.detail))?,
        ..Default::default()
    };
    now_filter.geo = super::entities::geo_from(
        p.get("georel"),
        p.get("geometry"),
        p.get("coordinates")
            .map(|s| serde_json::from_str(s).unwrap_or(Value::String(s.to_owned()))),
        p.get("geoproperty"),
        &ctx,
    )?;
    let filters_now =
        now_filter.q.is_some() || now_filter.scope.is_some() || now_filter.geo.is_some();
    let attrs: Option<Vec<String>> = p
        .list("attrs")
        .map(|l| l.iter().map(|n| ctx.expand(n)).collect());
    let limit: usize = p
        .get("limit")
        .map(|l| {
            l.parse()
                .map_err(|_| NgsiError::bad_data("limit is a whole number"))
        })
        .transpose()?
        .unwrap_or(20);
    let offset: usize = p
        .get("offset")
        .map(|o| {
            o.parse()
                .map_err(|_| NgsiError::bad_data("offset is a whole number"))
        })
        .transpose()?
        .unwrap_or(0);
    let t = tenant(headers);
    let mut candidates = Vec::new();
    for (id, entity_types) in c.temporal_ids(&t).await? {
        if types.as_ref().is_some_and(|te| !te.matches(&entity_types))
            || ids.as_ref().is_some_and(|l| !l.contains(&id))
            || pattern.as_ref().is_some_and(|re| !re.is_match(&id))
        {
            continue;
        }
        if filters_now {
            match c.broker.get(&t, &id).await {
                Ok(e) if now_filter.matches(&e, &ctx) => {}
                _ => continue,
            }
        }
        candidates.push((id, entity_types));
    }
    // orderBy (§4.23) orders by the entities as they are now.
    if let Some(order) = super::entities::order_by(&p, &ctx)? {
        let mut keyed = Vec::with_capacity(candidates.len());
        for (id, types) in candidates {
            let keys = match c.broker.get(&t, &id).await {
                Ok(e) => order.keys(&e),
                Err(_) => order
                    .0
                    .iter()
                    .map(|(path, _)| match path.first().map(String::as_str) {
                        Some("id") => Some(Value::String(id.clone())),
                        Some("type") => types.first().map(|t| Value::String(t.clone())),
                        _ => None,
                    })
                    .collect(),
            };
            keyed.push((keys, (id, types)));
        }
        keyed.sort_by(|a, b| order.compare(&a.0, &b.0));
        candidates = keyed.into_iter().map(|(_, x)| x).collect();
    }
    // An entity is in the answer if it has instances of `attrs` in the
    // interval (any entity with history, when neither is given).
    let restricted = attrs.is_some() || r.interval != Interval::ALL;
    let counted = p.flag("count")?;
    let exists = |id: &str| {
        let (c, t, attrs) = (&c, &t, &attrs);
        let id = id.to_owned();
        async move {
            if !restricted {
                return Ok::<bool, NgsiError>(true);
            }
            Ok(c.store
                .history_exists(t, &id, attrs.as_deref(), r.interval.from, r.interval.until)
                .await?)
        }
    };
    let mut count = 0usize;
    let mut rest = candidates.into_iter();
    // The entities shown, and their answers.
    let mut page = Vec::new();
    let mut out = Vec::new();
    if counted {
        for (id, entity_types) in rest.by_ref() {
            if exists(&id).await? {
                count += 1;
                if count > offset && page.len() < limit {
                    page.push((id, entity_types));
                }
            }
        }
        out = render_page(&c, &t, page.clone(), &attrs, &ctx, &r).await?;
    } else {
        let mut skipped = 0;
        while skipped < offset {
            let Some((id, _)) = rest.next() else { break };
            skipped += usize::from(exists(&id).await?);
        }
        // Without a count, rendering tells which have instances: an
        // entity without any renders without attributes.
        let rest: Vec<_> = rest.collect();
        for chunk in rest.chunks(4) {
            if out.len() >= limit {
                break;
            }
            let bodies = render_page(&c, &t, chunk.to_vec(), &attrs, &ctx, &r).await?;
            for (entity, (body, cut)) in chunk.iter().zip(bodies) {
                let shown = !restricted
                    || body.as_object().is_some_and(|o| {
                        o.keys()
                            .any(|k| !matches!(k.as_str(), "id" | "type" | "scope"))
                    });
                if shown && out.len() < limit {
                    page.push(entity.clone());
                    out.push((body, cut));
                }
            }
        }
    }
    // An entity cut at the limit cuts the page: every entity on it is
    // shown up to the same instant, so that the next request misses none.
    let cut = Cut::combine(out.iter().filter_map(|x| x.1), r.last_n.is_some());
    if let Some(cut) = cut {
        let within = TemporalRender {
            window: Some(cut.window()),
            ..r.clone()
        };
        out = render_page(&c, &t, page, &attrs, &ctx, &within).await?;
    }
    let mut out: Vec<Value> = out.into_iter().map(|(body, _)| body).collect();
    for body in &mut out {
        if let Some(o) = body.as_object_mut() {
            projection.apply(o);
        }
    }
    let mut resp = answer(StatusCode::OK, a, &ctx, Value::Array(out));
    if counted {
        resp.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(count));
    }
    Ok(partial(resp, cut, &r))
}

/// Entities' temporal representations, in order, four at a time (each
/// is a few reads of the store), with where each was cut.
async fn render_page(
    c: &CityData,
    t: &str,
    page: Vec<(String, Vec<String>)>,
    attrs: &Option<Vec<String>>,
    ctx: &std::sync::Arc<crate::jsonld::Context>,
    r: &TemporalRender,
) -> Result<Vec<(Value, Option<Cut>)>> {
    let mut out = Vec::with_capacity(page.len());
    for chunk in page.chunks(4) {
        let mut running = tokio::task::JoinSet::new();
        for (i, (id, types)) in chunk.iter().cloned().enumerate() {
            let (c, t, attrs, ctx, r) = (
                c.clone(),
                t.to_owned(),
                attrs.clone(),
                ctx.clone(),
                r.clone(),
            );
            running.spawn(async move {
                let body = c
                    .temporal_render(&t, &id, &types, attrs.as_deref(), &ctx, &r)
                    .await;
                (i, body)
            });
        }
        let mut done: Vec<(usize, Result<_>)> = running.join_all().await;
        done.sort_by_key(|(i, _)| *i);
        for (_, body) in done {
            let (body, cut) = body?;
            out.push((Value::Object(body), cut));
        }
    }
    Ok(out)
}

pub async fn create(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if c.create_temporal(&tenant(&headers), &value, &ctx).await? {
        Ok(created(&format!("/temporal/entities/{id}")))
    } else {
        Ok(no_content())
    }
}

pub async fn append(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (mut value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let t = tenant(&headers);
    let types = c.temporal_types(&t, &id).await?;
    if let Some(o) = value.as_object_mut() {
        o.insert("id".into(), id.clone().into());
        o.insert(
            "type".into(),
            Value::Array(types.into_iter().map(Value::String).collect()),
        );
    }
    c.create_temporal(&t, &value, &ctx).await?;
    Ok(no_content())
}

pub async fn delete(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q.as_deref(), &["local", "type"])?;
    c.delete_temporal(&tenant(&headers), &id, None).await?;
    Ok(no_content())
}

pub async fn delete_attr(
    State(c): State<CityData>,
    Path((id, attr)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["local", "deleteAll", "datasetId"])?;
    let ctx = link_context(&c, &headers).await?;
    let attr = attr_of(&attr, &ctx)?;
    let t = tenant(&headers);
    // Every instance with deleteAll; else those of the datasetId given,
    // else the default ones (§5.6.12).
    if p.flag("deleteAll")? {
        c.delete_temporal(&t, &id, Some(&attr)).await?;
    } else {
        c.delete_temporal_dataset(&t, &id, &attr, p.get("datasetId"))
            .await?;
    }
    Ok(no_content())
}

/// The attribute of an instance's path, checked and expanded.
fn attr_of(attr: &str, ctx: &crate::jsonld::Context) -> Result<String> {
    if !crate::entity::is_valid_name(attr) {
        return Err(NgsiError::bad_data(format!(
            "{attr:?} is not a valid attribute name"
        )));
    }
    Ok(ctx.expand(attr))
}

pub async fn modify_instance(
    State(c): State<CityData>,
    Path((id, attr, instance)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    // `…/attrs//{instance}` read with the empty segment collapsed is an
    // attribute's path, which takes DELETE only.
    if attr.is_empty() {
        let mut resp = axum::response::IntoResponse::into_response(StatusCode::METHOD_NOT_ALLOWED);
        resp.headers_mut().insert(
            axum::http::header::ALLOW,
            HeaderValue::from_static("DELETE"),
        );
        return Ok(resp);
    }
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let attr = attr_of(&attr, &ctx)?;
    c.modify_instance(&tenant(&headers), &id, &attr, &instance, &value, &ctx)
        .await?;
    Ok(no_content())
}

pub async fn delete_instance(
    State(c): State<CityData>,
    Path((id, attr, instance)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let ctx = link_context(&c, &headers).await?;
    let attr = attr_of(&attr, &ctx)?;
    c.delete_instance(&tenant(&headers), &id, &attr, &instance)
        .await?;
    Ok(no_content())
}
