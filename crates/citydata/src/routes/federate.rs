//! Distributed operations over HTTP (CIM 009 §4.3.6): a layer over the
//! entity routes that, when registrations concern a request, forwards it
//! to their context sources beside (or, for redirect and exclusive ones,
//! instead of) the broker's own handling, and merges the answers.
//!
//! - Provision: each source gets the request as the client sent it; the
//!   broker keeps what no redirect or exclusive source holds; all well is
//!   the usual answer, anything else a 207 naming who failed.
//! - Retrieval and queries: the sources' entities merged into the
//!   broker's, attribute by attribute (the broker's own first, auxiliary
//!   sources last).
//! - Loops: every forward carries `Via` with the broker's pseudonym; a
//!   request that already passed through it is refused with 508.
//! - Credentials: the client's own `Authorization` is never forwarded
//!   (it is a token of this platform); what a source asks for is set in
//!   its registration's `contextSourceInfo` (`{"key": "Authorization",
//!   "value": "Bearer …"}`), sent as headers, and withheld from whoever
//!   reads the registration.
//!
//! A tenant without registrations costs one map lookup; `local=true`
//! turns it off.

use super::{accept, answer, link_context, tenant, Accept};
use crate::federation::{targets, About, Mode, Target};
use crate::jsonld::Context;
use crate::problem::NgsiError;
use crate::CityData;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How large a source's answer, or the broker's own, may be read.
const MAX_BODY: usize = 16 << 20;

/// The broker's pseudonym in `Via`, the same for the process's life.
fn pseudonym() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        format!(
            "civic-citydata-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    })
}

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            // Some sources (the ETSI suite's mock) read headers by case.
            .http1_title_case_headers()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("the HTTP client builds")
    })
}

/// The operation a request is, and the entity and attribute it names.
struct Operation {
    name: &'static str,
    id: Option<String>,
    attr: Option<String>,
}

fn operation(method: &Method, path: &str) -> Option<Operation> {
    let rest = path.strip_prefix("/ngsi-ld/v1/")?.trim_end_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    let decode = |s: &str| super::decode_path(s);
    let op = |name, id: Option<&str>, attr: Option<&str>| {
        Some(Operation {
            name,
            id: id.map(decode),
            attr: attr.map(decode),
        })
    };
    match (method.as_str(), segs.as_slice()) {
        ("POST", ["entities"]) => op("createEntity", None, None),
        ("GET", ["entities"]) => op("queryEntity", None, None),
        ("DELETE", ["entities"]) => op("purgeEntity", None, None),
        ("GET", ["entities", id]) => op("retrieveEntity", Some(id), None),
        ("DELETE", ["entities", id]) => op("deleteEntity", Some(id), None),
        ("PATCH", ["entities", id]) => op("mergeEntity", Some(id), None),
        ("PUT", ["entities", id]) => op("replaceEntity", Some(id), None),
        ("POST", ["entities", id, "attrs"]) => op("appendAttrs", Some(id), None),
        ("PATCH", ["entities", id, "attrs"]) => op("updateAttrs", Some(id), None),
        ("PATCH", ["entities", id, "attrs", a]) => op("updateAttrs", Some(id), Some(a)),
        ("DELETE", ["entities", id, "attrs", a]) => op("deleteAttrs", Some(id), Some(a)),
        ("PUT", ["entities", id, "attrs", a]) => op("replaceAttrs", Some(id), Some(a)),
        ("POST", ["entityOperations", "query"]) => op("queryBatch", None, None),
        ("POST", ["entityOperations", "create"]) => op("createBatch", None, None),
        ("POST", ["entityOperations", "upsert"]) => op("upsertBatch", None, None),
        ("POST", ["entityOperations", "update"]) => op("updateBatch", None, None),
        ("POST", ["entityOperations", "merge"]) => op("mergeBatch", None, None),
        ("POST", ["entityOperations", "delete"]) => op("deleteBatch", None, None),
        _ => None,
    }
}

/// The value of one query parameter, decoded.
fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| super::decode_path(&v.replace('+', " ")))
    })
}

