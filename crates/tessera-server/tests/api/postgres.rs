//! `store.users = "postgres"`: users, refresh families, revocations and the audit log in
//! PostgreSQL (the server of `TESSERA_TEST_POSTGRES_URL`, which `scripts/test` starts), so a
//! server with a fresh data directory finds them there.

use tessera_server::config::RawConfig;

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

fn on_postgres(url: &str) -> impl Fn(&mut RawConfig) {
    let url = url.to_owned();
    move |raw: &mut RawConfig| {
        raw.store.users = Some("postgres".into());
        raw.store.url = Some(url.clone());
    }
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

    // Another server, another data directory (so other keys), the same database.
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
    use tessera_server::config::Config;
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
    let config = Config::from_raw(raw).unwrap();
    let described = tessera_server::telemetry::describe_config(&config);
    assert!(described.contains("store.url = postgres://[redacted]@127.0.0.1:"), "{described}");
    assert!(!described.contains("pw-s3cret"));
    let error = format!("{:#}", tessera_server::Application::build(config).await.unwrap_err());
    assert!(error.contains("store.url"), "{error}");
    assert!(!error.contains("pw-s3cret"), "{error}");
}
