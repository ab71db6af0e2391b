//! `store.users = "postgres"`: users, refresh families, revocations, the audit log, and the
//! signing keys and server secret (sealed under `store.key_encryption_key`) in PostgreSQL (the
//! server of `TESSERA_TEST_POSTGRES_URL`, which `scripts/test` starts), so a server with a
//! fresh data directory finds them there, and several servers on one database are
//! interchangeable, without Redis too (revocations then travel by `LISTEN`/`NOTIFY`).

use std::time::Duration;

use tessera_server::config::{Config, RawConfig};

use crate::cluster::{Instance, TEST_KEK, eventually, shared_postgres_database};
use crate::helpers::*;

/// A fresh database on the test server; its URL.
pub(crate) async fn database() -> String {
    let admin = std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL tests need TESSERA_TEST_POSTGRES_URL: run them with scripts/test, \
             which starts a PostgreSQL server and sets it"
        )
    });
    let name = format!("tessera_api_{}_{}", std::process::id(), unix_now_nanos());
    let output = std::process::Command::new("psql")
        .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn unix_now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// A key-encryption key, as `head -c 32 /dev/urandom | base64` prints one.
const KEK: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";
/// Another one (URL-safe alphabet).
const OTHER_KEK: &str = "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc=";

fn on_postgres(url: &str) -> impl Fn(&mut RawConfig) {
    let url = url.to_owned();
    move |raw: &mut RawConfig| {
        raw.store.users = Some("postgres".into());
        raw.store.url = Some(url.clone());
        raw.store.key_encryption_key = Some(KEK.into());
    }
}

/// Users and sessions in PostgreSQL, one fixed issuer (the default, the public URL, differs
/// per port), the key-encryption key from `kek_file` when given.
fn all_in_postgres(url: &str, kek_file: Option<&std::path::Path>) -> impl Fn(&mut RawConfig) {
    let on_postgres = on_postgres(url);
    let kek_file = kek_file.map(std::path::Path::to_owned);
    move |raw: &mut RawConfig| {
        on_postgres(raw);
        raw.store.sessions = Some("postgres".into());
        raw.token.issuer = Some("https://auth.example.test".into());
        if let Some(file) = &kek_file {
            raw.store.key_encryption_key = None;
            raw.store.key_encryption_key_file = Some(file.clone());
        }
    }
}

/// A config for a server on `url` with `kek` (or none), outside the harness, so a failing
/// start can be inspected.
fn config_on(url: &str, kek: Option<&str>, dir: &std::path::Path) -> anyhow::Result<Config> {
    let mut raw = RawConfig::default();
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.server.data_dir = Some(dir.to_owned());
    raw.store.users = Some("postgres".into());
    raw.store.url = Some(url.into());
    raw.store.key_encryption_key = kek.map(Into::into);
    Config::from_raw(raw)
}

#[tokio::test]
async fn users_families_and_the_audit_log_live_in_postgres() {
    let url = database().await;
    let app = spawn_app_with(on_postgres(&url)).await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let next = app.refresh_ok(&tokens.refresh).await;
    assert_eq!(app.me_bearer(&next.access).await.status(), 200);
    app.stop().await;

    // Another server, another data directory, the same database (and so the same keys).
    let other = spawn_app_with(on_postgres(&url)).await;
    app_has_alice(&other).await;
    assert_eq!(other.refresh(&next.refresh).await.status(), 200, "the family is in PostgreSQL");
    assert_problem(other.refresh(&tokens.refresh).await, 401, "token_reused").await;
    assert_problem(other.try_register("alice", PASSWORD).await, 409, "username_taken").await;
}

