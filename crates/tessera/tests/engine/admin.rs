//! The administrator's operations: the user store's listing, disabling and deleting on every
//! backend, the [`Authenticator`]'s admin methods end to end on every backend, the SQLite
//! schema migration of an existing file, and the SQLite revocation feed that carries what an
//! admin command ends to a running server's session cache.

use super::*;

use std::time::Instant;

use tessera::session::NewSession;
use tessera::{EndedLogins, TokenGrant};

/// Listing, disabling and deleting users (part of the user suite, so every backend runs it).
/// Expects `alice` (u1) and `bob` (u2).
pub(crate) async fn user_admin_suite(store: &dyn UserStore) {
    store.insert_user(&user("u3", "carol")).await.unwrap();
    let names = |users: Vec<UserRecord>| users.into_iter().map(|u| u.username).collect::<Vec<_>>();
    assert_eq!(names(store.list_users(None, 10).await.unwrap()), ["alice", "bob", "carol"]);
    assert_eq!(names(store.list_users(None, 2).await.unwrap()), ["alice", "bob"]);
    assert_eq!(names(store.list_users(Some("bob"), 2).await.unwrap()), ["carol"]);
    assert!(store.list_users(Some("carol"), 2).await.unwrap().is_empty());

    assert_eq!(store.find_user_by_id("u2").await.unwrap().unwrap().disabled_at, None);
    assert!(store.set_user_disabled("u2", Some(ts(5))).await.unwrap());
    assert_eq!(store.find_user_by_username("bob").await.unwrap().unwrap().disabled_at, Some(ts(5)));
    assert_eq!(store.find_user_by_id("u2").await.unwrap().unwrap().disabled_at, Some(ts(5)));
    let listed = store.list_users(Some("alice"), 1).await.unwrap();
    assert_eq!(listed[0].disabled_at, Some(ts(5)), "the list shows it too");
    assert!(!store.set_user_disabled("nobody", Some(ts(5))).await.unwrap());
    assert!(store.set_user_disabled("u2", None).await.unwrap());
    assert_eq!(store.find_user_by_id("u2").await.unwrap().unwrap().disabled_at, None);

    assert!(store.delete_user("u3").await.unwrap());
    assert!(!store.delete_user("u3").await.unwrap(), "already gone");
    assert!(store.find_user_by_username("carol").await.unwrap().is_none());
    assert!(store.find_user_by_id("u3").await.unwrap().is_none());
    assert_eq!(names(store.list_users(None, 10).await.unwrap()), ["alice", "bob"]);
    // The username is free again, and a user inserted disabled stays so.
    let carol = UserRecord { disabled_at: Some(ts(9)), ..user("u4", "carol") };
    store.insert_user(&carol).await.unwrap();
    assert_eq!(store.find_user_by_id("u4").await.unwrap().unwrap(), carol);
    assert!(store.delete_user("u4").await.unwrap());
}

async fn engine(stores: Stores, clock: Arc<ManualClock>) -> Authenticator {
    let mut settings = Settings::new();
    settings.password.params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    Authenticator::builder(settings, stores).clock(clock as Arc<dyn Clock>).build().await.unwrap()
}

async fn session_login(auth: &Authenticator, name: &str, password: &str) -> NewSession {
    let user = auth.login(AuthMethod::Session, name, &pw(password), &CLIENT).await.unwrap();
    auth.start_session(&user, &CLIENT).await.unwrap()
}

async fn token_login(auth: &Authenticator, name: &str, password: &str) -> TokenGrant {
    let user = auth.login(AuthMethod::Token, name, &pw(password), &CLIENT).await.unwrap();
    auth.issue_tokens(&user, &CLIENT).await.unwrap()
}

async fn session_works(auth: &Authenticator, session: &NewSession) -> bool {
    auth.authenticate_session(&session.secret).await.is_ok()
}

async fn token_works(auth: &Authenticator, grant: &TokenGrant) -> bool {
    auth.authenticate_token(&grant.access.token).await.is_ok()
}

