//! The web application, served by the hub itself: a page and its scripts,
//! styles and map library, embedded in the binary from `web/app` (nothing
//! to install, nothing fetched from outside). The pages call the same
//! `/api/v1` as every other client, with the session's bearer token.
//!
//! Every page gets a strict Content-Security-Policy: scripts and styles
//! from the hub only (nothing inline), connections to the hub only, images
//! from the hub, `data:` and the configured tile server, and no framing.

use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

macro_rules! asset {
    ($path:literal, $mime:literal) => {
        (
            $path,
            $mime,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../web/app/",
                $path
            )) as &[u8],
        )
    };
}

/// (path under `/app/`, content type, bytes)
const ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("i18n.js", "text/javascript; charset=utf-8"),
    asset!("charts.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!(
        "vendor/leaflet/leaflet.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("vendor/leaflet/leaflet.css", "text/css; charset=utf-8"),
    asset!("vendor/leaflet/images/layers.png", "image/png"),
    asset!("vendor/leaflet/images/layers-2x.png", "image/png"),
    asset!("vendor/leaflet/images/marker-icon.png", "image/png"),
    asset!("vendor/leaflet/images/marker-icon-2x.png", "image/png"),
    asset!("vendor/leaflet/images/marker-shadow.png", "image/png"),
];

const INDEX: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../web/app/index.html"
));

/// The application's routes: `/` and `/app/…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/app/{*path}", get(asset))
}

/// The tile server's origin, for the policy's `img-src`.
fn tile_origin(url: Option<&str>) -> String {
    url.and_then(|u| {
        let scheme_end = u.find("://")? + 3;
        let host_end = u[scheme_end..]
            .find('/')
            .map_or(u.len(), |i| scheme_end + i);
        Some(format!(" {}", &u[..host_end]))
    })
    .unwrap_or_default()
}

fn secure_headers(headers: &mut HeaderMap, tile_url: Option<&str>) {
    let policy = |images: &str| {
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; \
             img-src 'self' data:{images}; connect-src 'self'; font-src 'self'; object-src 'none'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        )
    };
    // The configuration admits only plain hosts; should one still not fit
    // a header, the pages lose their tiles, never their policy.
    let value = HeaderValue::from_str(&policy(&tile_origin(tile_url)))
        .unwrap_or_else(|_| HeaderValue::from_str(&policy("")).expect("the policy is ASCII"));
    headers.insert(header::CONTENT_SECURITY_POLICY, value);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The pages show personal data: never keep them in a shared cache.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn index(State(s): State<AppState>) -> Response {
    let mut response =
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response();
    secure_headers(response.headers_mut(), s.hub.config.map_tile_url.as_deref());
    response
}

async fn asset(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    let Some((_, mime, bytes)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return crate::problem::ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such file")
            .into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, *mime)], *bytes).into_response();
    secure_headers(response.headers_mut(), s.hub.config.map_tile_url.as_deref());
    response
}

#[cfg(test)]
mod tests {
    use super::tile_origin;

    #[test]
    fn the_tile_servers_origin_is_allowed_for_images() {
        assert_eq!(
            tile_origin(Some("https://tiles.example.kr/{z}/{x}/{y}.png")),
            " https://tiles.example.kr"
        );
        assert_eq!(tile_origin(None), "");
    }
}
