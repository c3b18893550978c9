use crate::problem::{ApiError, ApiResult};
use crate::views::Health;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use civic_store::AuditStore;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = crate::problem::Problem)))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.hub.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "database not ready");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "the database does not answer",
        )
    })?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let records = state
        .hub
        .store
        .ledger_head()
        .await
        .map(|h| h.size())
        .unwrap_or(0);
    let signed = state
        .hub
        .store
        .latest_tree_head()
        .await
        .ok()
        .flatten()
        .map(|h| h.tree_size)
        .unwrap_or(0);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(records, signed),
    )
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system", responses((status = 200, body = Object)))]
pub async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_ref().clone(),
    )
}
