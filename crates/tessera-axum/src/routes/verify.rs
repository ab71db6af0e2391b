//! `GET /v1/verify`: forward authentication for reverse proxies (nginx `auth_request`, Traefik
//! `forwardAuth`, Caddy `forward_auth`).
//!
//! 200 with `X-Auth-User-Id`, `X-Auth-Username`, `X-Auth-Method` (and `X-Auth-Session-Id`,
//! `X-Auth-Expires-At`; `X-Auth-CSRF-Token` for a cookie credential when the request asks for
//! it with `X-Tessera-Want-Csrf: 1`, as remote mode does) when the forwarded request
//! carries a valid session cookie or token; 401 otherwise, or a redirect to the login page for a
//! browser (`Accept: text/html`) when `?rd=` names an allowed place to come back to.
//!
//! CSRF: when the original request is authenticated by a cookie and is unsafe (its method from
//! `X-Forwarded-Method` or `X-Original-Method`; without either header every request counts),
//! its `Origin`, if present, must be an allowed origin or the origin the proxy forwarded
//! (`X-Forwarded-Proto` + `X-Forwarded-Host`, else `Host`). Together with `SameSite` cookies this keeps other sites
//! from riding the user's cookie into the protected application.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};

use super::verify_headers::{
    CSRF_TOKEN, EXPIRES_AT, METHOD, SESSION_ID, USER_ID, USERNAME, WANT_CSRF,
};
use crate::error::ApiError;
use crate::extract::{AuthUser, authenticate, is_unsafe};
use crate::state::{TesseraState, normalize_origin};

#[derive(Serialize)]
struct VerifiedBody {
    id: String,
    username: String,
    auth_method: &'static str,
    session_id: String,
}

pub(super) async fn verify(
    State(state): State<TesseraState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let user = match authenticate(&headers, &state).await {
        Ok(Some(user)) => user,
        Ok(None) => return refuse(&state, &uri, &headers, tessera::Error::Unauthorized.into()),
        Err(e) => return refuse(&state, &uri, &headers, e),
    };
    if let Err(e) = check_forwarded_origin(&state, &headers, &user) {
        return e.into_response();
    }
    // Remote mode asks for the CSRF token of a cookie credential, to check the application's
    // own unsafe requests; a proxy that does not ask never gets it.
    let csrf = (user.source.is_cookie() && header_str(&headers, WANT_CSRF) == Some("1"))
        .then(|| state.auth.csrf().token_for(&user.principal.sid));
    let p = user.principal;
    let identity = [
        (USER_ID, p.user_id.clone()),
        (USERNAME, p.username.clone()),
        (METHOD, p.method.as_str().to_owned()),
        (SESSION_ID, p.sid.clone()),
        (EXPIRES_AT, p.expires_at.unix_seconds().to_string()),
    ];
    let mut response = Json(VerifiedBody {
        id: p.user_id,
        username: p.username,
        auth_method: p.method.as_str(),
        session_id: p.sid,
    })
    .into_response();
    for (name, value) in identity {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
    if let Some(Ok(mut csrf)) = csrf.map(|token| HeaderValue::from_str(&token)) {
        csrf.set_sensitive(true);
        // (`Cache-Control: no-store` comes with every API response.)
        response.headers_mut().insert(HeaderName::from_static(CSRF_TOKEN), csrf);
    }
    response
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn check_forwarded_origin(
    state: &TesseraState,
    headers: &HeaderMap,
    user: &AuthUser,
) -> Result<(), ApiError> {
    if !user.source.is_cookie() {
        return Ok(());
    }
    let original = header_str(headers, "x-forwarded-method")
        .or_else(|| header_str(headers, "x-original-method"))
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
    // Without the original method (nginx sends its auth subrequests as GET unless told
    // otherwise), any request carrying an Origin is checked.
    if original.is_some_and(|m| !is_unsafe(&m)) {
        return Ok(());
    }
    let Some(origin) = header_str(headers, header::ORIGIN.as_str()) else { return Ok(()) };
    let host = header_str(headers, "x-forwarded-host").or_else(|| header_str(headers, "host"));
    let scheme = header_str(headers, "x-forwarded-proto").unwrap_or("https");
    let forwarded = host.and_then(|h| normalize_origin(&format!("{scheme}://{h}")));
    let same_as_forwarded = forwarded.is_some() && normalize_origin(origin) == forwarded;
    if same_as_forwarded || state.http.origin_allowed(origin, None) {
        Ok(())
    } else {
        Err(ApiError::CsrfFailed("the original request's Origin is not allowed"))
    }
}

#[derive(Deserialize)]
struct RedirectQuery {
    rd: Option<String>,
}

/// 401, or for a browser asking for HTML with an acceptable `rd`, a redirect to the login page.
fn refuse(state: &TesseraState, uri: &Uri, headers: &HeaderMap, error: ApiError) -> Response {
    let unauthorized = error.parts().0 == StatusCode::UNAUTHORIZED;
    let wants_html =
        header_str(headers, header::ACCEPT.as_str()).is_some_and(|a| a.contains("text/html"));
    let rd = serde_urlencoded::from_str::<RedirectQuery>(uri.query().unwrap_or(""))
        .ok()
        .and_then(|q| q.rd)
        .filter(|rd| redirect_allowed(state, rd));
    match rd {
        Some(rd) if unauthorized && wants_html => {
            let query = serde_urlencoded::to_string([("rd", rd.as_str())]).unwrap_or_default();
            let location = format!("{}/?{query}", state.http.public_origin);
            match HeaderValue::from_str(&location) {
                Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
                Err(_) => error.into_response(),
            }
        }
        _ => error.into_response(),
    }
}

/// A redirect target must be a local path or an absolute URL on an allowed origin; anything
/// else would make Tessera an open redirector.
fn redirect_allowed(state: &TesseraState, rd: &str) -> bool {
    if rd.len() > 2048 || rd.chars().any(|c| c.is_control() || c == '\\') {
        return false;
    }
    if rd.starts_with('/') {
        return !rd.starts_with("//");
    }
    normalize_origin(rd).is_some() && state.http.origin_allowed(rd, None)
}
