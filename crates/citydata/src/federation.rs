//! Distributed operations (CIM 009 §4.3.6, §5.10): which registered
//! context sources an operation on entities concerns, by their mode
//! (inclusive, exclusive, redirect, auxiliary) and the operations they
//! take. The forwarding itself is `routes::federate`'s.

use crate::csource::Registration;
use serde_json::Value;

/// How a context source's information stands to the broker's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Inclusive,
    Exclusive,
    Redirect,
    Auxiliary,
}

impl Mode {
    fn of(r: &Registration) -> Mode {
        match r.doc.get("mode").and_then(Value::as_str) {
            Some("exclusive") => Mode::Exclusive,
            Some("redirect") => Mode::Redirect,
            Some("auxiliary") => Mode::Auxiliary,
            _ => Mode::Inclusive,
        }
    }
}

/// The operations a group names (§5.10.2, Table 4.20-1).
fn group(name: &str) -> &'static [&'static str] {
    match name {
        "federationOps" => &[
            "retrieveEntity",
            "queryEntity",
            "queryBatch",
            "retrieveEntityTypes",
            "retrieveEntityTypeDetails",
            "retrieveEntityTypeInfo",
            "retrieveAttrTypes",
            "retrieveAttrTypeDetails",
            "retrieveAttrTypeInfo",
            "createSubscription",
            "updateSubscription",
            "retrieveSubscription",
            "querySubscription",
            "deleteSubscription",
        ],
        "updateOps" => &[
            "updateEntity",
            "updateAttrs",
            "replaceEntity",
            "replaceAttrs",
        ],
        "retrieveOps" => &["retrieveEntity", "queryEntity"],
        "redirectionOps" => &[
            "createEntity",
            "updateEntity",
            "appendAttrs",
            "updateAttrs",
            "deleteAttrs",
            "deleteEntity",
            "mergeEntity",
            "replaceEntity",
            "replaceAttrs",
            "purgeEntity",
            "retrieveEntity",
            "queryEntity",
        ],
        _ => &[],
    }
}

/// Does the registration take the operation? Without `operations`, it
/// takes the federation operations.
pub fn supports(r: &Registration, op: &str) -> bool {
    let named: Vec<&str> = match r.doc.get("operations").and_then(Value::as_array) {
        Some(ops) => ops.iter().filter_map(Value::as_str).collect(),
        None => vec!["federationOps"],
    };
    named.iter().any(|n| *n == op || group(n).contains(&op))
}

/// Does the registration take what the operation needs? A retrieval can
/// be asked as a query, and a query in either form.
fn takes(r: &Registration, op: &str) -> bool {
    match op {
        "retrieveEntity" => ["retrieveEntity", "queryEntity", "queryBatch"]
            .iter()
            .any(|o| supports(r, o)),
        "queryEntity" | "queryBatch" => supports(r, "queryEntity") || supports(r, "queryBatch"),
        _ => supports(r, op),
    }
}

/// Whether an operation reads (only reads go to auxiliary sources).
fn reads(op: &str) -> bool {
    matches!(op, "retrieveEntity" | "queryEntity" | "queryBatch")
}

/// What an operation is about, as far as it is known.
#[derive(Debug, Clone, Default)]
pub struct About<'a> {
    pub id: Option<&'a str>,
    /// The entity's types (IRIs), if known.
    pub types: Option<&'a [String]>,
    /// The attributes it touches (IRIs); `None` for the whole entity.
    pub attrs: Option<&'a [String]>,
}

/// A registration an operation goes to, and the attributes it registers
/// (`None`: all).
#[derive(Debug, Clone)]
pub struct Target {
    pub registration: Registration,
    pub mode: Mode,
    pub attrs: Option<Vec<String>>,
}

impl Target {
    pub fn endpoint(&self) -> &str {
        self.registration
            .doc
            .get("endpoint")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_end_matches('/')
    }

    pub fn id(&self) -> &str {
        &self.registration.id
    }
}

