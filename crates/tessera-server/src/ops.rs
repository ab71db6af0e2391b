//! Operations endpoints: `/healthz` (the process is up), `/readyz` (every store answers) and
//! `/metrics` (Prometheus text). The demo page at `/` is [`crate::page`]'s.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
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
