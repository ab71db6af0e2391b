//! Sessions in Redis: one hash per session, keyed by the digest of its secret id and expiring
//! with the session (absolute deadline or idle deadline, whichever comes first, plus a minute
//! so a request just past the deadline is told `session_expired` rather than `unauthorized`);
//! a sorted set per user indexes them for listing and logout everywhere.
//!
//! The index entry is written before the session and once more after it, and removed only
//! after the session is deleted or once past the session's absolute deadline, so the index
//! never misses a live session: a listing or a logout everywhere racing a login (which may
//! see the entry before the session exists and drop it) cannot leave that session out of
//! reach of the next logout. Entries whose session has gone are skipped until their deadline.
//! No command touches a session and its index at once (they may live in different hash slots
//! of a Redis Cluster); commands over several sessions go out concurrently, one per session,
//! on the one multiplexed connection (or to each session's node in a cluster).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use std::sync::LazyLock;

use redis::Script;

use super::{RedisStore, hex};
use crate::clock::Timestamp;
use crate::crypto::Digest;
use crate::store::{ClientInfo, SessionRecord, SessionStore, StoreError};

/// How long a session key outlives its deadline.
const GRACE: Duration = Duration::from_secs(60);

/// KEYS: user index. ARGV: index deadline, member, now. Adds the member, forgets entries
/// whose session is past its absolute deadline, and moves the key's expiry out to the
/// deadline (never in).
static INDEX: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
if redis.call('PEXPIRETIME', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return 1
",
    )
});

/// KEYS: session. ARGV: session deadline, then the session's field/value pairs. 0 if the
/// session exists.
static INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
",
    )
});

/// KEYS: session. ARGV: seen (ms), idle timeout (ms), grace (ms). Moves `last_seen_at`
/// forward only, and the key's deadline with it.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local f = redis.call('HMGET', KEYS[1], 'last_seen_at', 'expires_at')
if not f[1] or not f[2] then return 0 end
local seen = tonumber(ARGV[1])
if seen > tonumber(f[1]) then
  redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1])
  local deadline = math.min(tonumber(f[2]), seen + tonumber(ARGV[2])) + tonumber(ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', deadline))
end
return 1
",
    )
});

impl RedisStore {
    fn session_key(&self, token_hash: &Digest) -> String {
        self.key(format_args!("session:{}", hex(token_hash)))
    }

    fn index_key(&self, user_id: &str) -> String {
        self.key(format_args!("user-sessions:{user_id}"))
    }

    /// When the key of a session last seen at `last_seen` should expire.
    fn session_deadline(&self, expires_at: Timestamp, last_seen: Timestamp) -> i64 {
        let idle = last_seen.plus(self.options.session_idle_timeout);
        expires_at.min(idle).plus(GRACE).unix_millis()
    }

