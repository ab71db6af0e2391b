//! The engine's integration tests (one binary): the store suite, written once and run against
//! every backend, and end-to-end rules of the [`Authenticator`] with a fake clock over a real
//! SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tessera::audit::{AuditEvent, AuditFilter, AuditKind, AuditOutcome};
use tessera::clock::{Clock, ManualClock, Timestamp};
use tessera::password::Argon2Params;
use tessera::store::cached::CachedSessionStore;
use tessera::store::memory::MemoryStore;
use tessera::store::memory_throttle::MemoryThrottle;
use tessera::store::postgres::PostgresStore;
use tessera::store::postgres_feed;
use tessera::store::postgres_keys::SealedKeysError;
use tessera::store::redis::{RedisOptions, RedisStore, Topology};
use tessera::store::sqlite::SqliteStore;
use tessera::store::{
    AttemptOutcome, AuditStore, ClientInfo, FamilyRecord, FeedSubscription, RefreshStore,
    RefreshTokenRecord, RevocationFeed, RevocationStore, Rotation, SessionRecord, SessionStore,
    StoreError, Stores, ThrottleStore, UserRecord, UserStore,
};
use tessera::token::{Algorithm, KeySet};
use tessera::{
    AuthMethod, Authenticator, Error, KeyEncryptionKey, ServerSecret, Settings, SystemClock,
};

const T0: i64 = 1_800_000_000_000;

fn ts(offset_secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + offset_secs * 1000)
}

fn digest(n: u8) -> [u8; 32] {
    [n; 32]
}

fn user(id: &str, name: &str) -> UserRecord {
    UserRecord {
        id: id.into(),
        username: name.into(),
        password_hash: "$argon2id$x".into(),
        created_at: ts(0),
        disabled_at: None,
    }
}

fn session(n: u8, user_id: &str, created: i64) -> SessionRecord {
    SessionRecord {
        token_hash: digest(n),
        sid: format!("s{n}"),
        user_id: user_id.into(),
        username: "alice".into(),
        created_at: ts(created),
        last_seen_at: ts(created),
        expires_at: ts(created + 3600),
        client: ClientInfo { ip: Some("192.0.2.1".into()), user_agent: Some("test".into()) },
    }
}

fn family(sid: &str, user_id: &str) -> FamilyRecord {
    FamilyRecord {
        sid: sid.into(),
        user_id: user_id.into(),
        username: "alice".into(),
        created_at: ts(0),
        last_used_at: ts(0),
        expires_at: ts(86_400),
        client: ClientInfo::default(),
    }
}

fn token(n: u8, sid: &str, issued: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: digest(n),
        sid: sid.into(),
        issued_at: ts(issued),
        spent_at: None,
    }
}

/// The store contract, written once for every backend.
async fn store_suite<S>(store: Arc<S>)
where
    S: UserStore + SessionStore + RefreshStore + RevocationStore + AuditStore,
{
    user_suite(&*store).await;
    session_suite(&*store, Expiry::Swept).await;
    refresh_suite(&*store).await;
    // Deleting families recorded their revocations in the same transaction (only the ones
    // actually deleted: the refused attempt on another user's family revoked nothing).
    let mut active = store.active_revocations(ts(0)).await.unwrap();
    active.sort();
    assert_eq!(active, vec![("f1".to_string(), ts(60)), ("f2".to_string(), ts(60))]);
    assert_eq!(store.delete_expired_revocations(ts(60)).await.unwrap(), 2);
    revocation_suite(&*store).await;
    audit_suite(&*store).await;
}

fn audit_event(at: i64, kind: AuditKind, username: &str, ip: &str) -> AuditEvent {
    let client = ClientInfo { ip: Some(ip.into()), user_agent: Some("ua".into()) };
    let mut event = if kind == AuditKind::Login && username == "mallory" {
        AuditEvent::failure(kind, ts(at), &client, "invalid_credentials")
    } else {
        AuditEvent::success(kind, ts(at), &client)
    };
    event.user_id = Some(format!("id-{username}"));
    event.username = Some(username.into());
    event.method = Some(AuthMethod::Session);
    event.sid = Some(format!("sid-{at}"));
    event
}

async fn audit_suite(store: &dyn AuditStore) {
    // The audit log: append, read back newest first through every filter, trim by age.
    let events = [
        audit_event(1, AuditKind::Login, "alice", "192.0.2.1"),
        audit_event(2, AuditKind::Login, "mallory", "198.51.100.7"),
        audit_event(2, AuditKind::Refresh, "alice", "192.0.2.1"),
        audit_event(3, AuditKind::Logout, "alice", "192.0.2.2"),
    ];
    for event in &events {
        store.append_audit(event).await.unwrap();
    }
    let query = |f: AuditFilter| async move { store.query_audit(&f).await.unwrap() };
    let all = query(AuditFilter::default()).await;
    // Newest first; equal times in reverse order of arrival.
    assert_eq!(
        all,
        vec![events[3].clone(), events[2].clone(), events[1].clone(), events[0].clone()]
    );
    let alice = query(AuditFilter { user: Some("alice".into()), ..Default::default() }).await;
    assert_eq!(alice.len(), 3);
    let by_id = query(AuditFilter { user: Some("id-mallory".into()), ..Default::default() }).await;
    assert_eq!(by_id, vec![events[1].clone()]);
    let failures =
        query(AuditFilter { outcome: Some(AuditOutcome::Failure), ..Default::default() }).await;
    assert_eq!(failures, vec![events[1].clone()]);
    let logins = query(AuditFilter { kind: Some(AuditKind::Login), ..Default::default() }).await;
    assert_eq!(logins.len(), 2);
    let ip = query(AuditFilter { ip: Some("192.0.2.2".into()), ..Default::default() }).await;
    assert_eq!(ip, vec![events[3].clone()]);
    let window =
        query(AuditFilter { since: Some(ts(2)), until: Some(ts(3)), ..Default::default() }).await;
    assert_eq!(window, vec![events[2].clone(), events[1].clone()]);
    let newest = query(AuditFilter { limit: 1, ..Default::default() }).await;
    assert_eq!(newest, vec![events[3].clone()]);
    // A filter value is data, never SQL.
    let odd = query(AuditFilter { user: Some("' OR 1=1 --".into()), ..Default::default() }).await;
    assert!(odd.is_empty());
    assert_eq!(store.delete_audit_before(ts(2)).await.unwrap(), 1);
    assert_eq!(query(AuditFilter::default()).await.len(), 3);
}

async fn user_suite(store: &dyn UserStore) {
    // Users: unique usernames, lookups, password updates.
    store.insert_user(&user("u1", "alice")).await.unwrap();
    assert!(matches!(store.insert_user(&user("u2", "alice")).await, Err(StoreError::Conflict)));
    assert!(matches!(store.insert_user(&user("u1", "bob")).await, Err(StoreError::Conflict)));
    store.insert_user(&user("u2", "bob")).await.unwrap();
    assert_eq!(store.find_user_by_username("alice").await.unwrap().unwrap().id, "u1");
    assert_eq!(store.find_user_by_id("u2").await.unwrap().unwrap().username, "bob");
    assert!(store.find_user_by_username("carol").await.unwrap().is_none());
    assert!(store.update_password_hash("u1", "$argon2id$new").await.unwrap());
    assert!(!store.update_password_hash("nobody", "x").await.unwrap());
    assert_eq!(store.find_user_by_id("u1").await.unwrap().unwrap().password_hash, "$argon2id$new");
    admin::user_admin_suite(store).await;
    store.ping().await.unwrap();
}

/// How a session store gets rid of expired sessions.
#[derive(PartialEq)]
enum Expiry {
    /// `delete_expired_sessions` deletes them.
    Swept,
    /// The backend expires them by itself (Redis key TTLs, tested apart).
    ByItself,
}

async fn session_suite(store: &dyn SessionStore, expiry: Expiry) {
    // Sessions: by digest, touch only moves forward, per-user listing and deletion.
    store.insert_session(&session(1, "u1", 0)).await.unwrap();
    store.insert_session(&session(2, "u1", 10)).await.unwrap();
    store.insert_session(&session(3, "u2", 5)).await.unwrap();
    assert!(matches!(store.insert_session(&session(1, "u1", 0)).await, Err(StoreError::Conflict)));
    let found = store.find_session(&digest(1)).await.unwrap().unwrap();
    assert_eq!(found, session(1, "u1", 0));
    store.touch_sessions(&[(digest(1), ts(100)), (digest(9), ts(100))]).await.unwrap();
    store.touch_sessions(&[(digest(1), ts(50))]).await.unwrap();
    assert_eq!(store.find_session(&digest(1)).await.unwrap().unwrap().last_seen_at, ts(100));
    let listed: Vec<String> =
        store.list_user_sessions("u1").await.unwrap().into_iter().map(|s| s.sid).collect();
    assert_eq!(listed, ["s1", "s2"], "oldest first");
    assert!(store.delete_user_session("u2", "s1").await.unwrap().is_none(), "not bob's");
    assert_eq!(store.delete_user_session("u1", "s1").await.unwrap().unwrap().sid, "s1");
    assert!(store.find_session(&digest(1)).await.unwrap().is_none());
    store.insert_session(&session(4, "u1", 20)).await.unwrap();
    let deleted = store.delete_user_sessions("u1", Some("s4")).await.unwrap();
    assert_eq!(deleted, vec![digest(2)]);
    assert!(store.find_session(&digest(4)).await.unwrap().is_some());
    assert_eq!(store.delete_session(&digest(4)).await.unwrap().unwrap().sid, "s4");
    assert!(store.delete_session(&digest(4)).await.unwrap().is_none());
    store.insert_session(&session(5, "u2", 3000)).await.unwrap();
    if expiry == Expiry::Swept {
        // s3 was last seen at 5 s; an idle cutoff at 5 s removes it.
        assert_eq!(store.delete_expired_sessions(ts(100), ts(5)).await.unwrap(), 1);
        assert_eq!(store.delete_expired_sessions(ts(3000 + 3600), ts(0)).await.unwrap(), 1);
    } else {
        assert_eq!(store.delete_user_sessions("u2", None).await.unwrap().len(), 2);
    }
    assert!(store.list_user_sessions("u2").await.unwrap().is_empty());
    store.ping().await.unwrap();
}

