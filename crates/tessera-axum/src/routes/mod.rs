//! The HTTP API of `API.md` as an axum [`Router`]: users, session authentication, token
//! authentication, and forward auth. Mount it in any axum application with [`api_router`].

mod session;
mod token;
mod users;
mod verify;

use axum::Router;
use axum::routing::{any, get, post, put};

use crate::error::ApiError;
use crate::layers;
use crate::state::TesseraState;

/// Every endpoint of API.md's Users, Session, Token and "Use from other services" sections,
/// with the body limit, the Origin rule, CORS for the configured origins, security headers and
/// problem+json fallbacks; at the root, or under [`HttpSettings::api_prefix`](crate::HttpSettings).
pub fn api_router(state: TesseraState) -> Router {
    build(state, true)
}

/// The routes of [`api_router`] without its layer, for a server whose own outermost layer
/// applies [`ApiRules`](crate::layers::ApiRules) to every request (one layer level fewer per
/// request). Served without those rules, they would have no Origin rule and no CORS.
pub fn api_routes(state: TesseraState) -> Router {
    build(state, false)
}

fn build(state: TesseraState, layered: bool) -> Router {
    let prefix = state.http.api_prefix();
    let mut api = Router::new()
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
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    // Forward auth applies its own Origin rule to the original request (see `verify`).
    let mut forward_auth = Router::new().route("/v1/verify", any(verify::verify));
    if layered {
        // One layer level per route: each axum layer level clones the routes below it per
        // request.
        api = api.layer(layers::ApiLayer::new(&state));
        forward_auth = forward_auth.layer(layers::ApiLayer::new(&state).without_origin_rule());
    }
    let router = api.merge(forward_auth).with_state(state);
    if prefix.is_empty() { router } else { Router::new().nest(&prefix, router) }
}

/// The headers of `GET /v1/verify` (API.md "Use from other services"), for proxy
/// configurations and for remote mode.
pub mod verify_headers {
    /// Answer: the user's id.
    pub const USER_ID: &str = "x-auth-user-id";
    /// Answer: the user's username.
    pub const USERNAME: &str = "x-auth-username";
    /// Answer: `session` or `token`.
    pub const METHOD: &str = "x-auth-method";
    /// Answer: the session's public handle or the token's `sid`.
    pub const SESSION_ID: &str = "x-auth-session-id";
    /// Answer: when the credential stops working unless renewed, in seconds since the epoch.
    pub const EXPIRES_AT: &str = "x-auth-expires-at";
    /// Request: `1` asks for [`CSRF_TOKEN`] in the answer (remote mode does, to apply the
    /// CSRF rule to the application's own unsafe requests).
    pub const WANT_CSRF: &str = "x-tessera-want-csrf";
    /// Answer, when asked for with [`WANT_CSRF`] and the credential is a cookie: the CSRF
    /// token that goes with it (what `POST /v1/session` returned as `csrf_token`).
    pub const CSRF_TOKEN: &str = "x-auth-csrf-token";
}

/// The 404 problem response, for an application's fallback.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
