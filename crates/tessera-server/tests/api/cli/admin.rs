//! The admin commands with the real binary: `tessera user list|disable|enable|delete|
//! set-password` and `tessera sessions list|revoke`, their help, JSON and table output and
//! errors, and their effect on a server running at the same time (on SQLite, where sessions
//! are cached in the server process, and on PostgreSQL with Redis).

use std::process::Output;

use serde_json::{Value, json};

use super::{run, temp_dir, tessera};
use crate::cluster::{scale_env, shared_postgres_database, shared_redis};
use crate::helpers::*;

/// `tessera ARGS --data-dir DIR` (plus `env`), with `stdin`.
fn admin(dir: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir]);
    run(tessera(&all, env), stdin)
}

/// Asserts success and an empty stderr-free JSON stdout; returns it.
fn ok_json(output: Output) -> Value {
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {output:?}"))
}

/// Asserts failure, nothing on stdout, and `needle` in the message on stderr.
fn fails(output: Output, needle: &str) {
    assert!(!output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "errors go to stderr: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_admin_command_has_help_with_an_example_and_json() {
    for args in [
        ["user", "add"],
        ["user", "list"],
        ["user", "disable"],
        ["user", "enable"],
        ["user", "delete"],
        ["user", "set-password"],
        ["sessions", "list"],
        ["sessions", "revoke"],
    ] {
        let output = run(tessera(&[args[0], args[1], "--help"], &[]), None);
        let help = stdout(&output);
        for needle in ["Example: ", "--json", "--data-dir", "--config"] {
            assert!(help.contains(needle), "`tessera {args:?} --help` lacks {needle}:\n{help}");
        }
    }
    let help = stdout(&run(tessera(&["--help"], &[]), None));
    assert!(help.contains("sessions"), "{help}");
    let help = stdout(&run(tessera(&["user", "set-password", "--help"], &[]), None));
    assert!(help.contains("--keep-sessions") && help.contains("standard input"), "{help}");
    let help = stdout(&run(tessera(&["user", "delete", "--help"], &[]), None));
    assert!(help.contains("--yes"), "{help}");
}

#[test]
fn user_commands_manage_the_users_of_a_data_dir() {
    let dir = temp_dir();
    let dir = dir.path().to_str().unwrap();
    let pw = format!("{PASSWORD}\n");
    fails(admin(dir, &["user", "list"], &[], None), "no database at");
    let pw_bob = format!("{PASSWORD}\n");
    let bob = ok_json(admin(dir, &["user", "add", "bob", "--json"], &[], Some(&pw_bob)));
    assert_eq!(bob["username"], "bob");
    assert_eq!(bob["disabled"], false);
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let deleted = ok_json(admin(dir, &["user", "delete", &bob_id, "--yes", "--json"], &[], None));
    assert_eq!(deleted["deleted"], true);
    let empty = admin(dir, &["user", "list"], &[], None);
    assert_eq!(stdout(&empty), "no users\n");
    assert_eq!(ok_json(admin(dir, &["user", "list", "--json"], &[], None)), json!([]));

    let bob = ok_json(admin(dir, &["user", "add", "bob", "--json"], &[], Some(&pw)));
    assert_eq!(bob["username"], "bob");
    assert_eq!(bob["disabled"], false);
    admin(dir, &["user", "add", "alice"], &[], Some(&pw));
    let list = ok_json(admin(dir, &["user", "list", "--json"], &[], None));
    let list = list.as_array().expect("a JSON array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["username"], "alice", "username order");
    assert_eq!(list[1], bob, "the same fields as `user add --json`");
    let alice_id = list[0]["id"].as_str().unwrap().to_owned();
    for field in ["id", "username", "created_at", "disabled", "disabled_at"] {
        assert!(list[0].get(field).is_some(), "no {field} in {}", list[0]);
    }
    assert_eq!(list[0]["disabled_at"], Value::Null);
    assert!(list[0]["created_at"].as_str().unwrap().ends_with('Z'), "RFC 3339 UTC");

    // Disable (by id), shown in both outputs; enable (by username, any case).
    let disabled = ok_json(admin(dir, &["user", "disable", &alice_id, "--json"], &[], None));
    assert_eq!(disabled["username"], "alice");
    assert_eq!(disabled["disabled"], true);
    assert_eq!(disabled["sessions_ended"], 0);
    assert_eq!(disabled["tokens_ended"], 0);
    let table = stdout(&admin(dir, &["user", "list"], &[], None));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("USERNAME  ID") && lines[0].contains("DISABLED"), "{table}");
    assert!(lines[1].starts_with("alice     ") && lines[1].contains("since "), "{table}");
    assert!(lines[2].starts_with("bob       ") && lines[2].ends_with('-'), "{table}");
    let column = lines[0].find("CREATED").unwrap();
    assert!(lines.iter().all(|l| l[column..].starts_with(['C', '2'])), "aligned:\n{table}");
    let text = stdout(&admin(dir, &["user", "enable", "ALICE"], &[], None));
    assert_eq!(text, format!("enabled user alice ({alice_id})\n"));
    let list = ok_json(admin(dir, &["user", "list", "--json"], &[], None));
    assert_eq!(list[0]["disabled"], false);

    // Set the password: the policy holds; the new one is what counts.
    fails(admin(dir, &["user", "set-password", "alice"], &[], Some("short\n")), "password");
    fails(admin(dir, &["user", "set-password", "alice"], &[], Some("")), "no password");
    let set = ok_json(admin(
        dir,
        &["user", "set-password", "alice", "--json"],
        &[],
        Some(&format!("{OTHER_PASSWORD}\n")),
    ));
    assert_eq!(set["username"], "alice");
    assert_eq!(set["sessions_ended"], 0);

    // Errors: unknown users, no --yes, a memory store, bad arguments.
    fails(admin(dir, &["user", "disable", "nobody"], &[], None), "\"nobody\"");
    fails(admin(dir, &["sessions", "list", "--user", "nobody"], &[], None), "\"nobody\"");
    fails(admin(dir, &["user", "delete", "alice"], &[], None), "--yes");
    assert_eq!(
        ok_json(admin(dir, &["user", "list", "--json"], &[], None)).as_array().unwrap().len(),
        2
    );
    let memory = [("TESSERA_STORE__USERS", "memory")];
    fails(admin(dir, &["user", "list"], &memory, None), "store.users = \"memory\"");
    let memory = [("TESSERA_STORE__SESSIONS", "memory")];
    fails(admin(dir, &["sessions", "list", "--user", "bob"], &memory, None), "store.sessions");
    let output = admin(dir, &["sessions", "revoke"], &[], None);
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("--user"));
    fails(
        admin(dir, &["sessions", "revoke", "--user", "bob", "--session", "nope"], &[], None),
        "no session or token login with id \"nope\"",
    );

    // Delete.
    let deleted = ok_json(admin(dir, &["user", "delete", "alice", "--yes", "--json"], &[], None));
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["id"], alice_id.as_str());
    let list = ok_json(admin(dir, &["user", "list", "--json"], &[], None));
    assert_eq!(list, json!([bob]));
    fails(admin(dir, &["user", "delete", "alice", "--yes"], &[], None), "\"alice\"");
    // The audit log has every change, under the names `tessera audit --event` takes.
    for event in ["user_create", "user_disable", "user_enable", "password_reset", "user_delete"] {
        let events = ok_json(admin(dir, &["audit", "--event", event, "--json"], &[], None));
        let events = events.as_array().unwrap();
        assert!(!events.is_empty(), "no {event} event");
        assert!(
            events
                .iter()
                .any(|e| e["user_agent"].as_str().is_some_and(|a| a.starts_with("tessera "))),
            "{events:?}"
        );
    }
}

