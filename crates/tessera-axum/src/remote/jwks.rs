//! The server's public keys, fetched from its JWKS and kept, and access tokens verified
//! against them locally.
//!
//! The JWKS is fetched on the first token, again when a token names a `kid` it lacks (at most
//! once per `jwks_refetch_interval`, however many requests miss at once: they wait for the
//! one fetch in flight and share its result), and when it is older than `jwks_max_age` (if
//! that fetch fails, the keys held stay in use). A token whose `kid` is still unknown is a
//! 401, unless the last fetch failed: then nobody here can tell, and the request fails
//! closed with a 503. Tokens already verified are remembered by digest until their `exp`, so
//! a token used many times pays for one signature check; their times are checked on every use.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::{StatusCode, header};
use tessera::Error;
use tessera::cache::ShardedCache;
use tessera::clock::{Clock, SystemClock};
use tessera::crypto::sha256;
use tessera::token::jwk::MAX_JWKS_BYTES;
use tessera::token::jws::MAX_TOKEN_BYTES;
use tessera::token::{AccessClaims, ClaimRules, JwkSet, JwkVerifyError};

use super::upstream::{Upstream, read_limited};
use super::{RemoteError, RemoteSettings};
use crate::error::ApiError;

/// Where the server publishes its keys (API.md).
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// A JWKS as fetched.
#[derive(Debug, Default)]
struct Fetched {
    keys: JwkSet,
    /// When it was fetched; `None` before the first fetch succeeded.
    at: Option<Instant>,
}

/// The outcome of the last fetch, under the lock that makes fetches one at a time.
#[derive(Debug, Default)]
struct FetchLog {
    last_attempt: Option<Instant>,
    /// Why the last attempt failed, if it did.
    last_error: Option<String>,
}

/// What asking for a fresher JWKS gave.
enum Refetch {
    /// A JWKS newer than the one the caller had.
    Updated(Arc<Fetched>),
    /// Nothing new: the last fetch succeeded too recently to fetch again.
    Unchanged,
    /// The server could not be asked (or answered unusably), now or within the interval.
    Failed(String),
}

/// The cached keys and verified tokens.
#[derive(Debug)]
pub(super) struct KeyCache {
    current: RwLock<Arc<Fetched>>,
    fetch: tokio::sync::Mutex<FetchLog>,
    /// Claims of tokens whose signature, issuer and audience checked out, by digest.
    verified: ShardedCache<Arc<AccessClaims>>,
    rules: ClaimRules,
    refetch_interval: Duration,
    max_age: Duration,
}

impl KeyCache {
    pub(super) fn new(settings: &RemoteSettings) -> Self {
        let mut rules = ClaimRules::new(settings.issuer.clone(), settings.audience.clone());
        rules.leeway = settings.leeway;
        KeyCache {
            current: RwLock::new(Arc::default()),
            fetch: tokio::sync::Mutex::new(FetchLog::default()),
            verified: ShardedCache::new(settings.max_cache_entries),
            rules,
            refetch_interval: settings.jwks_refetch_interval,
            max_age: settings.jwks_max_age,
        }
    }

