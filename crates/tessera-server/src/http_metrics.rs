//! HTTP-level metrics: requests by route and status class, and a latency histogram, recorded by
//! the server's edge layer ([`crate::edge`]) and rendered next to the engine's metrics on `/metrics`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use tessera::metrics::{Histogram, header};

/// Request methods counted by name; others count as `other`.
const METHODS: [&str; 8] = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "other"];
/// Status classes.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Request counts of one route, by method and status class.
type RouteCounts = [[u64; CLASSES.len()]; METHODS.len()];

/// Request counters and latency.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// By route pattern (or `unmatched`): a lookup by `&str`, so counting allocates only the
    /// first time a route is seen.
    requests: Mutex<HashMap<String, RouteCounts>>,
    duration: Histogram,
}

/// A request being served, to be counted when its response is ready.
#[derive(Debug)]
pub struct Observation {
    started: Instant,
    route: Option<MatchedPath>,
    method: usize,
}

impl Observation {
    /// How long ago the request began.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

impl HttpMetrics {
    /// Starts observing `request` (call before it is handled: routing has set its route).
    pub fn begin(request: &Request) -> Observation {
        let method = METHODS
            .iter()
            .position(|m| *m == request.method().as_str())
            .unwrap_or(METHODS.len() - 1);
        Observation {
            started: Instant::now(),
            route: request.extensions().get::<MatchedPath>().cloned(),
            method,
        }
    }

    /// Counts the request of `observation`, answered with `status`.
    pub fn finish(&self, observation: Observation, status: http::StatusCode) {
        self.duration.observe(observation.started.elapsed());
        let class = usize::from(status.as_u16() / 100).clamp(1, CLASSES.len()) - 1;
        let route = observation.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let counts = match requests.get_mut(route) {
            Some(counts) => counts,
            None => requests.entry(route.to_owned()).or_default(),
        };
        counts[observation.method][class] += 1;
    }

    /// Appends the Prometheus text of these metrics to `out`.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "tessera_http_requests_total",
            "counter",
            "HTTP requests by route, method and status class.",
        );
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut routes: Vec<_> = requests.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        for (route, counts) in routes {
            for (method, by_class) in METHODS.iter().zip(counts) {
                for (class, count) in CLASSES.iter().zip(by_class).filter(|(_, n)| **n > 0) {
                    let _ = writeln!(
                        out,
                        "tessera_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{class}\"}} {count}"
                    );
                }
            }
        }
        header(out, "tessera_http_request_duration_seconds", "histogram", "HTTP request latency.");
        self.duration.render(out, "tessera_http_request_duration_seconds", "");
    }
}
