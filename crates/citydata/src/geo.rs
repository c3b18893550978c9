//! GeoJSON geometries and the geo-query relations of CIM 009 §4.10,
//! decided exactly in code on both backends: topology in the plane of
//! longitude and latitude (as PostGIS' `geometry` type does), distances
//! on the sphere (haversine, metres).

use serde_json::Value;

pub type P = (f64, f64);

#[derive(Debug, Clone, PartialEq)]
pub enum Geometry {
    Point(P),
    MultiPoint(Vec<P>),
    LineString(Vec<P>),
    MultiLineString(Vec<Vec<P>>),
    /// Rings: the outer, then holes; each closed.
    Polygon(Vec<Vec<P>>),
    MultiPolygon(Vec<Vec<Vec<P>>>),
}

fn point(v: &Value) -> Option<P> {
    let a = v.as_array()?;
    if a.len() < 2 || a.len() > 3 {
        return None;
    }
    let (x, y) = (a[0].as_f64()?, a[1].as_f64()?);
    if !(-180.0..=180.0).contains(&x) || !(-90.0..=90.0).contains(&y) {
        return None;
    }
    Some((x, y))
}

fn points(v: &Value, min: usize) -> Option<Vec<P>> {
    let pts = v
        .as_array()?
        .iter()
        .map(point)
        .collect::<Option<Vec<_>>>()?;
    (pts.len() >= min).then_some(pts)
}

fn rings(v: &Value) -> Option<Vec<Vec<P>>> {
    let rings = v
        .as_array()?
        .iter()
        .map(|r| points(r, 4).filter(|r| r.first() == r.last()))
        .collect::<Option<Vec<_>>>()?;
    (!rings.is_empty()).then_some(rings)
}

impl Geometry {
    /// A GeoJSON geometry object.
    pub fn from_geojson(v: &Value) -> Option<Geometry> {
        let t = v.get("type")?.as_str()?;
        Self::from_parts(t, v.get("coordinates")?)
    }

    /// A geometry from its type and coordinates (as a query gives them).
    pub fn from_parts(t: &str, c: &Value) -> Option<Geometry> {
        Some(match t {
            "Point" => Geometry::Point(point(c)?),
            "MultiPoint" => Geometry::MultiPoint(points(c, 1)?),
            "LineString" => Geometry::LineString(points(c, 2)?),
            "MultiLineString" => Geometry::MultiLineString(
                c.as_array()?
                    .iter()
                    .map(|l| points(l, 2))
                    .collect::<Option<_>>()?,
            ),
            "Polygon" => Geometry::Polygon(rings(c)?),
            "MultiPolygon" => {
                Geometry::MultiPolygon(c.as_array()?.iter().map(rings).collect::<Option<_>>()?)
            }
            _ => return None,
        })
    }

    fn dimension(&self) -> u8 {
        match self {
            Geometry::Point(_) | Geometry::MultiPoint(_) => 0,
            Geometry::LineString(_) | Geometry::MultiLineString(_) => 1,
            _ => 2,
        }
    }

    fn vertices(&self) -> Vec<P> {
        match self {
            Geometry::Point(p) => vec![*p],
            Geometry::MultiPoint(ps) | Geometry::LineString(ps) => ps.clone(),
            Geometry::MultiLineString(ls) | Geometry::Polygon(ls) => ls.concat(),
            Geometry::MultiPolygon(ps) => ps.iter().flat_map(|p| p.concat()).collect(),
        }
    }

    fn segments(&self) -> Vec<(P, P)> {
        let of = |l: &Vec<P>| l.windows(2).map(|w| (w[0], w[1])).collect::<Vec<_>>();
        match self {
            Geometry::Point(_) | Geometry::MultiPoint(_) => Vec::new(),
            Geometry::LineString(l) => of(l),
            Geometry::MultiLineString(ls) | Geometry::Polygon(ls) => {
                ls.iter().flat_map(of).collect()
            }
            Geometry::MultiPolygon(ps) => ps.iter().flatten().flat_map(of).collect(),
        }
    }

