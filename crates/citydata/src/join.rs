//! Linked entity retrieval (CIM 009 §4.5.23): the entities that the
//! relationships of a query's or a retrieval's entities link to, to
//! `joinLevel` hops — inline, as the relationship's `entity` (in
//! keyValues, in place of the object's URI), or flat, beside the linking
//! entities. Only entities of the same tenant are followed; a
//! relationship to an entity that is not there stays as it is.
//!
//! A projection (`pick`/`omit`) applies to the linking entities; its
//! `rel{…}` terms project the entities `rel` links to (a linked entity
//! without one is shown whole), and a relationship that is not shown is
//! not followed.

use crate::entity::{render, Entity, Format, Render};
use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use crate::query::Projected;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    Flat,
    Inline,
}

/// What to join, and how far.
#[derive(Debug, Clone)]
pub struct Linking {
    pub join: Join,
    /// Hops from a linking entity (≥ 1).
    pub level: usize,
    pub pick: Option<Vec<Projected>>,
    pub omit: Option<Vec<Projected>>,
}

/// The most hops a request may ask for: each hop may multiply what is
/// read, and a city's relationships are rarely deeper.
pub const MAX_LEVEL: usize = 16;

/// The most linked entities one answer shows: inline, an entity linked
/// from several places is shown in each, so a few relationships an
/// entity over many hops would otherwise multiply without bound.
pub const MAX_LINKED: usize = 10_000;

impl Linking {
    /// From `join`, `joinLevel` (1 unless given) and the projections;
    /// `None` without `join`. A projection of linked entities without
    /// `join` is refused (§5.7.1.4).
    pub fn from_params(
        join: Option<&str>,
        level: Option<&str>,
        pick: Option<Vec<Projected>>,
        omit: Option<Vec<Projected>>,
    ) -> Result<Option<Linking>> {
        let nested = |p: &Option<Vec<Projected>>| {
            p.as_ref()
                .is_some_and(|l| l.iter().any(|t| t.linked.is_some()))
        };
        let join = match join {
            None => {
                if nested(&pick) || nested(&omit) {
                    return Err(NgsiError::bad_data(
                        "a projection of linked entities (rel{…}) needs join",
                    ));
                }
                return Ok(None);
            }
            Some("flat") => Join::Flat,
            Some("inline") => Join::Inline,
            Some(other) => {
                return Err(NgsiError::bad_data(format!(
                    "join: {other:?} is flat or inline"
                )))
            }
        };
        let level = match level {
            None => 1,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_LEVEL).contains(&n) => n,
                _ => {
                    return Err(NgsiError::bad_data(format!(
                        "joinLevel: {l:?} is a whole number from 1 to {MAX_LEVEL}"
                    )))
                }
            },
        };
        Ok(Some(Linking {
            join,
            level,
            pick,
            omit,
        }))
    }
}

/// The names of a projection's own members, as `render` reads them
/// (`rel{…}` in an `omit` does not omit `rel`: it projects what `rel`
/// links to).
pub fn own_names(list: &[Projected], omit: bool, ctx: &Context) -> Vec<String> {
    list.iter()
        .filter(|t| !(omit && t.linked.is_some()))
        .map(|t| match t.name.as_str() {
            "id" | "type" | "scope" | "createdAt" | "modifiedAt" => t.name.clone(),
            n => ctx.expand(n),
        })
        .collect()
}

/// The projection `rel{…}` gives the entities `iri` links to.
fn nested<'a>(list: Option<&'a [Projected]>, iri: &str, ctx: &Context) -> Option<&'a [Projected]> {
    list?
        .iter()
        .find(|t| t.linked.is_some() && ctx.expand(&t.name) == iri)
        .and_then(|t| t.linked.as_deref())
}

