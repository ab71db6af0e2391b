//! [`SentinelConnection`]: a connection to the master that Redis Sentinel names, which follows
//! a failover. The crate resolves a master once and has no connection manager for Sentinel, so
//! this one keeps the master's multiplexed connection and drops it as soon as a command shows
//! it is lost (a broken or silent connection, or `READONLY` from a master demoted to replica;
//! Sentinel also closes the clients of a node it reconfigures); the next command asks the
//! sentinels again and connects to the master they name. A command that meets the loss fails:
//! nothing is retried, since a script may have run before its answer was lost.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// The master's connection, shared by clones.
#[derive(Clone)]
pub(crate) struct SentinelConnection {
    shared: Arc<Shared>,
}

struct Shared {
    /// Asks the sentinels; locked by the one task that looks the master up.
    sentinels: tokio::sync::Mutex<SentinelClient>,
    master: Mutex<Master>,
    config: AsyncConnectionConfig,
    /// The master's database, once connected.
    db: AtomicI64,
}

/// The current connection, if any, and how many were opened before it (so a task that saw an
/// older one fail does not drop a newer one).
#[derive(Default)]
struct Master {
    generation: u64,
    conn: Option<MultiplexedConnection>,
}

impl SentinelConnection {
    /// Not connected yet: the first command (or [`connect`](Self::connect)) asks the
    /// sentinels.
    pub(crate) fn new(sentinels: SentinelClient, config: AsyncConnectionConfig) -> Self {
        SentinelConnection {
            shared: Arc::new(Shared {
                sentinels: tokio::sync::Mutex::new(sentinels),
                master: Mutex::new(Master::default()),
                config,
                db: AtomicI64::new(0),
            }),
        }
    }

    /// Connects to the master now, if not connected.
    pub(crate) async fn connect(&self) -> RedisResult<()> {
        self.master().await.map(|_| ())
    }

    /// A client for the master the sentinels name now.
    pub(crate) async fn master_client(&self) -> RedisResult<redis::Client> {
        self.shared.sentinels.lock().await.async_get_client().await
    }

    /// The master's connection and its generation, connecting first if there is none.
    async fn master(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut sentinels = self.shared.sentinels.lock().await;
        // Another task may have connected while this one waited for the lock.
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let client = sentinels.async_get_client().await?;
        let conn = client.get_multiplexed_async_connection_with_config(&self.shared.config).await?;
        self.shared.db.store(client.get_connection_info().redis_settings().db(), Ordering::Relaxed);
        let mut master = self.lock();
        master.generation += 1;
        master.conn = Some(conn.clone());
        Ok((master.generation, conn))
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        let master = self.lock();
        master.conn.clone().map(|conn| (master.generation, conn))
    }

    /// Drops connection `generation` if it is still the current one.
    fn forget(&self, generation: u64) {
        let mut master = self.lock();
        if master.generation == generation {
            master.conn = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Master> {
        self.shared.master.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the connection if `result` shows it lost.
    fn check<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result
            && lost(e)
        {
            self.forget(generation);
        }
        result
    }
}

/// Whether `e` means the connection no longer reaches a usable master.
fn lost(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.is_timeout()
        || e.kind() == redis::ServerErrorKind::ReadOnly.into()
}

impl ConnectionLike for SentinelConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.master().await?;
            let result = conn.req_packed_command(cmd).await;
            self.check(generation, result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.master().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.check(generation, result)
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.db.load(Ordering::Relaxed)
    }
}
