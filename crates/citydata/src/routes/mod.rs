//! The NGSI-LD API under `/ngsi-ld/v1` (CIM 009 §6): content negotiation,
//! the request's @context, tenants, and the operations' HTTP shapes.
//! Routes parse and answer; the broker decides.
//!
//! Errors are ProblemDetails with the spec's types, as
//! `application/problem+json`. Unknown query parameters are
//! `InvalidRequest` (§6.3.20).

mod csource;
mod discovery;
mod entities;
mod federate;
mod gate;
mod subscriptions;
mod temporal;

use crate::jsonld::{Context, CORE_CONTEXT_URL};
use crate::problem::{NgsiError, Result};
use crate::CityData;
use axum::body::Bytes;
use axum::extract::FromRef;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use std::sync::Arc;

/// The broker's routes, for a server whose state holds `CityData`: the
/// tenant's gate (`gate`) before everything, distributed operations
/// (`federate`) over the entity routes.
pub fn router<S>(c: CityData) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    CityData: FromRef<S>,
{
    use axum::routing::MethodRouter;
    use entities as e;
    let routes: Vec<(&str, MethodRouter<S>)> = vec![
        (
            "/entities",
            get(e::query)
                .post(e::create)
                .delete(e::purge)
                .patch(e::no_id)
                .put(e::no_id),
        ),
        (
            "/entities/{id}",
            get(e::retrieve)
                .delete(e::delete)
                .put(e::replace)
                .patch(e::merge),
        ),
        ("/entities/{id}/attrs", post(e::append).patch(e::update)),
        (
            "/entities/{id}/attrs/{attr}",
            axum::routing::patch(e::partial_update)
                .put(e::replace_attr)
                .delete(e::delete_attr),
        ),
        ("/entityOperations/create", post(e::batch_create)),
        ("/entityOperations/upsert", post(e::batch_upsert)),
        ("/entityOperations/update", post(e::batch_update)),
        ("/entityOperations/delete", post(e::batch_delete)),
        ("/entityOperations/merge", post(e::batch_merge)),
        ("/entityOperations/query", post(e::post_query)),
        (
            "/subscriptions",
            get(subscriptions::list).post(subscriptions::create),
        ),
        (
            "/subscriptions/{id}",
            get(subscriptions::retrieve)
                .patch(subscriptions::update)
                .delete(subscriptions::delete),
        ),
        (
            "/csourceRegistrations",
            get(csource::query).post(csource::create),
        ),
        (
            "/csourceRegistrations/{id}",
            get(csource::retrieve)
                .patch(csource::update)
                .delete(csource::delete),
        ),
        (
            "/csourceSubscriptions",
            get(csource::list_subscriptions).post(csource::create_subscription),
        ),
        (
            "/csourceSubscriptions/{*id}",
            get(csource::retrieve_subscription)
                .patch(csource::update_subscription)
                .delete(csource::delete_subscription),
        ),
        (
            "/temporal/entities",
            get(temporal::query).post(temporal::create),
        ),
        (
            "/temporal/entityOperations/query",
            post(temporal::post_query),
        ),
        (
            "/temporal/entities/{id}",
            get(temporal::retrieve).delete(temporal::delete),
        ),
        ("/temporal/entities/{id}/attrs", post(temporal::append)),
        (
            "/temporal/entities/{id}/attrs/{attr}",
            axum::routing::delete(temporal::delete_attr),
        ),
        (
            "/temporal/entities/{id}/attrs/{attr}/{instance}",
            axum::routing::patch(temporal::modify_instance).delete(temporal::delete_instance),
        ),
        ("/types", get(discovery::types)),
        ("/types/{type}", get(discovery::type_info)),
        ("/attributes", get(discovery::attributes)),
        ("/attributes/{attr}", get(discovery::attribute_info)),
        (
            "/jsonldContexts",
            get(discovery::list_contexts).post(discovery::add_context),
        ),
        (
            "/jsonldContexts/{*id}",
            get(discovery::serve_context).delete(discovery::delete_context),
        ),
    ];
    // Clients (the ETSI suite among them) also write the paths with a
    // trailing slash.
    routes
        .into_iter()
        .fold(Router::new(), |r, (path, handler)| {
            let r = r.route(&format!("/ngsi-ld/v1{path}"), handler.clone());
            // (A catch-all segment ends its path.)
            if path.contains("{*") {
                r
            } else {
                r.route(&format!("/ngsi-ld/v1{path}/"), handler)
            }
        })
        .route_layer(axum::middleware::from_fn_with_state(
            c.clone(),
            federate::federate,
        ))
        .route_layer(axum::middleware::from_fn_with_state(c, gate::gate))
}

