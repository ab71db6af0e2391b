//! [`RemoteSettings`]: what a remote-mode application expects of the Tessera server's tokens
//! (issuer, audience, leeway), how long it trusts what it fetched (JWKS, `/v1/verify`
//! answers), and how long it waits for the server.

use std::time::Duration;

use super::RemoteError;

/// Settings of a [`RemoteVerifier`](super::RemoteVerifier). Build with
/// [`RemoteSettings::new`] and change the fields you need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    /// The only `iss` accepted: the server's `[token] issuer` (its public URL by default).
    /// Required.
    pub issuer: String,
    /// The `aud` a token must list: the server's `[token] audience` (default `tessera`).
    pub audience: String,
    /// Clock-skew allowance for `exp`, `nbf` and `iat` (default 30 s, at most 60 s).
    pub leeway: Duration,
    /// The shortest time between two JWKS fetches (default 30 s). A token naming a `kid` the
    /// cached JWKS lacks makes the next fetch happen at once if the last one is older than
    /// this; otherwise the token is refused, so that made-up `kid`s cannot make the
    /// application hammer the server.
    pub jwks_refetch_interval: Duration,
    /// How long a fetched JWKS is used before it is fetched again on the next token
    /// (default 10 min), so keys the server dropped stop verifying. If that fetch fails, the
    /// keys already held stay in use.
    pub jwks_max_age: Duration,
    /// How long a positive `/v1/verify` answer is reused for the same credential (default
    /// 5 s): the bound on how long a revoked session keeps working here. Zero asks the server
    /// on every request. Refusals are never cached.
    pub session_cache_ttl: Duration,
    /// The longest wait for the server on any request, connecting included (default 5 s).
    pub request_timeout: Duration,
    /// The most answers (and verified tokens) kept in memory (default 10,000 each).
    pub max_cache_entries: usize,
    /// Read the `__Host-` prefixed cookie names (default `true`); `false` for a server with
    /// `[cookie] secure = false` (plain-HTTP development).
    pub cookie_secure: bool,
    /// Also ask the server about access tokens (`/v1/verify`, with the same short cache), so a
    /// revoked token stops working here within `session_cache_ttl` rather than at its `exp`
    /// (default `false`: tokens are verified locally only, which costs no round trip).
    pub check_tokens_with_server: bool,
}

impl RemoteSettings {
    /// Settings for tokens issued by `issuer`, with every other field at its default.
    pub fn new(issuer: impl Into<String>) -> Self {
        RemoteSettings {
            issuer: issuer.into(),
            audience: "tessera".into(),
            leeway: Duration::from_secs(30),
            jwks_refetch_interval: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(600),
            session_cache_ttl: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            max_cache_entries: 10_000,
            cookie_secure: true,
            check_tokens_with_server: false,
        }
    }

    pub(super) fn validate(&self) -> Result<(), RemoteError> {
        let invalid = |field, rule| Err(RemoteError::InvalidSetting { field, rule });
        if self.issuer.is_empty() {
            return invalid("issuer", "must not be empty");
        }
        if self.audience.is_empty() {
            return invalid("audience", "must not be empty");
        }
        if self.leeway > Duration::from_secs(60) {
            return invalid("leeway", "must be at most 60 s");
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must be more than zero");
        }
        if self.max_cache_entries == 0 {
            return invalid("max_cache_entries", "must be at least 1");
        }
        Ok(())
    }
}
