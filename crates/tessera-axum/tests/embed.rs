//! tessera-axum embedded in an application of its own (one test binary): the API router merged
//! next to the application's routes, and the extractors guarding those routes, over real HTTP;
//! and (feature `remote`) the same extractors in an application that trusts a server elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

/// Remote mode: an application trusting a Tessera server elsewhere.
#[cfg(feature = "remote")]
mod remote;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::password::Argon2Params;
use tessera::store::Stores;
use tessera::{Authenticator, Settings};
use tessera_axum::{
    AuthUser, CsrfLayer, CsrfToken, HttpSettings, MaybeAuthUser, SessionUser, TesseraState,
    TokenUser, api_router,
};

async fn whoami(user: MaybeAuthUser) -> String {
    match user.0 {
        Some(user) => format!("{} via {}", user.principal.username, user.principal.method.as_str()),
        None => "anonymous".into(),
    }
}

async fn transfer(user: AuthUser) -> String {
    format!("transfer by {}", user.principal.username)
}

async fn token_only(user: TokenUser) -> String {
    format!("{} via {:?}", user.0.principal.username, user.0.source)
}

async fn form_page(user: SessionUser, csrf: CsrfToken) -> String {
    format!("{}|{}", user.0.principal.username, csrf.0)
}

#[derive(serde::Deserialize)]
struct Note {
    text: String,
}

/// No extractor at all: only the layer stands between a forged form and this handler.
async fn form_post(axum::Form(note): axum::Form<Note>) -> String {
    format!("posted {}", note.text)
}

async fn form_post_as(user: SessionUser, axum::Form(note): axum::Form<Note>) -> String {
    format!("{} posted {}", user.0.principal.username, note.text)
}

struct App {
    base: String,
    client: reqwest::Client,
    state: TesseraState,
}

async fn spawn_app() -> App {
    spawn_app_on(Stores::memory()).await
}

