//! The map's geography: region boundaries and public places (towers,
//! subway stops, venues) that the web application draws without any tile
//! server. It is the platform's own, never personal data: a GeoJSON
//! FeatureCollection kept in the data directory, seeded by the demo from
//! its synthetic city and replaceable by an administrator's upload.

use crate::{Ctx, Hub, HubError, Result};
use civic_core::audit::Outcome;
use civic_core::policy::Action;
use civic_store::AuditStore;
use serde_json::{Map, Value};

/// Geometry types a map feature may have.
const GEOMETRIES: [&str; 6] = [
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
];

/// Features in one geography, at most.
pub const MAX_FEATURES: usize = 200_000;

impl Hub {
    fn geography_file(&self) -> std::path::PathBuf {
        self.config.data_dir.join("geography.geojson")
    }

    /// The map for any signed-in user with a duty: the geography and the
    /// configured tile server, if any (a foreign member `tile_url`).
    pub async fn geography(&self, ctx: &Ctx) -> Result<Value> {
        self.authorize(ctx, Action::ListInstitutions, "geography.read", "geography")
            .await?;
        let path = self.geography_file();
        let mut doc = match tokio::fs::read_to_string(&path).await {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                tracing::error!(error = %e, "the stored map is not JSON");
                unreadable()
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                serde_json::json!({"type": "FeatureCollection", "features": []})
            }
            Err(e) => {
                tracing::error!(error = %e, "the stored map cannot be read");
                return Err(unreadable());
            }
        };
        doc["tile_url"] = self
            .config
            .map_tile_url
            .clone()
            .map_or(Value::Null, Value::String);
        Ok(doc)
    }

    /// Whether the caller may replace the map (asked before an upload is
    /// even read; a refusal is audited).
    pub async fn may_replace_geography(&self, ctx: &Ctx) -> Result<()> {
        self.authorize(
            ctx,
            Action::ManageGeography,
            "geography.replace",
            "geography",
        )
        .await
        .map(drop)
    }

    /// Replaces the geography (administrators of the hub operator); the
    /// upload is checked whole first and changes nothing if it is wrong.
    /// The replacement is audited before the file is swapped, and the swap
    /// is atomic (a new file, synced, renamed). Returns the number of
    /// features.
    pub async fn set_geography(&self, ctx: &Ctx, upload: &[u8]) -> Result<usize> {
        let entry = self
            .authorize(
                ctx,
                Action::ManageGeography,
                "geography.replace",
                "geography",
            )
            .await?;
        let doc = serde_json::from_slice(upload)
            .map_err(|e| HubError::BadRequest(format!("the map is not JSON: {e}")))?;
        let doc = check_geography(doc).map_err(HubError::BadRequest)?;
        let features = doc["features"].as_array().map_or(0, Vec::len);
        let _one_writer = WRITER.lock().await;
        self.store.append_audit(entry.clone()).await?;
        if let Err(e) = self.write_geography(&doc).await {
            let mut failed = entry;
            failed.outcome = Outcome::Failed;
            failed.reason = Some("the map could not be written".into());
            self.store.append_audit(failed).await?;
            return Err(e);
        }
        Ok(features)
    }

    /// Seeds the geography from `file` (the demo's city map) unless one is
    /// there already.
    pub async fn seed_geography(&self, file: &std::path::Path) -> Result<()> {
        if self.geography_file().exists() || !file.exists() {
            return Ok(());
        }
        let text = tokio::fs::read_to_string(file)
            .await
            .map_err(|e| HubError::BadRequest(format!("cannot read {}: {e}", file.display())))?;
        let doc = serde_json::from_str(&text)
            .map_err(|e| HubError::BadRequest(format!("{}: {e}", file.display())))?;
        let doc = check_geography(doc)
            .map_err(|e| HubError::BadRequest(format!("{}: {e}", file.display())))?;
        let _one_writer = WRITER.lock().await;
        self.write_geography(&doc).await
    }

    async fn write_geography(&self, doc: &Value) -> Result<()> {
        let path = self.geography_file();
        let tmp = path.with_extension(format!("geojson.{}.tmp", uuid_like()));
        let text = doc.to_string();
        let written = tokio::task::spawn_blocking({
            let (tmp, path) = (tmp.clone(), path.clone());
            move || -> std::io::Result<()> {
                use std::io::Write;
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(text.as_bytes())?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)
            }
        })
        .await
        .map_err(|_| write_failed())?;
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            tracing::error!(error = %e, "the map could not be written");
            write_failed()
        })
    }
}

/// One writer of the map at a time.
static WRITER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rngs::OsRng.gen::<u64>())
}

