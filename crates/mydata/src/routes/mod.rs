//! MyData's HTTP routes: parse input into domain types, call the service,
//! map the result (with `civic_http`'s extractors and problems). No
//! handler decides access itself.

mod catalogue;
mod support;
mod transfers;

use crate::MyData;
use axum::extract::FromRef;
use civic_hub::Hub;
use utoipa_axum::{router::OpenApiRouter, routes};

/// The application's routes with their OpenAPI description, on any state
/// the server's applications can be taken from: the server mounts them in
/// one line (`.merge(routes())`).
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    MyData: FromRef<S>,
    Hub: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(catalogue::catalogue, catalogue::publish))
        .routes(routes!(catalogue::agreements, catalogue::apply))
        .routes(routes!(catalogue::agreement))
        .routes(routes!(catalogue::note))
        .routes(routes!(transfers::request, transfers::list))
        .routes(routes!(transfers::get))
        .routes(routes!(transfers::consent))
        .routes(routes!(transfers::refuse))
        .routes(routes!(transfers::withdraw))
        .routes(routes!(transfers::receipt))
        .routes(routes!(transfers::package))
        .routes(routes!(transfers::resend))
        .routes(routes!(transfers::deletion))
        .routes(routes!(transfers::events))
        .routes(routes!(transfers::webhook))
        .routes(routes!(transfers::verify))
        .routes(routes!(transfers::jwks))
        .routes(routes!(transfers::status_list))
        .routes(routes!(transfers::accesses))
        .routes(routes!(transfers::export))
        .routes(routes!(support::tickets, support::open_ticket))
        .routes(routes!(support::ticket))
        .routes(routes!(support::reply))
        .routes(routes!(support::trainings, support::create_training))
        .routes(routes!(support::add_attendee))
        .routes(routes!(support::history))
}
