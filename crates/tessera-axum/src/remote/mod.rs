//! Remote mode (feature `remote`): an application that trusts a Tessera server running
//! elsewhere, instead of embedding the engine. [`RemoteVerifier`] owns everything the
//! application needs for that: the server's public keys (its JWKS), the short cache of the
//! server's answers about cookies, and the HTTP client that asks it. The extractors
//! ([`AuthUser`], [`MaybeAuthUser`](crate::MaybeAuthUser), [`SessionUser`](crate::SessionUser))
//! work on it exactly as on an embedded [`TesseraState`](crate::TesseraState): handlers do not
//! change between the two modes.
//!
//! # How each credential is checked
//! - **Bearer tokens** (`Authorization: Bearer`) are verified here, against the server's JWKS:
//!   size, form, `kid`/`alg` allow-list, signature, `iss`, `aud`, and `exp`/`nbf`/`iat` with
//!   the leeway. No round trip per request. The JWKS is fetched on the first token, again on a
//!   `kid` it lacks (at most once per [`RemoteSettings::jwks_refetch_interval`]; concurrent
//!   misses share one fetch) and when older than [`RemoteSettings::jwks_max_age`].
//! - **Session cookies** (`__Host-tessera_session`, or `tessera_session` with
//!   [`RemoteSettings::cookie_secure`] off) are checked by `GET {base}/v1/verify`, forwarding
//!   that cookie alone. Positive answers are reused for [`RemoteSettings::session_cache_ttl`],
//!   keyed by a SHA-256 of the cookie (never the cookie itself), in a bounded cache; refusals
//!   are never cached.
//! - **Access-token cookies** (`__Host-tessera_access`) are verified like bearer tokens.
//! - **CSRF**: as in embedded mode, a cookie credential on an unsafe method (POST, PUT, PATCH,
//!   DELETE) must carry `X-CSRF-Token` equal to its login's CSRF token, else 403
//!   `csrf_failed`. Only the server can derive that token, so it comes with the server's
//!   (cached) answer about the cookie, and is compared here in constant time.
//!
//! # Failing closed
//! A bad credential is a 401 (`WWW-Authenticate: Bearer`, problem+json), never anonymous. When
//! the server cannot be reached (or times out after [`RemoteSettings::request_timeout`], or
//! answers with anything but 200 or 401) and nothing cached decides, the request fails with
//! 503 `store_unavailable`: a token signed by a key already held still verifies, a token
//! naming a `kid` that could not be looked up does not, and a cookie without a fresh cached
//! answer does not. A `kid` still unknown right after a successful fetch is a 401.
//!
//! # How soon revocation reaches this application
//! - A revoked **session** (logout, logout everywhere, password change) stops working here
//!   within [`RemoteSettings::session_cache_ttl`] (default 5 s).
//! - A revoked **access token** (its refresh family revoked, reused, or logged out) keeps
//!   working here until its `exp` plus the leeway: the server's access-token lifetime, 5 min
//!   by default. With [`RemoteSettings::check_tokens_with_server`], every token is also asked
//!   about at `/v1/verify` (with the same cache), and the bound is `session_cache_ttl` again.
//!
//! # Deployment
//! The browser sends its Tessera cookies to this application only if both are on the same
//! host (`__Host-` cookies are bound to it): typically one reverse proxy routes `/v1/` and
//! `/.well-known/` to Tessera and everything else to the application. Bearer tokens work from
//! anywhere. Remote mode needs the server to sign with a public-key algorithm (EdDSA, ES256 or
//! RS256): an HS256 secret is never published.
//!
//! ```no_run
//! use axum::{Router, routing::{get, post}};
//! use tessera_axum::{AuthUser, MaybeAuthUser};
//! use tessera_axum::remote::{RemoteSettings, RemoteVerifier};
//!
//! async fn hello(user: MaybeAuthUser) -> String {
//!     match user.0 {
//!         Some(user) => format!("hello {}", user.principal.username),
//!         None => "hello stranger".into(),
//!     }
//! }
//!
//! async fn transfer(user: AuthUser) -> String {
//!     format!("transfer by {}", user.principal.username)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The issuer is the server's `[token] issuer`: its public URL unless configured otherwise.
//! let mut settings = RemoteSettings::new("https://example.com");
//! settings.session_cache_ttl = std::time::Duration::from_secs(2);
//! // Where this application reaches the server (may differ from its public URL).
//! let verifier = RemoteVerifier::new("http://127.0.0.1:8080", settings)?;
//! // Optional: fetch the keys now rather than on the first token.
//! verifier.fetch_keys().await?;
//! let app = Router::new()
//!     .route("/hello", get(hello))
//!     .route("/transfer", post(transfer))
//!     .with_state(verifier);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! With a state of your own, let the extractors take the verifier from it:
//!
//! ```
//! use axum::extract::FromRef;
//! use tessera_axum::Verifier;
//! use tessera_axum::remote::RemoteVerifier;
//!
//! #[derive(Clone)]
//! struct AppState {
//!     auth: RemoteVerifier,
//!     // ...your database pool and so on
//! }
//!
//! impl FromRef<AppState> for Verifier {
//!     fn from_ref(state: &AppState) -> Self {
//!         state.auth.clone().into()
//!     }
//! }
//! ```

