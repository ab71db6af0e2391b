//! Asking the server about a credential (`GET /v1/verify`) and remembering its positive
//! answers for a short while.
//!
//! Only the one credential being checked is forwarded: the session or access-token cookie
//! alone (never the request's other cookies), or the bearer token. A cookie credential asks
//! for its CSRF token too (`X-Tessera-Want-Csrf: 1`), since the CSRF rule needs the server's
//! key. A 200 is cached for `session_cache_ttl` (never past the credential's own expiry), keyed
//! by a SHA-256 of the credential, never the credential itself; a 401 is passed on and never
//! cached; anything else (no answer, a timeout, a 5xx, a malformed 200) fails closed with a
//! 503.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use secrecy::SecretString;
use serde::Deserialize;
use tessera::cache::ShardedCache;
use tessera::clock::{Clock, SystemClock, Timestamp};
use tessera::crypto::{Digest, sha256};
use tessera::{AuthMethod, Error, Principal};

use super::upstream::{Upstream, read_limited};
use crate::error::ApiError;
use crate::routes::verify_headers::{
    CSRF_TOKEN, EXPIRES_AT, METHOD, SESSION_ID, USER_ID, USERNAME, WANT_CSRF,
};

/// The forward-auth endpoint (API.md "Use from other services").
const VERIFY_PATH: &str = "/v1/verify";

/// The largest `/v1/verify` body read (a problem document or the small identity JSON).
const MAX_ANSWER_BYTES: usize = 4 * 1024;

/// The longest identity header value accepted from the server.
const MAX_HEADER_VALUE: usize = 1024;

