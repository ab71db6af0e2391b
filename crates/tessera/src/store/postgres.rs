//! A shared backend: every store trait on one PostgreSQL database, through sqlx, so several
//! server instances can serve the same users, sessions and tokens.
//!
//! The schema mirrors the SQLite store's (timestamps as `BIGINT` Unix milliseconds, digests as
//! `BYTEA`) and is versioned in a one-row `tessera_schema` table. Migrations run when the store
//! connects, inside one transaction that first takes a transaction-scoped advisory lock, so
//! instances starting together migrate one after the other instead of racing.
//!
//! Read-modify-write operations are single conditional statements (a refresh token is spent by
//! `UPDATE ... WHERE spent_at IS NULL`, whose row lock and re-check under `READ COMMITTED` give
//! concurrent rotations exactly one winner); multi-statement changes run in one transaction.
//!
//! Signing keys and the server secret, sealed, are loaded by [`super::postgres_keys`]; the
//! revocation feed over `LISTEN`/`NOTIFY` is in [`super::postgres_feed`].

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::rows::{self, Columns};
use super::{
    AuditStore, FamilyRecord, RefreshStore, RefreshTokenRecord, RevocationStore, Rotation,
    SessionRecord, SessionStore, StoreError, UserRecord, UserStore,
};
use crate::audit::{AuditEvent, AuditFilter, AuditKind, AuditOutcome};
use crate::clock::Timestamp;
use crate::crypto::Digest;
use crate::principal::AuthMethod;

/// Key of the advisory lock held while migrating (`"tessera\0"` in ASCII), so concurrent
/// instances do not apply the same migration twice.
const MIGRATION_LOCK: i64 = 0x7465_7373_6572_6100;

/// Schema migrations, applied in order; the index + 1 is `tessera_schema.version` after each.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE TABLE sessions (
    token_hash   BYTEA PRIMARY KEY NOT NULL,
    sid          TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL,
    username     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE INDEX sessions_last_seen ON sessions(last_seen_at);
CREATE TABLE refresh_families (
    sid          TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    username     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX refresh_families_user ON refresh_families(user_id);
CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY NOT NULL,
    sid        TEXT NOT NULL REFERENCES refresh_families(sid) ON DELETE CASCADE,
    issued_at  BIGINT NOT NULL,
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(sid);
CREATE TABLE revocations (
    sid   TEXT PRIMARY KEY NOT NULL,
    until BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE audit_events (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
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
    // Signing keys and the server secret, sealed under the configured key-encryption key
    // (store/postgres_keys.rs). `sealed` is NULL for HS256, whose secret is configured.
    r#"
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY NOT NULL,
    alg        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT,
    sealed     BYTEA
);
CREATE TABLE sealed_secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    created_at BIGINT NOT NULL,
    sealed     BYTEA NOT NULL
);
"#, // Users an administrator has disabled (`tessera user disable`).
    r#"
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
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

/// Every kind of state in one PostgreSQL database, shared by any number of instances.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) and
    /// migrates its schema. Errors never include the password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Unavailable(scrub(
                url,
                format!("invalid PostgreSQL URL {}: {e}", redact_url(url)),
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Unavailable(scrub(
                    url,
                    format!("connecting to PostgreSQL at {}: {e}", redact_url(url)),
                ))
            })?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        // Released when the transaction ends, whichever way it ends.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS tessera_schema (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let versions: Vec<i32> = sqlx::query_scalar("SELECT version FROM tessera_schema")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
        let version = match versions[..] {
            [] => {
                sqlx::query("INSERT INTO tessera_schema (version) VALUES (0)")
                    .execute(&mut *tx)
                    .await
                    .map_err(db)?;
                0
            }
            [version] => i64::from(version),
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "tessera_schema holds {} rows instead of one",
                    versions.len()
                )));
            }
        };
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::Corrupt(format!(
                "the database has schema version {version}, newer than this tessera ({known}); \
                 upgrade tessera or restore a backup"
            )));
        }
        if version < 0 {
            return Err(StoreError::Corrupt(format!("the schema version {version} is negative")));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            sqlx::raw_sql(*migration).execute(&mut *tx).await.map_err(db)?;
            let next = i32::try_from(index + 1)
                .map_err(|_| StoreError::Corrupt("too many migrations".into()))?;
            sqlx::query("UPDATE tessera_schema SET version = $1")
                .bind(next)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    pub(super) async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(db)
    }

    /// The connection pool (for the revocation feed, [`super::postgres_feed`]).
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// `url` without its user info (and so its password) and without its query string (which may
/// carry `password=`): `postgres://host:port/database`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparseable URL)".into();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// Removes the password of `url`, should it appear in `message` (as a driver error might
/// echo it), as written in the URL.
fn scrub(url: &str, message: String) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?', '#']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty());
    match password {
        Some(password) => message.replace(password, "[redacted]"),
        None => message,
    }
}

