//! A tenant's secondary indexes, kept beside its entities in memory: the
//! entities of each type, a grid of the places of each GeoProperty, and
//! the numbers of each attribute in order (for `q`'s ranges).
//! A query asks them for the entities that *may* match (a superset, in
//! creation order); the exact filter then decides. Entities are named by
//! their creation sequence number.

use crate::broker::Filter;
use crate::entity::Entity;
use crate::geo::{GeoQuery, GeoRel, Geometry, P};
use crate::jsonld::Context;
use crate::query::{num_key, NumKey, NumRange};
use std::collections::{BTreeSet, HashMap};

/// The side of a grid cell, in degrees (about 1.1 km of latitude).
const CELL: f64 = 0.01;
/// A geometry whose box spans more cells than this is kept apart and
/// checked by every geo-query.
const MAX_CELLS_PER_GEOMETRY: i64 = 256;
/// A query box spanning more cells than this is answered by a scan.
const MAX_CELLS_PER_QUERY: i64 = 40_000;

type Cell = (i32, i32);

#[derive(Default)]
struct Grid {
    /// Cell → the entities with a geometry there, and the point if the
    /// geometry is one (a point is checked against the query here, so
    /// that only those that meet it are read).
    cells: HashMap<Cell, Vec<(i64, Option<P>)>>,
    /// Geometries too large for cells.
    large: BTreeSet<i64>,
}

/// An attribute's numbers: (number's key, entity) in order, and the
/// entities with a value only the evaluator can compare (`NumKey`).
#[derive(Default)]
struct Numbers {
    keys: BTreeSet<(u64, i64)>,
    unknown: BTreeSet<i64>,
}