async fn refresh_suite(store: &dyn RefreshStore) {
    // Refresh families: rotation is atomic and single-use.
    store.create_family(&family("f1", "u1"), &token(10, "f1", 0)).await.unwrap();
    store.create_family(&family("f2", "u1"), &token(20, "f2", 0)).await.unwrap();
    store.create_family(&family("f3", "u2"), &token(30, "f3", 0)).await.unwrap();
    let (t, f) = store.find_refresh_token(&digest(10)).await.unwrap().unwrap();
    assert_eq!((t.sid.as_str(), t.spent_at, f.user_id.as_str()), ("f1", None, "u1"));
    assert_eq!(
        store.rotate_refresh_token(&digest(10), &token(11, "f1", 60), ts(60)).await.unwrap(),
        Rotation::Rotated
    );
    assert_eq!(
        store.rotate_refresh_token(&digest(10), &token(12, "f1", 61), ts(61)).await.unwrap(),
        Rotation::AlreadySpent
    );
    assert!(
        store.find_refresh_token(&digest(12)).await.unwrap().is_none(),
        "nothing stored on a lost race"
    );
    let (spent, f) = store.find_refresh_token(&digest(10)).await.unwrap().unwrap();
    assert_eq!(spent.spent_at, Some(ts(60)));
    assert_eq!(f.last_used_at, ts(60));
    assert_eq!(store.find_refresh_token(&digest(11)).await.unwrap().unwrap().0.spent_at, None);
    assert_eq!(store.find_family("f1").await.unwrap().unwrap().last_used_at, ts(60));
    let fams: Vec<String> =
        store.list_user_families("u1").await.unwrap().into_iter().map(|f| f.sid).collect();
    assert_eq!(fams, ["f1", "f2"]);
    assert!(store.delete_family("f1", Some("u2"), ts(60)).await.unwrap().is_none(), "not bob's");
    assert_eq!(store.delete_family("f1", Some("u1"), ts(60)).await.unwrap().unwrap().sid, "f1");
    assert!(
        store.find_refresh_token(&digest(11)).await.unwrap().is_none(),
        "tokens go with the family"
    );
    assert_eq!(
        store.delete_user_families("u1", None, ts(60)).await.unwrap(),
        vec!["f2".to_string()]
    );
    assert_eq!(
        store.delete_user_families("u2", Some("f3"), ts(60)).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(store.delete_expired_families(ts(10), ts(0)).await.unwrap(), 1, "idle since 0 s");
    assert!(store.find_family("f3").await.unwrap().is_none());
}

async fn revocation_suite(store: &dyn RevocationStore) {
    // Revocations keep the later deadline and expire.
    store.insert_revocation("a", ts(100)).await.unwrap();
    store.insert_revocation("a", ts(50)).await.unwrap();
    store.insert_revocation("b", ts(10)).await.unwrap();
    let mut active = store.active_revocations(ts(20)).await.unwrap();
    active.sort();
    assert_eq!(active, vec![("a".to_string(), ts(100))]);
    assert_eq!(store.delete_expired_revocations(ts(20)).await.unwrap(), 1);
    assert_eq!(store.delete_expired_revocations(ts(100)).await.unwrap(), 1);
}

#[tokio::test]
async fn memory_store_meets_the_contract() {
    store_suite(Arc::new(MemoryStore::default())).await;
}

#[tokio::test]
async fn sqlite_store_meets_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    store_suite(Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap())).await;
}

#[tokio::test]
async fn cached_sessions_meet_the_contract_and_never_outlive_a_delete() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
    session_suite(&CachedSessionStore::new(sqlite.clone(), 1024), Expiry::Swept).await;

    let cached = CachedSessionStore::new(sqlite.clone(), 1024);
    cached.insert_session(&session(7, "u1", 0)).await.unwrap();
    assert!(cached.find_session(&digest(7)).await.unwrap().is_some());
    cached.delete_user_session("u1", "s7").await.unwrap();
    assert!(cached.find_session(&digest(7)).await.unwrap().is_none(), "evicted with the row");
    // A tiny cache still answers correctly (evictions fall back to the store).
    let tiny = CachedSessionStore::new(sqlite, 1);
    for n in 40..60 {
        tiny.insert_session(&session(n, "u9", 0)).await.unwrap();
    }
    for n in 40..60 {
        assert_eq!(tiny.find_session(&digest(n)).await.unwrap().unwrap().sid, format!("s{n}"));
    }
}

/// A memory session store that can answer reads with what it held a moment ago (to widen the
/// window between a read and the cache fill) and counts the renewals written to it.
#[derive(Debug, Default)]
struct Instrumented {
    inner: MemoryStore,
    slow_reads: bool,
    touched_rows: std::sync::atomic::AtomicUsize,
    largest_touch: std::sync::atomic::AtomicUsize,
}

impl Instrumented {
    fn slow_reads() -> Self {
        Instrumented { slow_reads: true, ..Instrumented::default() }
    }