/// The query without `local` (never forwarded), each value re-encoded
/// as little as a URL needs (`:` and `,` stay as they are, as sources
/// match them).
fn forwarded_query(query: &str) -> String {
    query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("local="))
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = super::decode_path(&v.replace('+', " "));
            let mut out = String::with_capacity(v.len());
            for ch in v.chars() {
                match ch {
                    ' ' => out.push_str("%20"),
                    '&' => out.push_str("%26"),
                    '#' => out.push_str("%23"),
                    '%' => out.push_str("%25"),
                    '+' => out.push_str("%2B"),
                    '"' => out.push_str("%22"),
                    c => out.push(c),
                }
            }
            format!("{k}={out}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Members of an entity that are not attributes.
const NOT_ATTRIBUTES: [&str; 7] = [
    "id",
    "type",
    "@context",
    "scope",
    "createdAt",
    "modifiedAt",
    "deletedAt",
];

fn attribute_names(body: &Value, ctx: &Context) -> Vec<String> {
    body.as_object()
        .map(|o| {
            o.keys()
                .filter(|k| !NOT_ATTRIBUTES.contains(&k.as_str()))
                .map(|k| ctx.expand(k))
                .collect()
        })
        .unwrap_or_default()
}

fn types_of(v: Option<&Value>, ctx: &Context) -> Option<Vec<String>> {
    match v? {
        Value::String(t) => Some(vec![ctx.expand(t)]),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(Value::as_str)
                .map(|t| ctx.expand(t))
                .collect(),
        ),
        _ => None,
    }
}

/// The context of a request's body, if it can be had (else the handler
/// will say what is wrong).
async fn request_context(c: &CityData, headers: &HeaderMap, body: &Value) -> Option<Arc<Context>> {
    let ld = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/ld+json"));
    match body.get("@context") {
        Some(inline) if ld => c.broker.contexts.resolve(Some(inline)).await.ok(),
        _ => link_context(c, headers).await.ok(),
    }
}

/// The layer.
pub async fn federate(State(c): State<CityData>, req: Request, next: Next) -> Response {
    match federated(&c, req, next).await {
        Ok(r) => r,
        Err(e) => super::Problem(e).into_response(),
    }
}

