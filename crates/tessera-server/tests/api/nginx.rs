//! A real nginx (Debian's package, [`NGINX`]) in front of two `tessera serve` processes, run
//! with the example the docs ship, `docs/examples/nginx/tessera.conf`: nginx balances the two
//! instances, which share users and sessions through PostgreSQL, and protects an application
//! under `/app/` with `auth_request` to `/v1/verify`. Everything is real HTTP on loopback:
//!
//! - the example is rendered with local ports in place of its `EDIT` addresses and plain HTTP
//!   in place of its TLS listener ([`render`]); the rest of the file is used as shipped, so the
//!   docs cannot drift from what is tested;
//! - the application is a stand-in here ([`App`]) that answers every request with the request
//!   head it received, so the test sees every header nginx passed on. (An nginx `return` with
//!   `$http_x_auth_username` would not do: nginx 1.22 shows only the first of two headers of
//!   one name there, and nginx puts its own first, so a spoofed one would stay hidden.)
//! - the client connects from [`CLIENT_IP`] (127.0.0.2, still loopback) while nginx, the one
//!   trusted proxy, reaches Tessera from 127.0.0.1: the address Tessera records for a login can
//!   only have come from nginx's `X-Forwarded-For`.
//!
//! The instances keep users and sessions in PostgreSQL, and with them the signing keys and the
//! secret CSRF tokens derive from (sealed with one key-encryption key), so a CSRF token minted
//! by one instance is accepted by the other.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// Where Debian's `nginx` package puts the binary (`scripts/test` installs it when missing).
const NGINX: &str = "/usr/sbin/nginx";
/// The shipped example, as the docs have it.
const EXAMPLE: &str = include_str!("../../../../docs/examples/nginx/tessera.conf");
const EXAMPLE_PATH: &str = "docs/examples/nginx/tessera.conf";
/// The session cookie's name with `cookie.secure = false`.
const SESSION_COOKIE: &str = "tessera_session";
/// The address the test client connects to nginx from.
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// `GET /v1/verify` answered 200, in an instance's `/metrics`.
const VERIFIED: &str =
    "tessera_http_requests_total{route=\"/v1/verify\",method=\"GET\",status=\"2xx\"}";

