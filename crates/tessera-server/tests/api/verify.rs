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

#[tokio::test]
async fn verify_applies_the_origin_rule_to_cookie_requests_from_other_sites() {
    let app = spawn_app().await;
    app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let verify = |method: Option<&str>, origin: &str, cookie: bool| {
        let mut request = app.get("/v1/verify").header("origin", origin);
        request = if cookie {
            request.header("cookie", &session.cookie)
        } else {
            request.bearer_auth(&tokens.access)
        };
        if let Some(method) = method {
            request = request.header("x-forwarded-method", method);
        }
        request.send()
    };
    let status = |r: reqwest::Result<reqwest::Response>| r.unwrap().status().as_u16();
    // nginx sends auth subrequests as GET: without the original method, a foreign Origin on a
    // cookie request is refused.
    assert_eq!(status(verify(None, EVIL_ORIGIN, true).await), 403);
    assert_eq!(status(verify(Some("POST"), EVIL_ORIGIN, true).await), 403);
    assert_eq!(status(verify(Some("GET"), EVIL_ORIGIN, true).await), 200, "a safe original method");
    assert_eq!(status(verify(Some("POST"), EVIL_ORIGIN, false).await), 200, "bearer: no CSRF");
    // A proxy may send the subrequest with another method than GET: the server's own Origin
    // rule (in its edge layer) leaves forward auth to judge the original request.
    let posted = app
        .post("/v1/verify")
        .header("origin", EVIL_ORIGIN)
        .header("cookie", &session.cookie)
        .header("x-forwarded-method", "GET")
        .send()
        .await;
    assert_eq!(status(posted), 200, "a POST subrequest for a safe original method");
    // The forwarded host's own origin is fine.
    let own = app
        .get("/v1/verify")
        .header("cookie", &session.cookie)
        .header("x-forwarded-method", "POST")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example")
        .header("origin", "https://app.example")
        .send()
        .await;
    assert_eq!(status(own), 200);
}
