//! Server-side sessions: creation at login, the per-request check, idle and absolute lifetimes,
//! renewal, listing and deletion.
//!
//! The cookie carries a 256-bit random id; the store sees only its SHA-256. Renewal (moving
//! the idle deadline on use) is coalesced: a request records "seen now" in memory only when the
//! last recorded use is older than a small granularity, and a background flush writes the batch
//! in one transaction. Reads merge the pending value, so deadlines stay exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;

use crate::cache::RandomKeys;
use crate::clock::{Clock, Timestamp};
use crate::crypto::{Digest, is_secret_form, random_secret, sha256};
use crate::error::Error;
use crate::ids;
use crate::settings::SessionSettings;
use crate::store::compact_session::CachedSession;
use crate::store::{ClientInfo, SessionRecord, SessionStore, StoreError};

/// Renewals written per store call by [`SessionManager::flush_renewals`].
pub const FLUSH_CHUNK: usize = 1_000;

/// A session just created: the secret for the cookie, and the record.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value (shown once; only its digest is stored).
    pub secret: SecretString,
    /// The session as stored.
    pub session: ActiveSession,
}

/// A live session as a request sees it.
///
/// The per-request check builds nothing it does not need: the stored session is shared with
/// the session cache, and the full [`SessionRecord`] is built only when asked for.
#[derive(Clone)]
pub struct ActiveSession {
    token_hash: Digest,
    stored: Arc<CachedSession>,
    /// `last_seen_at` including pending renewals.
    last_seen_at: Timestamp,
    /// When the session ends if unused (never after its absolute deadline).
    pub idle_expires_at: Timestamp,
}

impl ActiveSession {
    /// The stored record, with `last_seen_at` including pending renewals.
    pub fn record(&self) -> SessionRecord {
        let mut record = self.stored.record(self.token_hash);
        record.last_seen_at = self.last_seen_at;
        record
    }

    /// The digest of the session's secret id (what the store is keyed by).
    pub fn token_hash(&self) -> &Digest {
        &self.token_hash
    }

    /// The session's public handle.
    pub fn sid(&self) -> String {
        self.stored.sid()
    }

    /// The id of the session's user.
    pub fn user_id(&self) -> String {
        self.stored.user_id()
    }

    /// The username of the session's user.
    pub fn username(&self) -> &str {
        self.stored.username()
    }

    /// Last use, pending renewals included.
    pub fn last_seen_at(&self) -> Timestamp {
        self.last_seen_at
    }

    /// The absolute deadline.
    pub fn expires_at(&self) -> Timestamp {
        self.stored.expires_at()
    }
}

impl std::fmt::Debug for ActiveSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The record's own `Debug` redacts the digest.
        f.debug_struct("ActiveSession")
            .field("record", &self.record())
            .field("idle_expires_at", &self.idle_expires_at)
            .finish()
    }
}

