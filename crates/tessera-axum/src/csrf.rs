//! CSRF protection for an application's own routes, HTML forms included.
//!
//! A browser sends cookies by itself, so a request that a cookie authenticates and that changes
//! something (POST, PUT, PATCH, DELETE) must also prove that the page which sent it came from
//! this site: it carries the login's CSRF token, which another site cannot read (API.md). The
//! extractors ([`AuthUser`] and friends) already enforce that rule on the
//! `X-CSRF-Token` header. This module adds the two things server-rendered applications need:
//!
//! - [`CsrfToken`], an extractor giving the token of the request's cookie credential, to
//!   render into a form as a hidden field named [`CSRF_FORM_FIELD`];
//! - [`CsrfLayer`], which enforces the rule for every route below it, whether or not the
//!   handler takes an extractor, and reads the token from the header or, for an HTML form
//!   (`application/x-www-form-urlencoded`, at most [`MAX_FORM_BYTES`]), from that field. The
//!   user it authenticated is handed on, so extractors below it do not check again.
//!
//! ```no_run
//! use axum::{Form, Router, response::Html, routing::get};
//! use tessera_axum::{CsrfLayer, CsrfToken, SessionUser, TesseraState};
//!
//! async fn page(user: SessionUser, csrf: CsrfToken) -> Html<String> {
//!     // Escape anything user-controlled in real HTML; the token is base64url.
//!     Html(format!(
//!         r#"<form method="post"><input type="hidden" name="csrf_token" value="{}">
//!            <input name="text"><button>Add</button></form>"#,
//!         csrf.0
//!     ))
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Item {
//!     text: String,
//! }
//!
//! async fn add(user: SessionUser, Form(item): Form<Item>) -> String {
//!     format!("{} added {}", user.0.principal.username, item.text)
//! }
//!
//! fn app(state: TesseraState) -> Router {
//!     Router::new()
//!         .route("/items", get(page).post(add))
//!         .layer(CsrfLayer::new(state.clone()))
//!         .with_state(state)
//! }
//! ```

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{FromRef, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, header};
use secrecy::{ExposeSecret, SecretString};
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::extract::{AuthUser, CSRF_HEADER, is_unsafe};
use crate::verifier::Verifier;

/// The form field [`CsrfLayer`] reads the CSRF token from when the header is absent.
pub const CSRF_FORM_FIELD: &str = "csrf_token";

/// The largest form body [`CsrfLayer`] reads to find the token (413 beyond).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// What [`CsrfLayer`] or an earlier extractor found out about a request (its credentials in
/// the usual order), so the extractors after it do not check again.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) Option<AuthUser>);

/// The login (`sid`) a cookie credential authenticated, recorded by [`SessionUser`],
/// [`TokenUser`] and [`CsrfLayer`], so that a [`CsrfToken`] after them only derives the token.
///
/// [`SessionUser`]: crate::SessionUser
/// [`TokenUser`]: crate::TokenUser
#[derive(Debug, Clone)]
pub(crate) struct CookieSid(String);

/// Records the login of a user authenticated by a cookie in the request's extensions.
pub(crate) fn remember_cookie_user(extensions: &mut http::Extensions, user: &AuthUser) {
    if user.source.is_cookie() {
        extensions.insert(CookieSid(user.principal.sid.clone()));
    }
}

/// The CSRF token of the request's cookie credential (session or access-token cookie), to put
/// in a form's [`CSRF_FORM_FIELD`] or a script's `X-CSRF-Token` header. 401 when the request
/// has no cookie credential (a bearer token needs no CSRF token). Placed after a
/// [`SessionUser`](crate::SessionUser) or [`TokenUser`](crate::TokenUser) in a handler's
/// arguments, it does not look the credential up again.
pub struct CsrfToken(pub String);

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken([redacted])")
    }
}

impl<S> FromRequestParts<S> for CsrfToken
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let verifier = Verifier::from_ref(state);
        // An extractor before this one has authenticated the cookie: derive the token only.
        if let (Verifier::Embedded(state), Some(CookieSid(sid))) =
            (&verifier, parts.extensions.get::<CookieSid>())
        {
            return Ok(CsrfToken(state.auth.csrf().token_for(sid)));
        }
        let token = verifier.csrf_token(&parts.headers).await?;
        Ok(CsrfToken(token.expose_secret().to_owned()))
    }
}

/// Enforces the CSRF rule on every unsafe request below it; see the [module docs](self).
///
/// Requests that carry no credential pass (the handler decides whether it needs one); a bad
/// credential is refused with 401, a cookie credential without its token with 403
/// `csrf_failed`, a form body over [`MAX_FORM_BYTES`] with 413.
#[derive(Debug, Clone)]
pub struct CsrfLayer {
    verifier: Verifier,
}

impl CsrfLayer {
    /// A layer checking credentials with `verifier` (a [`TesseraState`](crate::TesseraState),
    /// or a remote verifier in remote mode).
    pub fn new(verifier: impl Into<Verifier>) -> Self {
        CsrfLayer { verifier: verifier.into() }
    }
}

impl<S> Layer<S> for CsrfLayer {
    type Service = CsrfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CsrfService { inner, verifier: self.verifier.clone() }
    }
}

/// The service of [`CsrfLayer`].
#[derive(Debug, Clone)]
pub struct CsrfService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S> Service<Request> for CsrfService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone that was made ready is the one called (tower's readiness contract).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        if !is_unsafe(request.method()) {
            return Box::pin(inner.call(request));
        }
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let request = match token_from_form(request).await {
                Ok(request) => request,
                Err(refusal) => return Ok(refusal.into_response()),
            };
            let (mut parts, body) = request.into_parts();
            match verifier.authenticate(&parts.method, &parts.headers).await {
                Ok(user) => {
                    if let Some(user) = &user {
                        remember_cookie_user(&mut parts.extensions, user);
                    }
                    parts.extensions.insert(Authenticated(user));
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// For a form without the header: reads the body (bounded), copies the form's token into the
/// header, and puts the body back for the handler.
async fn token_from_form(request: Request) -> Result<Request, ApiError> {
    if request.headers().contains_key(CSRF_HEADER) || !is_form(request.headers()) {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    let bytes =
        axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| ApiError::PayloadTooLarge)?;
    let token = form_urlencoded_field(&bytes, CSRF_FORM_FIELD);
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(&t).ok()) {
        parts.headers.insert(CSRF_HEADER, value);
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// The first value of `name` in a urlencoded body.
fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

impl Verifier {
    /// The CSRF token of the cookie credential `headers` carry (session cookie first); 401
    /// without one.
    pub async fn csrf_token(&self, headers: &HeaderMap) -> Result<SecretString, ApiError> {
        match self {
            Verifier::Embedded(state) => {
                let user = crate::extract::cookie_user(headers, state)
                    .await?
                    .ok_or(tessera::Error::Unauthorized)?;
                Ok(SecretString::from(state.auth.csrf().token_for(&user.principal.sid)))
            }
            #[cfg(feature = "remote")]
            Verifier::Remote(remote) => remote.csrf_token(headers).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_urlencoded_forms_only() {
        assert_eq!(
            form_urlencoded_field(b"text=hi&csrf_token=abc%2Bd&csrf_token=second", "csrf_token"),
            Some("abc+d".to_owned())
        );
        assert_eq!(form_urlencoded_field(b"text=hi", "csrf_token"), None);
        let mut headers = HeaderMap::new();
        assert!(!is_form(&headers));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(!is_form(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=utf-8"),
        );
        assert!(is_form(&headers));
    }
}
