//! The plain-HTTP listener of `[tls] redirect_http`: every request gets a permanent redirect
//! to the same path on the HTTPS public URL. The target is built from the configured public
//! URL, never from the request's `Host` header, so the redirector cannot be pointed elsewhere.

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// A router that redirects everything to `public_url` (an `https://` URL without a trailing
/// slash).
pub fn router(public_url: String) -> Router {
    Router::new()
        .fallback(redirect)
        .with_state(public_url)
        .layer(axum::middleware::from_fn(tessera_axum::layers::security_headers))
}

async fn redirect(State(public_url): State<String>, request: Request) -> Response {
    // Only the path and query travel; an absolute-form request target's host is ignored.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = if path.starts_with('/') { path } else { "/" };
    match HeaderValue::from_str(&format!("{public_url}{path}")) {
        Ok(location) => {
            (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