/// Where a traversal is: the entities it reads, how entities are shown,
/// and what it has gathered for a flat answer.
struct Walk<'a> {
    get: &'a dyn Fn(&str) -> Option<Arc<Entity>>,
    ctx: &'a Context,
    format: Format,
    sys_attrs: bool,
    lang: Option<String>,
    join: Join,
    /// Entities in the answer already (flat: each once).
    seen: HashSet<String>,
    flat: Vec<Value>,
    /// Linked entities it may still show (`MAX_LINKED`), and whether it
    /// needed more.
    budget: usize,
    exceeded: bool,
}

impl Walk<'_> {
    /// Follows the relationships of `e`, shown as `shown`, `left` hops.
    /// `path`: the entities inlined above this one (a loop stops there).
    fn follow(
        &mut self,
        e: &Entity,
        shown: &mut Map<String, Value>,
        pick: Option<&[Projected]>,
        omit: Option<&[Projected]>,
        left: usize,
        path: &mut Vec<String>,
    ) {
        if left == 0 {
            return;
        }
        for (iri, instances) in &e.attrs {
            let key = self.ctx.compact(iri);
            if !shown.contains_key(&key) {
                continue;
            }
            let sub_pick = nested(pick, iri, self.ctx);
            let sub_omit = nested(omit, iri, self.ctx);
            let targets: Vec<&str> = instances
                .iter()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some("Relationship"))
                .filter_map(|i| i.get("object").and_then(Value::as_str))
                .collect();
            for target in targets {
                let Some(linked) = (self.get)(target) else {
                    continue;
                };
                if self.budget == 0 {
                    self.exceeded = true;
                    return;
                }
                self.budget -= 1;
                let r = Render {
                    format: self.format,
                    sys_attrs: self.sys_attrs,
                    pick: sub_pick.map(|p| own_names(p, false, self.ctx)),
                    omit: sub_omit.map(|o| own_names(o, true, self.ctx)),
                    lang: self.lang.clone(),
                    ..Render::default()
                };
                let mut rendered = render(&linked, self.ctx, &r);
                match self.join {
                    Join::Inline => {
                        if path.contains(&linked.id) {
                            continue;
                        }
                        path.push(linked.id.clone());
                        self.follow(&linked, &mut rendered, sub_pick, sub_omit, left - 1, path);
                        path.pop();
                        if let Some(v) = shown.get_mut(&key) {
                            attach(v, target, rendered, self.format);
                        }
                    }
                    Join::Flat => {
                        if self.seen.insert(linked.id.clone()) {
                            // In the order met: this one before those it
                            // links to.
                            let at = self.flat.len();
                            self.flat.push(Value::Null);
                            self.follow(&linked, &mut rendered, sub_pick, sub_omit, left - 1, path);
                            self.flat[at] = Value::Object(rendered);
                        }
                    }
                }
            }
        }
    }
}

/// Puts a linked entity into the relationship that names it: as its
/// `entity`, or in keyValues in place of its URI.
fn attach(shown: &mut Value, target: &str, linked: Map<String, Value>, format: Format) {
    match shown {
        Value::Object(o) if o.get("object").and_then(Value::as_str) == Some(target) => {
            o.insert("entity".into(), Value::Object(linked));
        }
        Value::String(s) if format == Format::KeyValues && s == target => {
            *shown = Value::Object(linked);
        }
        Value::Array(items) => {
            if let Some(item) = items.iter_mut().find(|i| match i {
                Value::Object(o) => o.get("object").and_then(Value::as_str) == Some(target),
                Value::String(s) => format == Format::KeyValues && s == target,
                _ => false,
            }) {
                attach(item, target, linked, format);
            }
        }
        _ => {}
    }
}

/// The linking entities as shown (inline joined), and the linked ones
/// of a flat join.
pub type Joined = (Vec<Map<String, Value>>, Vec<Value>);

