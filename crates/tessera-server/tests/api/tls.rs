//! HTTPS in the process: `[tls] cert` + `key` (a self-signed test certificate
//! for 127.0.0.1 in tests/fixtures, never used anywhere else).

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
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(fixture("test-cert.pem")).unwrap()).unwrap();
    let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
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
