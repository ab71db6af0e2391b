//! Session authentication: `POST/GET/DELETE /v1/session`, `GET/DELETE /v1/sessions`,
//! `DELETE /v1/sessions/{id}`, cookies, lifetimes.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::helpers::*;

#[tokio::test]
async fn session_login_returns_the_documented_body() {
    let app = spawn_app().await;
    let user = app.user("alice").await;
    let login = app.session_login("Alice", PASSWORD).await;
    let body = &login.body;
    assert_eq!(body["user"]["id"], user.id.as_str());
    assert_eq!(body["user"]["username"], "alice");
    assert!(body["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(body["csrf_token"].as_str().is_some_and(|s| !s.is_empty()));
    let now = unix_now();
    assert_near(rfc3339_seconds(&body["expires_at"]), now + 12 * 3600, 120, "expires_at");
    assert_near(rfc3339_seconds(&body["idle_expires_at"]), now + 30 * 60, 120, "idle_expires_at");
}

#[tokio::test]
async fn secure_session_cookie_has_exactly_the_documented_attributes() {
    let app = spawn_app_with(|c| c.cookie.secure = Some(true)).await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let cookie = SetCookie::parse(&login.set_cookie);
    assert_eq!(cookie.name, "__Host-tessera_session");
    assert_eq!(
        cookie.attributes,
        attrs(&[
            ("Path", "/"),
            ("HttpOnly", ""),
            ("Secure", ""),
            ("SameSite", "Lax"),
            ("Max-Age", "43200")
        ]),
        "{}",
        login.set_cookie
    );
    // The cookie authenticates when sent back under its name.
    let me = app.me_cookie(&format!("__Host-tessera_session={}", cookie.value)).await;
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn insecure_session_cookie_is_tessera_session_without_secure() {
    let app = spawn_app_with(|c| c.cookie.secure = Some(false)).await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let cookie = SetCookie::parse(&login.set_cookie);
    assert_eq!(cookie.name, "tessera_session");
    assert_eq!(
        cookie.attributes,
        attrs(&[("Path", "/"), ("HttpOnly", ""), ("SameSite", "Lax"), ("Max-Age", "43200")]),
        "{}",
        login.set_cookie
    );
}

#[tokio::test]
async fn the_cookie_carries_a_256_bit_base64url_secret_that_is_not_the_session_id() {
    let app = spawn_app().await;
    app.user("alice").await;
    let response = app.post_session("alice", PASSWORD).await;
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let cookie = find_set_cookie(&headers, "tessera_session");
    let bytes = URL_SAFE_NO_PAD.decode(&cookie.value).expect("the session id is base64url");
    assert!(bytes.len() >= 32, "at least 256 bits: {} bytes", bytes.len());
    assert!(cookie.value.len() >= 43);
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let session_id = body["session_id"].as_str().unwrap();
    assert_ne!(session_id, cookie.value);
    assert!(!text.contains(&cookie.value), "the secret appears only in Set-Cookie");
    assert!(!cookie.value.contains(session_id));
}

#[tokio::test]
async fn every_login_issues_a_new_session() {
    let app = spawn_app().await;
    app.user("alice").await;
    let first = app.session_login("alice", PASSWORD).await;
    let second = app.session_login("alice", PASSWORD).await;
    assert_ne!(first.value, second.value);
    assert_ne!(first.session_id, second.session_id);
    assert_ne!(first.csrf, second.csrf);
    assert_eq!(app.me_cookie(&first.cookie).await.status(), 200);
    assert_eq!(app.me_cookie(&second.cookie).await.status(), 200);
}

#[tokio::test]
async fn logging_in_with_an_old_cookie_present_ends_the_old_session() {
    let app = spawn_app().await;
    app.user("alice").await;
    let old = app.session_login("alice", PASSWORD).await;
    let response = app
        .post("/v1/session")
        .header("cookie", &old.cookie)
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let new = app.session_login_from(response).await;
    assert_ne!(new.value, old.value, "no session fixation: a new id");
    assert_eq!(app.me_cookie(&old.cookie).await.status(), 401, "the old session is gone");
    assert_eq!(app.me_cookie(&new.cookie).await.status(), 200);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_get_the_identical_401() {
    let app = spawn_app().await;
    app.user("alice").await;
    let wrong_password = app.post_session("alice", "not-the-password").await;
    assert!(wrong_password.headers().get("set-cookie").is_none());
    let wrong_password = assert_problem(wrong_password, 401, "invalid_credentials").await;
    let unknown_user = assert_problem(
        app.post_session("nobody-here", "not-the-password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong_password, unknown_user, "one message for both");
    let token_attempt = assert_problem(
        app.post_token("nobody-here", "not-the-password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(token_attempt, unknown_user);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_cost_the_same_argon2_work() {
    let app = spawn_app().await;
    app.user("alice").await;
    let work = |metrics: &str| {
        let read = |name| metric_sample(metrics, name).unwrap_or_else(|| panic!("no {name}"));
        (read("tessera_argon2_computations_total"), read("tessera_argon2_kib_passes_total"))
    };
    let mut deltas = Vec::new();
    for (username, password) in
        [("alice", "not-the-password"), ("nobody-here", "not-the-password"), ("NOBODY", PASSWORD)]
    {
        let before = work(&app.metrics().await);
        assert_eq!(app.post_session(username, password).await.status(), 401);
        let after = work(&app.metrics().await);
        deltas.push((after.0 - before.0, after.1 - before.1));
    }
    // Exactly one verification each, of the configured cost (the test servers' cheap argon2).
    assert_eq!(deltas[0].0, 1.0, "{deltas:?}");
    assert!(deltas[0].1 > 0.0, "{deltas:?}");
    assert!(deltas.iter().all(|d| *d == deltas[0]), "the same work for every failure: {deltas:?}");
}

#[tokio::test]
async fn get_session_returns_the_login_body_without_a_new_cookie() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let response = app.get("/v1/session").header("cookie", &login.cookie).send().await.unwrap();
    assert!(response.headers().get("set-cookie").is_none(), "no new cookie");
    let body = json_body(response, 200).await;
    for field in ["user", "session_id", "csrf_token", "expires_at"] {
        assert_eq!(body[field], login.body[field], "{field}");
    }
    assert!(body["idle_expires_at"].is_string());

    let anonymous = app.get("/v1/session").send().await.unwrap();
    assert_problem(anonymous, 401, "unauthorized").await;
}

#[tokio::test]
async fn logout_deletes_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let response = app
        .delete("/v1/session")
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cleared = find_set_cookie(response.headers(), "tessera_session");
    assert_eq!(cleared.attr("max-age"), Some("0"), "{cleared:?}");
    assert_eq!(cleared.attr("path"), Some("/"));
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 401, "deleted server-side");
    let again = app
        .delete("/v1/session")
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401);
}

#[tokio::test]
async fn logout_clears_a_secure_cookie_under_the_host_prefix_rules() {
    // Browsers ignore a `__Host-` Set-Cookie without `Secure` and `Path=/`, even a clearing one.
    let app = spawn_app_with(|c| c.cookie.secure = Some(true)).await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let response = app
        .delete("/v1/session")
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cleared = find_set_cookie(response.headers(), "__Host-tessera_session");
    assert_eq!(cleared.attr("max-age"), Some("0"));
    assert_eq!(cleared.attr("path"), Some("/"));
    assert!(cleared.attr("secure").is_some() && cleared.attr("domain").is_none(), "{cleared:?}");
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 401);
}

#[tokio::test]
async fn logout_needs_the_sessions_own_csrf_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let other = app.session_login("alice", PASSWORD).await;
    for csrf in [None, Some("wrong"), Some(""), Some(other.csrf.as_str())] {
        let mut request = app.delete("/v1/session").header("cookie", &login.cookie);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        assert_problem(request.send().await.unwrap(), 403, "csrf_failed").await;
    }
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 200, "still logged in");
    let anonymous = app.delete("/v1/session").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn the_session_list_shows_sessions_and_token_families_with_one_current() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let first = app.session_login("alice", PASSWORD).await;
    let second = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let bobs = app.session_login("bob", PASSWORD).await;

    let response = app.get("/v1/sessions").header("cookie", &first.cookie).send().await.unwrap();
    let list = json_body(response, 200).await;
    let sessions = list["sessions"].as_array().expect("a sessions array");
    let mut ids: Vec<&str> = sessions.iter().map(|s| s["id"].as_str().expect("id")).collect();
    ids.sort_unstable();
    let mut expected =
        vec![first.session_id.as_str(), second.session_id.as_str(), tokens.sid.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "all of alice's logins and nothing else: {list}");
    for entry in sessions {
        for field in ["created_at", "last_seen_at", "expires_at"] {
            rfc3339_seconds(&entry[field]);
        }
        assert_eq!(entry["ip"], "127.0.0.1", "{entry}");
        assert_eq!(entry["user_agent"], USER_AGENT, "{entry}");
        assert!(entry["current"].is_boolean(), "{entry}");
        let id = entry["id"].as_str().unwrap();
        assert!(id != first.value && id != second.value && id != bobs.session_id);
    }
    let current: Vec<&str> = sessions
        .iter()
        .filter(|s| s["current"] == true)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(current, vec![first.session_id.as_str()]);

    // With the bearer token, the token family is the current one.
    let response = app.get("/v1/sessions").bearer_auth(&tokens.access).send().await.unwrap();
    let list = json_body(response, 200).await;
    let current: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == true)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(current, vec![tokens.sid.as_str()]);

    assert_problem(app.get("/v1/sessions").send().await.unwrap(), 401, "unauthorized").await;
}

