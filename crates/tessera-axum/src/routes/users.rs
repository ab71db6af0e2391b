//! `POST /v1/users`, `GET /v1/me`, `PUT /v1/me/password`.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
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

#[derive(Serialize)]
pub(super) struct MeBody {
    id: String,
    username: String,
    auth_method: &'static str,
    session_id: String,
}

pub(super) async fn me(user: AuthUser) -> Json<MeBody> {
    let p = user.principal;
    Json(MeBody {
        id: p.user_id,
        username: p.username,
        auth_method: p.method.as_str(),
        session_id: p.sid,
    })
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
