//! Persistence behind small traits, one per kind of state: users, sessions, refresh-token
//! families, revocations, the audit log and throttling counters, plus the revocation feed that
//! carries revocations between server instances. The engine only ever talks to these traits;
//! each backend (in-memory for tests, SQLite as the embedded default, PostgreSQL and Redis for
//! many instances) implements them in its own module.
//!
//! Records never hold a usable secret: session ids and refresh tokens appear only as their
//! SHA-256 digest, passwords only as argon2id PHC strings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::audit::{AuditEvent, AuditFilter};
use crate::clock::Timestamp;
use crate::crypto::Digest;
use compact_session::CachedSession;

pub mod cached;
pub mod compact_session;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod feed_message;
pub mod memory;
pub mod memory_throttle;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
pub mod postgres_feed;
#[cfg(feature = "postgres")]
pub mod postgres_keys;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod rows;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqlite")]
pub mod sqlite_feed;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (a username or id that already exists).
    #[error("a record with that key already exists")]
    Conflict,
    /// The backend could not be reached or failed; requests must fail closed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend holds data this version cannot use (a corrupt row, a schema from a newer
    /// version).
    #[error("store data is unusable: {0}")]
    Corrupt(String),
}

/// A registered user.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Opaque id (UUID v7).
    pub id: String,
    /// Lower-cased username, unique.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When the user registered.
    pub created_at: Timestamp,
    /// Since when an administrator has disabled the user (`None`: enabled). A disabled user
    /// cannot log in.
    pub disabled_at: Option<Timestamp>,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// Where a login came from, as recorded for the session list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's IP address as the server saw it.
    pub ip: Option<String>,
    /// The `User-Agent` header, truncated.
    pub user_agent: Option<String>,
}

/// A server-side session. The cookie's secret is stored only as `token_hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the secret session id carried by the cookie.
    pub token_hash: Digest,
    /// Public handle for listing and revoking (never the cookie's value).
    pub sid: String,
    /// The user's id.
    pub user_id: String,
    /// The user's username, kept here so a request needs no user lookup.
    pub username: String,
    /// Login time.
    pub created_at: Timestamp,
    /// Last authenticated use as persisted (renewals are coalesced, see the session manager).
    pub last_seen_at: Timestamp,
    /// Absolute deadline.
    pub expires_at: Timestamp,
    /// Where the login came from.
    pub client: ClientInfo,
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("token_hash", &"[redacted]")
            .field("sid", &self.sid)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("expires_at", &self.expires_at)
            .field("client", &self.client)
            .finish()
    }
}

/// A refresh-token family: the chain of refresh tokens that descend from one token login.
/// Its `sid` is also the `sid` claim of every access token issued from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRecord {
    /// Public handle (the access tokens' `sid`).
    pub sid: String,
    /// The user's id.
    pub user_id: String,
    /// The user's username.
    pub username: String,
    /// Login time.
    pub created_at: Timestamp,
    /// Last successful refresh (or login).
    pub last_used_at: Timestamp,
    /// Absolute deadline of the family.
    pub expires_at: Timestamp,
    /// Where the login came from.
    pub client: ClientInfo,
}

/// One refresh token of a family, stored by digest.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// SHA-256 of the token.
    pub token_hash: Digest,
    /// The family it belongs to.
    pub sid: String,
    /// When it was issued (its idle lifetime counts from here).
    pub issued_at: Timestamp,
    /// When it was exchanged for its successor; `None` while it is the family's live token.
    pub spent_at: Option<Timestamp>,
}

impl fmt::Debug for RefreshTokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenRecord")
            .field("token_hash", &"[redacted]")
            .field("sid", &self.sid)
            .field("issued_at", &self.issued_at)
            .field("spent_at", &self.spent_at)
            .finish()
    }
}