/// A path segment, %-decoded (as given if it does not decode).
pub fn decode_path(s: &str) -> String {
    crate::query::percent_decode(s)
}

/// An error as a ProblemDetails response.
pub struct Problem(pub NgsiError);

impl From<NgsiError> for Problem {
    fn from(e: NgsiError) -> Self {
        Problem(e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, self.0.body().to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        r
    }
}

pub type Answer = std::result::Result<Response, Problem>;

/// The representation a client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    Json,
    JsonLd,
    GeoJson,
}

/// Reads `Accept` (absent, `*/*` and `application/*` mean JSON);
/// GeoJSON only where `geo` allows it.
pub fn accept(headers: &HeaderMap, geo: bool) -> Result<Accept> {
    let Some(raw) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(Accept::Json);
    };
    let mut ranges: Vec<(f32, &str)> = raw
        .split(',')
        .map(|part| {
            let mut it = part.split(';');
            let mime = it.next().unwrap_or("").trim();
            let q = it
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, mime)
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    ranges.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    for (_, mime) in ranges {
        match mime.to_ascii_lowercase().as_str() {
            "application/json" | "*/*" | "application/*" => return Ok(Accept::Json),
            "application/ld+json" => return Ok(Accept::JsonLd),
            "application/geo+json" if geo => return Ok(Accept::GeoJson),
            _ => {}
        }
    }
    Err(NgsiError::not_acceptable(format!(
        "this operation answers in application/json or application/ld+json{}",
        if geo { " or application/geo+json" } else { "" }
    )))
}

/// The tenant a request names (`NGSILD-Tenant`), or the default.
pub fn tenant(headers: &HeaderMap) -> String {
    headers
        .get("NGSILD-Tenant")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The @context URL in a `Link` header, if any.
fn link(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(raw) = headers.get(header::LINK) else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| NgsiError::bad_data("the Link header is not text"))?;
    for part in raw.split(',') {
        let part = part.trim();
        if !part.contains("http://www.w3.org/ns/json-ld#context") {
            continue;
        }
        let url = part
            .strip_prefix('<')
            .and_then(|p| p.split_once('>'))
            .map(|(u, _)| u.trim().to_owned())
            .ok_or_else(|| NgsiError::bad_data("the Link header is malformed"))?;
        return Ok(Some(url));
    }
    Ok(None)
}

/// The context of a request without a body (from `Link`, else the core).
pub async fn link_context(c: &CityData, headers: &HeaderMap) -> Result<Arc<Context>> {
    match link(headers)? {
        Some(url) => c.broker.contexts.resolve(Some(&Value::String(url))).await,
        None => Ok(Context::core()),
    }
}

/// How a body was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    JsonLd,
    MergePatch,
}

/// Reads a JSON body and its context: `application/json` takes it from
/// `Link`, `application/ld+json` from the body's `@context` (required);
/// `merge-patch+json` where `merge` allows it.
pub async fn body_context(
    c: &CityData,
    headers: &HeaderMap,
    body: &Bytes,
    merge: bool,
) -> Result<(Value, Arc<Context>, BodyKind)> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let kind = match ct.as_str() {
        "application/json" => BodyKind::Json,
        "application/ld+json" => BodyKind::JsonLd,
        "application/merge-patch+json" if merge => BodyKind::MergePatch,
        _ => {
            return Err(NgsiError::media_type(
                "the payload must be application/json or application/ld+json",
            ))
        }
    };
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| NgsiError::invalid(format!("the payload is not JSON: {e}")))?;
    let ctx = match kind {
        BodyKind::JsonLd => {
            if link(headers)?.is_some() {
                return Err(NgsiError::bad_data(
                    "an application/ld+json payload carries its @context; no Link header",
                ));
            }
            match &value {
                Value::Object(o) => {
                    let inline = o.get("@context").ok_or_else(|| {
                        NgsiError::bad_data("an application/ld+json payload must hold an @context")
                    })?;
                    c.broker.contexts.resolve(Some(inline)).await?
                }
                // A batch: each entity carries its own (`item_contexts`).
                _ => Context::core(),
            }
        }
        _ => {
            if value.is_object() && value.get("@context").is_some() {
                return Err(NgsiError::bad_data(
                    "an application/json payload takes its @context from the Link header, not the body",
                ));
            }
            link_context(c, headers).await?
        }
    };
    Ok((value, ctx, kind))
}

