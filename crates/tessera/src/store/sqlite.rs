//! The embedded default: every store trait on one SQLite file in WAL mode, through sqlx.
//!
//! The schema is versioned with `PRAGMA user_version` and migrated forward when the store
//! opens. Write transactions start with `BEGIN IMMEDIATE`, so a writer waits for the lock
//! (up to the busy timeout) instead of failing half-way.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::rows::{self, Columns};
use super::{
    AuditStore, FamilyRecord, RefreshStore, RefreshTokenRecord, RevocationStore, Rotation,
    SessionRecord, SessionStore, StoreError, UserRecord, UserStore,
};
use crate::audit::{AuditEvent, AuditFilter, AuditKind, AuditOutcome};
use crate::clock::Timestamp;
use crate::crypto::Digest;
use crate::principal::AuthMethod;

/// Schema migrations, applied in order; the index + 1 is the `user_version` after each.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY NOT NULL,
    sid          TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL,
    username     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ip           TEXT,
    user_agent   TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE INDEX sessions_last_seen ON sessions(last_seen_at);
CREATE TABLE refresh_families (
    sid          TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    username     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX refresh_families_user ON refresh_families(user_id);
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    sid        TEXT NOT NULL REFERENCES refresh_families(sid) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    spent_at   INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_family ON refresh_tokens(sid);
CREATE TABLE revocations (
    sid   TEXT PRIMARY KEY NOT NULL,
    until INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    reason     TEXT,
    user_id    TEXT,
    username   TEXT,
    method     TEXT,
    sid        TEXT,
    ip         TEXT,
    user_agent TEXT
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_username ON audit_events(username, at);
CREATE INDEX audit_events_user_id ON audit_events(user_id, at);
"#,
    r#"
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
CREATE TABLE revocation_feed (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    sid   TEXT NOT NULL,
    until INTEGER NOT NULL
);
"#,
];

/// The columns of a user row.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, created_at, disabled_at"
    };
}

/// The columns of a session row, in the order `rows::session` reads them by name.
macro_rules! session_columns {
    () => {
        "token_hash, sid, user_id, username, created_at, last_seen_at, expires_at, ip, user_agent"
    };
}

/// The columns of a refresh-family row.
macro_rules! family_columns {
    () => {
        "sid, user_id, username, created_at, last_used_at, expires_at, ip, user_agent"
    };
}

/// Every kind of state in one SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Inserts users and sessions in one transaction (all or none), many rows per statement.
    /// For seeding a benchmark or importing users, where one transaction per row takes
    /// minutes at a million rows. The columns are those of [`UserStore::insert_user`] and
    /// [`SessionStore::insert_session`].
    pub async fn insert_in_bulk(
        &self,
        users: &[UserRecord],
        sessions: &[SessionRecord],
    ) -> Result<(), StoreError> {
        // SQLite allows 32,766 bound values per statement: 500 rows of 9 stay well below.
        const ROWS: usize = 500;
        let mut tx = self.pool.begin().await.map_err(db)?;
        for chunk in users.chunks(ROWS) {
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO users (id, username, password_hash, created_at, disabled_at) ",
            );
            insert.push_values(chunk, |mut row, user| {
                row.push_bind(&user.id)
                    .push_bind(&user.username)
                    .push_bind(&user.password_hash)
                    .push_bind(user.created_at.unix_millis())
                    .push_bind(user.disabled_at.map(Timestamp::unix_millis));
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        for chunk in sessions.chunks(ROWS) {
            let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO sessions (token_hash, sid, user_id, username, created_at, \
                 last_seen_at, expires_at, ip, user_agent) ",
            );
            insert.push_values(chunk, |mut row, s| {
                row.push_bind(&s.token_hash[..])
                    .push_bind(&s.sid)
                    .push_bind(&s.user_id)
                    .push_bind(&s.username)
                    .push_bind(s.created_at.unix_millis())
                    .push_bind(s.last_seen_at.unix_millis())
                    .push_bind(s.expires_at.unix_millis())
                    .push_bind(&s.client.ip)
                    .push_bind(&s.client.user_agent);
            });
            insert.build().execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// Opens (creating if missing) the database at `path` and migrates its schema.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        // SQLite gives its -wal and -shm files the database file's mode: create it private.
        crate::fsutil::create_private_file_if_missing(path).map_err(|e| {
            StoreError::Unavailable(format!("creating SQLite database {}: {e}", path.display()))
        })?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!("opening SQLite database {}: {e}", path.display()))
            })?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let version: i64 =
            sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await.map_err(db)?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {version}, newer than this tessera ({known}); \
                 upgrade tessera or restore a backup"
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            sqlx::raw_sql(*migration).execute(&mut *tx).await.map_err(db)?;
            // PRAGMA takes no bound parameters; the value is our own integer.
            let set_version = format!("PRAGMA user_version = {}", index + 1);
            sqlx::raw_sql(sqlx::AssertSqlSafe(set_version)).execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// The connection pool (for the revocation feed's module).
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(crate) async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }
}

