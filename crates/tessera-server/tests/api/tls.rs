//! HTTPS in the process: `[tls] cert` + `key` (a self-signed test certificate for 127.0.0.1 in
//! tests/fixtures, never used anywhere else, or one from `tessera dev-cert`), the plain-HTTP
//! redirect listener, and the security headers every response carries.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::helpers::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// One HTTP/1.1 request over TLS, trusting only the test certificate; returns the raw response.
async fn https(app: &TestApp, request: &str) -> String {
    https_as(app, &fixture("test-cert.pem"), "127.0.0.1", request).await.unwrap()
}

/// One HTTP/1.1 request over TLS to the server as `name`, trusting only the certificate in
/// `root`; the handshake error if the server's certificate does not verify.
async fn https_as(
    app: &TestApp,
    root: &std::path::Path,
    name: &str,
    request: &str,
) -> Result<String, std::io::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(root).unwrap()).unwrap();
    let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await?;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    Ok(String::from_utf8_lossy(&response).into_owned())
}

fn with_tls(raw: &mut tessera_server::config::RawConfig) {
    raw.tls.cert = Some(fixture("test-cert.pem"));
    raw.tls.key = Some(fixture("test-key.pem"));
    raw.cookie.secure = Some(true);
}

#[tokio::test]
async fn serves_https_with_secure_cookies() {
    let app = spawn_app_with(with_tls).await;
    assert!(app.base.starts_with("https://127.0.0.1:"), "the public URL defaults to https");
    let health =
        https(&app, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.to_ascii_lowercase().contains("strict-transport-security: max-age=31536000"));

    let body = r#"{"username":"alice","password":"correct-horse-battery"}"#;
    for path in ["/v1/users", "/v1/session"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let response = https(&app, &request).await;
        assert!(response.starts_with("HTTP/1.1 20"), "{path}: {response}");
        if path == "/v1/session" {
            let lower = response.to_ascii_lowercase();
            assert!(lower.contains("set-cookie: __host-tessera_session="), "{response}");
            assert!(lower.contains("; secure"), "{response}");
        }
    }
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_no_answer() {
    let app = spawn_app_with(with_tls).await;
    let response = client().get(format!("http://{}/healthz", app.addr)).send().await;
    assert!(response.is_err(), "plain HTTP must not be served on the TLS port");
}

#[tokio::test]
async fn tls_files_are_checked_at_start() {
    use tessera_server::config::{Config, RawConfig};
    let mut raw = RawConfig::default();
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.tls.cert = Some(fixture("test-cert.pem"));
    let error = Config::from_raw(raw).unwrap_err().to_string();
    assert!(error.starts_with("tls.key"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let mut raw = RawConfig::default();
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.server.data_dir = Some(dir.path().to_owned());
    raw.tls.cert = Some(fixture("test-key.pem"));
    raw.tls.key = Some(fixture("test-key.pem"));
    let config = Config::from_raw(raw).unwrap();
    let error = format!("{:#}", tessera_server::Application::build(config).await.unwrap_err());
    assert!(error.contains("tls.cert"), "{error}");
}

#[tokio::test]
async fn no_hsts_while_the_public_url_is_plain_http() {
    let app = spawn_app().await;
    let response = app.get("/healthz").send().await.unwrap();
    assert!(response.headers().get("strict-transport-security").is_none());
}

const HEALTH: &str = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn dev_cert_writes_a_pair_that_serves_https_to_clients_that_trust_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let out_str = out.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["dev-cert", "--out", out_str];
        args.extend_from_slice(extra);
        run_command(crate::cli::tessera(&args, &[]), None, WAIT).unwrap()
    };
    let first = run(&["--name", "tessera.test"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("TESSERA_TLS__CERT="), "{stdout}");
    let (cert, key) = (out.join("dev-cert.pem"), out.join("dev-key.pem"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is private");
    }
    let again = run(&[]);
    assert!(!again.status.success(), "existing files are not replaced silently");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let old_key = std::fs::read(&key).unwrap();
    assert!(run(&["--force", "--name", "tessera.test"]).status.success());
    assert_ne!(std::fs::read(&key).unwrap(), old_key, "--force makes a new key");

    let (cert_for_config, key_for_config) = (cert.clone(), key.clone());
    let app = spawn_app_with(move |raw| {
        raw.tls.cert = Some(cert_for_config.clone());
        raw.tls.key = Some(key_for_config.clone());
        raw.cookie.secure = Some(true);
    })
    .await;
    for name in ["localhost", "127.0.0.1", "::1", "tessera.test"] {
        let response = https_as(&app, &cert, name, HEALTH).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{name}: {response}");
        assert!(response.to_ascii_lowercase().contains("strict-transport-security: max-age="));
    }
    // Names the certificate does not cover, and clients that trust another certificate, fail.
    assert!(https_as(&app, &cert, "example.com", HEALTH).await.is_err());
    assert!(https_as(&app, &fixture("test-cert.pem"), "localhost", HEALTH).await.is_err());
}

fn with_tls_and_redirect(raw: &mut tessera_server::config::RawConfig) {
    with_tls(raw);
    raw.tls.redirect_http = Some("127.0.0.1:0".into());
}

/// A raw HTTP/1.1 exchange with the redirect listener.
async fn plain(addr: std::net::SocketAddr, request: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut response)).await.unwrap().unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn location(response: &str) -> Option<&str> {
    response.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("location").then(|| value.trim())
    })
}

