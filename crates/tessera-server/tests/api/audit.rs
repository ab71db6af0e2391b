//! The audit log end to end: requests over HTTP are recorded with who, when, where and the
//! outcome, and `tessera audit` (the real binary, on the live server's data directory) reads
//! them back with filters, as a table or as JSON.

use serde_json::{Value, json};

use crate::cli::tessera;
use crate::helpers::*;

/// `tessera audit ARGS --data-dir DIR`: (exit success, stdout, stderr).
fn audit(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let dir = app.data_dir().to_str().expect("a UTF-8 temp path").to_owned();
    let mut all = vec!["audit", "--data-dir", dir.as_str()];
    all.extend_from_slice(args);
    let output = run_command(tessera(&all, &[]), None, WAIT).expect("tessera audit runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn audit_json(app: &TestApp, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = audit(app, &all);
    assert!(ok, "tessera audit failed: {stderr}");
    serde_json::from_str::<Vec<Value>>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (e["event"].as_str().unwrap().to_owned(), e["outcome"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn http_requests_are_audited_and_tessera_audit_filters_them() {
    let app = spawn_app().await;
    app.user("alice").await;
    assert_eq!(app.post_session("alice", "not-the-password").await.status(), 401);
    let session = app.session_login("alice", PASSWORD).await;
    let logout = app
        .delete("/v1/session")
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let tokens = app.token_login("alice", PASSWORD).await;
    let next = app.refresh_ok(&tokens.refresh).await;
    let change = app
        .put("/v1/me/password")
        .bearer_auth(&next.access)
        .json(&json!({"current_password": "wrong-wrong-wrong", "new_password": OTHER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(change, 401, "invalid_credentials").await;
    app.refresh_ok(&next.refresh).await;
    assert_problem(app.refresh(&tokens.refresh).await, 401, "token_reused").await;

    let events = audit_json(&app, &[]);
    let expected: Vec<(String, String)> = [
        ("register", "success"),
        ("login", "failure"),
        ("login", "success"),
        ("logout", "success"),
        ("login", "success"),
        ("refresh", "success"),
        ("password_change", "failure"),
        ("refresh", "success"),
        ("refresh_reuse", "failure"),
    ]
    .iter()
    .map(|(k, o)| (k.to_string(), o.to_string()))
    .collect();
    assert_eq!(kinds(&events)[..expected.len()], expected[..], "{events:#?}");
    for event in &events {
        assert_eq!(event["ip"], "127.0.0.1", "{event}");
        assert_eq!(event["user_agent"], USER_AGENT, "{event}");
        assert_eq!(event["username"], "alice", "{event}");
        assert!(event["at"].as_str().unwrap().ends_with('Z'), "{event}");
    }
    assert_eq!(events[1]["reason"], "invalid_credentials");
    assert_eq!(events[2]["method"], "session");
    assert_eq!(events[2]["session_id"], session.session_id.as_str());
    assert_eq!(events[3]["session_id"], session.session_id.as_str());
    assert_eq!(events[4]["method"], "token");
    assert_eq!(events[6]["reason"], "invalid_credentials");
    assert_eq!(events[8]["reason"], "token_reused");
    assert_eq!(events[8]["session_id"], events[4]["session_id"], "the family that was revoked");

    // Filters.
    let failures = audit_json(&app, &["--user", "ALICE", "--outcome", "failure"]);
    assert!(failures.iter().all(|e| e["outcome"] == "failure"));
    assert!(failures.len() >= 2, "{failures:#?}");
    assert_eq!(kinds(&audit_json(&app, &["--event", "refresh_reuse"])).len(), 1);
    assert!(audit_json(&app, &["--ip", "10.9.9.9"]).is_empty());
    assert!(audit_json(&app, &["--user", "bob"]).is_empty());
    assert_eq!(audit_json(&app, &["--since", "1h"]).len(), events.len());
    assert!(audit_json(&app, &["--until", "1h"]).is_empty());
    assert!(audit_json(&app, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let newest = audit_json(&app, &["--limit", "2"]);
    assert_eq!(newest[..], events[events.len() - 2..], "the newest two, oldest first");

    // The table for people.
    let (ok, table, _) = audit(&app, &["--event", "login"]);
    assert!(ok);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in ["TIME", "EVENT", "OUTCOME", "USER", "METHOD", "SESSION", "IP", "USER AGENT"] {
        assert!(header.contains(column), "{header}");
    }
    assert!(table.contains("failure (invalid_credentials)"), "{table}");
    assert_eq!(lines.count(), 3, "{table}");
    let (ok, none, _) = audit(&app, &["--user", "nobody"]);
    assert!(ok);
    assert_eq!(none.trim(), "no audit events match");
}

#[tokio::test]
async fn tessera_audit_rejects_bad_filters_with_a_clear_error() {
    let app = spawn_app().await;
    for (args, message) in [
        (&["--event", "nope"][..], "unknown event"),
        (&["--outcome", "maybe"][..], "unknown outcome"),
        (&["--since", "yesterday"][..], "neither an RFC 3339 time"),
        (&["--limit", "0"][..], "--limit"),
    ] {
        let (ok, _, stderr) = audit(&app, args);
        assert!(!ok, "{args:?} was accepted");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_forged_user_agent_cannot_break_the_audit_table() {
    let app = spawn_app().await;
    // HTTP allows a tab in a header value; it must not reach a terminal raw.
    let raw = "evil\tagent";
    let response = app
        .post("/v1/session")
        .header("user-agent", raw)
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (ok, table, _) = audit(&app, &[]);
    assert!(ok);
    assert!(table.contains("evil\\tagent"), "control characters are escaped: {table}");
    assert!(!table.contains("evil\tagent"));
}
