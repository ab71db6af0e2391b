//! Operations: `/healthz`, `/readyz`, `/metrics`, the demo page, 404 and 405.

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_are_200() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_documented_series() {
    let app = spawn_app().await;
    let response = app.get("/metrics").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    for series in [
        "tessera_logins_total",
        "tessera_login_duration_seconds_bucket",
        "tessera_authentications_total",
        "tessera_authentication_duration_seconds",
    ] {
        assert!(text.contains(series), "{series} missing from /metrics:\n{text}");
    }
    assert!(text.contains("# TYPE tessera_logins_total counter"), "{text}");
}

#[tokio::test]
async fn metrics_count_logins_and_authentications() {
    let app = spawn_app().await;
    app.user("alice").await;
    let before = app.metrics().await;

    let session = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    assert_problem(app.post_session("alice", "wrong-password").await, 401, "invalid_credentials")
        .await;
    for _ in 0..3 {
        assert_eq!(app.me_cookie(&session.cookie).await.status(), 200);
        assert_eq!(app.me_bearer(&tokens.access).await.status(), 200);
    }
    assert_eq!(app.me_bearer("garbage").await.status(), 401);

    let after = app.metrics().await;
    let grew = |name: &str| metric_sum(&after, name) - metric_sum(&before, name);
    assert!(grew("tessera_logins_total") >= 3.0, "logins: +{}", grew("tessera_logins_total"));
    assert!(grew("tessera_login_duration_seconds_count") >= 3.0);
    assert!(
        grew("tessera_authentications_total") >= 7.0,
        "authentications: +{}",
        grew("tessera_authentications_total")
    );
    assert!(grew("tessera_authentication_duration_seconds_count") >= 7.0);
    // One new token, used three times: one signature checked, the other uses from the cache;
    // the garbage token never reaches a signature check.
    assert_eq!(grew("tessera_token_signatures_batched_total"), 1.0, "{after}");
    assert_eq!(grew("tessera_token_signature_batches_total"), 1.0);
    assert_eq!(grew("tessera_token_signature_batches_failed_total"), 0.0);
    // The labelled series this server writes, where they exist.
    let sample = |text: &str, series: &str| metric_sample(text, series).unwrap_or(0.0);
    for (series, at_least) in [
        (r#"tessera_logins_total{method="session",outcome="success"}"#, 1.0),
        (r#"tessera_logins_total{method="token",outcome="success"}"#, 1.0),
        (r#"tessera_authentications_total{method="session",outcome="ok"}"#, 3.0),
        (r#"tessera_authentications_total{method="token",outcome="ok"}"#, 3.0),
    ] {
        let delta = sample(&after, series) - sample(&before, series);
        assert!(delta >= at_least, "{series}: +{delta}\n{after}");
    }
}

#[tokio::test]
async fn the_demo_page_is_html() {
    let app = spawn_app().await;
    let response = app.get("/").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let text = response.text().await.unwrap();
    assert!(text.to_ascii_lowercase().contains("<html"), "{text:.200}");
}

#[tokio::test]
async fn an_unknown_path_is_a_404_problem() {
    let app = spawn_app().await;
    for path in ["/nope", "/v1/nope", "/v1/users/alice", "/v2/session"] {
        assert_problem(app.get(path).send().await.unwrap(), 404, "not_found").await;
    }
}

#[tokio::test]
async fn a_wrong_method_on_an_api_path_is_a_405_problem() {
    let app = spawn_app().await;
    for request in [
        app.get("/v1/users"),
        app.delete("/v1/users"),
        app.get("/v1/token"),
        app.post("/v1/me"),
        app.put("/v1/session"),
        app.post("/.well-known/jwks.json"),
        app.get("/v1/token/refresh"),
    ] {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let url = response.url().clone();
        assert_eq!(status, 405, "{url}");
        let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
        assert!(content_type.starts_with("application/problem+json"), "{url}: {content_type}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 405, "{url}: {problem}");
        assert!(problem["code"].is_string(), "{url}: {problem}");
    }
}

#[tokio::test]
async fn a_wrong_method_on_an_operations_path_is_a_405_problem() {
    let app = spawn_app().await;
    for request in [app.post("/healthz"), app.delete("/metrics"), app.post("/")] {
        let response = request.send().await.unwrap();
        let url = response.url().clone();
        assert_eq!(response.status(), 405, "{url}");
        let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
        assert!(content_type.starts_with("application/problem+json"), "{url}: {content_type:?}");
    }
}

#[tokio::test]
async fn silent_connections_are_closed_and_do_not_block_the_connection_cap() {
    use tokio::io::AsyncReadExt;
    let app = spawn_app_with(|c| {
        c.server.request_timeout =
            Some(tessera_server::config::HumanDuration(std::time::Duration::from_millis(500)));
        c.server.idle_timeout = secs(1);
        c.server.max_connections = Some(1);
    })
    .await;
    // A client that connects and never says anything holds the only slot...
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // ...until the idle timeout closes it (EOF), so the next client is served.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, silent.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "the server closed the silent connection");
    let health = tokio::time::timeout(WAIT, app.get("/healthz").send()).await.unwrap().unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_incoming_one_is_kept() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    for path in ["/healthz", "/v1/me", "/no-such-path"] {
        let response = app.get(path).send().await.unwrap();
        let id = header_str(response.headers(), "x-request-id")
            .unwrap_or_else(|| panic!("{path}: no X-Request-Id"));
        assert!(
            (1..=64).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{path}: {id:?}"
        );
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "fresh ids are distinct: {seen:?}");

    let sane = "proxy-7f3a.1_b";
    let response = app.get("/v1/me").header("x-request-id", sane).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(header_str(response.headers(), "x-request-id").as_deref(), Some(sane));
    let longest = "a".repeat(64);
    let response = app.get("/healthz").header("x-request-id", &longest).send().await.unwrap();
    assert_eq!(header_str(response.headers(), "x-request-id"), Some(longest));

    for insane in ["", "has space", "quote\"d", "a/b", "x".repeat(65).as_str(), "é"] {
        let response = app
            .get("/healthz")
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(insane.as_bytes()).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let id = header_str(response.headers(), "x-request-id").expect("an id");
        assert_ne!(id, insane, "{insane:?} must be replaced");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "{id}");
    }
    // Two ids in one request: neither is believed.
    let response = app
        .get("/healthz")
        .header("x-request-id", "one")
        .header("x-request-id", "two")
        .send()
        .await
        .unwrap();
    let id = header_str(response.headers(), "x-request-id").expect("an id");
    assert!(id != "one" && id != "two", "{id}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id_and_no_query() {
    let dir = tempfile::Builder::new().prefix("tessera-ops-").tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let mut server = TesseraProcess::start(crate::cli::tessera(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        &[("TESSERA_LOG__FORMAT", "json"), ("TESSERA_LOG__LEVEL", "info,tessera::access=debug")],
    ));
    let client = client();
    let response = client
        .get(server.url("/v1/me?access_token=sekrit-query-value"))
        .header("x-request-id", "trace-me-42")
        .header("authorization", "Bearer sekrit-bearer-value")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(header_str(response.headers(), "x-request-id").as_deref(), Some("trace-me-42"));
    assert!(server.terminate().success());
    let stderr = server.stderr_text();

    let mut access = None;
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(value.get(key).is_some_and(|v| v.is_string()), "{key} missing: {line}");
        }
        if value["target"] == "tessera::access" && value["request_id"] == "trace-me-42" {
            access = Some(value);
        }
    }
    let access = access.unwrap_or_else(|| panic!("no access line with the request id:\n{stderr}"));
    assert_eq!(access["level"], "DEBUG");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/v1/me");
    assert_eq!(access["status"], 401);
    assert!(access["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{access}");
    assert!(!stderr.contains("sekrit"), "a secret reached the log:\n{stderr}");
}

#[tokio::test]
async fn text_logs_end_a_request_line_with_its_id_and_other_lines_without() {
    let dir = tempfile::Builder::new().prefix("tessera-ops-").tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let mut server = TesseraProcess::start(crate::cli::tessera(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
        &[("TESSERA_LOG__FORMAT", "text"), ("TESSERA_LOG__LEVEL", "info,tessera::access=debug")],
    ));
    let response = client()
        .get(server.url("/healthz?token=sekrit-query-value"))
        .header("x-request-id", "trace-me-43")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(server.terminate().success());
    let stderr = server.stderr_text();
    let access: Vec<&str> = stderr.lines().filter(|l| l.contains("tessera::access")).collect();
    assert_eq!(access.len(), 1, "one access line:\n{stderr}");
    assert!(access[0].ends_with(" request_id=trace-me-43"), "{}", access[0]);
    assert!(
        access[0].contains("path=\"/healthz\"") || access[0].contains("path=/healthz"),
        "{}",
        access[0]
    );
    let serving = stderr.lines().find(|l| l.contains("tessera is serving")).expect("start line");
    assert!(!serving.contains("request_id"), "{serving}");
    assert!(!stderr.contains("sekrit"), "a secret reached the log:\n{stderr}");
}

/// Metrics documented in docs/operations.md that a default single-process server does not
/// emit: the revocation feed exists only with several instances (Redis or PostgreSQL).
const CONDITIONAL_METRICS: [&str; 1] = ["tessera_revocation_feed_live"];

/// Every `tessera_*` metric name in `text`, histogram series folded into their family.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tessera_") {
        let tail = &rest[at..];
        let end =
            tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| f.ends_with("_seconds")))
            .unwrap_or(name);
        names.insert(family.to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_emitted_metric_is_documented_and_the_dashboard_uses_real_ones() {
    let app = spawn_app().await;
    app.get("/healthz").send().await.unwrap();
    let emitted: std::collections::BTreeSet<String> = app
        .metrics()
        .await
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    assert!(emitted.len() > 10, "{emitted:?}");

    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md");
    let docs = std::fs::read_to_string(docs).expect("docs/operations.md");
    let section = |start: &str, end: &str| -> String {
        let from = docs.find(start).unwrap_or_else(|| panic!("no `{start}` in operations.md"));
        let to = docs[from..].find(end).map_or(docs.len(), |n| from + n);
        docs[from..to].to_owned()
    };
    // The reference table: rows that start with a metric name.
    let table: std::collections::BTreeSet<String> = section("## Metrics", "### A dashboard")
        .lines()
        .filter_map(|l| l.strip_prefix("| `tessera_"))
        .filter_map(|l| l.split('`').next())
        .map(|name| format!("tessera_{name}"))
        .collect();
    for name in &emitted {
        assert!(
            table.contains(name),
            "/metrics emits {name}, which operations.md does not document"
        );
    }
    for name in &table {
        assert!(
            emitted.contains(name) || CONDITIONAL_METRICS.contains(&name.as_str()),
            "operations.md documents {name}, which /metrics does not emit"
        );
    }

    let dashboard = section("### A dashboard", "\n## ");
    let json = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/grafana-dashboard.json");
    let json = std::fs::read_to_string(json).expect("docs/grafana-dashboard.json");
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("the dashboard is JSON");
    let panels = parsed["panels"].as_array().expect("panels");
    let titles = dashboard.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| panel"));
    assert_eq!(titles.count(), panels.len(), "the JSON dashboard and the panel table differ");
    for (what, text) in [("the panel table", dashboard.as_str()), ("grafana-dashboard.json", &json)]
    {
        let used = metric_names(text);
        assert!(used.len() > 10, "{what}: {used:?}");
        for name in used {
            assert!(
                table.contains(&name),
                "{what} queries {name}, which is not a documented metric"
            );
        }
    }
}

#[tokio::test]
async fn pages_on_allowed_origins_may_send_and_read_the_request_id() {
    let app = spawn_app_with(|c| {
        c.server.allowed_origins =
            Some(tessera_server::config::StringList(vec!["https://app.example".into()]));
    })
    .await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/me"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "x-request-id")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let allowed = header_str(preflight.headers(), "access-control-allow-headers").unwrap();
    assert!(allowed.split(", ").any(|h| h == "x-request-id"), "{allowed}");

    let response = app
        .get("/v1/me")
        .header("origin", "https://app.example")
        .header("x-request-id", "from-the-page")
        .send()
        .await
        .unwrap();
    assert_eq!(header_str(response.headers(), "x-request-id").as_deref(), Some("from-the-page"));
    let exposed = header_str(response.headers(), "access-control-expose-headers").unwrap();
    assert!(exposed.split(", ").any(|h| h == "x-request-id"), "{exposed}");
}