#[tokio::test]
async fn plain_http_is_redirected_to_the_https_public_url() {
    let app = spawn_app_with(with_tls_and_redirect).await;
    let redirect = app.redirect.expect("a redirect listener");
    for (request, path) in [
        ("GET /v1/me?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", "/v1/me?x=1"),
        // The Host header and an absolute-form target cannot move the redirect elsewhere.
        ("GET /login HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n", "/login"),
        (
            "GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            "/x",
        ),
        (
            "POST /v1/session HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "/v1/session",
        ),
    ] {
        let response = plain(redirect, request).await;
        assert!(response.starts_with("HTTP/1.1 308"), "{request}: {response}");
        assert_eq!(location(&response), Some(format!("{}{path}", app.base).as_str()), "{response}");
        assert!(response.to_ascii_lowercase().contains("x-content-type-options: nosniff"));
    }
    // The HTTPS side is unaffected.
    let response =
        https(&app, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[tokio::test]
async fn the_redirect_option_needs_tls_and_an_https_public_url() {
    use tessera_server::config::{Config, RawConfig};
    let mut raw = RawConfig::default();
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.tls.redirect_http = Some("127.0.0.1:0".into());
    let error = Config::from_raw(raw).unwrap_err().to_string();
    assert!(error.starts_with("tls.redirect_http: needs tls.cert"), "{error}");

    let mut raw = RawConfig::default();
    with_tls_and_redirect(&mut raw);
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.server.public_url = Some("http://example.com".into());
    let error = Config::from_raw(raw).unwrap_err().to_string();
    assert!(error.contains("not https://"), "{error}");

    let mut raw = RawConfig::default();
    with_tls(&mut raw);
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.tls.redirect_http = Some("nowhere".into());
    let error = Config::from_raw(raw).unwrap_err().to_string();
    assert!(error.starts_with("tls.redirect_http:"), "{error}");

    // Listening on every interface, the bound address is no redirect target.
    let mut raw = RawConfig::default();
    with_tls_and_redirect(&mut raw);
    raw.server.listen = Some("0.0.0.0:0".into());
    let error = Config::from_raw(raw).unwrap_err().to_string();
    assert!(error.contains("set server.public_url"), "{error}");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let mut responses = vec![
        ("/", app.get("/").send().await.unwrap()),
        ("/healthz", app.get("/healthz").send().await.unwrap()),
        ("/metrics", app.get("/metrics").send().await.unwrap()),
        ("jwks", app.get("/.well-known/jwks.json").send().await.unwrap()),
        ("404", app.get("/nope").send().await.unwrap()),
        ("405", app.put("/healthz").send().await.unwrap()),
        ("401", app.get("/v1/me").send().await.unwrap()),
        ("me", app.get("/v1/me").header("cookie", &session.cookie).send().await.unwrap()),
        ("login", app.post_session("alice", PASSWORD).await),
        ("token", app.post_token("alice", PASSWORD).await),
        ("422", app.post("/v1/token").json(&serde_json::json!({})).send().await.unwrap()),
    ];
    for (what, response) in responses.drain(..) {
        let h = response.headers();
        let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(get("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
        assert_eq!(get("referrer-policy").as_deref(), Some("no-referrer"), "{what}");
        assert_eq!(get("x-frame-options").as_deref(), Some("DENY"), "{what}");
        let csp = get("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP"));
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{what}: {csp}");
        assert!(csp.starts_with("default-src 'none'"), "{what}: {csp}");
        // Public keys may be cached briefly; everything else, auth answers above all, not.
        if what != "jwks" {
            assert_eq!(get("cache-control").as_deref(), Some("no-store"), "{what}");
        }
    }
    // The page may load its own style sheet, nothing else.
    let css = app.get("/assets/tessera.css").send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    let page = app.get("/").send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("<style") && !page.contains("<script>") && !page.contains(" style="));
}
