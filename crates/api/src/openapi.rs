//! The errors of the OpenAPI document, said once for every operation.
//!
//! Handlers annotate what is particular to them (their answer, a 409 that
//! only they give). What every operation of a kind can answer is added
//! here from the shape of the operation, as the extractors and the error
//! mapping (`problem.rs`, `extract.rs`) actually answer it:
//!
//! - every error is `application/problem+json` (RFC 9457), never plain JSON;
//! - an operation with a bearer requirement answers 401 (no, a wrong or an
//!   expired token) and 403 (the policy refuses);
//! - one with parameters or a body answers 400 (malformed path, query or
//!   body) and 422 (well-formed but invalid values), and 404 (no such
//!   thing, or none the caller may know of); one of the investigation
//!   with a path parameter 409 (the response has ended);
//! - one with a JSON body answers 413 (too large) and 415 (not JSON).
//!
//! A status an operation never gives is not listed; a 5xx is never
//! documented, so a checker that meets one reports it.

use serde_json::{json, Map, Value};

const PROBLEM: &str = "application/problem+json";

/// The problem response of `status`, with why it is given.
fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { PROBLEM: { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

/// Adds the errors every operation of its kind answers and serves each
/// error as problem+json.
pub fn document_errors(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut value = serde_json::to_value(&doc).expect("the OpenAPI document serialises");
    if let Some(paths) = value.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut().filter_map(Value::as_object_mut) {
                add_errors(operation);
            }
        }
    }
    serde_json::from_value(value).expect("the OpenAPI document reads back")
}

fn add_errors(operation: &mut Map<String, Value>) {
    let parameters = operation
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let in_path = parameters.iter().any(|p| p["in"] == "path");
    let is_investigation = operation
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t == "investigation"));
    let has_input = !parameters.is_empty();
    let body = operation.get("requestBody").cloned();
    let json_body = body
        .as_ref()
        .and_then(|b| b["content"].as_object())
        .is_some_and(|c| c.contains_key("application/json"));
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    // Errors are problem documents, whatever the annotation said.
    for (status, response) in responses.iter_mut() {
        let error = status == "default" || status.starts_with('4') || status.starts_with('5');
        if !error {
            continue;
        }
        if let Some(content) = response.get_mut("content").and_then(Value::as_object_mut) {
            if let Some(schema) = content.remove("application/json") {
                content.insert(PROBLEM.to_owned(), schema);
            }
        }
    }
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| problem(description));
    };
    if has_input || body.is_some() {
        add("400", "malformed path, query or body");
        add(
            "422",
            "a value is well-formed but invalid (the problem names the field)",
        );
    }
    if has_input || body.is_some() {
        add(
            "404",
            "no such thing (named in the path or the body), or none the caller may know of",
        );
    }
    if in_path && is_investigation {
        add(
            "409",
            "the state does not allow it: the response has ended (its data key is destroyed), or a step was taken already",
        );
    }
    if secured {
        add(
            "401",
            "no bearer token, or one unknown, expired, revoked or idle",
        );
        add(
            "403",
            "the policy refuses: the caller's duty does not allow it, or a second factor is needed",
        );
    }
    if body.is_some() {
        add("413", "the body is larger than the hub accepts");
    }
    if json_body {
        add("415", "the body is not `application/json`");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_problems_and_each_kind_of_operation_gets_its_own() {
        let mut operation = json!({
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "requestBody": {"content": {"application/json": {"schema": {}}}},
            "security": [{"bearer": []}],
            "responses": {
                "200": {"description": "ok", "content": {"application/json": {"schema": {}}}},
                "409": {"description": "taken", "content": {"application/json": {"schema": {}}}}
            }
        });
        add_errors(operation.as_object_mut().unwrap());
        let responses = operation["responses"].as_object().unwrap();
        let statuses: Vec<&str> = responses.keys().map(String::as_str).collect();
        for s in [
            "200", "400", "401", "403", "404", "409", "413", "415", "422",
        ] {
            assert!(statuses.contains(&s), "{s} in {statuses:?}");
        }
        assert!(responses["200"]["content"]["application/json"].is_object());
        assert!(responses["409"]["content"][PROBLEM].is_object());
        assert!(responses["409"]["content"]["application/json"].is_null());

        let mut public = json!({"responses": {"200": {"description": "ok"}}});
        add_errors(public.as_object_mut().unwrap());
        assert_eq!(public["responses"].as_object().unwrap().len(), 1);
    }
}
