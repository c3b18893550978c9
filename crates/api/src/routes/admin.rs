use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::{ApiResult, Problem};
use crate::views::*;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use civic_core::identity::{ApiTokenId, InstitutionId, UserId};
use civic_hub::admin::UserRequest;

/// Lists institutions.
#[utoipa::path(get, path = "/api/v1/institutions", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [InstitutionView]), (status = 403, body = Problem)))]
pub async fn list_institutions(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<InstitutionView>>> {
    let list = state.hub.list_institutions(&ctx).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Registers an institution (administrators of the hub operator).
#[utoipa::path(post, path = "/api/v1/institutions", tag = "admin", security(("bearer" = [])),
    request_body = NewInstitutionRequest,
    responses((status = 201, body = InstitutionView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_institution(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<NewInstitutionRequest>,
) -> ApiResult<(StatusCode, Json<InstitutionView>)> {
    let created = state
        .hub
        .create_institution(&ctx, &req.name, &req.kind)
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Lists the users of an institution.
#[utoipa::path(get, path = "/api/v1/institutions/{id}/users", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "institution id")),
    responses((status = 200, body = [UserView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_users(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<UserView>>> {
    let users = state.hub.list_users(&ctx, InstitutionId(id)).await?;
    Ok(Json(users.into_iter().map(Into::into).collect()))
}

/// Creates a user of an institution with her duties.
#[utoipa::path(post, path = "/api/v1/institutions/{id}/users", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "institution id")), request_body = NewUserRequest,
    responses((status = 201, body = UserView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_user(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewUserRequest>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let request = UserRequest {
        username: req.username,
        display_name: req.display_name,
        password: req.password,
        machine_client: req.machine_client,
        duties: req.duties,
    };
    let user = state
        .hub
        .create_user(&ctx, InstitutionId(id), request)
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Replaces a user's duties.
#[utoipa::path(put, path = "/api/v1/users/{id}/duties", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")), request_body = DutiesRequest,
    responses((status = 200, body = UserView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_duties(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DutiesRequest>,
) -> ApiResult<Json<UserView>> {
    let user = state.hub.set_duties(&ctx, UserId(id), &req.duties).await?;
    Ok(Json(user.into()))
}

/// Removes a user's second factor (she enrols a new one at next sign-in);
/// ends her sessions.
#[utoipa::path(post, path = "/api/v1/users/{id}/totp-reset", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn reset_totp(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state.hub.reset_second_factor(&ctx, UserId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a lock-out.
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn unlock(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state.hub.unlock_user(&ctx, UserId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists the API tokens of an institution's machine clients.
#[utoipa::path(get, path = "/api/v1/institutions/{id}/api-tokens", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "institution id")),
    responses((status = 200, body = [ApiTokenView]), (status = 403, body = Problem)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<ApiTokenView>>> {
    let tokens = state.hub.list_api_tokens(&ctx, InstitutionId(id)).await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

/// Issues an API token for a machine-client user; the secret is shown once.
#[utoipa::path(post, path = "/api/v1/institutions/{id}/api-tokens", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "institution id")), request_body = NewApiTokenRequest,
    responses((status = 201, body = IssuedTokenView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn issue_token(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NewApiTokenRequest>,
) -> ApiResult<(StatusCode, Json<IssuedTokenView>)> {
    let issued = state
        .hub
        .issue_api_token(
            &ctx,
            InstitutionId(id),
            UserId(req.user_id),
            &req.name,
            req.valid_days,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedTokenView {
            token: issued.token.into(),
            secret: issued.secret,
        }),
    ))
}

/// Revokes an API token.
#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "API token id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    state.hub.revoke_api_token(&ctx, ApiTokenId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
