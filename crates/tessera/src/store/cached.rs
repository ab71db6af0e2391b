//! [`CachedSessionStore`]: a session store wrapped with an in-process cache, so the per-request
//! session check is a hash-map lookup instead of a database read.
//!
//! Every write goes through to the backing store first and then updates or evicts the cached
//! copy, so this process never serves a session it has deleted: logout stays instant. Use it
//! when this process is the backing store's only server (the embedded SQLite default): another
//! server's logout would not reach this cache. Sessions ended by another process on the same
//! store (the `tessera` admin commands) reach it through the revocation feed, whose follower
//! calls [`SessionStore::forget_cached`] (see
//! [`Authenticator::follow_revocation_feed`](crate::Authenticator::follow_revocation_feed)).
//!
//! Sessions are cached in their compact form ([`CachedSession`], behind an `Arc` so the map's
//! slots stay small): about 240 bytes per cached session at a million, map slot included.

use std::sync::Arc;

use async_trait::async_trait;

use super::compact_session::{CachedSession, UserAgents};
use super::{SessionRecord, SessionStore, StoreError};
use crate::cache::ShardedCache;
use crate::clock::Timestamp;
use crate::crypto::Digest;

/// A caching wrapper around a [`SessionStore`].
#[derive(Debug)]
pub struct CachedSessionStore {
    inner: Arc<dyn SessionStore>,
    cache: ShardedCache<Arc<CachedSession>>,
    agents: UserAgents,
}

impl CachedSessionStore {
    /// Caches up to about `capacity` sessions of `inner`.
    pub fn new(inner: Arc<dyn SessionStore>, capacity: usize) -> Self {
        CachedSessionStore {
            inner,
            cache: ShardedCache::new(capacity),
            agents: UserAgents::default(),
        }
    }

    /// How many sessions the cache holds now.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn cached_form(&self, session: &SessionRecord) -> Arc<CachedSession> {
        Arc::new(CachedSession::new(session, &self.agents))
    }
}

#[async_trait]
impl SessionStore for CachedSessionStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        self.inner.insert_session(session).await?;
        self.cache.insert(session.token_hash, self.cached_form(session), |_| false);
        Ok(())
    }

    async fn find_session(&self, token_hash: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        if let Some(session) = self.cache.get(token_hash) {
            return Ok(Some(session.record(*token_hash)));
        }
        // A delete racing this read must not leave the deleted session cached.
        let generation = self.cache.generation();
        let found = self.inner.find_session(token_hash).await?;
        if let Some(session) = &found {
            let cached = self.cached_form(session);
            self.cache.insert_if_unchanged(*token_hash, cached, generation, |_| false);
        }
        Ok(found)
    }

    fn cached_session(&self, token_hash: &Digest) -> Option<Arc<CachedSession>> {
        self.cache.get(token_hash)
    }

    async fn touch_sessions(&self, touches: &[(Digest, Timestamp)]) -> Result<(), StoreError> {
        self.inner.touch_sessions(touches).await?;
        for (hash, seen) in touches {
            self.cache.update(hash, |s| {
                if s.last_seen_at() < *seen {
                    Arc::make_mut(s).renew(*seen);
                }
            });
        }
        Ok(())
    }

    async fn delete_session(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let deleted = self.inner.delete_session(token_hash).await;
        self.cache.remove(token_hash);
        deleted
    }

    async fn delete_user_session(
        &self,
        user_id: &str,
        sid: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let deleted = self.inner.delete_user_session(user_id, sid).await;
        match &deleted {
            Ok(Some(session)) => self.cache.remove(&session.token_hash),
            Ok(None) => {}
            // Unknown outcome: make sure this process cannot keep serving it.
            Err(_) => self.cache.remove_where(|s| s.is(user_id, Some(sid))),
        }
        deleted
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_user_sessions(user_id).await
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
    ) -> Result<Vec<Digest>, StoreError> {
        let deleted = self.inner.delete_user_sessions(user_id, keep_sid).await;
        match &deleted {
            Ok(digests) => digests.iter().for_each(|d| self.cache.remove(d)),
            Err(_) => self.cache.remove_where(|s| {
                s.is(user_id, None) && keep_sid.is_none_or(|keep| !s.is(user_id, Some(keep)))
            }),
        }
        deleted
    }

    fn forget_cached(&self, id: &str) {
        // A scan of the whole cache (a few milliseconds at 100,000 sessions), once per message
        // of the revocation feed.
        let parsed = super::compact_session::parse_uuid(id);
        self.cache.remove_where(|s| s.is_named_by(id, parsed));
    }

    async fn delete_expired_sessions(
        &self,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError> {
        let deleted = self.inner.delete_expired_sessions(now, idle_cutoff).await?;
        self.cache.remove_where(|s| s.expires_at() <= now || s.last_seen_at() <= idle_cutoff);
        Ok(deleted)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
}
