//! [`ApiError`]: every failure a request can meet, mapped in one exhaustive `match` to a status
//! and an RFC 9457 problem document (`application/problem+json`) with a stable `code`.
//!
//! A 401 carries `WWW-Authenticate: Bearer`; a 429 carries `Retry-After`; a 500 or 503 logs its
//! cause and returns a generic body.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// An engine error (credentials, validation, store...).
    Engine(tessera::Error),
    /// The body is not syntactically valid JSON (or form data).
    InvalidJson(String),
    /// The body has the wrong content type.
    UnsupportedMediaType(&'static str),
    /// The body is over the size limit.
    PayloadTooLarge,
    /// A well-formed body with a missing or invalid field.
    Validation(String),
    /// A CSRF token or Origin check failed.
    CsrfFailed(&'static str),
    /// Authenticated, but not allowed to do this.
    Forbidden(&'static str),
    /// No such route or resource.
    NotFound,
    /// The method is not allowed on this path.
    MethodNotAllowed,
    /// The server took longer to answer than it allows itself (a slow store, say).
    Timeout,
    /// The client did not send its whole request body in time.
    RequestTimeout,
    /// Remote mode: the Tessera server that vouches for credentials could not be reached or
    /// gave an unusable answer, and nothing cached could decide. A 503 `store_unavailable`
    /// (the request fails closed); the cause is logged, never sent.
    AuthServerUnavailable(String),
}

impl From<tessera::Error> for ApiError {
    fn from(e: tessera::Error) -> Self {
        ApiError::Engine(e)
    }
}

impl From<tessera::store::StoreError> for ApiError {
    fn from(e: tessera::store::StoreError) -> Self {
        ApiError::Engine(e.into())
    }
}

/// The RFC 9457 problem document.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, fixed summary for the code.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// Stable machine-readable code (API.md "Error codes").
    pub code: &'static str,
    /// What went wrong this time.
    pub detail: String,
    /// The offending field, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
}

impl ApiError {
    /// Status, code, title and detail of this error.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str, String) {
        use tessera::Error as E;
        match self {
            ApiError::Engine(e) => match e {
                E::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "Invalid credentials",
                    "The username or password is wrong.".into(),
                ),
                E::RateLimited { retry_after } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Too many attempts",
                    format!("Too many login attempts; retry in {} s.", retry_secs(*retry_after)),
                ),
                E::Unauthorized => (
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Authentication required",
                    "No valid session cookie or bearer token was presented.".into(),
                ),
                E::SessionExpired => (
                    StatusCode::UNAUTHORIZED,
                    "session_expired",
                    "Session expired",
                    "The session has ended; log in again.".into(),
                ),
                E::TokenInvalid(why) => (
                    StatusCode::UNAUTHORIZED,
                    "token_invalid",
                    "Invalid token",
                    format!("The token is not valid: {why}."),
                ),
                E::TokenExpired => (
                    StatusCode::UNAUTHORIZED,
                    "token_expired",
                    "Token expired",
                    "The token has expired.".into(),
                ),
                E::TokenReused => (
                    StatusCode::UNAUTHORIZED,
                    "token_reused",
                    "Refresh token reused",
                    "This refresh token was already used; every token of its login has been \
                     revoked. Log in again."
                        .into(),
                ),
                E::UsernameTaken => (
                    StatusCode::CONFLICT,
                    "username_taken",
                    "Username taken",
                    "That username is already registered.".into(),
                ),
                E::Validation { field, message } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "Validation failed",
                    format!("{field}: {message}"),
                ),
                E::UserDisabled => (
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "Account disabled",
                    "This account has been disabled by an administrator.".into(),
                ),
                E::RegistrationClosed => (
                    StatusCode::FORBIDDEN,
                    "registration_closed",
                    "Registration closed",
                    "Self-service registration is disabled on this server.".into(),
                ),
                E::NotFound => {
                    (StatusCode::NOT_FOUND, "not_found", "Not found", "No such resource.".into())
                }
                E::Store(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "Store unavailable",
                    "A storage backend is unavailable; try again shortly.".into(),
                ),
                E::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Internal error",
                    "The server failed; the error has been logged.".into(),
                ),
            },
            ApiError::InvalidJson(why) => (
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "Malformed body",
                format!("The request body is not valid: {why}"),
            ),
            ApiError::UnsupportedMediaType(expected) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                format!("Expected a body of type {expected}."),
            ),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "The request body is larger than 16 KiB.".into(),
            ),
            ApiError::Validation(why) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
                why.clone(),
            ),
            ApiError::CsrfFailed(why) => {
                (StatusCode::FORBIDDEN, "csrf_failed", "CSRF check failed", (*why).into())
            }
            ApiError::Forbidden(why) => {
                (StatusCode::FORBIDDEN, "forbidden", "Forbidden", (*why).into())
            }
            ApiError::NotFound => {
                (StatusCode::NOT_FOUND, "not_found", "Not found", "No such resource.".into())
            }
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "This path does not accept that method.".into(),
            ),
            ApiError::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Request timed out",
                "The request took too long.".into(),
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request body timed out",
                "The request body did not arrive in time.".into(),
            ),
            ApiError::AuthServerUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "Authentication server unavailable",
                "The authentication server cannot be reached; try again shortly.".into(),
            ),
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            ApiError::Engine(tessera::Error::Validation { field, .. }) => Some(field),
            _ => None,
        }
    }
}

fn retry_secs(retry_after: std::time::Duration) -> u64 {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    secs.max(1)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title, detail) = self.parts();
        match &self {
            ApiError::Engine(tessera::Error::Store(e)) => {
                tracing::error!(error = %e, "store unavailable: failing closed");
            }
            ApiError::Engine(tessera::Error::Internal(e)) => {
                tracing::error!(error = %e, "internal error");
            }
            ApiError::AuthServerUnavailable(why) => {
                tracing::error!(error = %why, "the Tessera server is unavailable: failing closed");
            }
            _ => {}
        }
        let problem = Problem {
            kind: format!("urn:tessera:problem:{code}"),
            title,
            status: status.as_u16(),
            code,
            detail,
            field: self.field(),
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = if code.starts_with("token_") {
                r#"Bearer realm="tessera", error="invalid_token""#
            } else {
                r#"Bearer realm="tessera""#
            };
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        if let ApiError::Engine(tessera::Error::RateLimited { retry_after }) = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_secs(*retry_after)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_secs(std::time::Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(std::time::Duration::from_millis(2001)), 3);
        assert_eq!(retry_secs(std::time::Duration::from_secs(600)), 600);
    }
}
