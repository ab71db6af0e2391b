//! Remote mode over real HTTP: a Tessera API (the embedded router over an in-memory engine) on
//! one loopback port, counting the JWKS and `/v1/verify` requests it gets, and applications
//! that trust it (`RemoteVerifier` as their state) on others.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::password::Argon2Params;
use tessera::store::Stores;
use tessera::token::{Algorithm, KeySet, SigningKey};
use tessera::{Authenticator, Settings};
use tessera_axum::remote::{RemoteSettings, RemoteVerifier};
use tessera_axum::{AuthUser, HttpSettings, MaybeAuthUser, SessionUser, TesseraState, api_router};

const JWKS: &str = "/.well-known/jwks.json";

/// What the test server saw, and the switches the tests flip.
#[derive(Default)]
struct Watch {
    jwks_hits: AtomicUsize,
    verify_hits: AtomicUsize,
    /// The `Cookie` header of the last `/v1/verify` request.
    verify_cookie: Mutex<Option<String>>,
    /// A JWKS document served instead of the server's own (a key rotation).
    jwks_override: Mutex<Option<String>>,
    /// Every request answered 503, as by a server that is going down.
    down: AtomicBool,
}

struct AuthServer {
    base: String,
    issuer: String,
    watch: Arc<Watch>,
    /// A twin of the server's signing key, to make tokens the server would have made.
    key: SigningKey,
    client: reqwest::Client,
}

fn twin_keys(alg: Algorithm) -> (SigningKey, SigningKey) {
    let (key, pkcs8) = SigningKey::generate(alg).unwrap();
    (key, SigningKey::from_pkcs8(alg, &pkcs8).unwrap())
}

async fn spawn_auth_server() -> AuthServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    settings.token.issuer = base.clone();
    let (key, server_key) = twin_keys(Algorithm::EdDSA);
    let auth = Authenticator::builder(settings, Stores::memory())
        .keys(KeySet::single(server_key))
        .build()
        .await
        .unwrap();
    let http = HttpSettings { cookie_secure: false, ..HttpSettings::new(&base) };
    let watch = Arc::new(Watch::default());
    let watcher = Arc::clone(&watch);
    let app = api_router(TesseraState::new(auth, http)).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let watch = Arc::clone(&watcher);
            async move { watched(&watch, request, next).await }
        },
    ));
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    AuthServer { issuer: base.clone(), base, watch, key, client: reqwest::Client::new() }
}

async fn watched(watch: &Watch, request: Request, next: Next) -> Response {
    if watch.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match request.uri().path() {
        JWKS => {
            watch.jwks_hits.fetch_add(1, Ordering::SeqCst);
            if let Some(doc) = watch.jwks_override.lock().unwrap().clone() {
                return ([("content-type", "application/json")], doc).into_response();
            }
        }
        "/v1/verify" => {
            watch.verify_hits.fetch_add(1, Ordering::SeqCst);
            let cookie = request.headers().get("cookie").map(|c| c.to_str().unwrap().to_owned());
            *watch.verify_cookie.lock().unwrap() = cookie;
        }
        _ => {}
    }
    next.run(request).await
}

impl AuthServer {
    fn jwks_hits(&self) -> usize {
        self.watch.jwks_hits.load(Ordering::SeqCst)
    }

    fn verify_hits(&self) -> usize {
        self.watch.verify_hits.load(Ordering::SeqCst)
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap()
    }

    /// Registers alice once (later calls get 409, which is fine).
    async fn alice(&self) {
        self.post("/v1/users", creds()).await;
    }

    /// A session login: the `Cookie` value and the CSRF token.
    async fn session(&self) -> (String, String) {
        self.alice().await;
        let login = self.post("/v1/session", creds()).await;
        assert_eq!(login.status(), StatusCode::OK);
        let cookie = first_cookie(&login, "tessera_session=");
        let body: Value = login.json().await.unwrap();
        (cookie, body["csrf_token"].as_str().unwrap().to_owned())
    }

    /// A token login: the whole body.
    async fn tokens(&self) -> Value {
        self.alice().await;
        self.post("/v1/token", creds()).await.json().await.unwrap()
    }

    /// A token the server's key signed, with these claims' `iss`, `aud` and lifetime.
    fn token(&self, iss: &str, aud: &str, lifetime_secs: i64) -> String {
        token_signed_by(&self.key, iss, aud, lifetime_secs)
    }
}

fn creds() -> Value {
    json!({"username": "alice", "password": "correct horse battery"})
}