/// A number's key: ordered as the number (0 and -0 alike).
fn num_order(v: f64) -> u64 {
    let b = (v + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

#[derive(Default)]
pub struct Indexes {
    /// Type IRI → entities of that type.
    types: HashMap<String, BTreeSet<i64>>,
    /// GeoProperty IRI → where its instances are.
    geo: HashMap<String, Grid>,
    /// Attribute IRI → its numbers.
    numbers: HashMap<String, Numbers>,
}

/// The numeric key of each of an entity's attributes. An attribute of
/// several instances is `Unknown`: each term of a query may be met by
/// another instance (`t>3;t<3` of instances 10 and 2), so the terms'
/// ranges may be intersected only for one value.
fn num_keys(e: &Entity) -> impl Iterator<Item = (&String, NumKey)> {
    e.attrs
        .iter()
        .filter_map(|(attr, instances)| match &instances[..] {
            [] => None,
            [one] => Some((attr, num_key(one))),
            _ => Some((attr, NumKey::Unknown)),
        })
}

/// The cells a box covers, if they are few enough.
fn cells_of(((x0, y0), (x1, y1)): ((f64, f64), (f64, f64)), max: i64) -> Option<Vec<Cell>> {
    if ![x0, y0, x1, y1].iter().all(|v| v.is_finite()) {
        return None;
    }
    let c = |v: f64| (v / CELL).floor().clamp(-1e8, 1e8) as i64;
    let (cx0, cy0, cx1, cy1) = (c(x0), c(y0), c(x1), c(y1));
    if (cx1 - cx0 + 1).saturating_mul(cy1 - cy0 + 1) > max {
        return None;
    }
    let mut out = Vec::new();
    for x in cx0..=cx1 {
        for y in cy0..=cy1 {
            out.push((x as i32, y as i32));
        }
    }
    Some(out)
}

/// The geometries among an entity's attribute values, by attribute.
fn geometries(e: &Entity) -> impl Iterator<Item = (&String, Geometry)> {
    e.attrs.iter().flat_map(|(attr, instances)| {
        instances.iter().filter_map(move |i| {
            // What a geo-query would read: any value that is a geometry.
            let v = i.get("value").filter(|v| v.get("coordinates").is_some())?;
            Geometry::from_geojson(v).map(|g| (attr, g))
        })
    })
}

impl Indexes {
    pub fn insert(&mut self, seq: i64, e: &Entity) {
        for t in &e.types {
            self.types.entry(t.clone()).or_default().insert(seq);
        }
        for (attr, g) in geometries(e) {
            let grid = self.geo.entry(attr.clone()).or_default();
            match cells_of(g.bbox(), MAX_CELLS_PER_GEOMETRY) {
                Some(cells) => {
                    for cell in cells {
                        let point = match &g {
                            Geometry::Point(p) => Some(*p),
                            _ => None,
                        };
                        grid.cells.entry(cell).or_default().push((seq, point));
                    }
                }
                None => {
                    grid.large.insert(seq);
                }
            }
        }
        for (attr, key) in num_keys(e) {
            match key {
                NumKey::Num(v) => {
                    let n = self.numbers.entry(attr.clone()).or_default();
                    n.keys.insert((num_order(v), seq));
                }
                NumKey::Unknown => {
                    let n = self.numbers.entry(attr.clone()).or_default();
                    n.unknown.insert(seq);
                }
                NumKey::Never => {}
            }
        }
    }

    /// Forgets `e`, as it was inserted under `seq`.
    pub fn remove(&mut self, seq: i64, e: &Entity) {
        for t in &e.types {
            if let Some(set) = self.types.get_mut(t) {
                set.remove(&seq);
                if set.is_empty() {
                    self.types.remove(t);
                }
            }
        }
        for (attr, g) in geometries(e) {
            let Some(grid) = self.geo.get_mut(attr) else {
                continue;
            };
            grid.large.remove(&seq);
            for cell in cells_of(g.bbox(), MAX_CELLS_PER_GEOMETRY).unwrap_or_default() {
                if let Some(list) = grid.cells.get_mut(&cell) {
                    list.retain(|(s, _)| *s != seq);
                    if list.is_empty() {
                        grid.cells.remove(&cell);
                    }
                }
            }
        }
        for (attr, key) in num_keys(e) {
            let Some(n) = self.numbers.get_mut(attr) else {
                continue;
            };
            match key {
                NumKey::Num(v) => {
                    n.keys.remove(&(num_order(v), seq));
                }
                NumKey::Unknown => {
                    n.unknown.remove(&seq);
                }
                NumKey::Never => {}
            }
            if n.keys.is_empty() && n.unknown.is_empty() {
                self.numbers.remove(attr);
            }
        }
    }

    /// The entities that may match `filter`, in creation order; `None`
    /// when no index narrows it enough to beat a scan of `total`.
    /// (A place is narrow; the exact filter checks the types of what it
    /// gives. A type is used only if few of the entities have it.)
    pub fn candidates(&self, filter: &Filter, ctx: &Context, total: usize) -> Option<Vec<i64>> {
        if let Some(places) = filter.geo.as_ref().and_then(|g| self.near(g)) {
            return Some(places);
        }
        let in_ranges = filter.q.as_ref().and_then(|q| {
            q.numeric_ranges(ctx)
                .iter()
                .filter_map(|(attr, range)| self.in_range(attr, *range, total / 8))
                .min_by_key(Vec::len)
        });
        if in_ranges.is_some() {
            return in_ranges;
        }
        let types = filter.types.as_ref()?;
        self.of_types(&types.0, total / 8)
    }

    /// Entities with a number of `attr` in `range` (or a value only the
    /// evaluator can compare), if there are at most `at_most`.
    fn in_range(&self, attr: &str, (lo, hi): NumRange, at_most: usize) -> Option<Vec<i64>> {
        use std::ops::Bound::*;
        let Some(n) = self.numbers.get(attr) else {
            return Some(Vec::new());
        };
        let lo = match lo {
            Included(v) => Included((num_order(v), i64::MIN)),
            Excluded(v) => Excluded((num_order(v), i64::MAX)),
            Unbounded => Unbounded,
        };
        let hi = match hi {
            Included(v) => Included((num_order(v), i64::MAX)),
            Excluded(v) => Excluded((num_order(v), i64::MIN)),
            Unbounded => Unbounded,
        };
        if n.unknown.len() > at_most {
            return None;
        }
        let mut out: Vec<i64> = n.unknown.iter().copied().collect();
        let empty = match (lo, hi) {
            (Included(a) | Excluded(a), Included(b) | Excluded(b)) => a > b,
            _ => false,
        };
        if !empty {
            for (_, seq) in n.keys.range((lo, hi)) {
                if out.len() >= at_most {
                    return None;
                }
                out.push(*seq);
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// Entities of an OR of ANDs of types (each AND's rarest type's), if
    /// there are at most `at_most`.
    fn of_types(&self, ors: &[Vec<String>], at_most: usize) -> Option<Vec<i64>> {
        if ors.is_empty() || ors.iter().any(Vec::is_empty) {
            return None;
        }
        let sets: Vec<Option<&BTreeSet<i64>>> = ors
            .iter()
            .map(|ands| {
                if ands.iter().all(|t| self.types.contains_key(t)) {
                    ands.iter()
                        .filter_map(|t| self.types.get(t))
                        .min_by_key(|s| s.len())
                } else {
                    None
                }
            })
            .collect();
        let size: usize = sets.iter().flatten().map(|s| s.len()).sum();
        if size > at_most {
            return None;
        }
        let mut out: Vec<i64> = sets.into_iter().flatten().flatten().copied().collect();
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// Entities whose geometry's box meets the query's (grown by the
    /// distance for `near`); `None` for relations no box bounds
    /// (`disjoint`, `near;minDistance`) or boxes too wide to be worth it.
    fn near(&self, q: &GeoQuery) -> Option<Vec<i64>> {
        let ((x0, y0), (x1, y1)) = q.geometry.bbox();
        let (dx, dy) = match q.rel {
            GeoRel::Near {
                max: Some(max),
                min: None,
            } => {
                let widest = y0.abs().max(y1.abs()).min(89.0);
                let dlat = max / 110_000.0;
                let dlon = max / (111_320.0 * widest.to_radians().cos()).max(1.0);
                // Near the poles a box in degrees is no bound at all.
                if y0.abs().max(y1.abs()) + dlat >= 89.0 {
                    return None;
                }
                (dlon, dlat)
            }
            GeoRel::Near { .. } | GeoRel::Disjoint => return None,
            _ => (0.0, 0.0),
        };
        let grid = match self.geo.get(&q.property) {
            Some(g) => g,
            None => return Some(Vec::new()),
        };
        let cells = cells_of(
            ((x0 - dx, y0 - dy), (x1 + dx, y1 + dy)),
            MAX_CELLS_PER_QUERY,
        )?;
        let mut out: Vec<i64> = grid.large.iter().copied().collect();
        for cell in cells {
            if let Some(list) = grid.cells.get(&cell) {
                out.extend(
                    list.iter()
                        .filter(|(_, p)| p.is_none_or(|p| q.matches(&Geometry::Point(p))))
                        .map(|(seq, _)| *seq),
                );
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::TypeExpr;
    use serde_json::json;

    fn sensor(id: &str, ty: &str, lon: f64, lat: f64) -> Entity {
        serde_json::from_value(json!({
            "id": id, "type": [ty], "createdAt": 0, "modifiedAt": 0,
            "attrs": {"https://uri.etsi.org/ngsi-ld/location": [
                {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}
            ]}
        }))
        .unwrap()
    }

    fn near(lon: f64, lat: f64, max: f64) -> Filter {
        Filter {
            geo: Some(GeoQuery {
                rel: GeoRel::parse(&format!("near;maxDistance=={max}")).unwrap(),
                geometry: Geometry::from_geojson(
                    &json!({"type": "Point", "coordinates": [lon, lat]}),
                )
                .unwrap(),
                property: "https://uri.etsi.org/ngsi-ld/location".into(),
            }),
            ..Filter::default()
        }
    }

    #[test]
    fn candidates_are_a_superset_of_the_matches_in_creation_order() {
        let ctx = Context::core();
        let mut ix = Indexes::default();
        let a = sensor("urn:a", "T", 126.9780, 37.5665);
        let b = sensor("urn:b", "U", 126.9790, 37.5670);
        let c = sensor("urn:c", "T", 127.2, 37.3);
        for (s, e) in [(3, &a), (1, &b), (2, &c)] {
            ix.insert(s, e);
        }
        // Both near points, in sequence order; not the far one.
        assert_eq!(
            ix.candidates(&near(126.978, 37.5665, 500.0), &ctx, 3),
            Some(vec![1, 3])
        );
        // A cell boundary between the point and the reference.
        assert_eq!(
            ix.candidates(&near(126.97999, 37.5665, 200.0), &ctx, 3),
            Some(vec![1, 3])
        );
        // Points are checked in the grid: one 176 m away is not near
        // enough for 150 m.
        assert_eq!(
            ix.candidates(&near(126.97999, 37.5665, 150.0), &ctx, 3),
            Some(vec![1])
        );
        // A type: only if few have it (here, of 100 entities).
        let t = Filter {
            types: Some(TypeExpr(vec![vec!["T".into()]])),
            ..Filter::default()
        };
        assert_eq!(ix.candidates(&t, &ctx, 100), Some(vec![2, 3]));
        assert_eq!(ix.candidates(&t, &ctx, 3), None, "most have it: a scan");
        ix.remove(3, &a);
        assert_eq!(ix.candidates(&t, &ctx, 100), Some(vec![2]));
        assert_eq!(
            ix.candidates(&near(126.978, 37.5665, 500.0), &ctx, 3),
            Some(vec![1])
        );
        // Relations no box bounds scan.
        let mut far = near(0.0, 0.0, 1.0);
        far.geo.as_mut().unwrap().rel = GeoRel::Disjoint;
        assert_eq!(ix.candidates(&far, &ctx, 3), None);
        // Nothing has the property: nothing can match.
        far.geo.as_mut().unwrap().rel = GeoRel::Within;
        far.geo.as_mut().unwrap().property = "urn:other".into();
        assert_eq!(ix.candidates(&far, &ctx, 3), Some(vec![]));
    }

    /// An entity with attribute `t` of these instances.
    fn with_t(seq: i64, values: &[serde_json::Value]) -> Entity {
        let instances: Vec<serde_json::Value> = values
            .iter()
            .enumerate()
            .map(|(n, v)| match (n, v) {
                (_, v) if v.get("type").is_some() => v.clone(),
                (0, v) => json!({"type": "Property", "value": v}),
                (n, v) => {
                    json!({"type": "Property", "value": v, "datasetId": format!("urn:d:{n}")})
                }
            })
            .collect();
        serde_json::from_value(json!({
            "id": format!("urn:e:{seq}"), "type": ["T"], "createdAt": 0, "modifiedAt": 0,
            "attrs": {"https://uri.etsi.org/ngsi-ld/default-context/t": instances}
        }))
        .unwrap()
    }

    #[test]
    fn numeric_ranges_give_every_entity_q_matches_in_creation_order() {
        let ctx = Context::core();
        let values = [
            vec![json!(1)],
            vec![json!(-0.0)],
            vec![json!(0)],
            vec![json!(2.5)],
            vec![json!(3)],
            vec![json!("3")],
            vec![json!(true)],
            vec![json!([1, 7])],
            vec![json!({"@type": "xsd:int", "@value": 4})],
            vec![json!(10), json!(2)],
            vec![json!({"type": "Relationship", "object": "urn:x"})],
            vec![json!({"type": "JsonProperty", "json": 3})],
            vec![json!(-5e300)],
            vec![json!(7)],
        ];
        let mut ix = Indexes::default();
        let mut all = Vec::new();
        // Created in one order, indexed in another; one replaced.
        for (n, v) in values.iter().enumerate().rev() {
            let e = with_t(n as i64 + 1, v);
            ix.insert(n as i64 + 1, &e);
            all.push((n as i64 + 1, e));
        }
        let old = with_t(14, &[json!(100)]);
        ix.remove(14, &all[0].1);
        ix.insert(14, &old);
        all[0].1 = old;
        all.sort_by_key(|(s, _)| *s);
        for q in [
            "t>=1;t<3",
            "t>0",
            "t>=0",
            "t<=0",
            "t<0",
            "t==3",
            "t==0",
            "t==2..7",
            "t>3;t<3",
            "t>=3;t<=3",
            "t>3;t<=3",
            "t>=2;(t<5|t>50)",
            "t>=2;u<1",
            "t<-1e300",
            "t>99",
            "t==1..0",
        ] {
            let filter = Filter {
                q: Some(crate::query::parse_q(q).unwrap()),
                ..Filter::default()
            };
            let matches: Vec<i64> = all
                .iter()
                .filter(|(_, e)| filter.matches(e, &ctx))
                .map(|(s, _)| *s)
                .collect();
            let Some(candidates) = ix.candidates(&filter, &ctx, 1000) else {
                panic!("{q}: no candidates from the index");
            };
            assert!(candidates.windows(2).all(|w| w[0] < w[1]), "{q}: in order");
            let kept: Vec<i64> = candidates
                .into_iter()
                .filter(|s| matches.contains(s))
                .collect();
            assert_eq!(kept, matches, "{q}: every match is a candidate");
        }
        // A wide range is not worth the index: a scan.
        let wide = Filter {
            q: Some(crate::query::parse_q("t>-1e308").unwrap()),
            ..Filter::default()
        };
        assert_eq!(ix.candidates(&wide, &ctx, 8), None);
    }
}