    fn touched_rows(&self) -> usize {
        self.touched_rows.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl SessionStore for Instrumented {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.inner.insert_session(s).await
    }
    async fn find_session(&self, h: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        let found = self.inner.find_session(h).await;
        if self.slow_reads {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found
    }
    async fn touch_sessions(&self, t: &[([u8; 32], Timestamp)]) -> Result<(), StoreError> {
        self.touched_rows.fetch_add(t.len(), std::sync::atomic::Ordering::SeqCst);
        self.largest_touch.fetch_max(t.len(), std::sync::atomic::Ordering::SeqCst);
        self.inner.touch_sessions(t).await
    }
    async fn delete_session(&self, h: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.delete_session(h).await
    }
    async fn delete_user_session(
        &self,
        u: &str,
        s: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.delete_user_session(u, s).await
    }
    async fn list_user_sessions(&self, u: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_user_sessions(u).await
    }
    async fn delete_user_sessions(
        &self,
        u: &str,
        k: Option<&str>,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        self.inner.delete_user_sessions(u, k).await
    }
    async fn delete_expired_sessions(&self, n: Timestamp, c: Timestamp) -> Result<u64, StoreError> {
        self.inner.delete_expired_sessions(n, c).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        SessionStore::ping(&self.inner).await
    }
}

#[tokio::test]
async fn sqlite_bulk_inserts_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    let users: Vec<UserRecord> =
        (0..1_200).map(|n| user(&format!("id{n}"), &format!("user{n}"))).collect();
    let sessions: Vec<SessionRecord> = (0..1_200u32)
        .map(|n| {
            let mut s = session(0, &format!("id{n}"), 0);
            s.token_hash = tessera::crypto::sha256(&n.to_le_bytes());
            s.sid = format!("sid{n}");
            s
        })
        .collect();
    store.insert_in_bulk(&users, &sessions).await.unwrap();
    let last = store.find_user_by_username("user1199").await.unwrap().unwrap();
    assert_eq!(last.id, "id1199");
    let found = store.find_session(&sessions[1_199].token_hash).await.unwrap().unwrap();
    assert_eq!(found, sessions[1_199]);
    assert_eq!(store.list_user_sessions("id600").await.unwrap(), vec![sessions[600].clone()]);

    // One bad row (a taken username) and nothing of the batch lands.
    let batch = [user("new1", "fresh"), user("new2", "user5")];
    assert!(store.insert_in_bulk(&batch, &[]).await.is_err());
    assert!(store.find_user_by_username("fresh").await.unwrap().is_none());
}

#[tokio::test]
async fn a_logout_racing_a_cache_fill_is_not_undone() {
    let slow = Arc::new(Instrumented::slow_reads());
    slow.insert_session(&session(1, "u1", 0)).await.unwrap(); // in the store, not the cache
    let cached = Arc::new(CachedSessionStore::new(slow, 1024));
    let reader = {
        let cached = cached.clone();
        tokio::spawn(async move { cached.find_session(&digest(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(cached.delete_user_session("u1", "s1").await.unwrap().is_some(), "logout");
    assert!(reader.await.unwrap().unwrap().is_some(), "the read began before the logout");
    assert!(
        cached.find_session(&digest(1)).await.unwrap().is_none(),
        "the ended session must not come back from the cache"
    );
}

#[tokio::test]
async fn sqlite_keeps_data_across_reopen_and_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.insert_user(&user("u1", "alice")).await.unwrap();
    store.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.find_user_by_username("alice").await.unwrap().is_some());
    store.close().await;

    // A database from a future version must not be touched.
    {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::raw_sql("PRAGMA user_version = 99").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    match SqliteStore::open(&path).await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("newer"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_files_are_private_even_in_a_shared_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.insert_user(&user("u1", "alice")).await.unwrap();
    for name in ["t.db", "t.db-wal", "t.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
    }
    store.close().await;
}

#[tokio::test]
async fn concurrent_rotations_on_sqlite_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
    concurrent_rotations_have_exactly_one_winner(store).await;
}

/// Eight concurrent rotations of one refresh token: exactly one wins.
async fn concurrent_rotations_have_exactly_one_winner<S: RefreshStore + 'static>(store: Arc<S>) {
    store.create_family(&family("f1", "u1"), &token(1, "f1", 0)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.rotate_refresh_token(&digest(1), &token(100 + i, "f1", 1), ts(1)).await.unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap() == Rotation::Rotated {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

// --- the authenticator end to end, with a fake clock over SQLite ---------------------------

struct Harness {
    auth: Authenticator,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn harness(tune: impl FnOnce(&mut Settings)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
    let clock = Arc::new(ManualClock::new(ts(0)));
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    tune(&mut settings);
    let auth = Authenticator::builder(settings, Stores::single(store))
        .clock(clock.clone() as Arc<dyn Clock>)
        .build()
        .await
        .unwrap();
    Harness { auth, clock, _dir: dir }
}

fn pw(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

const PASSWORD: &str = "correct horse battery";

/// A client with no address or user agent.
const CLIENT: ClientInfo = ClientInfo { ip: None, user_agent: None };

#[tokio::test]
async fn registration_normalises_and_refuses_duplicates() {
    let h = harness(|_| {}).await;
    let user = h.auth.register("Alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    assert_eq!(user.username, "alice");
    assert!(user.password_hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
    assert!(matches!(
        h.auth.register("ALICE", &pw(PASSWORD), &CLIENT).await,
        Err(Error::UsernameTaken)
    ));
    assert!(matches!(
        h.auth.register("bob", &pw("bob"), &CLIENT).await,
        Err(Error::Validation { field: "password", .. })
    ));
    let closed = harness(|s| s.registration_open = false).await;
    assert!(matches!(
        closed.auth.register("carol", &pw(PASSWORD), &CLIENT).await,
        Err(Error::RegistrationClosed)
    ));
    assert!(
        closed.auth.create_user("carol", &pw(PASSWORD), &CLIENT).await.is_ok(),
        "administrators still can"
    );
}

#[tokio::test]
async fn logins_are_throttled_per_username_and_unlock_after_the_window() {
    let h = harness(|_| {}).await;
    h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    for _ in 0..5 {
        let r = h.auth.login(AuthMethod::Session, "alice", &pw("wrong password"), &CLIENT).await;
        assert!(matches!(r, Err(Error::InvalidCredentials)));
    }
    let locked = h.auth.login(AuthMethod::Session, "alice", &pw(PASSWORD), &CLIENT).await;
    assert!(
        matches!(locked, Err(Error::RateLimited { retry_after }) if retry_after == Duration::from_secs(900))
    );
    // An unknown user fails the same way and is throttled too.
    assert!(matches!(
        h.auth.login(AuthMethod::Token, "nobody", &pw(PASSWORD), &CLIENT).await,
        Err(Error::InvalidCredentials)
    ));
    h.clock.advance(Duration::from_secs(900));
    assert!(h.auth.login(AuthMethod::Session, "ALICE", &pw(PASSWORD), &CLIENT).await.is_ok());
}

#[tokio::test]
async fn concurrent_guesses_get_no_more_tries_than_sequential_ones() {
    let h = harness(|_| {}).await;
    h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let mut guesses = Vec::new();
    for i in 0..12 {
        let auth = h.auth.clone();
        guesses.push(tokio::spawn(async move {
            auth.login(AuthMethod::Token, "alice", &pw(&format!("guess number {i}")), &CLIENT).await
        }));
    }
    let mut checked = 0;
    for guess in guesses {
        match guess.await.unwrap() {
            Err(Error::InvalidCredentials) => checked += 1,
            Err(Error::RateLimited { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(checked <= 5, "{checked} passwords were checked");
    assert!(matches!(
        h.auth.login(AuthMethod::Token, "alice", &pw(PASSWORD), &CLIENT).await,
        Err(Error::RateLimited { .. })
    ));
}

#[tokio::test]
async fn revocation_fails_closed_when_the_store_cannot_write() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let auth = Authenticator::builder(settings, Stores::single(store)).build().await.unwrap();
    let user = auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let first = auth.issue_tokens(&user, &CLIENT).await.unwrap();
    let second = auth.refresh(&first.refresh.token, &CLIENT).await.unwrap();
    auth.refresh(&second.refresh.token, &CLIENT).await.unwrap();

    // Another connection holds the write lock: every write of the server times out.
    let mut blocker =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut blocker).await.unwrap();
    let reuse = auth.refresh(&first.refresh.token, &CLIENT).await;
    assert!(matches!(reuse, Err(Error::Store(_))), "{reuse:?}");
    assert!(
        matches!(auth.authenticate_token(&second.access.token).await, Err(Error::TokenInvalid(_))),
        "theft was detected: the family's access tokens are refused although the store failed"
    );
    sqlx::raw_sql("ROLLBACK").execute(&mut blocker).await.unwrap();
}

#[tokio::test]
async fn changed_argon2_parameters_rehash_on_login() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
    let build = |m: u32| {
        let mut settings = Settings::new();
        settings.password.params = Argon2Params { memory_kib: m, iterations: 1, parallelism: 1 };
        Authenticator::builder(settings, Stores::single(store.clone())).build()
    };
    build(64).await.unwrap().register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let stronger = build(128).await.unwrap();
    let user = stronger.login(AuthMethod::Session, "alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    assert!(user.password_hash.contains("m=128,"));
    let stored = store.find_user_by_username("alice").await.unwrap().unwrap();
    assert!(stored.password_hash.contains("m=128,"), "the new hash is stored");
    assert!(stronger.login(AuthMethod::Session, "alice", &pw(PASSWORD), &CLIENT).await.is_ok());
}

#[tokio::test]
async fn token_reuse_revokes_the_family_and_its_access_tokens_at_once() {
    let h = harness(|_| {}).await;
    let user = h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let first = h.auth.issue_tokens(&user, &CLIENT).await.unwrap();
    let other = h.auth.issue_tokens(&user, &CLIENT).await.unwrap();
    let second = h.auth.refresh(&first.refresh.token, &CLIENT).await.unwrap();
    // Within the grace and before the successor is used: the same successor comes back.
    let retried = h.auth.refresh(&first.refresh.token, &CLIENT).await.unwrap();
    assert_eq!(retried.refresh.token.expose_secret(), second.refresh.token.expose_secret());
    let third = h.auth.refresh(&second.refresh.token, &CLIENT).await.unwrap();
    assert!(h.auth.authenticate_token(&third.access.token).await.is_ok());

    assert!(matches!(h.auth.refresh(&first.refresh.token, &CLIENT).await, Err(Error::TokenReused)));
    for access in [&first.access.token, &second.access.token, &third.access.token] {
        assert!(matches!(h.auth.authenticate_token(access).await, Err(Error::TokenInvalid(_))));
    }
    assert!(matches!(
        h.auth.refresh(&third.refresh.token, &CLIENT).await,
        Err(Error::TokenInvalid(_))
    ));
    assert!(
        h.auth.authenticate_token(&other.access.token).await.is_ok(),
        "other logins are untouched"
    );
}

#[tokio::test]
async fn revocations_survive_a_restart_until_the_tokens_expire() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let clock = Arc::new(ManualClock::new(ts(0)));
    let keys_pkcs8 =
        tessera::token::SigningKey::generate(tessera::token::Algorithm::EdDSA).unwrap().1;
    let build = |store: Arc<SqliteStore>| {
        let mut settings = Settings::new();
        settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
        let key =
            tessera::token::SigningKey::from_pkcs8(tessera::token::Algorithm::EdDSA, &keys_pkcs8)
                .unwrap();
        Authenticator::builder(settings, Stores::single(store))
            .keys(tessera::token::KeySet::single(key))
            .clock(clock.clone() as Arc<dyn Clock>)
            .build()
    };
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let auth = build(store.clone()).await.unwrap();
    let user = auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let grant = auth.issue_tokens(&user, &CLIENT).await.unwrap();
    auth.revoke_token(&SecretString::from(grant.access.token.clone()), &CLIENT).await.unwrap();
    store.close().await;

    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let restarted = build(store).await.unwrap();
    assert!(matches!(
        restarted.authenticate_token(&grant.access.token).await,
        Err(Error::TokenInvalid(_))
    ));
    assert!(matches!(
        restarted.refresh(&grant.refresh.token, &CLIENT).await,
        Err(Error::TokenInvalid(_))
    ));
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let h = harness(|_| {}).await;
    let user = h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let session = h.auth.start_session(&user, &CLIENT).await.unwrap();
    let grant = h.auth.issue_tokens(&user, &CLIENT).await.unwrap();
    let printed = format!("{user:?} {session:?} {grant:?} {:?}", h.auth);
    for secret in [
        user.password_hash.as_str(),
        session.secret.expose_secret(),
        grant.refresh.token.expose_secret(),
        grant.access.token.as_str(),
        grant.csrf_token.as_str(),
        h.auth.csrf().token_for(&session.session.record().sid).as_str(),
    ] {
        assert!(!printed.contains(secret), "{secret} leaked into {printed}");
    }
}

#[tokio::test]
async fn password_change_ends_every_other_login() {
    let h = harness(|_| {}).await;
    let user = h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let here = h.auth.start_session(&user, &CLIENT).await.unwrap();
    let elsewhere = h.auth.start_session(&user, &CLIENT).await.unwrap();
    let tokens = h.auth.issue_tokens(&user, &CLIENT).await.unwrap();
    let (me, _) = h.auth.authenticate_session(&here.secret).await.unwrap();

    let wrong =
        h.auth.change_password(&me, &pw("not it at all"), &pw("a new passphrase"), &CLIENT).await;
    assert!(matches!(wrong, Err(Error::InvalidCredentials)));
    h.auth.change_password(&me, &pw(PASSWORD), &pw("a new passphrase"), &CLIENT).await.unwrap();

    assert!(h.auth.authenticate_session(&here.secret).await.is_ok(), "the caller stays");
    assert!(matches!(
        h.auth.authenticate_session(&elsewhere.secret).await,
        Err(Error::Unauthorized)
    ));
    assert!(h.auth.authenticate_token(&tokens.access.token).await.is_err());
    assert!(h.auth.refresh(&tokens.refresh.token, &CLIENT).await.is_err());
    assert!(h.auth.login(AuthMethod::Session, "alice", &pw(PASSWORD), &CLIENT).await.is_err());
    assert!(
        h.auth.login(AuthMethod::Session, "alice", &pw("a new passphrase"), &CLIENT).await.is_ok()
    );
}

#[tokio::test]
async fn sessions_renew_on_use_and_renewals_reach_the_store() {
    let h = harness(|_| {}).await;
    let user = h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let new = h.auth.start_session(&user, &CLIENT).await.unwrap();
    for _ in 0..4 {
        h.clock.advance(Duration::from_secs(25 * 60));
        h.auth.authenticate_session(&new.secret).await.unwrap();
    }
    assert_eq!(h.auth.flush().await.unwrap(), 1);
    h.auth.maintain().await.unwrap();
    let (_, s) = h.auth.authenticate_session(&new.secret).await.unwrap();
    assert_eq!(s.last_seen_at(), h.clock.now(), "100 minutes of use, never idle for 30");
    h.clock.advance(Duration::from_secs(30 * 60));
    h.auth.maintain().await.unwrap();
    assert!(
        matches!(h.auth.authenticate_session(&new.secret).await, Err(Error::Unauthorized)),
        "purged"
    );
}

/// An engine on a memory store whose session writes are counted, with a manual clock.
async fn counting_renewals() -> (Authenticator, Arc<Instrumented>, Arc<ManualClock>) {
    let sessions = Arc::new(Instrumented::default());
    let clock = Arc::new(ManualClock::new(ts(0)));
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let mut stores = Stores::memory();
    stores.sessions = sessions.clone();
    let auth = Authenticator::builder(settings, stores)
        .clock(clock.clone() as Arc<dyn Clock>)
        .build()
        .await
        .unwrap();
    (auth, sessions, clock)
}

#[tokio::test]
async fn a_session_used_ten_thousand_times_a_minute_is_written_at_most_twice() {
    let (auth, sessions, clock) = counting_renewals().await;
    let user = auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let new = auth.start_session(&user, &CLIENT).await.unwrap();
    // 10,000 uses 6 ms apart, with the server's flush every 2 s (every 333 uses).
    for used in 1..=10_000 {
        clock.advance(Duration::from_millis(6));
        auth.authenticate_session(&new.secret).await.unwrap();
        if used % 333 == 0 {
            auth.flush().await.unwrap();
        }
    }
    auth.flush().await.unwrap();
    // The default idle timeout is 30 minutes, so a use is recorded every 30 s at most.
    assert!(sessions.touched_rows() <= 2, "{} renewals written", sessions.touched_rows());
    assert!(sessions.touched_rows() >= 1, "a minute of use moved the deadline");
    let stored = sessions.inner.find_session(&new.session.record().token_hash).await.unwrap();
    let seen = stored.unwrap().last_seen_at;
    assert!(clock.now().since(seen) <= Duration::from_secs(30), "the store is 30 s behind at most");
}

#[tokio::test]
async fn a_flush_after_a_burst_writes_in_bounded_chunks() {
    let (auth, sessions, clock) = counting_renewals().await;
    let user = auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let mut secrets = Vec::new();
    for _ in 0..2_500 {
        secrets.push(auth.start_session(&user, &CLIENT).await.unwrap().secret);
    }
    clock.advance(Duration::from_secs(45));
    for secret in &secrets {
        auth.authenticate_session(secret).await.unwrap();
    }
    assert_eq!(auth.flush().await.unwrap(), 2_500);
    assert_eq!(sessions.touched_rows(), 2_500);
    let largest = sessions.largest_touch.load(std::sync::atomic::Ordering::SeqCst);
    assert!(largest <= tessera::session::FLUSH_CHUNK, "{largest} renewals in one write");
}

#[tokio::test]
async fn listing_shows_both_kinds_and_ending_one_is_limited_to_the_owner() {
    let h = harness(|_| {}).await;
    let alice = h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let bob = h.auth.register("bob", &pw(PASSWORD), &CLIENT).await.unwrap();
    let session = h.auth.start_session(&alice, &CLIENT).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    let tokens = h.auth.issue_tokens(&alice, &CLIENT).await.unwrap();
    let bobs = h.auth.issue_tokens(&bob, &CLIENT).await.unwrap();
    let me = h.auth.authenticate_token(&tokens.access.token).await.unwrap();
    let list = h.auth.list_logins(&me).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].method, AuthMethod::Session);
    assert_eq!(list[1].method, AuthMethod::Token);
    assert!(list[1].current && !list[0].current);
    assert!(matches!(
        h.auth.end_login(&me, &bobs.refresh.family.sid, &CLIENT).await,
        Err(Error::NotFound)
    ));
    assert!(h.auth.authenticate_token(&bobs.access.token).await.is_ok(), "bob's family untouched");
    h.auth.end_login(&me, &session.session.record().sid, &CLIENT).await.unwrap();
    assert!(h.auth.authenticate_session(&session.secret).await.is_err());
    h.auth.end_all_logins(&me, &CLIENT).await.unwrap();
    assert!(h.auth.authenticate_token(&tokens.access.token).await.is_err());
}

#[tokio::test]
async fn an_unknown_user_costs_the_same_argon2_work_as_a_wrong_password() {
    let h = harness(|s| s.limits.max_failures = 100).await;
    h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let work_of = |username: &'static str, password: &'static str| {
        let auth = h.auth.clone();
        async move {
            let before = auth.password_work();
            let result = auth.login(AuthMethod::Session, username, &pw(password), &CLIENT).await;
            assert!(matches!(result, Err(Error::InvalidCredentials)), "{username}: {result:?}");
            let after = auth.password_work();
            (after.computations - before.computations, after.kib_passes - before.kib_passes)
        }
    };
    let wrong_password = work_of("alice", "not the password").await;
    let cost_per_hash = 64; // memory_kib 64 x 1 pass x 1 lane (the harness's parameters)
    assert_eq!(wrong_password, (1, cost_per_hash), "one argon2 verification");
    assert_eq!(work_of("nobody", "not the password").await, wrong_password);
    assert_eq!(work_of("NoBody", PASSWORD).await, wrong_password);
    // Not even a well-formed username: still one verification, against the dummy hash.
    assert_eq!(work_of("no such user!", "x").await, wrong_password);
    // And a success costs the same again (one verification, no re-hash at equal parameters).
    let before = h.auth.password_work();
    h.auth.login(AuthMethod::Token, "alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    assert_eq!(h.auth.password_work().computations - before.computations, 1);
}

#[tokio::test]
async fn every_security_event_is_audited_with_who_when_where_and_no_secret() {
    let h = harness(|_| {}).await;
    let client =
        ClientInfo { ip: Some("203.0.113.9".into()), user_agent: Some("audit-test/1".into()) };
    let auth = &h.auth;
    let alice = auth.register("Alice", &pw(PASSWORD), &client).await.unwrap();
    assert!(auth.register("alice", &pw(PASSWORD), &client).await.is_err());
    assert!(auth.register("bo", &pw(PASSWORD), &client).await.is_err(), "validation: not audited");
    let wrong = "Tr0ub4dor&3 is wrong";
    assert!(auth.login(AuthMethod::Session, "alice", &pw(wrong), &client).await.is_err());
    // A password typed into the username field is not recorded as a username.
    assert!(auth.login(AuthMethod::Token, "my secret pass!", &pw(wrong), &client).await.is_err());
    let user = auth.login(AuthMethod::Session, "alice", &pw(PASSWORD), &client).await.unwrap();
    let session = auth.start_session(&user, &client).await.unwrap();
    let (me, _) = auth.authenticate_session(&session.secret).await.unwrap();
    let grant = auth.issue_tokens(&user, &client).await.unwrap();
    let next = auth.refresh(&grant.refresh.token, &client).await.unwrap();
    let _ = auth.refresh(&pw("garbage-refresh-token"), &client).await.unwrap_err();
    auth.refresh(&next.refresh.token, &client).await.unwrap();
    assert!(matches!(auth.refresh(&grant.refresh.token, &client).await, Err(Error::TokenReused)));
    let second = auth.issue_tokens(&user, &client).await.unwrap();
    auth.revoke_token(&second.refresh.token, &client).await.unwrap();
    let third = auth.issue_tokens(&user, &client).await.unwrap();
    auth.end_login(&me, &third.refresh.family.sid, &client).await.unwrap();
    let new_password = "a brand new passphrase";
    assert!(auth.change_password(&me, &pw(wrong), &pw(new_password), &client).await.is_err());
    auth.change_password(&me, &pw(PASSWORD), &pw(new_password), &client).await.unwrap();
    auth.end_all_logins(&me, &client).await.unwrap();
    auth.end_session(&me, &client).await.unwrap();

    let mut events =
        auth.audit_events(&AuditFilter { limit: 1000, ..Default::default() }).await.unwrap();
    events.reverse();
    let summary: Vec<(AuditKind, AuditOutcome, Option<&str>)> =
        events.iter().map(|e| (e.kind, e.outcome, e.reason.as_deref())).collect();
    use AuditKind as K;
    use AuditOutcome::{Failure as F, Success as S};
    assert_eq!(
        summary,
        vec![
            (K::Register, S, None),
            (K::Register, F, Some("username_taken")),
            (K::Login, F, Some("invalid_credentials")),
            (K::Login, F, Some("invalid_credentials")),
            (K::Login, S, None),
            (K::Login, S, None),
            (K::Refresh, S, None),
            (K::Refresh, F, Some("token_invalid")),
            (K::Refresh, S, None),
            (K::RefreshReuse, F, Some("token_reused")),
            (K::Login, S, None),
            (K::TokenRevoke, S, None),
            (K::Login, S, None),
            (K::LoginEnd, S, None),
            (K::PasswordChange, F, Some("invalid_credentials")),
            (K::PasswordChange, S, None),
            (K::LogoutEverywhere, S, None),
            (K::Logout, S, None),
        ]
    );
    for event in &events {
        assert_eq!(event.client, client, "{event:?}");
        assert!(event.at == h.clock.now(), "{event:?}");
    }
    // Who: the user on every event that has one; the failed login with a non-username has none.
    assert_eq!(events[0].user_id.as_deref(), Some(alice.id.as_str()));
    assert_eq!(events[2].username.as_deref(), Some("alice"));
    assert_eq!(events[3].username, None);
    assert_eq!(events[4].method, Some(AuthMethod::Session));
    assert_eq!(events[4].sid.as_deref(), Some(me.sid.as_str()));
    assert_eq!(events[5].sid.as_deref(), Some(grant.refresh.family.sid.as_str()));
    assert_eq!(events[9].sid.as_deref(), Some(grant.refresh.family.sid.as_str()));
    assert_eq!(events[9].username.as_deref(), Some("alice"));
    assert_eq!(events[11].sid.as_deref(), Some(second.refresh.family.sid.as_str()));
    assert_eq!(events[13].sid.as_deref(), Some(third.refresh.family.sid.as_str()));
    assert_eq!(events[13].method, Some(AuthMethod::Token));
    // What never appears: passwords (tried, right or new), cookie values, tokens.
    let dump = format!("{events:?}");
    let secrets = [
        PASSWORD,
        wrong,
        new_password,
        "my secret pass!",
        session.secret.expose_secret(),
        grant.refresh.token.expose_secret(),
        next.refresh.token.expose_secret(),
        grant.access.token.as_str(),
    ];
    for secret in secrets {
        assert!(!dump.contains(secret), "{secret} is in the audit log");
    }
}

#[tokio::test]
async fn upkeep_deletes_audit_events_past_their_retention() {
    let h = harness(|s| s.audit_retention = Some(Duration::from_secs(86_400))).await;
    h.auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    h.clock.advance(Duration::from_secs(86_400 - 1));
    h.auth.maintain().await.unwrap();
    assert_eq!(h.auth.audit_events(&AuditFilter::default()).await.unwrap().len(), 1);
    h.clock.advance(Duration::from_secs(2));
    h.auth.maintain().await.unwrap();
    assert!(h.auth.audit_events(&AuditFilter::default()).await.unwrap().is_empty());
}

// --- PostgreSQL ---------------------------------------------------------------------------

/// The URL of a fresh, empty database on the PostgreSQL server of `TESSERA_TEST_POSTGRES_URL`
/// (`scripts/test` starts one and sets it).
async fn postgres_database() -> String {
    postgres_database_with("").await
}

/// [`postgres_database`], created with `options` (`CREATE DATABASE name options`).
async fn postgres_database_with(options: &str) -> String {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL store tests need TESSERA_TEST_POSTGRES_URL: run them with \
             scripts/test, which starts a PostgreSQL server and sets it"
        )
    });
    let name = format!(
        "tessera_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros()
    );
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name} {options}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (base, _) = admin.rsplit_once('/').expect("a database name in the URL");
    format!("{base}/{name}")
}

#[tokio::test]
async fn postgres_store_meets_the_contract() {
    let url = postgres_database().await;
    store_suite(Arc::new(PostgresStore::connect(&url).await.unwrap())).await;
}

#[tokio::test]
async fn instances_flushing_overlapping_renewals_on_postgres_never_deadlock() {
    // Two instances write renewal batches of overlapping sets of sessions at once, each in
    // its own order: without a fixed lock order, PostgreSQL aborts one of them as a deadlock.
    let url = postgres_database().await;
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    for n in 0..=255u8 {
        let record = SessionRecord { sid: format!("s{n}"), ..session(n, "u1", 0) };
        store.insert_session(&record).await.unwrap();
    }
    let flushes: Vec<_> = (0..4u8)
        .map(|instance| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 1..=30 {
                    let mut batch: Vec<_> = (0..=255u8)
                        .filter(|n| n % (instance + 1) == 0)
                        .map(|n| (digest(n), ts(round)))
                        .collect();
                    if instance % 2 == 1 {
                        batch.reverse();
                    }
                    store.touch_sessions(&batch).await?;
                }
                Ok::<(), StoreError>(())
            })
        })
        .collect();
    for flush in flushes {
        flush.await.unwrap().unwrap();
    }
    assert_eq!(store.find_session(&digest(42)).await.unwrap().unwrap().last_seen_at, ts(30));
}

#[tokio::test]
async fn postgres_tables_can_live_in_a_schema_of_their_own() {
    // For a database shared with an application: `options=-c search_path=…` in the URL.
    use sqlx::Connection;
    let url = postgres_database().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("CREATE SCHEMA tessera").execute(&mut conn).await.unwrap();
    let in_schema = format!("{url}?options=-c%20search_path%3Dtessera");
    let store = PostgresStore::connect(&in_schema).await.unwrap();
    store.insert_user(&user("u1", "alice")).await.unwrap();
    store.close().await;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT table_schema::TEXT FROM information_schema.tables \
         WHERE table_name IN ('users', 'sessions', 'tessera_schema')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(schemas, ["tessera"], "nothing in public");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn concurrent_rotations_on_postgres_have_exactly_one_winner() {
    let url = postgres_database().await;
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    concurrent_rotations_have_exactly_one_winner(store).await;
}

#[tokio::test]
async fn postgres_migrates_once_under_concurrent_starts_and_refuses_a_newer_schema() {
    use sqlx::Connection;
    let url = postgres_database().await;
    // Instances starting together: one migrates, the others wait for it and find it done.
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let store = PostgresStore::connect(&url).await?;
                store.close().await;
                Ok::<(), StoreError>(())
            })
        })
        .collect();
    for start in starts {
        start.await.unwrap().unwrap();
    }
    let store = PostgresStore::connect(&url).await.unwrap();
    store.insert_user(&user("u1", "alice")).await.unwrap();
    store.close().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    assert!(store.find_user_by_username("alice").await.unwrap().is_some());
    store.close().await;

    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("UPDATE tessera_schema SET version = 99").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    match PostgresStore::connect(&url).await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("newer"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_postgres_is_unavailable_and_the_error_hides_the_password() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://tessera:s3cret-pw@127.0.0.1:{port}/tessera");
    match PostgresStore::connect(&url).await {
        Err(StoreError::Unavailable(why)) => assert!(!why.contains("s3cret-pw"), "{why}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_authenticator_works_end_to_end_on_postgres() {
    let url = postgres_database().await;
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let auth = Authenticator::builder(settings, Stores::single(store)).build().await.unwrap();
    auth.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let user = auth.login(AuthMethod::Token, "alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let first = auth.issue_tokens(&user, &CLIENT).await.unwrap();
    let second = auth.refresh(&first.refresh.token, &CLIENT).await.unwrap();
    auth.refresh(&second.refresh.token, &CLIENT).await.unwrap();
    assert!(matches!(auth.refresh(&first.refresh.token, &CLIENT).await, Err(Error::TokenReused)));
    assert!(auth.authenticate_token(&second.access.token).await.is_err(), "the family is revoked");
    let session = auth.start_session(&user, &CLIENT).await.unwrap();
    assert!(auth.authenticate_session(&session.secret).await.is_ok());
    let events = auth.audit_events(&AuditFilter::default()).await.unwrap();
    assert_eq!(events[0].kind, AuditKind::Login);
    assert!(events.iter().any(|e| e.kind == AuditKind::RefreshReuse));
}

// --- Redis --------------------------------------------------------------------------------

/// A store on the Redis server of `TESSERA_TEST_REDIS_URL` (`scripts/test` starts one and sets
/// it), under a key prefix of its own so tests never see each other's keys.
async fn redis_store(idle: Duration) -> RedisStore {
    RedisStore::connect(&redis_url(), redis_options(&unique_prefix(), idle)).await.unwrap()
}

fn redis_url() -> String {
    std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "the Redis store tests need TESSERA_TEST_REDIS_URL: run them with scripts/test, \
             which starts a Redis server and sets it"
        )
    })
}

fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!(
        "test-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        now.as_micros()
    )
}

fn redis_options(prefix: &str, idle: Duration) -> RedisOptions {
    let mut options = RedisOptions::new(idle);
    options.prefix = prefix.to_owned();
    options
}

/// A raw connection, to look at what the store wrote.
async fn redis_raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn redis_sessions_meet_the_contract() {
    let store = redis_store(Duration::from_secs(1800)).await;
    session_suite(&store, Expiry::ByItself).await;
}

#[tokio::test]
async fn redis_session_keys_expire_with_the_session_and_renewal_moves_the_deadline() {
    let prefix = unique_prefix();
    let idle = Duration::from_secs(600);
    let store = RedisStore::connect(&redis_url(), redis_options(&prefix, idle)).await.unwrap();
    let mut raw = redis_raw().await;
    let now = SystemClock.now();
    let pttl = async |raw: &mut redis::aio::MultiplexedConnection, n: u8| -> i64 {
        let key = format!("{prefix}:session:{}", hex(&digest(n)));
        redis::cmd("PTTL").arg(key).query_async(raw).await.unwrap()
    };

    // Live for 1 h, idle 10 min: the key lives 10 min + the 1 min grace.
    let mut live = session(1, "u1", 0);
    (live.created_at, live.last_seen_at, live.expires_at) =
        (now, now, now.plus(Duration::from_secs(3600)));
    store.insert_session(&live).await.unwrap();
    let ttl = pttl(&mut raw, 1).await;
    assert!((655_000..=660_000).contains(&ttl), "idle deadline + grace, got {ttl} ms");

    // Used 5 minutes later: the deadline moves 5 minutes on; never back.
    let later = now.plus(Duration::from_secs(300));
    store.touch_sessions(&[(digest(1), later)]).await.unwrap();
    let ttl = pttl(&mut raw, 1).await;
    assert!((955_000..=960_000).contains(&ttl), "moved with the use, got {ttl} ms");
    store.touch_sessions(&[(digest(1), now)]).await.unwrap();
    assert!(pttl(&mut raw, 1).await >= 950_000, "an older use does not move it back");

    // Near the absolute deadline, that one wins.
    let mut ending = session(2, "u1", 0);
    (ending.created_at, ending.last_seen_at, ending.expires_at) =
        (now, now, now.plus(Duration::from_secs(120)));
    store.insert_session(&ending).await.unwrap();
    let ttl = pttl(&mut raw, 2).await;
    assert!((175_000..=180_000).contains(&ttl), "absolute deadline + grace, got {ttl} ms");

    // A session past its deadline by more than the grace is gone at once.
    let mut dead = session(3, "u1", 0);
    (dead.created_at, dead.last_seen_at, dead.expires_at) = (
        now.minus(Duration::from_secs(7200)),
        now.minus(Duration::from_secs(7200)),
        now.minus(Duration::from_secs(61)),
    );
    store.insert_session(&dead).await.unwrap();
    assert!(store.find_session(&digest(3)).await.unwrap().is_none());
    let listed: Vec<String> =
        store.list_user_sessions("u1").await.unwrap().into_iter().map(|s| s.sid).collect();
    assert_eq!(listed, ["s1", "s2"], "the index forgets what expired");
    store.ping().await.unwrap();
}

#[tokio::test]
async fn a_redis_listing_racing_a_login_cannot_hide_the_new_session_from_logout() {
    // A login writes its index entry, then its session. A listing that runs in between sees
    // an entry without a session: it must skip it, not drop it, or the session would be out
    // of reach of every later logout.
    let prefix = unique_prefix();
    let idle = Duration::from_secs(1800);
    let store = RedisStore::connect(&redis_url(), redis_options(&prefix, idle)).await.unwrap();
    let mut raw = redis_raw().await;
    let now = SystemClock.now();
    let mut login = session(7, "u1", 0);
    (login.created_at, login.last_seen_at, login.expires_at) =
        (now, now, now.plus(Duration::from_secs(3600)));
    let index = format!("{prefix}:user-sessions:u1");
    let member = format!("s7:{}", hex(&digest(7)));
    let deadline = login.expires_at.plus(Duration::from_secs(60)).unix_millis();
    let _: i64 = redis::cmd("ZADD")
        .arg(&index)
        .arg(deadline)
        .arg(&member)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(store.list_user_sessions("u1").await.unwrap().is_empty(), "not there yet");
    let kept: Option<f64> =
        redis::cmd("ZSCORE").arg(&index).arg(&member).query_async(&mut raw).await.unwrap();
    assert!(kept.is_some(), "the listing kept the entry");
    store.insert_session(&login).await.unwrap();
    assert_eq!(store.delete_user_sessions("u1", None).await.unwrap(), vec![digest(7)]);
    assert!(store.find_session(&digest(7)).await.unwrap().is_none(), "logged out everywhere");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The throttling contract, written once for every backend.
async fn throttle_suite(store: &dyn ThrottleStore) {
    let minute = Duration::from_secs(60);
    // A sliding log: 3 per minute.
    for i in 0..3 {
        assert_eq!(store.take("k", 3, minute, ts(i * 10)).await.unwrap(), None);
    }
    assert_eq!(store.take("k", 3, minute, ts(30)).await.unwrap(), Some(Duration::from_secs(30)));
    assert_eq!(store.take("other", 3, minute, ts(30)).await.unwrap(), None, "keys are apart");
    assert_eq!(store.take("k", 3, minute, ts(60)).await.unwrap(), None, "the oldest left");
    assert!(store.take("k", 3, minute, ts(61)).await.unwrap().is_some());

    // Accounts: 2 failures in 15 minutes lock; attempts in flight count as failures.
    let window = Duration::from_secs(900);
    let begin = async |account: &str, attempt: &str, at: i64| {
        store.begin_attempt(account, attempt, 2, window, ts(at)).await.unwrap()
    };
    let end = async |account: &str, attempt: &str, outcome, at: i64| {
        store.end_attempt(account, attempt, outcome, 2, window, ts(at)).await.unwrap()
    };
    assert_eq!(begin("alice", "a1", 0).await, None);
    assert_eq!(begin("alice", "a2", 0).await, None);
    assert_eq!(begin("alice", "a3", 0).await, Some(Duration::from_secs(1)), "two in flight");
    end("alice", "a1", AttemptOutcome::Failed, 0).await;
    end("alice", "a2", AttemptOutcome::Failed, 100).await;
    assert_eq!(begin("alice", "a4", 300).await, Some(Duration::from_secs(600)), "locked");
    assert_eq!(begin("bob", "b1", 300).await, None, "accounts are apart");
    end("bob", "b1", AttemptOutcome::Abandoned, 300).await;
    assert_eq!(begin("alice", "a5", 900).await, None, "the first failure left the window");
    end("alice", "a5", AttemptOutcome::Succeeded, 900).await;
    assert_eq!(begin("alice", "a6", 901).await, None, "success forgave the other");
    assert_eq!(begin("alice", "a7", 901).await, None);
    end("alice", "a6", AttemptOutcome::Abandoned, 901).await;
    end("alice", "a7", AttemptOutcome::Abandoned, 901).await;
    assert_eq!(begin("alice", "a8", 902).await, None, "abandoned attempts count as nothing");
    end("alice", "a8", AttemptOutcome::Abandoned, 902).await;
    store.sweep(window, ts(10_000)).await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test]
async fn memory_throttle_meets_the_contract() {
    throttle_suite(&MemoryThrottle::default()).await;
}

#[tokio::test]
async fn redis_throttle_meets_the_contract() {
    throttle_suite(&redis_store(Duration::from_secs(1800)).await).await;
}

#[tokio::test]
async fn redis_throttle_counts_across_instances_and_concurrent_guesses() {
    // Two instances (two connections, one prefix) and 20 concurrent guesses for one account:
    // exactly `max_failures` get through, as if there were one server.
    let prefix = unique_prefix();
    let idle = Duration::from_secs(1800);
    let a =
        Arc::new(RedisStore::connect(&redis_url(), redis_options(&prefix, idle)).await.unwrap());
    let b =
        Arc::new(RedisStore::connect(&redis_url(), redis_options(&prefix, idle)).await.unwrap());
    let window = Duration::from_secs(900);
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                store.begin_attempt("alice", &format!("g{i}"), 5, window, ts(0)).await.unwrap()
            })
        })
        .collect();
    let mut admitted = 0;
    for guess in guesses {
        if guess.await.unwrap().is_none() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
    // The IP budget likewise.
    let mut taken = 0;
    for i in 0..40 {
        let store = if i % 2 == 0 { &a } else { &b };
        if store
            .take("login:192.0.2.1", 30, Duration::from_secs(60), ts(1))
            .await
            .unwrap()
            .is_none()
        {
            taken += 1;
        }
    }
    assert_eq!(taken, 30);
}

