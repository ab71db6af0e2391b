//! [`RedisStore`]: Redis (or Valkey) for the state that many server instances share and that
//! must be fast and may expire by itself: sessions, throttling counters, and the revocation
//! feed between instances (pub/sub).
//!
//! Behind the URL stands one node, a Redis Cluster, or a master found through Sentinel
//! ([`Topology`]). Every key starts with a configurable prefix (default
//! `tessera`), so one Redis can serve several deployments. Key layout:
//!
//! | key | type | holds | cluster slot |
//! |---|---|---|---|
//! | `P:session:HEX` | hash | one session, by the hex SHA-256 of its secret id; expires with the session | the whole key's |
//! | `P:user-sessions:USER_ID` | sorted set | the user's sessions (`SID:HEX`), scored by their absolute deadline | the whole key's |
//! | `P:{throttle:HEX}:log` | sorted set | a sliding log of one throttling key (hashed: no username or IP in Redis) | tag `throttle:HEX` |
//! | `P:{account:HEX}:failures`, `…:in-flight` | sorted sets | an account's recent failed and pending logins | tag `account:HEX`, shared |
//! | channel `P:revocations` | pub/sub | `UNTIL_MS SID` for each revoked token family | (every node) |
//!
//! No script or transaction touches two hash slots, so all of it runs on Redis Cluster: an
//! account's two throttling keys share a hash tag and are updated by one script; a session and
//! its user's index are written by two commands, the index first and cleaned last, so the index
//! never misses a live session (a session is found by its digest alone, in one round trip, so
//! its key cannot carry the user's tag). The one multi-key command, the `DEL` of a user's
//! sessions, is split by slot by the cluster client.
//!
//! Every command has a deadline: a Redis that does not answer fails the request (503), it never
//! holds it. The connection is re-established by itself when Redis is back.

mod connection;
mod feed;
mod sentinel;
mod sessions;
mod throttle;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::StoreError;
use connection::{RedisConnection, Subscriber};

pub use feed::RedisSubscription;

/// Settings of a [`RedisStore`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// The first part of every key and of the feed's channel name.
    pub prefix: String,
    /// The sessions' idle timeout, so a session key expires when the session does.
    pub session_idle_timeout: Duration,
    /// How long one command (or connecting) may take before the request fails.
    pub timeout: Duration,
    /// What the URL points at.
    pub topology: Topology,
}

/// What stands behind the Redis URL given to [`RedisStore::connect`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Topology {
    /// One Redis or Valkey server (`redis://host:6379`).
    #[default]
    Single,
    /// A Redis Cluster: the URL is a comma-separated list of nodes, any one of which that
    /// answers is enough to find the others.
    Cluster,
    /// The master that Redis Sentinel names `master`: the URL is a comma-separated list of
    /// sentinels, each reached with its own credentials; the master is reached with the first
    /// URL's username, password, database and TLS mode. A failover is followed: the sentinels
    /// are asked again whenever the master is lost.
    Sentinel {
        /// The name the sentinels monitor the master under.
        master: String,
    },
}

impl RedisOptions {
    /// Prefix `tessera`, a 2-second command deadline, one node, and `session_idle_timeout`.
    pub fn new(session_idle_timeout: Duration) -> Self {
        RedisOptions {
            prefix: "tessera".to_owned(),
            session_idle_timeout,
            timeout: Duration::from_secs(2),
            topology: Topology::Single,
        }
    }
}

/// Sessions, throttling counters and the revocation feed in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConnection,
    subscriber: Subscriber,
    options: RedisOptions,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("RedisStore").field("prefix", &self.options.prefix).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://`, `rediss://` for TLS, `redis+unix://`), or to
    /// the cluster or sentinels it lists (comma-separated) as `options.topology` says. Fails if
    /// it cannot be reached now; later outages are survived by reconnecting.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let (conn, subscriber) = connection::open(url, &options).await?;
        let store = RedisStore { conn, subscriber, options };
        store.ping().await?;
        store.check_server().await?;
        Ok(store)
    }

    /// Refuses a Redis older than 7.0 (the scripts use `PEXPIRETIME`), and warns when Redis
    /// may evict keys under memory pressure: an evicted session index or failure counter
    /// would let a session escape logout everywhere, or reset a lockout.
    async fn check_server(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        // A cluster answers for each node: every version found must do.
        let info: redis::Value =
            self.run(redis::cmd("INFO").arg("server").query_async(&mut conn)).await?;
        let mut texts = Vec::new();
        collect_text(&info, &mut texts);
        let versions: Vec<&str> = texts
            .iter()
            .flat_map(|text| text.lines())
            .filter_map(|line| line.strip_prefix("redis_version:"))
            .map(str::trim)
            .collect();
        let too_old = |version: &&str| {
            version.split('.').next().and_then(|m| m.parse::<u32>().ok()).is_none_or(|m| m < 7)
        };
        let found = versions.iter().copied().find(too_old);
        if let Some(version) = found.or(versions.is_empty().then_some("unknown")) {
            return Err(StoreError::Unavailable(format!(
                "Redis 7.0 or newer (or Valkey) is required; the server reports version {version}"
            )));
        }
        // Managed services may refuse CONFIG: then there is nothing to check.
        let policy: redis::RedisResult<Vec<String>> =
            redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy").query_async(&mut conn).await;
        if let Ok(policy) = policy
            && let Some(policy) = policy.get(1)
            && policy != "noeviction"
        {
            tracing::warn!(
                policy = %policy,
                "Redis may evict keys under memory pressure (maxmemory-policy); set it to \
                 noeviction: an evicted session index or failure counter weakens logout \
                 everywhere and login throttling"
            );
        }
        Ok(())
    }

    /// Answers if Redis is reachable.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pong: String = self.run(redis::cmd("PING").query_async(&mut conn)).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!("unexpected PING answer {pong:?}")))
        }
    }

    /// Runs one Redis call under the command deadline.
    async fn run<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        within(self.options.timeout, call).await
    }

    /// `PREFIX:rest`.
    fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}:{rest}", self.options.prefix)
    }
}

/// Every string inside a reply (a cluster wraps per-node answers in maps and arrays).
fn collect_text(value: &redis::Value, out: &mut Vec<String>) {
    match value {
        redis::Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        redis::Value::SimpleString(text) => out.push(text.clone()),
        redis::Value::VerbatimString { text, .. } => out.push(text.clone()),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().for_each(|item| collect_text(item, out));
        }
        redis::Value::Map(pairs) => pairs.iter().for_each(|(_, v)| collect_text(v, out)),
        _ => {}
    }
}

/// `call` with a deadline, its errors as [`StoreError::Unavailable`].
async fn within<T>(
    deadline: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(redis_error(&e)),
        Err(_) => Err(StoreError::Unavailable(format!("Redis did not answer within {deadline:?}"))),
    }
}

fn redis_error(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("Redis: {e}"))
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}