async fn spawn_app_on(stores: Stores) -> App {
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    settings.token.issuer = format!("http://{addr}");
    let auth = Authenticator::builder(settings, stores).build().await.unwrap();
    let http =
        HttpSettings { cookie_secure: false, ..HttpSettings::new(&format!("http://{addr}")) };
    let state = TesseraState::new(auth, http);
    let forms = Router::new()
        .route("/form", get(form_page).post(form_post))
        .route("/form/as", post(form_post_as))
        .layer(CsrfLayer::new(state.clone()));
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/transfer", post(transfer))
        .route("/token-only", get(token_only))
        .merge(forms)
        .with_state(state.clone())
        .merge(api_router(state.clone()));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    App { base: format!("http://{addr}"), client: reqwest::Client::new(), state }
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

/// A store in front of memory that can be switched off, to watch the server fail closed.
mod flaky {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use async_trait::async_trait;
    use tessera::clock::Timestamp;
    use tessera::crypto::Digest;
    use tessera::store::memory::MemoryStore;
    use tessera::store::*;

    #[derive(Debug, Default)]
    pub(crate) struct Flaky {
        pub(crate) down: AtomicBool,
        inner: MemoryStore,
    }

    impl Flaky {
        fn up(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("switched off by the test".into()))
            } else {
                Ok(())
            }
        }
    }

    pub(crate) fn stores() -> (Arc<Flaky>, Stores) {
        let flaky = Arc::new(Flaky::default());
        (flaky.clone(), Stores::single(flaky))
    }

    #[async_trait]
    impl UserStore for Flaky {
        async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
            self.up()?;
            self.inner.insert_user(u).await
        }
        async fn find_user_by_username(&self, n: &str) -> Result<Option<UserRecord>, StoreError> {
            self.up()?;
            self.inner.find_user_by_username(n).await
        }
        async fn find_user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
            self.up()?;
            self.inner.find_user_by_id(id).await
        }
        async fn update_password_hash(&self, id: &str, h: &str) -> Result<bool, StoreError> {
            self.up()?;
            self.inner.update_password_hash(id, h).await
        }
        async fn list_users(
            &self,
            after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<UserRecord>, StoreError> {
            self.up()?;
            self.inner.list_users(after, limit).await
        }
        async fn set_user_disabled(
            &self,
            id: &str,
            at: Option<Timestamp>,
        ) -> Result<bool, StoreError> {
            self.up()?;
            self.inner.set_user_disabled(id, at).await
        }
        async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
            self.up()?;
            self.inner.delete_user(id).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.up()
        }
    }

    #[async_trait]
    impl SessionStore for Flaky {
        async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
            self.up()?;
            self.inner.insert_session(s).await
        }
        async fn find_session(&self, h: &Digest) -> Result<Option<SessionRecord>, StoreError> {
            self.up()?;
            self.inner.find_session(h).await
        }
        async fn touch_sessions(&self, t: &[(Digest, Timestamp)]) -> Result<(), StoreError> {
            self.up()?;
            self.inner.touch_sessions(t).await
        }
        async fn delete_session(&self, h: &Digest) -> Result<Option<SessionRecord>, StoreError> {
            self.up()?;
            self.inner.delete_session(h).await
        }
        async fn delete_user_session(
            &self,
            u: &str,
            s: &str,
        ) -> Result<Option<SessionRecord>, StoreError> {
            self.up()?;
            self.inner.delete_user_session(u, s).await
        }
        async fn list_user_sessions(&self, u: &str) -> Result<Vec<SessionRecord>, StoreError> {
            self.up()?;
            self.inner.list_user_sessions(u).await
        }
        async fn delete_user_sessions(
            &self,
            u: &str,
            k: Option<&str>,
        ) -> Result<Vec<Digest>, StoreError> {
            self.up()?;
            self.inner.delete_user_sessions(u, k).await
        }
        async fn delete_expired_sessions(
            &self,
            n: Timestamp,
            c: Timestamp,
        ) -> Result<u64, StoreError> {
            self.up()?;
            self.inner.delete_expired_sessions(n, c).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.up()
        }
    }

    #[async_trait]
    impl RefreshStore for Flaky {
        async fn create_family(
            &self,
            f: &FamilyRecord,
            t: &RefreshTokenRecord,
        ) -> Result<(), StoreError> {
            self.up()?;
            self.inner.create_family(f, t).await
        }
        async fn find_refresh_token(
            &self,
            h: &Digest,
        ) -> Result<Option<(RefreshTokenRecord, FamilyRecord)>, StoreError> {
            self.up()?;
            self.inner.find_refresh_token(h).await
        }
        async fn rotate_refresh_token(
            &self,
            h: &Digest,
            s: &RefreshTokenRecord,
            n: Timestamp,
        ) -> Result<Rotation, StoreError> {
            self.up()?;
            self.inner.rotate_refresh_token(h, s, n).await
        }
        async fn find_family(&self, sid: &str) -> Result<Option<FamilyRecord>, StoreError> {
            self.up()?;
            self.inner.find_family(sid).await
        }
        async fn delete_family(
            &self,
            sid: &str,
            u: Option<&str>,
            until: Timestamp,
        ) -> Result<Option<FamilyRecord>, StoreError> {
            self.up()?;
            self.inner.delete_family(sid, u, until).await
        }
        async fn list_user_families(&self, u: &str) -> Result<Vec<FamilyRecord>, StoreError> {
            self.up()?;
            self.inner.list_user_families(u).await
        }
        async fn delete_user_families(
            &self,
            u: &str,
            k: Option<&str>,
            until: Timestamp,
        ) -> Result<Vec<String>, StoreError> {
            self.up()?;
            self.inner.delete_user_families(u, k, until).await
        }
        async fn delete_expired_families(
            &self,
            n: Timestamp,
            c: Timestamp,
        ) -> Result<u64, StoreError> {
            self.up()?;
            self.inner.delete_expired_families(n, c).await
        }
    }

    #[async_trait]
    impl RevocationStore for Flaky {
        async fn insert_revocation(&self, sid: &str, until: Timestamp) -> Result<(), StoreError> {
            self.up()?;
            self.inner.insert_revocation(sid, until).await
        }
        async fn is_revoked(&self, sid: &str, n: Timestamp) -> Result<bool, StoreError> {
            self.up()?;
            self.inner.is_revoked(sid, n).await
        }
        async fn active_revocations(
            &self,
            n: Timestamp,
        ) -> Result<Vec<(String, Timestamp)>, StoreError> {
            self.up()?;
            self.inner.active_revocations(n).await
        }
        async fn delete_expired_revocations(&self, n: Timestamp) -> Result<u64, StoreError> {
            self.up()?;
            self.inner.delete_expired_revocations(n).await
        }
    }

    #[async_trait]
    impl AuditStore for Flaky {
        async fn append_audit(&self, e: &tessera::audit::AuditEvent) -> Result<(), StoreError> {
            self.up()?;
            self.inner.append_audit(e).await
        }
        async fn query_audit(
            &self,
            f: &tessera::audit::AuditFilter,
        ) -> Result<Vec<tessera::audit::AuditEvent>, StoreError> {
            self.up()?;
            self.inner.query_audit(f).await
        }
        async fn delete_audit_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
            self.up()?;
            self.inner.delete_audit_before(cutoff).await
        }
    }
}