async fn federated(c: &CityData, req: Request, next: Next) -> Result<Response, NgsiError> {
    let via = req
        .headers()
        .get("via")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if via.as_deref().is_some_and(|v| {
        v.split(',')
            .any(|hop| hop.split_whitespace().nth(1) == Some(pseudonym()))
    }) {
        return Err(NgsiError::loop_detected(
            "the request has passed through this broker already",
        ));
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let Some(op) = operation(req.method(), req.uri().path()) else {
        return Ok(next.run(req).await);
    };
    if param(&query, "local").as_deref() == Some("true") {
        return Ok(next.run(req).await);
    }
    let tenant = tenant(req.headers());
    let registrations = c.live_registrations(&tenant).await?;
    if registrations.is_empty() {
        return Ok(next.run(req).await);
    }
    let (parts, body) = req.into_parts();
    // The request's body, no larger than any the hub takes.
    let bytes = axum::body::to_bytes(body, c.config.max_body_bytes)
        .await
        .map_err(|_| NgsiError::bad_data("the payload is too large or broken"))?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Some(ctx) = request_context(c, &parts.headers, &value).await else {
        return Ok(next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await);
    };
    let request = Forward {
        method: parts.method.clone(),
        path: parts.uri.path().trim_end_matches('/').to_owned(),
        query: forwarded_query(&query),
        headers: parts.headers.clone(),
        body: bytes.clone(),
        via,
    };
    if op.name.ends_with("Batch") && op.name != "queryBatch" {
        let Value::Array(items) = &value else {
            return Ok(next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await);
        };
        return batch(
            c,
            &request,
            op.name,
            &registrations,
            &ctx,
            items,
            parts,
            next,
        )
        .await;
    }
    // What the operation is about.
    let local_types = match &op.id {
        Some(id) => c
            .broker
            .get(&tenant, id)
            .await
            .ok()
            .map(|e| e.types.clone()),
        None => None,
    };
    let body_types = types_of(value.get("type"), &ctx);
    let param_types = param(&query, "type").map(|t| {
        t.split([',', '|', ';'])
            .map(|t| ctx.expand(t.trim_matches(['(', ')', ' '])))
            .collect::<Vec<_>>()
    });
    let types = local_types.or(body_types).or(param_types);
    let id = op
        .id
        .clone()
        .or_else(|| value.get("id").and_then(Value::as_str).map(str::to_owned));
    let id = id.or_else(|| param(&query, "id").filter(|i| !i.contains(',')));
    let attrs: Option<Vec<String>> = match (&op.attr, op.name) {
        (Some(a), _) => Some(vec![ctx.expand(a)]),
        (None, "appendAttrs" | "updateAttrs" | "mergeEntity" | "replaceEntity") => {
            Some(attribute_names(&value, &ctx))
        }
        (None, "queryEntity" | "retrieveEntity") => {
            param(&query, "attrs").map(|a| a.split(',').map(|a| ctx.expand(a)).collect())
        }
        _ => None,
    };
    let about = About {
        id: id.as_deref(),
        types: types.as_deref(),
        attrs: attrs.as_deref(),
    };
    let found = targets(&registrations, op.name, &about);
    if found.is_empty() {
        return Ok(next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await);
    }
    match op.name {
        "retrieveEntity" | "queryEntity" | "queryBatch" => {
            let local = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            read(
                c,
                &request,
                op,
                &found,
                &ctx,
                local,
                id.as_deref(),
                types.as_deref(),
            )
            .await
        }
        _ => provision(c, &request, op, &found, &ctx, &value, id, parts, next).await,
    }
}

/// A request as the client made it, to send on.
#[derive(Clone)]
struct Forward {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
    via: Option<String>,
}

/// A source's answer: its status and body (JSON if it is), or why there
/// was none.
type Reply = Result<(StatusCode, Value), String>;

async fn send(
    c: &CityData,
    t: &Target,
    method: Method,
    path_and_query: String,
    f: &Forward,
    body: Option<Bytes>,
) -> Reply {
    let url = format!("{}{path_and_query}", t.endpoint());
    crate::egress::check_url(&url, c.config.city_egress_private).await?;
    let hop = format!("1.1 {}", pseudonym());
    let via = match &f.via {
        Some(v) => format!("{v}, {hop}"),
        None => hop,
    };
    let mut req = client().request(method, &url).header("Via", via);
    for h in [header::CONTENT_TYPE, header::LINK, header::ACCEPT] {
        if let Some(v) = f.headers.get(&h) {
            req = req.header(h, v);
        }
    }
    if let Some(t) = t.registration.doc.get("tenant").and_then(Value::as_str) {
        req = req.header("NGSILD-Tenant", t);
    }
    // What the registration asks to carry to its source (its credentials).
    for (name, value) in crate::csource::forwarded_headers(&t.registration.doc) {
        req = req.header(name, value);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let r = req.send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    // A source's answer is read up to MAX_BODY, no further.
    let mut r = r;
    let mut bytes = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_BODY {
            return Err("the context source's answer is too large".into());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// The replies of forwards sent at once, in their order.
async fn replies_of(handles: Vec<tokio::task::JoinHandle<Reply>>) -> Vec<Reply> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap_or_else(|e| Err(e.to_string())));
    }
    out
}

fn spawn_send(
    c: &CityData,
    t: &Target,
    method: Method,
    pq: String,
    f: &Forward,
    body: Option<Bytes>,
) -> tokio::task::JoinHandle<Reply> {
    let (c, t, f) = (c.clone(), t.clone(), f.clone());
    tokio::spawn(async move { send(&c, &t, method, pq, &f, body).await })
}

fn path_and_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// A source's failure as a BatchOperationResult error.
fn failure(entity: &str, t: &Target, reply: &Reply) -> Value {
    let (status, detail) = match reply {
        Ok((s, body)) => (
            s.as_u16(),
            body.get("detail")
                .and_then(Value::as_str)
                .unwrap_or("the context source refused the operation")
                .to_owned(),
        ),
        Err(why) => (504, format!("the context source did not answer: {why}")),
    };
    let kind = match status {
        404 => "ResourceNotFound",
        409 => "AlreadyExists",
        400 => "BadRequestData",
        _ => "InternalError",
    };
    json!({
        "entityId": entity,
        "registrationId": t.id(),
        "error": {
            "type": format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"),
            "title": "A context source failed",
            "detail": detail,
            "status": status,
        }
    })
}

fn ok(reply: &Reply) -> bool {
    matches!(reply, Ok((s, _)) if s.is_success() && *s != StatusCode::MULTI_STATUS)
}

#[allow(clippy::too_many_arguments)]
async fn provision(
    c: &CityData,
    f: &Forward,
    op: Operation,
    found: &[Target],
    ctx: &Context,
    value: &Value,
    id: Option<String>,
    parts: axum::http::request::Parts,
    next: Next,
) -> Result<Response, NgsiError> {
    let entity = id.unwrap_or_default();
    // The broker keeps nothing a redirect source holds, nor an exclusive
    // source's attributes.
    // (An entity the broker holds from before a redirect registration is
    // deleted here too: the client wants it gone.)
    let whole_entity = matches!(op.name, "deleteEntity" | "purgeEntity");
    let redirected = !whole_entity && found.iter().any(|t| t.mode == Mode::Redirect);
    let exclusive: Vec<String> = found
        .iter()
        .filter(|t| t.mode == Mode::Exclusive)
        .filter_map(|t| t.attrs.clone())
        .flatten()
        .collect();
    let mut local_body = f.body.clone();
    let mut keep_local = !redirected;
    if keep_local && !exclusive.is_empty() {
        if let Some(a) = &op.attr {
            keep_local = !exclusive.contains(&ctx.expand(a));
        } else if let Value::Object(o) = value {
            let kept: Map<String, Value> = o
                .iter()
                .filter(|(k, _)| {
                    NOT_ATTRIBUTES.contains(&k.as_str()) || !exclusive.contains(&ctx.expand(k))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let attributes_left = kept.keys().any(|k| !NOT_ATTRIBUTES.contains(&k.as_str()));
            keep_local = whole_entity || attributes_left;
            local_body = Bytes::from(Value::Object(kept).to_string());
        }
    }
    // The broker's part first: input it refuses goes nowhere.
    let local = if keep_local {
        let r = next
            .run(Request::from_parts(parts, Body::from(local_body)))
            .await;
        if r.status() == StatusCode::BAD_REQUEST {
            return Ok(r);
        }
        Some(r)
    } else {
        None
    };
    let pq = path_and_query(&f.path, &f.query);
    let handles: Vec<_> = found
        .iter()
        .map(|t| spawn_send(c, t, f.method.clone(), pq.clone(), f, Some(f.body.clone())))
        .collect();
    let replies = replies_of(handles).await;
    let remote_ok = replies.iter().all(ok);
    let local_status = local.as_ref().map(|r| r.status());
    // An attribute the broker did not have is no failure when a source
    // that holds it took the change; nor is finding nothing to purge.
    let missing_here_is_fine = op.attr.is_some()
        || matches!(op.name, "appendAttrs" | "updateAttrs" | "purgeEntity")
        || (whole_entity && found.iter().any(|t| t.mode == Mode::Redirect));
    let local_ok = local_status.is_none_or(|s| {
        (s.is_success() && s != StatusCode::MULTI_STATUS)
            || (remote_ok
                && (s == StatusCode::MULTI_STATUS
                    || (s == StatusCode::NOT_FOUND && missing_here_is_fine)))
    });
    if local_ok && remote_ok {
        return Ok(match local {
            Some(r) if r.status().is_success() && r.status() != StatusCode::MULTI_STATUS => r,
            _ if op.name == "createEntity" => super::created(&format!("/entities/{entity}")),
            _ => super::no_content(),
        });
    }
    let mut errors = Vec::new();
    if let Some(r) = local {
        if !local_ok {
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), MAX_BODY)
                .await
                .unwrap_or_default();
            let mut problem: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
            if problem.get("status").is_none() {
                problem["status"] = status.as_u16().into();
            }
            errors.push(json!({"entityId": entity, "error": problem}));
        }
    }
    for (t, reply) in found.iter().zip(&replies) {
        if !ok(reply) {
            errors.push(failure(&entity, t, reply));
        }
    }
    let success = if errors.is_empty() {
        vec![entity.clone()]
    } else {
        Vec::new()
    };
    Ok(answer(
        StatusCode::MULTI_STATUS,
        Accept::Json,
        ctx,
        json!({"success": success, "errors": errors}),
    ))
}

/// A batch (`/entityOperations/{create,upsert,update,merge,delete}`): each
/// entity goes where its registrations say, one request per source with
/// all of its entities as the client sent them; the broker's part is one
/// batch of what is left.
#[allow(clippy::too_many_arguments)]
async fn batch(
    c: &CityData,
    f: &Forward,
    op: &str,
    registrations: &[crate::csource::Registration],
    ctx: &Arc<Context>,
    items: &[Value],
    parts: axum::http::request::Parts,
    next: Next,
) -> Result<Response, NgsiError> {
    let tenant = tenant(&f.headers);
    let deleting = op == "deleteBatch";
    // Per source, its entities; the broker's own part.
    let mut per_target: Vec<(Target, Vec<Value>)> = Vec::new();
    let mut local_items = Vec::new();
    let mut ids = Vec::new();
    for item in items {
        let id = match item {
            Value::String(id) => id.clone(),
            other => other
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        let item_ctx = match item.get("@context") {
            Some(inline) => c
                .broker
                .contexts
                .resolve(Some(inline))
                .await
                .unwrap_or_else(|_| ctx.clone()),
            None => ctx.clone(),
        };
        let types = match types_of(item.get("type"), &item_ctx) {
            Some(t) => Some(t),
            None => c
                .broker
                .get(&tenant, &id)
                .await
                .ok()
                .map(|e| e.types.clone()),
        };
        let attrs = (!deleting).then(|| attribute_names(item, &item_ctx));
        let about = About {
            id: Some(&id),
            types: types.as_deref(),
            attrs: attrs.as_deref(),
        };
        let found = targets(registrations, op, &about);
        let mut keep = !found.iter().any(|t| t.mode == Mode::Redirect);
        let exclusive: Vec<String> = found
            .iter()
            .filter(|t| t.mode == Mode::Exclusive)
            .filter_map(|t| t.attrs.clone())
            .flatten()
            .collect();
        let mut local_item = item.clone();
        if keep && !exclusive.is_empty() {
            if let Value::Object(o) = item {
                let kept: Map<String, Value> = o
                    .iter()
                    .filter(|(k, _)| {
                        NOT_ATTRIBUTES.contains(&k.as_str())
                            || !exclusive.contains(&item_ctx.expand(k))
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                keep = kept.keys().any(|k| !NOT_ATTRIBUTES.contains(&k.as_str()));
                local_item = Value::Object(kept);
            }
        }
        if keep {
            local_items.push(local_item);
        }
        for t in found {
            match per_target.iter_mut().find(|(x, _)| x.id() == t.id()) {
                Some((_, list)) => list.push(item.clone()),
                None => per_target.push((t, vec![item.clone()])),
            }
        }
        ids.push(id);
    }
    let local = if local_items.is_empty() {
        None
    } else {
        let body = Bytes::from(Value::Array(local_items).to_string());
        let r = next.run(Request::from_parts(parts, Body::from(body))).await;
        if r.status() == StatusCode::BAD_REQUEST {
            return Ok(r);
        }
        Some(r)
    };
    let pq = path_and_query(&f.path, &f.query);
    let handles: Vec<_> = per_target
        .iter()
        .map(|(t, list)| {
            let body = Bytes::from(Value::Array(list.clone()).to_string());
            spawn_send(c, t, f.method.clone(), pq.clone(), f, Some(body))
        })
        .collect();
    let replies = replies_of(handles).await;
    // Which entities a source that took them holds.
    let taken: Vec<String> = per_target
        .iter()
        .zip(&replies)
        .filter(|(_, r)| ok(r))
        .flat_map(|((_, list), _)| {
            list.iter().map(|i| match i {
                Value::String(id) => id.clone(),
                other => other
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        })
        .collect();
    let mut errors: Vec<Value> = Vec::new();
    if let Some(r) = local {
        if r.status() == StatusCode::MULTI_STATUS {
            let body = axum::body::to_bytes(r.into_body(), MAX_BODY)
                .await
                .unwrap_or_default();
            let result: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            for e in result
                .get("errors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                // What the broker lacked, a source that took it has.
                let on = e
                    .get("entityId")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !taken.iter().any(|t| t == on) {
                    errors.push(e);
                }
            }
        } else if !r.status().is_success() {
            return Ok(r);
        }
    }
    for ((t, list), reply) in per_target.iter().zip(&replies) {
        if !ok(reply) {
            for item in list {
                let id = match item {
                    Value::String(id) => id.as_str(),
                    other => other.get("id").and_then(Value::as_str).unwrap_or_default(),
                };
                errors.push(failure(id, t, reply));
            }
        }
    }
    if errors.is_empty() {
        return Ok(if op == "createBatch" {
            answer(
                StatusCode::CREATED,
                Accept::Json,
                ctx,
                Value::Array(ids.into_iter().map(Value::String).collect()),
            )
        } else {
            super::no_content()
        });
    }
    let failed: Vec<&str> = errors
        .iter()
        .filter_map(|e| e.get("entityId").and_then(Value::as_str))
        .collect();
    let success: Vec<Value> = ids
        .iter()
        .filter(|id| !failed.contains(&id.as_str()))
        .map(|id| Value::String(id.clone()))
        .collect();
    Ok(answer(
        StatusCode::MULTI_STATUS,
        Accept::Json,
        ctx,
        json!({"success": success, "errors": errors}),
    ))
}

/// The entity types a registration names.
fn registered_types(r: &crate::csource::Registration) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let infos = r.doc.get("information").and_then(Value::as_array);
    for e in infos
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("entities").and_then(Value::as_array))
        .flatten()
    {
        let types = match e.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        for t in types {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// The entities in a source's answer (an entity or a list of them).
fn entities_in(v: Value) -> Vec<Map<String, Value>> {
    match v {
        Value::Object(o) if o.contains_key("id") => vec![o],
        Value::Array(a) => a
            .into_iter()
            .filter_map(|e| match e {
                Value::Object(o) if o.contains_key("id") => Some(o),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds to `into` what `from` has and it has not; types are united.
fn merge_entity(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        if k == "type" {
            let mut types: Vec<Value> = match into.get("type") {
                Some(Value::Array(a)) => a.clone(),
                Some(t) => vec![t.clone()],
                None => Vec::new(),
            };
            let more = match v {
                Value::Array(a) => a.clone(),
                t => vec![t.clone()],
            };
            for t in more {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            into.insert(
                "type".into(),
                if types.len() == 1 {
                    types.remove(0)
                } else {
                    Value::Array(types)
                },
            );
        } else if k != "@context" && !into.contains_key(k) {
            into.insert(k.clone(), v.clone());
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn read(
    c: &CityData,
    f: &Forward,
    op: Operation,
    found: &[Target],
    ctx: &Context,
    local: Response,
    id: Option<&str>,
    types: Option<&[String]>,
) -> Result<Response, NgsiError> {
    let a = accept(&f.headers, true)?;
    if a == Accept::GeoJson
        || !(local.status().is_success() || local.status() == StatusCode::NOT_FOUND)
    {
        return Ok(local);
    }
    let local_status = local.status();
    let count_header = local.headers().get("NGSILD-Results-Count").cloned();
    let local_body = axum::body::to_bytes(local.into_body(), MAX_BODY)
        .await
        .unwrap_or_default();
    let mut local_entities = if local_status.is_success() {
        entities_in(serde_json::from_slice(&local_body).unwrap_or(Value::Null))
    } else {
        Vec::new()
    };
    // What exclusive sources hold is theirs, whatever the broker has.
    let hidden: Vec<String> = found
        .iter()
        .filter(|t| t.mode == Mode::Exclusive)
        .filter_map(|t| t.attrs.clone())
        .flatten()
        .map(|iri| ctx.compact(&iri))
        .collect();
    for e in &mut local_entities {
        for h in &hidden {
            e.remove(h);
        }
    }
    // Auxiliary sources last: what the others say comes first.
    let mut ordered: Vec<&Target> = found.iter().filter(|t| t.mode != Mode::Auxiliary).collect();
    ordered.extend(found.iter().filter(|t| t.mode == Mode::Auxiliary));
    let ordered: Vec<Target> = ordered.into_iter().cloned().collect();
    let compact_types = types
        .map(|ts| {
            ts.iter()
                .map(|t| ctx.compact(t))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let handles = ordered.iter().map(|t| {
        let supports = |o| crate::federation::supports(&t.registration, o);
        // Asked as a query, the entity's type is needed: the registration's
        // if the broker does not know it.
        let compact_types = if compact_types.is_empty() {
            registered_types(&t.registration)
                .iter()
                .map(|iri| ctx.compact(iri))
                .collect::<Vec<_>>()
                .join(",")
        } else {
            compact_types.clone()
        };
        match op.name {
            "retrieveEntity" if !supports("retrieveEntity") && supports("queryEntity") => {
                let mut q = format!("id={}", id.unwrap_or_default());
                if !compact_types.is_empty() {
                    q.push_str(&format!("&type={compact_types}"));
                }
                spawn_send(
                    c,
                    t,
                    Method::GET,
                    format!("/ngsi-ld/v1/entities?{q}"),
                    f,
                    None,
                )
            }
            "retrieveEntity" if !supports("retrieveEntity") => {
                let mut sel = json!({"id": id.unwrap_or_default()});
                if !compact_types.is_empty() {
                    sel["type"] = compact_types.clone().into();
                }
                let body = json!({"type": "Query", "entities": [sel]}).to_string();
                spawn_send(
                    c,
                    t,
                    Method::POST,
                    "/ngsi-ld/v1/entityOperations/query".into(),
                    f,
                    Some(Bytes::from(body)),
                )
            }
            "queryBatch" => spawn_send(
                c,
                t,
                Method::POST,
                path_and_query(&f.path, &f.query),
                f,
                Some(f.body.clone()),
            ),
            "queryEntity" if !supports("queryEntity") => spawn_send(
                c,
                t,
                Method::POST,
                "/ngsi-ld/v1/entityOperations/query".into(),
                f,
                Some(Bytes::from(
                    json!({"type": "Query", "entities": [{"type": compact_types}]}).to_string(),
                )),
            ),
            _ => spawn_send(
                c,
                t,
                Method::GET,
                path_and_query(&f.path, &f.query),
                f,
                None,
            ),
        }
    });
    let replies = replies_of(handles.collect()).await;
    let mut merged = local_entities;
    let local_count = merged.len();
    for reply in replies {
        let Ok((status, body)) = reply else { continue };
        if !status.is_success() {
            continue;
        }
        for e in entities_in(body) {
            if id.is_some_and(|id| e.get("id").and_then(Value::as_str) != Some(id)) {
                continue;
            }
            match merged.iter_mut().find(|m| m.get("id") == e.get("id")) {
                Some(m) => merge_entity(m, &e),
                None => merged.push(e),
            }
        }
    }
    if op.name == "retrieveEntity" {
        return match merged.into_iter().next() {
            Some(e) => Ok(answer(StatusCode::OK, a, ctx, Value::Object(e))),
            None => Err(NgsiError::not_found(format!(
                "no source has the entity {}",
                id.unwrap_or_default()
            ))),
        };
    }
    let limit = super::entities::paging_limit(&f.query);
    let extra = merged.len() - local_count;
    let page: Vec<Value> = merged.into_iter().take(limit).map(Value::Object).collect();
    let mut r = answer(StatusCode::OK, a, ctx, Value::Array(page));
    if let Some(n) =
        count_header.and_then(|v| v.to_str().ok().and_then(|s| s.parse::<usize>().ok()))
    {
        r.headers_mut()
            .insert("NGSILD-Results-Count", HeaderValue::from(n + extra));
    }
    Ok(r)
}
