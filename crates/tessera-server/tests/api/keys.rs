//! Signing-key rotation end to end: the real `tessera keys list|rotate` binary against the
//! data directory (and the PostgreSQL key table) of a running server, which picks the new key
//! up without a restart; automatic rotation with `token.key_rotation`; old tokens verifying
//! until they expire and their key leaving the JWKS after that.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_server::config::RawConfig;

use crate::cli::tessera;
use crate::helpers::*;

/// Runs `tessera ARGS` (off the async workers) and returns its output.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let command = tessera(args, env);
    tokio::task::spawn_blocking(move || run_command(command, None, WAIT).expect("tessera runs"))
        .await
        .expect("the command thread")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `tessera ARGS --json`, which must succeed; its output parsed.
async fn run_json(args: &[&str], env: &[(&str, &str)]) -> Value {
    let output = run(args, env).await;
    assert!(output.status.success(), "tessera {args:?}: {}", stderr(&output));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("tessera {args:?} printed no JSON ({e}): {}", stdout(&output)))
}

fn dir_arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp dir")
}

/// Polls `check` every 50 ms until it holds; panics after [`WAIT`].
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < WAIT, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn kid(token: &str) -> String {
    jwt_header(token)["kid"].as_str().expect("a kid").to_owned()
}

/// The rotation `tessera keys rotate` made reaches the running server: both keys in the JWKS,
/// new tokens with the new `kid`, old tokens still accepted.
async fn rotation_reaches_the_server(app: &TestApp, env: &[(&str, &str)], args: &[&str]) {
    app.register("alice", PASSWORD).await;
    let before = app.token_login("alice", PASSWORD).await;
    let old_kid = kid(&before.access);
    assert_eq!(app.jwks_kids().await, std::slice::from_ref(&old_kid));

    let rotate: Vec<&str> = ["keys", "rotate", "--json"].iter().chain(args).copied().collect();
    let rotated = run_json(&rotate, env).await;
    let new_kid = rotated["kid"].as_str().expect("the new kid").to_owned();
    assert_ne!(new_kid, old_kid);
    assert_eq!(rotated["alg"], "EdDSA");
    assert_eq!(rotated["retired"][0]["kid"], old_kid.as_str());
    let until_time = rfc3339_seconds(&rotated["retired"][0]["verifies_until"]);
    // Kept for access_ttl (5m) + leeway (30s) + the pickup margin after the rotation.
    assert!(until_time >= unix_now() + 300, "{rotated}");

    until("the server publishes both keys", async || {
        let mut kids = app.jwks_kids().await;
        kids.sort();
        let mut both = vec![old_kid.clone(), new_kid.clone()];
        both.sort();
        kids == both
    })
    .await;
    let after = app.token_login("alice", PASSWORD).await;
    assert_eq!(kid(&after.access), new_kid, "new tokens are signed with the new key");
    assert_eq!(app.me_bearer(&before.access).await.status(), 200, "the old token still works");
    assert_eq!(app.me_bearer(&after.access).await.status(), 200);
    let refreshed = app.refresh_ok(&before.refresh).await;
    assert_eq!(kid(&refreshed.access), new_kid, "refresh tokens are opaque: they just work");

    let list: Vec<&str> = ["keys", "list", "--json"].iter().chain(args).copied().collect();
    let listed = run_json(&list, env).await;
    let keys = listed.as_array().expect("a JSON array");
    assert_eq!(keys.len(), 2, "{listed}");
    let (old, new) = (&keys[0], &keys[1]);
    assert_eq!(old["kid"], old_kid.as_str(), "oldest first");
    assert_eq!(old["state"], "retired");
    assert_eq!(rfc3339_seconds(&old["verifies_until"]), until_time);
    assert!(old["retired_at"].is_string() && old["age_seconds"].is_u64(), "{old}");
    assert_eq!(new["kid"], new_kid.as_str());
    assert_eq!(new["state"], "signing");
    assert_eq!(new["alg"], "EdDSA");
    assert!(new["retired_at"].is_null() && new["verifies_until"].is_null(), "{new}");
    assert_near(rfc3339_seconds(&new["created_at"]), unix_now(), 60, "created_at");
    let metrics = app.metrics().await;
    let age = metric_sample(&metrics, "tessera_signing_key_age_seconds").expect("the age gauge");
    assert!(age >= 0.0, "{age}");
}

