#![warn(missing_docs)]
//! An application in remote mode: it does not embed Tessera's engine, it trusts a Tessera
//! server running elsewhere. Users register and log in there; this application only checks
//! the credentials they bring, through a [`RemoteVerifier`] as its state. The handlers use the
//! same extractors as an embedded application ([`AuthUser`], [`MaybeAuthUser`]).
//!
//! | method, path | who | answer |
//! |---|---|---|
//! | `GET /` | anyone | 200, a greeting naming the caller if credentials came along |
//! | `GET /api/me` | logged in | 200, who is calling and how; 401 otherwise |
//!
//! How each credential is checked, and what that costs:
//! - a **bearer token** is verified here, against the server's public keys (its JWKS, fetched
//!   once and cached): no round trip per request. The price: a token whose login was revoked
//!   on the server keeps working here until it expires (the server's access-token lifetime,
//!   5 minutes by default), unless `RemoteSettings::check_tokens_with_server` is set;
//! - a **session cookie** means nothing without the server's records, so it is checked at the
//!   server's `GET /v1/verify`, and a positive answer is reused for
//!   `RemoteSettings::session_cache_ttl` (5 s by default): a session ended on the server
//!   (logout, password change) stops working here within that time. For the browser to send
//!   the cookie here at all, the server and this application must share a host (one reverse
//!   proxy in front of both).
//!
//! When the server cannot be reached and nothing cached can decide, requests fail closed with
//! 503 `store_unavailable`, never through as anonymous.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tessera_axum::remote::RemoteVerifier;
use tessera_axum::routes::not_found;
use tessera_axum::{AuthUser, MaybeAuthUser};

/// The answer of `GET /`.
#[derive(Debug, Serialize)]
pub struct Greeting {
    /// What the page says.
    pub message: String,
    /// The caller's username, if credentials came with the request.
    pub username: Option<String>,
}

/// The answer of `GET /api/me`.
#[derive(Debug, Serialize)]
pub struct Me {
    /// Tessera's user id.
    pub user_id: String,
    /// The username.
    pub username: String,
    /// `session` (a session cookie) or `token` (a bearer token or token cookie).
    pub auth_method: &'static str,
    /// The public handle of the login (the session, or the token's refresh family).
    pub session_id: String,
}

/// The application. A [`RemoteVerifier`] is all the state it needs: the extractors take it
/// from there. (With a state of your own, implement `FromRef<YourState>` for
/// [`tessera_axum::Verifier`].)
pub fn app(verifier: RemoteVerifier) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/api/me", get(me))
        .fallback(not_found)
        .with_state(verifier)
}

/// `GET /`: public. `MaybeAuthUser` is `None` only when no credentials came at all; a bad or
/// expired token is still a 401, never quietly anonymous.
async fn home(MaybeAuthUser(user): MaybeAuthUser) -> Json<Greeting> {
    let username = user.map(|u| u.principal.username);
    let message = match &username {
        Some(name) => format!("hello, {name}"),
        None => "hello, stranger: log in at the Tessera server to see more".into(),
    };
    Json(Greeting { message, username })
}

/// `GET /api/me`: only for callers with valid credentials.
async fn me(user: AuthUser) -> Json<Me> {
    let p = user.principal;
    Json(Me {
        user_id: p.user_id,
        username: p.username,
        auth_method: p.method.as_str(),
        session_id: p.sid,
    })
}