    /// The user's index entries as (sid, digest hex).
    async fn index_entries(&self, user_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = self
            .run(
                redis::cmd("ZRANGE")
                    .arg(self.index_key(user_id))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(members
            .into_iter()
            .filter_map(|m| m.rsplit_once(':').map(|(sid, hex)| (sid.to_owned(), hex.to_owned())))
            .collect())
    }

    async fn delete_by_key(&self, key: String) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let (fields, _): (HashMap<String, String>, u64) =
            self.run(redis::pipe().atomic().hgetall(&key).del(&key).query_async(&mut conn)).await?;
        let Some(record) = parse(&fields, digest_of_key(&key))? else { return Ok(None) };
        let member = format!("{}:{}", record.sid, hex(&record.token_hash));
        let _: u64 = self
            .run(
                redis::cmd("ZREM")
                    .arg(self.index_key(&record.user_id))
                    .arg(member)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(Some(record))
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = self.session_key(&session.token_hash);
        let member = format!("{}:{}", session.sid, hex(&session.token_hash));
        let mut index = INDEX.prepare_invoke();
        index
            .key(self.index_key(&session.user_id))
            .arg(session.expires_at.plus(GRACE).unix_millis())
            .arg(member)
            .arg(session.created_at.unix_millis());
        // The index first: a session is never live without its entry. (On a conflict, which
        // only a repeated insert can cause, the entry names the session that exists.)
        let _: i64 = self.run(index.invoke_async(&mut conn)).await?;
        let mut call = INSERT.prepare_invoke();
        call.key(&key).arg(self.session_deadline(session.expires_at, session.last_seen_at));
        for (field, value) in fields(session) {
            call.arg(field).arg(value);
        }
        let inserted: i64 = self.run(call.invoke_async(&mut conn)).await?;
        if inserted != 1 {
            return Err(StoreError::Conflict);
        }
        // And again: a logout everywhere that ran in between removed the entry before the
        // session existed.
        let _: i64 = self.run(index.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn find_session(&self, token_hash: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let fields: HashMap<String, String> = self
            .run(redis::cmd("HGETALL").arg(self.session_key(token_hash)).query_async(&mut conn))
            .await?;
        parse(&fields, Some(*token_hash))
    }

    async fn touch_sessions(&self, touches: &[(Digest, Timestamp)]) -> Result<(), StoreError> {
        if touches.is_empty() {
            return Ok(());
        }
        let idle = i64::try_from(self.options.session_idle_timeout.as_millis()).unwrap_or(i64::MAX);
        let grace = GRACE.as_millis() as i64;
        let touches = touches.iter().map(|(hash, seen)| {
            let mut conn = self.conn.clone();
            let mut call = TOUCH.prepare_invoke();
            call.key(self.session_key(hash)).arg(seen.unix_millis()).arg(idle).arg(grace);
            async move { call.invoke_async::<i64>(&mut conn).await }
        });
        self.run(try_join_all(touches)).await?;
        Ok(())
    }

    async fn delete_session(
        &self,
        token_hash: &Digest,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.delete_by_key(self.session_key(token_hash)).await
    }

    async fn delete_user_session(
        &self,
        user_id: &str,
        sid: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let entries = self.index_entries(user_id).await?;
        let Some(digest) =
            entries.iter().find(|(s, _)| s == sid).and_then(|(_, h)| digest_from_hex(h))
        else {
            return Ok(None);
        };
        // Only the user's own session, whatever its index says.
        match self.find_session(&digest).await? {
            Some(record) if record.user_id == user_id && record.sid == sid => {
                self.delete_session(&digest).await
            }
            _ => Ok(None),
        }
    }

    async fn list_user_sessions(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let entries = self.index_entries(user_id).await?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let reads = entries.iter().map(|(_, hex)| {
            let mut conn = self.conn.clone();
            let key = self.key(format_args!("session:{hex}"));
            async move { redis::cmd("HGETALL").arg(key).query_async(&mut conn).await }
        });
        let found: Vec<HashMap<String, String>> = self.run(try_join_all(reads)).await?;
        let mut sessions = Vec::new();
        // An entry without its session is skipped, never removed here: the session may be
        // being created right now (see the module doc).
        for ((_, hex), fields) in entries.into_iter().zip(found) {
            if let Some(record) = parse(&fields, digest_from_hex(&hex))?
                && record.user_id == user_id
            {
                sessions.push(record);
            }
        }
        sessions.sort_by(|a, b| (a.created_at, &a.sid).cmp(&(b.created_at, &b.sid)));
        Ok(sessions)
    }

    async fn delete_user_sessions(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
    ) -> Result<Vec<Digest>, StoreError> {
        let doomed: Vec<(String, String)> = self
            .index_entries(user_id)
            .await?
            .into_iter()
            .filter(|(sid, _)| Some(sid.as_str()) != keep_sid)
            .collect();
        if doomed.is_empty() {
            return Ok(Vec::new());
        }
        // The sessions first, then their entries: the index never misses a live session. (In
        // a cluster, the crate splits the DEL by slot.)
        let keys: Vec<String> =
            doomed.iter().map(|(_, hex)| self.key(format_args!("session:{hex}"))).collect();
        let members: Vec<String> = doomed.iter().map(|(sid, hex)| format!("{sid}:{hex}")).collect();
        let mut conn = self.conn.clone();
        let _: u64 = self.run(redis::cmd("DEL").arg(keys).query_async(&mut conn)).await?;
        let _: u64 = self
            .run(
                redis::cmd("ZREM").arg(self.index_key(user_id)).arg(members).query_async(&mut conn),
            )
            .await?;
        Ok(doomed.iter().filter_map(|(_, hex)| digest_from_hex(hex)).collect())
    }

    async fn delete_expired_sessions(
        &self,
        _now: Timestamp,
        _idle_cutoff: Timestamp,
    ) -> Result<u64, StoreError> {
        // Session keys expire by themselves.
        Ok(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        RedisStore::ping(self).await
    }
}

/// The hash fields of a session.
fn fields(s: &SessionRecord) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("sid", s.sid.clone()),
        ("user_id", s.user_id.clone()),
        ("username", s.username.clone()),
        ("created_at", s.created_at.unix_millis().to_string()),
        ("last_seen_at", s.last_seen_at.unix_millis().to_string()),
        ("expires_at", s.expires_at.unix_millis().to_string()),
    ];
    if let Some(ip) = &s.client.ip {
        out.push(("ip", ip.clone()));
    }
    if let Some(agent) = &s.client.user_agent {
        out.push(("user_agent", agent.clone()));
    }
    out
}

/// A session from its hash fields; `None` for an empty hash (no such key).
fn parse(
    fields: &HashMap<String, String>,
    token_hash: Option<Digest>,
) -> Result<Option<SessionRecord>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let corrupt = |what: &str| StoreError::Corrupt(format!("Redis session: {what}"));
    let text = |name: &str| fields.get(name).cloned().ok_or_else(|| corrupt(name));
    let time = |name: &str| -> Result<Timestamp, StoreError> {
        let ms =
            fields.get(name).and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| corrupt(name))?;
        Ok(Timestamp::from_unix_millis(ms))
    };
    Ok(Some(SessionRecord {
        token_hash: token_hash.ok_or_else(|| corrupt("key"))?,
        sid: text("sid")?,
        user_id: text("user_id")?,
        username: text("username")?,
        created_at: time("created_at")?,
        last_seen_at: time("last_seen_at")?,
        expires_at: time("expires_at")?,
        client: ClientInfo {
            ip: fields.get("ip").cloned(),
            user_agent: fields.get("user_agent").cloned(),
        },
    }))
}

fn digest_of_key(key: &str) -> Option<Digest> {
    key.rsplit_once(':').and_then(|(_, hex)| digest_from_hex(hex))
}

fn digest_from_hex(hex: &str) -> Option<Digest> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
