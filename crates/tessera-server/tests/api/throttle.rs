//! Login throttling: per username after repeated failures, and per source IP.

use crate::helpers::*;

/// Asserts a 429 `rate_limited` with a `Retry-After` of whole seconds, at most `max`.
async fn assert_rate_limited(response: reqwest::Response, max: u64) {
    let retry_after = header_str(response.headers(), "retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", response.headers()));
    let seconds: u64 = retry_after
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is not integer seconds: {retry_after:?}"));
    assert!(seconds > 0 && seconds <= max, "Retry-After: {seconds}");
    assert!(response.headers().get("set-cookie").is_none());
    assert_problem(response, 429, "rate_limited").await;
}

#[tokio::test]
async fn five_failures_lock_the_username_even_for_the_right_password() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("bob").await;
    for attempt in 1..=5 {
        let response = app.post_session("alice", &format!("wrong-password-{attempt}")).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
    assert_rate_limited(app.post_session("alice", PASSWORD).await, 15 * 60).await;
    assert_rate_limited(app.post_token("ALICE", PASSWORD).await, 15 * 60).await;
    // Another username is not affected.
    app.session_login("bob", PASSWORD).await;
}

#[tokio::test]
async fn failures_across_both_login_kinds_count_together() {
    let app = spawn_app().await;
    app.user("alice").await;
    for attempt in 1..=5 {
        let response = if attempt % 2 == 0 {
            app.post_session("alice", "wrong-password").await
        } else {
            app.post_token("alice", "wrong-password").await
        };
        assert_problem(response, 401, "invalid_credentials").await;
    }
    assert_rate_limited(app.post_session("alice", PASSWORD).await, 15 * 60).await;
}

#[tokio::test]
async fn a_success_before_the_limit_resets_the_failure_count() {
    let app = spawn_app().await;
    app.user("alice").await;
    for _ in 0..4 {
        assert_problem(
            app.post_session("alice", "wrong-password").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    app.session_login("alice", PASSWORD).await;
    for _ in 0..4 {
        assert_problem(
            app.post_session("alice", "wrong-password").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    app.session_login("alice", PASSWORD).await;
}

#[tokio::test]
async fn a_source_ip_gets_a_limited_number_of_login_attempts() {
    let app = spawn_app_with(|c| c.limits.ip_per_minute = Some(3)).await;
    for name in ["alice", "bob", "carol", "dave"] {
        app.user(name).await;
    }
    app.session_login("alice", PASSWORD).await;
    assert_problem(app.post_session("bob", "wrong-password").await, 401, "invalid_credentials")
        .await;
    app.token_login("carol", PASSWORD).await;
    assert_rate_limited(app.post_session("dave", PASSWORD).await, 60).await;
    assert_rate_limited(app.post_token("dave", PASSWORD).await, 60).await;
}

#[tokio::test]
async fn the_default_per_ip_limit_allows_thirty_attempts_a_minute() {
    let app = spawn_app().await;
    app.user("alice").await;
    for attempt in 1..=30 {
        let response = app.post_token("alice", PASSWORD).await;
        assert_eq!(response.status(), 200, "attempt {attempt}");
    }
    assert_rate_limited(app.post_token("alice", PASSWORD).await, 60).await;
}

#[tokio::test]
async fn the_username_lock_lifts_when_the_window_has_passed() {
    let app = spawn_app_with(|c| {
        c.limits.max_failures = Some(2);
        c.limits.failure_window = secs(2);
    })
    .await;
    app.user("alice").await;
    for _ in 0..2 {
        assert_problem(
            app.post_session("alice", "wrong-password").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    assert_rate_limited(app.post_session("alice", PASSWORD).await, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    app.session_login("alice", PASSWORD).await;
}

#[tokio::test]
async fn x_forwarded_for_does_not_evade_the_per_ip_limit() {
    // Proxy headers are not trusted unless configured.
    let app = spawn_app_with(|c| c.limits.ip_per_minute = Some(2)).await;
    app.user("alice").await;
    let attempt = |ip: &'static str| {
        app.post("/v1/token")
            .header("x-forwarded-for", ip)
            .header("x-real-ip", ip)
            .header("forwarded", format!("for={ip}"))
            .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
            .send()
    };
    assert_eq!(attempt("203.0.113.1").await.unwrap().status(), 200);
    assert_eq!(attempt("203.0.113.2").await.unwrap().status(), 200);
    assert_rate_limited(attempt("203.0.113.3").await.unwrap(), 60).await;
}

#[tokio::test]
async fn registrations_have_a_per_ip_budget_of_their_own() {
    let app = spawn_app_with(|c| c.limits.registrations_per_minute = Some(2)).await;
    app.user("alice").await;
    app.user("bob").await;
    assert_rate_limited(app.try_register("carol", PASSWORD).await, 60).await;
    // Logins are counted apart.
    app.session_login("alice", PASSWORD).await;
}

#[tokio::test]
async fn behind_a_proxy_only_the_address_the_proxy_saw_counts() {
    let app = spawn_app_with(|c| {
        c.limits.ip_per_minute = Some(2);
        c.server.trusted_proxies =
            Some(tessera_server::config::StringList(vec!["127.0.0.1".into()]));
    })
    .await;
    app.user("alice").await;
    // The client forges a first X-Forwarded-For line; the proxy appends its own line.
    for forged in ["198.51.100.1", "198.51.100.2"] {
        let response = app
            .post("/v1/token")
            .header("x-forwarded-for", forged)
            .header("x-forwarded-for", "203.0.113.9")
            .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let third = app
        .post("/v1/token")
        .header("x-forwarded-for", "198.51.100.3")
        .header("x-forwarded-for", "203.0.113.9")
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_rate_limited(third, 60).await;
}
