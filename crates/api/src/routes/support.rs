//! The MyData support centre's routes: institutions' tickets, training
//! sessions, and each institution's consulting history.

use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::problem::{ApiResult, Problem};
use crate::views::TicketsParams;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use civic_core::identity::InstitutionId;
use civic_core::mydata::{TicketId, TrainingId};
use civic_mydata::support::{
    AttendeeRequest, ConsultingHistory, NewTicketRequest, NewTrainingRequest, TicketUpdate,
    TicketView, TrainingView,
};

/// The tickets the caller follows: her institution's (all, for agents),
/// newest first, a page at a time (`before` the last id seen).
#[utoipa::path(get, path = "/api/v1/support/tickets", tag = "support", security(("bearer" = [])),
    params(TicketsParams),
    responses((status = 200, body = [TicketView]), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn tickets(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    ApiQuery(p): ApiQuery<TicketsParams>,
) -> ApiResult<Json<Vec<TicketView>>> {
    Ok(Json(
        s.mydata
            .list_tickets(&ctx, p.before.map(TicketId), p.limit)
            .await?,
    ))
}

/// Opens a ticket for the caller's institution: a new dataset, a linkage
/// problem, an error.
#[utoipa::path(post, path = "/api/v1/support/tickets", tag = "support", security(("bearer" = [])),
    request_body = NewTicketRequest,
    responses((status = 201, body = TicketView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn open_ticket(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<NewTicketRequest>,
) -> ApiResult<(StatusCode, Json<TicketView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.mydata.open_ticket(&ctx, req).await?),
    ))
}

/// One ticket with its messages.
#[utoipa::path(get, path = "/api/v1/support/tickets/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")),
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn ticket(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.mydata.get_ticket(&ctx, TicketId(id)).await?))
}

/// A reply to a ticket (an agent's answers it, the institution's reopens
/// it), or its closing.
#[utoipa::path(post, path = "/api/v1/support/tickets/{id}/replies", tag = "support", security(("bearer" = [])),
    params(("id" = i64, Path, description = "ticket id")), request_body = TicketUpdate,
    responses((status = 200, body = TicketView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reply(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<TicketUpdate>,
) -> ApiResult<Json<TicketView>> {
    Ok(Json(s.mydata.update_ticket(&ctx, TicketId(id), req).await?))
}

/// The training sessions, with their attendees and materials.
#[utoipa::path(get, path = "/api/v1/support/trainings", tag = "support", security(("bearer" = [])),
    responses((status = 200, body = [TrainingView]), (status = 403, body = Problem)))]
pub async fn trainings(
    State(s): State<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<TrainingView>>> {
    Ok(Json(s.mydata.list_trainings(&ctx).await?))
}

/// Schedules a training session (support agents).
#[utoipa::path(post, path = "/api/v1/support/trainings", tag = "support", security(("bearer" = [])),
    request_body = NewTrainingRequest,
    responses((status = 201, body = TrainingView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_training(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<NewTrainingRequest>,
) -> ApiResult<(StatusCode, Json<TrainingView>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.mydata.create_training(&ctx, req).await?),
    ))
}

/// Records an institution's attendee of a session (support agents).
#[utoipa::path(post, path = "/api/v1/support/trainings/{id}/attendees", tag = "support", security(("bearer" = [])),
    params(("id" = i64, Path, description = "training id")), request_body = AttendeeRequest,
    responses((status = 200, body = TrainingView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_attendee(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<AttendeeRequest>,
) -> ApiResult<Json<TrainingView>> {
    Ok(Json(
        s.mydata.add_attendee(&ctx, TrainingId(id), req).await?,
    ))
}

/// An institution's consulting history: its tickets and the trainings it
/// attended (support agents).
#[utoipa::path(get, path = "/api/v1/support/institutions/{id}/history", tag = "support", security(("bearer" = [])),
    params(("id" = i64, Path, description = "institution id")),
    responses((status = 200, body = ConsultingHistory), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn history(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ConsultingHistory>> {
    Ok(Json(
        s.mydata.consulting_history(&ctx, InstitutionId(id)).await?,
    ))
}