/// A credential to ask the server about.
#[derive(Clone, Copy)]
pub(super) enum Credential<'a> {
    /// The session cookie's value.
    SessionCookie(&'a str),
    /// The access-token cookie's value.
    AccessCookie(&'a str),
    /// A bearer token.
    Bearer(&'a str),
}

impl Credential<'_> {
    /// The cache key: a digest of the kind and the value.
    fn digest(self) -> Digest {
        let (kind, value) = match self {
            Credential::SessionCookie(v) => (b's', v),
            Credential::AccessCookie(v) => (b'a', v),
            Credential::Bearer(v) => (b'b', v),
        };
        let mut input = Vec::with_capacity(value.len() + 2);
        input.extend_from_slice(&[kind, 0]);
        input.extend_from_slice(value.as_bytes());
        sha256(&input)
    }
}

/// The server's positive answer about one credential.
#[derive(Debug)]
pub(super) struct Answer {
    /// Who the credential belongs to.
    pub(super) principal: Principal,
    /// The CSRF token of a cookie credential.
    pub(super) csrf: Option<SecretString>,
    /// Until when the answer may be reused.
    fresh_until: Instant,
}

/// The client side of `/v1/verify`, with its positive cache.
#[derive(Debug)]
pub(super) struct Answers {
    cache: ShardedCache<Arc<Answer>>,
    ttl: Duration,
    session_cookie: &'static str,
    access_cookie: &'static str,
}

impl Answers {
    pub(super) fn new(
        ttl: Duration,
        capacity: usize,
        session_cookie: &'static str,
        access_cookie: &'static str,
    ) -> Self {
        Answers { cache: ShardedCache::new(capacity), ttl, session_cookie, access_cookie }
    }

    /// The server's answer about `credential`, from the cache while it is fresh.
    pub(super) async fn ask(
        &self,
        upstream: &Upstream,
        credential: Credential<'_>,
    ) -> Result<Arc<Answer>, ApiError> {
        let key = credential.digest();
        if let Some(answer) = self.cache.get(&key)
            && answer.fresh_until > Instant::now()
            && answer.principal.expires_at > SystemClock.now()
        {
            return Ok(answer);
        }
        let answer = Arc::new(self.ask_server(upstream, credential).await?);
        if !self.ttl.is_zero() {
            self.cache.insert(key, Arc::clone(&answer), |a| a.fresh_until <= Instant::now());
        }
        Ok(answer)
    }

    async fn ask_server(
        &self,
        upstream: &Upstream,
        credential: Credential<'_>,
    ) -> Result<Answer, ApiError> {
        let (name, value, want_csrf) = match credential {
            Credential::SessionCookie(v) => (header::COOKIE, cookie(self.session_cookie, v), true),
            Credential::AccessCookie(v) => (header::COOKIE, cookie(self.access_cookie, v), true),
            Credential::Bearer(token) => (header::AUTHORIZATION, format!("Bearer {token}"), false),
        };
        // Read from a request header, so always a valid header value.
        let mut value = HeaderValue::from_str(&value).map_err(|_| Error::Unauthorized)?;
        value.set_sensitive(true);
        let mut request = upstream
            .get(VERIFY_PATH)
            .header(name, value)
            .header(header::ACCEPT, "application/json");
        if want_csrf {
            request = request.header(WANT_CSRF, "1");
        }
        let url = format!("{}{VERIFY_PATH}", upstream.base());
        let unavailable =
            |why: String| ApiError::AuthServerUnavailable(format!("GET {url}: {why}"));
        let mut response = request.send().await.map_err(|e| unavailable(e.to_string()))?;
        match response.status() {
            StatusCode::OK => {
                let answer = parse_answer(response.headers(), self.ttl).map_err(unavailable)?;
                // Read (a bounded amount) so the connection can be reused; the body repeats
                // the headers.
                let _ = read_limited(&mut response, MAX_ANSWER_BYTES).await;
                Ok(answer)
            }
            StatusCode::UNAUTHORIZED => {
                let body = read_limited(&mut response, MAX_ANSWER_BYTES).await.unwrap_or_default();
                Err(refusal(&body).into())
            }
            status => Err(unavailable(format!("answered {status}"))),
        }
    }
}

fn cookie(name: &str, value: &str) -> String {
    format!("{name}={value}")
}

/// The engine error matching the server's 401 problem `code`.
fn refusal(body: &[u8]) -> Error {
    #[derive(Deserialize)]
    struct Problem {
        code: String,
    }
    let code = serde_json::from_slice::<Problem>(body).map(|p| p.code).unwrap_or_default();
    match code.as_str() {
        "session_expired" => Error::SessionExpired,
        "token_expired" => Error::TokenExpired,
        "token_invalid" => Error::TokenInvalid("refused by the Tessera server"),
        _ => Error::Unauthorized,
    }
}

/// The identity in a 200's headers.
fn parse_answer(headers: &HeaderMap, ttl: Duration) -> Result<Answer, String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= MAX_HEADER_VALUE)
    };
    let required =
        |name: &'static str| get(name).ok_or_else(|| format!("answered 200 without {name}"));
    let method = match required(METHOD)? {
        "session" => AuthMethod::Session,
        "token" => AuthMethod::Token,
        _ => return Err(format!("answered 200 with an unknown {METHOD}")),
    };
    // A server without this header vouches for the credential for as long as it is cached.
    let expires_at = match get(EXPIRES_AT) {
        Some(secs) => secs
            .parse::<i64>()
            .map(Timestamp::from_unix_seconds)
            .map_err(|_| format!("answered 200 with a malformed {EXPIRES_AT}"))?,
        None => SystemClock.now().plus(ttl),
    };
    Ok(Answer {
        principal: Principal {
            user_id: required(USER_ID)?.to_owned(),
            username: required(USERNAME)?.to_owned(),
            method,
            sid: required(SESSION_ID)?.to_owned(),
            expires_at,
        },
        csrf: get(CSRF_TOKEN).map(|token| SecretString::from(token.to_owned())),
        fresh_until: Instant::now() + ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    #[test]
    fn cache_keys_depend_on_kind_and_value_only() {
        let session = Credential::SessionCookie("abc").digest();
        assert_eq!(session, Credential::SessionCookie("abc").digest());
        assert_ne!(session, Credential::AccessCookie("abc").digest());
        assert_ne!(session, Credential::Bearer("abc").digest());
        assert_ne!(session, Credential::SessionCookie("abd").digest());
        assert_ne!(&session[..], b"abc", "never the secret itself");
    }

    #[test]
    fn refusals_keep_the_servers_code() {
        let code = |c: &str| refusal(format!(r#"{{"code":"{c}"}}"#).as_bytes());
        assert!(matches!(code("session_expired"), Error::SessionExpired));
        assert!(matches!(code("token_expired"), Error::TokenExpired));
        assert!(matches!(code("token_invalid"), Error::TokenInvalid(_)));
        assert!(matches!(code("unauthorized"), Error::Unauthorized));
        assert!(matches!(refusal(b"not json"), Error::Unauthorized));
    }

    #[test]
    fn answers_need_the_identity_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (USER_ID, "u-1"),
            (USERNAME, "alice"),
            (METHOD, "session"),
            (SESSION_ID, "s-1"),
            (EXPIRES_AT, "1800000000"),
            (CSRF_TOKEN, "csrf"),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let answer = parse_answer(&headers, Duration::from_secs(5)).unwrap();
        assert_eq!(answer.principal.username, "alice");
        assert_eq!(answer.principal.expires_at, Timestamp::from_unix_seconds(1_800_000_000));
        assert!(!format!("{answer:?}").contains("\"csrf\""), "the CSRF token stays out of Debug");
        for missing in [USER_ID, USERNAME, METHOD, SESSION_ID] {
            let mut partial = headers.clone();
            partial.remove(missing);
            assert!(parse_answer(&partial, Duration::from_secs(5)).is_err(), "{missing}");
        }
        headers.insert(HeaderName::from_static(METHOD), HeaderValue::from_static("magic"));
        assert!(parse_answer(&headers, Duration::from_secs(5)).is_err());
    }
}
