#![deny(missing_docs)]
//! # tessera-axum: Tessera's HTTP API for axum
//!
//! - [`api_router`]: every endpoint of Tessera's HTTP contract (register, session login and
//!   logout, token login, refresh and revoke, JWKS, forward auth), ready to merge into your
//!   own [`axum::Router`];
//! - extractors for your own handlers: [`AuthUser`] (401 without valid credentials, CSRF
//!   enforced for cookie credentials on unsafe methods), [`MaybeAuthUser`], [`SessionUser`];
//! - [`ApiError`]: RFC 9457 problem responses with stable codes;
//! - remote mode (feature `remote`, module `remote`): the same extractors for an application
//!   that trusts a Tessera server running elsewhere (JWKS for tokens, `/v1/verify` for
//!   cookies) instead of embedding the engine; see [`Verifier`].
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tessera::{Authenticator, Settings, store::Stores};
//! use tessera_axum::{AuthUser, HttpSettings, TesseraState, api_router};
//!
//! async fn hello(user: AuthUser) -> String {
//!     format!("hello {} ({})", user.principal.username, user.principal.method.as_str())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = Authenticator::builder(Settings::new(), Stores::memory()).build().await?;
//! let state = TesseraState::new(auth, HttpSettings::new("http://127.0.0.1:3000"));
//! let app = Router::new()
//!     .route("/hello", get(hello))
//!     .with_state(state.clone())
//!     .merge(api_router(state));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! // The peer address is what per-IP login throttling counts by.
//! let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

pub mod body;
pub mod client_ip;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod layers;
#[cfg(feature = "remote")]
pub mod remote;
pub mod routes;
pub mod state;
pub mod verifier;

pub use csrf::{CSRF_FORM_FIELD, CsrfLayer, CsrfToken};
/// The README's examples, compiled as doctests so they cannot drift from the API.
#[cfg(all(doctest, feature = "remote"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use error::ApiError;
pub use extract::{AuthUser, Client, CredentialSource, MaybeAuthUser, SessionUser, TokenUser};
pub use routes::api_router;
pub use state::{HttpSettings, TesseraState};
pub use verifier::Verifier;
