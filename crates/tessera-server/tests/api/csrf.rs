//! CSRF: the `X-CSRF-Token` rule for cookie-authenticated unsafe requests and the `Origin` rule
//! for every unsafe request, login included.

use serde_json::json;

use crate::helpers::*;
use tessera_server::config::StringList;

#[tokio::test]
async fn unsafe_cookie_requests_without_the_csrf_token_are_403_and_do_nothing() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let other = app.session_login("alice", PASSWORD).await;
    let requests = [
        app.delete("/v1/session"),
        app.delete("/v1/sessions"),
        app.delete(&format!("/v1/sessions/{}", other.session_id)),
        app.put("/v1/me/password")
            .json(&json!({"current_password": PASSWORD, "new_password": OTHER_PASSWORD})),
    ];
    for request in requests {
        let response = request.header("cookie", &login.cookie).send().await.unwrap();
        assert_problem(response, 403, "csrf_failed").await;
    }
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 200);
    assert_eq!(app.me_cookie(&other.cookie).await.status(), 200);
    app.session_login("alice", PASSWORD).await;
}

#[tokio::test]
async fn safe_cookie_requests_need_no_csrf_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    for path in ["/v1/me", "/v1/session", "/v1/sessions", "/v1/verify"] {
        let response = app.get(path).header("cookie", &login.cookie).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn login_from_a_foreign_origin_is_403_csrf_failed() {
    let app = spawn_app().await;
    app.user("alice").await;
    let credentials = json!({"username": "alice", "password": PASSWORD});
    for path in ["/v1/session", "/v1/token"] {
        for origin in [EVIL_ORIGIN, "null", "http://127.0.0.1.evil.example"] {
            let response =
                app.post(path).header("origin", origin).json(&credentials).send().await.unwrap();
            assert!(response.headers().get("set-cookie").is_none());
            assert_problem(response, 403, "csrf_failed").await;
        }
    }
    let response = app
        .post("/v1/users")
        .header("origin", EVIL_ORIGIN)
        .json(&json!({"username": "mallory", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "csrf_failed").await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_even_with_the_right_csrf_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let response = app
        .delete("/v1/session")
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf)
        .header("origin", EVIL_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "csrf_failed").await;
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 200);
}

#[tokio::test]
async fn the_servers_own_origin_is_accepted() {
    let app = spawn_app().await;
    app.user("alice").await;
    let response = app
        .post("/v1/session")
        .header("origin", &app.base)
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let login = app.session_login_from(response).await;
    let response = app
        .delete("/v1/session")
        .header("origin", &app.base)
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn a_configured_allowed_origin_is_accepted() {
    let app = spawn_app_with(|c| {
        c.server.allowed_origins = Some(StringList(vec!["https://app.example".into()]));
    })
    .await;
    app.user("alice").await;
    let credentials = json!({"username": "alice", "password": PASSWORD});
    let response = app
        .post("/v1/session")
        .header("origin", "https://app.example")
        .json(&credentials)
        .send()
        .await
        .unwrap();
    app.session_login_from(response).await;
    let response = app
        .post("/v1/token")
        .header("origin", "https://app.example")
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response =
        app.post("/v1/session").header("origin", EVIL_ORIGIN).json(&credentials).send().await;
    assert_problem(response.unwrap(), 403, "csrf_failed").await;
}

#[tokio::test]
async fn bearer_requests_need_no_csrf_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let session = app.session_login("alice", PASSWORD).await;
    let response = app
        .delete(&format!("/v1/sessions/{}", session.session_id))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = app
        .put("/v1/me/password")
        .bearer_auth(&tokens.access)
        .json(&json!({"current_password": PASSWORD, "new_password": OTHER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn cors_lets_only_configured_origins_read_answers() {
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
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-headers"].to_str().unwrap().contains("x-csrf-token"));

    let allowed = app.get("/v1/me").header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(allowed.status(), 401);
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");

    let other = app.get("/v1/me").header("origin", EVIL_ORIGIN).send().await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let evil_preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/me"))
        .header("origin", EVIL_ORIGIN)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(evil_preflight.headers().get("access-control-allow-origin").is_none());
    assert_ne!(evil_preflight.status(), 204);
}
