//! Coordinates, distances and the grid that finds the nearest tower in O(1).

pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

/// Great-circle distance in metres (haversine).
pub fn distance_m(a: Point, b: Point) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dp = p2 - p1;
    let dl = (b.lon - a.lon).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}

/// A bounding box `lat0,lon0,lat1,lon1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub south: f64,
    pub west: f64,
    pub north: f64,
    pub east: f64,
}

impl BBox {
    /// Seoul inside its outer ring road, roughly.
    pub const SEOUL: BBox = BBox {
        south: 37.45,
        west: 126.80,
        north: 37.70,
        east: 127.18,
    };

    pub fn parse(raw: &str) -> Result<Self, String> {
        let parts: Vec<f64> = raw
            .split(',')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("--bbox {raw:?}: expected four numbers lat0,lon0,lat1,lon1"))?;
        let [a, b, c, d] = parts[..] else {
            return Err(format!(
                "--bbox {raw:?}: expected four numbers lat0,lon0,lat1,lon1"
            ));
        };
        let bbox = BBox {
            south: a.min(c),
            west: b.min(d),
            north: a.max(c),
            east: b.max(d),
        };
        let ok_lat = bbox.south >= -85.0 && bbox.north <= 85.0;
        let ok_lon = bbox.west >= -180.0 && bbox.east <= 180.0;
        let size = (bbox.height_m(), bbox.width_m());
        if !ok_lat || !ok_lon {
            return Err(format!("--bbox {raw:?}: not WGS84 degrees"));
        }
        if size.0 < 2_000.0 || size.1 < 2_000.0 || size.0 > 200_000.0 || size.1 > 200_000.0 {
            return Err(format!("--bbox {raw:?}: a city is 2-200 km across"));
        }
        Ok(bbox)
    }

    pub fn height_m(&self) -> f64 {
        (self.north - self.south).to_radians() * EARTH_RADIUS_M
    }

    pub fn width_m(&self) -> f64 {
        (self.east - self.west).to_radians()
            * EARTH_RADIUS_M
            * ((self.north + self.south) / 2.0).to_radians().cos()
    }

    pub fn clamp(&self, p: Point) -> Point {
        Point {
            lat: p.lat.clamp(self.south, self.north),
            lon: p.lon.clamp(self.west, self.east),
        }
    }

    /// The point at fractions `(fy, fx)` of the box.
    pub fn at(&self, fy: f64, fx: f64) -> Point {
        Point {
            lat: self.south + fy * (self.north - self.south),
            lon: self.west + fx * (self.east - self.west),
        }
    }

    /// Metres to degrees here (for jitter).
    pub fn metres_to_deg(&self, dy_m: f64, dx_m: f64) -> (f64, f64) {
        let lat = dy_m / EARTH_RADIUS_M;
        let lon = dx_m / (EARTH_RADIUS_M * ((self.north + self.south) / 2.0).to_radians().cos());
        (lat.to_degrees(), lon.to_degrees())
    }
}

/// The nearest and second-nearest tower of every cell of a fine grid over
/// the box: a ping's tower is a table look-up.
pub struct TowerGrid {
    bbox: BBox,
    rows: usize,
    cols: usize,
    nearest: Vec<(u32, u32)>,
}

impl TowerGrid {
    pub const CELL_M: f64 = 150.0;

