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

/// The rules above as plain functions of a request and its response: the Origin rule, CORS
/// and (when [`HttpSettings::security_headers`] says so) the security headers. [`ApiLayer`]
/// applies them at a layer level of its own; a server with an outermost layer of its own
/// applies them there, around [`api_routes`](crate::routes::api_routes), and saves a level
/// (axum clones the boxed routes below each level on every request: about 1,400
/// instructions per request, measured). `tessera-server` does.
#[derive(Debug, Clone)]
pub struct ApiRules {
    http: Arc<HttpSettings>,
    /// The path exempt from the Origin rule when the rules apply to every route: forward auth
    /// checks the original request's origin, not its own.
    forward_auth_path: Option<Arc<str>>,
}

impl ApiRules {
    /// The rules for a server with these HTTP settings, for every route: the Origin rule
    /// everywhere but forward auth (`{api_prefix}/v1/verify`).
    pub fn new(state: &TesseraState) -> Self {
        let forward_auth_path = Some(format!("{}/v1/verify", state.http.api_prefix()).into());
        ApiRules { http: Arc::clone(&state.http), forward_auth_path }
    }

    /// What to do with `request` before it is handled: answer it here (a CORS preflight, an
    /// unsafe request from an origin that is not allowed), or hand it on with the CORS origin
    /// for [`finish`](Self::finish). `origin_rule: false` skips the Origin rule.
    pub fn begin(&self, request: &Request, origin_rule: bool) -> Begun {
        let cors = cors_origin(request, &self.http);
        let origin_rule = origin_rule
            && self.forward_auth_path.as_deref().is_none_or(|path| request.uri().path() != path);
        let early = cors
            .as_ref()
            .and_then(|_| preflight(request))
            .or_else(|| origin_rule.then(|| origin_rejection(request, &self.http)).flatten());
        match early {
            Some(response) => Begun::Answered(self.finish(response, Cors(cors))),
            None => Begun::Handle(Cors(cors)),
        }
    }

    /// Adds the CORS headers [`begin`](Self::begin) decided on, and the security headers if
    /// the settings ask for them here.
    pub fn finish(&self, response: Response, cors: Cors) -> Response {
        finish(response, cors.0, self.http.security_headers)
    }
}

/// What [`ApiRules::begin`] decided about a request.
#[derive(Debug)]
pub enum Begun {
    /// Handle it, then add the CORS headers with [`ApiRules::finish`].
    Handle(Cors),
    /// Answered by the rules themselves (a CORS preflight, or an unsafe request from an
    /// origin that is not allowed), headers included.
    Answered(Response),
}

/// The CORS origin of a request, between [`ApiRules::begin`] and [`ApiRules::finish`].
#[derive(Debug)]
pub struct Cors(Option<HeaderValue>);

/// Everything above as one tower layer: the Origin rule, CORS and security headers, in the
/// order the separate middleware would apply them. [`api_router`](crate::api_router) uses it
/// instead of three `from_fn` layers because every axum layer level clones the boxed routes
/// below it on each request; one hand-written level costs a fraction of three.
#[derive(Debug, Clone)]
pub struct ApiLayer {
    rules: ApiRules,
    origin_rule: bool,
}

impl ApiLayer {
    /// The layer for a server with these HTTP settings.
    pub fn new(state: &TesseraState) -> Self {
        // The layer knows its routes: no path is exempt (see `without_origin_rule`).
        let rules = ApiRules { http: Arc::clone(&state.http), forward_auth_path: None };
        ApiLayer { rules, origin_rule: true }
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
        ApiService { inner, rules: self.rules.clone(), origin_rule: self.origin_rule }
    }
}

/// The service of [`ApiLayer`].
#[derive(Debug, Clone)]
pub struct ApiService<S> {
    inner: S,
    rules: ApiRules,
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
        let security_headers = self.rules.http.security_headers;
        match self.rules.begin(&request, self.origin_rule) {
            Begun::Answered(answer) => {
                ApiFuture { inner: None, answered: Some(answer), cors: None, security_headers }
            }
            // The inner service's future owns what it needs, so the service made ready is
            // called in place (no per-request clone of the routes below), and its future is
            // wrapped rather than boxed again.
            Begun::Handle(Cors(cors)) => ApiFuture {
                inner: Some(self.inner.call(request)),
                answered: None,
                cors,
                security_headers,
            },
        }
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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use http::{Method, StatusCode};

    use super::*;

    fn rules() -> ApiRules {
        let mut http = HttpSettings::new("https://auth.example");
        http.allowed_origins.push("https://app.example".into());
        ApiRules { http: Arc::new(http), forward_auth_path: Some("/v1/verify".into()) }
    }

    fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::empty()).unwrap()
    }

    fn answered(begun: Begun) -> Option<Response> {
        match begun {
            Begun::Answered(response) => Some(response),
            Begun::Handle(_) => None,
        }
    }

    #[test]
    fn unsafe_requests_from_foreign_origins_are_refused_except_forward_auth() {
        let rules = rules();
        let evil = [("origin", "https://evil.example")];
        let refused = answered(rules.begin(&request(Method::POST, "/v1/me", &evil), true));
        assert_eq!(refused.map(|r| r.status()), Some(StatusCode::FORBIDDEN));
        let verify = request(Method::POST, "/v1/verify", &evil);
        assert!(answered(rules.begin(&verify, true)).is_none(), "forward auth judges itself");
        let unsafe_anywhere = request(Method::POST, "/v1/session", &evil);
        assert!(answered(rules.begin(&unsafe_anywhere, false)).is_none(), "rule off");
        assert!(answered(rules.begin(&request(Method::GET, "/v1/me", &evil), true)).is_none());
        let own = [("origin", "https://auth.example")];
        assert!(answered(rules.begin(&request(Method::POST, "/v1/me", &own), true)).is_none());
    }

    #[test]
    fn allowed_origins_get_cors_and_their_preflights_an_answer() {
        let rules = rules();
        let app = [("origin", "https://app.example")];
        let Begun::Handle(cors) = rules.begin(&request(Method::GET, "/v1/me", &app), true) else {
            panic!("a GET is handled");
        };
        let response = rules.finish(Response::default(), cors);
        let allowed = response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        assert_eq!(allowed.unwrap(), "https://app.example");
        assert!(response.headers().contains_key(header::CACHE_CONTROL), "security headers");

        let preflight = request(
            Method::OPTIONS,
            "/v1/me",
            &[("origin", "https://app.example"), ("access-control-request-method", "POST")],
        );
        let answer = answered(rules.begin(&preflight, true)).expect("answered here");
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        assert!(answer.headers().contains_key(header::ACCESS_CONTROL_ALLOW_METHODS));

        let other = [("origin", "https://other.example")];
        let Begun::Handle(cors) = rules.begin(&request(Method::GET, "/v1/me", &other), true) else {
            panic!("a GET is handled");
        };
        let response = rules.finish(Response::default(), cors);
        assert!(!response.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}