#[tokio::test]
async fn keys_rotate_reaches_a_running_server_on_the_data_dir() {
    let app = spawn_app().await;
    let dir = app.data_dir().to_owned();
    rotation_reaches_the_server(&app, &[], &["--data-dir", dir_arg(&dir)]).await;

    // The table, for people: a header, one aligned line per key.
    let output = run(&["keys", "list", "--data-dir", dir_arg(&dir)], &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for name in ["KID", "ALG", "CREATED", "STATE", "AGE"] {
        assert!(lines[0].contains(name), "{table}");
    }
    let state = lines[0].find("STATE").unwrap();
    assert!(lines[1][state..].starts_with("retired, verifies until "), "{table}");
    assert!(lines[2][state..].starts_with("signing"), "{table}");
}

#[tokio::test]
async fn keys_commands_have_help_with_examples_and_clear_errors() {
    for args in
        [&["keys", "--help"][..], &["keys", "list", "--help"], &["keys", "rotate", "--help"]]
    {
        let output = run(args, &[]).await;
        assert!(output.status.success(), "{args:?}");
        assert!(stdout(&output).contains("Example: tessera keys"), "{args:?}: {}", stdout(&output));
    }

    let empty = tempfile::tempdir().unwrap();
    let output = run(&["keys", "list", "--data-dir", dir_arg(empty.path())], &[]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("no signing keys yet in "), "{}", stdout(&output));
    assert_eq!(
        run_json(&["keys", "list", "--json", "--data-dir", dir_arg(empty.path())], &[]).await,
        serde_json::json!([])
    );

    let missing = empty.path().join("nowhere");
    let output = run(&["keys", "rotate", "--data-dir", dir_arg(&missing)], &[]).await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("does not exist"), "{}", stderr(&output));
    assert!(!missing.exists(), "nothing created on a mistyped --data-dir");

    let hs256 = [
        ("TESSERA_TOKEN__ALGORITHM", "HS256"),
        ("TESSERA_TOKEN__SECRET", "0123456789abcdef0123456789abcdef"),
    ];
    let output = run(&["keys", "rotate", "--data-dir", dir_arg(empty.path())], &hs256).await;
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(message.contains("cannot rotate") && message.contains("token.secret"), "{message}");
    assert!(!message.contains("0123456789abcdef"), "the secret is not shown: {message}");

    let output = run(
        &["keys", "rotate", "--data-dir", dir_arg(empty.path())],
        &[("TESSERA_TOKEN__KEY_ROTATION", "1m")],
    )
    .await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("token.key_rotation: must be longer"), "{}", stderr(&output));
}

/// Rotation every 2 s with 1 s tokens and no leeway: old keys are retired, then dropped.
fn fast_rotation(raw: &mut RawConfig) {
    raw.token.access_ttl = secs(1);
    raw.token.leeway = secs(0);
    raw.token.key_rotation =
        Some(tessera_server::config::KeyRotation(Some(Duration::from_secs(2))));
}

/// `token.key_rotation`: the server rotates by itself; the old key stays in the JWKS while
/// its tokens may be valid, then leaves it. Returns the first key's `kid`.
async fn rotates_by_itself(app: &TestApp) -> String {
    app.register("bob", PASSWORD).await;
    let first = app.token_login("bob", PASSWORD).await;
    let old_kid = kid(&first.access);
    until("a rotation: the old key and a new one published", async || {
        let kids = app.jwks_kids().await;
        kids.contains(&old_kid) && kids.len() >= 2
    })
    .await;
    let later = app.token_login("bob", PASSWORD).await;
    assert_ne!(kid(&later.access), old_kid, "new tokens carry a new kid");
    until("the old key leaves the JWKS after its tokens expired", async || {
        !app.jwks_kids().await.contains(&old_kid)
    })
    .await;
    // Expired, and its key gone: refused either way.
    assert_eq!(app.me_bearer(&first.access).await.status(), 401);
    let metrics = app.metrics().await;
    assert!(metric_sample(&metrics, "tessera_signing_key_age_seconds").is_some(), "{metrics}");
    old_kid
}

