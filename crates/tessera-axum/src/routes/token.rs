//! Token authentication: `POST /v1/token` (with `?delivery=cookie`), `POST /v1/token/refresh`,
//! `POST /v1/token/revoke` (RFC 7009) and the JWKS.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tessera::{AuthMethod, TokenGrant};

use super::session::Credentials;
use crate::body::{BodyKind, JsonOrForm, RawBody, body_kind, parse_form, parse_json};
use crate::cookies::CookieKind;
use crate::error::ApiError;
use crate::extract::{Client, check_csrf_token};
use crate::state::TesseraState;

/// Where the tokens go: the JSON body (default) or HttpOnly cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Body,
    Cookie,
}

#[derive(Deserialize)]
struct DeliveryQuery {
    delivery: Option<String>,
}

fn delivery(uri: &Uri) -> Result<Option<Delivery>, ApiError> {
    let query: DeliveryQuery = serde_urlencoded::from_str(uri.query().unwrap_or(""))
        .map_err(|e| ApiError::Validation(format!("query: {e}")))?;
    match query.delivery.as_deref() {
        None => Ok(None),
        Some("body") => Ok(Some(Delivery::Body)),
        Some("cookie") => Ok(Some(Delivery::Cookie)),
        Some(_) => Err(ApiError::Validation("delivery: must be `cookie` or `body`".into())),
    }
}

#[derive(Serialize)]
struct TokenBody {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: String,
    refresh_expires_in: u64,
}

#[derive(Serialize)]
struct CookieDeliveryBody {
    csrf_token: String,
    expires_in: u64,
    refresh_expires_in: u64,
}

fn grant_response(state: &TesseraState, grant: TokenGrant, delivery: Delivery) -> Response {
    let now = state.auth.now();
    let remaining = grant.refresh.expires_at.since(now);
    let refresh_expires_in = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    match delivery {
        Delivery::Body => Json(TokenBody {
            access_token: grant.access.token,
            token_type: "Bearer",
            expires_in: grant.access.expires_in,
            refresh_token: grant.refresh.token.expose_secret().to_owned(),
            refresh_expires_in,
        })
        .into_response(),
        Delivery::Cookie => {
            let access =
                CookieKind::Access.set(&state.http, &grant.access.token, grant.access.expires_in);
            let refresh = CookieKind::Refresh.set(
                &state.http,
                grant.refresh.token.expose_secret(),
                refresh_expires_in,
            );
            let body = CookieDeliveryBody {
                csrf_token: grant.csrf_token,
                expires_in: grant.access.expires_in,
                refresh_expires_in,
            };
            let mut response = Json(body).into_response();
            response.headers_mut().append(header::SET_COOKIE, access);
            response.headers_mut().append(header::SET_COOKIE, refresh);
            response
        }
    }
}

pub(super) async fn login(
    State(state): State<TesseraState>,
    Client(client): Client,
    uri: Uri,
    JsonOrForm(credentials): JsonOrForm<Credentials>,
) -> Result<Response, ApiError> {
    let delivery = delivery(&uri)?.unwrap_or(Delivery::Body);
    let auth = &state.auth;
    let user = auth
        .login(AuthMethod::Token, &credentials.username, &credentials.password, &client)
        .await?;
    let grant = auth.issue_tokens(&user, &client).await?;
    Ok(grant_response(&state, grant, delivery))
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: Option<SecretString>,
}

/// Parses an optional JSON or form body.
fn optional_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Option<T>, ApiError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    match body_kind(headers) {
        BodyKind::Json => parse_json(bytes).map(Some),
        BodyKind::Form => parse_form(bytes).map(Some),
        BodyKind::Other => Err(ApiError::UnsupportedMediaType(
            "application/json or application/x-www-form-urlencoded",
        )),
    }
}

pub(super) async fn refresh(
    State(state): State<TesseraState>,
    Client(client): Client,
    uri: Uri,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<Response, ApiError> {
    let requested = delivery(&uri)?;
    let body: Option<RefreshRequest> = optional_body(&headers, &bytes)?;
    let (token, from_cookie) = match body.and_then(|b| b.refresh_token) {
        Some(token) => (token, false),
        None => match CookieKind::Refresh.get(&state.http, &headers) {
            Some(cookie) => (SecretString::from(cookie.to_owned()), true),
            None => {
                return Err(ApiError::Validation(
                    "refresh_token: missing (in the body, or the refresh cookie)".into(),
                ));
            }
        },
    };
    if from_cookie && let Some(sid) = state.auth.refresh_token_family(&token).await? {
        check_csrf_token(&headers, &state, &sid)?;
    }
    let delivery = requested.unwrap_or(if from_cookie { Delivery::Cookie } else { Delivery::Body });
    match state.auth.refresh(&token, &client).await {
        Ok(grant) => Ok(grant_response(&state, grant, delivery)),
        Err(e)
            if from_cookie
                && !matches!(e, tessera::Error::Store(_) | tessera::Error::Internal(_)) =>
        {
            // The cookie holds a dead token: clear both cookies with the error.
            let mut response = ApiError::from(e).into_response();
            for cookie in
                [CookieKind::Access.clear(&state.http), CookieKind::Refresh.clear(&state.http)]
            {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct RevokeRequest {
    token: Option<SecretString>,
}

pub(super) async fn revoke(
    State(state): State<TesseraState>,
    Client(client): Client,
    headers: HeaderMap,
    RawBody(bytes): RawBody,
) -> Result<Response, ApiError> {
    let body: Option<RevokeRequest> = optional_body(&headers, &bytes)?;
    if let Some(token) = body.and_then(|b| b.token) {
        state.auth.revoke_token(&token, &client).await?;
        return Ok(StatusCode::OK.into_response());
    }
    // Cookie mode: no body, the refresh cookie names the login to end (a CSRF-checked logout).
    let Some(cookie) = CookieKind::Refresh.get(&state.http, &headers) else {
        return Err(ApiError::Validation("token: missing".into()));
    };
    let token = SecretString::from(cookie.to_owned());
    if let Some(sid) = state.auth.refresh_token_family(&token).await? {
        check_csrf_token(&headers, &state, &sid)?;
        state.auth.revoke_token(&token, &client).await?;
    }
    let mut response = StatusCode::OK.into_response();
    for cookie in [CookieKind::Access.clear(&state.http), CookieKind::Refresh.clear(&state.http)] {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

pub(super) async fn jwks(State(state): State<TesseraState>) -> Response {
    let body = state.auth.jwks_json().to_string();
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60")),
        ],
        body,
    )
        .into_response()
}