/// Maps a sqlx error: unique violations are conflicts, decoding errors corruption, anything
/// else means the store is not usable right now.
pub(super) fn db(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

impl Columns for PgRow {
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
impl UserStore for PostgresStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at, disabled_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.created_at.unix_millis())
        .bind(user.disabled_at.map(Timestamp::unix_millis))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn find_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn find_user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
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
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
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
            " FROM users WHERE username > $1 ORDER BY username LIMIT $2"
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
        let done = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2")
            .bind(disabled_at.map(Timestamp::unix_millis))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
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
impl SessionStore for PostgresStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, sid, user_id, username, created_at, last_seen_at, \
             expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn find_session(&self, token_hash: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!("SELECT ", session_columns!(), " FROM sessions WHERE token_hash = $1"))
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
        // One statement for the whole batch; a digest listed twice keeps its latest time, and
        // a row only ever moves forward. Rows are locked in digest order first, so instances
        // flushing overlapping batches at once wait for each other instead of deadlocking.
        let hashes: Vec<&[u8]> = touches.iter().map(|(hash, _)| &hash[..]).collect();
        let seen: Vec<i64> = touches.iter().map(|(_, at)| at.unix_millis()).collect();
        sqlx::query(
            "WITH t AS (SELECT hash, max(seen) AS seen \
                        FROM UNNEST($1::BYTEA[], $2::BIGINT[]) AS u(hash, seen) GROUP BY hash), \
                  locked AS (SELECT s.token_hash FROM sessions AS s JOIN t ON s.token_hash = t.hash \
                             WHERE s.last_seen_at < t.seen ORDER BY s.token_hash FOR UPDATE OF s) \
             UPDATE sessions AS s SET last_seen_at = GREATEST(s.last_seen_at, t.seen) \
             FROM t, locked \
             WHERE s.token_hash = t.hash AND s.token_hash = locked.token_hash",
        )
        .bind(hashes)
        .bind(seen)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn delete_session(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        sqlx::query(concat!(
            "DELETE FROM sessions WHERE token_hash = $1 RETURNING ",
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
            "DELETE FROM sessions WHERE sid = $1 AND user_id = $2 RETURNING ",
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
            " FROM sessions WHERE user_id = $1 ORDER BY created_at, sid"
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
            "DELETE FROM sessions WHERE user_id = $1 AND ($2::TEXT IS NULL OR sid <> $2) \
             RETURNING token_hash",
        )
        .bind(user_id)
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
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
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
impl RefreshStore for PostgresStore {
    async fn create_family(
        &self,
        f: &FamilyRecord,
        first: &RefreshTokenRecord,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "INSERT INTO refresh_families (sid, user_id, username, created_at, last_used_at, \
             expires_at, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
             WHERE t.token_hash = $1",
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
        // Compare-and-set: a concurrent rotation of the same token waits on this row's lock,
        // then re-checks `spent_at IS NULL` against the committed row and matches nothing.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL",
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
        sqlx::query("UPDATE refresh_families SET last_used_at = $1 WHERE sid = $2")
            .bind(now.unix_millis())
            .bind(&successor.sid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Rotation::Rotated)
    }

    async fn find_family(&self, sid: &str) -> Result<Option<FamilyRecord>, StoreError> {
        sqlx::query(concat!("SELECT ", family_columns!(), " FROM refresh_families WHERE sid = $1"))
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
            "DELETE FROM refresh_families WHERE sid = $1 AND ($2::TEXT IS NULL OR user_id = $2) \
             RETURNING ",
            family_columns!()
        ))
        .bind(sid)
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
            " FROM refresh_families WHERE user_id = $1 ORDER BY created_at, sid"
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
            "DELETE FROM refresh_families WHERE user_id = $1 AND ($2::TEXT IS NULL OR sid <> $2) \
             RETURNING sid",
        )
        .bind(user_id)
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
        let done = sqlx::query(
            "DELETE FROM refresh_families WHERE expires_at <= $1 OR last_used_at <= $2",
        )
        .bind(now.unix_millis())
        .bind(idle_cutoff.unix_millis())
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }
}