/// The example with local addresses: the two Tessera instances and the application in place of
/// the `EDIT` upstream servers, plain HTTP on `listen` in place of `listen 443 ssl;`, and the
/// `ssl_*` lines dropped. Panics when the example no longer has exactly these lines, so a
/// change to its shape fails here instead of silently testing something else.
fn render(tessera: [&str; 2], app: SocketAddr, listen: SocketAddr) -> String {
    let replacements = [
        ("server 127.0.0.1:8081;", format!("server {};", tessera[0])),
        ("server 127.0.0.1:8082;", format!("server {};", tessera[1])),
        ("server 127.0.0.1:3000;", format!("server {app};")),
        ("listen 443 ssl;", format!("listen {listen};")),
    ];
    let mut seen = [0; 4];
    let mut ssl_lines = 0;
    let mut out = String::new();
    for line in EXAMPLE.lines() {
        if line.trim_start().starts_with("ssl_") {
            ssl_lines += 1;
            continue;
        }
        let comment = line.trim_start().starts_with('#');
        let mut line = line.to_owned();
        for ((from, to), n) in replacements.iter().zip(&mut seen) {
            if !comment && line.contains(from) {
                line = line.replace(from, to);
                *n += 1;
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    for ((from, _), n) in replacements.iter().zip(seen) {
        assert_eq!(
            n, 1,
            "{EXAMPLE_PATH}: expected one line with `{from}`; update render() in \
             tests/api/nginx.rs together with the example"
        );
    }
    assert_eq!(ssl_lines, 2, "{EXAMPLE_PATH}: expected ssl_certificate and ssl_certificate_key");
    out
}

/// A free port on 127.0.0.1 (for nginx, which cannot report a port it picked itself).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `tessera serve` on a free port with `dir` as data directory, users and sessions in the
/// PostgreSQL database `url`, nginx on 127.0.0.1 as trusted proxy and `public_url` (the nginx
/// host) as its own origin.
fn instance(dir: &Path, url: &str, public_url: &str) -> TesseraProcess {
    let dir = dir.to_str().expect("a UTF-8 temp dir");
    let command = crate::cli::tessera(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", dir],
        &[
            ("TESSERA_STORE__USERS", "postgres"),
            ("TESSERA_STORE__SESSIONS", "postgres"),
            ("TESSERA_STORE__URL", url),
            ("TESSERA_STORE__KEY_ENCRYPTION_KEY", crate::cluster::TEST_KEK),
            ("TESSERA_SERVER__PUBLIC_URL", public_url),
            ("TESSERA_SERVER__TRUSTED_PROXIES", "127.0.0.1"),
            ("TESSERA_COOKIE__SECURE", "false"),
            ("TESSERA_PASSWORD__PARALLELISM", "1"),
            ("TESSERA_PASSWORD__WORKERS", "1"),
            ("TESSERA_LOG__LEVEL", "warn"),
        ],
    );
    TesseraProcess::start(command)
}

// --- nginx -------------------------------------------------------------------------------------

/// The main configuration around the example: one worker, every file under the temporary
/// prefix (`PREFIX`), and an access log that names the instance each request went to.
const MAIN_CONF: &str = r#"worker_processes 1;
events { worker_connections 256; }
http {
    log_format upstreams '$remote_addr "$request" $status upstream=$upstream_addr';
    access_log PREFIX/access.log upstreams;
    client_body_temp_path PREFIX/client_body;
    proxy_temp_path PREFIX/proxy;
    fastcgi_temp_path PREFIX/fastcgi;
    uwsgi_temp_path PREFIX/uwsgi;
    scgi_temp_path PREFIX/scgi;
    include PREFIX/tessera.conf;
}
"#;

/// Fails (never skips) without nginx.
fn assert_nginx_installed() {
    assert!(
        Path::new(NGINX).is_file(),
        "{NGINX} not found: the nginx test needs Debian's nginx package \
         (`apt-get install nginx`; scripts/test installs it when missing)"
    );
}

/// An nginx master process (and its workers) on a temporary prefix; stopped on drop.
struct Nginx {
    child: Child,
    dir: TempDir,
    base: String,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Nginx {
    /// Starts nginx with `site` (an `http {}`-context file, the rendered example) included in a
    /// minimal main configuration that keeps every file in a temporary prefix, and waits until
    /// it answers on `port`.
    async fn start(site: &str, port: u16) -> Nginx {
        assert_nginx_installed();
        let dir = tempfile::Builder::new().prefix("tessera-nginx-").tempdir().unwrap();
        // A root master runs its workers as `nobody`; they need to reach the temp directories.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = dir.path().to_str().expect("a UTF-8 temp dir").to_owned();
        std::fs::write(dir.path().join("tessera.conf"), site).unwrap();
        let main = MAIN_CONF.replace("PREFIX", &p);
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main).unwrap();
        let globals = format!("daemon off; pid {p}/nginx.pid; error_log {p}/error.log warn;");
        let mut child = Command::new(NGINX)
            .args(["-p", &p, "-c", conf.to_str().unwrap(), "-g", &globals])
            // Master and workers in a group of their own, so that Drop can end them all.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        let stderr = Some(drain(child.stderr.take()));
        let mut nginx = Nginx { child, dir, base: format!("http://127.0.0.1:{port}"), stderr };
        nginx.wait_until_answering().await;
        nginx
    }

    /// Until nginx answers (its `location /` gives 404 with `Server: nginx`), bounded by [`WAIT`].
    async fn wait_until_answering(&mut self) {
        let client = client();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited ({status}) at start:\n{}", self.logs());
            }
            if let Ok(response) = client.get(self.url("/")).send().await {
                let server = header_str(response.headers(), "server").unwrap_or_default();
                if response.status() == 404 && server.starts_with("nginx") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "nginx did not answer within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// nginx's stderr (once it has exited), error log and access log, for failure messages.
    fn logs(&mut self) -> String {
        let stderr = match self.child.try_wait() {
            Ok(Some(_)) => self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default(),
            _ => Vec::new(),
        };
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "stderr:\n{}\nerror.log:\n{}\naccess.log:\n{}",
            String::from_utf8_lossy(&stderr),
            read("error.log").unwrap_or_default(),
            read("access.log").unwrap_or_default()
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master is nginx's fast shutdown: it stops the workers, then exits.
        // Whatever of the group is left after that gets SIGKILL.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

// --- the protected application -----------------------------------------------------------------

/// The application behind nginx: answers every request with 200 and the request head it
/// received as the body, and keeps the heads.
struct App {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl App {
    async fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&heads);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(echo_head(stream, Arc::clone(&kept)));
            }
        });
        App { addr, heads }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

/// One request: reads its head (and its body, if it declares one), answers with the head and
/// closes the connection.
async fn echo_head(mut stream: TcpStream, heads: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize =
        header_values(&head, "content-length").first().and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    heads.lock().unwrap().push(head.clone());
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{head}",
        head.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Every value of header `name` (any case) in a raw request head.
fn header_values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

/// The identity headers in a head the application received, each with all its values.
fn identity(head: &str) -> [Vec<String>; 4] {
    ["x-auth-user-id", "x-auth-username", "x-auth-method", "x-auth-session-id"]
        .map(|name| header_values(head, name))
}

// --- the client --------------------------------------------------------------------------------

/// The browser side: talks to nginx only, from [`CLIENT_IP`].
struct Browser {
    client: Client,
    base: String,
}

/// A response, read.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// A logged-in session.
struct Login {
    cookie: String,
    csrf: String,
}

impl Browser {
    fn new(base: &str) -> Browser {
        let client = Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(WAIT)
            .local_address(IpAddr::V4(CLIENT_IP))
            .build()
            .unwrap();
        Browser { client, base: base.to_owned() }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.base))
    }

    async fn send(request: RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Answer { status, headers, body }
    }

    async fn register(&self, username: &str) -> String {
        let body = json!({"username": username, "password": PASSWORD});
        let answer = Browser::send(self.post("/v1/users").json(&body)).await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.json()["id"].as_str().unwrap().to_owned()
    }

    /// `POST /v1/session` through nginx, with a forged `X-Forwarded-For` that must not count.
    async fn login(&self, username: &str) -> Login {
        let body = json!({"username": username, "password": PASSWORD});
        let request = self.post("/v1/session").header("x-forwarded-for", "203.0.113.9").json(&body);
        let answer = Browser::send(request).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let cookie = find_set_cookie(&answer.headers, SESSION_COOKIE);
        Login {
            cookie: format!("{SESSION_COOKIE}={}", cookie.value),
            csrf: answer.json()["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// `GET /app/...` with `cookie` (if any) and `headers`.
    async fn app(&self, path: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> Answer {
        let mut request = self.get(path);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Browser::send(request).await
    }
}

/// Asserts nginx refused the request with its 401 problem document (`error_page 401`).
fn assert_refused(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 401, "{what}: {}", answer.body);
    let content_type = header_str(&answer.headers, "content-type").unwrap_or_default();
    assert_eq!(content_type, "application/problem+json", "{what}");
    assert_eq!(answer.json()["code"], "unauthorized", "{what}");
    let challenge = header_str(&answer.headers, "www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{what}: Tessera's challenge passed on: {challenge}");
}

/// Asserts the application answered and received exactly one of each identity header, with
/// `user`'s values, and no session id.
fn assert_identity(answer: &Answer, user_id: &str, username: &str, what: &str) {
    assert_eq!(answer.status, 200, "{what}: {}", answer.body);
    let [ids, names, methods, sids] = identity(&answer.body);
    assert_eq!(ids, [user_id], "{what}: X-Auth-User-Id at the application:\n{}", answer.body);
    assert_eq!(names, [username], "{what}: X-Auth-Username at the application:\n{}", answer.body);
    assert_eq!(methods, ["session"], "{what}: X-Auth-Method at the application:\n{}", answer.body);
    assert!(sids.is_empty(), "{what}: X-Auth-Session-Id at the application:\n{}", answer.body);
}

/// `GET /metrics` of an instance, directly.
async fn metrics(instance: &TesseraProcess) -> String {
    let response = client().get(instance.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// `GET /v1/me` of an instance, directly, with a session cookie.
async fn me_status(instance: &TesseraProcess, cookie: &str) -> u16 {
    let request = client().get(instance.url("/v1/me")).header("cookie", cookie);
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn nginx_balances_two_instances_and_guards_an_app_with_auth_request() {
    assert_nginx_installed();
    let database = crate::postgres::database().await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let public_url = format!("http://{listen}");

    // Two instances, one database, data directories of their own.
    let dirs: Vec<TempDir> = (0..2)
        .map(|_| tempfile::Builder::new().prefix("tessera-nginx-data-").tempdir().unwrap())
        .collect();
    let mut first = instance(dirs[0].path(), &database, &public_url);
    let second = instance(dirs[1].path(), &database, &public_url);
    let app = App::start().await;
    let upstreams = [&first.base["http://".len()..], &second.base["http://".len()..]];
    let mut nginx = Nginx::start(&render(upstreams, app.addr, listen), listen.port()).await;
    let browser = Browser::new(&nginx.base);

    // No credentials, or unknown ones: refused by nginx, the application never asked.
    assert_refused(&browser.app("/app/page", None, &[]).await, "no cookie");
    let forged = format!("{SESSION_COOKIE}=bm90LWEtc2Vzc2lvbg");
    assert_refused(&browser.app("/app/page", Some(&forged), &[]).await, "an unknown session");
    let spoof = [("x-auth-user-id", "1"), ("x-auth-username", "admin"), ("x-auth-method", "token")];
    assert_refused(&browser.app("/app/page", None, &spoof).await, "identity headers alone");
    assert!(app.heads().is_empty(), "the application was reached unauthenticated");
    // Only Tessera's API and JWKS are routed to it.
    for path in ["/metrics", "/healthz", "/"] {
        assert_eq!(Browser::send(browser.get(path)).await.status, 404, "{path} through nginx");
    }
    let jwks = Browser::send(browser.get("/.well-known/jwks.json")).await;
    assert_eq!(jwks.status, 200);
    assert!(jwks.json()["keys"].as_array().is_some_and(|k| !k.is_empty()), "{}", jwks.body);

    // Register and log in through nginx; the application gets the identity, and only that.
    let alice = browser.register("alice").await;
    let login = browser.login("alice").await;
    let spoof_all = [
        ("x-auth-user-id", "1"),
        ("x-auth-username", "admin"),
        ("x-auth-method", "token"),
        ("x-auth-session-id", "forged"),
    ];
    let answer = browser.app("/app/page?x=1", Some(&login.cookie), &spoof_all).await;
    assert_identity(&answer, &alice, "alice", "with spoofed identity headers");
    assert!(answer.body.starts_with("GET /app/page?x=1 HTTP/1.1\r\n"), "{}", answer.body);
    assert!(!answer.body.contains("admin") && !answer.body.contains("forged"), "{}", answer.body);

    // Tessera saw the client's address from X-Forwarded-For (nginx's own is 127.0.0.1), not the
    // one the client forged there, and the client's User-Agent.
    let list = Browser::send(browser.get("/v1/sessions").header("cookie", &login.cookie)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let list = list.json();
    let current = list["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true);
    let current = current.unwrap_or_else(|| panic!("no current session in {list}"));
    assert_eq!(current["ip"], CLIENT_IP.to_string(), "{list}");
    assert_eq!(current["user_agent"], USER_AGENT, "{list}");

    // CSRF through auth_request: a cookie-authenticated POST from a foreign origin is refused,
    // also when the client claims the original method was GET; from this host it passes.
    for headers in [
        vec![("origin", EVIL_ORIGIN)],
        vec![("origin", EVIL_ORIGIN), ("x-forwarded-method", "GET"), ("x-original-method", "GET")],
    ] {
        let mut request = browser.post("/app/form").header("cookie", &login.cookie);
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let answer = Browser::send(request).await;
        assert_eq!(answer.status, 403, "{headers:?}: {}", answer.body);
    }
    let request =
        browser.post("/app/form").header("cookie", &login.cookie).header("origin", &public_url);
    let answer = Browser::send(request).await;
    assert_identity(&answer, &alice, "alice", "a POST from the app's own origin");
    assert!(answer.body.starts_with("POST /app/form HTTP/1.1\r\n"), "{}", answer.body);

    // Round robin: both instances verified the session (it lives in PostgreSQL).
    for n in 0..8 {
        let answer = browser.app(&format!("/app/{n}"), Some(&login.cookie), &[]).await;
        assert_identity(&answer, &alice, "alice", "repeated requests");
    }
    let mut verified = Vec::new();
    for instance in [&first, &second] {
        verified.push(metric_sample(&metrics(instance).await, VERIFIED).unwrap_or(0.0));
    }
    assert!(
        verified.iter().all(|&n| n >= 1.0),
        "both instances must have answered /v1/verify: {verified:?}\n{}",
        nginx.logs()
    );
    for instance in [&first, &second] {
        assert_eq!(me_status(instance, &login.cookie).await, 200, "{}", instance.base);
    }

    // Logout through nginx (whichever instance takes it): the session is gone everywhere.
    let request = browser.client.delete(nginx.url("/v1/session"));
    let logout =
        Browser::send(request.header("cookie", &login.cookie).header("x-csrf-token", &login.csrf))
            .await;
    assert_eq!(logout.status, 204, "{}", logout.body);
    for n in 0..4 {
        let answer = browser.app(&format!("/app/after-logout/{n}"), Some(&login.cookie), &[]).await;
        assert_refused(&answer, "after logout");
    }
    for instance in [&first, &second] {
        assert_eq!(me_status(instance, &login.cookie).await, 401, "{}", instance.base);
    }

    // One instance stops: nginx sends everything to the other, which has every user and session.
    let login = browser.login("alice").await;
    let status = first.terminate();
    assert!(status.success(), "SIGTERM: {status}\n{}", first.stderr_text());
    for n in 0..4 {
        let answer = browser.app(&format!("/app/failover/{n}"), Some(&login.cookie), &[]).await;
        assert_identity(&answer, &alice, "alice", "with one instance stopped");
    }
    let bob = browser.register("bob").await;
    for _ in 0..2 {
        let login = browser.login("bob").await;
        let answer = browser.app("/app/bob", Some(&login.cookie), &[]).await;
        assert_identity(&answer, &bob, "bob", "a login with one instance stopped");
    }

    // Every request the application got carried exactly one identity.
    let heads = app.heads();
    assert_eq!(heads.len(), 1 + 1 + 8 + 4 + 2, "{heads:#?}");
    for head in &heads {
        let [ids, names, methods, _] = identity(head);
        assert!(ids.len() == 1 && names.len() == 1 && methods == ["session"], "{head}");
    }
    eprintln!("/v1/verify answered 200 per instance: {verified:?}");
}
