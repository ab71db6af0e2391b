//! [`Verifier`]: who checks a request's credentials for the extractors ([`AuthUser`],
//! [`MaybeAuthUser`](crate::MaybeAuthUser), [`SessionUser`](crate::SessionUser)): the engine
//! embedded in this process ([`TesseraState`]) or, with the `remote` feature, a Tessera server
//! running elsewhere (`remote::RemoteVerifier`).
//!
//! Handlers never see the difference: both give the same [`AuthUser`], with the same
//! rejections (401 `WWW-Authenticate` without or with bad credentials, 403 `csrf_failed` for a
//! cookie credential without its CSRF token on an unsafe method). An application's state
//! provides one through axum's [`FromRef`]: a [`TesseraState`] (or any state that a
//! [`TesseraState`] can be taken from) does so already, as does a `RemoteVerifier`; a state of
//! your own that holds a `RemoteVerifier` implements `FromRef<YourState> for Verifier`.

use axum::extract::FromRef;
use http::{HeaderMap, Method};
use tessera::Error;

use crate::cookies::CookieKind;
use crate::error::ApiError;
use crate::extract::{
    AuthUser, CredentialSource, access_cookie_user, authenticate, bearer_token, check_csrf,
    session_user,
};
use crate::state::TesseraState;

/// Where the extractors send credentials to be checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Verifier {
    /// The engine in this process.
    Embedded(TesseraState),
    /// A Tessera server elsewhere (remote mode).
    #[cfg(feature = "remote")]
    Remote(crate::remote::RemoteVerifier),
}

impl Verifier {
    /// Authenticates whatever credential a request with `method` and `headers` carries
    /// (bearer header, then session cookie, then access-token cookie) and applies the CSRF
    /// rule to cookie credentials; `Ok(None)` if it carries none.
    pub async fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<AuthUser>, ApiError> {
        match self {
            Verifier::Embedded(state) => {
                let user = authenticate(headers, state).await?;
                if let Some(user) = &user {
                    check_csrf(method, headers, state, user)?;
                }
                Ok(user)
            }
            #[cfg(feature = "remote")]
            Verifier::Remote(remote) => remote.authenticate(method, headers).await,
        }
    }

    /// Authenticates the session cookie alone (other credentials are ignored), with the CSRF
    /// rule; 401 without one.
    pub async fn authenticate_session(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<AuthUser, ApiError> {
        match self {
            Verifier::Embedded(state) => {
                let cookie =
                    CookieKind::Session.get(&state.http, headers).ok_or(Error::Unauthorized)?;
                let user = session_user(state, cookie).await?;
                check_csrf(method, headers, state, &user)?;
                Ok(user)
            }
            #[cfg(feature = "remote")]
            Verifier::Remote(remote) => remote.authenticate_session(method, headers).await,
        }
    }
}

impl Verifier {
    /// Authenticates an access token alone (the bearer header, else the access-token cookie;
    /// a session cookie is ignored), with the CSRF rule for the cookie; 401 without one.
    pub async fn authenticate_token(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<AuthUser, ApiError> {
        match self {
            Verifier::Embedded(state) => {
                if let Some(token) = bearer_token(headers)? {
                    let principal = state.auth.authenticate_token(token).await?;
                    let source = CredentialSource::BearerHeader;
                    return Ok(AuthUser { principal, session: None, source });
                }
                let token =
                    CookieKind::Access.get(&state.http, headers).ok_or(Error::Unauthorized)?;
                let user = access_cookie_user(state, token).await?;
                check_csrf(method, headers, state, &user)?;
                Ok(user)
            }
            #[cfg(feature = "remote")]
            Verifier::Remote(remote) => remote.authenticate_token(method, headers).await,
        }
    }
}

impl From<TesseraState> for Verifier {
    fn from(state: TesseraState) -> Self {
        Verifier::Embedded(state)
    }
}

/// Every state a [`TesseraState`] can be taken from verifies with it.
impl<S> FromRef<S> for Verifier
where
    TesseraState: FromRef<S>,
{
    fn from_ref(state: &S) -> Self {
        Verifier::Embedded(TesseraState::from_ref(state))
    }
}

#[cfg(feature = "remote")]
impl From<crate::remote::RemoteVerifier> for Verifier {
    fn from(remote: crate::remote::RemoteVerifier) -> Self {
        Verifier::Remote(remote)
    }
}

/// A `RemoteVerifier` as the whole application state.
#[cfg(feature = "remote")]
impl FromRef<crate::remote::RemoteVerifier> for Verifier {
    fn from_ref(remote: &crate::remote::RemoteVerifier) -> Self {
        Verifier::Remote(remote.clone())
    }
}