mod answers;
mod error;
mod jwks;
mod settings;
mod upstream;

use std::sync::Arc;

use http::{HeaderMap, Method};
use secrecy::{ExposeSecret, SecretString};
use tessera::crypto::ct_eq;
use tessera::token::AccessClaims;
use tessera::{AuthMethod, Error, Principal, Timestamp};

pub use error::RemoteError;
pub use settings::RemoteSettings;

use self::answers::{Answers, Credential};
use self::jwks::KeyCache;
use self::upstream::Upstream;
use crate::cookies::CookieKind;
use crate::error::ApiError;
use crate::extract::{
    AuthUser, CSRF_MISMATCH, CredentialSource, bearer_token, is_unsafe, presented_csrf_token,
};
use crate::state::HttpSettings;

/// Checks credentials against a Tessera server elsewhere (see the [module docs](self)).
/// Cheap to clone: clones share the keys, the caches and the connection pool.
#[derive(Debug, Clone)]
pub struct RemoteVerifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    upstream: Upstream,
    settings: RemoteSettings,
    /// Cookie names only (`cookie_secure`).
    cookies: HttpSettings,
    keys: KeyCache,
    answers: Answers,
}

impl RemoteVerifier {
    /// A verifier for the Tessera server at `base_url` (`http(s)://host[:port][/path]`, where
    /// this application reaches it). Nothing is fetched yet: the JWKS comes with the first
    /// token, or with [`fetch_keys`](Self::fetch_keys).
    pub fn new(base_url: &str, settings: RemoteSettings) -> Result<Self, RemoteError> {
        settings.validate()?;
        let upstream = Upstream::new(base_url, settings.request_timeout)?;
        let cookies =
            HttpSettings { cookie_secure: settings.cookie_secure, ..HttpSettings::new(base_url) };
        let answers = Answers::new(
            settings.session_cache_ttl,
            settings.max_cache_entries,
            CookieKind::Session.name(&cookies),
            CookieKind::Access.name(&cookies),
        );
        let keys = KeyCache::new(&settings);
        let inner = Inner { upstream, settings, cookies, keys, answers };
        Ok(RemoteVerifier { inner: Arc::new(inner) })
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.inner.upstream.base()
    }

    /// The settings this verifier runs with.
    pub fn settings(&self) -> &RemoteSettings {
        &self.inner.settings
    }

    /// Fetches the server's JWKS now, whatever the refetch interval, and returns how many
    /// usable keys it has. Optional: a start-up check that the server is reachable.
    pub async fn fetch_keys(&self) -> Result<usize, RemoteError> {
        self.inner.keys.fetch_now(&self.inner.upstream).await
    }