fn first_cookie(response: &reqwest::Response, prefix: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(prefix))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn token_signed_by(key: &SigningKey, iss: &str, aud: &str, lifetime_secs: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let issued = if lifetime_secs < 0 { now - 600 } else { now };
    let claims = json!({
        "iss": iss, "sub": "user-1", "aud": aud, "exp": now + lifetime_secs, "iat": issued,
        "nbf": issued, "jti": format!("{now}-{lifetime_secs}-{}", rand_suffix()),
        "sid": "family-1", "username": "mallory",
    });
    tessera::fuzzing::jws_sign(key, &serde_json::to_vec(&claims).unwrap()).unwrap()
}

fn rand_suffix() -> u64 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst) as u64
}

async fn whoami(user: MaybeAuthUser) -> String {
    match user.0 {
        Some(user) => format!("{} via {}", user.principal.username, user.principal.method.as_str()),
        None => "anonymous".into(),
    }
}

async fn transfer(user: AuthUser) -> String {
    format!("transfer by {}", user.principal.username)
}

async fn session_only(user: SessionUser) -> String {
    format!("session of {}", user.0.principal.username)
}

/// An application in remote mode, trusting the server at `server_base`.
struct RemoteApp {
    base: String,
    client: reqwest::Client,
}

async fn spawn_remote_app(
    server_base: &str,
    issuer: &str,
    tweak: impl FnOnce(&mut RemoteSettings),
) -> RemoteApp {
    let mut settings = RemoteSettings::new(issuer);
    settings.cookie_secure = false;
    tweak(&mut settings);
    let verifier = RemoteVerifier::new(server_base, settings).unwrap();
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/transfer", post(transfer))
        .route("/session-only", get(session_only))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    RemoteApp { base: format!("http://{addr}"), client: reqwest::Client::new() }
}

impl RemoteApp {
    async fn get(&self, path: &str, auth: Auth<'_>) -> reqwest::Response {
        auth.apply(self.client.get(format!("{}{path}", self.base))).send().await.unwrap()
    }

    async fn post(&self, path: &str, auth: Auth<'_>, csrf: Option<&str>) -> reqwest::Response {
        let mut request = auth.apply(self.client.post(format!("{}{path}", self.base)));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send().await.unwrap()
    }

    async fn whoami(&self, auth: Auth<'_>) -> (StatusCode, String) {
        let response = self.get("/whoami", auth).await;
        (response.status(), response.text().await.unwrap())
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
}

impl Auth<'_> {
    fn apply(self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Cookie(cookie) => request.header("cookie", cookie),
        }
    }
}

