//! Context source registrations (§6.8–6.9) and subscriptions to them
//! (§6.11–6.12).

use super::entities::{geo_from, paging};
use super::subscriptions::{list_params, paged};
use super::{
    accept, answer, body_context, created, link_context, no_content, tenant, Answer, Params,
};
use crate::csource::{render_subscription, RegFilter, Selector, TimeQuery};
use crate::jsonld::{now_ms, Context};
use crate::ops::check_id;
use crate::problem::NgsiError;
use crate::query::{parse_q, TypeExpr};
use crate::temporal::Interval;
use crate::CityData;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

pub async fn create(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let id = c
        .create_registration(&tenant(&headers), &value, &ctx)
        .await?;
    Ok(created(&format!("/csourceRegistrations/{id}")))
}

const QUERY_PARAMS: [&str; 19] = [
    "id",
    "type",
    "idPattern",
    "attrs",
    "q",
    "csf",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "timeproperty",
    "timerel",
    "timeAt",
    "endTimeAt",
    "limit",
    "offset",
    "count",
    "options",
    "local",
];

/// A discovery query's filter (§5.10.2): it must ask about something.
fn filter_from(p: &Params, ctx: &Context) -> Result<RegFilter, NgsiError> {
    let asks = [
        "id",
        "type",
        "idPattern",
        "attrs",
        "q",
        "csf",
        "georel",
        "timerel",
    ]
    .iter()
    .any(|k| p.get(k).is_some());
    if !asks {
        return Err(NgsiError::bad_data(
            "a discovery query names at least one of type, id, idPattern, attrs, q, csf, georel and timerel",
        ));
    }
    let ids = match p.list("id") {
        Some(ids) => {
            for id in &ids {
                check_id(id)?;
            }
            Some(ids)
        }
        None => None,
    };
    let id_pattern = p.get("idPattern").map(str::to_owned);
    if let Some(pattern) = &id_pattern {
        super::entities::id_pattern(pattern)?;
    }
    let types = match p.get("type") {
        Some(t) => Some(TypeExpr::parse(t, ctx).map_err(|e| NgsiError::bad_data(e.detail))?),
        None => None,
    };
    let entities = if ids.is_some() || id_pattern.is_some() || types.is_some() {
        vec![Selector {
            types,
            ids,
            id_pattern,
        }]
    } else {
        Vec::new()
    };
    let attrs = match p.list("attrs") {
        Some(attrs) => {
            if let Some(bad) = attrs.iter().find(|a| !crate::entity::is_valid_name(a)) {
                return Err(NgsiError::bad_data(format!(
                    "attrs: {bad:?} is not an attribute name"
                )));
            }
            Some(attrs.iter().map(|a| ctx.expand(a)).collect())
        }
        None => None,
    };
    // `csf` is the query language over context source properties, as `q`.
    let q = match (p.get("q"), p.get("csf")) {
        (Some(q), None) | (None, Some(q)) => {
            Some(parse_q(q).map_err(|e| NgsiError::bad_data(e.detail))?)
        }
        (Some(_), Some(_)) => {
            return Err(NgsiError::bad_data("use q or csf, not both"));
        }
        (None, None) => None,
    };
    let geo = geo_from(
        p.get("georel"),
        p.get("geometry"),
        p.get("coordinates")
            .map(|c| serde_json::from_str::<Value>(c).unwrap_or(Value::Null)),
        p.get("geoproperty"),
        ctx,
    )?;
    let time = match p.get("timerel") {
        None if p.get("timeAt").is_none() => None,
        _ => Some(TimeQuery {
            interval: Interval::parse(p.get("timerel"), p.get("timeAt"), p.get("endTimeAt"))?,
            property: p.get("timeproperty").unwrap_or("observedAt").to_owned(),
        }),
    };
    if let Some(t) = &time {
        if !["observedAt", "createdAt", "modifiedAt"].contains(&t.property.as_str()) {
            return Err(NgsiError::bad_data(
                "timeproperty is observedAt, createdAt or modifiedAt",
            ));
        }
    }
    Ok(RegFilter {
        entities,
        attrs,
        q,
        geo,
        time,
    })
}

pub async fn query(State(c): State<CityData>, headers: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    let p = Params::parse(q.as_deref(), &QUERY_PARAMS)?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
    let filter = filter_from(&p, &ctx)?;
    let (offset, limit) = paging(&p)?;
    let sys = p.options().iter().any(|o| o == "sysAttrs");
    let all = c
        .query_registrations(&tenant(&headers), &filter, &ctx)
        .await?;
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| r.render(&ctx, sys))
        .collect();
    let mut r = answer(StatusCode::OK, a, &ctx, Value::Array(page));
    if p.flag("count")? {
        r.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(all.len()));
    }
    Ok(r)
}

pub async fn retrieve(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["local", "options"])?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
    let reg = c.registration(&tenant(&headers), &id).await?;
    let sys = p.options().iter().any(|o| o == "sysAttrs");
    Ok(answer(StatusCode::OK, a, &ctx, reg.render(&ctx, sys)))
}

pub async fn update(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    check_id(&id)?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    c.update_registration(&tenant(&headers), &id, &value, &ctx)
        .await?;
    Ok(no_content())
}

pub async fn delete(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    c.delete_registration(&tenant(&headers), &id).await?;
    Ok(no_content())
}

pub async fn create_subscription(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    let id = c
        .create_csource_subscription(&tenant(&headers), &value, &ctx)
        .await?;
    Ok(created(&format!("/csourceSubscriptions/{id}")))
}

pub async fn list_subscriptions(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let (p, a, ctx) = list_params(&c, &headers, q.as_deref()).await?;
    let sys = p.options().iter().any(|o| o == "sysAttrs");
    let now = now_ms();
    let all: Vec<Value> = c
        .list_csource_subscriptions(&tenant(&headers))
        .await?
        .iter()
        .map(|s| render_subscription(s, &ctx, now, sys))
        .collect();
    paged("/csourceSubscriptions", all, &p, a, &ctx)
}

/// A subscription's id in a path; a client that gives the subscription's
/// `Location` (`/ngsi-ld/v1/csourceSubscriptions/{id}`) where its id goes
/// is understood.
fn subscription_id(raw: &str) -> &str {
    raw.trim_start_matches('/')
        .strip_prefix("ngsi-ld/v1/csourceSubscriptions/")
        .unwrap_or(raw)
}

pub async fn retrieve_subscription(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let id = subscription_id(&id);
    let p = Params::parse(q.as_deref(), &["local", "options"])?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
    let sub = c.csource_subscription(&tenant(&headers), id).await?;
    let sys = p.options().iter().any(|o| o == "sysAttrs");
    Ok(answer(
        StatusCode::OK,
        a,
        &ctx,
        render_subscription(&sub, &ctx, now_ms(), sys),
    ))
}

pub async fn update_subscription(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    let id = subscription_id(&id);
    Params::parse(q.as_deref(), &["local"])?;
    check_id(id)?;
    let (value, ctx, _) = body_context(&c, &headers, &body, false).await?;
    c.update_csource_subscription(&tenant(&headers), id, &value, &ctx)
        .await?;
    Ok(no_content())
}

pub async fn delete_subscription(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let id = subscription_id(&id);
    Params::parse(q.as_deref(), &["local"])?;
    c.delete_csource_subscription(&tenant(&headers), id).await?;
    Ok(no_content())
}
