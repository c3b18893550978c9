//! Subscriptions (§6.10–6.11).

use super::{
    accept, answer, body_context, created, link_context, no_content, tenant, Accept, Answer, Params,
};
use crate::jsonld::{now_ms, Context};
use crate::problem::NgsiError;
use crate::CityData;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
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
        .create_subscription(&tenant(&headers), &value, &ctx)
        .await?;
    Ok(created(&format!("/subscriptions/{id}")))
}

pub async fn list(State(c): State<CityData>, headers: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    let (p, a, ctx) = list_params(&c, &headers, q.as_deref()).await?;
    let sys = p.options().iter().any(|o| o == "sysAttrs");
    let now = now_ms();
    let all: Vec<Value> = c
        .list_subscriptions(&tenant(&headers))
        .await?
        .iter()
        .map(|s| shown(s, &ctx, now, sys))
        .collect();
    paged("/subscriptions", all, &p, a, &ctx)
}

/// An entity subscription as it is read: its `notificationTrigger`
/// the default (§5.2.12) when it gave none.
fn shown(s: &crate::subscription::Subscription, ctx: &Context, now: i64, sys: bool) -> Value {
    let mut v = s.render(ctx, now, sys);
    if let Value::Object(o) = &mut v {
        o.entry("notificationTrigger")
            .or_insert_with(|| serde_json::json!(["attributeCreated", "attributeUpdated"]));
    }
    v
}

/// A listing's parameters, representation and context.
pub(super) async fn list_params(
    c: &CityData,
    headers: &HeaderMap,
    q: Option<&str>,
) -> std::result::Result<(Params, Accept, std::sync::Arc<crate::jsonld::Context>), NgsiError> {
    let p = Params::parse(q, &["limit", "offset", "count", "local", "options"])?;
    let a = accept(headers, false)?;
    let ctx = link_context(c, headers).await?;
    Ok((p, a, ctx))
}

/// A page of a listing, with the links to the pages before and after
/// (§5.5.9) and, if asked, the count.
pub(super) fn paged(
    path: &str,
    all: Vec<Value>,
    p: &Params,
    a: Accept,
    ctx: &crate::jsonld::Context,
) -> Answer {
    let whole = |what: &str| NgsiError::bad_data(format!("{what} is a whole number"));
    let limit = match p.get("limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| *l <= 1000)
            .ok_or_else(|| NgsiError::bad_data("limit is a whole number up to 1000"))?,
    };
    let offset = match p.get("offset") {
        None => 0,
        Some(o) => o.parse::<usize>().map_err(|_| whole("offset"))?,
    };
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(offset).take(limit).collect();
    let mut r = answer(StatusCode::OK, a, ctx, Value::Array(page));
    let page_link = |offset: usize, rel: &str| {
        format!("</ngsi-ld/v1{path}?limit={limit}&offset={offset}>;rel=\"{rel}\";type=\"application/ld+json\"")
    };
    let mut links = Vec::new();
    if offset > 0 {
        links.push(page_link(offset.saturating_sub(limit), "prev"));
    }
    if offset + limit < total {
        links.push(page_link(offset + limit, "next"));
    }
    for l in links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            r.headers_mut().append(header::LINK, v);
        }
    }
    if p.flag("count")? {
        r.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(total));
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
    let sub = c.subscription(&tenant(&headers), &id).await?;
    let sys = p.options().iter().any(|o| o == "sysAttrs");
    Ok(answer(
        StatusCode::OK,
        a,
        &ctx,
        shown(&sub, &ctx, now_ms(), sys),
    ))
}

pub async fn update(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let (value, ctx, _) = body_context(&c, &headers, &body, true).await?;
    c.update_subscription(&tenant(&headers), &id, &value, &ctx)
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
    c.delete_subscription(&tenant(&headers), &id).await?;
    Ok(no_content())
}
