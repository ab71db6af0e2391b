//! The harness: a real server per test (its own port, data directory and throttling state),
//! a reqwest client without a cookie store (cookies travel by hand, so every test controls
//! exactly what is sent), and readers for problem documents, cookies, JWTs, metrics and child
//! processes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::{CONTENT_TYPE, HeaderMap, SET_COOKIE};
use reqwest::{Client, RequestBuilder, Response};
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera_server::Application;
use tessera_server::config::{Config, HumanDuration, RawConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A password that passes the policy.
pub(crate) const PASSWORD: &str = "correct-horse-battery";
/// Another one.
pub(crate) const OTHER_PASSWORD: &str = "staple-lantern-orbit";
/// The `User-Agent` every test request carries.
pub(crate) const USER_AGENT: &str = "tessera-api-tests/1";
/// An origin no configuration allows.
pub(crate) const EVIL_ORIGIN: &str = "https://evil.example";
/// Bound on every wait for a server or a child process.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// `n` seconds as a config value.
pub(crate) fn secs(n: u64) -> Option<HumanDuration> {
    Some(HumanDuration(Duration::from_secs(n)))
}

fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// A running server.
#[derive(Debug)]
pub(crate) struct TestApp {
    /// The bound address.
    pub(crate) addr: SocketAddr,
    /// `http://127.0.0.1:PORT`: the public URL, default issuer and own origin.
    pub(crate) base: String,
    /// No cookie store, no redirects followed.
    pub(crate) client: Client,
    /// Whether cookies are `Secure` with `__Host-` names.
    pub(crate) cookie_secure: bool,
    /// The plain-HTTP redirect listener (`[tls] redirect_http`), if any.
    pub(crate) redirect: Option<SocketAddr>,
    data_dir: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A server with the test defaults: port 0, a fresh data directory, `cookie.secure = false`
/// and cheap argon2 parameters.
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A server with the test defaults changed by `configure`.
pub(crate) async fn spawn_app_with(configure: impl Fn(&mut RawConfig)) -> TestApp {
    let dir = tempfile::Builder::new().prefix("tessera-test-").tempdir().expect("a temp dir");
    spawn_app_in(dir, None, |raw| {
        cheap_passwords(raw);
        configure(raw);
    })
    .await
}

/// Test-speed argon2 parameters.
pub(crate) fn cheap_passwords(raw: &mut RawConfig) {
    raw.password.memory_kib = Some(64);
    raw.password.iterations = Some(1);
    raw.password.parallelism = Some(1);
    raw.password.workers = Some(2);
}

/// A server on `dir` (and on `listen`, for a restart on the same address), configured by
/// `configure` on top of port 0 and `cookie.secure = false` only (argon2 defaults).
pub(crate) async fn spawn_app_in(
    dir: TempDir,
    listen: Option<SocketAddr>,
    configure: impl Fn(&mut RawConfig),
) -> TestApp {
    init_tracing();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (app, cookie_secure) = loop {
        let mut raw = RawConfig::default();
        raw.server.listen = Some(listen.map_or_else(|| "127.0.0.1:0".into(), |a| a.to_string()));
        raw.server.data_dir = Some(dir.path().to_owned());
        raw.cookie.secure = Some(false);
        configure(&mut raw);
        let cookie_secure = raw.cookie.secure.unwrap_or(true);
        let config = Config::from_raw(raw).expect("a valid test configuration");
        match Application::build(config).await {
            Ok(app) => break (app, cookie_secure),
            // A restart on the same port may briefly find it busy.
            Err(e) if listen.is_some() && Instant::now() < deadline => {
                eprintln!("restart: {e:#}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the application did not start: {e:#}"),
        }
    };
    let addr = app.local_addr();
    let redirect = app.redirect_addr();
    let base = app.public_url().to_owned();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base,
        client: client(),
        cookie_secure,
        redirect,
        data_dir: Some(dir),
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// A client without a cookie store that does not follow redirects.
pub(crate) fn client() -> Client {
    Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(WAIT)
        .build()
        .expect("a reqwest client")
}

/// A user as registration returned it.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) username: String,
}

/// A successful session login.
#[derive(Debug, Clone)]
pub(crate) struct SessionLogin {
    /// The session cookie's value (the secret id).
    pub(crate) value: String,
    /// `name=value`, ready for a `Cookie` header.
    pub(crate) cookie: String,
    /// The CSRF token of the session.
    pub(crate) csrf: String,
    /// The public handle.
    pub(crate) session_id: String,
    /// The response body.
    pub(crate) body: Value,
    /// The `Set-Cookie` header as sent.
    pub(crate) set_cookie: String,
}

/// A successful token login (or refresh).
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
    /// The access token's `sid` claim.
    pub(crate) sid: String,
    pub(crate) body: Value,
}

impl Tokens {
    pub(crate) fn from_body(body: Value) -> Tokens {
        let access = body["access_token"].as_str().expect("access_token").to_owned();
        let refresh = body["refresh_token"].as_str().expect("refresh_token").to_owned();
        let sid = jwt_claims(&access)["sid"].as_str().expect("a sid claim").to_owned();
        Tokens { access, refresh, sid, body }
    }
}

impl TestApp {
    /// The helpers for a server running elsewhere (a `tessera` process at `base`, with
    /// `cookie.secure = false`).
    pub(crate) fn remote(base: &str) -> TestApp {
        let addr = base.trim_start_matches("http://").parse().expect("http://IP:PORT");
        TestApp {
            addr,
            base: base.to_owned(),
            client: client(),
            cookie_secure: false,
            redirect: None,
            data_dir: None,
            shutdown: None,
            server: None,
        }
    }

    /// `base` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    pub(crate) fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path))
    }

    pub(crate) fn put(&self, path: &str) -> RequestBuilder {
        self.client.put(self.url(path))
    }

    pub(crate) fn delete(&self, path: &str) -> RequestBuilder {
        self.client.delete(self.url(path))
    }

    /// The session cookie's name in this configuration.
    pub(crate) fn session_cookie_name(&self) -> &'static str {
        if self.cookie_secure { "__Host-tessera_session" } else { "tessera_session" }
    }

    /// A `Cookie` header value carrying `value` as the session cookie.
    pub(crate) fn session_cookie(&self, value: &str) -> String {
        format!("{}={value}", self.session_cookie_name())
    }

    pub(crate) async fn try_register(&self, username: &str, password: &str) -> Response {
        self.post("/v1/users")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("POST /v1/users")
    }

    /// Registers `username` with `password`; asserts 201.
    pub(crate) async fn register(&self, username: &str, password: &str) -> User {
        let body = json_body(self.try_register(username, password).await, 201).await;
        User {
            id: body["id"].as_str().expect("id").to_owned(),
            username: body["username"].as_str().expect("username").to_owned(),
        }
    }

    /// Registers `username` with [`PASSWORD`].
    pub(crate) async fn user(&self, username: &str) -> User {
        self.register(username, PASSWORD).await
    }

    pub(crate) async fn post_session(&self, username: &str, password: &str) -> Response {
        self.post("/v1/session")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("POST /v1/session")
    }

    /// Logs in with a session; asserts 200 and a session cookie.
    pub(crate) async fn session_login(&self, username: &str, password: &str) -> SessionLogin {
        let response = self.post_session(username, password).await;
        self.session_login_from(response).await
    }

    /// Reads a successful session login response.
    pub(crate) async fn session_login_from(&self, response: Response) -> SessionLogin {
        let name = self.session_cookie_name();
        let set_cookie = set_cookies(response.headers())
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} cookie in {:?}", response.headers()));
        let body = json_body(response, 200).await;
        let value = SetCookie::parse(&set_cookie).value;
        SessionLogin {
            cookie: format!("{name}={value}"),
            value,
            csrf: body["csrf_token"].as_str().expect("csrf_token").to_owned(),
            session_id: body["session_id"].as_str().expect("session_id").to_owned(),
            body,
            set_cookie,
        }
    }

    pub(crate) async fn post_token(&self, username: &str, password: &str) -> Response {
        self.post("/v1/token")
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .expect("POST /v1/token")
    }

    /// Logs in for tokens; asserts 200.
    pub(crate) async fn token_login(&self, username: &str, password: &str) -> Tokens {
        Tokens::from_body(json_body(self.post_token(username, password).await, 200).await)
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Response {
        self.post("/v1/token/refresh")
            .json(&json!({"refresh_token": refresh_token}))
            .send()
            .await
            .expect("POST /v1/token/refresh")
    }

    /// Refreshes; asserts 200.
    pub(crate) async fn refresh_ok(&self, refresh_token: &str) -> Tokens {
        Tokens::from_body(json_body(self.refresh(refresh_token).await, 200).await)
    }

    pub(crate) async fn revoke(&self, token: &str) -> Response {
        self.post("/v1/token/revoke")
            .json(&json!({"token": token}))
            .send()
            .await
            .expect("POST /v1/token/revoke")
    }

    /// `GET /v1/me` with a `Cookie` header.
    pub(crate) async fn me_cookie(&self, cookie: &str) -> Response {
        self.get("/v1/me").header("cookie", cookie).send().await.expect("GET /v1/me")
    }

    /// `GET /v1/me` with a bearer token.
    pub(crate) async fn me_bearer(&self, token: &str) -> Response {
        self.get("/v1/me").bearer_auth(token).send().await.expect("GET /v1/me")
    }

    pub(crate) async fn jwks(&self) -> Value {
        json_body(
            self.get("/.well-known/jwks.json").send().await.expect("GET /.well-known/jwks.json"),
            200,
        )
        .await
    }

    /// The `kid`s the JWKS publishes.
    pub(crate) async fn jwks_kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .expect("a keys array")
            .iter()
            .map(|k| k["kid"].as_str().expect("every JWK has a kid").to_owned())
            .collect()
    }

    pub(crate) async fn metrics(&self) -> String {
        let response = self.get("/metrics").send().await.expect("GET /metrics");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics text")
    }

    /// The data directory (SQLite database, keys, secrets).
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self.data_dir.as_ref().expect("the data dir").path()
    }

    /// Stops the server gracefully; returns its data directory and address.
    pub(crate) async fn stop(mut self) -> (TempDir, SocketAddr) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            tokio::time::timeout(WAIT, server)
                .await
                .expect("the server stops in time")
                .expect("the server task does not panic")
                .expect("the server stops cleanly");
        }
        (self.data_dir.take().expect("the data dir"), self.addr)
    }

    /// Stops the server and starts a new one on the same data directory and address.
    pub(crate) async fn restart(self, configure: impl Fn(&mut RawConfig)) -> TestApp {
        let (dir, addr) = self.stop().await;
        spawn_app_in(dir, Some(addr), |raw| {
            cheap_passwords(raw);
            configure(raw);
        })
        .await
    }
}