    /// Authenticates whatever credential a request with `method` and `headers` carries
    /// (bearer header, then session cookie, then access-token cookie), with the CSRF rule for
    /// cookie credentials; `Ok(None)` if it carries none. What the extractors call.
    pub async fn authenticate(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<AuthUser>, ApiError> {
        if let Some(token) = bearer_token(headers)? {
            let source = CredentialSource::BearerHeader;
            return self.token_user(token, source, method, headers).await.map(Some);
        }
        if let Some(cookie) = CookieKind::Session.get(&self.inner.cookies, headers) {
            return self.session_user(cookie, method, headers).await.map(Some);
        }
        if let Some(token) = CookieKind::Access.get(&self.inner.cookies, headers) {
            let source = CredentialSource::AccessCookie;
            return self.token_user(token, source, method, headers).await.map(Some);
        }
        Ok(None)
    }

    /// Authenticates an access token alone (the bearer header, else the access-token cookie;
    /// a session cookie is ignored), with the CSRF rule for the cookie; 401 without one.
    pub async fn authenticate_token(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<AuthUser, ApiError> {
        if let Some(token) = bearer_token(headers)? {
            return self.token_user(token, CredentialSource::BearerHeader, method, headers).await;
        }
        let token =
            CookieKind::Access.get(&self.inner.cookies, headers).ok_or(Error::Unauthorized)?;
        self.token_user(token, CredentialSource::AccessCookie, method, headers).await
    }

    /// The CSRF token of the cookie credential `headers` carry (session cookie first), from
    /// the server's (cached) answer; 401 without a cookie credential.
    pub async fn csrf_token(&self, headers: &HeaderMap) -> Result<SecretString, ApiError> {
        let inner = &self.inner;
        let credential = if let Some(cookie) = CookieKind::Session.get(&inner.cookies, headers) {
            Credential::SessionCookie(cookie)
        } else if let Some(token) = CookieKind::Access.get(&inner.cookies, headers) {
            inner.keys.verify(&inner.upstream, token).await?;
            Credential::AccessCookie(token)
        } else {
            return Err(Error::Unauthorized.into());
        };
        let answer = inner.answers.ask(&inner.upstream, credential).await?;
        answer.csrf.clone().ok_or(CSRF_MISMATCH)
    }

    /// Authenticates the session cookie alone, with the CSRF rule; 401 without one.
    pub async fn authenticate_session(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<AuthUser, ApiError> {
        let cookie =
            CookieKind::Session.get(&self.inner.cookies, headers).ok_or(Error::Unauthorized)?;
        self.session_user(cookie, method, headers).await
    }

    /// Verifies an access token on its own (from a WebSocket message, say): locally, and with
    /// the server too under [`RemoteSettings::check_tokens_with_server`].
    pub async fn verify_token(&self, token: &str) -> Result<Principal, ApiError> {
        let claims = self.inner.keys.verify(&self.inner.upstream, token).await?;
        if self.inner.settings.check_tokens_with_server {
            self.inner.answers.ask(&self.inner.upstream, Credential::Bearer(token)).await?;
        }
        Ok(token_principal(&claims))
    }

    async fn token_user(
        &self,
        token: &str,
        source: CredentialSource,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<AuthUser, ApiError> {
        let inner = &self.inner;
        let claims = inner.keys.verify(&inner.upstream, token).await?;
        let needs_csrf = source.is_cookie() && is_unsafe(method);
        if needs_csrf || inner.settings.check_tokens_with_server {
            let credential = match source {
                CredentialSource::AccessCookie => Credential::AccessCookie(token),
                _ => Credential::Bearer(token),
            };
            let answer = inner.answers.ask(&inner.upstream, credential).await?;
            if needs_csrf {
                check_csrf(headers, answer.csrf.as_ref())?;
            }
        }
        Ok(AuthUser { principal: token_principal(&claims), session: None, source })
    }

    async fn session_user(
        &self,
        cookie: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<AuthUser, ApiError> {
        let inner = &self.inner;
        let answer = inner.answers.ask(&inner.upstream, Credential::SessionCookie(cookie)).await?;
        if is_unsafe(method) {
            check_csrf(headers, answer.csrf.as_ref())?;
        }
        Ok(AuthUser {
            principal: answer.principal.clone(),
            session: None,
            source: CredentialSource::SessionCookie,
        })
    }
}

/// The CSRF rule, against the token the server gave with its answer (constant-time).
fn check_csrf(headers: &HeaderMap, expected: Option<&SecretString>) -> Result<(), ApiError> {
    let presented = presented_csrf_token(headers)?;
    match expected {
        Some(expected) if ct_eq(expected.expose_secret().as_bytes(), presented.as_bytes()) => {
            Ok(())
        }
        _ => Err(CSRF_MISMATCH),
    }
}

fn token_principal(claims: &AccessClaims) -> Principal {
    Principal {
        user_id: claims.sub.clone(),
        username: claims.username.clone(),
        method: AuthMethod::Token,
        sid: claims.sid.clone(),
        expires_at: Timestamp::from_unix_seconds(claims.exp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_and_sane_settings_are_accepted() {
        let settings = || RemoteSettings::new("https://auth.example");
        for url in
            ["http://127.0.0.1:8080", "https://auth.example/", "https://auth.example/tessera"]
        {
            assert!(RemoteVerifier::new(url, settings()).is_ok(), "{url}");
        }
        let base = RemoteVerifier::new("https://auth.example/tessera/", settings()).unwrap();
        assert_eq!(base.base_url(), "https://auth.example/tessera");
        for url in [
            "auth.example",
            "ftp://auth.example",
            "https://user:pw@auth.example",
            "https://auth.example/?x=1",
            "https://auth.example/#frag",
            "",
        ] {
            assert!(
                matches!(RemoteVerifier::new(url, settings()), Err(RemoteError::InvalidUrl { .. })),
                "{url}"
            );
        }
        let url = "https://auth.example";
        for broken in [
            RemoteSettings { leeway: std::time::Duration::from_secs(61), ..settings() },
            RemoteSettings { request_timeout: std::time::Duration::ZERO, ..settings() },
            RemoteSettings { max_cache_entries: 0, ..settings() },
            RemoteSettings { issuer: String::new(), ..settings() },
            RemoteSettings { audience: String::new(), ..settings() },
        ] {
            assert!(matches!(
                RemoteVerifier::new(url, broken),
                Err(RemoteError::InvalidSetting { .. })
            ));
        }
    }

    #[test]
    fn csrf_tokens_are_compared_whole() {
        let mut headers = HeaderMap::new();
        let expected = SecretString::from("abc".to_owned());
        assert!(check_csrf(&headers, Some(&expected)).is_err(), "missing");
        headers.insert(crate::extract::CSRF_HEADER, http::HeaderValue::from_static(" abc "));
        assert!(check_csrf(&headers, Some(&expected)).is_ok());
        assert!(check_csrf(&headers, None).is_err(), "no token from the server: refused");
        headers.insert(crate::extract::CSRF_HEADER, http::HeaderValue::from_static("ab"));
        assert!(check_csrf(&headers, Some(&expected)).is_err());
    }
}
