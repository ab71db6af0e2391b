//! Users: `POST /v1/users`, `GET /v1/me`, `PUT /v1/me/password`.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn register_returns_201_with_id_lowercased_username_and_rfc3339_created_at() {
    let app = spawn_app().await;
    let body = json_body(app.try_register("Alice.Smith_1", PASSWORD).await, 201).await;
    assert_eq!(body["username"], "alice.smith_1", "usernames are stored lower-cased");
    let id = body["id"].as_str().expect("id is a string");
    assert!(!id.is_empty());
    assert_near(rfc3339_seconds(&body["created_at"]), unix_now(), 120, "created_at");

    let other = app.user("bob").await;
    assert_ne!(other.id, id, "every user has their own id");
}

#[tokio::test]
async fn login_finds_the_user_whatever_the_case_of_the_username() {
    let app = spawn_app().await;
    app.register("Carol", PASSWORD).await;
    app.session_login("CAROL", PASSWORD).await;
    app.token_login("carol", PASSWORD).await;
}

#[tokio::test]
async fn a_taken_username_is_409_username_taken_case_insensitively() {
    let app = spawn_app().await;
    app.register("Alice", PASSWORD).await;
    assert_problem(app.try_register("alice", OTHER_PASSWORD).await, 409, "username_taken").await;
    assert_problem(app.try_register("ALICE", OTHER_PASSWORD).await, 409, "username_taken").await;
}

#[tokio::test]
async fn invalid_usernames_are_422_naming_the_username() {
    let app = spawn_app().await;
    let too_long = "a".repeat(65);
    for username in ["ab", "", too_long.as_str(), "bad name", "bad/name", "émile", "a@b.c"] {
        let problem =
            assert_problem(app.try_register(username, PASSWORD).await, 422, "validation_failed")
                .await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("username"), "{username:?}: detail must name the field: {detail}");
    }
}

#[tokio::test]
async fn invalid_passwords_are_422_naming_the_password() {
    let app = spawn_app().await;
    let too_long = "x1-".repeat(43); // 129 characters
    for (username, password) in [
        ("dave", "seven77"),
        ("dave", too_long.as_str()),
        ("longusername", "longusername"),
        ("dave", "password1"),
        ("dave", "baseball"),
    ] {
        let problem =
            assert_problem(app.try_register(username, password).await, 422, "validation_failed")
                .await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("password"), "{password:?}: detail must name the field: {detail}");
    }
    // None of the refused attempts created the user.
    app.user("dave").await;
}

#[tokio::test]
async fn lengths_at_the_limits_are_accepted() {
    let app = spawn_app().await;
    app.register("abc", "eight-ch").await;
    let longest_name = "n".repeat(64);
    let longest_password = "p4-".repeat(42) + "xy"; // 128 characters
    app.register(&longest_name, &longest_password).await;
    app.session_login(&longest_name, &longest_password).await;
    app.register("A-Z_a.z-09", "Tr0ub4dor&3xyz").await;
}

#[tokio::test]
async fn password_lengths_count_characters_not_bytes() {
    let app = spawn_app().await;
    let problem =
        assert_problem(app.try_register("zoe", &"é".repeat(7)).await, 422, "validation_failed")
            .await;
    assert!(problem["detail"].as_str().unwrap_or_default().contains("password"));
    let eight = "ü".repeat(8);
    app.register("zoe", &eight).await;
    app.session_login("zoe", &eight).await;
    let long = "ж".repeat(128); // 256 bytes
    app.register("yann", &long).await;
    assert_problem(app.try_register("xena", &"ж".repeat(129)).await, 422, "validation_failed")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_registrations_of_one_name_create_one_user() {
    let app = spawn_app().await;
    let responses = tokio::join!(
        app.try_register("Race", PASSWORD),
        app.try_register("race", PASSWORD),
        app.try_register("RACE", PASSWORD),
        app.try_register("rAcE", PASSWORD),
        app.try_register("race", PASSWORD),
    );
    let statuses = [
        responses.0.status().as_u16(),
        responses.1.status().as_u16(),
        responses.2.status().as_u16(),
        responses.3.status().as_u16(),
        responses.4.status().as_u16(),
    ];
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 4, "{statuses:?}");
}

#[tokio::test]
async fn registration_closed_is_403_registration_closed() {
    let app = spawn_app_with(|c| c.registration.open = Some(false)).await;
    assert_problem(app.try_register("alice", PASSWORD).await, 403, "registration_closed").await;
}

#[tokio::test]
async fn me_with_a_session_cookie_returns_the_user_and_the_public_session_handle() {
    let app = spawn_app().await;
    let user = app.register("Erin", PASSWORD).await;
    let login = app.session_login("erin", PASSWORD).await;
    let me = json_body(app.me_cookie(&login.cookie).await, 200).await;
    assert_eq!(me["id"], user.id.as_str());
    assert_eq!(me["username"], "erin");
    assert_eq!(me["auth_method"], "session");
    assert_eq!(me["session_id"], login.session_id.as_str());
    assert_ne!(me["session_id"], login.value.as_str(), "session_id is not the cookie secret");
}

#[tokio::test]
async fn me_with_a_bearer_token_returns_the_user_and_the_token_sid() {
    let app = spawn_app().await;
    let user = app.user("frank").await;
    let tokens = app.token_login("frank", PASSWORD).await;
    let me = json_body(app.me_bearer(&tokens.access).await, 200).await;
    assert_eq!(me["id"], user.id.as_str());
    assert_eq!(me["username"], "frank");
    assert_eq!(me["auth_method"], "token");
    assert_eq!(me["session_id"], tokens.sid.as_str());
}

