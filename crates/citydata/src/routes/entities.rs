//! Entities and their attributes (§6.4–6.7), batch operations (§6.14–6.31),
//! queries (§6.4.3.1, §6.23).

use super::{
    accept, answer, body_context, created, item_contexts, link_context, no_content, tenant, Accept,
    Answer, Params,
};
use crate::broker::Filter;
use crate::entity::{render, Entity, Format, Render};
use crate::geo::{GeoQuery, GeoRel, Geometry};
use crate::join::{join, own_names, Linking};
use crate::jsonld::Context;
use crate::ops::{check_id, BatchResult};
use crate::problem::{NgsiError, Result};
use crate::query::{parse_projection_tree, parse_q, ScopeQ, TypeExpr};
use crate::CityData;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};
use std::sync::Arc;

const RENDER_PARAMS: [&str; 11] = [
    "attrs",
    "options",
    "format",
    "lang",
    "pick",
    "omit",
    "geometryProperty",
    "join",
    "joinLevel",
    "local",
    "datasetId",
];

/// How to render, from `options`, `format`, `attrs`, `pick`, `omit`,
/// `lang`; and what to join, from `join` and `joinLevel`.
fn render_params(p: &Params, ctx: &Context) -> Result<(Render, Option<Linking>)> {
    let mut r = Render::default();
    let mut formats = 0;
    for o in p.options() {
        match o.as_str() {
            "keyValues" | "simplified" => {
                r.format = Format::KeyValues;
                formats += 1;
            }
            "concise" => {
                r.format = Format::Concise;
                formats += 1;
            }
            "normalized" => formats += 1,
            "sysAttrs" => r.sys_attrs = true,
            "" => {}
            other => {
                return Err(NgsiError::invalid(format!(
                    "options: {other:?} is not an option here"
                )))
            }
        }
    }
    if formats > 1 && p.get("format").is_none() {
        return Err(NgsiError::invalid(
            "options: choose one of keyValues, concise and normalized",
        ));
    }
    if let Some(f) = p.get("format") {
        r.format = match f {
            "keyValues" | "simplified" => Format::KeyValues,
            "concise" => Format::Concise,
            "normalized" => Format::Normalized,
            other => {
                return Err(NgsiError::invalid(format!(
                    "format: {other:?} is not a format"
                )))
            }
        };
    }
    r.attrs = p
        .list("attrs")
        .map(|l| l.into_iter().map(|n| ctx.expand(&n)).collect());
    if p.get("pick").is_some() && p.get("omit").is_some() {
        return Err(NgsiError::bad_data("pick and omit exclude each other"));
    }
    if (p.get("pick").is_some() || p.get("omit").is_some()) && p.get("attrs").is_some() {
        return Err(NgsiError::bad_data("pick and omit exclude attrs"));
    }
    let tree = |s: &str| parse_projection_tree(s).map_err(|e| NgsiError::bad_data(e.detail));
    let pick = p.get("pick").map(tree).transpose()?;
    let omit = p.get("omit").map(tree).transpose()?;
    r.pick = pick.as_deref().map(|l| own_names(l, false, ctx));
    r.omit = omit.as_deref().map(|l| own_names(l, true, ctx));
    r.lang = p.get("lang").map(str::to_owned);
    r.datasets = p.list("datasetId");
    let linking = Linking::from_params(p.get("join"), p.get("joinLevel"), pick, omit)?;
    Ok((r, linking))
}

/// The entities shown, with what they link to if a join is asked: one
/// value each (inline), then the linked ones (flat).
async fn shown_with_links(
    c: &CityData,
    headers: &HeaderMap,
    entities: &[Arc<Entity>],
    ctx: &Context,
    r: &Render,
    linking: Option<&Linking>,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let shown: Vec<Map<String, Value>> = entities.iter().map(|e| render(e, ctx, r)).collect();
    let Some(l) = linking else {
        return Ok((shown.into_iter().map(Value::Object).collect(), Vec::new()));
    };
    let (main, flat) = c
        .broker
        .read(&tenant(headers), |get| {
            join(entities, shown, ctx, r, l, get)
        })
        .await??;
    Ok((main.into_iter().map(Value::Object).collect(), flat))
}