/// Maps a sqlx error: unique violations are conflicts, decoding errors corruption, anything
/// else means the store is not usable right now.
pub(crate) fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl Columns for SqliteRow {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.try_get(column).map_err(db)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        self.try_get(column).map_err(db)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        self.try_get(column).map_err(db)
    }

    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.try_get(column).map_err(db)
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        insert_user_query(user).execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    async fn find_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn find_user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn update_password_hash(
        &self,
        id: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_users(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username > ? ORDER BY username LIMIT ?"
        ))
        .bind(after.unwrap_or(""))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(rows::user)
        .collect()
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled_at: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET disabled_at = ? WHERE id = ?")
            .bind(disabled_at.map(Timestamp::unix_millis))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        insert_session_query(s).execute(&self.pool).await.map_err(db)?;
        Ok(())
    }

    async fn find_session(&self, token_hash: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE token_hash = ?"))
            .bind(&token_hash[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::session)
            .transpose()
    }

    async fn touch_sessions(&self, touches: &[(Digest, Timestamp)]) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for (hash, seen) in touches {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ? AND last_seen_at < ?",
            )
            .bind(seen.unix_millis())
            .bind(&hash[..])
            .bind(seen.unix_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn delete_session(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "DELETE FROM sessions WHERE token_hash = ? RETURNING ",
            session_columns!()
        ))
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(rows::session)
        .transpose()
    }

    async fn delete_user_session(
        &self,
        user_id: &str,
        sid: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "DELETE FROM sessions WHERE sid = ? AND user_id = ? RETURNING ",
            session_columns!()
        ))
        .bind(sid)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(rows::session)
        .transpose()
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE user_id = ? ORDER BY created_at, sid"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(rows::session)
        .collect()
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
    ) -> Result<Vec<Digest>, StoreError> {
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = ? AND (? IS NULL OR sid <> ?) \
             RETURNING token_hash",
        )
        .bind(user_id)
        .bind(keep_sid)
        .bind(keep_sid)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(|row| rows::digest(row, "token_hash"))
        .collect()
    }

    async fn delete_expired_sessions(
        &self,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?")
            .bind(now.unix_millis())
            .bind(idle_cutoff.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        UserStore::ping(self).await
    }
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn create_family(
        &self,
        f: &FamilyRecord,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO refresh_families (sid, user_id, username, created_at, last_used_at, \
             expires_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&f.sid)
        .bind(&f.user_id)
        .bind(&f.username)
        .bind(f.created_at.unix_millis())
        .bind(f.last_used_at.unix_millis())
        .bind(f.expires_at.unix_millis())
        .bind(&f.client.ip)
        .bind(&f.client.user_agent)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        insert_refresh_token(&mut tx, first).await?;
        tx.commit().await.map_err(db)
    }

    async fn find_refresh_token(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<(RefreshTokenRecord, FamilyRecord)>, StoreError> {
        let row = sqlx::query(
            "SELECT t.token_hash, t.sid, t.issued_at, t.spent_at, f.user_id, f.username, \
             f.created_at, f.last_used_at, f.expires_at, f.ip, f.user_agent \
             FROM refresh_tokens t JOIN refresh_families f ON f.sid = t.sid \
             WHERE t.token_hash = ?",
        )
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((rows::refresh_token(&row)?, rows::family(&row)?)))
    }

    async fn rotate_refresh_token(
        &self,
        spent_hash: &Digest,
        successor: &RefreshTokenRecord,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.write().await?;
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = ? WHERE token_hash = ? AND spent_at IS NULL",
        )
        .bind(now.unix_millis())
        .bind(&spent_hash[..])
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if spent.rows_affected() != 1 {
            return Ok(Rotation::AlreadySpent);
        }
        insert_refresh_token(&mut tx, successor).await?;
        sqlx::query("UPDATE refresh_families SET last_used_at = ? WHERE sid = ?")
            .bind(now.unix_millis())
            .bind(&successor.sid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Rotation::Rotated)
    }

    async fn find_family(&self, sid: &str) -> Result<Option<FamilyRecord>, StoreError> {
        sqlx::query(concat!("SELECT ", family_columns!(), " FROM refresh_families WHERE sid = ?"))
            .bind(sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::family)
            .transpose()
    }

    async fn delete_family(
        &self,
        sid: &str,
        user_id: Option<&str>,
        revoke_until: Timestamp,
    ) -> Result<Option<FamilyRecord>, StoreError> {
        let mut tx = self.write().await?;
        // Tokens go with their family (ON DELETE CASCADE).
        let family = sqlx::query(concat!(
            "DELETE FROM refresh_families WHERE sid = ? AND (? IS NULL OR user_id = ?) RETURNING ",
            family_columns!()
        ))
        .bind(sid)
        .bind(user_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        .as_ref()
        .map(rows::family)
        .transpose()?;
        if family.is_some() || user_id.is_none() {
            insert_revocation(&mut tx, sid, revoke_until).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(family)
    }

    async fn list_user_families(&self, user_id: &str) -> Result<Vec<FamilyRecord>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            family_columns!(),
            " FROM refresh_families WHERE user_id = ? ORDER BY created_at, sid"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(rows::family)
        .collect()
    }

    async fn delete_user_families(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
        revoke_until: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.write().await?;
        let rows = sqlx::query(
            "DELETE FROM refresh_families WHERE user_id = ? AND (? IS NULL OR sid <> ?) \
             RETURNING sid",
        )
        .bind(user_id)
        .bind(keep_sid)
        .bind(keep_sid)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        let sids: Vec<String> =
            rows.iter().map(|row| row.try_get("sid").map_err(db)).collect::<Result<_, _>>()?;
        for sid in &sids {
            insert_revocation(&mut tx, sid, revoke_until).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(sids)
    }

    async fn delete_expired_families(
        &self,
        now: Timestamp,
        idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM refresh_families WHERE expires_at <= ? OR last_used_at <= ?")
                .bind(now.unix_millis())
                .bind(idle_cutoff.unix_millis())
                .execute(&self.pool)
                .await
                .map_err(db)?;
        Ok(done.rows_affected())
    }
}

async fn insert_refresh_token(
    tx: &mut Transaction<'static, Sqlite>,
    token: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, sid, issued_at, spent_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&token.token_hash[..])
    .bind(&token.sid)
    .bind(token.issued_at.unix_millis())
    .bind(token.spent_at.map(Timestamp::unix_millis))
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Records a revocation (keeping the later deadline) inside a write transaction.
async fn insert_revocation(
    tx: &mut Transaction<'static, Sqlite>,
    sid: &str,
    until: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO revocations (sid, until) VALUES (?, ?) \
         ON CONFLICT (sid) DO UPDATE SET until = max(until, excluded.until)",
    )
    .bind(sid)
    .bind(until.unix_millis())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl RevocationStore for SqliteStore {
    async fn insert_revocation(&self, sid: &str, until: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_revocation(&mut tx, sid, until).await?;
        tx.commit().await.map_err(db)
    }

    async fn is_revoked(&self, sid: &str, now: Timestamp) -> Result<bool, StoreError> {
        let until: Option<i64> = sqlx::query_scalar("SELECT until FROM revocations WHERE sid = ?")
            .bind(sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        Ok(until.is_some_and(|until| until > now.unix_millis()))
    }

    async fn active_revocations(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>, StoreError> {
        let rows = sqlx::query("SELECT sid, until FROM revocations WHERE until > ?")
            .bind(now.unix_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| Ok((row.try_get("sid").map_err(db)?, rows::timestamp(row, "until")?)))
            .collect()
    }

    async fn delete_expired_revocations(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revocations WHERE until <= ?")
            .bind(now.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, event, outcome, reason, user_id, username, method, \
             sid, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(event.at.unix_millis())
        .bind(event.kind.as_str())
        .bind(event.outcome.as_str())
        .bind(event.reason.as_deref())
        .bind(event.user_id.as_deref())
        .bind(event.username.as_deref())
        .bind(event.method.map(AuthMethod::as_str))
        .bind(event.sid.as_deref())
        .bind(event.client.ip.as_deref())
        .bind(event.client.user_agent.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        // Every condition is written out; an absent value binds NULL and passes.
        let rows = sqlx::query(
            "SELECT at, event, outcome, reason, user_id, username, method, sid, ip, user_agent \
             FROM audit_events \
             WHERE (?1 IS NULL OR username = ?1 OR user_id = ?1) \
               AND (?2 IS NULL OR event = ?2) \
               AND (?3 IS NULL OR outcome = ?3) \
               AND (?4 IS NULL OR ip = ?4) \
               AND (?5 IS NULL OR at >= ?5) \
               AND (?6 IS NULL OR at < ?6) \
             ORDER BY at DESC, id DESC LIMIT ?7",
        )
        .bind(filter.user.as_deref())
        .bind(filter.kind.map(AuditKind::as_str))
        .bind(filter.outcome.map(AuditOutcome::as_str))
        .bind(filter.ip.as_deref())
        .bind(filter.since.map(Timestamp::unix_millis))
        .bind(filter.until.map(Timestamp::unix_millis))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(rows::audit_event).collect()
    }

    async fn delete_audit_before(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < ?")
            .bind(cutoff.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

fn insert_user_query(
    user: &UserRecord,
) -> sqlx::query::Query<'_, Sqlite, <Sqlite as sqlx::Database>::Arguments> {
    sqlx::query(
        "INSERT INTO users (id, username, password_hash, created_at, disabled_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.password_hash)
    .bind(user.created_at.unix_millis())
    .bind(user.disabled_at.map(Timestamp::unix_millis))
}

fn insert_session_query(
    s: &SessionRecord,
) -> sqlx::query::Query<'_, Sqlite, <Sqlite as sqlx::Database>::Arguments> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, sid, user_id, username, created_at, last_seen_at, \
         expires_at, ip, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&s.token_hash[..])
    .bind(&s.sid)
    .bind(&s.user_id)
    .bind(&s.username)
    .bind(s.created_at.unix_millis())
    .bind(s.last_seen_at.unix_millis())
    .bind(s.expires_at.unix_millis())
    .bind(&s.client.ip)
    .bind(&s.client.user_agent)
}