#[tokio::test]
async fn a_store_that_is_down_fails_closed_with_503() {
    use std::sync::atomic::Ordering;
    let (flaky, stores) = flaky::stores();
    let app = spawn_app_on(stores).await;
    app.post_json("/v1/users", CREDS()).await;
    let login = app.post_json("/v1/session", CREDS()).await;
    let cookie =
        login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let tokens: Value = app.post_json("/v1/token", CREDS()).await.json().await.unwrap();

    flaky.down.store(true, Ordering::SeqCst);
    let me = app
        .client
        .get(format!("{}/whoami", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "never let a session through unchecked"
    );
    assert_eq!(me.json::<Value>().await.unwrap()["code"], "store_unavailable");
    for (path, body) in [
        ("/v1/session", CREDS()),
        ("/v1/token", CREDS()),
        ("/v1/users", json!({"username": "bob", "password": "correct horse battery"})),
        ("/v1/token/refresh", json!({"refresh_token": tokens["refresh_token"]})),
    ] {
        let response = app.post_json(path, body).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "store_unavailable", "{path}");
    }
    // Access tokens need no store: they keep working while it is down.
    let bearer = tokens["access_token"].as_str().unwrap();
    let me =
        app.client.get(format!("{}/whoami", app.base)).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(me.text().await.unwrap(), "alice via token");

    flaky.down.store(false, Ordering::SeqCst);
    let me = app
        .client
        .get(format!("{}/whoami", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.text().await.unwrap(), "alice via session", "back once the store is");
}

/// How many session credential checks the engine has counted.
fn session_checks(app: &App) -> u64 {
    let mut metrics = String::new();
    app.state.auth.render_metrics(&mut metrics);
    metrics
        .lines()
        .filter(|l| l.starts_with("tessera_authentications_total{method=\"session\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Logs alice in with a session; returns the `Cookie` header value and the CSRF token.
async fn session_login(app: &App) -> (String, String) {
    app.post_json("/v1/users", CREDS()).await;
    let login = app.post_json("/v1/session", CREDS()).await;
    let cookie =
        login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let body: Value = login.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_csrf_layer_takes_the_token_from_a_form_field_or_the_header() {
    let app = spawn_app().await;
    let (cookie, csrf) = session_login(&app).await;
    let url = format!("{}/form", app.base);

    // The page renders the token the session login returned, with one session lookup for
    // both extractors.
    let before = session_checks(&app);
    let page = app.client.get(&url).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.text().await.unwrap(), format!("alice|{csrf}"));
    assert_eq!(session_checks(&app) - before, 1, "CsrfToken reused SessionUser's check");

    let post = async |form: Vec<(&'static str, String)>, path: &'static str| {
        let request = app.client.post(format!("{}{path}", app.base)).header("cookie", &cookie);
        request.form(&form).send().await.unwrap()
    };
    let ok = post(vec![("text", "hi".into()), ("csrf_token", csrf.clone())], "/form").await;
    assert_eq!(ok.text().await.unwrap(), "posted hi", "the form body reaches the handler");
    let ok = post(vec![("csrf_token", csrf.clone()), ("text", "yo".into())], "/form/as").await;
    assert_eq!(ok.text().await.unwrap(), "alice posted yo");

    for forged in
        [vec![("text", "x".to_owned())], vec![("text", "x".into()), ("csrf_token", "no".into())]]
    {
        let refused = post(forged, "/form").await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], "csrf_failed");
    }
    // The header works too, for scripts.
    let header = app
        .client
        .post(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .form(&[("text", "h")])
        .send()
        .await
        .unwrap();
    assert_eq!(header.text().await.unwrap(), "posted h");
    // No credential at all: the handler decides (this one needs none).
    let anonymous = app.client.post(&url).form(&[("text", "a")]).send().await.unwrap();
    assert_eq!(anonymous.text().await.unwrap(), "posted a");
    // A bad cookie is a 401, not anonymous.
    let bad = app
        .client
        .post(&url)
        .header("cookie", "tessera_session=forged")
        .form(&[("text", "b")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    // A form too large to look into is refused, not passed on unchecked.
    let huge = "a".repeat(tessera_axum::csrf::MAX_FORM_BYTES + 1);
    let too_large = post(vec![("text", huge)], "/form").await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn csrf_token_and_token_user_need_the_right_credential() {
    let app = spawn_app().await;
    let (cookie, _) = session_login(&app).await;
    let form = format!("{}/form", app.base);
    let token_only = format!("{}/token-only", app.base);

    let anonymous = app.client.get(&form).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));

    // TokenUser ignores the session cookie...
    let session = app.client.get(&token_only).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(session.status(), StatusCode::UNAUTHORIZED);
    // ...and takes a bearer token.
    let tokens: Value = app.post_json("/v1/token", CREDS()).await.json().await.unwrap();
    let bearer = tokens["access_token"].as_str().unwrap();
    let ok = app.client.get(&token_only).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(ok.text().await.unwrap(), "alice via BearerHeader");
    // A bearer token has no CSRF token to render.
    let no_csrf = app.client.get(&form).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(no_csrf.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_api_can_be_mounted_under_a_prefix() {
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth = Authenticator::builder(settings, Stores::memory()).build().await.unwrap();
    let http = HttpSettings {
        cookie_secure: false,
        api_prefix: "auth/".into(), // normalised to /auth
        ..HttpSettings::new(&base)
    };
    let state = TesseraState::new(auth, http);
    let app = Router::new()
        .route("/whoami", get(whoami))
        .with_state(state.clone())
        .merge(api_router(state));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    let client = reqwest::Client::new();
    let post = async |path: &str| {
        client.post(format!("{base}{path}")).json(&CREDS()).send().await.unwrap()
    };
    assert_eq!(post("/auth/v1/users").await.status(), StatusCode::CREATED);
    assert_eq!(post("/v1/users").await.status(), StatusCode::NOT_FOUND, "not at the root");
    let tokens: Value = post("/auth/v1/token").await.json().await.unwrap();
    let bearer = tokens["access_token"].as_str().unwrap();
    let me = client.get(format!("{base}/whoami")).bearer_auth(bearer).send().await.unwrap();
    assert_eq!(me.text().await.unwrap(), "alice via token");
    // The refresh cookie is confined to the token paths under the prefix.
    let cookies = post("/auth/v1/token?delivery=cookie").await;
    let set_cookies: Vec<_> =
        cookies.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    let refresh = set_cookies.iter().find(|c| c.starts_with("tessera_refresh=")).unwrap();
    assert!(refresh.contains("Path=/auth/v1/token;"), "{refresh}");
    let jwks = client.get(format!("{base}/auth/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(jwks.status(), StatusCode::OK);
}
