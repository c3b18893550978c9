//! City data's administration under `/api/v1`: its tenants, who owns them
//! and who may read, write and register in them. (The broker itself is
//! the NGSI-LD API under `/ngsi-ld/v1`, outside the OpenAPI document.)

use crate::extract::{ApiJson, Caller};
use crate::problem::{ApiResult, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use civic_citydata::models::Model;
use civic_citydata::tenancy::TenantSettings;

/// Lists city data's tenants and their settings (administrators and city
/// data operators). A tenant not listed exists only if the configuration
/// makes tenants on first use (`city_implicit_tenants`).
#[utoipa::path(get, path = "/api/v1/citydata/tenants", tag = "citydata", security(("bearer" = [])),
    responses((status = 200, body = [TenantSettings]), (status = 403, body = Problem)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<TenantSettings>>> {
    Ok(Json(state.citydata.tenants(&ctx).await?))
}

/// Sets up a tenant (201) or replaces its settings (200): the
/// administrators of its institution, with a second factor, or the
/// platform's. Audited in the same transaction.
#[utoipa::path(put, path = "/api/v1/citydata/tenants", tag = "citydata", security(("bearer" = [])),
    request_body = TenantSettings,
    responses((status = 200, body = TenantSettings), (status = 201, body = TenantSettings),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_tenant(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiJson(settings): ApiJson<TenantSettings>,
) -> ApiResult<(StatusCode, Json<TenantSettings>)> {
    let (settings, created) = state.citydata.set_tenant(&ctx, settings).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(settings)))
}

/// The FIWARE Smart Data Models the broker ships and checks entities of
/// their types against (public, as the models are): each one's
/// attributes, their types, allowed values, units and meanings, for the
/// pages and for whoever writes a mapping.
#[utoipa::path(get, path = "/api/v1/citydata/models", tag = "citydata",
    responses((status = 200, body = [Model])))]
pub async fn list_models() -> Json<&'static [Model]> {
    Json(civic_citydata::models::all())
}
