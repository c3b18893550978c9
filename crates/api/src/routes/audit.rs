use crate::extract::{ApiPath, ApiQuery, Caller};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::views::*;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use civic_core::audit::{AuditQuery, AuditRecord};
use civic_core::identity::UserId;
use civic_core::time::Timestamp;
use civic_hub::oversight::{AccessPatterns, LedgerCheck, LedgerStatus};

/// A search term: 1-200 characters, no control characters (a NUL would
/// not even fit in a PostgreSQL text column).
fn bounded(field: &'static str, value: Option<String>) -> ApiResult<Option<String>> {
    value
        .map(|v| civic_core::error::parse_text(field, &v, 200))
        .transpose()
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                e.to_string(),
            )
        })
}

fn instant(field: &'static str, value: Option<String>) -> ApiResult<Option<Timestamp>> {
    value
        .map(|v| Timestamp::parse_rfc3339(&v))
        .transpose()
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                format!("{field}: {}", e.message),
            )
        })
}

/// Searches the audit ledger (security auditors), newest first.
#[utoipa::path(get, path = "/api/v1/audit/records", tag = "audit", security(("bearer" = [])),
    params(AuditSearchParams),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn search(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiQuery(p): ApiQuery<AuditSearchParams>,
) -> ApiResult<Json<AuditPage>> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=AuditQuery::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "limit: must be 1-1000",
        ));
    }
    let query = AuditQuery {
        institution: None,
        actor: p.actor.map(UserId),
        actor_name: bounded("actor_name", p.actor_name)?,
        subject: bounded("subject", p.subject)?,
        resource: bounded("resource", p.resource)?,
        action: bounded("action", p.action)?,
        from: instant("from", p.from)?,
        until: instant("until", p.until)?,
        before_seq: match p.before {
            Some(b) if b > i64::MAX as u64 => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation",
                    "before: must be a record's sequence number",
                ))
            }
            other => other,
        },
        limit,
    };
    let records = state.hub.search_audit(&ctx, query).await?;
    let next_before = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(AuditPage {
        records,
        next_before,
    }))
}

/// One audit record.
#[utoipa::path(get, path = "/api/v1/audit/records/{seq}", tag = "audit", security(("bearer" = [])),
    params(("seq" = u64, Path, description = "sequence number")),
    responses((status = 200, body = AuditRecord), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn record(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiPath(seq): ApiPath<u64>,
) -> ApiResult<Json<AuditRecord>> {
    Ok(Json(state.hub.audit_record(&ctx, seq).await?))
}

/// Inclusion proof of a record in a signed tree head.
#[utoipa::path(get, path = "/api/v1/audit/inclusion", tag = "audit", security(("bearer" = [])),
    params(InclusionParams),
    responses((status = 200, body = InclusionProofView), (status = 400, body = Problem)))]
pub async fn inclusion(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiQuery(p): ApiQuery<InclusionParams>,
) -> ApiResult<Json<InclusionProofView>> {
    let proof = state.hub.inclusion_proof(&ctx, p.seq, p.tree_size).await?;
    Ok(Json(InclusionProofView {
        seq: proof.seq,
        tree_size: proof.tree_size,
        leaf_hash: proof.leaf_hash,
        proof: proof.proof,
        tree_head: proof.tree_head,
    }))
}

/// The newest signed tree head and the hub's public key.
#[utoipa::path(get, path = "/api/v1/audit/tree-head", tag = "audit", responses((status = 200, body = TreeHeadView)))]
pub async fn tree_head(State(state): State<AppState>) -> ApiResult<Json<TreeHeadView>> {
    let tree_head = state.hub.tree_head().await?;
    Ok(Json(TreeHeadView {
        tree_head,
        public_key: state.hub.public_key_hex(),
    }))
}

/// Consistency proof between two tree sizes.
#[utoipa::path(get, path = "/api/v1/audit/consistency", tag = "audit", params(ConsistencyParams),
    responses((status = 200, body = ConsistencyProofView), (status = 400, body = Problem)))]
pub async fn consistency(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ConsistencyParams>,
) -> ApiResult<Json<ConsistencyProofView>> {
    let proof = state.hub.consistency_proof(p.first, p.second).await?;
    Ok(Json(ConsistencyProofView {
        first: proof.first,
        second: proof.second,
        proof: proof.proof,
    }))
}

/// The ledger's newest signed tree head and its last full verification
/// (security auditors).
#[utoipa::path(get, path = "/api/v1/audit/verification", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = LedgerStatus), (status = 403, body = Problem)))]
pub async fn verification(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<Json<LedgerStatus>> {
    Ok(Json(state.hub.ledger_status(&ctx).await?))
}

/// Verifies the whole ledger now with the hub's key, as `civic audit
/// verify` does, and keeps the result (security auditors). A ledger that
/// fails is reported in the body, with `verified: false`.
#[utoipa::path(post, path = "/api/v1/audit/verification", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = LedgerCheck), (status = 403, body = Problem)))]
pub async fn verify_now(
    State(state): State<AppState>,
    Caller(ctx): Caller,
) -> ApiResult<Json<LedgerCheck>> {
    Ok(Json(state.hub.verify_ledger_now(&ctx).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatternParams {
    /// Start of the period (RFC 3339); default: 7 days before `until`.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// End of the period (RFC 3339); default: now.
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// Officials' look-ups of cases in a period, with those who look up far
/// more cases than their peers flagged (security auditors).
#[utoipa::path(get, path = "/api/v1/audit/access-patterns", tag = "audit", security(("bearer" = [])),
    params(PatternParams),
    responses((status = 200, body = AccessPatterns), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn access_patterns(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    ApiQuery(p): ApiQuery<PatternParams>,
) -> ApiResult<Json<AccessPatterns>> {
    let until = instant("until", p.until)?.unwrap_or_else(Timestamp::now);
    let from = match instant("from", p.from)? {
        Some(from) => from,
        None => Timestamp::from_micros(until.micros() - 7 * 86_400 * 1_000_000),
    };
    Ok(Json(state.hub.access_patterns(&ctx, from, until).await?))
}