#[tokio::test]
async fn redis_feed_reaches_every_subscriber_and_survives_malformed_messages() {
    feed_suite(&redis_url(), &Topology::Single, &redis_url()).await;
}

/// The feed's contract on the Redis of `url`: every subscriber of a prefix hears a message,
/// another prefix hears nothing, and a malformed message (published on `raw_url`) is skipped.
async fn feed_suite(url: &str, topology: &Topology, raw_url: &str) {
    let prefix = unique_prefix();
    let options = |prefix: &str| RedisOptions {
        topology: topology.clone(),
        ..redis_options(prefix, Duration::from_secs(1800))
    };
    let a = RedisStore::connect(url, options(&prefix)).await.unwrap();
    let b = RedisStore::connect(url, options(&prefix)).await.unwrap();
    let other = RedisStore::connect(url, options(&unique_prefix())).await.unwrap();
    let mut on_a = a.subscribe().await.unwrap();
    let mut on_b = b.subscribe().await.unwrap();
    let mut elsewhere = other.subscribe().await.unwrap();
    let raw = redis::Client::open(raw_url).unwrap();
    let mut raw = raw.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("{prefix}:revocations"))
        .arg("not a revocation")
        .query_async(&mut raw)
        .await
        .unwrap();
    b.publish("sid-1", ts(60)).await.unwrap();
    for subscription in [&mut on_a, &mut on_b] {
        let got = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
        assert_eq!(got.unwrap().unwrap(), ("sid-1".to_string(), ts(60)));
    }
    let nothing = tokio::time::timeout(Duration::from_millis(300), elsewhere.next()).await;
    assert!(nothing.is_err(), "another prefix is another deployment");
}

