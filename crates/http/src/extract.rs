//! Extractors that turn malformed input into problem responses, and the
//! caller's identity.

use crate::problem::ApiError;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use civic_hub::{ClientInfo, Ctx, Hub};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// JSON body; a bad one is a 400/413/415/422 problem.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(mut value)) => {
                integral_numbers(&mut value);
                serde_json::from_value(value).map(Self).map_err(|e| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "validation",
                        format!("the body does not fit the operation: {e}"),
                    )
                })
            }
            Err(rejection) => {
                let status = rejection.status();
                let kind = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "too-large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
                    StatusCode::UNPROCESSABLE_ENTITY => "validation",
                    _ => "bad-request",
                };
                Err(ApiError::new(status, kind, rejection.body_text()))
            }
        }
    }
}

/// JSON Schema counts `3.0` as an integer; serde does not. A number with
/// no fraction becomes the integer it is, so that a client that writes
/// `"valid_days": 30.0` is read as the document promises.
fn integral_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(f) = n.as_f64() {
                // Within ±2^53 every integral f64 is an exact integer.
                if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

/// Query string; a bad one is a 400 problem.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

/// Path parameters; a bad one is a 400 problem.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

/// The request id the middleware gave this request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

pub fn client_info(parts: &Parts) -> ClientInfo {
    ClientInfo {
        addr: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
    }
}

/// Where a request came from (for routes that need no sign-in).
pub struct Client(pub ClientInfo);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_info(parts)))
    }
}

/// A signed-in caller: `Authorization: Bearer <session or API token>`.
pub struct Caller(pub Ctx);

/// The bearer token of a request, if it has one of a sane length.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256)
}

impl<S> FromRequestParts<S> for Caller
where
    Hub: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let bearer = bearer(&parts.headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in first: send Authorization: Bearer <token>",
            )
        })?;
        let actor = Hub::from_ref(state).authenticate(bearer).await?;
        Ok(Self(Ctx {
            actor,
            client: client_info(parts),
        }))
    }
}