async fn insert_refresh_token(
    tx: &mut Transaction<'static, Postgres>,
    token: &RefreshTokenRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, sid, issued_at, spent_at) \
         VALUES ($1, $2, $3, $4)",
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

/// Records a revocation (keeping the later deadline) inside a transaction.
async fn insert_revocation(
    tx: &mut Transaction<'static, Postgres>,
    sid: &str,
    until: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO revocations (sid, until) VALUES ($1, $2) \
         ON CONFLICT (sid) DO UPDATE SET until = GREATEST(revocations.until, excluded.until)",
    )
    .bind(sid)
    .bind(until.unix_millis())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl RevocationStore for PostgresStore {
    async fn insert_revocation(&self, sid: &str, until: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        insert_revocation(&mut tx, sid, until).await?;
        tx.commit().await.map_err(db)
    }

    async fn is_revoked(&self, sid: &str, now: Timestamp) -> Result<bool, StoreError> {
        let until: Option<i64> = sqlx::query_scalar("SELECT until FROM revocations WHERE sid = $1")
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
        let rows = sqlx::query("SELECT sid, until FROM revocations WHERE until > $1")
            .bind(now.unix_millis())
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter()
            .map(|row| Ok((row.try_get("sid").map_err(db)?, rows::timestamp(row, "until")?)))
            .collect()
    }

    async fn delete_expired_revocations(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revocations WHERE until <= $1")
            .bind(now.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, event, outcome, reason, user_id, username, method, \
             sid, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
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
        // Every condition is written out; an absent value binds NULL and passes. The casts give
        // PostgreSQL a type for parameters that are only ever compared with NULL.
        let rows = sqlx::query(
            "SELECT at, event, outcome, reason, user_id, username, method, sid, ip, user_agent \
             FROM audit_events \
             WHERE ($1::TEXT IS NULL OR username = $1 OR user_id = $1) \
               AND ($2::TEXT IS NULL OR event = $2) \
               AND ($3::TEXT IS NULL OR outcome = $3) \
               AND ($4::TEXT IS NULL OR ip = $4) \
               AND ($5::BIGINT IS NULL OR at >= $5) \
               AND ($6::BIGINT IS NULL OR at < $6) \
             ORDER BY at DESC, id DESC LIMIT $7",
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
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1")
            .bind(cutoff.unix_millis())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::{redact_url, scrub};

    #[test]
    fn urls_lose_their_credentials() {
        let url = "postgres://tessera:s3cret@db.example:5432/auth?password=s3cret&sslmode=require";
        assert_eq!(redact_url(url), "postgres://db.example:5432/auth");
        assert_eq!(redact_url("postgres://localhost/auth"), "postgres://localhost/auth");
        assert_eq!(redact_url("not a url s3cret"), "(unparseable URL)");
        assert_eq!(scrub(url, "failed for s3cret".into()), "failed for [redacted]");
        assert_eq!(scrub("postgres://u@h/d", "nothing".into()), "nothing");
    }
}
