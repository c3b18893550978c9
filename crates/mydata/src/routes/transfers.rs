//! Public MyData's transfers: agencies' requests, citizens' consents and
//! withdrawals, packages, events and webhooks, the holders' published keys
//! and status lists, the citizen's accesses and his portability download.

use crate::transfers::{
    AccessView, ConsentRequest, EventView, PackageView, RefusalRequest, TransferRequest,
    TransferView, VerifyRequest, VerifyView, WebhookRequest, WebhookView,
};
use crate::MyData;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use civic_core::mydata::TransferId;
use civic_http::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use civic_http::problem::{ApiError, ApiResult, Problem};
use serde::Deserialize;

/// An agency asks a citizen for items under its approved agreement; the
/// request awaits the citizen's consent.
#[utoipa::path(post, path = "/api/v1/mydata/transfers", tag = "mydata", security(("bearer" = [])),
    request_body = TransferRequest,
    responses((status = 201, body = TransferView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn request(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<TransferRequest>,
) -> ApiResult<(StatusCode, Json<TransferView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.request_transfer(&ctx, req).await?),
    ))
}

/// The caller's transfers: a citizen's own; an agency's requests; what a
/// holder issued.
#[utoipa::path(get, path = "/api/v1/mydata/transfers", tag = "mydata", security(("bearer" = [])),
    responses((status = 200, body = [TransferView]), (status = 403, body = Problem)))]