// --- responses ---------------------------------------------------------------------------------

/// Asserts `status` and returns the JSON body (the body is in the panic message otherwise).
pub(crate) async fn json_body(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let url = response.url().clone();
    let text = response.text().await.expect("a response body");
    assert_eq!(actual, status, "{url}: unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text}"))
}

/// Asserts an RFC 9457 problem response with `status` and `code`; returns the document.
pub(crate) async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    let actual = response.status().as_u16();
    let url = response.url().clone();
    let headers = response.headers().clone();
    let content_type = header_str(&headers, CONTENT_TYPE.as_str()).unwrap_or_default();
    let text = response.text().await.expect("a response body");
    assert_eq!(actual, status, "{url}: expected {status} {code}; body: {text}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{url}: problem Content-Type is {content_type:?}; body: {text}"
    );
    let problem: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{url}: problem is not JSON ({e}): {text}"));
    assert_eq!(problem["code"], code, "{url}: {text}");
    assert_eq!(problem["status"], status, "{url}: {text}");
    if status == 401 {
        assert!(
            header_str(&headers, "www-authenticate").is_some_and(|c| c.starts_with("Bearer")),
            "{url}: a 401 carries WWW-Authenticate: Bearer (RFC 9110, RFC 6750)"
        );
    }
    for field in ["type", "title", "detail"] {
        assert!(
            problem[field].as_str().is_some_and(|s| !s.is_empty()),
            "{url}: problem field {field} missing or empty: {text}"
        );
    }
    problem
}