/// Polls `check` until it holds, for at most [`WAIT`].
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    crate::cluster::eventually(what, WAIT, async || check().await).await;
}

#[tokio::test]
async fn admin_commands_take_effect_on_a_server_running_on_the_same_data_dir() {
    // The server caches sessions in its process: what the commands end in the SQLite file
    // reaches it through the file's revocation feed.
    let app = spawn_app().await;
    let dir = app.data_dir().to_str().unwrap().to_owned();
    let dir = dir.as_str();
    app.user("alice").await;
    app.user("bob").await;
    let one = app.session_login("alice", PASSWORD).await;
    let two = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let bobs = app.session_login("bob", PASSWORD).await;
    assert_eq!(app.me_cookie(&one.cookie).await.status(), 200, "and cached");

    let list = ok_json(admin(dir, &["sessions", "list", "--user", "alice", "--json"], &[], None));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    let kinds: Vec<&str> = list.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "session").count(), 2, "{list:?}");
    assert!(list.iter().any(|l| l["kind"] == "token" && l["id"] == tokens.sid.as_str()));
    assert!(list.iter().all(|l| l["user_agent"] == USER_AGENT), "{list:?}");
    for field in ["id", "kind", "created_at", "last_seen_at", "expires_at", "ip", "user_agent"] {
        assert!(list[0].get(field).is_some(), "no {field} in {}", list[0]);
    }
    let table = stdout(&admin(dir, &["sessions", "list", "--user", "alice"], &[], None));
    assert!(table.starts_with("ID") && table.contains(&one.session_id), "{table}");

    // One session.
    let ended = ok_json(admin(
        dir,
        &["sessions", "revoke", "--user", "alice", "--session", &one.session_id, "--json"],
        &[],
        None,
    ));
    assert_eq!(ended["sessions_ended"], 1);
    eventually("the revoked session is refused", async || {
        app.me_cookie(&one.cookie).await.status() == 401
    })
    .await;
    assert_eq!(app.me_cookie(&two.cookie).await.status(), 200, "the other one stays");
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 200);

    // Disable: the other session and the access token stop working, refresh and login fail.
    let text = stdout(&admin(dir, &["user", "disable", "alice"], &[], None));
    assert!(text.contains("ended 1 session and 1 token login"), "{text}");
    eventually("the session of a disabled user is refused", async || {
        app.me_cookie(&two.cookie).await.status() == 401
    })
    .await;
    eventually("the access token of a disabled user is refused", async || {
        app.me_bearer(&tokens.access).await.status() == 401
    })
    .await;
    assert_eq!(app.refresh(&tokens.refresh).await.status(), 401);
    assert_problem(app.post_session("alice", PASSWORD).await, 403, "forbidden").await;
    assert_problem(app.post_token("alice", PASSWORD).await, 403, "forbidden").await;
    assert_problem(app.post_session("alice", OTHER_PASSWORD).await, 401, "invalid_credentials")
        .await;
    assert_eq!(app.me_cookie(&bobs.cookie).await.status(), 200, "bob is untouched");

    // Enable, then a new password ends the logins made with the old one.
    stdout(&admin(dir, &["user", "enable", "alice"], &[], None));
    let three = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let pw = format!("{OTHER_PASSWORD}\n");
    stdout(&admin(dir, &["user", "set-password", "alice"], &[], Some(&pw)));
    eventually("sessions end with a password set by the admin", async || {
        app.me_cookie(&three.cookie).await.status() == 401
    })
    .await;
    eventually("so do access tokens", async || app.me_bearer(&tokens.access).await.status() == 401)
        .await;
    assert_problem(app.post_session("alice", PASSWORD).await, 401, "invalid_credentials").await;

    // Revoke everything, then delete.
    let four = app.session_login("alice", OTHER_PASSWORD).await;
    stdout(&admin(dir, &["sessions", "revoke", "--user", "alice"], &[], None));
    eventually("every session ends", async || app.me_cookie(&four.cookie).await.status() == 401)
        .await;
    let five = app.session_login("alice", OTHER_PASSWORD).await;
    let tokens = app.token_login("alice", OTHER_PASSWORD).await;
    stdout(&admin(dir, &["user", "delete", "alice", "--yes"], &[], None));
    eventually("a deleted user's session ends", async || {
        app.me_cookie(&five.cookie).await.status() == 401
    })
    .await;
    eventually("and their access token", async || {
        app.me_bearer(&tokens.access).await.status() == 401
    })
    .await;
    assert_problem(app.post_session("alice", OTHER_PASSWORD).await, 401, "invalid_credentials")
        .await;
    assert_eq!(app.me_cookie(&bobs.cookie).await.status(), 200, "bob is untouched");
}

