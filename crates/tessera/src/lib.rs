#![deny(missing_docs)]

//! # Tessera: session and token authentication, side by side
//!
//! The engine behind the `tessera` server, usable on its own: one [`Authenticator`] over one
//! user base gives you
//!
//! - **sessions**: a 256-bit random id in a cookie, only its SHA-256 in the store, idle and
//!   absolute lifetimes, coalesced renewal, listing and revocation;
//! - **tokens**: short-lived JWT access tokens (EdDSA by default; ES256, RS256, or HS256 with a
//!   configured secret) and single-use rotating refresh tokens with a retry grace and theft
//!   detection; revocation that takes effect on the very next request;
//! - a security floor: argon2id on a bounded worker pool, timing-safe logins for unknown users,
//!   login throttling per username and per IP, CSRF tokens for cookie credentials.
//!
//! Stores sit behind small traits ([`store`]); the in-memory and SQLite backends ship here.
//! There is no HTTP framework inside: `tessera-axum` maps all of this onto axum.
//!
//! ```
//! use secrecy::SecretString;
//! use tessera::{AuthMethod, Authenticator, Settings, store::{ClientInfo, Stores}};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tessera::Error> {
//! let mut settings = Settings::new();
//! # settings.password.params = tessera::password::Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
//! let auth = Authenticator::builder(settings, Stores::memory()).build().await?;
//! // Where each request came from: recorded in the session list and the audit log.
//! let client = ClientInfo { ip: Some("192.0.2.7".into()), user_agent: Some("curl/8".into()) };
//! let password = SecretString::from("correct horse battery".to_owned());
//! auth.register("alice", &password, &client).await?;
//!
//! // Session login: the cookie value is `new.secret`.
//! let user = auth.login(AuthMethod::Session, "alice", &password, &client).await?;
//! let new = auth.start_session(&user, &client).await?;
//! let (principal, _) = auth.authenticate_session(&new.secret).await?;
//! assert_eq!(principal.username, "alice");
//!
//! // Token login: a JWT for every request, a refresh token to get the next one.
//! let user = auth.login(AuthMethod::Token, "alice", &password, &client).await?;
//! let grant = auth.issue_tokens(&user, &client).await?;
//! let principal = auth.authenticate_token(&grant.access.token).await?;
//! assert_eq!(principal.method, AuthMethod::Token);
//! let next = auth.refresh(&grant.refresh.token, &client).await?;
//!
//! // Revoking the family makes its access tokens fail at once.
//! auth.revoke_token(&next.refresh.token, &client).await?;
//! assert!(auth.authenticate_token(&next.access.token).await.is_err());
//!
//! // Each of those steps is in the audit log, newest first.
//! let events = auth.audit_events(&tessera::audit::AuditFilter::default()).await?;
//! assert_eq!(events[0].kind, tessera::audit::AuditKind::TokenRevoke);
//! # Ok(())
//! # }
//! ```

pub mod audit;
pub mod authenticator;
pub mod cache;
pub mod clock;
pub mod crypto;
pub mod csrf;
pub mod error;
pub mod fsutil;
pub mod ids;
pub mod limit;
pub mod metrics;
pub mod password;
pub mod principal;
pub mod seal;
pub mod session;
pub mod settings;
pub mod store;
pub mod token;

pub use authenticator::{Authenticator, AuthenticatorBuilder, EndedLogins, LoginInfo, TokenGrant};
/// The short name of [`Authenticator`]: `tessera::Auth::builder(settings, stores)`.
pub type Auth = Authenticator;
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use crypto::ServerSecret;
pub use error::Error;
pub use principal::{AuthMethod, Principal};
pub use seal::KeyEncryptionKey;
/// The `secrecy` crate, whose `SecretString` carries passwords and tokens through this API.
pub use secrecy;
pub use settings::Settings;

/// Entry points for the fuzz targets in `fuzz/` that reach below the public API. Not part of
/// the supported API: hidden from the documentation and free to change.
#[doc(hidden)]
pub mod fuzzing {
    use crate::Error;
    use crate::token::{KeySet, SigningKey};

    /// `token::jws::verify`: checks a JWS compact token's form, header and signature against
    /// `keys` and returns the decoded payload.
    pub fn jws_verify(token: &str, keys: &KeySet) -> Result<Vec<u8>, Error> {
        crate::token::jws::verify(token, keys)
    }

    /// `token::jws::sign`: signs `payload` (the claims JSON) with `key`, exactly as access
    /// tokens are signed.
    pub fn jws_sign(key: &SigningKey, payload: &[u8]) -> Result<String, Error> {
        crate::token::jws::sign(key, payload)
    }
}