fn write_failed() -> HubError {
    HubError::Store(civic_store::StoreError::Corrupt(
        "the map could not be written".into(),
    ))
}

fn unreadable() -> HubError {
    HubError::Store(civic_store::StoreError::Corrupt(
        "the stored map cannot be read; an administrator can upload it again".into(),
    ))
}

/// Checks a GeoJSON FeatureCollection and returns it with each feature's
/// `layer` property set (`region` for areas, `venue` for points, `line`
/// for lines, unless given) and nothing but `type`, `geometry` and `properties` kept.
pub fn check_geography(doc: Value) -> std::result::Result<Value, String> {
    if doc.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err("the map must be a GeoJSON FeatureCollection".into());
    }
    let Some(features) = doc.get("features").and_then(Value::as_array) else {
        return Err("the FeatureCollection has no \"features\" array".into());
    };
    if features.len() > MAX_FEATURES {
        return Err(format!(
            "the map has {} features; at most {MAX_FEATURES}",
            features.len()
        ));
    }
    let mut out = Vec::with_capacity(features.len());
    for (i, f) in features.iter().enumerate() {
        let bad = |why: &str| format!("feature {i}: {why}");
        if f.get("type").and_then(Value::as_str) != Some("Feature") {
            return Err(bad("is not a Feature"));
        }
        let geometry = f.get("geometry").ok_or_else(|| bad("has no geometry"))?;
        let kind = geometry
            .get("type")
            .and_then(Value::as_str)
            .filter(|t| GEOMETRIES.contains(t))
            .ok_or_else(|| bad("has no geometry of a known type"))?;
        let coordinates = geometry
            .get("coordinates")
            .ok_or_else(|| bad("has no coordinates"))?;
        let depth = match kind {
            "Point" => 0,
            "MultiPoint" | "LineString" => 1,
            "MultiLineString" | "Polygon" => 2,
            _ => 3,
        };
        check_coordinates(coordinates, depth).map_err(|e| bad(&e))?;
        let mut properties = match f.get("properties") {
            Some(Value::Object(p)) => p.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(bad("has properties that are not an object")),
        };
        if !properties.get("layer").is_some_and(Value::is_string) {
            let layer = match kind {
                "Polygon" | "MultiPolygon" => "region",
                "Point" | "MultiPoint" => "venue",
                _ => "line",
            };
            properties.insert("layer".into(), layer.into());
        }
        out.push(serde_json::json!({
            "type": "Feature",
            "geometry": {"type": kind, "coordinates": coordinates},
            "properties": properties,
        }));
    }
    Ok(serde_json::json!({"type": "FeatureCollection", "features": out}))
}

/// Positions nested `depth` arrays deep, each `[lon, lat]` in range.
fn check_coordinates(v: &Value, depth: usize) -> std::result::Result<(), String> {
    let Some(items) = v.as_array() else {
        return Err("coordinates are not arrays".into());
    };
    if depth == 0 {
        let lon = items.first().and_then(Value::as_f64);
        let lat = items.get(1).and_then(Value::as_f64);
        return match (lon, lat) {
            (Some(lon), Some(lat))
                if (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat) =>
            {
                Ok(())
            }
            _ => Err("a position is not [longitude, latitude] in degrees".into()),
        };
    }
    if items.is_empty() {
        return Err("an empty list of coordinates".into());
    }
    items
        .iter()
        .try_for_each(|i| check_coordinates(i, depth - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_feature_collection_is_kept_and_layered() {
        let doc = json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"name": "Jongno"},
             "geometry": {"type": "Polygon", "coordinates": [[[126.9, 37.5], [127.0, 37.5], [127.0, 37.6], [126.9, 37.5]]]}},
            {"type": "Feature", "properties": null, "extra": 1,
             "geometry": {"type": "Point", "coordinates": [126.97, 37.56]}},
        ]});
        let out = check_geography(doc).unwrap();
        assert_eq!(out["features"][0]["properties"]["layer"], "region");
        assert_eq!(out["features"][1]["properties"]["layer"], "venue");
        assert!(out["features"][1].get("extra").is_none());
    }

    #[test]
    fn wrong_maps_are_refused_with_the_feature_named() {
        for (doc, says) in [
            (json!({"type": "Feature"}), "FeatureCollection"),
            (json!({"type": "FeatureCollection"}), "features"),
            (
                json!({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [200.0, 37.0]}}]}),
                "feature 0: a position",
            ),
            (
                json!({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Circle", "coordinates": [1.0, 2.0]}}]}),
                "feature 0: has no geometry of a known type",
            ),
            (
                json!({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [1.0, 2.0]}}]}),
                "feature 0: coordinates are not arrays",
            ),
        ] {
            let e = check_geography(doc).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