/// Every admin method of the engine, on `stores`.
async fn admin_flow(stores: Stores) {
    let clock = Arc::new(ManualClock::new(ts(0)));
    let auth = engine(stores, clock.clone()).await;
    let alice = auth.create_user("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    auth.create_user("bob", &pw(PASSWORD), &CLIENT).await.unwrap();
    assert_eq!(auth.find_user("ALICE").await.unwrap().id, alice.id, "by username, any case");
    assert_eq!(auth.find_user(&alice.id).await.unwrap().username, "alice", "by id");
    assert!(matches!(auth.find_user("nobody").await, Err(Error::NotFound)));
    let names: Vec<String> =
        auth.all_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["alice", "bob"]);

    // Disable: every login ends, access tokens included; the password is refused with a
    // distinct error only when it is right.
    let session = session_login(&auth, "alice", PASSWORD).await;
    clock.advance(Duration::from_secs(1));
    let grant = token_login(&auth, "alice", PASSWORD).await;
    let bobs = session_login(&auth, "bob", PASSWORD).await;
    let logins = auth.user_logins(&alice).await.unwrap();
    let kinds: Vec<AuthMethod> = logins.iter().map(|l| l.method).collect();
    assert_eq!(kinds, [AuthMethod::Session, AuthMethod::Token]);
    assert!(logins.iter().all(|l| !l.current));
    clock.advance(Duration::from_secs(1));
    let (disabled, ended) = auth.disable_user(&alice, &CLIENT).await.unwrap();
    assert_eq!(ended, EndedLogins { sessions: 1, tokens: 1 });
    assert_eq!(disabled.disabled_at, Some(ts(2)));
    assert_eq!(auth.find_user("alice").await.unwrap().disabled_at, Some(ts(2)));
    assert!(!session_works(&auth, &session).await);
    assert!(!token_works(&auth, &grant).await);
    assert!(auth.refresh(&grant.refresh.token, &CLIENT).await.is_err());
    assert!(auth.user_logins(&alice).await.unwrap().is_empty());
    assert!(matches!(
        auth.login(AuthMethod::Session, "alice", &pw(PASSWORD), &CLIENT).await,
        Err(Error::UserDisabled)
    ));
    assert!(matches!(
        auth.login(AuthMethod::Token, "alice", &pw(OTHER), &CLIENT).await,
        Err(Error::InvalidCredentials)
    ));
    // A login that checked the password before the flag was set cannot start afterwards.
    assert!(matches!(auth.start_session(&alice, &CLIENT).await, Err(Error::UserDisabled)));
    assert!(matches!(auth.issue_tokens(&alice, &CLIENT).await, Err(Error::UserDisabled)));
    assert!(auth.user_logins(&alice).await.unwrap().is_empty(), "nothing left behind");
    assert!(session_works(&auth, &bobs).await, "bob is untouched");
    // Disabling again keeps the first date.
    clock.advance(Duration::from_secs(1));
    let (again, _) = auth.disable_user(&disabled, &CLIENT).await.unwrap();
    assert_eq!(again.disabled_at, Some(ts(2)));

    // Enable: logins work again.
    let enabled = auth.enable_user(&again, &CLIENT).await.unwrap();
    assert_eq!(enabled.disabled_at, None);
    let session = session_login(&auth, "alice", PASSWORD).await;

    // Set the password: the policy holds; by default every login ends.
    assert!(matches!(
        auth.set_password(&alice, &pw("short"), true, &CLIENT).await,
        Err(Error::Validation { field: "password", .. })
    ));
    let kept = auth.set_password(&alice, &pw(OTHER), false, &CLIENT).await.unwrap();
    assert_eq!(kept, EndedLogins::default());
    assert!(session_works(&auth, &session).await, "--keep-sessions");
    let grant = token_login(&auth, "alice", OTHER).await;
    let ended = auth.set_password(&alice, &pw(PASSWORD), true, &CLIENT).await.unwrap();
    assert_eq!(ended, EndedLogins { sessions: 1, tokens: 1 });
    assert!(!session_works(&auth, &session).await);
    assert!(!token_works(&auth, &grant).await);
    assert!(matches!(
        auth.login(AuthMethod::Session, "alice", &pw(OTHER), &CLIENT).await,
        Err(Error::InvalidCredentials)
    ));
    let hash = auth.find_user("alice").await.unwrap().password_hash;
    assert!(hash.starts_with("$argon2id$"), "stored as argon2id");

    // End one login, or all.
    let one = session_login(&auth, "alice", PASSWORD).await;
    let two = session_login(&auth, "alice", PASSWORD).await;
    let grant = token_login(&auth, "alice", PASSWORD).await;
    let sid = one.session.record().sid.clone();
    let bob = auth.find_user("bob").await.unwrap();
    assert!(matches!(auth.end_user_logins(&bob, Some(&sid), &CLIENT).await, Err(Error::NotFound)));
    assert!(matches!(
        auth.end_user_logins(&alice, Some("no-such-login"), &CLIENT).await,
        Err(Error::NotFound)
    ));
    let ended = auth.end_user_logins(&alice, Some(&sid), &CLIENT).await.unwrap();
    assert_eq!(ended, EndedLogins { sessions: 1, tokens: 0 });
    assert!(!session_works(&auth, &one).await);
    assert!(session_works(&auth, &two).await);
    let family = grant.refresh.family.sid.clone();
    let ended = auth.end_user_logins(&alice, Some(&family), &CLIENT).await.unwrap();
    assert_eq!(ended, EndedLogins { sessions: 0, tokens: 1 });
    assert!(!token_works(&auth, &grant).await);
    let grant = token_login(&auth, "alice", PASSWORD).await;
    let ended = auth.end_user_logins(&alice, None, &CLIENT).await.unwrap();
    assert_eq!(ended, EndedLogins { sessions: 1, tokens: 1 });
    assert!(!session_works(&auth, &two).await);
    assert!(!token_works(&auth, &grant).await);

    // Delete: the user and every login are gone; the name is free again.
    let session = session_login(&auth, "alice", PASSWORD).await;
    let grant = token_login(&auth, "alice", PASSWORD).await;
    let ended = auth.delete_user(&alice, &CLIENT).await.unwrap();
    assert_eq!(ended, EndedLogins { sessions: 1, tokens: 1 });
    assert!(matches!(auth.find_user("alice").await, Err(Error::NotFound)));
    assert!(matches!(auth.find_user(&alice.id).await, Err(Error::NotFound)));
    assert!(!session_works(&auth, &session).await);
    assert!(!token_works(&auth, &grant).await);
    assert!(matches!(
        auth.login(AuthMethod::Session, "alice", &pw(PASSWORD), &CLIENT).await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(auth.delete_user(&alice, &CLIENT).await, Err(Error::NotFound)));
    assert!(session_works(&auth, &bobs).await, "bob is untouched");
    let names: Vec<String> =
        auth.all_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["bob"]);
    let new_alice = auth.create_user("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    assert_ne!(new_alice.id, alice.id);

    // Every change is audited, about alice.
    let filter = AuditFilter {
        user: Some("alice".into()),
        kind: None,
        outcome: None,
        ip: None,
        since: None,
        until: None,
        limit: 1000,
    };
    let events = auth.audit_events(&filter).await.unwrap();
    for kind in [
        AuditKind::UserDisable,
        AuditKind::UserEnable,
        AuditKind::PasswordReset,
        AuditKind::LoginEnd,
        AuditKind::LogoutEverywhere,
        AuditKind::UserDelete,
    ] {
        assert!(
            events.iter().any(|e| e.kind == kind
                && e.outcome == AuditOutcome::Success
                && e.user_id.as_deref() == Some(alice.id.as_str())),
            "no {kind} event"
        );
    }
    let refused = events.iter().find(|e| e.reason.as_deref() == Some("forbidden"));
    assert!(refused.is_some_and(|e| e.kind == AuditKind::Login), "the disabled login");
}

const OTHER: &str = "staple lantern orbit";

#[tokio::test]
async fn admin_operations_on_memory() {
    admin_flow(Stores::memory()).await;
}

#[tokio::test]
async fn admin_operations_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    admin_flow(Stores::sqlite(dir.path().join("t.db")).await.unwrap()).await;
}

