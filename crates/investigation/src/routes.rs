//! The epidemic investigation's routes: responses, cases, the due
//! procedure, routes, contacts, clusters, the end of a response.

use crate::Investigation;
use crate::{
    CaseDetail, CaseFilter, CaseSummary, Certificate, ClusterRow, ClusterView, ContactUpdate,
    ContactView, DataRequestInput, NewCaseRequest, OutboxView, RequestView, ResponseView,
    RoutesLoaded,
};
use axum::extract::FromRef;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use civic_core::identity::UserId;
use civic_core::investigation::{CaseId, ContactId, DataRequestId, ResponseId};
use civic_http::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use civic_http::problem::{ApiResult, Problem};
use civic_hub::Hub;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

#[derive(Debug, Deserialize, ToSchema)]
pub struct OpenResponseRequest {
    #[schema(schema_with = civic_core::schemas::text_300)]
    pub name: String,
    #[schema(schema_with = civic_core::schemas::text_300)]
    pub legal_basis: String,
    /// The response's rules (contact radius, minimum overlap, look-back…);
    /// omitted rules take their defaults.
    #[schema(schema_with = rules_schema)]
    pub rules: Option<civic_eiss::Rules>,
}

/// Lists outbreak responses.
#[utoipa::path(get, path = "/api/v1/responses", tag = "investigation", security(("bearer" = [])),
    responses((status = 200, body = [ResponseView]), (status = 403, body = Problem)))]
