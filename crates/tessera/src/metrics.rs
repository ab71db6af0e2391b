//! Counters and latency histograms for logins, authenticated requests and refreshes, kept in
//! atomics (no locks, no allocation on the hot path) and rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::principal::AuthMethod;

/// Upper bounds of the latency buckets, in seconds: from 25 µs (a cached token check) to
/// 2.5 s (a login queued behind a burst of argon2 work).
const BUCKETS: [f64; 16] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Appends the `_bucket`, `_sum` and `_count` series with `labels` (`k="v",…` or empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |l: &str| if l.is_empty() { String::new() } else { format!("{{{l}}}") };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// How a login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Credentials accepted.
    Success,
    /// Wrong username or password.
    InvalidCredentials,
    /// Refused by throttling before the password was checked.
    RateLimited,
    /// A store or internal failure.
    Error,
}

impl LoginOutcome {
    const ALL: [LoginOutcome; 4] = [
        LoginOutcome::Success,
        LoginOutcome::InvalidCredentials,
        LoginOutcome::RateLimited,
        LoginOutcome::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            LoginOutcome::Success => "success",
            LoginOutcome::InvalidCredentials => "invalid_credentials",
            LoginOutcome::RateLimited => "rate_limited",
            LoginOutcome::Error => "error",
        }
    }
}

/// How a credential check on a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated.
    Ok,
    /// Credentials refused (unknown, expired, revoked, bad signature).
    Rejected,
    /// A store or internal failure.
    Error,
}

impl AuthOutcome {
    const ALL: [AuthOutcome; 3] = [AuthOutcome::Ok, AuthOutcome::Rejected, AuthOutcome::Error];

    fn label(self) -> &'static str {
        match self {
            AuthOutcome::Ok => "ok",
            AuthOutcome::Rejected => "rejected",
            AuthOutcome::Error => "error",
        }
    }
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshResult {
    /// A live token was rotated.
    Rotated,
    /// A lost response was retried within the grace window.
    Retried,
    /// A spent token was reused: the family was revoked.
    Reused,
    /// Unknown, malformed or expired token.
    Rejected,
    /// A store or internal failure.
    Error,
}

impl RefreshResult {
    const ALL: [RefreshResult; 5] = [
        RefreshResult::Rotated,
        RefreshResult::Retried,
        RefreshResult::Reused,
        RefreshResult::Rejected,
        RefreshResult::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            RefreshResult::Rotated => "rotated",
            RefreshResult::Retried => "retried",
            RefreshResult::Reused => "reused",
            RefreshResult::Rejected => "rejected",
            RefreshResult::Error => "error",
        }
    }
}

const METHODS: [AuthMethod; 2] = [AuthMethod::Session, AuthMethod::Token];

fn method_index(method: AuthMethod) -> usize {
    match method {
        AuthMethod::Session => 0,
        AuthMethod::Token => 1,
    }
}

/// The engine's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    logins: [[AtomicU64; LoginOutcome::ALL.len()]; 2],
    login_seconds: [Histogram; 2],
    authentications: [[AtomicU64; AuthOutcome::ALL.len()]; 2],
    authentication_seconds: [Histogram; 2],
    refreshes: [AtomicU64; RefreshResult::ALL.len()],
    registrations: AtomicU64,
    audit_write_failures: AtomicU64,
    audit_events_dropped: AtomicU64,
    feed_connections: AtomicU64,
}

impl Metrics {
    /// Records a login attempt and how long it took.
    pub fn login(&self, method: AuthMethod, outcome: LoginOutcome, elapsed: Duration) {
        let m = method_index(method);
        let o = outcome as usize;
        self.logins[m][o].fetch_add(1, Ordering::Relaxed);
        self.login_seconds[m].observe(elapsed);
    }

    /// Records a credential check on a request and how long it took.
    pub fn authentication(&self, method: AuthMethod, outcome: AuthOutcome, elapsed: Duration) {
        let m = method_index(method);
        let o = outcome as usize;
        self.authentications[m][o].fetch_add(1, Ordering::Relaxed);
        self.authentication_seconds[m].observe(elapsed);
    }