#[tokio::test]
async fn key_rotation_rotates_and_drops_old_keys_on_the_data_dir() {
    let app = spawn_app_with(fast_rotation).await;
    rotates_by_itself(&app).await;
    // What the server did is stored: one signing key, the others retired or expired.
    let listed =
        run_json(&["keys", "list", "--json", "--data-dir", dir_arg(app.data_dir())], &[]).await;
    let signing = listed.as_array().unwrap().iter().filter(|k| k["state"] == "signing").count();
    assert_eq!(signing, 1, "{listed}");
}

mod postgres {
    use super::*;
    use crate::postgres::database;

    const KEK: &str = "a2V5cy10ZXN0LWtleS1lbmNyeXB0aW9uLWtleS0xMjM=";

    fn on_postgres(url: &str) -> impl Fn(&mut RawConfig) + Clone {
        let url = url.to_owned();
        move |raw: &mut RawConfig| {
            raw.store.users = Some("postgres".into());
            raw.store.url = Some(url.clone());
            raw.store.key_encryption_key = Some(KEK.into());
        }
    }

    #[tokio::test]
    async fn keys_rotate_reaches_a_running_server_on_postgres() {
        let url = database().await;
        let app = spawn_app_with(on_postgres(&url)).await;
        let env = [
            ("TESSERA_STORE__USERS", "postgres"),
            ("TESSERA_STORE__URL", url.as_str()),
            ("TESSERA_STORE__KEY_ENCRYPTION_KEY", KEK),
        ];
        // Another data directory: the keys are in the database, not there.
        let elsewhere = tempfile::tempdir().unwrap();
        rotation_reaches_the_server(&app, &env, &["--data-dir", dir_arg(elsewhere.path())]).await;
        assert!(!elsewhere.path().join("keys").exists());

        // A wrong key-encryption key changes nothing and says why.
        let wrong = [
            ("TESSERA_STORE__USERS", "postgres"),
            ("TESSERA_STORE__URL", url.as_str()),
            ("TESSERA_STORE__KEY_ENCRYPTION_KEY", "yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc="),
        ];
        let before = app.jwks_kids().await;
        let output = run(&["keys", "rotate"], &wrong).await;
        assert!(!output.status.success());
        assert!(stderr(&output).contains("key-encryption key"), "{}", stderr(&output));
        assert_eq!(run_json(&["keys", "list", "--json"], &env).await.as_array().unwrap().len(), 2);
        assert_eq!(app.jwks_kids().await, before);
    }

    #[tokio::test]
    async fn two_instances_on_postgres_rotate_once_between_them() {
        let url = database().await;
        let configure = {
            let on_postgres = on_postgres(&url);
            move |raw: &mut RawConfig| {
                on_postgres(raw);
                fast_rotation(raw);
                raw.token.issuer = Some("https://auth.example.test".into());
            }
        };
        let one = spawn_app_with(configure.clone()).await;
        let two = spawn_app_with(configure).await;
        let old_kid = rotates_by_itself(&one).await;
        // Each rotation happened once: a key is replaced only once it is 2 s old, so no two
        // keys were created closer together than that, whichever instance made them.
        let env = [
            ("TESSERA_STORE__USERS", "postgres"),
            ("TESSERA_STORE__URL", url.as_str()),
            ("TESSERA_STORE__KEY_ENCRYPTION_KEY", KEK),
            ("TESSERA_TOKEN__ACCESS_TTL", "1s"),
            ("TESSERA_TOKEN__LEEWAY", "0s"),
        ];
        let listed = run_json(&["keys", "list", "--json"], &env).await;
        let keys = listed.as_array().unwrap();
        let signing = keys.iter().filter(|k| k["state"] == "signing").count();
        assert_eq!(signing, 1, "{listed}");
        let created: Vec<i64> = keys.iter().map(|k| rfc3339_seconds(&k["created_at"])).collect();
        for pair in created.windows(2) {
            // Second precision: 2 s apart can print as 1 s apart, never as 0.
            assert!(pair[1] - pair[0] >= 1, "two rotations at once: {listed}");
        }
        // The other instance follows the table: the old key leaves its JWKS too.
        until("the other instance drops the old key as well", async || {
            !two.jwks_kids().await.contains(&old_kid)
        })
        .await;
    }
}