pub async fn list_responses(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<ResponseView>>> {
    Ok(Json(s.list_responses(&ctx).await?))
}

/// Opens an outbreak response with its legal basis and rules
/// (administrators of the health authority or the hub operator).
#[utoipa::path(post, path = "/api/v1/responses", tag = "investigation", security(("bearer" = [])),
    request_body = OpenResponseRequest,
    responses((status = 201, body = ResponseView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn open_response(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<OpenResponseRequest>,
) -> ApiResult<(StatusCode, Json<ResponseView>)> {
    let r = s
        .open_response(&ctx, &req.name, &req.legal_basis, req.rules)
        .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// One response.
#[utoipa::path(get, path = "/api/v1/responses/{id}", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")),
    responses((status = 200, body = ResponseView), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_response(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ResponseView>> {
    Ok(Json(s.get_response(&ctx, ResponseId(id)).await?))
}

/// Ends a response: the nodes delete what they answered for it, its data
/// key and every record of it are destroyed, and a signed deletion
/// certificate is kept in the audit ledger.
#[utoipa::path(post, path = "/api/v1/responses/{id}/close", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")),
    responses((status = 200, body = Certificate), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn close_response(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Certificate>> {
    Ok(Json(s.close_response(&ctx, ResponseId(id)).await?))
}

/// The deletion certificate of a closed response.
#[utoipa::path(get, path = "/api/v1/responses/{id}/certificate", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")),
    responses((status = 200, body = Certificate), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn certificate(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Certificate>> {
    Ok(Json(s.deletion_certificate(&ctx, ResponseId(id)).await?))
}

/// The response's cases the caller may read, filtered.
#[utoipa::path(get, path = "/api/v1/responses/{id}/cases", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id"), CaseFilter),
    responses((status = 200, body = [CaseSummary]), (status = 403, body = Problem)))]
pub async fn list_cases(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(filter): ApiQuery<CaseFilter>,
) -> ApiResult<Json<Vec<CaseSummary>>> {
    Ok(Json(s.list_cases(&ctx, ResponseId(id), filter).await?))
}

/// Registers cases (all or none), each assigned to an investigator of its
/// region.
#[utoipa::path(post, path = "/api/v1/responses/{id}/cases", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")), request_body = [NewCaseRequest],
    responses((status = 201, body = [CaseSummary]), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn register_cases(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(cases): ApiJson<Vec<NewCaseRequest>>,
) -> ApiResult<(StatusCode, Json<Vec<CaseSummary>>)> {
    let parsed = cases
        .into_iter()
        .map(NewCaseRequest::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let created = s.register_cases(&ctx, ResponseId(id), parsed).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Registers the cases of a case register (`text/csv`:
/// `case_id,region,onset_date,confirmed_date[,telco,subscriber_id,card_ids,transit_card_id,home_lat,home_lon]`).
#[utoipa::path(post, path = "/api/v1/responses/{id}/case-register", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")), request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = [CaseSummary]), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn import_cases(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    body: String,
) -> ApiResult<(StatusCode, Json<Vec<CaseSummary>>)> {
    let created = s.import_cases(&ctx, ResponseId(id), &body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    pub count: usize,
}

/// Records the interviews of the response's cases (`text/csv`, the
/// case-route format: `case_id,date,lat,lon[,start_time,end_time,place]`).
#[utoipa::path(post, path = "/api/v1/responses/{id}/interviews", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")), request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = Count), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn import_interviews(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    body: String,
) -> ApiResult<Json<Count>> {
    let count = s.import_interviews(&ctx, ResponseId(id), &body).await?;
    Ok(Json(Count { count }))
}

/// Loads routes published elsewhere (`text/csv`, the case-route format)
/// for cluster detection.
#[utoipa::path(post, path = "/api/v1/responses/{id}/routes", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")), request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = RoutesLoaded), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn import_routes(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    body: String,
) -> ApiResult<Json<RoutesLoaded>> {
    Ok(Json(s.import_routes(&ctx, ResponseId(id), &body).await?))
}

/// The response's clusters, with sources, transmission trees and epidemic
/// curves.
#[utoipa::path(get, path = "/api/v1/responses/{id}/clusters", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")),
    responses((status = 200, body = [ClusterView]), (status = 403, body = Problem)))]
pub async fn clusters(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<ClusterView>>> {
    Ok(Json(s.clusters(&ctx, ResponseId(id)).await?))
}

/// Every case with its cluster and the cluster's place.
#[utoipa::path(get, path = "/api/v1/responses/{id}/clusters/assignments", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")),
    responses((status = 200, body = [ClusterRow]), (status = 403, body = Problem)))]
pub async fn cluster_rows(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<ClusterRow>>> {
    Ok(Json(s.cluster_rows(&ctx, ResponseId(id)).await?))
}

/// The contacts of the response's cases the caller works on.
#[utoipa::path(get, path = "/api/v1/responses/{id}/contacts", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "response id")),
    responses((status = 200, body = [ContactView]), (status = 403, body = Problem)))]
pub async fn response_contacts(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<ContactView>>> {
    Ok(Json(s.response_contacts(&ctx, ResponseId(id)).await?))
}

/// One case: for its investigators with who it is, its interview, its
/// requests and the collection per holder.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, body = CaseDetail), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_case(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CaseDetail>> {
    Ok(Json(s.get_case(&ctx, CaseId(id)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignRequest {
    #[schema(value_type = Vec<i64>)]
    pub users: Vec<UserId>,
}

/// Assigns a case to investigators.
#[utoipa::path(put, path = "/api/v1/cases/{id}/assignees", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")), request_body = AssignRequest,
    responses((status = 204), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn assign_case(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<AssignRequest>,
) -> ApiResult<StatusCode> {
    s.assign_case(&ctx, CaseId(id), req.users).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A place the case told (local date and `HH:MM`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ToldRow {
    #[schema(schema_with = civic_core::schemas::date)]
    pub date: String,
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
    #[schema(schema_with = told_time)]
    pub start_time: Option<String>,
    #[schema(schema_with = told_time)]
    pub end_time: Option<String>,
    #[schema(schema_with = told_place)]
    pub place: Option<String>,
}

/// Records (replaces) a case's interview; its route is checked against
/// it again.
#[utoipa::path(put, path = "/api/v1/cases/{id}/interview", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")), request_body = [ToldRow],
    responses((status = 204), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn set_interview(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(rows): ApiJson<Vec<ToldRow>>,
) -> ApiResult<StatusCode> {
    // The rows as a case-route file of this case, parsed by the one parser.
    let field = |v: &Option<String>| v.clone().unwrap_or_default().replace([',', '"', '\n'], " ");
    let mut csv = String::from("case_id,date,lat,lon,start_time,end_time,place\n");
    for r in &rows {
        csv.push_str(&format!(
            "x,{},{},{},{},{},{}\n",
            r.date.replace(',', " "),
            r.lat,
            r.lon,
            field(&r.start_time),
            field(&r.end_time),
            field(&r.place)
        ));
    }
    s.set_interview_csv(&ctx, CaseId(id), &csv).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A case's reconstructed route: stay points with the sources supporting
/// each, trips, and the interview checked both ways.
#[utoipa::path(get, path = "/api/v1/cases/{id}/timeline", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn timeline(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<civic_eiss::route::Timeline>> {
    Ok(Json(s.timeline(&ctx, CaseId(id)).await?))
}

/// A case's contacts.
#[utoipa::path(get, path = "/api/v1/cases/{id}/contacts", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, body = [ContactView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn case_contacts(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<ContactView>>> {
    Ok(Json(s.case_contacts(&ctx, CaseId(id)).await?))
}

/// The notices sent about a case: the patient's, its contacts'.
#[utoipa::path(get, path = "/api/v1/cases/{id}/notices", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, body = [OutboxView]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn case_notices(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<OutboxView>>> {
    Ok(Json(s.case_notices(&ctx, CaseId(id)).await?))
}

/// A live feed of a case (server-sent events): `collection` as holders
/// answer, `stay_points` as the route grows, `contacts`, `cluster`.
#[utoipa::path(get, path = "/api/v1/cases/{id}/feed", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 403, body = Problem)))]
pub async fn feed(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    headers: axum::http::HeaderMap,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let case = CaseId(id);
    // Who may read the case may follow it; the subscription is audited.
    s.follow_case(&ctx, case).await?;
    let bearer = civic_http::extract::bearer(&headers)
        .unwrap_or_default()
        .to_owned();
    let events = s.case_events();
    let mut recheck = tokio::time::interval(FEED_RECHECK);
    recheck.reset();
    let mut access = s.activity().watch();
    access.mark_unchanged();
    let hub = s.clone();
    let state = (events, recheck, access);
    let stream = futures_util::stream::unfold(state, move |(mut rx, mut recheck, mut access)| {
        let (hub, bearer) = (hub.clone(), bearer.clone());
        async move {
            loop {
                tokio::select! {
                    // A signed-out, revoked or expired session, or a case
                    // no longer the caller's, ends the feed: checked at
                    // once when this process changes anyone's access,
                    // now and then for changes elsewhere (expiry, idle,
                    // another replica), and before each event.
                    _ = access.changed() => {
                        if !hub.may_still_follow(&bearer, case).await {
                            return None;
                        }
                    }
                    _ = recheck.tick() => {
                        if !hub.may_still_follow(&bearer, case).await {
                            return None;
                        }
                    }
                    got = rx.recv() => match got {
                        Ok(e) if e.case == case => {
                            if !hub.may_still_follow(&bearer, case).await {
                                return None;
                            }
                            let event = Event::default().event(e.kind).data(e.data.to_string());
                            return Some((Ok(event), (rx, recheck, access)));
                        }
                        Ok(_) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            // Missed some: tell the client to reload the case.
                            let event = Event::default().event("reload").data("{}");
                            return Some((Ok(event), (rx, recheck, access)));
                        }
                        Err(_) => return None,
                    }
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// How often a case feed checks that its caller is still signed in and
/// the case still hers.
const FEED_RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Asks for a case's data (investigators of its region or assigned),
/// within the response's look-back.
#[utoipa::path(post, path = "/api/v1/cases/{id}/data-requests", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")), request_body = DataRequestInput,
    responses((status = 201, body = RequestView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn request_data(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DataRequestInput>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let r = s.request_data(&ctx, CaseId(id), req).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// A case's data requests and where each stands.
#[utoipa::path(get, path = "/api/v1/cases/{id}/data-requests", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, body = [RequestView]), (status = 403, body = Problem)))]
pub async fn case_requests(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Vec<RequestView>>> {
    Ok(Json(s.list_requests(&ctx, Some(CaseId(id))).await?))
}

/// The approvals inbox: requests awaiting the caller's decision (an
/// approver's, or a police location officer's).
#[utoipa::path(get, path = "/api/v1/data-requests", tag = "investigation", security(("bearer" = [])),
    responses((status = 200, body = [RequestView]), (status = 403, body = Problem)))]
pub async fn inbox(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
) -> ApiResult<Json<Vec<RequestView>>> {
    Ok(Json(s.list_requests(&ctx, None).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct DecisionRequest {
    pub approve: bool,
    /// Required to reject.
    #[schema(schema_with = civic_core::schemas::reason_or_null)]
    pub reason: Option<String>,
}

/// Decides a data request in the caller's duty; the last approval starts
/// the collection.
#[utoipa::path(post, path = "/api/v1/data-requests/{id}/decision", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "data request id")), request_body = DecisionRequest,
    responses((status = 200, body = RequestView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn decide(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<DecisionRequest>,
) -> ApiResult<Json<RequestView>> {
    let r = s
        .decide_request(&ctx, DataRequestId(id), req.approve, req.reason.as_deref())
        .await?;
    Ok(Json(r))
}

/// Follows a contact up; `positive` makes it a case linked to its source.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "investigation", security(("bearer" = [])),
    params(("id" = i64, Path, description = "contact id")), request_body = ContactUpdate,
    responses((status = 200, body = ContactView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_contact(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<ContactUpdate>,
) -> ApiResult<Json<ContactView>> {
    Ok(Json(s.update_contact(&ctx, ContactId(id), req).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NotifyRequest {
    #[schema(value_type = Vec<i64>)]
    pub contacts: Vec<ContactId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Notified {
    pub notified: usize,
}

/// Notifies contacts (a notice each in the outbox).
#[utoipa::path(post, path = "/api/v1/contacts/notify", tag = "investigation", security(("bearer" = [])),
    request_body = NotifyRequest,
    responses((status = 200, body = Notified), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn notify(
    State(s): State<Investigation>,
    Caller(ctx): Caller,
    ApiJson(req): ApiJson<NotifyRequest>,
) -> ApiResult<Json<Notified>> {
    let notified = s.notify_contacts(&ctx, &req.contacts).await?;
    Ok(Json(Notified { notified }))
}

/// A response's rules as `civic_eiss::Rules::check` bounds them; each
/// omitted rule takes its default (`source_lookback_days` must also be at
/// least `lookback_days`, which a schema cannot say).
fn rules_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let number = |min: f64, max: f64, kind: Type| {
        ObjectBuilder::new()
            .schema_type(kind)
            .minimum(Some(min))
            .maximum(Some(max))
    };
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property("contact_radius_m", number(1.0, 2000.0, Type::Number))
        .property("min_overlap_minutes", number(1.0, 1440.0, Type::Integer))
        .property("lookback_days", number(0.0, 14.0, Type::Integer))
        .property("source_lookback_days", number(0.0, 28.0, Type::Integer))
        .property("stay_distance_m", number(10.0, 2000.0, Type::Number))
        .property("stay_minutes", number(1.0, 1440.0, Type::Integer))
        .property(
            "exposure_padding_minutes",
            number(0.0, 120.0, Type::Integer),
        )
        .property("utc_offset_minutes", number(-720.0, 840.0, Type::Integer))
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ))
        .build()
}

/// A told place's clock time, `HH:MM`; empty or absent for a day without
/// times.
fn told_time() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(r"^(([01][0-9]|2[0-3]):[0-5][0-9])?$"))
        .build()
}

/// A told place's name; empty or absent for none.
fn told_place() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f]*$"))
        .max_length(Some(200))
        .build()
}

/// The application's routes with their OpenAPI description, on any state
/// the server's applications can be taken from: the server mounts them in
/// one line (`.merge(routes())`).
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Investigation: FromRef<S>,
    Hub: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_responses, open_response))
        .routes(routes!(get_response))
        .routes(routes!(close_response))
        .routes(routes!(certificate))
        .routes(routes!(list_cases, register_cases))
        .routes(routes!(import_cases))
        .routes(routes!(import_interviews))
        .routes(routes!(import_routes))
        .routes(routes!(clusters))
        .routes(routes!(cluster_rows))
        .routes(routes!(response_contacts))
        .routes(routes!(get_case))
        .routes(routes!(assign_case))
        .routes(routes!(set_interview))
        .routes(routes!(timeline))
        .routes(routes!(case_contacts))
        .routes(routes!(case_notices))
        .routes(routes!(feed))
        .routes(routes!(request_data, case_requests))
        .routes(routes!(inbox))
        .routes(routes!(decide))
        .routes(routes!(update_contact))
        .routes(routes!(notify))
}