/// The entity as a GeoJSON Feature.
fn feature(e: &Entity, ctx: &Context, r: &Render, geometry_property: &str) -> Value {
    let iri = ctx.expand(geometry_property);
    let geometry = e
        .attrs
        .get(&iri)
        .and_then(|i| i.first())
        .and_then(|i| i.get("value"))
        .filter(|v| Geometry::from_geojson(v).is_some())
        .cloned()
        .unwrap_or(Value::Null);
    let mut properties = render(e, ctx, r);
    let id = properties
        .remove("id")
        .unwrap_or_else(|| e.id.clone().into());
    json!({ "id": id, "type": "Feature", "geometry": geometry, "properties": properties, "@context": ctx.original })
}

fn entity_answer(
    e: &Entity,
    ctx: &Context,
    r: &Render,
    a: Accept,
    p: &Params,
) -> axum::response::Response {
    match a {
        Accept::GeoJson => {
            let body = feature(e, ctx, r, p.get("geometryProperty").unwrap_or("location"));
            answer(StatusCode::OK, a, ctx, body)
        }
        _ => answer(StatusCode::OK, a, ctx, Value::Object(render(e, ctx, r))),
    }
}

/// `orderBy=path[;asc|desc],…`.
pub(super) fn order_by(p: &Params, ctx: &Context) -> Result<Option<crate::broker::OrderBy>> {
    let Some(raw) = p.get("orderBy") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for term in raw.split(',') {
        let (path, dir) = term.split_once(';').unwrap_or((term, "asc"));
        let desc = match dir {
            "asc" => false,
            "desc" => true,
            other => {
                return Err(NgsiError::bad_data(format!(
                    "orderBy: {other:?} is asc or desc"
                )))
            }
        };
        let steps: Vec<String> =
            path.split('.')
                .enumerate()
                .map(|(n, step)| {
                    if step.is_empty() || !crate::entity::is_valid_name(step) {
                        return Err(NgsiError::bad_data(format!(
                            "orderBy: {path:?} is not a path"
                        )));
                    }
                    Ok(match (n, step) {
                        (0, "id" | "type" | "createdAt" | "modifiedAt") => step.to_owned(),
                        (
                            n,
                            "createdAt" | "modifiedAt" | "observedAt" | "unitCode" | "datasetId",
                        ) if n > 0 => step.to_owned(),
                        _ => ctx.expand(step),
                    })
                })
                .collect::<Result<_>>()?;
        out.push((steps, desc));
    }
    Ok(Some(crate::broker::OrderBy(out)))
}

