//! The notes API over real HTTP: the example's `app` on a loopback port, driven as a client
//! would drive it (register, log in for tokens, call the API with them, refresh).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::password::Argon2Params;
use tessera::store::Stores;
use tessera::{Authenticator, Settings};
use tessera_axum::HttpSettings;

struct TestApp {
    base: String,
    client: reqwest::Client,
}

async fn spawn_app() -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = Settings::new();
    // Cheap hashing: tests log in often.
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    settings.token.issuer = base.clone();
    // No retry grace, so a second use of a refresh token is reuse at once.
    settings.token.refresh_reuse_grace = Duration::ZERO;
    let auth = Authenticator::builder(settings, Stores::memory()).build().await.unwrap();
    let app = example_token_api::app(auth, HttpSettings::new(&base));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    TestApp { base, client: reqwest::Client::new() }
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers `username` and logs in for tokens: the token response's body.
    async fn user(&self, username: &str) -> Value {
        let creds = json!({"username": username, "password": "correct horse battery"});
        let register = self.client.post(self.url("/auth/v1/users")).json(&creds).send().await;
        assert_eq!(register.unwrap().status(), StatusCode::CREATED);
        let login = self.client.post(self.url("/auth/v1/token")).json(&creds).send().await.unwrap();
        assert_eq!(login.status(), StatusCode::OK);
        login.json().await.unwrap()
    }

    async fn notes(&self, token: &str) -> reqwest::Response {
        self.client.get(self.url("/notes")).bearer_auth(token).send().await.unwrap()
    }

    async fn add_note(&self, token: &str, text: &str) -> Value {
        let response = self
            .client
            .post(self.url("/notes"))
            .bearer_auth(token)
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

/// A 401 problem: checks the headers, returns the `code`.
async fn unauthorized(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: Value = response.json().await.unwrap();
    problem["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_api_takes_a_bearer_token_and_nothing_else() {
    let app = spawn_app().await;
    let tokens = app.user("alice").await;
    let note = app.add_note(access(&tokens), "buy milk").await;
    assert_eq!(note["text"], "buy milk");
    assert!(note.get("owner").is_none(), "the owner's id stays inside");
    let list: Value = app.notes(access(&tokens)).await.json().await.unwrap();
    assert_eq!(list, json!([note]));

    let anonymous = app.client.get(app.url("/notes")).send().await.unwrap();
    assert_eq!(unauthorized(anonymous).await, "unauthorized");
    assert_eq!(unauthorized(app.notes("not.a.token").await).await, "token_invalid");
    let post = app.client.post(app.url("/notes")).json(&json!({"text": "x"})).send().await;
    assert_eq!(unauthorized(post.unwrap()).await, "unauthorized");

    // A bad body gets the same problem+json treatment as Tessera's own endpoints.
    let empty = app
        .client
        .post(app.url("/notes"))
        .bearer_auth(access(&tokens))
        .json(&json!({"text": "  "}))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.json::<Value>().await.unwrap()["code"], "validation_failed");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_login() {
    let app = spawn_app().await;
    let first = app.user("alice").await;
    let refresh = |token: &Value| {
        let body = json!({ "refresh_token": token["refresh_token"] });
        app.client.post(app.url("/auth/v1/token/refresh")).json(&body).send()
    };

    let second: Value = refresh(&first).await.unwrap().json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"], "a new refresh token each time");
    assert_eq!(app.notes(access(&second)).await.status(), StatusCode::OK);

    // The first refresh token is spent: presenting it again looks like theft, and Tessera
    // revokes the whole login, including the access tokens already issued from it.
    assert_eq!(unauthorized(refresh(&first).await.unwrap()).await, "token_reused");
    assert_eq!(unauthorized(app.notes(access(&second)).await).await, "token_invalid");
}

#[tokio::test]
async fn users_see_and_delete_only_their_own_notes() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let note = app.add_note(access(&alice), "alice's secret").await;
    let url = app.url(&format!("/notes/{}", note["id"]));

    let bobs: Value = app.notes(access(&bob)).await.json().await.unwrap();
    assert_eq!(bobs, json!([]));
    let steal = app.client.delete(&url).bearer_auth(access(&bob)).send().await.unwrap();
    assert_eq!(steal.status(), StatusCode::NOT_FOUND, "as if it did not exist");
    assert_eq!(steal.json::<Value>().await.unwrap()["code"], "not_found");
    let alices: Value = app.notes(access(&alice)).await.json().await.unwrap();
    assert_eq!(alices, json!([note]), "still there");

    let delete = app.client.delete(&url).bearer_auth(access(&alice)).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    let again = app.client.delete(&url).bearer_auth(access(&alice)).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}