/// The attributes a RegistrationInfo names, if it names any.
fn info_attrs(info: &Value) -> Option<Vec<String>> {
    let names: Vec<String> = ["propertyNames", "relationshipNames"]
        .iter()
        .filter_map(|k| info.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let listed = info.get("propertyNames").is_some() || info.get("relationshipNames").is_some();
    listed.then_some(names)
}

/// Could an EntityInfo hold the entity?
fn holds(e: &Value, about: &About) -> bool {
    if let Some(types) = about.types {
        let ok = match e.get("type") {
            Some(Value::String(t)) => types.contains(t),
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| types.iter().any(|x| x == t)),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    let Some(id) = about.id else {
        return true;
    };
    let by_id = e.get("id").and_then(Value::as_str);
    let by_pattern = e.get("idPattern").and_then(Value::as_str);
    match (by_id, by_pattern) {
        (None, None) => true,
        (i, p) => {
            i == Some(id)
                || p.and_then(|p| regex::Regex::new(p).ok())
                    .is_some_and(|r| r.is_match(id))
        }
    }
}

/// The registrations an operation goes to, of those given (a tenant's,
/// unexpired), each with the attributes it registers.
pub fn targets(registrations: &[Registration], op: &str, about: &About) -> Vec<Target> {
    let mut out = Vec::new();
    for r in registrations {
        let mode = Mode::of(r);
        if (mode == Mode::Auxiliary && !reads(op)) || !takes(r, op) {
            continue;
        }
        let infos = r
            .doc
            .get("information")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut hit = false;
        let mut attrs: Option<Vec<String>> = Some(Vec::new());
        for info in &infos {
            let entity_ok = match info.get("entities").and_then(Value::as_array) {
                Some(es) => es.iter().any(|e| holds(e, about)),
                None => true,
            };
            if !entity_ok {
                continue;
            }
            let named = info_attrs(info);
            let attrs_ok = match (&named, about.attrs) {
                (Some(named), Some(wanted)) => wanted.iter().any(|a| named.contains(a)),
                _ => true,
            };
            if !attrs_ok {
                continue;
            }
            hit = true;
            match (named, attrs.as_mut()) {
                (Some(named), Some(acc)) => acc.extend(named),
                (None, _) => attrs = None,
                _ => {}
            }
        }
        // An exclusive registration names the attributes it holds.
        if !hit || (mode == Mode::Exclusive && attrs.as_ref().is_none_or(Vec::is_empty)) {
            continue;
        }
        out.push(Target {
            registration: r.clone(),
            mode,
            attrs,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonld::Context;
    use serde_json::json;

    fn reg(v: Value) -> Registration {
        Registration {
            id: v["id"].as_str().unwrap().into(),
            doc: crate::csource::parse(&v, &Context::core(), false).unwrap(),
            context: Value::Null,
            created_at: 0,
            modified_at: 0,
        }
    }

    #[test]
    fn operations_go_to_the_sources_that_hold_the_entity_and_take_the_operation() {
        let ctx = Context::core();
        let vehicle = vec![ctx.expand("Vehicle")];
        let speed = vec![ctx.expand("speed")];
        let colour = vec![ctx.expand("colour")];
        let redirect = reg(json!({
            "id": "urn:r1", "type": "ContextSourceRegistration", "mode": "redirect",
            "information": [{"entities": [{"type": "Vehicle", "idPattern": "urn:ngsi-ld:Vehicle:*"}]}],
            "operations": ["redirectionOps"], "endpoint": "http://cs1.example/"
        }));
        let exclusive = reg(json!({
            "id": "urn:r2", "type": "ContextSourceRegistration", "mode": "exclusive",
            "information": [{"entities": [{"type": "Vehicle", "id": "urn:ngsi-ld:Vehicle:1"}], "propertyNames": ["speed"]}],
            "operations": ["updateOps"], "endpoint": "http://cs2.example"
        }));
        let auxiliary = reg(json!({
            "id": "urn:r3", "type": "ContextSourceRegistration", "mode": "auxiliary",
            "information": [{"entities": [{"type": "Vehicle"}]}],
            "endpoint": "http://cs3.example"
        }));
        let all = [redirect, exclusive, auxiliary];
        let ids = |ts: Vec<Target>| ts.iter().map(|t| t.id().to_owned()).collect::<Vec<_>>();
        let about = |attrs: Option<&'static [String]>| About {
            id: Some("urn:ngsi-ld:Vehicle:1"),
            types: None,
            attrs,
        };
        // Creating goes to the redirect (its pattern is a search).
        let create = About {
            types: Some(&vehicle),
            ..about(None)
        };
        assert_eq!(ids(targets(&all, "createEntity", &create)), ["urn:r1"]);
        // Updating speed: also the exclusive holder of speed, with its attributes.
        let speed: &'static [String] = Box::leak(speed.into_boxed_slice());
        let t = targets(&all, "updateAttrs", &about(Some(speed)));
        assert_eq!(ids(t.clone()), ["urn:r1", "urn:r2"]);
        assert_eq!(t[1].attrs.as_deref(), Some(speed));
        assert_eq!(t[1].endpoint(), "http://cs2.example");
        assert_eq!(t[0].endpoint(), "http://cs1.example");
        let colour: &'static [String] = Box::leak(colour.into_boxed_slice());
        assert_eq!(
            ids(targets(&all, "updateAttrs", &about(Some(colour)))),
            ["urn:r1"]
        );
        // Reading: the auxiliary too (federationOps by default), not the
        // exclusive (updateOps only).
        assert_eq!(
            ids(targets(&all, "retrieveEntity", &about(None))),
            ["urn:r1", "urn:r3"]
        );
        // Another entity type: none.
        let building = vec![ctx.expand("Building")];
        let other = About {
            types: Some(&building),
            ..about(None)
        };
        assert!(targets(&all, "retrieveEntity", &other).is_empty());
    }
}