pub async fn retrieve(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(
        q.as_deref(),
        &[&RENDER_PARAMS[..], &["type", "containedBy", "entityMap"]].concat(),
    )?;
    let a = accept(&headers, true)?;
    check_id(&id)?;
    let ctx = link_context(&c, &headers).await?;
    let (r, linking) = render_params(&p, &ctx)?;
    let e = c.broker.get(&tenant(&headers), &id).await?;
    if let Some(t) = p.get("type") {
        if !TypeExpr::parse(t, &ctx)?.matches(&e.types) {
            return Err(
                NgsiError::not_found(format!("there is no entity {id} of that type")).into(),
            );
        }
    }
    // Nothing of the entity left to show is "not found" (§5.7.1).
    let shown = render(&e, &ctx, &r);
    let has_attrs = shown.keys().any(|k| {
        !matches!(
            k.as_str(),
            "id" | "type" | "scope" | "createdAt" | "modifiedAt"
        )
    });
    if (r.attrs.is_some() && !has_attrs)
        || shown.is_empty()
        || (r.pick.is_some() && shown.is_empty())
    {
        return Err(NgsiError::not_found(format!(
            "entity {id} has none of the attributes asked for"
        ))
        .into());
    }
    if r.pick.as_ref().is_some_and(|p| {
        p.iter()
            .all(|m| !shown.contains_key(&ctx.compact(m)) && !shown.contains_key(m))
    }) {
        return Err(
            NgsiError::not_found(format!("entity {id} has none of the members picked")).into(),
        );
    }
    if linking.is_some() && a != Accept::GeoJson {
        let (mut main, flat) =
            shown_with_links(&c, &headers, &[e], &ctx, &r, linking.as_ref()).await?;
        let main = main.pop().unwrap_or_default();
        // Flat with nothing linked is the entity alone, as the ETSI
        // suite's retrievals (018_14) and the peers answer it.
        let body = if flat.is_empty() {
            main
        } else {
            Value::Array(std::iter::once(main).chain(flat).collect())
        };
        return Ok(answer(StatusCode::OK, a, &ctx, body));
    }
    Ok(entity_answer(&e, &ctx, &r, a, &p))
}

/// An `idPattern`: a POSIX extended regular expression (§4.9), in which
/// a repetition of a repetition (`a**`, `a+*`) is undefined and refused,
/// though Rust's syntax would take it.
pub(super) fn id_pattern(pattern: &str) -> Result<regex::Regex> {
    let bad = || {
        NgsiError::bad_data(format!(
            "idPattern: {pattern:?} is not a regular expression"
        ))
    };
    let mut escaped = false;
    let mut in_class = false;
    let mut last_repeat = false;
    for c in pattern.chars() {
        let repeat = !escaped && !in_class && matches!(c, '*' | '+');
        if repeat && last_repeat {
            return Err(bad());
        }
        last_repeat = repeat;
        if !escaped {
            match c {
                '[' => in_class = true,
                ']' => in_class = false,
                _ => {}
            }
        }
        escaped = !escaped && c == '\\';
    }
    regex::Regex::new(pattern).map_err(|_| bad())
}

/// The filter of a GET query (§6.4.3.1).
fn filter_from(p: &Params, ctx: &Context) -> Result<Filter> {
    let mut f = Filter::default();
    if let Some(ids) = p.list("id") {
        for id in &ids {
            check_id(id)?;
        }
        f.ids = Some(ids);
    }
    if let Some(pattern) = p.get("idPattern") {
        f.id_pattern = Some(id_pattern(pattern)?);
    }
    if let Some(t) = p.get("type") {
        f.types = Some(TypeExpr::parse(t, ctx).map_err(|e| NgsiError::bad_data(e.detail))?);
    }
    if let Some(attrs) = p.list("attrs") {
        // `id` and `type` are the entity's, not attributes (§4.5.2).
        if let Some(bad) = attrs
            .iter()
            .find(|a| !crate::entity::is_valid_name(a) || matches!(a.as_str(), "id" | "type"))
        {
            return Err(NgsiError::bad_data(format!(
                "attrs: {bad:?} is not an attribute name"
            )));
        }
        f.attrs = Some(attrs.iter().map(|a| ctx.expand(a)).collect());
    }
    if let Some(q) = p.get("q") {
        f.q = Some(parse_q(q).map_err(|e| NgsiError::bad_data(e.detail))?);
    }
    if let Some(s) = p.get("scopeQ") {
        f.scope = Some(ScopeQ::parse(s).map_err(|e| NgsiError::bad_data(e.detail))?);
    }
    f.geo = geo_from(
        p.get("georel"),
        p.get("geometry"),
        p.get("coordinates")
            .map(|c| serde_json::from_str::<Value>(c).unwrap_or(Value::Null)),
        p.get("geoproperty"),
        ctx,
    )?;
    Ok(f)
}

