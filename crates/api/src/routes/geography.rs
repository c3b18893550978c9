//! The map's geography: region boundaries and public places, drawn by the
//! web application without an outside tile server.

use crate::extract::Caller;
use crate::problem::{ApiError, ApiResult, Problem};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// Largest geography upload.
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct GeographyReplaced {
    pub features: usize,
}

/// The map: a GeoJSON FeatureCollection of regions (`layer: region`, with
/// the `region` cases are registered in), towers, stops and venues, and the
/// configured tile server (`tile_url`, or null: none).
#[utoipa::path(get, path = "/api/v1/geography", tag = "system", security(("bearer" = [])),
    responses((status = 200, body = Object), (status = 403, body = Problem)))]
pub async fn geography(
    State(s): State<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(s.hub.geography(&ctx).await?))
}

/// Replaces the map with an uploaded GeoJSON FeatureCollection (polygons
/// become regions, points venues, unless a `layer` property says
/// otherwise); administrators of the hub operator.
#[utoipa::path(put, path = "/api/v1/geography", tag = "system", security(("bearer" = [])),
    request_body(content = Object, content_type = "application/geo+json"),
    responses((status = 200, body = GeographyReplaced), (status = 400, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem)))]
pub async fn replace_geography(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    body: Body,
) -> ApiResult<Json<GeographyReplaced>> {
    // Who may not replace the map is refused before the upload is read.
    s.hub.may_replace_geography(&ctx).await?;
    // A map is larger than the API's usual body limit.
    let body = axum::body::to_bytes(body, MAX_UPLOAD_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the map is larger than {} MiB", MAX_UPLOAD_BYTES >> 20),
            )
        })?;
    let features = s.hub.set_geography(&ctx, &body).await?;
    Ok(Json(GeographyReplaced { features }))
}
