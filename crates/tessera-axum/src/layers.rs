//! Middleware every API response goes through: the Origin rule for unsafe requests (CSRF
//! defence that also covers login), CORS for the configured origins, and security headers.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use crate::error::ApiError;
use crate::extract::is_unsafe;
use crate::state::TesseraState;

/// API.md: when an `Origin` header is present on an unsafe request (login included), it must be
/// one of the allowed origins, else 403 `csrf_failed`.
pub async fn require_allowed_origin(
    State(state): State<TesseraState>,
    request: Request,
    next: Next,
) -> Response {
    if is_unsafe(request.method())
        && let Some(origin) = request.headers().get(header::ORIGIN)
    {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let allowed = origin.to_str().is_ok_and(|o| state.http.origin_allowed(o, host));
        if !allowed {
            return ApiError::CsrfFailed("the request's Origin is not allowed").into_response();
        }
    }
    next.run(request).await
}

/// Adds `nosniff`, `no-referrer`, frame denial, a locked-down CSP and `Cache-Control:
/// no-store` (credentials and tokens must never be cached) unless the handler set its own.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// CORS for the origins in [`HttpSettings::allowed_origins`](crate::HttpSettings): a page on
/// such an origin may call the API with credentials (cookies or `Authorization`) and read the
/// answers. Preflights (`OPTIONS` with `Access-Control-Request-Method`) from those origins are
/// answered here; every other origin gets no CORS headers, so browsers keep their same-origin
/// rule.
pub async fn cors(State(state): State<TesseraState>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(crate::state::normalize_origin)
        .filter(|o| state.http.allowed_origins.contains(o));
    let Some(origin) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) else {
        return next.run(request).await;
    };
    let preflight = request.method() == http::Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = http::StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PUT, DELETE"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-csrf-token"),
        );
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, www-authenticate"),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    response
}
