//! Middleware every API response goes through: the Origin rule for unsafe requests (CSRF
//! defence that also covers login), CORS for the configured origins, and security headers.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::extract::is_unsafe;
use crate::state::{HttpSettings, TesseraState};

/// API.md: when an `Origin` header is present on an unsafe request (login included), it must be
/// one of the allowed origins, else 403 `csrf_failed`.
pub async fn require_allowed_origin(
    State(state): State<TesseraState>,
    request: Request,
    next: Next,
) -> Response {
    match origin_rejection(&request, &state.http) {
        Some(rejection) => rejection,
        None => next.run(request).await,
    }
}

/// The 403 for an unsafe request from an origin that is not allowed, or `None`.
fn origin_rejection(request: &Request, http: &HttpSettings) -> Option<Response> {
    if !is_unsafe(request.method()) {
        return None;
    }
    let origin = request.headers().get(header::ORIGIN)?;
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    let allowed = origin.to_str().is_ok_and(|o| http.origin_allowed(o, host));
    (!allowed).then(|| ApiError::CsrfFailed("the request's Origin is not allowed").into_response())
}

/// Adds `nosniff`, `no-referrer`, frame denial, a locked-down CSP and `Cache-Control:
/// no-store` (credentials and tokens must never be cached) unless the handler set its own.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_security_headers(response.headers_mut());
    response
}

/// The headers of [`security_headers`], each unless already set.
pub fn add_security_headers(headers: &mut HeaderMap) {
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if let header::Entry::Vacant(slot) = headers.entry(name) {
            slot.insert(HeaderValue::from_static(value));
        }
    }
}

/// CORS for the origins in [`HttpSettings::allowed_origins`](crate::HttpSettings): a page on
/// such an origin may call the API with credentials (cookies or `Authorization`) and read the
/// answers. Preflights (`OPTIONS` with `Access-Control-Request-Method`) from those origins are
/// answered here; every other origin gets no CORS headers, so browsers keep their same-origin
/// rule.
pub async fn cors(State(state): State<TesseraState>, request: Request, next: Next) -> Response {
    let Some(origin) = cors_origin(&request, &state.http) else {
        return next.run(request).await;
    };
    let mut response = match preflight(&request) {
        Some(preflight) => preflight,
        None => next.run(request).await,
    };
    add_cors_headers(response.headers_mut(), origin);
    response
}

/// The request's `Origin` as a header value, if it is one of the allowed origins.
fn cors_origin(request: &Request, http: &HttpSettings) -> Option<HeaderValue> {
    if http.allowed_origins.is_empty() {
        return None;
    }
    let origin = request.headers().get(header::ORIGIN)?.to_str().ok()?;
    let origin = crate::state::normalize_origin(origin)?;
    if !http.allowed_origins.contains(&origin) {
        return None;
    }
    HeaderValue::from_str(&origin).ok()
}

/// The answer to a CORS preflight, if `request` is one.
fn preflight(request: &Request) -> Option<Response> {
    let preflight = request.method() == http::Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !preflight {
        return None;
    }
    let mut response = http::StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, x-csrf-token, x-request-id"),
    );
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    Some(response)
}

fn add_cors_headers(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, www-authenticate, x-request-id"),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

/// Everything above as one tower layer: the Origin rule, CORS and security headers, in the
/// order the separate middleware would apply them. [`api_router`](crate::api_router) uses it
/// instead of three `from_fn` layers because every axum layer level clones the boxed routes
/// below it on each request; one hand-written level costs a fraction of three.
#[derive(Debug, Clone)]
pub struct ApiLayer {
    http: Arc<HttpSettings>,
    origin_rule: bool,
}

impl ApiLayer {
    /// The layer for a server with these HTTP settings.
    pub fn new(state: &TesseraState) -> Self {
        ApiLayer { http: Arc::clone(&state.http), origin_rule: true }
    }

    /// The same without the Origin rule, for routes that apply it themselves (forward auth
    /// checks the original request's origin, not its own).
    pub fn without_origin_rule(self) -> Self {
        ApiLayer { origin_rule: false, ..self }
    }
}

impl<S> Layer<S> for ApiLayer {
    type Service = ApiService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiService { inner, http: Arc::clone(&self.http), origin_rule: self.origin_rule }
    }
}

/// The service of [`ApiLayer`].
#[derive(Debug, Clone)]
pub struct ApiService<S> {
    inner: S,
    http: Arc<HttpSettings>,
    origin_rule: bool,
}

impl<S> Service<Request> for ApiService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ApiFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let security_headers = self.http.security_headers;
        let cors = cors_origin(&request, &self.http);
        let early = cors
            .as_ref()
            .and_then(|_| preflight(&request))
            .or_else(|| self.origin_rule.then(|| origin_rejection(&request, &self.http)).flatten());
        if let Some(response) = early {
            let answered = Some(finish(response, cors, security_headers));
            return ApiFuture { inner: None, answered, cors: None, security_headers };
        }
        // The inner service's future owns what it needs, so the service made ready is called
        // in place (no per-request clone of the routes below), and its future is wrapped
        // rather than boxed again.
        ApiFuture { inner: Some(self.inner.call(request)), answered: None, cors, security_headers }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`ApiService`]: the inner service's response with the headers added, or
    /// the answer the layer gave itself (a preflight, a refused origin).
    pub struct ApiFuture<F> {
        #[pin]
        inner: Option<F>,
        answered: Option<Response>,
        cors: Option<HeaderValue>,
        security_headers: bool,
    }
}

impl<F> Future for ApiFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            let response = std::task::ready!(inner.poll(cx))?;
            this.inner.set(None);
            return Poll::Ready(Ok(finish(response, this.cors.take(), *this.security_headers)));
        }
        // (Polled again after completion, a contract breach, it answers an empty 200.)
        Poll::Ready(Ok(this.answered.take().unwrap_or_default()))
    }
}

fn finish(mut response: Response, cors: Option<HeaderValue>, security_headers: bool) -> Response {
    let headers = response.headers_mut();
    if security_headers {
        add_security_headers(headers);
    }
    if let Some(origin) = cors {
        add_cors_headers(headers, origin);
    }
    response
}