async fn app_has_alice(app: &TestApp) {
    assert_eq!(app.post_session("alice", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_postgres_store_needs_a_url_and_hides_its_password() {
    let mut raw = RawConfig::default();
    raw.store.users = Some("postgres".into());
    let error = Config::from_raw(raw).unwrap_err().to_string();
    assert!(error.starts_with("store.url: required"), "{error}");

    let mut raw = RawConfig::default();
    raw.store.users = Some("postgres".into());
    raw.store.url = Some("mysql://x".into());
    assert!(Config::from_raw(raw).unwrap_err().to_string().starts_with("store.url:"));

    // Nothing listens there: the start fails, naming the key, without the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut raw = RawConfig::default();
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.server.data_dir = Some(dir.path().to_owned());
    raw.store.users = Some("postgres".into());
    raw.store.url = Some(format!("postgres://tessera:pw-s3cret@127.0.0.1:{port}/tessera"));
    raw.store.key_encryption_key = Some(KEK.into());
    let config = Config::from_raw(raw).unwrap();
    let described = tessera_server::telemetry::describe_config(&config);
    assert!(described.contains("store.url = postgres://[redacted]@127.0.0.1:"), "{described}");
    assert!(!described.contains("pw-s3cret"));
    assert!(described.contains("store.key_encryption_key = [redacted]\n"), "{described}");
    assert!(described.contains("store.key_encryption_key_file = none\n"), "{described}");
    assert!(!described.contains(KEK), "{described}");
    assert!(!format!("{config:?}").contains(KEK), "Debug hides the key-encryption key");
    let error = format!("{:#}", tessera_server::Application::build(config).await.unwrap_err());
    assert!(error.contains("store.url"), "{error}");
    assert!(!error.contains("pw-s3cret"), "{error}");
}

#[tokio::test]
async fn instances_on_one_database_share_signing_keys_and_the_server_secret() {
    let url = database().await;
    // One instance has the key-encryption key inline, the other in a file (mode 0600, with
    // the trailing newline `base64` writes).
    let secrets = tempfile::tempdir().unwrap();
    let kek_file = secrets.path().join("kek");
    std::fs::write(&kek_file, format!("{KEK}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let a = spawn_app_with(all_in_postgres(&url, None)).await;
    let b = spawn_app_with(all_in_postgres(&url, Some(&kek_file))).await;
    assert_ne!(a.data_dir(), b.data_dir());

    let jwks = a.jwks().await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    assert_eq!(b.jwks().await, jwks, "both publish the same key");
    for app in [&a, &b] {
        assert!(!app.data_dir().join("keys").exists(), "no keys in the data directory");
        assert!(!app.data_dir().join("secret.key").exists(), "no secret in the data directory");
    }

    // An access token from A is accepted by B.
    a.user("alice").await;
    let tokens = a.token_login("alice", PASSWORD).await;
    assert_eq!(jwt_header(&tokens.access)["kid"], jwks["keys"][0]["kid"]);
    let me = json_body(b.me_bearer(&tokens.access).await, 200).await;
    assert_eq!(me["username"], "alice");

    // A session and its CSRF token from A end the session on B, and A sees it ended.
    let login = a.session_login("alice", PASSWORD).await;
    assert_eq!(b.me_cookie(&login.cookie).await.status(), 200);
    let logout = b
        .delete("/v1/session")
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204, "{}", logout.text().await.unwrap_or_default());
    assert_eq!(a.me_cookie(&login.cookie).await.status(), 401);

    // A restarted instance (new data directory again) still has the same keys.
    a.stop().await;
    let c = spawn_app_with(all_in_postgres(&url, None)).await;
    assert_eq!(c.jwks().await, jwks);
    assert_eq!(c.me_bearer(&tokens.access).await.status(), 200);
}

#[tokio::test]
async fn a_postgres_start_needs_the_key_encryption_key_and_the_right_one() {
    let url = database().await;
    let dir = tempfile::tempdir().unwrap();

    // None configured: refused, with how to make one.
    let error = config_on(&url, None, dir.path()).unwrap_err().to_string();
    assert!(error.starts_with("store.key_encryption_key: required"), "{error}");
    assert!(error.contains("head -c 32 /dev/urandom | base64"), "{error}");
    assert!(error.contains("TESSERA_STORE__KEY_ENCRYPTION_KEY"), "{error}");

    // Not a 32-byte key.
    let error = config_on(&url, Some("c2hvcnQ="), dir.path()).unwrap_err().to_string();
    assert!(error.starts_with("store.key_encryption_key: "), "{error}");

    // The first start seals the keys under KEK; a start with another key fails and says why.
    let first = tessera_server::Application::build(config_on(&url, Some(KEK), dir.path()).unwrap())
        .await
        .unwrap();
    let jwks = first.authenticator().jwks_json();
    assert!(jwks.contains("\"kid\""), "{jwks}");
    drop(first);
    let wrong = config_on(&url, Some(OTHER_KEK), dir.path()).unwrap();
    let error = format!("{:#}", tessera_server::Application::build(wrong).await.unwrap_err());
    assert!(error.starts_with("store.key_encryption_key: "), "{error}");
    assert!(error.contains("cannot be opened with this key-encryption key"), "{error}");
    assert!(!error.contains(OTHER_KEK) && !error.contains(KEK), "{error}");

    // Nothing was replaced: the right key still finds the same signing key.
    let again = tessera_server::Application::build(config_on(&url, Some(KEK), dir.path()).unwrap())
        .await
        .unwrap();
    assert_eq!(again.authenticator().jwks_json(), jwks);
}

/// `series` in an instance's `/metrics`.
async fn metric(instance: &Instance, series: &str) -> Option<f64> {
    metric_sample(&instance.metrics().await, series)
}

#[tokio::test]
async fn without_redis_a_revocation_on_one_process_reaches_the_other_through_postgres() {
    // Two `tessera serve` processes, users and sessions in one database, no Redis.
    let env = vec![
        ("TESSERA_STORE__USERS", "postgres".to_owned()),
        ("TESSERA_STORE__SESSIONS", "postgres".to_owned()),
        ("TESSERA_STORE__URL", shared_postgres_database()),
        ("TESSERA_STORE__KEY_ENCRYPTION_KEY", TEST_KEK.to_owned()),
        ("TESSERA_TOKEN__ISSUER", "https://auth.tessera.test".to_owned()),
    ];
    let (a, b) = (Instance::start(&env), Instance::start(&env));
    for instance in [&a, &b] {
        eventually("the revocation feed is live", WAIT, async || {
            metric(instance, "tessera_revocation_feed_live").await == Some(1.0)
        })
        .await;
    }
    a.user("alice").await;
    let tokens = a.token_login("alice", PASSWORD).await;
    assert_eq!(b.me_bearer(&tokens.access).await.status(), 200, "a token from A works on B");
    assert_eq!(a.me_bearer(&tokens.access).await.status(), 200);

    // Revoked on B: A, which trusts its revocation set while the feed is live, refuses the
    // token as soon as the notification lands.
    assert_eq!(b.revoke(&tokens.access).await.status(), 200);
    let took =
        eventually("A refuses the revoked access token", Duration::from_secs(5), async || {
            a.me_bearer(&tokens.access).await.status() == 401
        })
        .await;
    eprintln!("revocation reached the other process after {took:?} (polled every 5 ms)");
    assert_problem(a.me_bearer(&tokens.access).await, 401, "token_invalid").await;
    for instance in [&a, &b] {
        assert_eq!(metric(instance, "tessera_revocation_feed_live").await, Some(1.0));
        assert_eq!(
            metric(instance, "tessera_revocation_feed_connections_total").await,
            Some(1.0),
            "subscribed once: the revocation came through the feed, not a resubscription"
        );
    }
}
