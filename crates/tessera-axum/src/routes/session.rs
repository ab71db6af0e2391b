//! Session authentication: `POST/GET/DELETE /v1/session`, `GET/DELETE /v1/sessions`,
//! `DELETE /v1/sessions/{id}`.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tessera::Timestamp;
use tessera::session::ActiveSession;

use crate::body::JsonOrForm;
use crate::cookies::CookieKind;
use crate::error::ApiError;
use crate::extract::{AuthUser, Client, CredentialSource, SessionUser};
use crate::state::TesseraState;

#[derive(Deserialize)]
pub(super) struct Credentials {
    pub(super) username: String,
    pub(super) password: SecretString,
}

#[derive(Serialize)]
pub(super) struct UserRef {
    id: String,
    username: String,
}

#[derive(Serialize)]
pub(super) struct SessionBody {
    user: UserRef,
    session_id: String,
    csrf_token: String,
    expires_at: Timestamp,
    idle_expires_at: Timestamp,
}

fn session_body(state: &TesseraState, session: &ActiveSession) -> Json<SessionBody> {
    let sid = session.sid();
    Json(SessionBody {
        user: UserRef { id: session.user_id(), username: session.username().to_owned() },
        csrf_token: state.auth.csrf().token_for(&sid),
        session_id: sid,
        expires_at: session.expires_at(),
        idle_expires_at: session.idle_expires_at,
    })
}

pub(super) async fn login(
    State(state): State<TesseraState>,
    Client(client): Client,
    headers: HeaderMap,
    JsonOrForm(credentials): JsonOrForm<Credentials>,
) -> Result<Response, ApiError> {
    let (cookie, new) = state
        .login_session(&credentials.username, &credentials.password, &client, &headers)
        .await?;
    Ok(([(header::SET_COOKIE, cookie)], session_body(&state, &new.session)).into_response())
}

pub(super) async fn current(
    State(state): State<TesseraState>,
    SessionUser(user): SessionUser,
) -> Response {
    match &user.session {
        Some(session) => session_body(&state, session).into_response(),
        None => ApiError::Engine(tessera::Error::Unauthorized).into_response(),
    }
}

pub(super) async fn logout(
    State(state): State<TesseraState>,
    SessionUser(user): SessionUser,
    Client(client): Client,
) -> Result<Response, ApiError> {
    let cookie = state.logout_session(&user, &client).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

#[derive(Serialize)]
pub(super) struct LoginEntry {
    id: String,
    kind: &'static str,
    created_at: Timestamp,
    last_seen_at: Timestamp,
    expires_at: Timestamp,
    ip: Option<String>,
    user_agent: Option<String>,
    current: bool,
}

#[derive(Serialize)]
pub(super) struct LoginList {
    sessions: Vec<LoginEntry>,
}

pub(super) async fn list(
    State(state): State<TesseraState>,
    user: AuthUser,
) -> Result<Json<LoginList>, ApiError> {
    let sessions = state
        .auth
        .list_logins(&user.principal)
        .await?
        .into_iter()
        .map(|l| LoginEntry {
            id: l.id,
            kind: l.method.as_str(),
            created_at: l.created_at,
            last_seen_at: l.last_seen_at,
            expires_at: l.expires_at,
            ip: l.client.ip,
            user_agent: l.client.user_agent,
            current: l.current,
        })
        .collect();
    Ok(Json(LoginList { sessions }))
}

/// The `Set-Cookie` headers that clear the cookies a cookie-authenticated caller holds.
pub(super) fn clear_caller_cookies(
    state: &TesseraState,
    source: CredentialSource,
) -> Vec<(header::HeaderName, http::HeaderValue)> {
    match source {
        CredentialSource::BearerHeader => Vec::new(),
        CredentialSource::SessionCookie => {
            vec![(header::SET_COOKIE, CookieKind::Session.clear(&state.http))]
        }
        CredentialSource::AccessCookie => vec![
            (header::SET_COOKIE, CookieKind::Access.clear(&state.http)),
            (header::SET_COOKIE, CookieKind::Refresh.clear(&state.http)),
        ],
    }
}

fn no_content_with(headers: Vec<(header::HeaderName, http::HeaderValue)>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    for (name, value) in headers {
        response.headers_mut().append(name, value);
    }
    response
}

pub(super) async fn end_one(
    State(state): State<TesseraState>,
    user: AuthUser,
    Client(client): Client,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    // A handle that is not even valid UTF-8 cannot name a login.
    let Path(id) = path.map_err(|_| ApiError::NotFound)?;
    state.auth.end_login(&user.principal, &id, &client).await?;
    let cookies = if id == user.principal.sid {
        clear_caller_cookies(&state, user.source)
    } else {
        Vec::new()
    };
    Ok(no_content_with(cookies))
}

pub(super) async fn logout_everywhere(
    State(state): State<TesseraState>,
    user: AuthUser,
    Client(client): Client,
) -> Result<Response, ApiError> {
    state.auth.end_all_logins(&user.principal, &client).await?;
    Ok(no_content_with(clear_caller_cookies(&state, user.source)))
}
