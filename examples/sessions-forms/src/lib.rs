#![warn(missing_docs)]
//! A server-rendered HTML application with Tessera sessions and plain HTML forms: a login
//! form, a page listing the user's items with a form to add one, and logout.
//!
//! - **The session cookie.** Logging in starts a session on the server and gives the browser
//!   only its random id, in an `HttpOnly` cookie that scripts cannot read; logout deletes the
//!   session server-side, so the id is worthless from then on.
//! - **The CSRF token in every form.** The browser attaches that cookie to *any* request to
//!   this site, including a form another site makes it submit. So each state-changing form
//!   carries a hidden `csrf_token` field: a value derived from the session that only pages of
//!   this site can read. [`CsrfLayer`] refuses unsafe requests (POST...) whose token is missing
//!   or wrong with 403 `csrf_failed`; [`CsrfToken`] gives the value to render.
//! - **The Origin rule**, for the one form without a session yet: a login from another site's
//!   page (which would log the victim into the attacker's account) is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tessera::Error::{InvalidCredentials, RateLimited};
use tessera::secrecy::SecretString;
use tessera_axum::layers::{require_allowed_origin, security_headers};
use tessera_axum::{
    ApiError, AuthUser, CSRF_FORM_FIELD, Client, CsrfLayer, CsrfToken, SessionUser, TesseraState,
};

/// The longest item, in characters.
pub const MAX_ITEM_CHARS: usize = 200;

#[derive(Debug, Clone)]
struct AppState {
    tessera: TesseraState,
    /// Each user's items by user id, in memory (a real application has a database).
    items: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl AppState {
    fn items(&self) -> MutexGuard<'_, HashMap<String, Vec<String>>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The extractors find the engine in the state through `FromRef`.
impl FromRef<AppState> for TesseraState {
    fn from_ref(state: &AppState) -> Self {
        state.tessera.clone()
    }
}

/// The whole application. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`:
/// the peer address is what per-IP login throttling counts by.
pub fn app(tessera: TesseraState) -> Router {
    let state = AppState { tessera: tessera.clone(), items: Arc::default() };
    // Every POST below needs the CSRF token of the session that authenticates it.
    let logged_in = Router::new()
        .route("/items", get(items_page).post(add_item))
        .route("/logout", post(logout))
        .layer(CsrfLayer::new(tessera.clone()));
    Router::new()
        .route("/", get(|| async { Redirect::to("/items") }))
        .route("/login", get(|| async { login_page(StatusCode::OK, None, "") }).post(login))
        .merge(logged_in)
        // The Origin rule, and security headers: pages holding CSRF tokens are neither cached
        // nor framed by other sites (clickjacking).
        .layer((from_fn_with_state(tessera, require_allowed_origin), from_fn(security_headers)))
        .with_state(state)
}

/// A user with a live session, for pages: a visitor without one is sent to the login form
/// instead of getting the 401 problem an API would answer.
#[derive(Debug)]
struct PageUser(AuthUser);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match SessionUser::from_request_parts(parts, state).await {
            Ok(SessionUser(user)) => Ok(PageUser(user)),
            Err(e) if e.parts().0 == StatusCode::UNAUTHORIZED => {
                Err(Redirect::to("/login").into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: SecretString,
}

/// `POST /login`: checks the password, starts a session and sets its cookie, the way
/// Tessera's own `POST /v1/session` does.
async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ApiError> {
    // Checks the password, ends the session this browser had and starts a new one (a new
    // id at every login: an id planted in the browser beforehand is useless), exactly as
    // Tessera's own `POST /v1/session`.
    let tessera = &state.tessera;
    let cookie =
        match tessera.login_session(&form.username, &form.password, &client, &headers).await {
            Ok((cookie, _session)) => cookie,
            Err(e @ ApiError::Engine(InvalidCredentials | RateLimited { .. })) => {
                let (status, _, title, _) = e.parts();
                return Ok(login_page(status, Some(title), &form.username));
            }
            Err(e) => return Err(e),
        };
    // 303: the browser follows with a GET, so reloading the page does not resend the password.
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/items")).into_response())
}

/// `GET /items`: the user's items and the forms, each with the session's CSRF token.
async fn items_page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    CsrfToken(csrf): CsrfToken,
) -> Html<String> {
    let items = state.items().get(&user.principal.user_id).cloned().unwrap_or_default();
    let list = if items.is_empty() {
        "<p>No items yet.</p>".to_owned()
    } else {
        let items: String = items.iter().map(|i| format!("<li>{}</li>", escape(i))).collect();
        format!("<ul>{items}</ul>")
    };
    // The token is base64url (nothing to escape), but escaping costs nothing and keeps the
    // rule simple: every value interpolated into HTML goes through `escape`.
    let csrf =
        format!(r#"<input type="hidden" name="{CSRF_FORM_FIELD}" value="{}">"#, escape(&csrf));
    page(&format!(
        r#"<h1>{user}'s items</h1>
{list}
<form method="post" action="/items">{csrf}
  <input name="item" required maxlength="{MAX_ITEM_CHARS}"> <button>Add</button>
</form>
<form method="post" action="/logout">{csrf}<button>Log out</button></form>"#,
        user = escape(&user.principal.username),
    ))
}

#[derive(Deserialize)]
struct NewItem {
    item: String,
}

/// `POST /items`. By the time it runs, [`CsrfLayer`] has checked the form's token and the
/// extractor reuses the user it authenticated; the form body is still there for `Form`.
async fn add_item(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Form(new): Form<NewItem>,
) -> Response {
    let item = new.item.trim();
    if item.is_empty() || item.chars().count() > MAX_ITEM_CHARS {
        let body = format!("<p>An item has 1 to {MAX_ITEM_CHARS} characters.</p>");
        return (StatusCode::UNPROCESSABLE_ENTITY, page(&body)).into_response();
    }
    state.items().entry(user.principal.user_id).or_default().push(item.to_owned());
    Redirect::to("/items").into_response()
}

/// `POST /logout` (a form with the CSRF token, so another site cannot log the user out):
/// deletes the session on the server and the cookie in the browser.
async fn logout(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Client(client): Client,
) -> Result<Response, ApiError> {
    let cookie = state.tessera.logout_session(&user, &client).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

/// The login form, with an error message after a failed attempt.
fn login_page(status: StatusCode, error: Option<&str>, username: &str) -> Response {
    let error = error.map(|e| format!("<p><strong>{}</strong></p>", escape(e)));
    let body = format!(
        r#"<h1>Log in</h1>{}
<form method="post" action="/login">
  <label>Username <input name="username" value="{}" required></label>
  <label>Password <input name="password" type="password" required></label>
  <button>Log in</button>
</form>"#,
        error.unwrap_or_default(),
        escape(username),
    );
    (status, page(&body)).into_response()
}

fn page(body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Items</title></head>\n\
         <body>\n{body}\n</body></html>\n"
    ))
}

/// Escapes text for HTML element content and quoted attribute values (`&` first).
pub fn escape(text: &str) -> String {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    escaped.replace('"', "&quot;").replace('\'', "&#39;")
}