/// A 401 problem with its challenge; returns the problem's code.
async fn unauthorized(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    response.json::<Value>().await.unwrap()["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_are_verified_locally_against_the_servers_jwks() {
    let server = spawn_auth_server().await;
    let app = spawn_remote_app(&server.base, &server.issuer, |_| {}).await;
    assert_eq!(app.whoami(Auth::None).await, (StatusCode::OK, "anonymous".into()));
    assert_eq!(server.jwks_hits(), 0, "nothing is fetched before the first token");

    let tokens = server.tokens().await;
    let bearer = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.whoami(Auth::Bearer(bearer)).await, (StatusCode::OK, "alice via token".into()));
    let crafted = server.token(&server.issuer, "tessera", 300);
    assert_eq!(app.whoami(Auth::Bearer(&crafted)).await.1, "mallory via token");
    let transfer = app.post("/transfer", Auth::Bearer(bearer), None).await;
    assert_eq!(transfer.text().await.unwrap(), "transfer by alice", "no CSRF for a bearer");
    assert_eq!((server.jwks_hits(), server.verify_hits()), (1, 0), "one fetch, no round trips");

    for (bad, code) in [
        ("x.y.z".to_owned(), "token_invalid"),
        ("garbage".to_owned(), "token_invalid"),
        (server.token("http://elsewhere.example", "tessera", 300), "token_invalid"),
        (server.token(&server.issuer, "another-app", 300), "token_invalid"),
        (server.token(&server.issuer, "tessera", -120), "token_expired"),
        (format!("{bearer}x"), "token_invalid"),
    ] {
        // A bad token is a 401 even where anonymous callers are welcome.
        assert_eq!(unauthorized(app.get("/whoami", Auth::Bearer(&bad)).await).await, code, "{bad}");
        assert_eq!(unauthorized(app.post("/transfer", Auth::Bearer(&bad), None).await).await, code);
    }
    assert_eq!(unauthorized(app.post("/transfer", Auth::None, None).await).await, "unauthorized");
    assert_eq!(
        unauthorized(app.get("/session-only", Auth::Bearer(bearer)).await).await,
        "unauthorized",
        "SessionUser wants the session cookie"
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_at_most_once_per_interval() {
    let server = spawn_auth_server().await;
    let interval = Duration::from_secs(2);
    let app =
        spawn_remote_app(&server.base, &server.issuer, |s| s.jwks_refetch_interval = interval)
            .await;
    let first = server.token(&server.issuer, "tessera", 300);
    assert_eq!(app.whoami(Auth::Bearer(&first)).await.0, StatusCode::OK);
    assert_eq!(server.jwks_hits(), 1);

    // The server rotates to a new key (keeping the old one published).
    let (new_key, new_key_twin) = twin_keys(Algorithm::ES256);
    let rotated = KeySet::new(new_key_twin, vec![Arc::clone(server.key.public())]);
    let rotated_token = token_signed_by(&new_key, &server.issuer, "tessera", 300);
    // Within the interval of the first fetch, an unknown kid is refused without a fetch.
    assert_eq!(
        unauthorized(app.get("/whoami", Auth::Bearer(&rotated_token)).await).await,
        "token_invalid"
    );
    assert_eq!(server.jwks_hits(), 1);

    *server.watch.jwks_override.lock().unwrap() = Some(rotated.jwks_json().to_string());
    tokio::time::sleep(interval + Duration::from_millis(200)).await;
    // Concurrent misses share one fetch.
    let results =
        futures_util::future::join_all((0..8).map(|_| app.whoami(Auth::Bearer(&rotated_token))))
            .await;
    for (status, body) in results {
        assert_eq!((status, body.as_str()), (StatusCode::OK, "mallory via token"));
    }
    assert_eq!(server.jwks_hits(), 2, "exactly one refetch for eight concurrent misses");
    assert_eq!(app.whoami(Auth::Bearer(&first)).await.0, StatusCode::OK, "old key still there");

    // Made-up kids cannot make the application hammer the server.
    let (stranger, _) = SigningKey::generate(Algorithm::EdDSA).unwrap();
    for _ in 0..5 {
        let forged = token_signed_by(&stranger, &server.issuer, "tessera", 300);
        assert_eq!(
            unauthorized(app.get("/whoami", Auth::Bearer(&forged)).await).await,
            "token_invalid"
        );
    }
    assert_eq!(server.jwks_hits(), 2, "no refetch within the interval");
}

#[tokio::test]
async fn with_the_server_unreachable_an_uncached_kid_fails_closed() {
    let server = spawn_auth_server().await;
    let app = spawn_remote_app(&server.base, &server.issuer, |s| {
        s.jwks_refetch_interval = Duration::ZERO
    })
    .await;
    let (cookie, _) = server.session().await;
    let known = server.token(&server.issuer, "tessera", 300);
    assert_eq!(app.whoami(Auth::Bearer(&known)).await.0, StatusCode::OK);

    server.watch.down.store(true, Ordering::SeqCst);
    // A key already held needs no server.
    let also_known = server.token(&server.issuer, "tessera", 300);
    assert_eq!(
        app.whoami(Auth::Bearer(&also_known)).await,
        (StatusCode::OK, "mallory via token".into())
    );
    // A kid that cannot be looked up, or a cookie that cannot be checked: 503, never through.
    let (stranger, _) = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let unknown = token_signed_by(&stranger, &server.issuer, "tessera", 300);
    for auth in [Auth::Bearer(&unknown), Auth::Cookie(&cookie)] {
        let response = app.get("/whoami", auth).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        assert_eq!(response.json::<Value>().await.unwrap()["code"], "store_unavailable");
    }
    server.watch.down.store(false, Ordering::SeqCst);
    assert_eq!(
        app.whoami(Auth::Cookie(&cookie)).await,
        (StatusCode::OK, "alice via session".into())
    );

    // Nothing listening at all: connection refused is just as closed.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_base = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let orphan = spawn_remote_app(&dead_base, &server.issuer, |_| {}).await;
    for auth in [Auth::Bearer(&known), Auth::Cookie(&cookie)] {
        assert_eq!(orphan.get("/whoami", auth).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(orphan.whoami(Auth::None).await.1, "anonymous", "anonymous needs no server");
}

#[tokio::test]
async fn session_cookies_are_checked_by_the_server_and_briefly_cached() {
    let server = spawn_auth_server().await;
    let app = spawn_remote_app(&server.base, &server.issuer, |s| {
        s.session_cache_ttl = Duration::from_secs(60);
    })
    .await;
    let (cookie, _) = server.session().await;
    let with_others = format!("theme=dark; {cookie}; tracking=secret");
    assert_eq!(
        app.whoami(Auth::Cookie(&with_others)).await,
        (StatusCode::OK, "alice via session".into())
    );
    assert_eq!(server.verify_hits(), 1);
    assert_eq!(
        server.watch.verify_cookie.lock().unwrap().as_deref(),
        Some(cookie.as_str()),
        "only the session cookie goes to the server"
    );
    for _ in 0..3 {
        assert_eq!(app.whoami(Auth::Cookie(&cookie)).await.1, "alice via session");
    }
    let session_only = app.get("/session-only", Auth::Cookie(&cookie)).await;
    assert_eq!(session_only.text().await.unwrap(), "session of alice");
    assert_eq!(server.verify_hits(), 1, "answered from the cache");

    // Refusals are never cached.
    for _ in 0..2 {
        let bad = app.get("/whoami", Auth::Cookie("tessera_session=not-a-session")).await;
        assert_eq!(unauthorized(bad).await, "unauthorized");
    }
    assert_eq!(server.verify_hits(), 3);
    assert_eq!(
        app.whoami(Auth::Cookie("__Host-tessera_session=x")).await.1,
        "anonymous",
        "not our cookie name"
    );
}

#[tokio::test]
async fn a_revoked_session_stops_working_remotely_within_the_cache_ttl() {
    let server = spawn_auth_server().await;
    let ttl = Duration::from_secs(1);
    let app = spawn_remote_app(&server.base, &server.issuer, |s| s.session_cache_ttl = ttl).await;
    let (cookie, csrf) = server.session().await;
    assert_eq!(app.whoami(Auth::Cookie(&cookie)).await.1, "alice via session");

    let logout = server
        .client
        .delete(format!("{}/v1/session", server.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(unauthorized(app.get("/whoami", Auth::Cookie(&cookie)).await).await, "unauthorized");
}

#[tokio::test]
async fn cookie_credentials_need_their_csrf_token_on_unsafe_methods_remotely() {
    let server = spawn_auth_server().await;
    let app = spawn_remote_app(&server.base, &server.issuer, |_| {}).await;
    let (cookie, csrf) = server.session().await;
    let session = Auth::Cookie(&cookie);
    for wrong in [None, Some("nope"), Some("")] {
        let refused = app.post("/transfer", session, wrong).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{wrong:?}");
        assert_eq!(refused.json::<Value>().await.unwrap()["code"], "csrf_failed");
    }
    let ok = app.post("/transfer", session, Some(&csrf)).await;
    assert_eq!(ok.text().await.unwrap(), "transfer by alice");
    // The server hands the CSRF token only to a caller that asks for it (remote mode does).
    let verify = |want: bool| {
        let request =
            server.client.get(format!("{}/v1/verify", server.base)).header("cookie", &cookie);
        let request = if want { request.header("x-tessera-want-csrf", "1") } else { request };
        async move { request.send().await.unwrap().headers().get("x-auth-csrf-token").cloned() }
    };
    assert_eq!(verify(false).await, None);
    assert_eq!(verify(true).await.unwrap(), csrf.as_str());

    // A cookie-delivered access token follows the same rule; its CSRF token comes from login.
    let login = server
        .client
        .post(format!("{}/v1/token?delivery=cookie", server.base))
        .json(&creds())
        .send()
        .await
        .unwrap();
    let access = first_cookie(&login, "tessera_access=");
    let access_csrf =
        login.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(app.whoami(Auth::Cookie(&access)).await.1, "alice via token");
    let refused = app.post("/transfer", Auth::Cookie(&access), None).await;
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "csrf_failed");
    let refused = app.post("/transfer", Auth::Cookie(&access), Some(&csrf)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "another login's CSRF token");
    let ok = app.post("/transfer", Auth::Cookie(&access), Some(&access_csrf)).await;
    assert_eq!(ok.text().await.unwrap(), "transfer by alice");
}

#[tokio::test]
async fn check_tokens_with_server_bounds_token_revocation_by_the_cache_ttl() {
    let server = spawn_auth_server().await;
    let ttl = Duration::from_secs(1);
    let local = spawn_remote_app(&server.base, &server.issuer, |_| {}).await;
    let checking = spawn_remote_app(&server.base, &server.issuer, |s| {
        s.check_tokens_with_server = true;
        s.session_cache_ttl = ttl;
    })
    .await;
    let tokens = server.tokens().await;
    let bearer = tokens["access_token"].as_str().unwrap();
    assert_eq!(local.whoami(Auth::Bearer(bearer)).await.1, "alice via token");
    assert_eq!(checking.whoami(Auth::Bearer(bearer)).await.1, "alice via token");
    assert_eq!(server.verify_hits(), 1, "only the checking application asks");

    let revoke = server.post("/v1/token/revoke", json!({"token": tokens["refresh_token"]})).await;
    assert_eq!(revoke.status(), StatusCode::OK);
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(
        local.whoami(Auth::Bearer(bearer)).await.1,
        "alice via token",
        "documented: a revoked token works locally until it expires"
    );
    assert_eq!(
        unauthorized(checking.get("/whoami", Auth::Bearer(bearer)).await).await,
        "token_invalid"
    );
}
