//! [`RedisStore`]: Redis (or Valkey) for the state that many server instances share and that
//! must be fast and may expire by itself: sessions, throttling counters, and the revocation
//! feed between instances (pub/sub).
//!
//! Every key starts with a configurable prefix (default `tessera`), so one Redis can serve
//! several deployments. Key layout:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P:session:HEX` | hash | one session, by the hex SHA-256 of its secret id; expires with the session |
//! | `P:user-sessions:USER_ID` | sorted set | the user's sessions (`SID:HEX`), scored by their absolute deadline |
//! | `P:{throttle:HEX}:log` | sorted set | a sliding log of one throttling key (hashed: no username or IP in Redis) |
//! | `P:{account:HEX}:failures`, `…:in-flight` | sorted sets | an account's recent failed and pending logins |
//! | channel `P:revocations` | pub/sub | `UNTIL_MS SID` for each revoked token family |
//!
//! Multi-key scripts only touch keys that share a hash tag, except session insertion, which
//! writes the session and its user's index: that one needs a single Redis node (or Sentinel),
//! not Redis Cluster.
//!
//! Every command has a deadline: a Redis that does not answer fails the request (503), it never
//! holds it. The connection is re-established by itself when Redis is back.

mod feed;
mod sessions;
mod throttle;

use std::fmt;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::StoreError;

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
}

impl RedisOptions {
    /// Prefix `tessera`, a 2-second command deadline, and `session_idle_timeout`.
    pub fn new(session_idle_timeout: Duration) -> Self {
        RedisOptions {
            prefix: "tessera".to_owned(),
            session_idle_timeout,
            timeout: Duration::from_secs(2),
        }
    }
}

/// Sessions, throttling counters and the revocation feed in Redis.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    options: RedisOptions,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("RedisStore").field("prefix", &self.options.prefix).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://`, `rediss://` for TLS, `redis+unix://`).
    /// Fails if it cannot be reached now; later outages are survived by reconnecting.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        // The error of a bad URL may quote it; the URL may hold a password.
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL ({:?})", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connect = client.get_connection_manager_with_config(config);
        let conn = within(options.timeout, connect).await?;
        let store = RedisStore { client, conn, options };
        store.ping().await?;
        Ok(store)
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