    /// Records a refresh.
    pub fn refresh(&self, result: RefreshResult) {
        let r = result as usize;
        self.refreshes[r].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a registration.
    pub fn registration(&self) {
        self.registrations.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an audit event that could not be stored.
    pub fn audit_write_failed(&self) {
        self.audit_write_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a failure event not written because too many came in one second.
    pub fn audit_event_dropped(&self) {
        self.audit_events_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a (re)connection of the revocation feed.
    pub fn feed_connected(&self) {
        self.feed_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends every series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let login_labels = LoginOutcome::ALL.map(LoginOutcome::label);
        let auth_labels = AuthOutcome::ALL.map(AuthOutcome::label);
        by_method_and_outcome(
            out,
            "tessera_logins_total",
            "Login attempts by method and outcome.",
            &self.logins,
            &login_labels,
        );
        histograms_by_method(
            out,
            "tessera_login_duration_seconds",
            "Login latency, password check included.",
            &self.login_seconds,
        );
        by_method_and_outcome(
            out,
            "tessera_authentications_total",
            "Credential checks of authenticated requests by method and outcome.",
            &self.authentications,
            &auth_labels,
        );
        histograms_by_method(
            out,
            "tessera_authentication_duration_seconds",
            "Latency of the credential check of an authenticated request.",
            &self.authentication_seconds,
        );
        header(out, "tessera_refreshes_total", "counter", "Refresh-token presentations by result.");
        for result in RefreshResult::ALL {
            let r = result as usize;
            let value = self.refreshes[r].load(Ordering::Relaxed);
            let _ =
                writeln!(out, "tessera_refreshes_total{{result=\"{}\"}} {value}", result.label());
        }
        header(out, "tessera_registrations_total", "counter", "Users created.");
        let _ = writeln!(
            out,
            "tessera_registrations_total {}",
            self.registrations.load(Ordering::Relaxed)
        );
        header(
            out,
            "tessera_audit_write_failures_total",
            "counter",
            "Audit events that could not be stored.",
        );
        let _ = writeln!(
            out,
            "tessera_audit_write_failures_total {}",
            self.audit_write_failures.load(Ordering::Relaxed)
        );
        header(
            out,
            "tessera_audit_events_dropped_total",
            "counter",
            "Failure events of unauthenticated requests over the per-second audit budget.",
        );
        let _ = writeln!(
            out,
            "tessera_audit_events_dropped_total {}",
            self.audit_events_dropped.load(Ordering::Relaxed)
        );
        header(
            out,
            "tessera_revocation_feed_connections_total",
            "counter",
            "Subscriptions to the revocation feed made (the first, then one per reconnection).",
        );
        let _ = writeln!(
            out,
            "tessera_revocation_feed_connections_total {}",
            self.feed_connections.load(Ordering::Relaxed)
        );
    }
}

/// A counter family labelled by method and outcome (`counters[method][outcome]`).
fn by_method_and_outcome<const N: usize>(
    out: &mut String,
    name: &str,
    help: &str,
    counters: &[[AtomicU64; N]; 2],
    outcomes: &[&str; N],
) {
    header(out, name, "counter", help);
    for method in METHODS {
        for (counter, outcome) in counters[method_index(method)].iter().zip(outcomes) {
            let value = counter.load(Ordering::Relaxed);
            let method = method.as_str();
            let _ = writeln!(out, "{name}{{method=\"{method}\",outcome=\"{outcome}\"}} {value}");
        }
    }
}

/// A histogram family labelled by method.
fn histograms_by_method(out: &mut String, name: &str, help: &str, histograms: &[Histogram; 2]) {
    header(out, name, "histogram", help);
    for method in METHODS {
        let labels = format!("method=\"{}\"", method.as_str());
        histograms[method_index(method)].render(out, name, &labels);
    }
}

/// Appends the `# HELP` and `# TYPE` lines of a metric family.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(20));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "x", "m=\"a\"");
        assert!(out.contains("x_bucket{m=\"a\",le=\"0.000025\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{m=\"a\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{m=\"a\",le=\"2.5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{m=\"a\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{m=\"a\"} 3\n"), "{out}");
        assert!(out.contains("x_sum{m=\"a\"} 10.00302\n"), "{out}");
    }

    #[test]
    fn renders_counters_by_label() {
        let m = Metrics::default();
        m.login(AuthMethod::Token, LoginOutcome::RateLimited, Duration::from_millis(1));
        m.authentication(AuthMethod::Session, AuthOutcome::Ok, Duration::from_micros(30));
        m.refresh(RefreshResult::Reused);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("tessera_logins_total{method=\"token\",outcome=\"rate_limited\"} 1\n")
        );
        assert!(out.contains("tessera_logins_total{method=\"session\",outcome=\"success\"} 0\n"));
        assert!(
            out.contains("tessera_authentications_total{method=\"session\",outcome=\"ok\"} 1\n")
        );
        assert!(out.contains("tessera_refreshes_total{result=\"reused\"} 1\n"));
        assert!(out.contains("# TYPE tessera_login_duration_seconds histogram\n"));
        assert!(out.contains("tessera_login_duration_seconds_count{method=\"token\"} 1\n"));
    }
}
