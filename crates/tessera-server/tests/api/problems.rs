//! The conventions: problem details, body limits, content types, form logins, no 500s.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn errors_are_rfc_9457_problem_documents() {
    let app = spawn_app().await;
    let response = app.get("/v1/me").send().await.unwrap();
    let problem = assert_problem(response, 401, "unauthorized").await;
    assert!(problem["type"].is_string() && problem["title"].is_string());
    assert_eq!(problem["status"].as_u64(), Some(401), "status is a number");
}

#[tokio::test]
async fn a_body_over_16_kib_is_413_payload_too_large() {
    let app = spawn_app().await;
    let big = json!({"username": "alice", "password": "x".repeat(17 * 1024)});
    for path in ["/v1/users", "/v1/session", "/v1/token", "/v1/token/refresh"] {
        let response = app.post(path).json(&big).send().await.unwrap();
        assert_problem(response, 413, "payload_too_large").await;
    }
    // Just under the limit is not refused for its size.
    let fits = json!({"username": "alice", "password": "x".repeat(15 * 1024)});
    let response = app.post("/v1/users").json(&fits).send().await.unwrap();
    assert_problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn a_wrong_content_type_is_415_unsupported_media_type() {
    let app = spawn_app().await;
    let body = r#"{"username": "alice", "password": "correct-horse-battery"}"#;
    for path in ["/v1/users", "/v1/session", "/v1/token", "/v1/token/refresh"] {
        let response =
            app.post(path).header("content-type", "text/plain").body(body).send().await.unwrap();
        assert_problem(response, 415, "unsupported_media_type").await;
    }
    // No content type at all on a JSON-only endpoint.
    let response = app.post("/v1/users").body(body).send().await.unwrap();
    assert_problem(response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let app = spawn_app().await;
    for path in ["/v1/users", "/v1/session", "/v1/token", "/v1/token/refresh", "/v1/token/revoke"] {
        for body in [r#"{"username": "alice", "#, "{'a': 1}", "nope"] {
            let response = app
                .post(path)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_problem(response, 400, "invalid_json").await;
        }
    }
}

#[tokio::test]
async fn a_missing_or_mistyped_field_is_422_validation_failed() {
    let app = spawn_app().await;
    for (path, body) in [
        ("/v1/users", json!({"username": "alice"})),
        ("/v1/users", json!({"password": PASSWORD})),
        ("/v1/users", json!({"username": 5, "password": PASSWORD})),
        ("/v1/session", json!({"username": "alice"})),
        ("/v1/token", json!({"password": PASSWORD})),
        ("/v1/token/refresh", json!({})),
        ("/v1/token/revoke", json!({})),
    ] {
        let response = app.post(path).json(&body).send().await.unwrap();
        assert_problem(response, 422, "validation_failed").await;
    }
    // For registration, the detail names the missing field.
    for (body, field) in
        [(json!({"username": "alice"}), "password"), (json!({"password": PASSWORD}), "username")]
    {
        let response = app.post("/v1/users").json(&body).send().await.unwrap();
        let problem = assert_problem(response, 422, "validation_failed").await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "detail must name {field}: {detail}");
    }
}

#[tokio::test]
async fn login_endpoints_accept_html_form_bodies() {
    let app = spawn_app().await;
    let password = "p@ss word+&=ünï";
    app.register("nora", password).await;
    let body = form(&[("username", "nora"), ("password", password)]);
    let response = app
        .post("/v1/session")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let login = app.session_login_from(response).await;
    assert_eq!(json_body(app.me_cookie(&login.cookie).await, 200).await["username"], "nora");

    let response = app
        .post("/v1/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let tokens = Tokens::from_body(json_body(response, 200).await);
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 200);

    let wrong = form(&[("username", "nora"), ("password", "wrong-password")]);
    let response = app
        .post("/v1/session")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(wrong)
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn odd_client_input_never_causes_a_server_error() {
    let app = spawn_app().await;
    app.user("olga").await;
    let deep = "[".repeat(5000);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"text\"".to_vec(),
        b"1e999999".to_vec(),
        br#"{"username": null, "password": null}"#.to_vec(),
        br#"{"username": "olga", "password": "correct-horse-battery", "username": "x"}"#.to_vec(),
        br#"{"refresh_token": 42, "token": ["a"]}"#.to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        deep.into_bytes(),
        b"username=%ZZ&password=%".to_vec(),
        b"username=olga&username=olga&password=x".to_vec(),
    ];
    let content_types = [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/merge-patch+json"),
    ];
    let paths = ["/v1/users", "/v1/session", "/v1/token", "/v1/token/refresh", "/v1/token/revoke"];
    for path in paths {
        for body in &bodies {
            for content_type in content_types {
                let mut request = app.post(path).body(body.clone());
                if let Some(content_type) = content_type {
                    request = request.header("content-type", content_type);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                assert!(
                    (200..500).contains(&status),
                    "{path} {content_type:?} {:?}: {status}",
                    String::from_utf8_lossy(body)
                );
                if status >= 400 {
                    let ct = header_str(response.headers(), "content-type").unwrap_or_default();
                    assert!(ct.starts_with("application/problem+json"), "{path}: {ct}");
                }
            }
        }
    }
    for authorization in ["Bearer", "Bearer ", "Basic b2xnYTp4", "Bearer a.b", "bearer ...."] {
        let response =
            app.get("/v1/me").header("authorization", authorization).send().await.unwrap();
        assert_eq!(response.status(), 401, "Authorization: {authorization}");
    }
    let response = app
        .get("/v1/me")
        .header("authorization", reqwest::header::HeaderValue::from_bytes(b"Bearer \xff").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    for cookie in ["tessera_session", "tessera_session=\"\"", "=;;=;", "tessera_session=%00"] {
        let response = app.get("/v1/me").header("cookie", cookie).send().await.unwrap();
        assert_eq!(response.status(), 401, "Cookie: {cookie}");
    }
}

#[tokio::test]
async fn a_chunked_body_over_16_kib_is_413_too() {
    // No Content-Length: the limit must hold while the body streams in.
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let chunk = format!("{{\"username\": \"alice\", \"password\": \"{}\"}}", "x".repeat(20_000));
    let request = format!(
        "POST /v1/users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        app.addr,
        chunk.len()
    );
    // The server may answer and close before reading everything: ignore write errors.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.to_ascii_lowercase().contains("content-type: application/problem+json"));
    assert!(response.contains("\"payload_too_large\""), "{response}");
}

#[tokio::test]
async fn a_malformed_path_parameter_is_a_problem_document() {
    let app = spawn_app().await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let response = app.delete("/v1/sessions/%FF%FE").bearer_auth(&tokens.access).send().await;
    let response = response.unwrap();
    let status = response.status().as_u16();
    assert!(status == 400 || status == 404, "{status}");
    let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/problem+json"),
        "errors are problem documents, got {status} {content_type:?}: {text}"
    );
}