pub(super) fn geo_from(
    rel: Option<&str>,
    geometry: Option<&str>,
    coordinates: Option<Value>,
    property: Option<&str>,
    ctx: &Context,
) -> Result<Option<GeoQuery>> {
    match (rel, geometry, coordinates) {
        (None, None, None) => Ok(None),
        (Some(rel), Some(geometry), Some(coordinates)) => {
            let rel = GeoRel::parse(rel)
                .ok_or_else(|| NgsiError::bad_data(format!("georel: {rel:?} is not a relation")))?;
            let geometry = Geometry::from_parts(geometry, &coordinates).ok_or_else(|| {
                NgsiError::bad_data("geometry and coordinates do not make a GeoJSON geometry")
            })?;
            Ok(Some(GeoQuery {
                rel,
                geometry,
                property: ctx.expand(property.unwrap_or("location")),
            }))
        }
        _ => Err(NgsiError::bad_data(
            "a geo-query needs georel, geometry and coordinates",
        )),
    }
}

const QUERY_PARAMS: [&str; 18] = [
    "id",
    "idPattern",
    "type",
    "q",
    "scopeQ",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "csf",
    "limit",
    "offset",
    "count",
    "orderBy",
    "collectionName",
    "containedBy",
    "entityMap",
    "expandValues",
];

/// A raw query's `limit` (20 if it has none or it does not read).
pub(super) fn paging_limit(query: &str) -> usize {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("limit="))
        .and_then(|l| l.parse().ok())
        .unwrap_or(20)
}

pub(super) fn paging(p: &Params) -> Result<(usize, usize)> {
    let limit = match p.get("limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| NgsiError::bad_data("limit is a whole number"))?,
    };
    if limit > 1000 {
        return Err(NgsiError {
            kind: crate::problem::ErrorKind::TooManyResults,
            detail: "limit is at most 1000".into(),
        });
    }
    let offset = match p.get("offset") {
        None => 0,
        Some(o) => o
            .parse::<usize>()
            .map_err(|_| NgsiError::bad_data("offset is a whole number"))?,
    };
    Ok((offset, limit))
}

async fn run_query(
    c: &CityData,
    headers: &HeaderMap,
    p: &Params,
    f: Filter,
    ctx: &Context,
    (r, linking): (&Render, Option<&Linking>),
) -> Answer {
    let a = accept(headers, true)?;
    let (offset, limit) = paging(p)?;
    let count = p.flag("count")?;
    let page = c
        .broker
        .query(
            &tenant(headers),
            &f,
            ctx,
            crate::broker::Paging {
                order: order_by(p, ctx)?.as_ref(),
                offset,
                limit,
                counted: count,
            },
        )
        .await?;
    let body = match a {
        Accept::GeoJson => {
            let gp = p.get("geometryProperty").unwrap_or("location");
            json!({
                "type": "FeatureCollection",
                "features": page.entities.iter().map(|e| {
                    let mut f = feature(e, ctx, r, gp);
                    if let Some(o) = f.as_object_mut() {
                        o.remove("@context");
                    }
                    f
                }).collect::<Vec<_>>(),
                "@context": ctx.original,
            })
        }
        _ => {
            let (mut main, flat) =
                shown_with_links(c, headers, &page.entities, ctx, r, linking).await?;
            main.extend(flat);
            Value::Array(main)
        }
    };
    let mut resp = answer(StatusCode::OK, a, ctx, body);
    if count {
        resp.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(page.count));
    }
    Ok(resp)
}