/// A header as text.
pub(crate) fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Every `Set-Cookie` header.
pub(crate) fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("a readable Set-Cookie").to_owned())
        .collect()
}

/// A parsed `Set-Cookie` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetCookie {
    pub(crate) name: String,
    pub(crate) value: String,
    /// Attribute names lower-cased, with their values (empty for flags).
    pub(crate) attributes: BTreeMap<String, String>,
}

impl SetCookie {
    pub(crate) fn parse(header: &str) -> SetCookie {
        let mut parts = header.split(';');
        let (name, value) =
            parts.next().and_then(|p| p.trim().split_once('=')).expect("name=value");
        let attributes = parts
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_owned()),
                None => (p.to_ascii_lowercase(), String::new()),
            })
            .collect();
        SetCookie { name: name.trim().to_owned(), value: value.trim().to_owned(), attributes }
    }

    /// The attribute `name` (lower case), if present.
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
}

/// The `Set-Cookie` for cookie `name`; panics if there is none.
pub(crate) fn find_set_cookie(headers: &HeaderMap, name: &str) -> SetCookie {
    set_cookies(headers)
        .iter()
        .map(|c| SetCookie::parse(c))
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no Set-Cookie for {name} in {:?}", set_cookies(headers)))
}

/// Expected attributes as a map (names lower case).
pub(crate) fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())).collect()
}

