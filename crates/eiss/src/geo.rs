//! Distances on the sphere.

const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres (haversine).
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// A cell of a grid of roughly `size_m` metres, for spatial bucketing
/// near the latitude `lat`.
pub fn cell(lat: f64, lon: f64, size_m: f64) -> (i32, i32) {
    let dlat = size_m / 111_195.0;
    let dlon = dlat / lat.to_radians().cos().abs().max(0.01);
    ((lat / dlat).floor() as i32, (lon / dlon).floor() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_are_great_circle() {
        // Seoul City Hall to Gangnam station: about 8.9 km.
        let d = distance_m(37.5663, 126.9779, 37.4979, 127.0276);
        assert!((8_500.0..9_300.0).contains(&d), "{d}");
        assert!(distance_m(37.5, 127.0, 37.5, 127.0) < 1e-6);
    }
}
