//! Extractors: who is calling ([`AuthUser`], [`MaybeAuthUser`], [`SessionUser`]) and from where
//! ([`Client`]).
//!
//! Credentials are looked for in this order: `Authorization: Bearer`, the session cookie, the
//! access-token cookie. "No credentials" and "bad credentials" are different outcomes: a
//! [`MaybeAuthUser`] is `None` only when nothing was presented; a bad token is still a 401.
//! Cookie credentials on unsafe methods must carry a matching `X-CSRF-Token`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, Method, header};
use secrecy::SecretString;
use tessera::session::ActiveSession;
use tessera::store::ClientInfo;
use tessera::{Error, Principal};

use crate::cookies::CookieKind;
use crate::error::ApiError;
use crate::state::TesseraState;

/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where a request's credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer` (never sent by a browser on its own: no CSRF check).
    BearerHeader,
    /// The session cookie.
    SessionCookie,
    /// The access-token cookie.
    AccessCookie,
}

impl CredentialSource {
    /// Whether a browser attaches this credential by itself (so CSRF rules apply).
    pub fn is_cookie(self) -> bool {
        !matches!(self, CredentialSource::BearerHeader)
    }
}

/// An authenticated caller. Rejects with 401 when there are no or bad credentials, and with
/// 403 `csrf_failed` when a cookie credential comes without its CSRF token on an unsafe method.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Who is calling.
    pub principal: Principal,
    /// The session, when a session cookie authenticated the request.
    pub session: Option<ActiveSession>,
    /// Where the credential came from.
    pub source: CredentialSource,
}

/// A caller who may be anonymous: `None` only when no credentials were presented at all.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

/// A caller authenticated by the session cookie specifically (other credentials are ignored).
#[derive(Debug, Clone)]
pub struct SessionUser(pub AuthUser);

impl<S> FromRequestParts<S> for AuthUser
where
    TesseraState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = TesseraState::from_ref(state);
        let user = authenticate(&parts.headers, &state).await?.ok_or(Error::Unauthorized)?;
        check_csrf(&parts.method, &parts.headers, &state, &user)?;
        Ok(user)
    }
}

impl<S> FromRequestParts<S> for MaybeAuthUser
where
    TesseraState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = TesseraState::from_ref(state);
        let user = authenticate(&parts.headers, &state).await?;
        if let Some(user) = &user {
            check_csrf(&parts.method, &parts.headers, &state, user)?;
        }
        Ok(MaybeAuthUser(user))
    }
}

impl<S> FromRequestParts<S> for SessionUser
where
    TesseraState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = TesseraState::from_ref(state);
        let cookie =
            CookieKind::Session.get(&state.http, &parts.headers).ok_or(Error::Unauthorized)?;
        let user = session_user(&state, cookie).await?;
        check_csrf(&parts.method, &parts.headers, &state, &user)?;
        Ok(SessionUser(user))
    }
}

/// Authenticates whatever credential the request carries; `Ok(None)` if it carries none.
pub async fn authenticate(
    headers: &HeaderMap,
    state: &TesseraState,
) -> Result<Option<AuthUser>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value =
            value.to_str().map_err(|_| Error::TokenInvalid("unreadable Authorization header"))?;
        if let Some((scheme, token)) = value.trim().split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
        {
            let principal = state.auth.authenticate_token(token.trim()).await?;
            return Ok(Some(AuthUser {
                principal,
                session: None,
                source: CredentialSource::BearerHeader,
            }));
        }
    }
    if let Some(cookie) = CookieKind::Session.get(&state.http, headers) {
        return session_user(state, cookie).await.map(Some);
    }
    if let Some(token) = CookieKind::Access.get(&state.http, headers) {
        let principal = state.auth.authenticate_token(token).await?;
        return Ok(Some(AuthUser {
            principal,
            session: None,
            source: CredentialSource::AccessCookie,
        }));
    }
    Ok(None)
}

async fn session_user(state: &TesseraState, cookie: &str) -> Result<AuthUser, ApiError> {
    let secret = SecretString::from(cookie.to_owned());
    let (principal, session) = state.auth.authenticate_session(&secret).await?;
    Ok(AuthUser { principal, session: Some(session), source: CredentialSource::SessionCookie })
}

/// Whether `method` changes state (and so needs CSRF protection when cookies authenticate it).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The CSRF rule: a cookie-authenticated unsafe request must carry the session's (or token
/// family's) CSRF token in `X-CSRF-Token`.
pub fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    state: &TesseraState,
    user: &AuthUser,
) -> Result<(), ApiError> {
    if !is_unsafe(method) || !user.source.is_cookie() {
        return Ok(());
    }
    check_csrf_token(headers, state, &user.principal.sid)
}

/// Checks that `X-CSRF-Token` is the CSRF token of `sid`.
pub fn check_csrf_token(
    headers: &HeaderMap,
    state: &TesseraState,
    sid: &str,
) -> Result<(), ApiError> {
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::CsrfFailed("the X-CSRF-Token header is missing"))?;
    if state.auth.csrf().verify(sid, presented.trim()) {
        Ok(())
    } else {
        Err(ApiError::CsrfFailed("the X-CSRF-Token header does not match this login"))
    }
}

/// Where a request comes from: its IP and user agent, as recorded with a login.
#[derive(Debug, Clone, Default)]
pub struct Client(pub ClientInfo);

/// Set once the missing-`ConnectInfo` warning has been logged.
static MISSING_PEER_WARNED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The longest user agent kept with a session.
const USER_AGENT_MAX: usize = 256;

impl<S> FromRequestParts<S> for Client
where
    TesseraState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = TesseraState::from_ref(state);
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let ip = peer.map(|peer| state.http.trusted_proxies.client_ip(peer, &parts.headers));
        if peer.is_none() && !MISSING_PEER_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "no peer address on requests: per-IP login throttling is off. Serve the router \
                 with `into_make_service_with_connect_info::<SocketAddr>()`"
            );
        }
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(USER_AGENT_MAX).collect());
        Ok(Client(ClientInfo { ip: ip.map(|ip| ip.to_string()), user_agent }))
    }
}