pub async fn list(
    State(s): State<MyData>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<TransferView>>> {
    Ok(Json(s.transfers(&ctx).await?))
}

/// One transfer, for the citizen, the agency or the holder.
#[utoipa::path(get, path = "/api/v1/mydata/transfers/{id}", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "transfer id")),
    responses((status = 200, body = TransferView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(s.transfer(&ctx, TransferId(id)).await?))
}

/// The citizen consents (once, or periodically until a day); the holder
/// issues the credential at once.
#[utoipa::path(post, path = "/api/v1/mydata/transfers/{id}/consent", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "transfer id")), request_body = ConsentRequest,
    responses((status = 200, body = TransferView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn consent(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ConsentRequest>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(s.consent_transfer(&ctx, TransferId(id), req).await?))
}

/// The citizen refuses.
#[utoipa::path(post, path = "/api/v1/mydata/transfers/{id}/refusal", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "transfer id")), request_body = RefusalRequest,
    responses((status = 200, body = TransferView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn refuse(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<RefusalRequest>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(s.refuse_transfer(&ctx, TransferId(id), req).await?))
}

/// The citizen withdraws his consent: the hub's copy is destroyed, the
/// holder revokes the credential, the agency is told to delete.
#[utoipa::path(post, path = "/api/v1/mydata/transfers/{id}/withdrawal", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "transfer id")),
    responses((status = 200, body = TransferView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn withdraw(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(s.withdraw_transfer(&ctx, TransferId(id)).await?))
}

/// The transfer's consent receipt (ISO/IEC TS 27560 consent record).
#[utoipa::path(get, path = "/api/v1/mydata/transfers/{id}/receipt", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "transfer id")),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn receipt(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(s.consent_receipt(&ctx, TransferId(id)).await?))
}

/// The agency fetches the package: the credential (and a provided
/// document) encrypted to its key, with where to check it.
#[utoipa::path(get, path = "/api/v1/mydata/transfers/{id}/package", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "transfer id")),
    responses((status = 200, body = PackageView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn package(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<PackageView>> {
    Ok(Json(s.transfer_package(&ctx, TransferId(id)).await?))
}

/// Under a periodic consent, the agency asks for a fresh credential (at
/// most once an interval).
#[utoipa::path(post, path = "/api/v1/mydata/transfers/{id}/resend", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "transfer id")),
    responses((status = 200, body = TransferView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resend(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(s.send_again(&ctx, TransferId(id)).await?))
}

/// The agency confirms it deleted what it received of a withdrawn
/// consent.
#[utoipa::path(post, path = "/api/v1/mydata/transfers/{id}/deletion", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "transfer id")),
    responses((status = 200, body = TransferView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn deletion(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(
        s.confirm_transfer_deletion(&ctx, TransferId(id)).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Events after this sequence number (0: from the start).
    pub after: Option<i64>,
    /// At most this many (1-1000, default 100).
    pub limit: Option<i64>,
}

/// The agency's events, for polling.
#[utoipa::path(get, path = "/api/v1/mydata/events", tag = "mydata", security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, body = [EventView]), (status = 403, body = Problem)))]
pub async fn events(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<Vec<EventView>>> {
    Ok(Json(
        s.transfer_events(&ctx, q.after.unwrap_or(0), q.limit.unwrap_or(100))
            .await?,
    ))
}

/// Subscribes the agency's webhook (Standard Webhooks signatures); the
/// secret is shown once.
#[utoipa::path(put, path = "/api/v1/mydata/webhook", tag = "mydata", security(("bearer" = [])),
    request_body = WebhookRequest,
    responses((status = 200, body = WebhookView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn webhook(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(s.set_transfer_webhook(&ctx, req).await?))
}

/// Checks a credential: the issuer's key and signature, the expiry and
/// its status.
#[utoipa::path(post, path = "/api/v1/mydata/verify", tag = "mydata", security(("bearer" = [])),
    request_body = VerifyRequest,
    responses((status = 200, body = VerifyView), (status = 403, body = Problem)))]
pub async fn verify(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Json<VerifyView>> {
    Ok(Json(s.verify_credential(&ctx, req).await?))
}

/// A holder's credential keys (JWK set), public.
#[utoipa::path(get, path = "/api/v1/mydata/issuers/{name}/jwks", tag = "mydata",
    params(("name" = String, Path, description = "the holder's node")),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn jwks(State(s): State<MyData>, ApiPath(name): ApiPath<String>) -> ApiResult<Response> {
    let set = s.issuer_jwks(&name).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        serde_json::to_vec(&set).expect("a JWK set serialises"),
    )
        .into_response())
}

/// A holder's signed status list (`application/statuslist+jwt`), public.
#[utoipa::path(get, path = "/api/v1/mydata/issuers/{name}/status-list", tag = "mydata",
    params(("name" = String, Path, description = "the holder's node")),
    responses((status = 200, body = String, content_type = "application/statuslist+jwt"), (status = 404, body = Problem)))]
pub async fn status_list(
    State(s): State<MyData>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    let list = s.issuer_status_list(&name).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/statuslist+jwt")],
        list.token,
    )
        .into_response())
}

/// Every access to the citizen's data in the audit ledger.
#[utoipa::path(get, path = "/api/v1/mydata/me/accesses", tag = "mydata", security(("bearer" = [])),
    responses((status = 200, body = [AccessView]), (status = 403, body = Problem)))]
pub async fn accesses(
    State(s): State<MyData>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<AccessView>>> {
    Ok(Json(s.my_accesses(&ctx).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `json` (default), `csv` or `vc` (the verifiable credentials only).
    #[param(pattern = "^(json|csv|vc)$")]
    pub format: Option<String>,
}

/// Everything the holding institutions keep of the citizen (right to
/// portability): JSON, CSV, or verifiable credentials.
#[utoipa::path(get, path = "/api/v1/mydata/me/export", tag = "mydata", security(("bearer" = [])),
    params(ExportQuery),
    responses((status = 200, description = "JSON (`format=json`, `vc`) or CSV (`format=csv`)",
            content((Object = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn export(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let format = q.format.unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "json" | "csv" | "vc") {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "format: must be json, csv or vc",
        ));
    }
    let data = s.my_data(&ctx).await?;
    let attachment = |name: &str| format!("attachment; filename=\"{name}\"");
    Ok(match format.as_str() {
        "csv" => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, attachment("my-data.csv")),
            ],
            crate::transfers::portability_csv(&data),
        )
            .into_response(),
        "vc" => {
            let credentials: Vec<serde_json::Value> = data["holders"]
                .as_array()
                .into_iter()
                .flatten()
                .map(
                    |h| serde_json::json!({"issuer": h["issuer"], "credentials": h["credentials"]}),
                )
                .collect();
            (
                [(
                    header::CONTENT_DISPOSITION,
                    attachment("my-credentials.json"),
                )],
                Json(serde_json::json!({"format": "dc+sd-jwt", "issuers": credentials})),
            )
                .into_response()
        }
        _ => (
            [(header::CONTENT_DISPOSITION, attachment("my-data.json"))],
            Json(data),
        )
            .into_response(),
    })
}