#[tokio::test]
async fn ending_a_session_by_id_works_for_own_ids_only() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let mine = app.session_login("alice", PASSWORD).await;
    let my_other = app.session_login("alice", PASSWORD).await;
    let my_tokens = app.token_login("alice", PASSWORD).await;
    let bobs = app.session_login("bob", PASSWORD).await;
    let bobs_tokens = app.token_login("bob", PASSWORD).await;

    let end = |id: &str| {
        app.delete(&format!("/v1/sessions/{id}"))
            .header("cookie", &mine.cookie)
            .header("x-csrf-token", &mine.csrf)
            .send()
    };
    assert_eq!(end(&my_other.session_id).await.unwrap().status(), 204);
    assert_eq!(app.me_cookie(&my_other.cookie).await.status(), 401);

    assert_eq!(end(&my_tokens.sid).await.unwrap().status(), 204);
    assert_eq!(app.me_bearer(&my_tokens.access).await.status(), 401, "its access token at once");
    assert_eq!(app.refresh(&my_tokens.refresh).await.status(), 401);

    for id in [bobs.session_id.as_str(), bobs_tokens.sid.as_str()] {
        assert_problem(end(id).await.unwrap(), 404, "not_found").await;
    }
    assert_eq!(app.me_cookie(&bobs.cookie).await.status(), 200, "bob's session survives");
    assert_eq!(app.me_bearer(&bobs_tokens.access).await.status(), 200);
    for id in ["0190a5b2-0000-7000-8000-000000000000", "nope", &my_other.session_id] {
        assert_problem(end(id).await.unwrap(), 404, "not_found").await;
    }
    // The secret cookie value is not a handle either.
    assert_problem(end(&bobs.value).await.unwrap(), 404, "not_found").await;
    assert_eq!(app.me_cookie(&bobs.cookie).await.status(), 200);
    assert_eq!(app.me_cookie(&mine.cookie).await.status(), 200);

    let response = app.get("/v1/sessions").header("cookie", &mine.cookie).send().await.unwrap();
    let list = json_body(response, 200).await;
    let ids: Vec<&str> =
        list["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![mine.session_id.as_str()], "ended logins are not listed");
    // The caller's own current session can be ended by its id too.
    assert_eq!(end(&mine.session_id).await.unwrap().status(), 204);
    assert_eq!(app.me_cookie(&mine.cookie).await.status(), 401);

    let anonymous = app.delete(&format!("/v1/sessions/{}", mine.session_id)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn logout_everywhere_ends_every_session_family_and_access_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("bob").await;
    let mine = app.session_login("alice", PASSWORD).await;
    let other = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let bobs = app.session_login("bob", PASSWORD).await;
    let bobs_tokens = app.token_login("bob", PASSWORD).await;

    let response = app
        .delete("/v1/sessions")
        .header("cookie", &mine.cookie)
        .header("x-csrf-token", &mine.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(app.me_cookie(&mine.cookie).await.status(), 401, "the caller's too");
    assert_eq!(app.me_cookie(&other.cookie).await.status(), 401);
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 401);
    assert_eq!(app.refresh(&tokens.refresh).await.status(), 401);
    assert_eq!(app.me_cookie(&bobs.cookie).await.status(), 200, "other users are untouched");
    assert_eq!(app.me_bearer(&bobs_tokens.access).await.status(), 200);
    app.refresh_ok(&bobs_tokens.refresh).await;
}

#[tokio::test]
async fn logout_everywhere_works_with_a_bearer_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    let session = app.session_login("alice", PASSWORD).await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let response = app.delete("/v1/sessions").bearer_auth(&tokens.access).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(app.me_cookie(&session.cookie).await.status(), 401);
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 401);
    assert_eq!(app.refresh(&tokens.refresh).await.status(), 401);
}

#[tokio::test]
async fn an_idle_session_expires_and_use_renews_it() {
    // Checks that must find the session alive leave a wide margin before the deadline.
    let app = spawn_app_with(|c| c.session.idle_timeout = secs(3)).await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    let idle = rfc3339_seconds(&login.body["idle_expires_at"]);
    assert_near(idle, unix_now() + 3, 2, "idle_expires_at");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    // 3.4 s after login but 1.7 s after the last use: renewed.
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 200, "use renews the idle deadline");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_problem(app.me_cookie(&login.cookie).await, 401, "session_expired").await;
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 401, "and it stays ended");
}

#[tokio::test]
async fn the_absolute_lifetime_ends_a_session_in_use() {
    let app = spawn_app_with(|c| {
        c.session.absolute_lifetime = secs(2);
        c.session.idle_timeout = secs(3600);
    })
    .await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    assert_eq!(SetCookie::parse(&login.set_cookie).attr("max-age"), Some("2"));
    assert_near(rfc3339_seconds(&login.body["expires_at"]), unix_now() + 2, 2, "expires_at");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(app.me_cookie(&login.cookie).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_problem(app.me_cookie(&login.cookie).await, 401, "session_expired").await;
}
