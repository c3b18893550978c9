//! The tenant's gate, before anything else the broker does: what the
//! request does (read, write, register), what the tenant's settings ask
//! for it (`crate::tenancy`), the caller's token or session when they ask
//! for one, the policy's decision, and the caller's rate.
//!
//! A token given is always checked, even where none is needed: a caller
//! that sends a bad one learns it at once, and what it does is audited
//! under its name. Denials are in the ledger (`citydata.read`,
//! `.subscribe`, `.write`, `.register`); allowed requests are not, one by one (city data is not
//! personal data), but the administrative acts they make are, naming the
//! caller (`tenancy::CALLER`).

use super::Problem;
use crate::problem::NgsiError;
use crate::tenancy::{Rule, CALLER};
use crate::CityData;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use civic_core::policy::CityOp;
use civic_hub::{Actor, Ctx, HubError};

pub async fn gate(State(c): State<CityData>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match admit(&c, &parts).await {
        Ok(caller) => {
            let req = Request::from_parts(parts, body);
            CALLER.scope(caller, next.run(req)).await
        }
        Err(e) => {
            let kind = e.kind;
            let mut r = Problem(e).into_response();
            let h = r.headers_mut();
            match kind {
                crate::problem::ErrorKind::Unauthorized => {
                    h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                crate::problem::ErrorKind::TooManyRequests => {
                    h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
                }
                _ => {}
            }
            r
        }
    }
}

/// What a request does to its tenant.
pub fn op_of(method: &Method, path: &str) -> CityOp {
    let path = path.strip_prefix("/ngsi-ld/v1").unwrap_or(path);
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if path.starts_with("/subscriptions") || path.starts_with("/csourceSubscriptions") {
        return CityOp::Subscribe;
    }
    // Registering sends others' requests to the source; the @contexts
    // are shared by every tenant of the broker.
    if path.starts_with("/csourceRegistrations") || path.starts_with("/jsonldContexts") {
        return if reads {
            CityOp::Read
        } else {
            CityOp::Register
        };
    }
    // A query sent as a POST is a read.
    let path = path.trim_end_matches('/');
    if reads || path == "/entityOperations/query" || path == "/temporal/entityOperations/query" {
        CityOp::Read
    } else {
        CityOp::Write
    }
}

/// The caller, if the request may go on.
async fn admit(c: &CityData, parts: &axum::http::request::Parts) -> Result<Option<Ctx>, NgsiError> {
    let tenant = super::tenant(&parts.headers);
    let op = op_of(&parts.method, parts.uri.path());
    let rule = c.rule(&tenant, op).await?;
    let bearer = civic_http::extract::bearer(&parts.headers);
    if parts.headers.contains_key(header::AUTHORIZATION) && bearer.is_none() {
        return Err(NgsiError::unauthorized(
            "the Authorization header is not a bearer token",
        ));
    }
    let caller = match bearer {
        Some(bearer) => {
            let actor = c.authenticate(bearer).await.map_err(|e| match e {
                HubError::Unauthenticated(why) => NgsiError::unauthorized(why),
                _ => NgsiError::internal("the token could not be checked; try again"),
            })?;
            Some(Ctx {
                actor,
                client: civic_http::extract::client_info(parts),
            })
        }
        None => None,
    };
    match (&rule, &caller) {
        (Rule::Anyone, _) => {}
        (Rule::NoTenant, _) => {
            return Err(NgsiError::no_tenant(format!(
                "there is no tenant {tenant:?}: an administrator sets it up (PUT /api/v1/citydata/tenants)"
            )))
        }
        (Rule::Policy(_), None) => {
            return Err(NgsiError::unauthorized(format!(
                "this tenant asks for a token to {}: send Authorization: Bearer <API token or session>",
                op.as_str()
            )))
        }
        (Rule::Policy(settings), Some(ctx)) => {
            let resource = format!("ngsi-tenant:{tenant}");
            let action = format!("citydata.{}", op.as_str());
            c.authorize(ctx, settings.action(op), &action, &resource)
                .await
                .map_err(|e| match e {
                    HubError::Forbidden { reason, .. } => NgsiError::forbidden(reason),
                    _ => NgsiError::internal("the policy could not be asked; try again"),
                })?;
        }
    }
    match &caller {
        Some(ctx) => {
            let limit = c.config.city_requests_per_minute;
            let key = match &ctx.actor {
                Actor::User {
                    session: Some(s), ..
                } => format!("session:{s}"),
                Actor::User { principal, .. } => format!("client:{}", principal.user.0),
                Actor::LocalOperator(name) => format!("local:{name}"),
            };
            if limit > 0 && !c.throttle.admit(&key, limit) {
                return Err(NgsiError::too_many(format!(
                    "more than {limit} requests in a minute from this caller; try again in a minute"
                )));
            }
        }
        // Without a token, an open tenant's callers are counted by their
        // address.
        None => {
            let limit = c.config.city_anonymous_requests_per_minute;
            let addr = civic_http::extract::client_info(parts).addr;
            if let (true, Some(addr)) = (limit > 0, addr) {
                if !c.throttle.admit(&format!("address:{addr}"), limit) {
                    return Err(NgsiError::too_many(format!(
                        "more than {limit} requests in a minute from this address without a token; try again in a minute, or send a token (Authorization: Bearer …), which has its own limit"
                    )));
                }
            }
        }
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_reads_writes_or_registrations() {
        let op = |m: &str, p: &str| op_of(&m.parse().unwrap(), &format!("/ngsi-ld/v1{p}"));
        assert_eq!(op("GET", "/entities"), CityOp::Read);
        assert_eq!(op("POST", "/entityOperations/query"), CityOp::Read);
        assert_eq!(op("POST", "/entityOperations/query/"), CityOp::Read);
        assert_eq!(op("POST", "/subscriptions"), CityOp::Subscribe);
        assert_eq!(op("GET", "/subscriptions"), CityOp::Subscribe);
        assert_eq!(
            op("DELETE", "/csourceSubscriptions/urn:x"),
            CityOp::Subscribe
        );
        assert_eq!(op("POST", "/entities"), CityOp::Write);
        assert_eq!(op("PATCH", "/entities/urn:x/attrs"), CityOp::Write);
        assert_eq!(op("POST", "/entityOperations/upsert"), CityOp::Write);
        assert_eq!(op("DELETE", "/temporal/entities/urn:x"), CityOp::Write);
        assert_eq!(op("POST", "/temporal/entityOperations/query"), CityOp::Read);
        assert_eq!(op("POST", "/jsonldContexts"), CityOp::Register);
        assert_eq!(op("GET", "/jsonldContexts"), CityOp::Read);
        assert_eq!(op("GET", "/csourceRegistrations"), CityOp::Read);
        assert_eq!(op("POST", "/csourceRegistrations"), CityOp::Register);
        assert_eq!(op("PATCH", "/csourceRegistrations/urn:r"), CityOp::Register);
        assert_eq!(
            op("DELETE", "/csourceRegistrations/urn:r"),
            CityOp::Register
        );
    }
}
