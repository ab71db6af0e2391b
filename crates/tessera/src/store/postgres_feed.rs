//! The revocation feed over PostgreSQL `LISTEN`/`NOTIFY`, for instances that share a
//! [`PostgresStore`] and no Redis: one channel, [`CHANNEL`] (a notification never leaves its
//! database, so each database is a feed of its own), each payload `UNTIL_MS SID`, as on Redis.
//!
//! A subscription listens on a connection of its own (application name [`APPLICATION_NAME`],
//! outside the store's pool, so it never takes a connection from requests) and never
//! reconnects by itself: sqlx's listener would, and silently drop what was sent meanwhile, so
//! a lost connection is reported as an error instead and the follower resubscribes and reloads
//! the revocations from the store. It runs `SELECT 1` on that connection every second, so a
//! connection that died without a word is noticed within about three seconds.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPoolOptions};

use super::postgres::{PostgresStore, db};
use super::{FeedSubscription, RevocationFeed, StoreError, feed_message};
use crate::clock::Timestamp;

/// The channel revocations are announced on.
pub const CHANNEL: &str = "tessera_revocations";

/// The `application_name` of a subscription's connection, as `pg_stat_activity` shows it.
pub const APPLICATION_NAME: &str = "tessera-revocation-feed";

/// How long connecting and starting to listen may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// How often a subscription checks its connection.
const PING_EVERY: Duration = Duration::from_secs(1);

/// How long a check may take before the connection counts as lost.
const PING_DEADLINE: Duration = Duration::from_secs(2);

#[async_trait]
impl RevocationFeed for PostgresStore {
    async fn publish(&self, sid: &str, until: Timestamp) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(feed_message::encode(sid, until))
            .execute(self.pool())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<Box<dyn FeedSubscription>, StoreError> {
        let options = (*self.pool().connect_options()).clone().application_name(APPLICATION_NAME);
        // A pool of one connection, for this subscription alone.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(CONNECT_DEADLINE)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options);
        let listen = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection ends `try_recv` with `Ok(None)` and is not replaced.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok(listener)
        };
        let listener = within(CONNECT_DEADLINE, "subscribing", listen).await?;
        let start = tokio::time::Instant::now() + PING_EVERY;
        let mut ping = tokio::time::interval_at(start, PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Box::new(PostgresSubscription { listener, ping, lost: false }))
    }
}

/// A live subscription to the revocation channel.
pub struct PostgresSubscription {
    listener: PgListener,
    ping: tokio::time::Interval,
    /// Set by the first error: the listener would reconnect if used again, and whatever was
    /// sent meanwhile would be lost without a word.
    lost: bool,
}

impl std::fmt::Debug for PostgresSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSubscription").field("lost", &self.lost).finish_non_exhaustive()
    }
}

#[async_trait]
impl FeedSubscription for PostgresSubscription {
    async fn next(&mut self) -> Result<(String, Timestamp), StoreError> {
        if self.lost {
            return Err(StoreError::Unavailable("the revocation feed's connection is lost".into()));
        }
        let next = self.receive().await;
        self.lost = next.is_err();
        next
    }
}

impl PostgresSubscription {
    async fn receive(&mut self) -> Result<(String, Timestamp), StoreError> {
        loop {
            // `try_recv` may be dropped for a ping: it only consumes whole messages.
            tokio::select! {
                received = self.listener.try_recv() => {
                    let Some(notification) = received.map_err(db)? else {
                        return Err(StoreError::Unavailable(
                            "PostgreSQL closed the revocation feed's connection".into(),
                        ));
                    };
                    if notification.channel() != CHANNEL {
                        continue;
                    }
                    // UTF-8: sqlx sets `client_encoding`, and a payload PostgreSQL cannot
                    // convert (a stray byte in a `SQL_ASCII` database) makes it end the
                    // connection instead of sending it, which is reported as a loss above.
                    match feed_message::decode(notification.payload()) {
                        Some(revocation) => return Ok(revocation),
                        None => tracing::warn!("revocation feed: ignoring a malformed message"),
                    }
                }
                _ = self.ping.tick() => {
                    let ping = sqlx::query("SELECT 1").execute(&mut self.listener);
                    within(PING_DEADLINE, "checking the connection", ping).await?;
                }
            }
        }
    }
}

/// `call` with a deadline, its errors as [`StoreError::Unavailable`] (or what [`db`] makes of
/// them).
async fn within<T>(
    deadline: Duration,
    what: &str,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(db(e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "PostgreSQL did not answer within {deadline:?} ({what} on the revocation feed)"
        ))),
    }
}
