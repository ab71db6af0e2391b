//! Persistence: users, sessions, refresh families, keys and revocations survive a restart on
//! the same data directory (and address: the default issuer is the public URL).

use std::time::{Duration, Instant};

use crate::helpers::*;

#[tokio::test]
async fn users_sessions_tokens_and_keys_survive_a_restart() {
    let app = spawn_app().await;
    let user = app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let kids = app.jwks_kids().await;

    let app = app.restart(|_| {}).await;

    assert_eq!(app.jwks_kids().await, kids, "the same signing key");
    let me = json_body(app.me_cookie(&session.cookie).await, 200).await;
    assert_eq!(me["id"], user.id.as_str());
    assert_eq!(me["session_id"], session.session_id.as_str());
    let me = json_body(app.me_bearer(&tokens.access).await, 200).await;
    assert_eq!(me["id"], user.id.as_str(), "the old access token still verifies");
    let next = app.refresh_ok(&tokens.refresh).await;
    assert_eq!(next.sid, tokens.sid);
    assert_eq!(jwt_header(&next.access)["kid"], jwt_header(&tokens.access)["kid"]);
    app.session_login("alice", PASSWORD).await;
    assert_problem(app.try_register("ALICE", PASSWORD).await, 409, "username_taken").await;

    // The session's CSRF token is still the one to use.
    let response = app
        .delete("/v1/session")
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let app = spawn_app().await;
    app.user("alice").await;
    let revoked = app.token_login("alice", PASSWORD).await;
    let kept = app.token_login("alice", PASSWORD).await;
    let ended = app.token_login("alice", PASSWORD).await;
    let session = app.session_login("alice", PASSWORD).await;
    assert_eq!(app.revoke(&revoked.refresh).await.status(), 200);
    let response = app
        .delete(&format!("/v1/sessions/{}", ended.sid))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(app.me_bearer(&revoked.access).await.status(), 401);

    let app = app.restart(|_| {}).await;

    assert_problem(app.me_bearer(&revoked.access).await, 401, "token_invalid").await;
    assert_problem(app.me_bearer(&ended.access).await, 401, "token_invalid").await;
    assert_eq!(app.refresh(&revoked.refresh).await.status(), 401);
    assert_eq!(app.refresh(&ended.refresh).await.status(), 401);
    assert_eq!(app.me_bearer(&kept.access).await.status(), 200, "the others still work");
}

#[tokio::test]
async fn a_logout_everywhere_survives_a_restart() {
    let app = spawn_app().await;
    app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let response = app.delete("/v1/sessions").bearer_auth(&tokens.access).send().await.unwrap();
    assert_eq!(response.status(), 204);

    let app = app.restart(|_| {}).await;

    assert_eq!(app.me_cookie(&session.cookie).await.status(), 401);
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 401);
    assert_eq!(app.refresh(&tokens.refresh).await.status(), 401);
}

#[tokio::test]
async fn session_renewals_are_written_before_shutdown() {
    // Idle timeout 6 s. The session is used 3 s after login, the server restarts, and it is
    // checked 7.5 s after login: alive only if the renewal at 3 s reached the store.
    let idle = |c: &mut tessera_server::config::RawConfig| c.session.idle_timeout = secs(6);
    let app = spawn_app_with(idle).await;
    app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let logged_in = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.me_cookie(&session.cookie).await.status(), 200);

    let app = app.restart(idle).await;

    let check_at = logged_in + Duration::from_millis(7500);
    tokio::time::sleep(check_at.saturating_duration_since(Instant::now())).await;
    assert_eq!(app.me_cookie(&session.cookie).await.status(), 200, "the renewal was kept");
}

#[tokio::test]
async fn default_argon2id_parameters_are_used_for_new_passwords() {
    use tessera::store::UserStore as _;

    // Not the cheap test parameters: the documented defaults m=19456, t=2, p=1.
    let dir = tempfile::Builder::new().prefix("tessera-test-").tempdir().unwrap();
    let app = spawn_app_in(dir, None, |_| {}).await;
    app.user("alice").await;
    app.session_login("alice", PASSWORD).await;
    let (dir, _) = app.stop().await;

    let store = tessera::store::sqlite::SqliteStore::open(&dir.path().join("tessera.db"))
        .await
        .expect("the server's SQLite store");
    let user = store.find_user_by_username("alice").await.unwrap().expect("alice is stored");
    store.close().await;
    assert!(
        user.password_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        user.password_hash
    );
    assert!(!user.password_hash.contains(PASSWORD));
}

#[tokio::test]
async fn secrets_are_stored_only_as_hashes() {
    let app = spawn_app().await;
    app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let rotated = app.refresh_ok(&tokens.refresh).await;
    // Failed logins are audited: neither the wrong password nor a password typed into the
    // username field may end up on disk.
    let wrong = "Wrong-password-123";
    let misplaced = "hunter2 my secret";
    assert_eq!(app.post_session("alice", wrong).await.status(), 401);
    assert_eq!(app.post_token(misplaced, wrong).await.status(), 401);
    let (dir, _) = app.stop().await;

    let mut files = vec![dir.path().to_owned()];
    let mut contents = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            contents.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    assert!(contents.iter().any(|(p, _)| p.ends_with("tessera.db")), "{contents:?}");
    for (what, secret) in [
        ("session id", session.value.as_str()),
        ("refresh token", tokens.refresh.as_str()),
        ("rotated refresh token", rotated.refresh.as_str()),
        ("password", PASSWORD),
        ("wrong password", wrong),
        ("password in the username field", misplaced),
    ] {
        for (path, bytes) in &contents {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "the {what} is stored in clear in {}", path.display());
        }
    }
}

#[tokio::test]
async fn after_an_algorithm_change_the_jwks_keeps_the_old_key_for_live_tokens() {
    let app = spawn_app().await;
    app.user("alice").await;
    let old = app.token_login("alice", PASSWORD).await;
    let old_kid = jwt_header(&old.access)["kid"].as_str().unwrap().to_owned();

    let app = app.restart(|c| c.token.algorithm = Some("ES256".into())).await;

    let new = app.token_login("alice", PASSWORD).await;
    assert_eq!(jwt_header(&new.access)["alg"], "ES256");
    let new_kid = jwt_header(&new.access)["kid"].as_str().unwrap().to_owned();
    let kids = app.jwks_kids().await;
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "{kids:?}");
    assert_eq!(app.me_bearer(&old.access).await.status(), 200, "the live EdDSA token verifies");
    assert_eq!(app.me_bearer(&new.access).await.status(), 200);
}

#[tokio::test]
async fn a_memory_session_store_forgets_sessions_but_not_users() {
    let memory = |c: &mut tessera_server::config::RawConfig| {
        c.store.sessions = Some("memory".into());
        c.store.users = Some("sqlite".into());
    };
    let app = spawn_app_with(memory).await;
    app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 200);

    let app = app.restart(memory).await;

    assert_eq!(app.me_cookie(&session.cookie).await.status(), 401, "sessions lived in memory");
    app.refresh_ok(&tokens.refresh).await;
    app.session_login("alice", PASSWORD).await;
}