    fn polygons(&self) -> Vec<&Vec<Vec<P>>> {
        match self {
            Geometry::Polygon(p) => vec![p],
            Geometry::MultiPolygon(ps) => ps.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// Is `p` in this geometry (interior or boundary)?
    fn covers_point(&self, p: P) -> bool {
        match self {
            Geometry::Point(q) => *q == p,
            Geometry::MultiPoint(qs) => qs.contains(&p),
            _ => {
                self.segments().iter().any(|&(a, b)| on_segment(p, a, b))
                    || self.polygons().iter().any(|poly| in_polygon(p, poly))
            }
        }
    }

    /// Do the two share any point?
    pub fn intersects(&self, other: &Geometry) -> bool {
        let (sa, sb) = (self.segments(), other.segments());
        if sa.iter().any(|a| sb.iter().any(|b| segments_cross(*a, *b))) {
            return true;
        }
        self.vertices().iter().any(|p| other.covers_point(*p))
            || other.vertices().iter().any(|p| self.covers_point(*p))
    }

    /// Is every point of `self` in `other`?
    pub fn within(&self, other: &Geometry) -> bool {
        if !self.vertices().iter().all(|p| other.covers_point(*p)) {
            return false;
        }
        // A segment may leave a polygon between two vertices inside it.
        let (sa, sb) = (self.segments(), other.segments());
        let leaves = sa.iter().any(|a| {
            sb.iter().any(|b| proper_cross(*a, *b))
                || (!other.polygons().is_empty() && !other.covers_point(mid(*a)))
        });
        !leaves
    }

    pub fn equals(&self, other: &Geometry) -> bool {
        let norm = |g: &Geometry| {
            let mut v = g.vertices();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            v.dedup();
            v
        };
        self.dimension() == other.dimension() && norm(self) == norm(other)
    }

    pub fn overlaps(&self, other: &Geometry) -> bool {
        self.dimension() == other.dimension()
            && self.intersects(other)
            && !self.within(other)
            && !other.within(self)
    }

    /// The least distance between the two, in metres (0 if they meet).
    pub fn distance_m(&self, other: &Geometry) -> f64 {
        if let (Geometry::Point(a), Geometry::Point(b)) = (self, other) {
            return haversine(*a, *b);
        }
        if self.intersects(other) {
            return 0.0;
        }
        let mut best = f64::INFINITY;
        for (a, b) in [(self, other), (other, self)] {
            let bs = b.segments();
            for p in a.vertices() {
                for q in b.vertices() {
                    best = best.min(haversine(p, q));
                }
                for &(s, t) in &bs {
                    best = best.min(point_segment_m(p, s, t));
                }
            }
        }
        best
    }

    /// The bounding box: (min lon, min lat), (max lon, max lat).
    pub fn bbox(&self) -> (P, P) {
        let v = self.vertices();
        let mut lo = (f64::INFINITY, f64::INFINITY);
        let mut hi = (f64::NEG_INFINITY, f64::NEG_INFINITY);
        for (x, y) in v {
            lo = (lo.0.min(x), lo.1.min(y));
            hi = (hi.0.max(x), hi.1.max(y));
        }
        (lo, hi)
    }
}

fn mid((a, b): (P, P)) -> P {
    ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0)
}

fn cross(o: P, a: P, b: P) -> f64 {
    (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
}

fn on_segment(p: P, a: P, b: P) -> bool {
    cross(a, b, p).abs() <= 1e-12 * (1.0 + (b.0 - a.0).abs() + (b.1 - a.1).abs())
        && p.0 >= a.0.min(b.0) - 1e-12
        && p.0 <= a.0.max(b.0) + 1e-12
        && p.1 >= a.1.min(b.1) - 1e-12
        && p.1 <= a.1.max(b.1) + 1e-12
}

/// Do the segments share a point (touching counts)?
fn segments_cross((a, b): (P, P), (c, d): (P, P)) -> bool {
    proper_cross((a, b), (c, d))
        || on_segment(c, a, b)
        || on_segment(d, a, b)
        || on_segment(a, c, d)
        || on_segment(b, c, d)
}

/// Do the segments cross at a point interior to both?
fn proper_cross((a, b): (P, P), (c, d): (P, P)) -> bool {
    let (d1, d2) = (cross(c, d, a), cross(c, d, b));
    let (d3, d4) = (cross(a, b, c), cross(a, b, d));
    ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
}

/// Even-odd rule over the rings (holes excluded), boundary included.
fn in_polygon(p: P, rings: &[Vec<P>]) -> bool {
    if rings
        .iter()
        .any(|r| r.windows(2).any(|w| on_segment(p, w[0], w[1])))
    {
        return true;
    }
    let mut inside = false;
    for ring in rings {
        for w in ring.windows(2) {
            let (a, b) = (w[0], w[1]);
            if (a.1 > p.1) != (b.1 > p.1) && p.0 < (b.0 - a.0) * (p.1 - a.1) / (b.1 - a.1) + a.0 {
                inside = !inside;
            }
        }
    }
    inside
}

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two (lon, lat) points.
pub fn haversine(a: P, b: P) -> f64 {
    let (la1, la2) = (a.1.to_radians(), b.1.to_radians());
    let dla = la2 - la1;
    let dlo = (b.0 - a.0).to_radians();
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}

/// Distance from a point to a segment, in a local plane about the point.
fn point_segment_m(p: P, a: P, b: P) -> f64 {
    let k = p.1.to_radians().cos();
    let to = |q: P| ((q.0 - p.0) * k, q.1 - p.1);
    let (a, b) = (to(a), to(b));
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len = dx * dx + dy * dy;
    let t = if len == 0.0 {
        0.0
    } else {
        (-(a.0 * dx + a.1 * dy) / len).clamp(0.0, 1.0)
    };
    let c = (a.0 + t * dx, a.1 + t * dy);
    haversine(p, (p.0 + c.0 / k.max(1e-9), p.1 + c.1))
}

/// A geo-query (§4.10): the relation, the reference geometry, the
/// attribute it applies to.
#[derive(Debug, Clone)]
pub struct GeoQuery {
    pub rel: GeoRel,
    pub geometry: Geometry,
    /// The GeoProperty's IRI.
    pub property: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GeoRel {
    Near { max: Option<f64>, min: Option<f64> },
    Within,
    Contains,
    Intersects,
    Equals,
    Disjoint,
    Overlaps,
}

impl GeoRel {
    /// Parses `georel` (`near;maxDistance==N`, `within`, …).
    pub fn parse(s: &str) -> Option<GeoRel> {
        let mut parts = s.split(';');
        let head = parts.next()?;
        let rel = match head {
            "near" => {
                let modifier = parts.next()?;
                let (k, v) = modifier.split_once("==")?;
                let d: f64 = v
                    .parse()
                    .ok()
                    .filter(|d: &f64| d.is_finite() && *d >= 0.0)?;
                match k {
                    "maxDistance" => GeoRel::Near {
                        max: Some(d),
                        min: None,
                    },
                    "minDistance" => GeoRel::Near {
                        max: None,
                        min: Some(d),
                    },
                    _ => return None,
                }
            }
            "within" => GeoRel::Within,
            "contains" => GeoRel::Contains,
            "intersects" => GeoRel::Intersects,
            "equals" => GeoRel::Equals,
            "disjoint" => GeoRel::Disjoint,
            "overlaps" => GeoRel::Overlaps,
            _ => return None,
        };
        parts.next().is_none().then_some(rel)
    }
}

impl GeoQuery {
    /// Does an entity's geometry stand in the relation?
    pub fn matches(&self, g: &Geometry) -> bool {
        let r = &self.geometry;
        match &self.rel {
            GeoRel::Near {
                max: Some(max),
                min: None,
            } if !self.surely_within(g, *max) => false,
            GeoRel::Near { max, min } => {
                let d = g.distance_m(r);
                max.is_none_or(|m| d <= m) && min.is_none_or(|m| d >= m)
            }
            GeoRel::Within => g.within(r),
            GeoRel::Contains => r.within(g),
            GeoRel::Intersects => g.intersects(r),
            GeoRel::Equals => g.equals(r),
            GeoRel::Disjoint => !g.intersects(r),
            GeoRel::Overlaps => g.overlaps(r),
        }
    }
}

impl GeoQuery {
    /// A cheap bound before the exact distance: whether `g`'s box comes
    /// within `max` metres of the reference's box at all (a degree of
    /// latitude is at least 110 km; of longitude, 111 km × cos(latitude)).
    fn surely_within(&self, g: &Geometry, max: f64) -> bool {
        let ((rx0, ry0), (rx1, ry1)) = self.geometry.bbox();
        let ((gx0, gy0), (gx1, gy1)) = g.bbox();
        let dlat = max / 110_000.0;
        let widest = ry0
            .abs()
            .max(ry1.abs())
            .max(gy0.abs())
            .max(gy1.abs())
            .min(89.0);
        let dlon = max / (111_320.0 * widest.to_radians().cos()).max(1.0);
        gx1 >= rx0 - dlon && gx0 <= rx1 + dlon && gy1 >= ry0 - dlat && gy0 <= ry1 + dlat
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn g(v: Value) -> Geometry {
        Geometry::from_geojson(&v).unwrap()
    }

    #[test]
    fn distances_match_known_great_circles() {
        // Berlin (Brandenburg Gate) to Potsdam: about 26.6 km.
        let d = haversine((13.3777, 52.5163), (13.0645, 52.3906));
        assert!((d - 25_600.0).abs() < 1_500.0, "{d}");
        assert_eq!(haversine((1.0, 2.0), (1.0, 2.0)), 0.0);
    }

    #[test]
    fn relations_follow_the_simple_features_model() {
        let square =
            g(json!({"type":"Polygon","coordinates":[[[0,0],[10,0],[10,10],[0,10],[0,0]]]}));
        let inner = g(json!({"type":"Point","coordinates":[5,5]}));
        let outside = g(json!({"type":"Point","coordinates":[15,5]}));
        let edge = g(json!({"type":"Point","coordinates":[10,5]}));
        let crossing = g(json!({"type":"LineString","coordinates":[[5,5],[15,5]]}));
        assert!(inner.within(&square) && !outside.within(&square) && edge.intersects(&square));
        assert!(!crossing.within(&square) && crossing.intersects(&square));
        assert!(!outside.intersects(&square));
        let shifted =
            g(json!({"type":"Polygon","coordinates":[[[5,5],[15,5],[15,15],[5,15],[5,5]]]}));
        assert!(shifted.overlaps(&square) && !shifted.within(&square));
        assert!(square.equals(&square.clone()));
        let near = GeoQuery {
            rel: GeoRel::parse("near;maxDistance==2000").unwrap(),
            geometry: g(json!({"type":"Point","coordinates":[13.0, 52.0]})),
            property: String::new(),
        };
        assert!(near.matches(&g(json!({"type":"Point","coordinates":[13.01, 52.0]}))));
        assert!(!near.matches(&g(json!({"type":"Point","coordinates":[13.1, 52.0]}))));
        assert!(GeoRel::parse("near;distance==3").is_none());
        assert!(GeoRel::parse("near").is_none());
    }
}
