//! The server's outermost layer, as one hand-written tower service: the request id (an
//! `X-Request-Id` on every response and in 5xx problem bodies, and the request's task-local
//! id, so every log line about it carries the id), HTTP metrics, the request time limit, the
//! API's rules (the Origin rule and CORS, `tessera_axum::layers::ApiRules`), the security
//! headers (and HSTS when the public URL is https) on every response, and the access log line
//! (`tessera::access`, at debug level).
//!
//! One service instead of four `from_fn` middleware matters on the hot path: axum wraps each
//! layer level around every route and clones the boxed routes below it on each request, so the
//! cost of a stack of small middleware grows with its depth. See `docs/benchmarks.md`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use futures_util::future::BoxFuture;
use http::{HeaderValue, header};
use tessera_axum::layers::{ApiRules, Begun};
use tower::{Layer, Service};

use crate::http_metrics::HttpMetrics;
use crate::request_id::{self, X_REQUEST_ID};
use crate::time_limit;

/// The target of the access log lines.
pub const ACCESS_LOG: &str = "tessera::access";

/// Settings of the edge layer.
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    metrics: Arc<HttpMetrics>,
    request_timeout: Duration,
    https: bool,
    rules: ApiRules,
}

impl EdgeLayer {
    /// Counts requests in `metrics`, answers within `request_timeout`, sends HSTS if `https`,
    /// and applies the API's `rules` to every request.
    pub fn new(
        metrics: Arc<HttpMetrics>,
        request_timeout: Duration,
        https: bool,
        rules: ApiRules,
    ) -> Self {
        EdgeLayer { metrics, request_timeout, https, rules }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService { inner, settings: self.clone() }
    }
}

/// The service of [`EdgeLayer`].
#[derive(Debug, Clone)]
pub struct EdgeService<S> {
    inner: S,
    settings: EdgeLayer,
}

impl<S> Service<Request> for EdgeService<S>
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
        let observation = HttpMetrics::begin(&request);
        let id = request_id::for_request(request.headers());
        // The access line costs nothing but a cached check when the filter drops it.
        // The path only, never the query (which may carry secrets).
        let access = tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG)
            .then(|| (request.method().clone(), request.uri().path().to_owned()));
        let begun = self.settings.rules.begin(&request, true);
        // The clone that was made ready is the one called (tower's readiness contract).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let settings = self.settings.clone();
        Box::pin(request_id::scope(id.clone(), async move {
            let mut response = match begun {
                // A preflight, or a refused origin: answered here.
                Begun::Answered(answer) => answer,
                Begun::Handle(cors) => {
                    let response =
                        time_limit::within(settings.request_timeout, request, |request| {
                            let handled = inner.call(request);
                            async move {
                                match handled.await {
                                    Ok(response) => response,
                                    Err(never) => match never {},
                                }
                            }
                        })
                        .await;
                    settings.rules.finish(response, cors)
                }
            };
            if response.status().is_server_error() {
                response = request_id::into_problem(response, &id).await;
            }
            // The API's rules leave them to this point (`HttpSettings::security_headers`); a
            // header a route set itself (the page's CSP) is kept.
            let headers = response.headers_mut();
            tessera_axum::layers::add_security_headers(headers);
            if settings.https {
                headers.insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static("max-age=31536000"),
                );
            }
            headers.insert(&X_REQUEST_ID, id);
            if let Some((method, path)) = access {
                tracing::debug!(
                    target: ACCESS_LOG,
                    %method,
                    path,
                    status = response.status().as_u16(),
                    latency_ms = observation.elapsed().as_secs_f64() * 1e3,
                    "request"
                );
            }
            settings.metrics.finish(observation, response.status());
            Ok(response)
        }))
    }
}