/// Shows `entities` (as `shown`, rendered by `r`) with what they link
/// to: the linking entities, inline joined, and for a flat join the
/// linked ones to put after them (each once, none of the linking ones).
/// More than `MAX_LINKED` linked entities is refused.
pub fn join(
    entities: &[Arc<Entity>],
    mut shown: Vec<Map<String, Value>>,
    ctx: &Context,
    r: &Render,
    l: &Linking,
    get: &dyn Fn(&str) -> Option<Arc<Entity>>,
) -> Result<Joined> {
    let mut walk = Walk {
        get,
        ctx,
        format: r.format,
        sys_attrs: r.sys_attrs,
        lang: r.lang.clone(),
        join: l.join,
        seen: entities.iter().map(|e| e.id.clone()).collect(),
        flat: Vec::new(),
        budget: MAX_LINKED,
        exceeded: false,
    };
    for (e, s) in entities.iter().zip(shown.iter_mut()) {
        let mut path = vec![e.id.clone()];
        walk.follow(
            e,
            s,
            l.pick.as_deref(),
            l.omit.as_deref(),
            l.level,
            &mut path,
        );
        if walk.exceeded {
            return Err(NgsiError::bad_data(format!(
                "the join links more than {MAX_LINKED} entities: ask for a lower joinLevel or fewer entities"
            )));
        }
    }
    Ok((shown, walk.flat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::parse_entity;
    use crate::query::parse_projection_tree;
    use serde_json::json;
    use std::collections::HashMap;

    fn store() -> HashMap<String, Arc<Entity>> {
        let ctx = Context::core();
        [
            json!({"id": "urn:b:1", "type": "Building", "name": {"type": "Property", "value": "Tower"},
                   "locatedAt": {"type": "Relationship", "object": "urn:c:1"},
                   "owner": {"type": "Relationship", "object": "urn:nobody"}}),
            json!({"id": "urn:c:1", "type": "City", "name": {"type": "Property", "value": "Paris"},
                   "isInCountry": {"type": "Relationship", "object": "urn:k:1"}}),
            json!({"id": "urn:k:1", "type": "Country", "name": {"type": "Property", "value": "France"},
                   "capital": {"type": "Relationship", "object": "urn:c:1"}}),
        ]
        .iter()
        .map(|v| {
            let e = parse_entity(v, &ctx, 0).unwrap();
            (e.id.clone(), Arc::new(e))
        })
        .collect()
    }

    fn joined(
        how: &str,
        level: Option<&str>,
        pick: Option<&str>,
        omit: Option<&str>,
        format: Format,
    ) -> (Value, Vec<Value>) {
        let all = store();
        let ctx = Context::core();
        let pick = pick.map(|p| parse_projection_tree(p).unwrap());
        let omit = omit.map(|p| parse_projection_tree(p).unwrap());
        let l = Linking::from_params(Some(how), level, pick, omit)
            .unwrap()
            .unwrap();
        let r = Render {
            format,
            pick: l.pick.as_deref().map(|p| own_names(p, false, &ctx)),
            omit: l.omit.as_deref().map(|o| own_names(o, true, &ctx)),
            ..Render::default()
        };
        let b = all["urn:b:1"].clone();
        let shown = vec![render(&b, &ctx, &r)];
        let get = |id: &str| all.get(id).cloned();
        let (mut main, flat) = join(&[b], shown, &ctx, &r, &l, &get).unwrap();
        (Value::Object(main.remove(0)), flat)
    }

    #[test]
    fn inline_puts_the_linked_entity_in_the_relationship_to_the_level_asked() {
        let (b, flat) = joined("inline", None, None, None, Format::Normalized);
        assert!(flat.is_empty());
        assert_eq!(b["locatedAt"]["entity"]["name"]["value"], "Paris");
        // One hop: the City's own relationship stays as it is.
        assert!(b["locatedAt"]["entity"]["isInCountry"]
            .get("entity")
            .is_none());
        // A relationship to an entity that is not there stays as it is.
        assert_eq!(
            b["owner"],
            json!({"type": "Relationship", "object": "urn:nobody"})
        );
        let (b, _) = joined("inline", Some("3"), None, None, Format::Normalized);
        let country = &b["locatedAt"]["entity"]["isInCountry"]["entity"];
        assert_eq!(country["name"]["value"], "France");
        // The Country's capital is the City above it: a loop, not followed.
        assert!(country["capital"].get("entity").is_none());
        let (b, _) = joined("inline", None, None, None, Format::KeyValues);
        assert_eq!(b["locatedAt"]["id"], "urn:c:1");
        assert_eq!(b["locatedAt"]["name"], "Paris");
        assert_eq!(b["owner"], "urn:nobody");
    }

    #[test]
    fn a_join_that_would_multiply_without_bound_is_refused() {
        // Each entity links twice to the next: inline, 2^16 paths.
        let ctx = Context::core();
        let all: HashMap<String, Arc<Entity>> = (0..20)
            .map(|n| {
                let next = format!("urn:n:{}", n + 1);
                let e = parse_entity(
                    &json!({"id": format!("urn:n:{n}"), "type": "Node",
                        "a": {"type": "Relationship", "object": next},
                        "b": {"type": "Relationship", "object": next}}),
                    &ctx,
                    0,
                )
                .unwrap();
                (e.id.clone(), Arc::new(e))
            })
            .collect();
        let get = |id: &str| all.get(id).cloned();
        let first = all["urn:n:0"].clone();
        let r = Render::default();
        let deep = Linking::from_params(Some("inline"), Some("16"), None, None)
            .unwrap()
            .unwrap();
        let shown = vec![render(&first, &ctx, &r)];
        let err = join(std::slice::from_ref(&first), shown, &ctx, &r, &deep, &get).unwrap_err();
        assert_eq!(err.kind.status(), 400);
        // Flat, each is shown once: 16 hops are 16 entities.
        let flat = Linking {
            join: Join::Flat,
            ..deep
        };
        let shown = vec![render(&first, &ctx, &r)];
        let (_, linked) = join(&[first], shown, &ctx, &r, &flat, &get).unwrap();
        assert_eq!(linked.len(), 16);
    }

    #[test]
    fn flat_puts_each_linked_entity_once_after_the_linking_ones() {
        let (b, flat) = joined("flat", Some("5"), None, None, Format::KeyValues);
        assert_eq!(b["locatedAt"], "urn:c:1");
        let ids: Vec<&str> = flat.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["urn:c:1", "urn:k:1"]);
    }

    #[test]
    fn projections_of_linked_entities_project_them_and_bound_the_walk() {
        // The City shows id and name only; its isInCountry is not shown,
        // so the Country is not read.
        let (b, flat) = joined(
            "flat",
            Some("2"),
            Some("id,locatedAt{id,name}"),
            None,
            Format::Normalized,
        );
        assert_eq!(b.as_object().unwrap().len(), 2);
        assert_eq!(flat.len(), 1);
        assert_eq!(
            flat[0].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["id", "name"]
        );
        // omit rel{…} keeps rel and omits in what it links to; the
        // entity's own omit does not reach the linked ones.
        let (b, flat) = joined(
            "flat",
            Some("2"),
            None,
            Some("name,locatedAt{name}"),
            Format::Normalized,
        );
        assert!(b.get("name").is_none() && b.get("locatedAt").is_some());
        assert!(flat[0].get("name").is_none() && flat[0].get("isInCountry").is_some());
        assert_eq!(flat[1]["name"]["value"], "France");
        // Linked projections need a join.
        let deep = parse_projection_tree("locatedAt{name}").unwrap();
        assert!(Linking::from_params(None, None, Some(deep), None).is_err());
        assert!(Linking::from_params(Some("sideways"), None, None, None).is_err());
        assert!(Linking::from_params(Some("flat"), Some("0"), None, None).is_err());
    }
}