#[tokio::test]
async fn admin_operations_on_postgres() {
    let url = postgres_database().await;
    admin_flow(Stores::postgres(&url).await.unwrap()).await;
}

#[tokio::test]
async fn an_sqlite_file_of_the_previous_version_opens_and_gains_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.insert_user(&user("u1", "alice")).await.unwrap();
    store.close().await;
    // Back to schema version 2, the one before `disabled_at` and the feed table.
    {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::raw_sql(
            "ALTER TABLE users DROP COLUMN disabled_at; DROP TABLE revocation_feed; \
             PRAGMA user_version = 2;",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let alice = store.find_user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(alice, user("u1", "alice"), "kept, and enabled");
    assert!(store.set_user_disabled("u1", Some(ts(3))).await.unwrap());
    assert_eq!(store.find_user_by_id("u1").await.unwrap().unwrap().disabled_at, Some(ts(3)));
    store.publish("s1", ts(10)).await.unwrap();
    store.close().await;
}

#[tokio::test]
async fn the_sqlite_feed_delivers_in_order_and_reports_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.publish("before", ts(1)).await.unwrap();
    let mut subscription = store.subscribe().await.unwrap();
    // Another process on the same file publishes.
    let other = SqliteStore::open(&path).await.unwrap();
    other.publish("a", ts(10)).await.unwrap();
    other.publish("b", ts(20)).await.unwrap();
    assert_eq!(next(&mut subscription).await.unwrap(), ("a".into(), ts(10)), "only what is new");
    assert_eq!(next(&mut subscription).await.unwrap(), ("b".into(), ts(20)));
    // Rows deleted before this subscriber read them: it says so instead of skipping them.
    other.publish("c", ts(30)).await.unwrap();
    other.publish("d", ts(40)).await.unwrap();
    {
        use sqlx::Connection;
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::raw_sql("DELETE FROM revocation_feed WHERE sid = 'c'")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    assert!(next(&mut subscription).await.is_err());
    // The follower would resubscribe: a new subscription starts after the newest row.
    let mut again = store.subscribe().await.unwrap();
    other.publish("e", ts(50)).await.unwrap();
    assert_eq!(next(&mut again).await.unwrap(), ("e".into(), ts(50)));
    other.close().await;
    store.close().await;
}

/// The next message, within 10 s.
async fn next(
    subscription: &mut Box<dyn FeedSubscription>,
) -> Result<(String, Timestamp), StoreError> {
    tokio::time::timeout(Duration::from_secs(10), subscription.next()).await.unwrap()
}

/// What `tessera serve` builds on SQLite: the cached session store, and the feed over the file.
async fn sqlite_server_stores(path: &std::path::Path) -> Stores {
    let store = Arc::new(SqliteStore::open(path).await.unwrap());
    let feed: Arc<dyn RevocationFeed> = store.clone();
    Stores { feed: Some(feed), ..Stores::single(store) }.with_session_cache(1000)
}

/// Polls `check` until it holds, for at most 20 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn what_another_process_ends_on_sqlite_reaches_a_server_caching_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let clock = Arc::new(ManualClock::new(ts(0)));
    let server = engine(sqlite_server_stores(&path).await, clock.clone()).await;
    let follower = {
        let server = server.clone();
        tokio::spawn(async move { server.follow_revocation_feed().await })
    };
    eventually("the feed is followed", async || server.feed_live() == Some(true)).await;
    let alice = server.create_user("alice", &pw(PASSWORD), &CLIENT).await.unwrap();
    let one = session_login(&server, "alice", PASSWORD).await;
    let two = session_login(&server, "alice", PASSWORD).await;
    let grant = token_login(&server, "alice", PASSWORD).await;
    assert!(session_works(&server, &one).await, "and now cached");

    // The admin command: another engine on the same file.
    let admin = engine(sqlite_server_stores(&path).await, clock.clone()).await;
    let sid = one.session.record().sid.clone();
    admin.end_user_logins(&alice, Some(&sid), &CLIENT).await.unwrap();
    eventually("one session ends on the server", async || !session_works(&server, &one).await)
        .await;
    assert!(session_works(&server, &two).await, "the other one stays");
    assert!(token_works(&server, &grant).await);

    admin.disable_user(&alice, &CLIENT).await.unwrap();
    eventually("the other session ends", async || !session_works(&server, &two).await).await;
    eventually("the access token is refused", async || !token_works(&server, &grant).await).await;
    assert!(matches!(
        server.login(AuthMethod::Session, "alice", &pw(PASSWORD), &CLIENT).await,
        Err(Error::UserDisabled)
    ));
    follower.abort();
}
