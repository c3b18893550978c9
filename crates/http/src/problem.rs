//! The one place where errors become HTTP responses: RFC 9457
//! `application/problem+json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use civic_hub::HubError;
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// True when the caller must sign in again with a TOTP code, or enrol one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second_factor_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error on its way to becoming a problem response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub detail: String,
    pub second_factor_required: Option<bool>,
    /// Seconds to wait before trying again (429).
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
            second_factor_required: None,
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            HubError::Invalid(_) => Self::new(S::UNPROCESSABLE_ENTITY, "validation", detail),
            HubError::BadRequest(_) => Self::new(S::BAD_REQUEST, "bad-request", detail),
            HubError::Unauthenticated(_) => Self::new(S::UNAUTHORIZED, "unauthenticated", detail),
            HubError::InvalidCredentials => {
                Self::new(S::UNAUTHORIZED, "invalid-credentials", detail)
            }
            HubError::TooManyRequests => {
                Self::new(S::TOO_MANY_REQUESTS, "too-many-requests", detail)
            }
            HubError::SignInWait { seconds } => Self {
                retry_after: Some(seconds),
                ..Self::new(S::TOO_MANY_REQUESTS, "sign-in-wait", detail)
            },
            HubError::Forbidden {
                needs_second_factor,
                ..
            } => Self {
                second_factor_required: needs_second_factor.then_some(true),
                ..Self::new(S::FORBIDDEN, "forbidden", detail)
            },
            HubError::NotFound(_) => Self::new(S::NOT_FOUND, "not-found", detail),
            HubError::Conflict(_) => Self::new(S::CONFLICT, "conflict", detail),
            HubError::Store(inner) => {
                // The cause goes to the log (it holds no personal data: SQL
                // errors name tables and constraints); the caller gets a
                // request id to quote.
                tracing::error!(error = %inner, "storage failed");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request failed inside the hub; quote the request id to the operator",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_owned();
        let body = Problem {
            kind: format!("https://civic-data-hub.example/problems/{}", self.kind),
            title,
            status: self.status.as_u16(),
            detail: self.detail,
            second_factor_required: self.second_factor_required,
            request_id: None, // filled in by the request-id middleware
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            let seconds = self.retry_after.unwrap_or(60).max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"civic\""),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