pub async fn query(State(c): State<CityData>, headers: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    let p = Params::parse(
        q.as_deref(),
        &[&RENDER_PARAMS[..], &QUERY_PARAMS[..]].concat(),
    )?;
    accept(&headers, true)?;
    let ctx = link_context(&c, &headers).await?;
    let f = filter_from(&p, &ctx)?;
    let local = p.flag("local")?;
    if !local
        && f.types.is_none()
        && f.attrs.is_none()
        && f.q.is_none()
        && f.geo.is_none()
        && f.scope.is_none()
    {
        return Err(NgsiError::bad_data(
            "a query needs at least one of type, attrs, q, scopeQ or a geo-query (or local=true)",
        )
        .into());
    }
    let (mut r, linking) = render_params(&p, &ctx)?;
    // In a query, `attrs` selects entities and projects them.
    r.attrs = f.attrs.clone();
    // So does a `pick` of attributes only: an entity with none of them
    // would be shown as nothing (as a retrieval of it is 404).
    let mut f = f;
    if let Some(pick) = &r.pick {
        if !pick.iter().any(|m| {
            matches!(
                m.as_str(),
                "id" | "type" | "scope" | "createdAt" | "modifiedAt"
            )
        }) {
            f.attrs = Some(pick.clone());
        }
    }
    run_query(&c, &headers, &p, f, &ctx, (&r, linking.as_ref())).await
}

/// POST /entityOperations/query: the query in the body (§5.7.2, Query).
pub async fn post_query(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    let p = Params::parse(
        q.as_deref(),
        &[
            "limit", "offset", "count", "options", "format", "lang", "local",
        ],
    )?;
    accept(&headers, true)?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let obj = value
        .as_object()
        .ok_or_else(|| NgsiError::bad_data("a query is an object"))?;
    if obj.get("type").and_then(Value::as_str) != Some("Query") {
        return Err(NgsiError::bad_data("a query's type is \"Query\"").into());
    }
    let mut f = Filter::default();
    if let Some(entities) = obj.get("entities") {
        let list = entities
            .as_array()
            .ok_or_else(|| NgsiError::bad_data("entities is an array"))?;
        let mut ids = Vec::new();
        let mut types: Vec<Vec<String>> = Vec::new();
        for sel in list {
            if let Some(id) = sel.get("id").and_then(Value::as_str) {
                ids.push(id.to_owned());
            }
            if let Some(pattern) = sel.get("idPattern").and_then(Value::as_str) {
                f.id_pattern = Some(id_pattern(pattern)?);
            }
            if let Some(t) = sel.get("type").and_then(Value::as_str) {
                types.extend(TypeExpr::parse(t, &ctx)?.0);
            }
        }
        if !ids.is_empty() {
            f.ids = Some(ids);
        }
        if !types.is_empty() {
            f.types = Some(TypeExpr(types));
        }
    }
    if let Some(attrs) = obj.get("attrs").and_then(Value::as_array) {
        f.attrs = Some(
            attrs
                .iter()
                .filter_map(Value::as_str)
                .map(|a| ctx.expand(a))
                .collect(),
        );
    }
    if let Some(q) = obj.get("q").and_then(Value::as_str) {
        f.q = Some(parse_q(q).map_err(|e| NgsiError::bad_data(e.detail))?);
    }
    if let Some(s) = obj.get("scopeQ").and_then(Value::as_str) {
        f.scope = Some(ScopeQ::parse(s).map_err(|e| NgsiError::bad_data(e.detail))?);
    }
    if let Some(g) = obj.get("geoQ") {
        let coordinates = match g.get("coordinates") {
            Some(Value::String(s)) => serde_json::from_str(s).ok(),
            other => other.cloned(),
        };
        f.geo = geo_from(
            g.get("georel").and_then(Value::as_str),
            g.get("geometry").and_then(Value::as_str),
            coordinates,
            g.get("geoproperty").and_then(Value::as_str),
            &ctx,
        )?;
    }
    let (mut r, mut linking) = render_params(&p, &ctx)?;
    r.attrs = f.attrs.clone();
    // The Query's own `join` and `joinLevel` (§5.2.23), 1 by default.
    if let Some(j) = obj.get("join") {
        let level = obj.get("joinLevel").map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        linking = Linking::from_params(
            Some(
                j.as_str()
                    .ok_or_else(|| NgsiError::bad_data("join is a string"))?,
            ),
            level.as_deref(),
            linking.as_ref().and_then(|l| l.pick.clone()),
            linking.as_ref().and_then(|l| l.omit.clone()),
        )?;
    }
    run_query(&c, &headers, &p, f, &ctx, (&r, linking.as_ref())).await
}

