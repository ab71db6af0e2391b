//! `body_decoders`: arbitrary request bodies through `parse_json` and `parse_form` for the
//! real request types, by way of the real router: `POST /v1/users` (`ApiJson`), `POST
//! /v1/session` and `POST /v1/token` (`JsonOrForm`), `POST /v1/token/refresh` and `POST
//! /v1/token/revoke` (raw body, optional, either type). Every input is sent to each endpoint
//! twice, once as `application/json` and once as `application/x-www-form-urlencoded`, over
//! an in-memory engine (registration open, cheap argon2, no client IP).
//!
//! Invariants (API.md's body contract): never a 5xx, only the documented statuses; `/v1/users`
//! refuses a form with 415; a body that is valid JSON is never a 400, and a form body never
//! is; every error is `application/problem+json` whose `status` matches; and no error response
//! quotes a submitted secret (`password`, `current_password`, `new_password`, `refresh_token`,
//! `token`) back. The last check looks at secrets of 8 or more characters with a non-ASCII
//! character, which no fixed message contains.
#![no_main]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use tessera_axum::api_router;
use tessera_fuzz::{http_state, runtime};
use tower::ServiceExt as _;

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: Router,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fx() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let rt = runtime();
        let router = api_router(http_state(&rt));
        Fixture { rt, router }
    })
}

const ENDPOINTS: [&str; 5] =
    ["/v1/users", "/v1/session", "/v1/token", "/v1/token/refresh", "/v1/token/revoke"];
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";
const SECRET_FIELDS: [&str; 5] =
    ["password", "current_password", "new_password", "refresh_token", "token"];
const DOCUMENTED: [u16; 10] = [200, 201, 400, 401, 403, 409, 413, 415, 422, 429];

/// The body's members, as the decoder for `content_type` would see them (last one wins).
fn members(body: &[u8], content_type: &str) -> Vec<(String, String)> {
    if content_type == FORM {
        return serde_urlencoded::from_bytes(body).unwrap_or_default();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => {
            map.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned()))).collect()
        }
        _ => Vec::new(),
    }
}

/// Submitted secrets that no fixed message could contain, and that appear in no other member
/// (an echoed username may legitimately contain the password).
fn secrets(members: &[(String, String)]) -> Vec<&str> {
    members
        .iter()
        .filter(|(k, v)| {
            SECRET_FIELDS.contains(&k.as_str())
                && v.chars().count() >= 8
                && !v.is_ascii()
                && !members
                    .iter()
                    .any(|(k2, v2)| (k2 != k && v2.contains(v.as_str())) || k2.contains(v.as_str()))
        })
        .map(|(_, v)| v.as_str())
        .collect()
}

async fn send(
    router: &Router,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (StatusCode, String, Vec<u8>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let media = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("response body");
    (status, media, bytes.to_vec())
}

fuzz_target!(|data: &[u8]| {
    let fx = fx();
    let valid_json = serde_json::from_slice::<serde_json::Value>(data).is_ok();
    for content_type in [JSON, FORM] {
        let members = members(data, content_type);
        let secrets = secrets(&members);
        for path in ENDPOINTS {
            let (status, media, body) = fx.rt.block_on(send(&fx.router, path, content_type, data));
            let what = format!("{path} {content_type} -> {status}");
            assert!(!status.is_server_error(), "{what}: {}", String::from_utf8_lossy(&body));
            assert!(DOCUMENTED.contains(&status.as_u16()), "{what}: undocumented status");
            if path == "/v1/users" && content_type == FORM {
                assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{what}");
            }
            if status == StatusCode::BAD_REQUEST {
                assert!(content_type == JSON && !valid_json, "{what} for a well-formed body");
            }
            if status.is_client_error() {
                assert_eq!(media, "application/problem+json", "{what}");
                let problem: serde_json::Value =
                    serde_json::from_slice(&body).expect("problem body is JSON");
                assert_eq!(problem["status"], status.as_u16(), "{what}");
                let text = String::from_utf8_lossy(&body);
                for secret in &secrets {
                    assert!(!text.contains(secret), "{what} quotes a submitted secret: {text}");
                }
            }
        }
    }
});
