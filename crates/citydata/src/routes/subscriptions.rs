//! Subscriptions (§6.10–6.11).

use super::{
    accept, answer, body_context, created, link_context, no_content, tenant, Answer, Params,
};
use crate::jsonld::now_ms;
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
    let p = Params::parse(
        q.as_deref(),
        &["limit", "offset", "count", "local", "options"],
    )?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
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
        Some(o) => o
            .parse::<usize>()
            .map_err(|_| NgsiError::bad_data("offset is a whole number"))?,
    };
    let sys = p.options().iter().any(|o| o == "sysAttrs");
    let all = c.list_subscriptions(&tenant(&headers)).await?;
    let now = now_ms();
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|s| s.render(&ctx, now, sys))
        .collect();
    let mut r = answer(StatusCode::OK, a, &ctx, Value::Array(page));
    // Pagination (§5.5.9): where the previous and next pages are.
    let page_link = |offset: usize, rel: &str| {
        format!("</ngsi-ld/v1/subscriptions?limit={limit}&offset={offset}>;rel=\"{rel}\";type=\"application/ld+json\"")
    };
    let mut links = Vec::new();
    if offset > 0 {
        links.push(page_link(offset.saturating_sub(limit), "prev"));
    }
    if offset + limit < all.len() {
        links.push(page_link(offset + limit, "next"));
    }
    for l in links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            r.headers_mut().append(header::LINK, v);
        }
    }
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
    let sub = c.subscription(&tenant(&headers), &id).await?;
    let sys = p.options().iter().any(|o| o == "sysAttrs");
    Ok(answer(
        StatusCode::OK,
        a,
        &ctx,
        sub.render(&ctx, now_ms(), sys),
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