pub async fn create(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let id = c.create_entity(&tenant(&headers), &value, &ctx).await?;
    Ok(created(&format!("/entities/{id}")))
}

pub async fn delete(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q.as_deref(), &["type", "local"])?;
    c.delete_entity(&tenant(&headers), &id).await?;
    Ok(no_content())
}

pub async fn purge(State(c): State<CityData>, headers: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    let p = Params::parse(
        q.as_deref(),
        &[
            "id",
            "idPattern",
            "type",
            "q",
            "scopeQ",
            "attrs",
            "local",
            "drop",
            "keep",
            "georel",
            "geometry",
            "coordinates",
            "geoproperty",
        ],
    )?;
    let ctx = link_context(&c, &headers).await?;
    let f = filter_from(&p, &ctx)?;
    if p.get("drop").is_some() && p.get("keep").is_some() {
        return Err(NgsiError::bad_data("drop and keep exclude each other").into());
    }
    let local = p.flag("local")?;
    if !local
        && f.ids.is_none()
        && f.id_pattern.is_none()
        && f.types.is_none()
        && f.q.is_none()
        && f.scope.is_none()
        && f.attrs.is_none()
    {
        return Err(NgsiError::bad_data(
            "purging needs at least one of type, id, idPattern, q, scopeQ or attrs (or local=true)",
        )
        .into());
    }
    let names = |k: &str| p.list(k).map(|l| l.iter().map(|a| ctx.expand(a)).collect());
    c.purge(&tenant(&headers), &f, &ctx, names("drop"), names("keep"))
        .await?;
    Ok(no_content())
}

fn update_answer(result: crate::ops::UpdateResult, ctx: &Context) -> Answer {
    if result.not_updated.is_empty() {
        Ok(no_content())
    } else {
        Ok(answer(
            StatusCode::MULTI_STATUS,
            Accept::Json,
            ctx,
            result.body(),
        ))
    }
}

pub async fn append(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["options", "local"])?;
    let no_overwrite = p.options().iter().any(|o| o == "noOverwrite");
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let result = c
        .append_attrs(&tenant(&headers), &id, &value, &ctx, !no_overwrite)
        .await?;
    update_answer(result, &ctx)
}

pub async fn update(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let result = c.update_attrs(&tenant(&headers), &id, &value, &ctx).await?;
    update_answer(result, &ctx)
}

pub async fn merge(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["options", "type", "local", "format"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, true).await?;
    c.merge_entity(&tenant(&headers), &id, &value, &ctx).await?;
    Ok(no_content())
}