// --- Redis Cluster and Sentinel -------------------------------------------------------------

#[path = "support/redis_servers.rs"]
mod redis_servers;

#[path = "engine/admin.rs"]
mod admin;

fn options_for(topology: &Topology) -> RedisOptions {
    RedisOptions {
        topology: topology.clone(),
        ..redis_options(&unique_prefix(), Duration::from_secs(1800))
    }
}

#[tokio::test]
async fn redis_cluster_meets_the_store_contracts() {
    let cluster = redis_servers::cluster().await;
    // The first node listed is down: the others are enough, for commands and the feed alike.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let urls = format!("{},{}", redis_servers::url(dead), cluster.urls());
    let prefix = unique_prefix();
    let options = RedisOptions {
        topology: Topology::Cluster,
        ..redis_options(&prefix, Duration::from_secs(1800))
    };
    let store = RedisStore::connect(&urls, options).await.unwrap();
    session_suite(&store, Expiry::ByItself).await;
    throttle_suite(&store).await;
    feed_suite(&urls, &Topology::Cluster, &redis_servers::url(cluster.ports[0])).await;

    // A user's sessions spread over the nodes, and logout everywhere still finds them all.
    let user_sessions: Vec<SessionRecord> = (10..30).map(|n| session(n, "spread", 0)).collect();
    for s in &user_sessions {
        store.insert_session(s).await.unwrap();
    }
    let mut holders = std::collections::HashSet::new();
    for &port in &cluster.ports {
        let raw = redis::Client::open(redis_servers::url(port)).unwrap();
        let mut raw = raw.get_multiplexed_async_connection().await.unwrap();
        for s in &user_sessions {
            let key = format!("{prefix}:session:{}", hex(&s.token_hash));
            let n: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut raw).await.unwrap_or(0);
            if n == 1 {
                holders.insert(port);
            }
        }
    }
    assert!(holders.len() > 1, "sessions on several nodes, got {holders:?}");
    assert_eq!(store.delete_user_sessions("spread", None).await.unwrap().len(), 20);
    assert!(store.list_user_sessions("spread").await.unwrap().is_empty());
    for s in &user_sessions {
        assert!(store.find_session(&s.token_hash).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn redis_sentinel_meets_the_store_contracts_and_follows_a_failover() {
    let mut sentinel = redis_servers::sentinel("tessera-master").await;
    let topology = Topology::Sentinel { master: "tessera-master".into() };
    let url = redis_servers::url(sentinel.sentinel_port);
    let store = RedisStore::connect(&url, options_for(&topology)).await.unwrap();
    session_suite(&store, Expiry::ByItself).await;
    throttle_suite(&store).await;
    feed_suite(&url, &topology, &redis_servers::url(sentinel.master_port)).await;

    // A session written (and replicated) before the master dies outlives it.
    store.insert_session(&session(7, "u7", 0)).await.unwrap();
    let master = redis::Client::open(redis_servers::url(sentinel.master_port)).unwrap();
    // A replica just synced acknowledges its first writes within a second.
    let patient =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5)));
    let mut master = master.get_multiplexed_async_connection_with_config(&patient).await.unwrap();
    // WAIT covers this connection's writes, which come after the store's in the stream.
    let (_, copies): (i64, i64) = redis::pipe()
        .cmd("INCR")
        .arg("replication-marker")
        .cmd("WAIT")
        .arg(1)
        .arg(4000)
        .query_async(&mut master)
        .await
        .unwrap();
    assert_eq!(copies, 1, "replicated");
    let mut subscription = store.subscribe().await.unwrap();

    // Commands fail until Sentinel promotes the replica, then work again, writes included.
    sentinel.servers.kill(sentinel.master_port);
    let killed = std::time::Instant::now();
    loop {
        match store.insert_session(&session(8, "u7", 0)).await {
            Ok(()) | Err(StoreError::Conflict) => break,
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert!(killed.elapsed() < Duration::from_secs(15), "no failover within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.find_session(&digest(7)).await.unwrap().unwrap().sid, "s7");
    let listed: Vec<String> =
        store.list_user_sessions("u7").await.unwrap().into_iter().map(|s| s.sid).collect();
    assert_eq!(listed, ["s7", "s8"]);
    let promoted = redis::Client::open(redis_servers::url(sentinel.replica_port)).unwrap();
    let mut promoted = promoted.get_multiplexed_async_connection().await.unwrap();
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut promoted).await.unwrap();
    assert_eq!(redis::from_redis_value_ref::<String>(&role[0]).unwrap(), "master");

    // The old subscription says it is lost; a new one listens on the new master.
    let lost = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
    assert!(matches!(lost, Ok(Err(StoreError::Unavailable(_)))), "{lost:?}");
    let mut subscription = store.subscribe().await.unwrap();
    store.publish("sid-9", ts(60)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
    assert_eq!(got.unwrap().unwrap(), ("sid-9".to_string(), ts(60)));
}

/// An engine over shared stores, as one server instance is, with the signing key and secret
/// every instance shares.
async fn instance(shared: Stores) -> Authenticator {
    use std::sync::LazyLock;
    use tessera::token::{Algorithm, KeySet, SigningKey};
    static KEY: LazyLock<Vec<u8>> =
        LazyLock::new(|| SigningKey::generate(Algorithm::EdDSA).unwrap().1);
    let keys = KeySet::single(SigningKey::from_pkcs8(Algorithm::EdDSA, &KEY).unwrap());
    let secret = tessera::ServerSecret::from_bytes(&[7; 32]).unwrap();
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let auth = Authenticator::builder(settings, shared).keys(keys).secret(secret).build();
    let auth = auth.await.unwrap();
    let follower = auth.clone();
    tokio::spawn(async move { follower.follow_revocation_feed().await });
    auth
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_revocation_on_one_instance_reaches_the_others_through_the_feed() {
    let redis = Arc::new(redis_store(Duration::from_secs(1800)).await);
    let memory = Arc::new(MemoryStore::default());
    let mut shared = Stores::single(memory.clone());
    (shared.sessions, shared.throttle) = (redis.clone(), redis.clone());
    shared.feed = Some(redis.clone());
    let (a, b) = (instance(shared.clone()).await, instance(shared).await);
    wait_until("both follow the feed", async || {
        a.feed_live() == Some(true) && b.feed_live() == Some(true)
    })
    .await;
    a.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let user = a.login(AuthMethod::Token, "alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let grant = a.issue_tokens(&user, &CLIENT).await.unwrap();
    let principal = b.authenticate_token(&grant.access.token).await.unwrap();
    let session = a.start_session(&user, &CLIENT).await.unwrap();
    assert!(b.authenticate_session(&session.secret).await.is_ok(), "sessions are shared");

    // Logout everywhere on B: A refuses the access token as soon as the message arrives.
    b.end_all_logins(&principal, &CLIENT).await.unwrap();
    assert!(a.authenticate_session(&session.secret).await.is_err(), "the session at once");
    wait_until("A refuses the token", async || {
        a.authenticate_token(&grant.access.token).await.is_err()
    })
    .await;
}

/// A feed that is down: it cannot subscribe, and takes no message.
#[derive(Debug)]
struct DeadFeed;

#[async_trait::async_trait]
impl RevocationFeed for DeadFeed {
    async fn publish(&self, _: &str, _: Timestamp) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    async fn subscribe(&self) -> Result<Box<dyn FeedSubscription>, StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
}

#[tokio::test]
async fn while_the_feed_is_down_token_checks_ask_the_store() {
    let memory = Arc::new(MemoryStore::default());
    let mut shared = Stores::single(memory.clone());
    shared.feed = Some(Arc::new(DeadFeed));
    let (a, b) = (instance(shared.clone()).await, instance(shared).await);
    assert_eq!(b.feed_live(), Some(false));
    a.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let user = a.login(AuthMethod::Token, "alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let grant = a.issue_tokens(&user, &CLIENT).await.unwrap();
    let principal = b.authenticate_token(&grant.access.token).await.unwrap();
    // A revokes; no message reaches B, yet B refuses the token: the store says so.
    a.end_all_logins(&principal, &CLIENT).await.unwrap();
    assert!(matches!(b.authenticate_token(&grant.access.token).await, Err(Error::TokenInvalid(_))));
    // The message A could not send waits for the next flush.
    assert!(a.flush().await.is_err(), "still undeliverable, and said so");
}

// --- The revocation feed over PostgreSQL ----------------------------------------------------

/// Runs `sql` on its own connection to `url`.
async fn run_sql(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// Terminates the backends of every feed subscription on the database of `url`; how many.
async fn terminate_feed_listeners(url: &str) -> i64 {
    count(
        url,
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = '{}'",
            postgres_feed::APPLICATION_NAME
        ),
    )
    .await
}

/// `tessera_revocation_feed_connections_total` of an instance.
fn feed_connections(auth: &Authenticator) -> u64 {
    let mut out = String::new();
    auth.render_metrics(&mut out);
    let line =
        out.lines().find_map(|l| l.strip_prefix("tessera_revocation_feed_connections_total "));
    line.unwrap().parse().unwrap()
}

#[tokio::test]
async fn postgres_feed_reaches_every_subscriber_and_skips_malformed_notifications() {
    // SQL_ASCII: NOTIFY takes any bytes, even a payload that is not UTF-8.
    let url = postgres_database_with(
        "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    )
    .await;
    let a = PostgresStore::connect(&url).await.unwrap();
    let b = PostgresStore::connect(&url).await.unwrap();
    let other = PostgresStore::connect(&postgres_database().await).await.unwrap();
    let mut on_a = a.subscribe().await.unwrap();
    let mut on_b = b.subscribe().await.unwrap();
    let mut elsewhere = other.subscribe().await.unwrap();
    run_sql(
        &url,
        &format!(
            "NOTIFY {0}, 'not a revocation'; NOTIFY {0}, '1 '; NOTIFY {0}, 'x sid-0';",
            postgres_feed::CHANNEL
        ),
    )
    .await;
    b.publish("sid-1", ts(60)).await.unwrap();
    for subscription in [&mut on_a, &mut on_b] {
        let got = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
        assert_eq!(got.unwrap().unwrap(), ("sid-1".to_string(), ts(60)));
    }
    let nothing = tokio::time::timeout(Duration::from_millis(300), elsewhere.next()).await;
    assert!(nothing.is_err(), "another database is another deployment");

    // A payload PostgreSQL cannot send as UTF-8 makes it end the listeners' connections: they
    // report the loss (so their followers resync), nothing panics.
    let sql = format!("SELECT pg_notify('{}', E'1800000000000 \\xff')", postgres_feed::CHANNEL);
    run_sql(&url, &sql).await;
    for subscription in [&mut on_a, &mut on_b] {
        let lost = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
        assert!(matches!(lost, Ok(Err(StoreError::Unavailable(_)))), "{lost:?}");
    }
}

#[tokio::test]
async fn a_postgres_feed_subscription_reports_a_terminated_connection() {
    let url = postgres_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let mut subscription = store.subscribe().await.unwrap();
    assert_eq!(terminate_feed_listeners(&url).await, 1, "one listener, found by its name");
    let lost = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
    assert!(matches!(lost, Ok(Err(StoreError::Unavailable(_)))), "{lost:?}");
    // It stays lost (the listener is not quietly reconnected); a new subscription works.
    assert!(subscription.next().await.is_err());
    let mut again = store.subscribe().await.unwrap();
    store.publish("sid-2", ts(60)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), again.next()).await;
    assert_eq!(got.unwrap().unwrap(), ("sid-2".to_string(), ts(60)));
}

/// A TCP relay to a server that can be frozen: it then keeps every connection open and passes
/// nothing either way, as a network that died without a word.
struct Relay {
    port: u16,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    async fn to(target: (String, u16)) -> Relay {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let pump = |mut from: tokio::net::tcp::OwnedReadHalf,
                    mut to: tokio::net::tcp::OwnedWriteHalf,
                    frozen: Arc<AtomicBool>| async move {
            let mut buf = vec![0; 16 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buf).await {
                if frozen.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        };
        let relay = Relay { port, frozen: frozen.clone() };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = tokio::net::TcpStream::connect(&target).await.unwrap();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, frozen.clone()));
                tokio::spawn(pump(server_read, client_write, frozen.clone()));
            }
        });
        relay
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_postgres_feed_subscription_notices_a_silently_dead_connection() {
    use std::str::FromStr;
    let url = postgres_database().await;
    let options = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
    let (host, port) = (options.get_host().to_owned(), options.get_port());
    let relay = Relay::to((host.clone(), port)).await;
    let relayed = url.replacen(&format!("{host}:{port}"), &format!("127.0.0.1:{}", relay.port), 1);
    assert_ne!(relayed, url);
    let direct = PostgresStore::connect(&url).await.unwrap();
    let through_relay = PostgresStore::connect(&relayed).await.unwrap();
    let mut subscription = through_relay.subscribe().await.unwrap();
    direct.publish("sid-1", ts(60)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
    assert_eq!(got.unwrap().unwrap(), ("sid-1".to_string(), ts(60)));
    // Quiet but alive: its checks pass, nothing is reported.
    let quiet = tokio::time::timeout(Duration::from_millis(2500), subscription.next()).await;
    assert!(quiet.is_err(), "{quiet:?}");

    relay.freeze();
    let frozen_at = std::time::Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(5), subscription.next()).await;
    assert!(matches!(lost, Ok(Err(StoreError::Unavailable(_)))), "{lost:?}");
    eprintln!("a silently dead feed connection was noticed after {:?}", frozen_at.elapsed());
}

#[tokio::test]
async fn a_revocation_on_one_instance_reaches_the_others_through_postgres() {
    let url = postgres_database().await;
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let mut shared = Stores::single(store.clone());
    shared.feed = Some(store.clone());
    let (a, b) = (instance(shared.clone()).await, instance(shared).await);
    wait_until("both follow the feed", async || {
        a.feed_live() == Some(true) && b.feed_live() == Some(true)
    })
    .await;
    a.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let user = a.login(AuthMethod::Token, "alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let grant = a.issue_tokens(&user, &CLIENT).await.unwrap();
    let principal = b.authenticate_token(&grant.access.token).await.unwrap();

    // Logout everywhere on A: B, which trusts its revocation set while the feed is live,
    // refuses the access token once the notification lands (not through a resubscription).
    a.end_all_logins(&principal, &CLIENT).await.unwrap();
    wait_until("B refuses the token", async || {
        b.authenticate_token(&grant.access.token).await.is_err()
    })
    .await;
    assert_eq!((feed_connections(&b), b.feed_live()), (1, Some(true)));

    // The listeners' connections are cut: both notice, resubscribe, and hear the next one.
    assert_eq!(terminate_feed_listeners(&url).await, 2);
    wait_until("both follow the feed again", async || {
        (feed_connections(&a), feed_connections(&b)) == (2, 2)
            && a.feed_live() == Some(true)
            && b.feed_live() == Some(true)
    })
    .await;
    let user = a.login(AuthMethod::Token, "alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let grant = a.issue_tokens(&user, &CLIENT).await.unwrap();
    b.authenticate_token(&grant.access.token).await.unwrap();
    a.revoke_token(&SecretString::from(grant.access.token.clone()), &CLIENT).await.unwrap();
    wait_until("B refuses the second token", async || {
        b.authenticate_token(&grant.access.token).await.is_err()
    })
    .await;
    assert_eq!((feed_connections(&b), b.feed_live()), (2, Some(true)));
}

/// A start of one instance against `url`: its own connection pool, the shared keys.
async fn start_instance(
    url: &str,
    kek: &KeyEncryptionKey,
    alg: Algorithm,
    now: Timestamp,
) -> Result<(KeySet, ServerSecret), SealedKeysError> {
    let store = PostgresStore::connect(url).await.unwrap();
    let loaded = store.load_or_create_keys(kek, alg, None, now, KEEP_RETIRED).await;
    store.close().await;
    loaded
}

const KEEP_RETIRED: Duration = Duration::from_secs(330);

fn kek(byte: u8) -> KeyEncryptionKey {
    KeyEncryptionKey::from_bytes(&[byte; 32]).unwrap()
}

async fn count(url: &str, sql: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let n: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_share_one_signing_key_and_one_secret_in_postgres() {
    let url = postgres_database().await;
    // Four instances, connected first, then released at once to load their keys.
    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    let mut starts = Vec::new();
    for _ in 0..4 {
        let store = PostgresStore::connect(&url).await.unwrap();
        let barrier = barrier.clone();
        starts.push(tokio::spawn(async move {
            barrier.wait().await;
            let loaded = store
                .load_or_create_keys(&kek(1), Algorithm::EdDSA, None, ts(0), KEEP_RETIRED)
                .await;
            store.close().await;
            loaded
        }));
    }
    let mut loaded = Vec::new();
    for start in starts {
        loaded.push(start.await.unwrap().unwrap());
    }
    let (first_keys, first_secret) = &loaded[0];
    let kid = first_keys.signing().public().kid().to_owned();
    for (keys, secret) in &loaded {
        assert_eq!(keys.signing().public().kid(), kid, "one signing key");
        assert_eq!(keys.jwks_json(), first_keys.jwks_json(), "one JWKS");
        assert_eq!(secret, first_secret, "one server secret");
    }
    assert_eq!(count(&url, "SELECT count(*) FROM signing_keys").await, 1);
    assert_eq!(count(&url, "SELECT count(*) FROM sealed_secrets").await, 1);
    // What is stored is sealed: the public key is in the JWKS, the private key's row is
    // ciphertext that only the KEK opens (checked by the wrong-KEK start below).
    assert_eq!(count(&url, "SELECT count(*) FROM signing_keys WHERE sealed IS NULL").await, 0);

    // A later start finds the same key and secret.
    let (again, secret) = start_instance(&url, &kek(1), Algorithm::EdDSA, ts(60)).await.unwrap();
    assert_eq!(again.signing().public().kid(), kid);
    assert_eq!(&secret, first_secret);

    // A start with another KEK fails, and changes nothing: no new key, no new secret.
    let sealed_before = count(&url, "SELECT sum(length(sealed))::BIGINT FROM signing_keys").await;
    match start_instance(&url, &kek(2), Algorithm::EdDSA, ts(60)).await {
        Err(SealedKeysError::WrongKey { what, .. }) => assert_eq!(what, "server secret"),
        other => panic!("expected a wrong-key error, got {other:?}"),
    }
    match start_instance(&url, &kek(2), Algorithm::ES256, ts(60)).await {
        Err(SealedKeysError::WrongKey { .. }) => {}
        other => panic!("expected a wrong-key error, got {other:?}"),
    }
    assert_eq!(count(&url, "SELECT count(*) FROM signing_keys").await, 1);
    assert_eq!(count(&url, "SELECT count(*) FROM sealed_secrets").await, 1);
    assert_eq!(
        count(&url, "SELECT sum(length(sealed))::BIGINT FROM signing_keys").await,
        sealed_before
    );
    let (still, _) = start_instance(&url, &kek(1), Algorithm::EdDSA, ts(60)).await.unwrap();
    assert_eq!(still.signing().public().kid(), kid, "the right KEK still opens everything");
}

#[tokio::test]
async fn postgres_keys_retire_on_an_algorithm_change_and_hs256_records_only_its_kid() {
    let url = postgres_database().await;
    let (ed, _) = start_instance(&url, &kek(1), Algorithm::EdDSA, ts(0)).await.unwrap();
    let ed_kid = ed.signing().public().kid().to_owned();

    // ES256 now: a new key signs, the EdDSA one still verifies and is in the JWKS.
    let (es, _) = start_instance(&url, &kek(1), Algorithm::ES256, ts(10)).await.unwrap();
    assert_eq!(es.signing().public().alg(), Algorithm::ES256);
    assert!(es.verifying(&ed_kid).is_some());
    assert!(es.jwks_json().contains(&ed_kid));
    let es_kid = es.signing().public().kid().to_owned();
    let (es_again, _) = start_instance(&url, &kek(1), Algorithm::ES256, ts(20)).await.unwrap();
    assert_eq!(es_again.signing().public().kid(), es_kid, "the ES256 key is reused");
    assert!(es_again.verifying(&ed_kid).is_some());

    // Once every token the EdDSA key signed has expired, it is gone, from the database too.
    let later = ts(10).plus(KEEP_RETIRED);
    let (after, _) = start_instance(&url, &kek(1), Algorithm::ES256, later).await.unwrap();
    assert_eq!(after.signing().public().kid(), es_kid);
    assert!(after.verifying(&ed_kid).is_none());
    assert!(!after.jwks_json().contains(&ed_kid));
    assert_eq!(count(&url, "SELECT count(*) FROM signing_keys").await, 1);

    // HS256: the secret is configured, only its kid is recorded; the ES256 key retires.
    let store = PostgresStore::connect(&url).await.unwrap();
    let hs_secret = secrecy::SecretSlice::from(vec![7u8; 32]);
    let (hs, _) = store
        .load_or_create_keys(&kek(1), Algorithm::HS256, Some(&hs_secret), later, KEEP_RETIRED)
        .await
        .unwrap();
    assert_eq!(hs.signing().public().alg(), Algorithm::HS256);
    assert!(hs.verifying(&es_kid).is_some(), "the retired ES256 key still verifies");
    assert_eq!(
        count(&url, "SELECT count(*) FROM signing_keys WHERE alg = 'HS256' AND sealed IS NULL")
            .await,
        1
    );
    assert_eq!(count(&url, "SELECT count(*) FROM signing_keys WHERE retired_at IS NULL").await, 1);
    assert!(matches!(
        store.load_or_create_keys(&kek(1), Algorithm::HS256, None, later, KEEP_RETIRED).await,
        Err(SealedKeysError::Key(_))
    ));
    store.close().await;
}

#[tokio::test]
async fn a_version_2_postgres_schema_is_upgraded_with_the_key_tables_and_disabled_at() {
    use sqlx::Connection;
    let url = postgres_database().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    store.insert_user(&user("u1", "alice")).await.unwrap();
    store.close().await;
    // Back to what version 2 left: no key tables, no `disabled_at` (version 4).
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "DROP TABLE signing_keys; DROP TABLE sealed_secrets; \
         ALTER TABLE users DROP COLUMN disabled_at; UPDATE tessera_schema SET version = 2",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = PostgresStore::connect(&url).await.unwrap();
    assert!(store.find_user_by_username("alice").await.unwrap().is_some());
    store.load_or_create_keys(&kek(1), Algorithm::EdDSA, None, ts(0), KEEP_RETIRED).await.unwrap();
    assert_eq!(store.find_user_by_id("u1").await.unwrap().unwrap().disabled_at, None);
    assert!(store.set_user_disabled("u1", Some(ts(3))).await.unwrap());
    assert_eq!(store.find_user_by_id("u1").await.unwrap().unwrap().disabled_at, Some(ts(3)));
    store.close().await;
    assert_eq!(count(&url, "SELECT max(version)::BIGINT FROM tessera_schema").await, 4);
}

#[tokio::test]
async fn a_feed_no_longer_followed_is_not_trusted() {
    // The follower task ends (here: aborted, as a panic would end it): the instance must not
    // keep trusting a revocation set nobody updates any more.
    let redis = Arc::new(redis_store(Duration::from_secs(1800)).await);
    let mut shared = Stores::single(Arc::new(MemoryStore::default()));
    shared.feed = Some(redis);
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let auth = Authenticator::builder(settings, shared).build().await.unwrap();
    let follower = auth.clone();
    let task = tokio::spawn(async move { follower.follow_revocation_feed().await });
    wait_until("the feed is live", async || auth.feed_live() == Some(true)).await;
    task.abort();
    let _ = task.await;
    assert_eq!(auth.feed_live(), Some(false));
}

/// A feed that takes no message and delivers none, while looking connected.
#[derive(Debug)]
struct SilentFeed;

#[derive(Debug)]
struct SilentSubscription;

#[async_trait::async_trait]
impl FeedSubscription for SilentSubscription {
    async fn next(&mut self) -> Result<(String, Timestamp), StoreError> {
        std::future::pending().await
    }
}

#[async_trait::async_trait]
impl RevocationFeed for SilentFeed {
    async fn publish(&self, _: &str, _: Timestamp) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("cut off".into()))
    }
    async fn subscribe(&self) -> Result<Box<dyn FeedSubscription>, StoreError> {
        Ok(Box::new(SilentSubscription))
    }
}

#[tokio::test(start_paused = true)]
async fn a_revocation_that_could_not_be_published_reaches_the_others_by_the_periodic_reload() {
    let mut shared = Stores::single(Arc::new(MemoryStore::default()));
    shared.feed = Some(Arc::new(SilentFeed));
    let (a, b) = (instance(shared.clone()).await, instance(shared).await);
    wait_until("B follows the feed", async || b.feed_live() == Some(true)).await;
    a.register("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let user = a.login(AuthMethod::Token, "alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let grant = a.issue_tokens(&user, &CLIENT).await.unwrap();
    let principal = b.authenticate_token(&grant.access.token).await.unwrap();
    a.end_all_logins(&principal, &CLIENT).await.unwrap();
    assert!(b.authenticate_token(&grant.access.token).await.is_ok(), "no message came");
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(matches!(b.authenticate_token(&grant.access.token).await, Err(Error::TokenInvalid(_))));
}

// --- Library conveniences: Stores constructors and a persistent data directory -------------

/// An engine as an embedding application builds one: `Auth::builder` with a data directory.
async fn embedded_engine(stores: tessera::store::Stores, dir: &std::path::Path) -> tessera::Auth {
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    tessera::Auth::builder(settings, stores).data_dir(dir).build().await.unwrap()
}

/// Registers alice and logs her in both ways; returns the session cookie and access token.
async fn alice_logged_in(auth: &tessera::Auth) -> (SecretString, String) {
    let client = tessera::store::ClientInfo::default();
    let password = SecretString::from("correct horse battery".to_owned());
    auth.register("alice", &password, &client).await.unwrap();
    let user = auth.login(AuthMethod::Session, "alice", &password, &client).await.unwrap();
    let session = auth.start_session(&user, &client).await.unwrap();
    let user = auth.login(AuthMethod::Token, "alice", &password, &client).await.unwrap();
    let grant = auth.issue_tokens(&user, &client).await.unwrap();
    (session.secret, grant.access.token)
}

#[tokio::test]
async fn an_embedded_sqlite_engine_keeps_users_sessions_and_keys_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let auth =
        embedded_engine(tessera::store::Stores::sqlite(&db).await.unwrap(), dir.path()).await;
    let (cookie, token) = alice_logged_in(&auth).await;
    let csrf = auth.csrf().token_for("sid-1");
    auth.flush().await.unwrap();
    drop(auth);

    let again =
        embedded_engine(tessera::store::Stores::sqlite(&db).await.unwrap(), dir.path()).await;
    let (principal, _) = again.authenticate_session(&cookie).await.unwrap();
    assert_eq!(principal.username, "alice");
    let principal = again.authenticate_token(&token).await.unwrap();
    assert_eq!(principal.username, "alice", "the signing key was kept");
    assert_eq!(again.csrf().token_for("sid-1"), csrf, "the server secret was kept");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secret.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the secret is readable by its owner only");
    }

    // Without a data directory the keys are new each time: the old token is refused.
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    let stores = tessera::store::Stores::sqlite(&db).await.unwrap();
    let fresh = tessera::Auth::builder(settings, stores).build().await.unwrap();
    assert!(fresh.authenticate_token(&token).await.is_err());
}

#[tokio::test]
async fn stores_on_postgres_and_redis_serve_an_embedded_engine() {
    let dir = tempfile::tempdir().unwrap();
    let stores = tessera::store::Stores::postgres(&postgres_database().await).await.unwrap();
    assert!(stores.feed.is_some(), "instances sharing PostgreSQL hear of each other's revocations");
    let stores = stores
        .with_redis(&redis_url(), redis_options(&unique_prefix(), Duration::from_secs(600)))
        .await
        .unwrap();
    let auth = embedded_engine(stores, dir.path()).await;
    let (cookie, token) = alice_logged_in(&auth).await;
    assert_eq!(auth.authenticate_session(&cookie).await.unwrap().0.username, "alice");
    assert_eq!(auth.authenticate_token(&token).await.unwrap().username, "alice");
}

/// Instances on one database that find a rotation due at the same moment make one rotation
/// between them (the advisory lock), each ends up signing with that one new key, and the
/// retired key is dropped once its tokens have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_on_postgres_rotate_a_due_key_once_between_them() {
    use tessera::store::postgres_keys::PostgresKeyRing;
    use tessera::token::{KeyPolicy, KeyRing, Rotation};

    const DAY: Duration = Duration::from_secs(86_400);
    let url = postgres_database().await;
    let kek = Arc::new(kek(3));
    let ring = |store: PostgresStore| {
        let policy =
            KeyPolicy { rotate_every: Some(DAY), ..KeyPolicy::new(Algorithm::EdDSA, KEEP_RETIRED) };
        PostgresKeyRing::new(Arc::new(store), kek.clone(), policy)
    };
    let first = ring(PostgresStore::connect(&url).await.unwrap());
    let start = first.sync(Rotation::IfDue, ts(0)).await.unwrap();
    let old = start.keys.signing().public().kid().to_owned();
    let fingerprint = first.fingerprint().await.unwrap();
    assert_eq!(fingerprint, start.fingerprint);

    let barrier = Arc::new(tokio::sync::Barrier::new(4));
    let mut syncs = Vec::new();
    for _ in 0..4 {
        let instance = ring(PostgresStore::connect(&url).await.unwrap());
        let barrier = barrier.clone();
        syncs.push(tokio::spawn(async move {
            barrier.wait().await;
            instance.sync(Rotation::Follow, ts(86_400)).await.unwrap()
        }));
    }
    let mut synced = Vec::new();
    for sync in syncs {
        synced.push(sync.await.unwrap());
    }
    let generated: Vec<&String> = synced.iter().filter_map(|s| s.generated.as_ref()).collect();
    assert_eq!(generated.len(), 1, "one rotation, not one per instance");
    let new = generated[0].clone();
    for s in &synced {
        assert_eq!(s.keys.signing().public().kid(), new, "every instance signs with it");
        assert!(s.keys.verifying(&old).is_some(), "and still verifies the old key's tokens");
        assert_eq!(s.fingerprint, synced[0].fingerprint);
    }
    assert_ne!(first.fingerprint().await.unwrap(), fingerprint, "the others notice");
    assert_eq!(count(&url, "SELECT count(*) FROM signing_keys WHERE retired_at IS NULL").await, 1);

    // Once the old key's tokens have expired, it is deleted from the table.
    let later = first.sync(Rotation::Follow, ts(86_400).plus(KEEP_RETIRED)).await.unwrap();
    assert!(later.keys.verifying(&old).is_none());
    assert_eq!(later.keys.signing().public().kid(), new);
    assert_eq!(count(&url, "SELECT count(*) FROM signing_keys").await, 1);
    let listed = first.entries(ts(86_400).plus(KEEP_RETIRED)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kid, new);
}
