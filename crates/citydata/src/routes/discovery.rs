//! Types and attributes discovery (§6.25–6.28) and the `@context`
//! management of §6.29–6.30.

use super::{accept, answer, created, link_context, no_content, tenant, Accept, Answer, Params};
use crate::entity::format_datetime;
use crate::jsonld::{
    is_core_url, Cached, Context, ContextKind, CORE_CONTEXT_DOCUMENT, CORE_CONTEXT_URL,
};
use crate::problem::NgsiError;
use crate::CityData;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

fn list_id(kind: &str) -> String {
    format!("urn:ngsi-ld:{kind}:{}", uuid::Uuid::new_v4())
}

pub async fn types(State(c): State<CityData>, headers: HeaderMap, RawQuery(q): RawQuery) -> Answer {
    let p = Params::parse(q.as_deref(), &["details", "local"])?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
    let all = c.broker.all(&tenant(&headers)).await?;
    let mut by_type: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &all {
        for t in &e.types {
            by_type
                .entry(t.clone())
                .or_default()
                .extend(e.attribute_names().cloned());
        }
    }
    let body = if p.flag("details")? {
        Value::Array(
            by_type
                .iter()
                .map(|(t, attrs)| {
                    json!({
                        "id": t, "type": "EntityType", "typeName": ctx.compact(t),
                        "attributeNames": attrs.iter().map(|a| ctx.compact(a)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    } else {
        json!({
            "id": list_id("EntityTypeList"), "type": "EntityTypeList",
            "typeList": by_type.keys().map(|t| ctx.compact(t)).collect::<Vec<_>>(),
        })
    };
    Ok(answer(StatusCode::OK, a, &ctx, body))
}

pub async fn type_info(
    State(c): State<CityData>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
    let iri = ctx.expand(&name);
    let all = c.broker.all(&tenant(&headers)).await?;
    let mut count = 0;
    let mut attrs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in all.iter().filter(|e| e.types.contains(&iri)) {
        count += 1;
        for (attr, instances) in &e.attrs {
            let kinds = attrs.entry(attr.clone()).or_default();
            for i in instances {
                if let Some(k) = i.get("type").and_then(Value::as_str) {
                    kinds.insert(k.to_owned());
                }
            }
        }
    }
    if count == 0 {
        return Err(NgsiError::not_found(format!("there is no entity of type {name}")).into());
    }
    let details: Vec<Value> = attrs
        .iter()
        .map(|(attr, kinds)| {
            json!({"id": attr, "type": "Attribute", "attributeName": ctx.compact(attr),
                   "attributeTypes": kinds.iter().collect::<Vec<_>>()})
        })
        .collect();
    let body = json!({
        "id": iri, "type": "EntityTypeInfo", "typeName": ctx.compact(&iri),
        "entityCount": count, "attributeDetails": details,
    });
    Ok(answer(StatusCode::OK, a, &ctx, body))
}

/// Attribute → (instances' types, entity types, how many entities).
async fn attribute_index(
    c: &CityData,
    tenant_name: &str,
) -> crate::problem::Result<BTreeMap<String, (BTreeSet<String>, BTreeSet<String>, usize)>> {
    let all = c.broker.all(tenant_name).await?;
    let mut out: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>, usize)> = BTreeMap::new();
    for e in &all {
        for (attr, instances) in e.attrs.iter().filter(|(_, v)| !v.is_empty()) {
            let entry = out.entry(attr.clone()).or_default();
            entry.2 += 1;
            entry.1.extend(e.types.iter().cloned());
            for i in instances {
                if let Some(k) = i.get("type").and_then(Value::as_str) {
                    entry.0.insert(k.to_owned());
                }
            }
        }
    }
    Ok(out)
}

pub async fn attributes(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["details", "local"])?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
    let index = attribute_index(&c, &tenant(&headers)).await?;
    let body = if p.flag("details")? {
        Value::Array(
            index
                .iter()
                .map(|(attr, (_, types, _))| {
                    json!({"id": attr, "type": "Attribute", "attributeName": ctx.compact(attr),
                           "typeNames": types.iter().map(|t| ctx.compact(t)).collect::<Vec<_>>()})
                })
                .collect(),
        )
    } else {
        json!({
            "id": list_id("AttributeList"), "type": "AttributeList",
            "attributeList": index.keys().map(|a| ctx.compact(a)).collect::<Vec<_>>(),
        })
    };
    Ok(answer(StatusCode::OK, a, &ctx, body))
}

pub async fn attribute_info(
    State(c): State<CityData>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    Params::parse(q.as_deref(), &["local"])?;
    let a = accept(&headers, false)?;
    let ctx = link_context(&c, &headers).await?;
    let iri = ctx.expand(&name);
    let index = attribute_index(&c, &tenant(&headers)).await?;
    let (kinds, types, count) = index
        .get(&iri)
        .ok_or_else(|| NgsiError::not_found(format!("no entity has an attribute {name}")))?;
    let body = json!({
        "id": iri, "type": "Attribute", "attributeName": ctx.compact(&iri),
        "attributeCount": count, "attributeTypes": kinds.iter().collect::<Vec<_>>(),
        "typeNames": types.iter().map(|t| ctx.compact(t)).collect::<Vec<_>>(),
    });
    Ok(answer(StatusCode::OK, a, &ctx, body))
}

pub async fn list_contexts(
    State(c): State<CityData>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["details", "kind"])?;
    accept(&headers, false)?;
    let kind = p.get("kind").map(str::to_ascii_lowercase);
    if let Some(k) = &kind {
        if !matches!(k.as_str(), "hosted" | "cached" | "implicitlycreated") {
            return Err(NgsiError::bad_data("kind is Hosted, Cached or ImplicitlyCreated").into());
        }
    }
    let details = p.flag("details")?;
    let mut out = Vec::new();
    let core_wanted = kind.as_deref().is_none_or(|k| k == "cached");
    if core_wanted {
        out.push(if details {
            json!({"URL": CORE_CONTEXT_URL, "localId": "core", "kind": "Cached"})
        } else {
            Value::String(CORE_CONTEXT_URL.into())
        });
    }
    for cached in c.broker.contexts.list() {
        let k = cached.kind.name();
        if kind
            .as_deref()
            .is_some_and(|want| want != k.to_ascii_lowercase())
        {
            continue;
        }
        out.push(if details {
            details_of(&cached)
        } else {
            Value::String(cached.url)
        });
    }
    Ok(answer(
        StatusCode::OK,
        Accept::Json,
        &Context::core(),
        Value::Array(out),
    ))
}

pub async fn add_context(State(c): State<CityData>, headers: HeaderMap, body: Bytes) -> Answer {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(ct.starts_with("application/json") || ct.starts_with("application/ld+json")) {
        return Err(
            NgsiError::media_type("a context is application/json or application/ld+json").into(),
        );
    }
    let doc: Value =
        serde_json::from_slice(&body).map_err(|_| NgsiError::invalid("the payload is not JSON"))?;
    let ctx = doc
        .get("@context")
        .ok_or_else(|| NgsiError::invalid("the payload holds no @context"))?;
    if !(ctx.is_object() || ctx.is_array() || ctx.is_string()) {
        return Err(NgsiError::bad_data("the @context is an object, an array or a URL").into());
    }
    // It must resolve (its own remote references included) before it is kept.
    c.broker.contexts.resolve(Some(ctx)).await?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let url = format!("{}/ngsi-ld/v1/jsonldContexts/{id}", c.public_url());
    c.broker
        .contexts
        .host(id.clone(), url, doc, ContextKind::Hosted);
    Ok(created(&format!("/jsonldContexts/{id}")))
}

pub async fn serve_context(
    State(c): State<CityData>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["details"])?;
    accept(&headers, false)?;
    let details = p.flag("details")?;
    if id == "core" || is_core_url(&id) {
        let doc: Value = serde_json::from_str(CORE_CONTEXT_DOCUMENT)
            .map_err(|_| NgsiError::internal("core context"))?;
        let body = if details {
            json!({"URL": CORE_CONTEXT_URL, "localId": "core", "kind": "Cached"})
        } else {
            doc
        };
        return Ok(answer(StatusCode::OK, Accept::Json, &Context::core(), body));
    }
    let cached = c
        .broker
        .contexts
        .find(&id)
        .ok_or_else(|| NgsiError::not_found(format!("there is no @context {id}")))?;
    c.broker.contexts.touch_url(&cached.url);
    let body = if details {
        details_of(&cached)
    } else {
        (*cached.document).clone()
    };
    let mut r = answer(StatusCode::OK, Accept::Json, &Context::core(), body);
    r.headers_mut().remove(header::LINK);
    Ok(r)
}

/// A stored context's details (§5.13.3): its use is counted for the
/// contexts the broker fetches or hosts; an implicitly created one is
/// used only through its subscription, which is not counted.
fn details_of(cached: &Cached) -> Value {
    let mut d = json!({
        "URL": cached.url, "localId": cached.local_id, "kind": cached.kind.name(),
        "createdAt": format_datetime(cached.created_at),
    });
    if cached.kind != ContextKind::ImplicitlyCreated {
        d["lastUsage"] = format_datetime(cached.last_usage).into();
        d["numberOfHits"] = cached.hits.into();
    }
    d
}

pub async fn delete_context(
    State(c): State<CityData>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Answer {
    let p = Params::parse(q.as_deref(), &["reload"])?;
    let reload = p.flag("reload")?;
    if id == "core" || is_core_url(&id) {
        // The core is built in: "reloading" it is a no-op; deleting it is not allowed.
        return if reload {
            Ok(no_content())
        } else {
            Err(NgsiError::bad_data("the core @context cannot be deleted").into())
        };
    }
    let cached = c.broker.contexts.find(&id).ok_or_else(|| {
        if reload {
            NgsiError::bad_data(format!("there is no @context {id} to reload"))
        } else {
            NgsiError::not_found(format!("there is no @context {id}"))
        }
    })?;
    if reload && !cached.kind.fetched() {
        return Err(NgsiError::bad_data(format!(
            "a {} @context has no URL to be reloaded from",
            cached.kind.name()
        ))
        .into());
    }
    c.broker.contexts.forget(&id);
    if reload {
        c.broker.contexts.document(&cached.url).await?;
    }
    Ok(no_content())
}