/// Creates, checks, renews and ends sessions.
pub struct SessionManager {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    settings: SessionSettings,
    /// Uses newer than the store's `last_seen_at`, not yet written.
    pending: Mutex<HashMap<Digest, Timestamp, RandomKeys>>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SessionManager {
    /// Sessions kept in `store`.
    pub fn new(
        store: Arc<dyn SessionStore>,
        settings: SessionSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        SessionManager { store, clock, settings, pending: Mutex::new(HashMap::default()) }
    }

    /// The store behind the manager.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// How stale a recorded use may get before a request records a new one: 1/60 of the idle
    /// timeout, between 1 s and 60 s. Deadlines remain exact to within this.
    fn renew_granularity(&self) -> Duration {
        (self.settings.idle_timeout / 60).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Starts a session for a user who just logged in.
    pub async fn create(
        &self,
        user_id: &str,
        username: &str,
        client: ClientInfo,
    ) -> Result<NewSession, Error> {
        let now = self.clock.now();
        let secret = random_secret()?;
        let record = SessionRecord {
            token_hash: sha256(secret.as_bytes()),
            sid: ids::uuid_v7(now)?,
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus(self.settings.absolute_lifetime),
            client,
        };
        self.store.insert_session(&record).await?;
        let session = self.active_record(record);
        Ok(NewSession { secret: secret.into(), session })
    }

    /// The digest of a cookie value, or `None` if it cannot be a session id.
    pub fn digest(cookie_value: &str) -> Option<Digest> {
        is_secret_form(cookie_value).then(|| sha256(cookie_value.as_bytes()))
    }

    /// Checks a cookie value and renews the session's idle deadline.
    ///
    /// Unknown or malformed ids are [`Error::Unauthorized`]; a session past a deadline is
    /// deleted and reported as [`Error::SessionExpired`].
    pub async fn authenticate(&self, cookie_value: &str) -> Result<ActiveSession, Error> {
        let digest = Self::digest(cookie_value).ok_or(Error::Unauthorized)?;
        let stored = match self.store.cached_session(&digest) {
            Some(stored) => stored,
            None => {
                let record = self.store.find_session(&digest).await?.ok_or(Error::Unauthorized)?;
                Arc::new(CachedSession::Full(Box::new(record)))
            }
        };
        let now = self.clock.now();
        let mut session = self.active(digest, stored);
        if now >= session.idle_expires_at {
            self.delete(&digest).await?;
            return Err(Error::SessionExpired);
        }
        if now.since(session.last_seen_at) >= self.renew_granularity() {
            self.lock_pending().insert(digest, now);
            session.last_seen_at = now;
            session.idle_expires_at = self.idle_deadline(now, session.expires_at());
        }
        Ok(session)
    }

    /// Deletes the session with this digest; returns it if it existed.
    pub async fn delete(&self, digest: &Digest) -> Result<Option<SessionRecord>, Error> {
        self.lock_pending().remove(digest);
        Ok(self.store.delete_session(digest).await?)
    }

    /// Deletes the user's session with public handle `sid`.
    pub async fn delete_for_user(
        &self,
        user_id: &str,
        sid: &str,
    ) -> Result<Option<SessionRecord>, Error> {
        let deleted = self.store.delete_user_session(user_id, sid).await?;
        if let Some(record) = &deleted {
            self.lock_pending().remove(&record.token_hash);
        }
        Ok(deleted)
    }

    /// Deletes every session of the user except `keep_sid`; returns how many.
    pub async fn delete_all_for_user(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
    ) -> Result<usize, Error> {
        let deleted = self.store.delete_user_sessions(user_id, keep_sid).await?;
        let mut pending = self.lock_pending();
        for digest in &deleted {
            pending.remove(digest);
        }
        Ok(deleted.len())
    }

    /// The user's live sessions, oldest first.
    pub async fn list(&self, user_id: &str) -> Result<Vec<ActiveSession>, Error> {
        let now = self.clock.now();
        let records = self.store.list_user_sessions(user_id).await?;
        Ok(records
            .into_iter()
            .map(|r| self.active_record(r))
            .filter(|s| s.idle_expires_at > now)
            .collect())
    }

    /// Writes pending renewals to the store, [`FLUSH_CHUNK`] per write, so a flush after a
    /// burst of a million sessions never holds the store's write lock for long. On failure the
    /// renewals not yet written stay pending for the next try.
    pub async fn flush_renewals(&self) -> Result<usize, StoreError> {
        // `take`, not `drain`: a burst of renewals must not leave its peak capacity allocated.
        let batch: Vec<(Digest, Timestamp)> =
            std::mem::take(&mut *self.lock_pending()).into_iter().collect();
        let mut written = 0;
        for chunk in batch.chunks(FLUSH_CHUNK) {
            if let Err(e) = self.store.touch_sessions(chunk).await {
                let mut pending = self.lock_pending();
                for (digest, seen) in &batch[written..] {
                    let entry = pending.entry(*digest).or_insert(*seen);
                    *entry = (*entry).max(*seen);
                }
                return Err(e);
            }
            written += chunk.len();
        }
        Ok(written)
    }

    /// Deletes sessions past either deadline from the store.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        // Pending renewals must land first, or a session in use could look idle.
        self.flush_renewals().await?;
        self.store.delete_expired_sessions(now, now.minus(self.settings.idle_timeout)).await
    }

    /// The session with pending renewals merged, and its idle deadline.
    fn active(&self, token_hash: Digest, stored: Arc<CachedSession>) -> ActiveSession {
        let mut last_seen_at = stored.last_seen_at();
        if let Some(seen) = self.lock_pending().get(&token_hash) {
            last_seen_at = last_seen_at.max(*seen);
        }
        let idle_expires_at = self.idle_deadline(last_seen_at, stored.expires_at());
        ActiveSession { token_hash, stored, last_seen_at, idle_expires_at }
    }

    fn active_record(&self, record: SessionRecord) -> ActiveSession {
        self.active(record.token_hash, Arc::new(CachedSession::Full(Box::new(record))))
    }

    fn idle_deadline(&self, last_seen_at: Timestamp, expires_at: Timestamp) -> Timestamp {
        last_seen_at.plus(self.settings.idle_timeout).min(expires_at)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Timestamp, RandomKeys>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;

    const MIN: Duration = Duration::from_secs(60);

    fn setup() -> (SessionManager, Arc<ManualClock>, Arc<MemoryStore>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000)));
        let store = Arc::new(MemoryStore::default());
        let manager = SessionManager::new(store.clone(), SessionSettings::default(), clock.clone());
        (manager, clock, store)
    }

    #[tokio::test]
    async fn creates_a_session_whose_store_never_sees_the_id() {
        let (manager, clock, store) = setup();
        let new = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        let id = new.secret.expose_secret();
        assert_eq!(id.len(), 43);
        assert_eq!(new.session.record().expires_at, clock.now().plus(12 * 60 * MIN));
        assert_eq!(new.session.idle_expires_at, clock.now().plus(30 * MIN));
        assert_ne!(new.session.record().sid, id.to_string(), "the public handle is not the secret");
        let stored = store.find_session(&sha256(id.as_bytes())).await.unwrap().unwrap();
        assert_eq!(stored.token_hash, sha256(id.as_bytes()));
        assert!(!format!("{stored:?}").contains(id));
    }

    #[tokio::test]
    async fn use_renews_the_idle_deadline() {
        let (manager, clock, _) = setup();
        let new = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        clock.advance(29 * MIN);
        let s = manager.authenticate(new.secret.expose_secret()).await.unwrap();
        assert_eq!(s.idle_expires_at, clock.now().plus(30 * MIN));
        clock.advance(29 * MIN);
        assert!(
            manager.authenticate(new.secret.expose_secret()).await.is_ok(),
            "58 minutes in, used twice"
        );
    }

    #[tokio::test]
    async fn idle_sessions_expire_and_are_deleted() {
        let (manager, clock, store) = setup();
        let new = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        clock.advance(30 * MIN);
        assert!(matches!(
            manager.authenticate(new.secret.expose_secret()).await,
            Err(Error::SessionExpired)
        ));
        assert!(store.list_user_sessions("u1").await.unwrap().is_empty());
        assert!(matches!(
            manager.authenticate(new.secret.expose_secret()).await,
            Err(Error::Unauthorized)
        ));
    }

    #[tokio::test]
    async fn the_absolute_lifetime_ends_even_a_busy_session() {
        let (manager, clock, _) = setup();
        let new = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        for _ in 0..(12 * 60 / 20 - 1) {
            clock.advance(20 * MIN);
            manager.authenticate(new.secret.expose_secret()).await.unwrap();
        }
        let s = manager.authenticate(new.secret.expose_secret()).await.unwrap();
        assert_eq!(s.idle_expires_at, s.expires_at(), "the idle deadline is capped");
        clock.advance(20 * MIN);
        assert!(matches!(
            manager.authenticate(new.secret.expose_secret()).await,
            Err(Error::SessionExpired)
        ));
    }

    #[tokio::test]
    async fn renewals_are_coalesced_and_flushed() {
        let (manager, clock, store) = setup();
        let new = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        let digest = sha256(new.secret.expose_secret().as_bytes());
        manager.authenticate(new.secret.expose_secret()).await.unwrap();
        assert_eq!(manager.lock_pending().len(), 0, "a use right after login records nothing");
        clock.advance(Duration::from_secs(45));
        manager.authenticate(new.secret.expose_secret()).await.unwrap();
        assert_eq!(manager.lock_pending().get(&digest), Some(&clock.now()));
        let stored = store.find_session(&digest).await.unwrap().unwrap();
        assert!(stored.last_seen_at < clock.now(), "not written yet");
        assert_eq!(manager.flush_renewals().await.unwrap(), 1);
        let stored = store.find_session(&digest).await.unwrap().unwrap();
        assert_eq!(stored.last_seen_at, clock.now());
        assert_eq!(manager.flush_renewals().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn malformed_and_unknown_ids_are_unauthorized() {
        let (manager, _, _) = setup();
        for bad in ["", "x", &"A".repeat(43), &"*".repeat(43), &"A".repeat(44)] {
            let result = manager.authenticate(bad).await;
            assert!(matches!(result, Err(Error::Unauthorized)), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn lists_and_deletes_per_user() {
        let (manager, clock, _) = setup();
        let a = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        clock.advance(MIN);
        let b = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        let other = manager.create("u2", "bob", ClientInfo::default()).await.unwrap();
        let list = manager.list("u1").await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].record().sid, a.session.record().sid, "oldest first");
        assert!(
            manager.delete_for_user("u1", &other.session.record().sid).await.unwrap().is_none()
        );
        assert_eq!(
            manager.delete_all_for_user("u1", Some(&b.session.record().sid)).await.unwrap(),
            1
        );
        assert!(manager.authenticate(b.secret.expose_secret()).await.is_ok());
        assert!(manager.authenticate(a.secret.expose_secret()).await.is_err());
        assert!(manager.authenticate(other.secret.expose_secret()).await.is_ok());
    }

    #[tokio::test]
    async fn purge_removes_expired_sessions_only() {
        let (manager, clock, store) = setup();
        let old = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        clock.advance(20 * MIN);
        let fresh = manager.create("u1", "alice", ClientInfo::default()).await.unwrap();
        clock.advance(15 * MIN);
        assert_eq!(manager.purge_expired().await.unwrap(), 1);
        let left = store.list_user_sessions("u1").await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].sid, fresh.session.record().sid);
        let _ = old;
    }
}
