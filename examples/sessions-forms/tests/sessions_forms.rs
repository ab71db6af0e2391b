//! The HTML example over real HTTP, driven like a browser: a client with a cookie jar that
//! follows redirects, posting the forms the pages render.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::cookie::{CookieStore, Jar};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tessera::password::Argon2Params;
use tessera::secrecy::SecretString;
use tessera::store::{ClientInfo, Stores};
use tessera::{Authenticator, Settings};
use tessera_axum::{HttpSettings, TesseraState};

const PASSWORD: &str = "correct horse battery";

struct Browser {
    base: String,
    client: reqwest::Client,
    jar: Arc<Jar>,
}

/// The app on a loopback port, with user alice, and a "browser" for it.
async fn spawn_app() -> Browser {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let auth = Authenticator::builder(settings, Stores::memory()).build().await.unwrap();
    let password = SecretString::from(PASSWORD.to_owned());
    auth.register("alice", &password, &ClientInfo::default()).await.unwrap();
    // Plain HTTP: cookies without `Secure` (which a client only returns over HTTPS).
    let http = HttpSettings { cookie_secure: false, ..HttpSettings::new(&base) };
    let app = example_sessions_forms::app(TesseraState::new(auth, http));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    let jar = Arc::new(Jar::default());
    let client = reqwest::Client::builder().cookie_provider(Arc::clone(&jar)).build().unwrap();
    Browser { base, client, jar }
}

impl Browser {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.client.post(self.url(path)).form(form).send().await.unwrap()
    }

    /// Logs in through the form; the page it lands on.
    async fn login(&self) -> reqwest::Response {
        self.post_form("/login", &[("username", "alice"), ("password", PASSWORD)]).await
    }

    /// The `Cookie` header the jar sends to the app.
    fn cookies(&self) -> String {
        let url = Url::parse(&self.base).unwrap();
        self.jar.cookies(&url).map(|c| c.to_str().unwrap().to_owned()).unwrap_or_default()
    }
}

/// The value of the hidden CSRF field in a page.
fn hidden_csrf_token(html: &str) -> String {
    let field = format!(r#"name="{}" value=""#, tessera_axum::CSRF_FORM_FIELD);
    let start = html.find(&field).expect("a hidden CSRF field") + field.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Asserts that the response landed on the login form.
async fn assert_on_login_page(response: reqwest::Response) {
    assert_eq!(response.url().path(), "/login");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains(r#"<form method="post" action="/login">"#));
}

#[tokio::test]
async fn login_add_an_item_with_the_forms_csrf_token_and_log_out() {
    let browser = spawn_app().await;
    assert_on_login_page(browser.get("/items").await).await;
    let wrong = browser.post_form("/login", &[("username", "alice"), ("password", "nope")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("Invalid credentials"));

    let page = browser.login().await;
    assert_eq!(page.url().path(), "/items", "redirected after login");
    let html = page.text().await.unwrap();
    assert!(html.contains("alice's items") && html.contains("No items yet."));
    let csrf = hidden_csrf_token(&html);
    assert!(browser.cookies().starts_with("tessera_session="));

    let added =
        browser.post_form("/items", &[("item", "<b>milk</b>"), ("csrf_token", &csrf)]).await;
    assert_eq!((added.url().path(), added.status()), ("/items", StatusCode::OK));
    let html = added.text().await.unwrap();
    assert!(html.contains("<li>&lt;b&gt;milk&lt;/b&gt;</li>"), "user text is escaped: {html}");

    let session_cookie = browser.cookies();
    let logout = browser.post_form("/logout", &[("csrf_token", &csrf)]).await;
    assert_on_login_page(logout).await;
    assert_eq!(browser.cookies(), "", "the cookie is cleared");
    assert_on_login_page(browser.get("/items").await).await;
    // The session is gone on the server too: the old cookie, replayed, is worthless.
    let replayed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(browser.url("/items"))
        .header("cookie", session_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert_eq!(replayed.headers()["location"], "/login");
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let browser = spawn_app().await;
    let csrf = hidden_csrf_token(&browser.login().await.text().await.unwrap());

    let forged = [
        vec![("item", "forged")],
        vec![("item", "forged"), ("csrf_token", "")],
        vec![("item", "forged"), ("csrf_token", "not-the-token")],
    ];
    for form in &forged {
        let refused = browser.post_form("/items", form).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{form:?}");
        assert_eq!(refused.headers()["content-type"], "application/problem+json");
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], "csrf_failed");
    }
    let logout = browser.post_form("/logout", &[]).await;
    assert_eq!(logout.status(), StatusCode::FORBIDDEN, "logout is a form with the token too");

    let html = browser.get("/items").await.text().await.unwrap();
    assert!(html.contains("No items yet."), "nothing forged got through");
    assert_eq!(hidden_csrf_token(&html), csrf, "one token for the whole session");

    // The one form without a session, login, is refused when another site's page posts it.
    let cross_site = browser
        .client
        .post(browser.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert_eq!(cross_site.json::<Value>().await.unwrap()["code"], "csrf_failed");
}
