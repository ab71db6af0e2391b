//! Forward auth: `GET /v1/verify`.

use crate::helpers::*;

fn identity(response: &reqwest::Response) -> (String, String, String) {
    let h = |name| header_str(response.headers(), name).unwrap_or_default();
    (h("x-auth-user-id"), h("x-auth-username"), h("x-auth-method"))
}

#[tokio::test]
async fn verify_with_a_session_cookie_returns_the_identity_headers() {
    let app = spawn_app().await;
    let user = app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let response = app.get("/v1/verify").header("cookie", &session.cookie).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(identity(&response), (user.id, "alice".into(), "session".into()));
}

#[tokio::test]
async fn verify_with_a_bearer_token_returns_the_identity_headers() {
    let app = spawn_app().await;
    let user = app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let response = app.get("/v1/verify").bearer_auth(&tokens.access).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(identity(&response), (user.id, "alice".into(), "token".into()));
}

#[tokio::test]
async fn verify_without_credentials_is_a_401_problem() {
    let app = spawn_app().await;
    let response = app.get("/v1/verify").send().await.unwrap();
    assert!(response.headers().get("x-auth-user-id").is_none());
    assert_problem(response, 401, "unauthorized").await;
    // `rd` alone (no browser) does not redirect.
    let response = app.get("/v1/verify?rd=/somewhere").send().await.unwrap();
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn verify_refuses_revoked_and_ended_credentials() {
    let app = spawn_app().await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let session = app.session_login("alice", PASSWORD).await;
    assert_eq!(app.revoke(&tokens.refresh).await.status(), 200);
    let response = app
        .delete("/v1/session")
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = app.get("/v1/verify").bearer_auth(&tokens.access).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = app.get("/v1/verify").header("cookie", &session.cookie).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn a_browser_without_credentials_is_redirected_to_the_login_page() {
    let app = spawn_app().await;
    let response = app
        .get("/v1/verify?rd=/somewhere")
        .header("accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = header_str(response.headers(), "location").expect("a Location");
    assert!(location.starts_with(&app.base), "{location}");
    assert!(location.contains("rd="), "{location}");
    assert!(location.contains("somewhere"), "{location}");
}

#[tokio::test]
async fn no_open_redirect_to_foreign_sites() {
    let app = spawn_app().await;
    for rd in [
        "https://evil.example/",
        "https%3A%2F%2Fevil.example%2F",
        "//evil.example/",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "javascript:alert(1)",
    ] {
        let response = app
            .get(&format!("/v1/verify?rd={rd}"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(response.headers().get("location").is_none(), "rd={rd}: {status} with Location");
        assert_problem(response, 401, "unauthorized").await;
    }
}
