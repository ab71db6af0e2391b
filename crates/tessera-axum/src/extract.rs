//! Extractors: who is calling ([`AuthUser`], [`MaybeAuthUser`], [`SessionUser`],
//! [`TokenUser`]) and from where ([`Client`]).
//!
//! Credentials are looked for in this order: `Authorization: Bearer`, the session cookie, the
//! access-token cookie. "No credentials" and "bad credentials" are different outcomes: a
//! [`MaybeAuthUser`] is `None` only when nothing was presented; a bad token is still a 401.
//! Cookie credentials on unsafe methods must carry a matching `X-CSRF-Token`.
//!
//! The extractors work on any state a [`Verifier`] can be taken from: the embedded engine's
//! [`TesseraState`] or, in remote mode, a `RemoteVerifier` (see [`crate::verifier`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use http::request::Parts;
use http::{HeaderMap, Method, header};
use tessera::session::ActiveSession;
use tessera::store::ClientInfo;
use tessera::{Error, Principal};

use crate::cookies::CookieKind;
use crate::csrf::{Authenticated, remember_cookie_user};
use crate::error::ApiError;
use crate::state::TesseraState;
use crate::verifier::Verifier;

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
/// 403 `csrf_failed` when a cookie credential comes without its CSRF token on an unsafe method
/// (and, in remote mode, with 503 `store_unavailable` when the Tessera server cannot vouch for
/// the credential and nothing cached can).
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Who is calling.
    pub principal: Principal,
    /// The session, when a session cookie authenticated the request in embedded mode (in
    /// remote mode the record stays on the server: `None`).
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

/// A caller authenticated by an access token specifically: the `Authorization: Bearer` header,
/// else the access-token cookie (a session cookie is ignored).
#[derive(Debug, Clone)]
pub struct TokenUser(pub AuthUser);

impl<S> FromRequestParts<S> for AuthUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Ok(MaybeAuthUser::from_request_parts(parts, state).await?.0.ok_or(Error::Unauthorized)?)
    }
}

impl<S> FromRequestParts<S> for MaybeAuthUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // A `CsrfLayer` above has done the work already.
        if let Some(Authenticated(user)) = parts.extensions.get::<Authenticated>() {
            return Ok(MaybeAuthUser(user.clone()));
        }
        // Nothing is recorded for the extractors after this one: this is the hot path of
        // every authenticated request, and a copy of the user costs allocations.
        let verifier = Verifier::from_ref(state);
        Ok(MaybeAuthUser(verifier.authenticate(&parts.method, &parts.headers).await?))
    }
}

impl<S> FromRequestParts<S> for SessionUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(Authenticated(Some(user))) = parts.extensions.get::<Authenticated>()
            && user.source == CredentialSource::SessionCookie
        {
            return Ok(SessionUser(user.clone()));
        }
        let verifier = Verifier::from_ref(state);
        let user = verifier.authenticate_session(&parts.method, &parts.headers).await?;
        remember_cookie_user(&mut parts.extensions, &user);
        Ok(SessionUser(user))
    }
}

impl<S> FromRequestParts<S> for TokenUser
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(Authenticated(Some(user))) = parts.extensions.get::<Authenticated>()
            && user.source != CredentialSource::SessionCookie
        {
            return Ok(TokenUser(user.clone()));
        }
        let verifier = Verifier::from_ref(state);
        let user = verifier.authenticate_token(&parts.method, &parts.headers).await?;
        remember_cookie_user(&mut parts.extensions, &user);
        Ok(TokenUser(user))
    }
}

/// Authenticates whatever credential the request carries; `Ok(None)` if it carries none.
pub async fn authenticate(
    headers: &HeaderMap,
    state: &TesseraState,
) -> Result<Option<AuthUser>, ApiError> {
    if let Some(token) = bearer_token(headers)? {
        let principal = state.auth.authenticate_token(token).await?;
        return Ok(Some(AuthUser {
            principal,
            session: None,
            source: CredentialSource::BearerHeader,
        }));
    }
    cookie_user(headers, state).await
}

/// Authenticates the request's cookie credential: the session cookie, else the access-token
/// cookie; `Ok(None)` without either. (The CSRF rule is the caller's.)
pub async fn cookie_user(
    headers: &HeaderMap,
    state: &TesseraState,
) -> Result<Option<AuthUser>, ApiError> {
    if let Some(cookie) = CookieKind::Session.get(&state.http, headers) {
        return session_user(state, cookie).await.map(Some);
    }
    if let Some(token) = CookieKind::Access.get(&state.http, headers) {
        return access_cookie_user(state, token).await.map(Some);
    }
    Ok(None)
}

pub(crate) async fn access_cookie_user(
    state: &TesseraState,
    token: &str,
) -> Result<AuthUser, ApiError> {
    let principal = state.auth.authenticate_token(token).await?;
    Ok(AuthUser { principal, session: None, source: CredentialSource::AccessCookie })
}

/// The token of an `Authorization: Bearer` header; `None` without one (or with another
/// scheme), an error if a bearer token is not readable text.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    // On bytes: only the token has to be text, and a JWT is checked character by character
    // later anyway (validating the whole header first cost as much as the rest of this).
    let value = value.as_bytes().trim_ascii();
    let Some(space) = value.iter().position(|&b| b == b' ') else { return Ok(None) };
    if !value[..space].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let token = value[space + 1..].trim_ascii();
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| Error::TokenInvalid("unreadable Authorization header").into())
}

pub(crate) async fn session_user(state: &TesseraState, cookie: &str) -> Result<AuthUser, ApiError> {
    let (principal, session) = state.auth.authenticate_session_cookie(cookie).await?;
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
    if state.auth.csrf().verify(sid, presented_csrf_token(headers)?) {
        Ok(())
    } else {
        Err(CSRF_MISMATCH)
    }
}

/// The refusal of a CSRF token that is not the login's.
pub(crate) const CSRF_MISMATCH: ApiError =
    ApiError::CsrfFailed("the X-CSRF-Token header does not match this login");

/// The `X-CSRF-Token` header's value; 403 `csrf_failed` without one.
pub(crate) fn presented_csrf_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or(ApiError::CsrfFailed("the X-CSRF-Token header is missing"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &[u8]) -> Result<Option<String>, ()> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, http::HeaderValue::from_bytes(value).unwrap());
        bearer_token(&headers).map(|t| t.map(str::to_owned)).map_err(|_| ())
    }

    #[test]
    fn bearer_tokens_are_found_in_any_case_and_spacing() {
        assert_eq!(bearer(b"Bearer abc.def"), Ok(Some("abc.def".into())));
        assert_eq!(bearer(b"bEARER   abc  "), Ok(Some("abc".into())));
        assert_eq!(bearer(b"Bearer\tabc"), Ok(None), "the scheme ends at a space");
        assert_eq!(bearer(b"Basic dXNlcjpwdw=="), Ok(None));
        assert_eq!(bearer(b"Basic \xff"), Ok(None), "another scheme's bytes are not ours");
        assert_eq!(bearer(b"Bearer"), Ok(None));
        assert_eq!(bearer(b"Bearer \xffabc"), Err(()));
        assert_eq!(bearer_token(&HeaderMap::new()).unwrap(), None);
    }
}
