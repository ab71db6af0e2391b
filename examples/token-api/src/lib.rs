#![warn(missing_docs)]
//! A JSON API of notes, each private to the user who wrote it, protected by Tessera's tokens.
//!
//! The application embeds the engine: one process serves Tessera's own endpoints (register,
//! `POST /v1/token`, refresh, revoke, JWKS) under [`AUTH_PREFIX`] and its own routes under
//! `/notes`. A client logs in with `POST /auth/v1/token` and sends the access token it gets as
//! `Authorization: Bearer …`. The [`TokenUser`] extractor verifies that token (signature,
//! issuer, expiry, and that its login has not been revoked) before a handler runs; without a
//! token, or with a bad one, the request ends there with a 401 problem+json response carrying
//! `WWW-Authenticate: Bearer`. (`TokenUser` takes access tokens only; `AuthUser` would also
//! take a Tessera session cookie, with the CSRF rule that comes with cookies.) When the access token expires (5 minutes by default), the client
//! trades its refresh token for a new pair at `POST /auth/v1/token/refresh`.
//!
//! | method, path | body | answer |
//! |---|---|---|
//! | `GET /notes` | – | 200, the caller's notes |
//! | `POST /notes` | `{"text"}` | 201, the new note |
//! | `DELETE /notes/{id}` | – | 204; 404 for a note that is not the caller's |

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tessera::Authenticator;
use tessera_axum::body::ApiJson;
use tessera_axum::routes::not_found;
use tessera_axum::{ApiError, HttpSettings, TesseraState, TokenUser, api_router};

/// Where Tessera's endpoints are mounted: `/auth/v1/users`, `/auth/v1/token`, ... (see
/// [`HttpSettings::api_prefix`]).
pub const AUTH_PREFIX: &str = "/auth";

/// The longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;

/// A note, as the API returns it.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// Its id (unique across users).
    pub id: u64,
    /// What it says.
    pub text: String,
    /// The id of the user who wrote it (Tessera's user id, the token's `sub`).
    #[serde(skip)]
    pub owner: String,
}

/// The body of `POST /notes`.
#[derive(Debug, Deserialize)]
pub struct NewNote {
    /// What the note says: 1 to [`MAX_NOTE_CHARS`] characters.
    pub text: String,
}

/// Every user's notes, in memory (a real application keeps them in its database).
#[derive(Debug, Default)]
struct Notes {
    last_id: u64,
    by_id: BTreeMap<u64, Note>,
}

#[derive(Debug, Clone)]
struct AppState {
    tessera: TesseraState,
    notes: Arc<Mutex<Notes>>,
}

impl AppState {
    fn notes(&self) -> MutexGuard<'_, Notes> {
        // No code path panics while holding the lock, but a poisoned map is still usable.
        self.notes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The extractors find the engine in the application's state through `FromRef`: any state a
/// [`TesseraState`] can be taken from works.
impl FromRef<AppState> for TesseraState {
    fn from_ref(state: &AppState) -> Self {
        state.tessera.clone()
    }
}

/// The whole application over the engine `auth`: the notes API, and Tessera's API under
/// [`AUTH_PREFIX`]. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the
/// peer address is what per-IP login throttling counts by.
pub fn app(auth: Authenticator, mut http: HttpSettings) -> Router {
    // `api_router` mounts the API under this prefix (and the refresh cookie's path follows).
    http.api_prefix = AUTH_PREFIX.into();
    let tessera = TesseraState::new(auth, http);
    let state = AppState { tessera: tessera.clone(), notes: Arc::default() };
    Router::new()
        .route("/notes", get(list).post(create))
        .route("/notes/{id}", delete(remove))
        // Unknown paths get a problem+json 404 like the rest of the API.
        .fallback(not_found)
        .with_state(state)
        // `api_router` is a complete router with its state applied: it merges into any
        // application's router, with its own body limit, Origin rule and security headers.
        .merge(api_router(tessera))
}

/// `GET /notes`: the caller's notes, oldest first.
async fn list(State(state): State<AppState>, TokenUser(user): TokenUser) -> Json<Vec<Note>> {
    let notes = state.notes();
    let mine = notes.by_id.values().filter(|n| n.owner == user.principal.user_id);
    Json(mine.cloned().collect())
}

/// `POST /notes`. `ApiJson` answers a bad body the way Tessera's own endpoints do (400, 413,
/// 415 or 422 problem+json); the body extractor comes last, after authentication.
async fn create(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    ApiJson(new): ApiJson<NewNote>,
) -> Result<(StatusCode, Json<Note>), ApiError> {
    let text = new.text.trim();
    if text.is_empty() || text.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::Validation(format!("text: 1 to {MAX_NOTE_CHARS} characters")));
    }
    let mut notes = state.notes();
    notes.last_id += 1;
    let note = Note { id: notes.last_id, text: text.to_owned(), owner: user.principal.user_id };
    notes.by_id.insert(note.id, note.clone());
    Ok((StatusCode::CREATED, Json(note)))
}

/// `DELETE /notes/{id}`. Another user's note is answered exactly like a missing one, so ids
/// reveal nothing about other users' notes.
async fn remove(
    State(state): State<AppState>,
    TokenUser(user): TokenUser,
    Path(id): Path<u64>,
) -> Result<StatusCode, ApiError> {
    let mut notes = state.notes();
    match notes.by_id.get(&id) {
        Some(note) if note.owner == user.principal.user_id => {
            notes.by_id.remove(&id);
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::NotFound),
    }
}
