//! The remote-mode example over real HTTP: a real Tessera API (the embedded router over an
//! in-memory engine) on one loopback port, the example's `app` trusting it on another, and a
//! client logging in at the first and calling the second.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::password::Argon2Params;
use tessera::store::Stores;
use tessera::{Authenticator, Settings};
use tessera_axum::remote::{RemoteSettings, RemoteVerifier};
use tessera_axum::{HttpSettings, TesseraState, api_router};

/// A Tessera server: its base URL (also its tokens' issuer).
async fn spawn_tessera() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    settings.token.issuer = base.clone();
    let auth = Authenticator::builder(settings, Stores::memory()).build().await.unwrap();
    // Plain HTTP: cookies without `Secure` and the `__Host-` prefix.
    let http = HttpSettings { cookie_secure: false, ..HttpSettings::new(&base) };
    let api = api_router(TesseraState::new(auth, http));
    tokio::spawn(async move {
        axum::serve(listener, api.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    base
}

/// The example application trusting the server at `tessera`: its base URL.
async fn spawn_app(tessera: &str, session_cache_ttl: Duration) -> String {
    let mut settings = RemoteSettings::new(tessera);
    settings.cookie_secure = false; // as the server's
    settings.session_cache_ttl = session_cache_ttl;
    let verifier = RemoteVerifier::new(tessera, settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = example_remote_app::app(verifier);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn creds() -> Value {
    json!({"username": "alice", "password": "correct horse battery"})
}

/// Registers alice at the server and logs her in at `path` (`/v1/token` or `/v1/session`).
async fn login(client: &reqwest::Client, tessera: &str, path: &str) -> reqwest::Response {
    client.post(format!("{tessera}/v1/users")).json(&creds()).send().await.unwrap();
    let login = client.post(format!("{tessera}{path}")).json(&creds()).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    login
}

#[tokio::test]
async fn a_token_from_the_server_works_on_the_app() {
    let tessera = spawn_tessera().await;
    let app = spawn_app(&tessera, Duration::from_secs(5)).await;
    let client = reqwest::Client::new();
    let tokens: Value = login(&client, &tessera, "/v1/token").await.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap();

    let me = client.get(format!("{app}/api/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        (me["username"].as_str(), me["auth_method"].as_str()),
        (Some("alice"), Some("token"))
    );
    let home: Value = client
        .get(format!("{app}/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(home["username"], "alice");

    // Without credentials: anonymous on the public page, 401 on the protected one.
    let home: Value = client.get(format!("{app}/")).send().await.unwrap().json().await.unwrap();
    assert_eq!(home["username"], Value::Null);
    let refused = client.get(format!("{app}/api/me")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "unauthorized");
    // A bad token is refused even on the public page.
    let bad = client.get(format!("{app}/")).bearer_auth("not.a.token").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_ended_on_the_server_stops_working_on_the_app_after_the_cache_ttl() {
    let ttl = Duration::from_secs(1);
    let tessera = spawn_tessera().await;
    let app = spawn_app(&tessera, ttl).await;
    let client = reqwest::Client::new();
    let login = login(&client, &tessera, "/v1/session").await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap();
    let cookie = cookie.to_owned();
    let csrf = login.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    let me = || client.get(format!("{app}/api/me")).header("cookie", &cookie).send();

    let asked = Instant::now();
    let first = me().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.json::<Value>().await.unwrap()["auth_method"], "session");

    let logout = client
        .delete(format!("{tessera}/v1/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // The app reuses the server's answer for up to `session_cache_ttl`: the bound on how long
    // a revoked session keeps working in remote mode.
    let cached = me().await.unwrap().status();
    if asked.elapsed() < ttl {
        assert_eq!(cached, StatusCode::OK, "still within the cache TTL");
    }
    tokio::time::sleep(ttl.saturating_sub(asked.elapsed()) + Duration::from_millis(200)).await;
    let after = me().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}