/// Each batch item's context: a JSON-LD batch's entities carry their
/// own (one without is that item's error), a JSON batch's take the
/// `Link` header's (one with an `@context` is that item's error).
pub async fn item_contexts(
    c: &CityData,
    body: &Value,
    ctx: &Arc<Context>,
    kind: BodyKind,
) -> crate::ops::ItemContexts {
    let Some(items) = body.as_array() else {
        return vec![Ok(ctx.clone())];
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(match (kind, item.get("@context")) {
            (BodyKind::JsonLd, Some(inline)) => c.broker.contexts.resolve(Some(inline)).await,
            (BodyKind::JsonLd, None) => Err(NgsiError::bad_data(
                "each entity of an application/ld+json batch holds an @context",
            )),
            (_, Some(_)) => Err(NgsiError::bad_data(
                "an application/json batch takes its @context from the Link header",
            )),
            (_, None) => Ok(ctx.clone()),
        });
    }
    out
}

/// A JSON answer in the representation asked for: JSON-LD carries the
/// context in the body, JSON in a `Link` header.
pub fn answer(status: StatusCode, accept: Accept, ctx: &Context, mut body: Value) -> Response {
    let with_context = |v: &mut Value| {
        if let Value::Object(o) = v {
            o.insert("@context".into(), ctx.original.clone());
        }
    };
    let content_type = match accept {
        Accept::JsonLd => {
            match &mut body {
                Value::Array(items) => items.iter_mut().for_each(with_context),
                other => with_context(other),
            }
            "application/ld+json"
        }
        Accept::GeoJson => "application/geo+json",
        Accept::Json => "application/json",
    };
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if accept != Accept::JsonLd {
        let url = ctx.original.as_str().unwrap_or(CORE_CONTEXT_URL);
        if let Ok(v) = HeaderValue::from_str(&format!(
            "<{url}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
        )) {
            h.insert(header::LINK, v);
        }
    }
    r
}

/// 201, with where the new resource is (`/ngsi-ld/v1` + `path`).
pub fn created(path: &str) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/ngsi-ld/v1{path}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// 204, nothing to say.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The query parameters, checked against those the operation takes.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params> {
        let mut out = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k)?;
            let v = decode(v)?;
            if !allowed.contains(&k.as_str()) {
                return Err(NgsiError::invalid(format!(
                    "this operation takes no parameter {k:?}"
                )));
            }
            out.push((k, v));
        }
        Ok(Params(out))
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// Adds a parameter, replacing one of the same name (a query's body
    /// read as its parameters).
    pub fn push(&mut self, k: &str, v: &str) {
        self.0.retain(|(n, _)| n != k);
        self.0.push((k.to_owned(), v.to_owned()));
    }

    /// A comma-separated list parameter.
    pub fn list(&self, k: &str) -> Option<Vec<String>> {
        self.get(k).map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }

    /// `options=` and `format=` folded into flags.
    pub fn options(&self) -> Vec<String> {
        let mut out: Vec<String> = self.list("options").unwrap_or_default();
        if let Some(f) = self.get("format") {
            out.push(f.to_owned());
        }
        out
    }

    pub fn flag(&self, k: &str) -> Result<bool> {
        match self.get(k) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(NgsiError::bad_data(format!("{k} is true or false"))),
        }
    }
}

fn decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                let b = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| NgsiError::invalid("a malformed %-escape in the query"))?;
                out.push(b);
                i += 3;
            }
            b'%' => return Err(NgsiError::invalid("a malformed %-escape in the query")),
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| NgsiError::invalid("the query is not UTF-8"))
}
