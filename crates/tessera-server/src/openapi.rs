//! `GET /openapi.json`: the OpenAPI 3.1 description of every route the server answers,
//! written by hand in `openapi.json` beside this file (the API tests fail when a route is
//! missing from it, or when it names a route that does not exist).

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

/// The document, with the crate's version in `info.version`.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    include_str!("openapi.json").replacen("{{version}}", env!("CARGO_PKG_VERSION"), 1)
});

/// `GET /openapi.json`
pub async fn document() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        DOCUMENT.as_str(),
    )
        .into_response()
}