pub async fn replace(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["type", "local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    c.replace_entity(&tenant(&headers), &id, &value, &ctx)
        .await?;
    Ok(no_content())
}

pub async fn partial_update(
    State(c): State<CityData>,
    Path((id, attr)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, true).await?;
    c.partial_update_attr(&tenant(&headers), &id, &attr, &value, &ctx)
        .await?;
    Ok(no_content())
}

pub async fn replace_attr(
    State(c): State<CityData>,
    Path((id, attr)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    if attr == "scope" || !crate::entity::is_valid_name(&attr) {
        return Err(NgsiError::bad_data(format!(
            "{attr:?} is not an attribute that can be replaced"
        ))
        .into());
    }
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    c.replace_attr(&tenant(&headers), &id, &attr, &value, &ctx)
        .await?;
    Ok(no_content())
}

pub async fn delete_attr(
    State(c): State<CityData>,
    Path((id, attr)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["datasetId", "deleteAll", "local", "lang"])?;
    let ctx = link_context(&c, &headers).await?;
    let all = p.flag("deleteAll")?;
    c.delete_attr(&tenant(&headers), &id, &attr, p.get("datasetId"), all, &ctx)
        .await?;
    Ok(no_content())
}

/// A batch's outcome: `created` answers 201 with the ids when every
/// entity was new, 204 when all succeeded otherwise, 207 when any failed.
fn batch_answer(results: BatchResult, ctx: &Context, list_created: bool) -> Answer {
    let all_ok = results.iter().all(|(_, r)| r.is_ok());
    if all_ok {
        let created: Vec<Value> = results
            .iter()
            .filter(|(_, r)| matches!(r, Ok(true)))
            .map(|(id, _)| Value::String(id.clone()))
            .collect();
        if list_created && !created.is_empty() {
            return Ok(answer(
                StatusCode::CREATED,
                Accept::Json,
                ctx,
                Value::Array(created),
            ));
        }
        return Ok(no_content());
    }
    let mut success = Vec::new();
    let mut errors = Vec::new();
    for (id, r) in results {
        match r {
            Ok(_) => success.push(Value::String(id)),
            Err(e) => {
                let mut err = Map::new();
                err.insert("entityId".into(), id.into());
                err.insert("error".into(), e.body());
                errors.push(Value::Object(err));
            }
        }
    }
    Ok(answer(
        StatusCode::MULTI_STATUS,
        Accept::Json,
        ctx,
        json!({ "success": success, "errors": errors }),
    ))
}

pub async fn batch_create(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, kind) = body_context(&c, &headers, &body, false).await?;
    let ctxs = item_contexts(&c, &value, &ctx, kind).await;
    let results = c.batch_create(&tenant(&headers), &value, &ctxs).await?;
    batch_answer(results, &ctx, true)
}

pub async fn batch_upsert(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["options", "local"])?;
    let opts = p.options();
    let update = opts.iter().any(|o| o == "update");
    if opts.iter().any(|o| o != "update" && o != "replace") {
        return Err(NgsiError::bad_data("options for an upsert are update or replace").into());
    }
    let (value, ctx, kind) = body_context(&c, &headers, &body, false).await?;
    let ctxs = item_contexts(&c, &value, &ctx, kind).await;
    let results = c
        .batch_upsert(&tenant(&headers), &value, &ctxs, update)
        .await?;
    batch_answer(results, &ctx, true)
}

pub async fn batch_update(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["options", "local"])?;
    let overwrite = !p.options().iter().any(|o| o == "noOverwrite");
    let (value, ctx, kind) = body_context(&c, &headers, &body, false).await?;
    let ctxs = item_contexts(&c, &value, &ctx, kind).await;
    let results = c
        .batch_update(&tenant(&headers), &value, &ctxs, overwrite)
        .await?;
    batch_answer(results, &ctx, false)
}

pub async fn batch_merge(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, kind) = body_context(&c, &headers, &body, false).await?;
    let ctxs = item_contexts(&c, &value, &ctx, kind).await;
    let results = c.batch_merge(&tenant(&headers), &value, &ctxs).await?;
    batch_answer(results, &ctx, false)
}

pub async fn batch_delete(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let results = c.batch_delete(&tenant(&headers), &value).await?;
    batch_answer(results, &ctx, false)
}

/// PATCH or PUT on `/entities/`: an entity id is missing.
pub async fn no_id() -> Answer {
    Err(NgsiError::bad_data("the path names no entity id").into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_patterns_refuse_a_repetition_of_a_repetition_only() {
        for bad in ["urn.**", "a+*", "a*+", "(["] {
            assert!(super::id_pattern(bad).is_err(), "{bad}");
        }
        for good in ["urn:ngsi-ld:Building:.*", "a*?", "[*+]", r"a\**", "a+b*"] {
            assert!(super::id_pattern(good).is_ok(), "{good}");
        }
    }
}