/// Users: registration, lookup, password changes.
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug {
    /// Inserts a new user; [`StoreError::Conflict`] if the username (or id) exists.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// The user with this (lower-cased) username.
    async fn find_user_by_username(&self, username: &str)
    -> Result<Option<UserRecord>, StoreError>;
    /// The user with this id.
    async fn find_user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Replaces the password hash; `false` if the user does not exist.
    async fn update_password_hash(&self, id: &str, password_hash: &str)
    -> Result<bool, StoreError>;
    /// At most `limit` users in username order, starting after the username `after` (`None`:
    /// from the first), for paging through every user.
    async fn list_users(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError>;
    /// Sets (`Some`) or clears (`None`) the user's `disabled_at`; `false` if the user does not
    /// exist.
    async fn set_user_disabled(
        &self,
        id: &str,
        disabled_at: Option<Timestamp>,
    ) -> Result<bool, StoreError>;
    /// Deletes the user record; `false` if it did not exist. Only the record: the user's
    /// sessions, refresh families and audit events are other stores' (and the caller's) to end.
    async fn delete_user(&self, id: &str) -> Result<bool, StoreError>;
    /// Answers if the backend is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Server-side sessions, keyed by the digest of their secret id.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug {
    /// Stores a new session.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The session whose secret id has this digest.
    async fn find_session(&self, token_hash: &Digest) -> Result<Option<SessionRecord>, StoreError>;
    /// The session whose secret id has this digest if this process holds a copy of it in
    /// memory (a cache), without waiting: the per-request check asks this first and calls
    /// [`find_session`](SessionStore::find_session) only on `None`. The default: `None`.
    fn cached_session(&self, _token_hash: &Digest) -> Option<Arc<CachedSession>> {
        None
    }
    /// Moves `last_seen_at` forward (never back) for each listed session that still exists.
    async fn touch_sessions(&self, touches: &[(Digest, Timestamp)]) -> Result<(), StoreError>;
    /// Deletes one session by digest; returns it if it existed.
    async fn delete_session(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Deletes the session with public handle `sid` if it belongs to `user_id`.
    async fn delete_user_session(
        &self,
        user_id: &str,
        sid: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// Every session of a user.
    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError>;
    /// Deletes every session of a user except `keep_sid`; returns the deleted digests.
    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
    ) -> Result<Vec<Digest>, StoreError>;
    /// Drops any copy this process keeps outside the store (a cache) of the session whose
    /// public handle is `id`, or of every session of the user whose id is `id`: another
    /// process ended them. The default does nothing: only caching wrappers keep copies.
    fn forget_cached(&self, _id: &str) {}
    /// Deletes sessions past `expires_at`, or last seen at or before `idle_cutoff`.
    async fn delete_expired_sessions(
        &self,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Answers if the backend is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// What happened to a rotation attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now spent and the successor stored.
    Rotated,
    /// The token had already been spent (a concurrent or repeated refresh); nothing changed.
    AlreadySpent,
}

/// Refresh-token families and their tokens.
#[async_trait]
pub trait RefreshStore: Send + Sync + fmt::Debug {
    /// Stores a new family with its first token.
    async fn create_family(
        &self,
        family: &FamilyRecord,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError>;
    /// The token with this digest and its family.
    async fn find_refresh_token(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<(RefreshTokenRecord, FamilyRecord)>, StoreError>;
    /// Atomically: if `spent_hash` is unspent, marks it spent at `now`, stores `successor`
    /// and sets the family's `last_used_at` to `now`.
    async fn rotate_refresh_token(
        &self,
        spent_hash: &Digest,
        successor: &RefreshTokenRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError>;
    /// The family with this handle.
    async fn find_family(&self, sid: &str) -> Result<Option<FamilyRecord>, StoreError>;
    /// Deletes a family and all its tokens and records `sid` as revoked until `revoke_until`,
    /// both in one transaction (a crash cannot leave a revoked family refreshable, nor a
    /// deleted one unrevoked); returns the family if it existed. With `user_id`, only a family
    /// of that user is deleted and revoked; without, the revocation is recorded even if the
    /// family is already gone (its access tokens may still be out there).
    async fn delete_family(
        &self,
        sid: &str,
        user_id: Option<&str>,
        revoke_until: Timestamp,
    ) -> Result<Option<FamilyRecord>, StoreError>;
    /// Every family of a user.
    async fn list_user_families(&self, user_id: &str) -> Result<Vec<FamilyRecord>, StoreError>;
    /// Deletes every family of a user except `keep_sid` and records each as revoked until
    /// `revoke_until`, in one transaction; returns the deleted handles.
    async fn delete_user_families(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
        revoke_until: Timestamp,
    ) -> Result<Vec<String>, StoreError>;
    /// Deletes families past `expires_at`, or whose last use is at or before `idle_cutoff`.
    async fn delete_expired_families(
        &self,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError>;
}

/// Revoked `sid`s, kept until the last access token that could carry them has expired.
#[async_trait]
pub trait RevocationStore: Send + Sync + fmt::Debug {
    /// Records that tokens with `sid` are revoked until `until` (keeps the later deadline if
    /// the `sid` is already there).
    async fn insert_revocation(&self, sid: &str, until: Timestamp) -> Result<(), StoreError>;
    /// Whether `sid` is revoked at `now` (the check tokens fall back on while the revocation
    /// feed is down).
    async fn is_revoked(&self, sid: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Every revocation still in force at `now`.
    async fn active_revocations(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError>;
    /// Forgets revocations that ended before `now`.
    async fn delete_expired_revocations(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// The audit log: append-only, read back by filter, trimmed by age.
#[async_trait]
pub trait AuditStore: Send + Sync + fmt::Debug {
    /// Appends one event.
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// The newest events passing `filter`, newest first, at most `filter.limit`.
    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
    /// Deletes events older than `cutoff`.
    async fn delete_audit_before(&self, cutoff: Timestamp) -> Result<u64, StoreError>;
}

/// How a login attempt admitted by [`ThrottleStore::begin_attempt`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Wrong password or unknown user: one more failure for the account.
    Failed,
    /// The password was right: the account's failures are forgiven.
    Succeeded,
    /// The check itself failed (a store error): counts as nothing.
    Abandoned,
}

/// Throttling counters: sliding logs of recent events and per-account login failures.
///
/// The policy (which keys, which limits) is [`LoginLimiter`](crate::limit::LoginLimiter)'s;
/// a backend only keeps counts. Times come from the engine's clock, so every instance sharing
/// a backend counts in one time line.
#[async_trait]
pub trait ThrottleStore: Send + Sync + fmt::Debug {
    /// Records one event for `key` at `now` if fewer than `limit` were recorded within
    /// `window` before it; otherwise records nothing and answers how long until the oldest of
    /// them leaves the window.
    async fn take(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError>;
    /// Admits login attempt `attempt` for `account` unless the account has `max_failures`
    /// failures within `window`, counting attempts still in flight as possible failures;
    /// refused, answers how long to wait.
    async fn begin_attempt(
        &self,
        account: &str,
        attempt: &str,
        max_failures: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError>;
    /// Ends an attempt admitted by [`begin_attempt`](Self::begin_attempt).
    async fn end_attempt(
        &self,
        account: &str,
        attempt: &str,
        outcome: AttemptOutcome,
        max_failures: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Forgets state that no longer affects any decision at `now`: logs past their window,
    /// accounts with nothing in flight and no failure within `failure_window` (backends with
    /// expiring keys may do nothing).
    async fn sweep(&self, failure_window: Duration, now: Timestamp) -> Result<(), StoreError>;
    /// Answers if the backend is reachable.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A bus that carries revocations between the server instances sharing the stores, so an
/// access token revoked on one instance is refused by all of them at once.
///
/// The feed is only a fast path: revocations are stored durably by the [`RevocationStore`],
/// and a subscriber reloads them from there after every (re)connection, so a missed message
/// never leaves a revoked token alive.
#[async_trait]
pub trait RevocationFeed: Send + Sync + fmt::Debug {
    /// Announces that tokens with `sid` are revoked until `until`.
    async fn publish(&self, sid: &str, until: Timestamp) -> Result<(), StoreError>;
    /// Opens a new subscription.
    async fn subscribe(&self) -> Result<Box<dyn FeedSubscription>, StoreError>;
}

/// One live subscription to a [`RevocationFeed`].
#[async_trait]
pub trait FeedSubscription: Send + fmt::Debug {
    /// The next revocation announced by any instance (this one included). An error means the
    /// subscription is lost and messages may have been missed; implementations must also
    /// notice a connection that died silently (by pinging) and report it within a few
    /// seconds.
    async fn next(&mut self) -> Result<(String, Timestamp), StoreError>;
}

/// The set of stores an [`Authenticator`](crate::Authenticator) works on.
#[derive(Debug, Clone)]
pub struct Stores {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Refresh-token families.
    pub refresh: Arc<dyn RefreshStore>,
    /// Revocations.
    pub revocations: Arc<dyn RevocationStore>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Throttling counters.
    pub throttle: Arc<dyn ThrottleStore>,
    /// The revocation feed between instances; `None` for a single instance.
    pub feed: Option<Arc<dyn RevocationFeed>>,
}

impl Stores {
    /// Every kind of state in one backend, with throttling counters in this process's memory
    /// and no revocation feed.
    pub fn single<S>(store: Arc<S>) -> Self
    where
        S: UserStore + SessionStore + RefreshStore + RevocationStore + AuditStore + 'static,
    {
        Stores {
            users: store.clone(),
            sessions: store.clone(),
            refresh: store.clone(),
            revocations: store.clone(),
            audit: store,
            throttle: Arc::new(memory_throttle::MemoryThrottle::default()),
            feed: None,
        }
    }

    /// Wraps the session store in an in-process cache of about `capacity` sessions (see
    /// [`cached::CachedSessionStore`]: only when this process is the store's only server;
    /// changes by other processes reach it through the revocation feed).
    pub fn with_session_cache(mut self, capacity: usize) -> Self {
        self.sessions = Arc::new(cached::CachedSessionStore::new(self.sessions, capacity));
        self
    }

    /// In-memory stores (nothing survives the process): for tests and experiments.
    pub fn memory() -> Self {
        Self::single(Arc::new(memory::MemoryStore::default()))
    }

    /// Everything in one SQLite file at `path` (created if missing, WAL mode), with the
    /// in-process session cache the server uses (100,000 sessions): the embedded default, for
    /// an application that runs as one process.
    #[cfg(feature = "sqlite")]
    pub async fn sqlite(path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        let store = sqlite::SqliteStore::open(path.as_ref()).await?;
        Ok(Self::single(Arc::new(store)).with_session_cache(DEFAULT_SESSION_CACHE))
    }

    /// Everything in the PostgreSQL database at `url` (tables created if missing), with the
    /// revocation feed over `LISTEN`/`NOTIFY`, so any number of instances can share it. No
    /// session cache: other instances write the same sessions.
    #[cfg(feature = "postgres")]
    pub async fn postgres(url: &str) -> Result<Self, StoreError> {
        let store = Arc::new(postgres::PostgresStore::connect(url).await?);
        let feed: Arc<dyn RevocationFeed> = store.clone();
        Ok(Stores { feed: Some(feed), ..Self::single(store) })
    }

    /// Moves sessions, throttling counters and the revocation feed to the Redis at `url`
    /// (users, refresh families, revocations and the audit log stay where they are): what
    /// several instances behind one load balancer share. Drops any session cache.
    #[cfg(feature = "redis")]
    pub async fn with_redis(
        self,
        url: &str,
        options: redis::RedisOptions,
    ) -> Result<Self, StoreError> {
        let redis = Arc::new(redis::RedisStore::connect(url, options).await?);
        Ok(Stores { sessions: redis.clone(), throttle: redis.clone(), feed: Some(redis), ..self })
    }
}

/// How many sessions [`Stores::sqlite`] keeps in its in-process cache (~200 bytes each).
#[cfg(feature = "sqlite")]
pub const DEFAULT_SESSION_CACHE: usize = 100_000;