#[tokio::test]
async fn admin_commands_take_effect_on_a_server_on_postgres_and_redis() {
    let postgres = shared_postgres_database();
    let (redis, prefix) = shared_redis();
    let env = scale_env(&postgres, &redis, &prefix);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let data = temp_dir();
    let dir = data.path().to_str().unwrap();
    let mut server_env = env.clone();
    server_env.push(("TESSERA_COOKIE__SECURE", "false"));
    let serve = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dir];
    let server = TesseraProcess::start(tessera(&serve, &server_env));
    let app = TestApp::remote(&server.base);
    app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;

    // Another data directory: everything the commands need is in PostgreSQL and Redis.
    let other = temp_dir();
    let other = other.path().to_str().unwrap();
    let list =
        ok_json(admin(other, &["sessions", "list", "--user", "alice", "--json"], &env, None));
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    stdout(&admin(other, &["user", "disable", "alice"], &env, None));
    eventually("the session ends", async || app.me_cookie(&session.cookie).await.status() == 401)
        .await;
    eventually("the access token is refused", async || {
        app.me_bearer(&tokens.access).await.status() == 401
    })
    .await;
    assert_problem(app.post_session("alice", PASSWORD).await, 403, "forbidden").await;
    let users = ok_json(admin(other, &["user", "list", "--json"], &env, None));
    assert_eq!(users[0]["disabled"], true);
    stdout(&admin(other, &["user", "delete", "alice", "--yes"], &env, None));
    assert_problem(app.post_session("alice", PASSWORD).await, 401, "invalid_credentials").await;
}
