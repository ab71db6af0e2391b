//! tessera-axum embedded in an application of its own (one test binary): the API router merged
//! next to the application's routes, and the extractors guarding those routes, over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::password::Argon2Params;
use tessera::store::Stores;
use tessera::{Authenticator, Settings};
use tessera_axum::{AuthUser, HttpSettings, MaybeAuthUser, TesseraState, api_router};

async fn whoami(user: MaybeAuthUser) -> String {
    match user.0 {
        Some(user) => format!("{} via {}", user.principal.username, user.principal.method.as_str()),
        None => "anonymous".into(),
    }
}

async fn transfer(user: AuthUser) -> String {
    format!("transfer by {}", user.principal.username)
}

struct App {
    base: String,
    client: reqwest::Client,
}

async fn spawn_app() -> App {
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    settings.token.issuer = format!("http://{addr}");
    let auth = Authenticator::builder(settings, Stores::memory()).build().await.unwrap();
    let http =
        HttpSettings { cookie_secure: false, ..HttpSettings::new(&format!("http://{addr}")) };
    let state = TesseraState::new(auth, http);
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/transfer", post(transfer))
        .with_state(state.clone())
        .merge(api_router(state));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    App { base: format!("http://{addr}"), client: reqwest::Client::new() }
}

impl App {
    async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap()
    }
}

const CREDS: fn() -> Value = || json!({"username": "alice", "password": "correct horse battery"});

#[tokio::test]
async fn extractors_tell_anonymous_from_bad_credentials() {
    let app = spawn_app().await;
    assert_eq!(app.post_json("/v1/users", CREDS()).await.status(), StatusCode::CREATED);
    let anonymous = app.client.get(format!("{}/whoami", app.base)).send().await.unwrap();
    assert_eq!(anonymous.text().await.unwrap(), "anonymous");

    let tokens: Value = app.post_json("/v1/token", CREDS()).await.json().await.unwrap();
    let bearer = tokens["access_token"].as_str().unwrap();
    let me =
        app.client.get(format!("{}/whoami", app.base)).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(me.text().await.unwrap(), "alice via token");

    // A bad token is a 401, never silently anonymous.
    let bad =
        app.client.get(format!("{}/whoami", app.base)).bearer_auth("x.y.z").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bad.headers()["content-type"], "application/problem+json");
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["code"], "token_invalid");
}

#[tokio::test]
async fn cookie_credentials_need_the_csrf_token_on_the_apps_own_unsafe_routes() {
    let app = spawn_app().await;
    app.post_json("/v1/users", CREDS()).await;
    let login = app.post_json("/v1/session", CREDS()).await;
    let cookie =
        login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let body: Value = login.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap();

    let url = format!("{}/transfer", app.base);
    let refused = app.client.post(&url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "csrf_failed");
    let wrong = app
        .client
        .post(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let ok = app
        .client
        .post(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.unwrap(), "transfer by alice");

    let me = app
        .client
        .get(format!("{}/whoami", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.text().await.unwrap(), "alice via session", "safe methods need no token");
    let anonymous_post = app.client.post(&url).send().await.unwrap();
    assert_eq!(anonymous_post.status(), StatusCode::UNAUTHORIZED);
}
