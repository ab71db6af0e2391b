//! HTTP-level metrics: requests by route and status class, and a latency histogram, recorded by
//! a middleware and rendered next to the engine's metrics on `/metrics`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tessera::metrics::{Histogram, header};

/// Request counters and latency.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<HashMap<(String, &'static str, &'static str), u64>>,
    duration: Histogram,
}

impl HttpMetrics {
    fn record(&self, route: String, method: &'static str, class: &'static str) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((route, method, class)).or_default() += 1;
    }

    /// Appends the series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "tessera_http_requests_total",
            "counter",
            "HTTP requests by route, method and status class.",
        );
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = requests.iter().collect();
        rows.sort();
        for ((route, method, class), count) in rows {
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{class}\"}} {count}"
            );
        }
        header(out, "tessera_http_request_duration_seconds", "histogram", "HTTP request latency.");
        self.duration.render(out, "tessera_http_request_duration_seconds", "");
    }
}

/// Records every request.
pub async fn record(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // Only matched route templates are labels: unknown paths must not grow the label set.
    let route =
        request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    let class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics.duration.observe(started.elapsed());
    metrics.record(route, method, class);
    response
}
