//! Public MyData's routes, first part: the public catalogue, publishing
//! in it, and the linkage consultation between holders and agencies.

use crate::catalogue::{
    AgreementNoteRequest, AgreementRequest, AgreementView, Catalogue, NewOfferRequest, OfferView,
};
use crate::MyData;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use civic_core::mydata::AgreementId;
use civic_http::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use civic_http::problem::{ApiResult, Problem};
use serde::Deserialize;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogueQuery {
    /// Words to find in a title, description, code, item or holder.
    pub q: Option<String>,
}

/// The catalogue of provided documents and datasets, with their demand
/// (open to anyone: it holds no personal data).
#[utoipa::path(get, path = "/api/v1/mydata/catalogue", tag = "mydata", params(CatalogueQuery),
    responses((status = 200, body = Catalogue)))]
pub async fn catalogue(
    State(s): State<MyData>,
    ApiQuery(query): ApiQuery<CatalogueQuery>,
) -> ApiResult<Json<Catalogue>> {
    if query.q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(civic_http::problem::ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "q: must be at most 200 characters",
        ));
    }
    Ok(Json(s.catalogue(query.q.as_deref()).await?))
}

/// Publishes a provided document or dataset of the caller's institution
/// (MyData operators of a ministry, public institution or local
/// government).
#[utoipa::path(post, path = "/api/v1/mydata/catalogue", tag = "mydata", security(("bearer" = [])),
    request_body = NewOfferRequest,
    responses((status = 201, body = OfferView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn publish(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<NewOfferRequest>,
) -> ApiResult<(StatusCode, Json<OfferView>)> {
    Ok((StatusCode::CREATED, Json(s.publish_offer(&ctx, req).await?)))
}

/// The linkage agreements the caller's institution is party to.
#[utoipa::path(get, path = "/api/v1/mydata/agreements", tag = "mydata", security(("bearer" = [])),
    responses((status = 200, body = [AgreementView]), (status = 403, body = Problem)))]
pub async fn agreements(
    State(s): State<MyData>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<AgreementView>>> {
    Ok(Json(s.list_agreements(&ctx).await?))
}

/// A using agency applies to use a catalogue entry for a named service:
/// a new version of the agreement, awaiting the holder.
#[utoipa::path(post, path = "/api/v1/mydata/agreements", tag = "mydata", security(("bearer" = [])),
    request_body = AgreementRequest,
    responses((status = 201, body = AgreementView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn apply(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<AgreementRequest>,
) -> ApiResult<(StatusCode, Json<AgreementView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.apply_agreement(&ctx, req).await?),
    ))
}

/// One agreement with its history.
#[utoipa::path(get, path = "/api/v1/mydata/agreements/{id}", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "agreement id")),
    responses((status = 200, body = AgreementView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn agreement(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AgreementView>> {
    Ok(Json(s.get_agreement(&ctx, AgreementId(id)).await?))
}

/// A step of the consultation: the holder questions, approves or rejects;
/// the agency answers; either comments.
#[utoipa::path(post, path = "/api/v1/mydata/agreements/{id}/notes", tag = "mydata", security(("bearer" = [])),
    params(("id" = i64, Path, description = "agreement id")), request_body = AgreementNoteRequest,
    responses((status = 200, body = AgreementView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn note(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<AgreementNoteRequest>,
) -> ApiResult<Json<AgreementView>> {
    Ok(Json(s.note_agreement(&ctx, AgreementId(id), req).await?))
}
