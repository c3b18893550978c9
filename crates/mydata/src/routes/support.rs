//! The MyData support centre's routes: institutions' tickets, training
//! sessions, and each institution's consulting history.

use crate::support::{
    AttendeeRequest, ConsultingHistory, NewTicketRequest, NewTrainingRequest, TicketUpdate,
    TicketView, TrainingView,
};
use crate::MyData;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use civic_core::identity::InstitutionId;
use civic_core::mydata::{TicketId, TrainingId};
use civic_http::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use civic_http::problem::{ApiResult, Problem};
use serde::Deserialize;
use utoipa::IntoParams;

/// The tickets the caller follows: her institution's (all, for agents),
/// newest first, a page at a time (`before` the last id seen).
#[utoipa::path(get, path = "/api/v1/support/tickets", tag = "support", security(("bearer" = [])),
    params(TicketsParams),
    responses((status = 200, body = [TicketView]), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn tickets(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiQuery(p): ApiQuery<TicketsParams>,
) -> ApiResult<Json<Vec<TicketView>>> {
    Ok(Json(
        s.list_tickets(&ctx, p.before.map(TicketId), p.limit)
            .await?,
    ))
}

/// Opens a ticket for the caller's institution: a new dataset, a linkage
/// problem, an error.
#[utoipa::path(post, path = "/api/v1/support/tickets", tag = "support", security(("bearer" = [])),
    request_body = NewTicketRequest,
    responses((status = 201, body = TicketView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn open_ticket(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<NewTicketRequest>,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    Ok((StatusCode::CREATED, Json(s.open_ticket(&ctx, req).await?)))
}

/// One ticket with its messages.
#[utoipa::path(get, path = "/api/v1/support/tickets/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn ticket(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.get_ticket(&ctx, TicketId(id)).await?))
}

/// A reply to a ticket (an agent's answers it, the institution's reopens
/// it), or its closing.
#[utoipa::path(post, path = "/api/v1/support/tickets/{id}/replies", tag = "support", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")), request_body = TicketUpdate,
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reply(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<TicketUpdate>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.update_ticket(&ctx, TicketId(id), req).await?))
}

/// The training sessions, with their attendees and materials.
#[utoipa::path(get, path = "/api/v1/support/trainings", tag = "support", security(("bearer" = [])),
    responses((status = 200, body = [TrainingView]), (status = 403, body = Problem)))]
pub async fn trainings(
    State(s): State<MyData>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<TrainingView>>> {
    Ok(Json(s.list_trainings(&ctx).await?))
}

/// Schedules a training session (support agents).
#[utoipa::path(post, path = "/api/v1/support/trainings", tag = "support", security(("bearer" = [])),
    request_body = NewTrainingRequest,
    responses((status = 201, body = TrainingView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_training(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<NewTrainingRequest>,
) -> ApiResult<(StatusCode, Json<TrainingView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.create_training(&ctx, req).await?),
    ))
}

/// Records an institution's attendee of a session (support agents).
#[utoipa::path(post, path = "/api/v1/support/trainings/{id}/attendees", tag = "support", security(("bearer" = [])),
    params(("id" = i64, Path, description = "training id")), request_body = AttendeeRequest,
    responses((status = 200, body = TrainingView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_attendee(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<AttendeeRequest>,
) -> ApiResult<Json<TrainingView>> {
    Ok(Json(s.add_attendee(&ctx, TrainingId(id), req).await?))
}

/// An institution's consulting history: its tickets and the trainings it
/// attended (support agents).
#[utoipa::path(get, path = "/api/v1/support/institutions/{id}/history", tag = "support", security(("bearer" = [])),
    params(("id" = i64, Path, description = "institution id")),
    responses((status = 200, body = ConsultingHistory), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn history(
    State(s): State<MyData>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ConsultingHistory>> {
    Ok(Json(s.consulting_history(&ctx, InstitutionId(id)).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketsParams {
    /// Only tickets with an id below this (the next page: the last id seen).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1–500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}
