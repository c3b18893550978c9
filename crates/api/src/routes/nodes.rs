use crate::extract::{ApiJson, ApiPath, Caller, Client};
use crate::problem::{ApiResult, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use civic_core::identity::InstitutionId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeTokenRequest {
    /// The node's name, e.g. `node-skt` (3-64 of a-z, 0-9, '-', '.').
    #[schema(schema_with = civic_core::schemas::node_name)]
    pub name: String,
    /// Hours the token is valid (1-168, default 24).
    #[schema(minimum = 1, maximum = 168)]
    pub valid_hours: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct NodeTokenView {
    pub name: String,
    /// The one-time token: shown once.
    pub token: String,
    pub expires_at: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub token: String,
    #[schema(schema_with = civic_core::schemas::node_name)]
    pub name: String,
    /// PEM certificate signing request of the node's TLS key.
    pub csr: String,
    /// The node's Ed25519 public key (hex), for its signed answers.
    pub signing_key: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnrolledView {
    pub name: String,
    /// The institution the node holds data for: grants name it as holder.
    pub institution: String,
    /// The node's certificate (PEM), from the hub's CA.
    pub certificate: String,
    /// The CA certificate (PEM): the node trusts the hub by it.
    pub ca: String,
    /// The name in the hub's certificate.
    pub hub_name: String,
    /// The hub's Ed25519 key (hex): it signs envelopes and endorses grants.
    pub hub_key: String,
}

/// Issues a one-time enrolment token for a node of the institution.
#[utoipa::path(post, path = "/api/v1/institutions/{id}/node-tokens", tag = "nodes", security(("bearer" = [])),
    params(("id" = i64, Path, description = "institution id")), request_body = NodeTokenRequest,
    responses((status = 201, body = NodeTokenView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn issue_token(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<NodeTokenRequest>,
) -> ApiResult<(StatusCode, Json<NodeTokenView>)> {
    let (token, expires_at) = state
        .hub
        .issue_enrolment_token(&ctx, InstitutionId(id), &req.name, req.valid_hours)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NodeTokenView {
            name: req.name.trim().to_ascii_lowercase(),
            token,
            expires_at: expires_at.to_rfc3339(),
        }),
    ))
}

/// A node enrols: its token, its CSR and its signing key for a certificate.
#[utoipa::path(post, path = "/api/v1/nodes/enrol", tag = "nodes", request_body = EnrolRequest,
    responses((status = 200, body = EnrolledView), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn enrol(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(req): ApiJson<EnrolRequest>,
) -> ApiResult<Json<EnrolledView>> {
    let e = state
        .hub
        .enrol_node(&req.token, &req.name, &req.csr, &req.signing_key, &client)
        .await?;
    Ok(Json(EnrolledView {
        name: e.name,
        institution: e.institution,
        certificate: e.certificate,
        ca: e.ca,
        hub_name: e.hub_name,
        hub_key: e.hub_key,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NodeRouteRequest {
    /// Where the node answers the hub, e.g. `https://10.0.0.5:9443`.
    #[schema(schema_with = civic_core::schemas::node_url)]
    pub url: String,
    /// `pings`, `transactions` or `taps`.
    #[schema(schema_with = civic_core::schemas::node_kind)]
    pub kind: String,
    /// The holder's code in case registers (`skt`, `shinhan`).
    #[schema(schema_with = civic_core::schemas::holder_code)]
    pub code: String,
}

/// Records where an enrolled node answers and what it holds
/// (administrators of its institution).
#[utoipa::path(put, path = "/api/v1/nodes/{name}/route", tag = "nodes", security(("bearer" = [])),
    params(("name" = String, Path, description = "node name")), request_body = NodeRouteRequest,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn register_node(
    State(s): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<NodeRouteRequest>,
) -> ApiResult<StatusCode> {
    s.hub
        .register_node(&ctx, &name, &req.url, &req.kind, &req.code)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