    pub fn build(bbox: BBox, towers: &[Point]) -> Self {
        let rows = ((bbox.height_m() / Self::CELL_M).ceil() as usize).max(1);
        let cols = ((bbox.width_m() / Self::CELL_M).ceil() as usize).max(1);
        // Bucket towers by a coarse grid to find neighbours quickly.
        let coarse = 8usize;
        let (crows, ccols) = (rows.div_ceil(coarse), cols.div_ceil(coarse));
        let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); crows * ccols];
        let cell_of = |p: Point| -> (usize, usize) {
            let fy = ((p.lat - bbox.south) / (bbox.north - bbox.south)).clamp(0.0, 0.999_999);
            let fx = ((p.lon - bbox.west) / (bbox.east - bbox.west)).clamp(0.0, 0.999_999);
            ((fy * rows as f64) as usize, (fx * cols as f64) as usize)
        };
        for (i, t) in towers.iter().enumerate() {
            let (r, c) = cell_of(*t);
            buckets[(r / coarse) * ccols + c / coarse].push(i as u32);
        }
        let mut nearest = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                let centre = bbox.at(
                    (r as f64 + 0.5) / rows as f64,
                    (c as f64 + 0.5) / cols as f64,
                );
                let (cr, cc) = (r / coarse, c / coarse);
                let mut best = [(f64::MAX, 0u32), (f64::MAX, 0u32)];
                let mut radius = 1usize;
                loop {
                    for br in cr.saturating_sub(radius)..=(cr + radius).min(crows - 1) {
                        for bc in cc.saturating_sub(radius)..=(cc + radius).min(ccols - 1) {
                            for &t in &buckets[br * ccols + bc] {
                                let d = distance_m(centre, towers[t as usize]);
                                if d < best[0].0 {
                                    best[1] = best[0];
                                    best[0] = (d, t);
                                } else if d < best[1].0 && t != best[0].1 {
                                    best[1] = (d, t);
                                }
                            }
                        }
                    }
                    let covered = radius >= crows.max(ccols);
                    if best[1].0 < f64::MAX || covered {
                        break;
                    }
                    radius += 1;
                }
                let second = if best[1].0 < f64::MAX {
                    best[1].1
                } else {
                    best[0].1
                };
                nearest.push((best[0].1, second));
            }
        }
        Self {
            bbox,
            rows,
            cols,
            nearest,
        }
    }

    /// `(nearest, second nearest)` tower indices for a point.
    pub fn lookup(&self, p: Point) -> (u32, u32) {
        let b = &self.bbox;
        let fy = ((p.lat - b.south) / (b.north - b.south)).clamp(0.0, 0.999_999);
        let fx = ((p.lon - b.west) / (b.east - b.west)).clamp(0.0, 0.999_999);
        let (r, c) = (
            (fy * self.rows as f64) as usize,
            (fx * self.cols as f64) as usize,
        );
        self.nearest[r * self.cols + c]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_great_circle() {
        let a = Point {
            lat: 37.5665,
            lon: 126.9780,
        }; // City Hall
        let b = Point {
            lat: 37.4979,
            lon: 127.0276,
        }; // Gangnam
        let d = distance_m(a, b);
        assert!((8_500.0..9_000.0).contains(&d), "{d}");
    }

    #[test]
    fn the_grid_finds_the_nearest_tower() {
        let bbox = BBox::SEOUL;
        let towers: Vec<Point> = (0..50)
            .map(|i| bbox.at((i % 7) as f64 / 7.0 + 0.05, (i / 7) as f64 / 8.0 + 0.05))
            .collect();
        let grid = TowerGrid::build(bbox, &towers);
        let p = bbox.at(0.33, 0.61);
        let (near, _) = grid.lookup(p);
        let best = (0..towers.len())
            .min_by(|&a, &b| distance_m(p, towers[a]).total_cmp(&distance_m(p, towers[b])))
            .unwrap();
        // Within the grid's resolution.
        assert!(
            distance_m(p, towers[near as usize])
                <= distance_m(p, towers[best]) + 2.0 * TowerGrid::CELL_M
        );
    }

    #[test]
    fn bbox_parsing_is_strict() {
        assert!(BBox::parse("37.45,126.80,37.70,127.18").is_ok());
        assert!(BBox::parse("37.45,126.80").is_err());
        assert!(BBox::parse("a,b,c,d").is_err());
        assert!(BBox::parse("37.45,126.80,37.4501,126.8001").is_err());
    }
}