    fn snapshot(&self) -> Arc<Fetched> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Verifies `token` completely, except for revocation (which only the server knows).
    pub(super) async fn verify(
        &self,
        upstream: &Upstream,
        token: &str,
    ) -> Result<Arc<AccessClaims>, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Error::TokenInvalid("token larger than 8 KiB").into());
        }
        let now = SystemClock.now();
        let digest = sha256(token.as_bytes());
        if let Some(claims) = self.verified.get(&digest) {
            self.rules.check_times(&claims, now)?;
            return Ok(claims);
        }
        // Noted before the keys are read: a JWKS replaced meanwhile keeps this out of the cache.
        let generation = self.verified.generation();
        let mut keys = self.snapshot();
        if keys.at.is_some_and(|at| at.elapsed() >= self.max_age)
            && let Refetch::Updated(fresh) = self.refetch(upstream, &keys).await
        {
            keys = fresh;
        }
        let claims = match keys.keys.verify_signed(token, &self.rules) {
            Ok(claims) => claims,
            Err(JwkVerifyError::Invalid(e)) => return Err(e.into()),
            Err(JwkVerifyError::UnknownKey) => match self.refetch(upstream, &keys).await {
                Refetch::Updated(fresh) => match fresh.keys.verify_signed(token, &self.rules) {
                    Ok(claims) => claims,
                    Err(JwkVerifyError::Invalid(e)) => return Err(e.into()),
                    Err(JwkVerifyError::UnknownKey) => return Err(unknown_key()),
                },
                Refetch::Unchanged => return Err(unknown_key()),
                Refetch::Failed(why) => return Err(ApiError::AuthServerUnavailable(why)),
            },
        };
        self.rules.check_times(&claims, now)?;
        let claims = Arc::new(claims);
        let now_secs = now.unix_seconds();
        self.verified
            .insert_if_unchanged(digest, Arc::clone(&claims), generation, |c| c.exp <= now_secs);
        Ok(claims)
    }

    /// Fetches the JWKS unless someone else did since `seen` was read, or the last attempt
    /// is more recent than the refetch interval. One fetch at a time; waiters share it.
    async fn refetch(&self, upstream: &Upstream, seen: &Arc<Fetched>) -> Refetch {
        let mut log = self.fetch.lock().await;
        let current = self.snapshot();
        if !Arc::ptr_eq(&current, seen) {
            return Refetch::Updated(current);
        }
        if let Some(at) = log.last_attempt
            && at.elapsed() < self.refetch_interval
        {
            return match &log.last_error {
                Some(why) => Refetch::Failed(why.clone()),
                None => Refetch::Unchanged,
            };
        }
        match self.fetch_and_store(upstream, &mut log).await {
            Ok(fresh) => Refetch::Updated(fresh),
            Err(why) => Refetch::Failed(why),
        }
    }

    /// Fetches the JWKS now, whatever the interval (an explicit call, at start say).
    pub(super) async fn fetch_now(&self, upstream: &Upstream) -> Result<usize, RemoteError> {
        let mut log = self.fetch.lock().await;
        let fresh = self.fetch_and_store(upstream, &mut log).await.map_err(RemoteError::Jwks)?;
        Ok(fresh.keys.len())
    }

    async fn fetch_and_store(
        &self,
        upstream: &Upstream,
        log: &mut FetchLog,
    ) -> Result<Arc<Fetched>, String> {
        log.last_attempt = Some(Instant::now());
        match fetch_jwks(upstream).await {
            Ok(keys) => {
                log.last_error = None;
                let fresh = Arc::new(Fetched { keys, at: Some(Instant::now()) });
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
                // Keys may have gone: tokens they verified must be checked again.
                self.verified.remove_where(|_| true);
                Ok(fresh)
            }
            Err(why) => {
                tracing::warn!(error = %why, "fetching the Tessera server's JWKS failed");
                log.last_error = Some(why.clone());
                Err(why)
            }
        }
    }
}

fn unknown_key() -> ApiError {
    Error::TokenInvalid("unknown signing key").into()
}

async fn fetch_jwks(upstream: &Upstream) -> Result<JwkSet, String> {
    let url = format!("{}{JWKS_PATH}", upstream.base());
    let mut response = upstream
        .get(JWKS_PATH)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if response.status() != StatusCode::OK {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    let body =
        read_limited(&mut response, MAX_JWKS_BYTES).await.map_err(|e| format!("GET {url}: {e}"))?;
    let keys = JwkSet::parse(&body).map_err(|e| format!("GET {url}: {e}"))?;
    if keys.skipped() > 0 {
        tracing::debug!(skipped = keys.skipped(), "JWKS keys of a type remote mode cannot use");
    }
    Ok(keys)
}
