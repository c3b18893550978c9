use crate::extract::{ApiJson, Caller, Client};
use crate::problem::{ApiResult, Problem};
use crate::views::*;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use civic_hub::Actor;

/// Signs in with username, password and (if enrolled) a TOTP code.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse),
        (status = 401, description = "wrong credentials, or a code is required", body = Problem),
        (status = 429, description = "too many failed sign-ins under this name or from this address: wait `Retry-After` seconds (or sign in with a device token)", body = Problem),
        (status = 422, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let signed_in = state
        .hub
        .login(
            &req.username,
            &req.password,
            req.totp.as_deref(),
            req.device.as_deref(),
            &client,
        )
        .await?;
    Ok(Json(LoginResponse {
        token: signed_in.token,
        token_type: "Bearer".into(),
        expires_at: signed_in.expires_at.to_rfc3339(),
        user: MeView::from(&signed_in.principal),
        device: signed_in.device,
    }))
}

/// Ends the current session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(State(state): State<AppState>, Caller(ctx): Caller) -> ApiResult<StatusCode> {
    state.hub.logout(&ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who am I: user, institution, duties, how I signed in.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeView), (status = 401, body = Problem)))]
pub async fn me(Caller(ctx): Caller) -> ApiResult<Json<MeView>> {
    match &ctx.actor {
        Actor::User { principal, .. } => Ok(Json(MeView::from(principal))),
        Actor::LocalOperator(_) => Err(crate::problem::ApiError::bad_request("not a user")),
    }
}

/// Starts enrolment of a TOTP second factor.
#[utoipa::path(post, path = "/api/v1/auth/totp/enrol", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TotpEnrolmentView), (status = 409, body = Problem)))]
pub async fn totp_enrol(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<Json<TotpEnrolmentView>> {
    let e = state.hub.enrol_totp(&ctx).await?;
    let qr_svg = qrcode::QrCode::new(e.otpauth_uri.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .map_err(|_| {
            crate::problem::ApiError::bad_request("the enrolment URI is too long for a QR code")
        })?;
    Ok(Json(TotpEnrolmentView {
        secret: e.secret_base32,
        otpauth_uri: e.otpauth_uri,
        qr_svg,
    }))
}

/// Confirms enrolment with a first code; the session then has two factors.
#[utoipa::path(post, path = "/api/v1/auth/totp/confirm", tag = "auth", security(("bearer" = [])),
    request_body = TotpConfirmRequest, responses((status = 204), (status = 401, body = Problem),
        (status = 409, description = "a confirmed second factor exists already", body = Problem),
        (status = 422, description = "the code does not match the new secret, or no enrolment was started", body = Problem)))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<TotpConfirmRequest>,
) -> ApiResult<StatusCode> {
    state.hub.confirm_totp(&ctx, &req.code).await?;
    Ok(StatusCode::NO_CONTENT)
}
