//! Operations endpoints: `/healthz` (the process is up), `/readyz` (every store answers),
//! `/metrics` (Prometheus text), and `/`, the demo page.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;
use tessera_axum::{ApiError, TesseraState};

use crate::http_metrics::HttpMetrics;

/// Shared state of the operations routes.
#[derive(Debug, Clone)]
pub struct OpsState {
    /// The API state (for the stores and engine metrics).
    pub api: TesseraState,
    /// HTTP metrics.
    pub http_metrics: Arc<HttpMetrics>,
}

/// `GET /healthz`
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when every configured store answers, else 503 `store_unavailable`.
pub async fn readyz(State(state): State<OpsState>) -> Response {
    match state.api.auth.ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `GET /metrics`
pub async fn metrics(State(state): State<OpsState>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    state.api.auth.render_metrics(&mut out);
    state.http_metrics.render(&mut out);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

/// The page's Content-Security-Policy: its own scripts, styles and API only; no inline code,
/// no framing, no foreign form targets.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// `GET /`: the demo page.
pub async fn index() -> Response {
    (
        [(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP))],
        Html(include_str!("../assets/index.html")),
    )
        .into_response()
}

/// `GET /assets/tessera.css`: the page's style sheet.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
        ],
        include_str!("../assets/tessera.css"),
    )
        .into_response()
}