#[tokio::test]
async fn me_without_credentials_is_401_unauthorized_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let response = app.get("/v1/me").send().await.unwrap();
    let challenge = header_str(response.headers(), "www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "WWW-Authenticate: {challenge:?}");
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn me_with_unusable_credentials_is_401() {
    let app = spawn_app().await;
    app.user("gina").await;
    let login = app.session_login("gina", PASSWORD).await;
    // A cookie that is not a session id, a well-formed id that is not a session.
    for value in ["garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let response = app.me_cookie(&app.session_cookie(value)).await;
        assert_eq!(response.status(), 401, "cookie {value}");
        assert_problem(response, 401, "unauthorized").await;
    }
    // The session id handle is not a credential.
    let response = app.me_cookie(&app.session_cookie(&login.session_id)).await;
    assert_eq!(response.status(), 401, "the public session_id must not authenticate");
    for token in ["garbage", "a.b.c", login.value.as_str()] {
        assert_problem(app.me_bearer(token).await, 401, "token_invalid").await;
    }
}

async fn change_password(
    app: &TestApp,
    login: &SessionLogin,
    current: &str,
    new: &str,
) -> reqwest::Response {
    app.put("/v1/me/password")
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn password_change_revokes_every_other_login_and_keeps_the_requesting_session() {
    let app = spawn_app().await;
    app.user("hank").await;
    let stranger = app.user("ivy").await;
    let mine = app.session_login("hank", PASSWORD).await;
    let other = app.session_login("hank", PASSWORD).await;
    let tokens = app.token_login("hank", PASSWORD).await;
    let strangers_session = app.session_login(&stranger.username, PASSWORD).await;

    let response = change_password(&app, &mine, PASSWORD, OTHER_PASSWORD).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());

    assert_eq!(app.me_cookie(&mine.cookie).await.status(), 200, "the requesting session stays");
    assert_eq!(app.me_cookie(&other.cookie).await.status(), 401, "other sessions end");
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 401, "access tokens fail at once");
    assert_eq!(app.refresh(&tokens.refresh).await.status(), 401, "refresh families end");
    assert_eq!(app.me_cookie(&strangers_session.cookie).await.status(), 200, "others' stay");

    assert_problem(app.post_session("hank", PASSWORD).await, 401, "invalid_credentials").await;
    app.session_login("hank", OTHER_PASSWORD).await;
}

#[tokio::test]
async fn password_change_by_bearer_token_keeps_that_token_family_only() {
    let app = spawn_app().await;
    app.user("jack").await;
    let mine = app.token_login("jack", PASSWORD).await;
    let other = app.token_login("jack", PASSWORD).await;
    let session = app.session_login("jack", PASSWORD).await;

    let response = app
        .put("/v1/me/password")
        .bearer_auth(&mine.access)
        .json(&json!({"current_password": PASSWORD, "new_password": OTHER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());

    assert_eq!(app.me_bearer(&mine.access).await.status(), 200);
    app.refresh_ok(&mine.refresh).await;
    assert_eq!(app.me_bearer(&other.access).await.status(), 401);
    assert_eq!(app.refresh(&other.refresh).await.status(), 401);
    assert_eq!(app.me_cookie(&session.cookie).await.status(), 401);
}

#[tokio::test]
async fn password_change_with_a_wrong_current_password_is_401_and_changes_nothing() {
    let app = spawn_app().await;
    app.user("kate").await;
    let mine = app.session_login("kate", PASSWORD).await;
    let other = app.session_login("kate", PASSWORD).await;
    let response = change_password(&app, &mine, "not-the-password", OTHER_PASSWORD).await;
    assert_problem(response, 401, "invalid_credentials").await;
    assert_eq!(app.me_cookie(&mine.cookie).await.status(), 200);
    assert_eq!(app.me_cookie(&other.cookie).await.status(), 200, "nothing was revoked");
    app.session_login("kate", PASSWORD).await;
}

#[tokio::test]
async fn password_change_to_a_bad_new_password_is_422() {
    let app = spawn_app().await;
    app.user("liam").await;
    let mine = app.session_login("liam", PASSWORD).await;
    let too_long = "y".repeat(129);
    for new in ["short", "password1", too_long.as_str()] {
        let problem = assert_problem(
            change_password(&app, &mine, PASSWORD, new).await,
            422,
            "validation_failed",
        )
        .await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("password"), "{new:?}: {detail}");
    }
    // A missing field is 422 too.
    let response = app
        .put("/v1/me/password")
        .header("cookie", &mine.cookie)
        .header("x-csrf-token", &mine.csrf)
        .json(&json!({"current_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 422, "validation_failed").await;
    app.session_login("liam", PASSWORD).await;
}

#[tokio::test]
async fn password_change_with_a_cookie_needs_the_csrf_token() {
    let app = spawn_app().await;
    app.user("mona").await;
    let mine = app.session_login("mona", PASSWORD).await;
    let response = app
        .put("/v1/me/password")
        .header("cookie", &mine.cookie)
        .json(&json!({"current_password": PASSWORD, "new_password": OTHER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "csrf_failed").await;
    app.session_login("mona", PASSWORD).await;
    assert_problem(app.post_session("mona", OTHER_PASSWORD).await, 401, "invalid_credentials")
        .await;
}

#[tokio::test]
async fn password_change_without_credentials_is_401() {
    let app = spawn_app().await;
    let response = app
        .put("/v1/me/password")
        .json(&json!({"current_password": PASSWORD, "new_password": OTHER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthorized").await;
}
