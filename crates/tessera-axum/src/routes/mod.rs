//! The HTTP API of `API.md` as an axum [`Router`]: users, session authentication, token
//! authentication, and forward auth. Mount it in any axum application with [`api_router`].

mod session;
mod token;
mod users;
mod verify;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, put};

use crate::body::MAX_BODY_BYTES;
use crate::error::ApiError;
use crate::layers;
use crate::state::TesseraState;

/// Every endpoint of API.md's Users, Session, Token and "Use from other services" sections,
/// with the body limit, the Origin rule, CORS for the configured origins, security headers and
/// problem+json fallbacks.
pub fn api_router(state: TesseraState) -> Router {
    let api = Router::new()
        .route("/v1/users", post(users::register))
        .route("/v1/me", get(users::me))
        .route("/v1/me/password", put(users::change_password))
        .route("/v1/session", post(session::login).get(session::current).delete(session::logout))
        .route("/v1/sessions", get(session::list).delete(session::logout_everywhere))
        .route("/v1/sessions/{id}", axum::routing::delete(session::end_one))
        .route("/v1/token", post(token::login))
        .route("/v1/token/refresh", post(token::refresh))
        .route("/v1/token/revoke", post(token::revoke))
        .route("/.well-known/jwks.json", get(token::jwks))
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer((layers::ApiLayer::new(&state), body_limit()));
    // Forward auth applies its own Origin rule to the original request (see `verify`).
    let forward_auth = Router::new()
        .route("/v1/verify", any(verify::verify))
        .layer((layers::ApiLayer::new(&state).without_origin_rule(), body_limit()));
    // One layer level per route: each axum layer level clones the routes below it per request.
    api.merge(forward_auth).with_state(state)
}

fn body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_BODY_BYTES)
}

/// The 404 problem response, for an application's fallback.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