// --- JWTs --------------------------------------------------------------------------------------

pub(crate) fn b64url_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap_or_else(|e| panic!("not base64url ({e}): {text}"))
}

pub(crate) fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap_or_else(|| panic!("not a JWS: {token}"));
    serde_json::from_slice(&b64url_decode(part)).expect("a JSON JWS part")
}

/// The JOSE header, decoded without verification.
pub(crate) fn jwt_header(token: &str) -> Value {
    assert_eq!(token.split('.').count(), 3, "a JWS compact serialization: {token}");
    jwt_part(token, 0)
}

/// The claims, decoded without verification.
pub(crate) fn jwt_claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// A JWS from a header, claims and signature of our choosing.
pub(crate) fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64url(header.to_string()), b64url(claims.to_string()), b64url(signature))
}

/// HMAC-SHA256 (RFC 2104) over the engine's SHA-256, for forging HS256 signatures.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&tessera::crypto::sha256(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&tessera::crypto::sha256(&inner));
    tessera::crypto::sha256(&outer)
}

// --- misc --------------------------------------------------------------------------------------

/// Seconds since the epoch.
pub(crate) fn unix_now() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970");
    i64::try_from(now.as_secs()).expect("a sane clock")
}

/// An RFC 3339 UTC timestamp as seconds since the epoch (asserts the `Z` form).
pub(crate) fn rfc3339_seconds(value: &Value) -> i64 {
    let text = value.as_str().unwrap_or_else(|| panic!("not a timestamp string: {value}"));
    assert!(text.ends_with('Z'), "not a UTC RFC 3339 time: {text}");
    let time = humantime::parse_rfc3339(text)
        .unwrap_or_else(|e| panic!("not an RFC 3339 time ({e}): {text}"));
    let secs = time.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    i64::try_from(secs).expect("a sane time")
}

/// Asserts `actual` is within `tolerance` seconds of `expected`.
pub(crate) fn assert_near(actual: i64, expected: i64, tolerance: i64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} is not within {tolerance} s of {expected}"
    );
}

/// The sum of every sample of metric `name` (any labels) in a Prometheus text exposition.
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// One sample: the value of exactly `series` (name and labels as written).
pub(crate) fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(s, _)| *s == series)
        .and_then(|(_, v)| v.parse().ok())
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Runs `command` to completion with `stdin` as its input, within `timeout` (killed and a
/// panic after that). `Err` only when it cannot be started.
pub(crate) fn run_command(
    mut command: Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Output> {
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn()?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).expect("writing to the child's stdin");
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().expect("the stdout reader"),
        stderr: stderr.join().expect("the stderr reader"),
    })
}

/// Reads a pipe to its end on a thread.
pub(crate) fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buffer);
        }
        buffer
    })
}

/// A child process of the real `tessera` binary (`tessera serve ...`), killed on drop, so a
/// failing test leaves no server behind.
#[derive(Debug)]
pub(crate) struct TesseraProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`, from its `listening on` line.
    pub(crate) base: String,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Drop for TesseraProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl TesseraProcess {
    /// Starts `command` (a `tessera serve` listening on `127.0.0.1:0`) and waits, at most
    /// [`WAIT`], for its `listening on` line.
    pub(crate) fn start(mut command: Command) -> TesseraProcess {
        use std::io::{BufRead, BufReader};

        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("the tessera binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = drain(child.stderr.take());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keeps reading to the end: the server must never write into a closed pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = TesseraProcess { child, base: String::new(), stderr: Some(stderr) };
        let deadline = Instant::now() + WAIT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let url = url.trim();
                        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
                        server.base = url.to_owned();
                        return server;
                    }
                }
                Err(_) => {
                    server.kill();
                    panic!(
                        "tessera serve printed no `listening on` line:\n{}",
                        server.stderr_text()
                    );
                }
            }
        }
    }

    /// `base` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and a bounded wait for the exit.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        self.wait("SIGKILL");
    }

    /// SIGTERM (a graceful stop), and a bounded wait for the exit.
    pub(crate) fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(killed.success(), "kill -TERM {pid}");
        self.wait("SIGTERM")
    }

    fn wait(&mut self, after: &str) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for tessera") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("tessera did not exit within {WAIT:?} of {after}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything the child wrote to stderr (once it has exited).
    pub(crate) fn stderr_text(&mut self) -> String {
        let bytes = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
