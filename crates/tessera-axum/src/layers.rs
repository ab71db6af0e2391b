//! Middleware every API response goes through: the Origin rule for unsafe requests (CSRF
//! defence that also covers login), and security headers.

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
