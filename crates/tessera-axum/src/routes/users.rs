//! `POST /v1/users`, `GET /v1/me`, `PUT /v1/me/password`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tessera::Timestamp;

use crate::body::ApiJson;
use crate::error::ApiError;
use crate::extract::{AuthUser, Client};
use crate::state::TesseraState;

#[derive(Deserialize)]
pub(super) struct NewUser {
    username: String,
    password: SecretString,
}

#[derive(Serialize)]
pub(super) struct UserBody {
    id: String,
    username: String,
    created_at: Timestamp,
}

pub(super) async fn register(
    State(state): State<TesseraState>,
    Client(client): Client,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserBody>), ApiError> {
    let user = state.auth.register(&body.username, &body.password, &client).await?;
    let body = UserBody { id: user.id, username: user.username, created_at: user.created_at };
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/me`: `{"id", "username", "auth_method", "session_id"}`.
///
/// Written by hand: this answers every `/v1/me`, and serde_json's general path costs about as
/// much as the whole credential check. The output is what serde_json writes (tested).
pub(super) async fn me(user: AuthUser) -> Response {
    let p = &user.principal;
    // The fixed text and two UUIDs take 135 bytes: no reallocation.
    let mut body = Vec::with_capacity(160 + p.username.len());
    body.extend_from_slice(b"{\"id\":");
    push_json_string(&mut body, &p.user_id);
    body.extend_from_slice(b",\"username\":");
    push_json_string(&mut body, &p.username);
    body.extend_from_slice(b",\"auth_method\":");
    push_json_string(&mut body, p.method.as_str());
    body.extend_from_slice(b",\"session_id\":");
    push_json_string(&mut body, &p.sid);
    body.push(b'}');
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// Appends `text` as a JSON string: copied when nothing in it needs escaping (the common
/// case), else escaped by serde_json.
fn push_json_string(out: &mut Vec<u8>, text: &str) {
    /// Bytes JSON requires escaped: controls, `"` and `\` (what serde_json escapes).
    const SPECIAL: [u8; 256] = {
        let mut table = [0u8; 256];
        let mut b = 0;
        while b < 0x20 {
            table[b] = 1;
            b += 1;
        }
        table[b'"' as usize] = 1;
        table[b'\\' as usize] = 1;
        table
    };
    // A fold over a table: no early exit, no branches (fewer instructions than a fold of
    // three comparisons, or eight bytes at a time, measured on the strings of `me`).
    let special = text.as_bytes().iter().fold(0u8, |acc, &b| acc | SPECIAL[usize::from(b)]);
    if special == 0 {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

#[derive(Deserialize)]
pub(super) struct PasswordChange {
    current_password: SecretString,
    new_password: SecretString,
}

pub(super) async fn change_password(
    State(state): State<TesseraState>,
    user: AuthUser,
    Client(client): Client,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .change_password(&user.principal, &body.current_password, &body.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "alice",
            "",
            "a\"b",
            "back\\slash",
            "tab\there",
            "nl\n",
            "\u{1}",
            "\u{7f}",
            "é✓🦀",
            "</script>",
        ] {
            let mut out = Vec::new();
            push_json_string(&mut out, text);
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }
}
