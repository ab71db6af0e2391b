//! [`TesseraState`]: what every handler and extractor needs: the engine and the HTTP-level
//! settings (cookie security, the server's public URL, allowed origins, proxy trust).

use crate::client_ip::TrustedProxies;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use tessera::session::{NewSession, SessionManager};
use tessera::store::ClientInfo;
use tessera::{AuthMethod, Authenticator};

use crate::cookies::CookieKind;
use crate::error::ApiError;
use crate::extract::AuthUser;

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Cookies are `Secure` with the `__Host-`/`__Secure-` prefixes (default). `false` is for
    /// plain-HTTP development only.
    pub cookie_secure: bool,
    /// The server's public origin, e.g. `https://auth.example.com` (normalised).
    pub public_origin: String,
    /// Further origins allowed to send unsafe requests (normalised), e.g. the apps behind
    /// forward auth or a single-page app on another origin.
    pub allowed_origins: Vec<String>,
    /// Reverse proxies whose `Forwarded` / `X-Forwarded-For` headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// Where [`api_router`](crate::api_router) mounts the API in your application: empty (the
    /// default) for API.md's paths at the root (`/v1/session`, …), or a prefix such as `/auth`
    /// (`/auth/v1/session`, …; the refresh cookie's path follows). A missing leading `/` is
    /// added and a trailing one dropped.
    pub api_prefix: String,
    /// The API layer sets the security headers (`nosniff`, `no-referrer`, `DENY`, a strict
    /// CSP, `no-store`) on its responses; on by default. Turn it off only when an outer layer
    /// sets them on every response, as the Tessera server's does.
    pub security_headers: bool,
}

impl HttpSettings {
    /// Settings for a server reachable at `public_url`.
    pub fn new(public_url: &str) -> Self {
        HttpSettings {
            cookie_secure: true,
            public_origin: normalize_origin(public_url).unwrap_or_default(),
            allowed_origins: Vec::new(),
            trusted_proxies: TrustedProxies::default(),
            api_prefix: String::new(),
            security_headers: true,
        }
    }

    /// [`api_prefix`](Self::api_prefix), normalised: empty, or `/` followed by segments
    /// without a trailing `/`.
    pub fn api_prefix(&self) -> String {
        let trimmed = self.api_prefix.trim().trim_matches('/');
        if trimmed.is_empty() { String::new() } else { format!("/{trimmed}") }
    }

    /// Whether an `Origin` header value may send unsafe requests: the server's own origin
    /// (its public URL, or the host the request was addressed to, with the public URL's
    /// scheme) or a configured one.
    pub fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let Some(origin) = normalize_origin(origin) else { return false };
        if origin == self.public_origin || self.allowed_origins.contains(&origin) {
            return true;
        }
        let scheme = self.public_origin.split("://").next().unwrap_or("http");
        host.and_then(|h| normalize_origin(&format!("{scheme}://{h}")))
            .is_some_and(|own| own == origin)
    }
}

/// `scheme://host[:port]` in lower case, default ports dropped, path ignored; `None` if the
/// value is not an http(s) origin (including the opaque origin `null`).
pub fn normalize_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return None;
    }
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}"))
}

/// The state the router and extractors run on.
#[derive(Debug, Clone)]
pub struct TesseraState {
    /// The engine.
    pub auth: Authenticator,
    /// HTTP-level settings.
    pub http: Arc<HttpSettings>,
}

impl TesseraState {
    /// State over `auth` with `http` settings.
    pub fn new(auth: Authenticator, http: HttpSettings) -> Self {
        TesseraState { auth, http: Arc::new(http) }
    }

    /// Logs a browser in with a session, exactly as `POST /v1/session` does, for an
    /// application's own login form: checks the password (throttled and audited), ends the
    /// session the browser had (its cookie in `headers`), starts a new one (a new id at every
    /// login, so an id planted beforehand is useless) and returns the `Set-Cookie` value with
    /// the new session.
    pub async fn login_session(
        &self,
        username: &str,
        password: &SecretString,
        client: &ClientInfo,
        headers: &HeaderMap,
    ) -> Result<(HeaderValue, NewSession), ApiError> {
        let auth = &self.auth;
        let user = auth.login(AuthMethod::Session, username, password, client).await?;
        if let Some(digest) =
            CookieKind::Session.get(&self.http, headers).and_then(SessionManager::digest)
            && let Err(e) = auth.end_session_by_digest(&digest).await
        {
            tracing::warn!("could not end the replaced session: {e}");
        }
        let new = auth.start_session(&user, client).await?;
        let max_age = auth.settings().session.absolute_lifetime.as_secs();
        let cookie = CookieKind::Session.set(&self.http, new.secret.expose_secret(), max_age);
        Ok((cookie, new))
    }

    /// Ends the session that authenticated `user`, exactly as `DELETE /v1/session` does, and
    /// returns the `Set-Cookie` value that clears the cookie. (The caller has checked the CSRF
    /// token: a [`SessionUser`](crate::SessionUser) extractor or a
    /// [`CsrfLayer`](crate::CsrfLayer) does.)
    pub async fn logout_session(
        &self,
        user: &AuthUser,
        client: &ClientInfo,
    ) -> Result<HeaderValue, ApiError> {
        if let Some(session) = &user.session {
            // By the cookie's own digest first: no index is needed to find it.
            self.auth.end_session_by_digest(session.token_hash()).await?;
        }
        self.auth.end_session(&user.principal, client).await?;
        Ok(CookieKind::Session.clear(&self.http))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            normalize_origin("HTTPS://Auth.Example.com:443/path").unwrap(),
            "https://auth.example.com"
        );
        assert_eq!(normalize_origin("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(normalize_origin("http://[::1]:80").unwrap(), "http://[::1]");
        assert!(normalize_origin("null").is_none());
        assert!(normalize_origin("ftp://x").is_none());
        assert!(normalize_origin("http://user@x").is_none());
        assert!(normalize_origin("http://").is_none());
    }

    #[test]
    fn own_and_configured_origins_are_allowed() {
        let mut s = HttpSettings::new("http://127.0.0.1:8080");
        s.allowed_origins.push("https://app.example.com".into());
        assert!(s.origin_allowed("http://127.0.0.1:8080", None));
        assert!(s.origin_allowed("https://app.example.com", None));
        assert!(s.origin_allowed("http://localhost:8080", Some("localhost:8080")), "same host");
        assert!(
            !s.origin_allowed("https://localhost:8080", Some("localhost:8080")),
            "other scheme"
        );
        assert!(!s.origin_allowed("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!s.origin_allowed("null", Some("127.0.0.1:8080")));
    }
}
