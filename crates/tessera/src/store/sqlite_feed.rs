//! The revocation feed over a SQLite file, for the processes that share one data directory: the
//! server and the `tessera` admin commands run next to it. A SQLite database has no
//! notifications, so the feed is a table, `revocation_feed` (`seq`, `sid`, `until`): publishing
//! appends a row, and a subscription polls for rows past the last one it saw every
//! [`POLL_EVERY`]. An announcement therefore reaches every follower within about that long.
//!
//! The table keeps the newest [`KEEP_ROWS`] rows. A subscriber that fell further behind (or
//! whose query fails) reports an error, and the follower resubscribes and reloads the
//! revocations from the store, as with every other feed.
//!
//! [`Stores::sqlite`](super::Stores::sqlite) has no feed (one process, nothing to tell). An
//! application that lets another process end logins on its file (the `tessera` admin
//! commands) sets it and follows it:
//! `Stores { feed: Some(store.clone()), ..Stores::single(store) }` with the session cache,
//! and [`Authenticator::follow_revocation_feed`](crate::Authenticator::follow_revocation_feed)
//! spawned once, as `tessera serve` does.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use super::sqlite::{SqliteStore, db};
use super::{FeedSubscription, RevocationFeed, StoreError};
use crate::clock::Timestamp;

/// How often a subscription looks for new rows.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// How many rows the table keeps (older ones are deleted as new ones are appended).
pub const KEEP_ROWS: i64 = 10_000;

/// Rows read per poll at most.
const BATCH: i64 = 1_000;

#[async_trait]
impl RevocationFeed for SqliteStore {
    async fn publish(&self, sid: &str, until: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let seq = sqlx::query("INSERT INTO revocation_feed (sid, until) VALUES (?, ?)")
            .bind(sid)
            .bind(until.unix_millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .last_insert_rowid();
        sqlx::query("DELETE FROM revocation_feed WHERE seq <= ?")
            .bind(seq - KEEP_ROWS)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)
    }

    async fn subscribe(&self) -> Result<Box<dyn FeedSubscription>, StoreError> {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM revocation_feed")
            .fetch_one(self.pool())
            .await
            .map_err(db)?;
        Ok(Box::new(SqliteSubscription {
            pool: self.pool().clone(),
            last,
            pending: VecDeque::new(),
        }))
    }
}

/// A subscription: the last row seen and the rows read but not yet handed out.
struct SqliteSubscription {
    pool: SqlitePool,
    last: i64,
    pending: VecDeque<(String, Timestamp)>,
}

impl std::fmt::Debug for SqliteSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSubscription").field("last", &self.last).finish_non_exhaustive()
    }
}

impl SqliteSubscription {
    /// Reads the rows after the last one seen; an error if some were deleted unseen.
    async fn poll(&mut self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT seq, sid, until FROM revocation_feed WHERE seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(self.last)
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        for row in rows {
            let seq: i64 = row.try_get("seq").map_err(db)?;
            // Sequence numbers have no gaps but those the trimming leaves.
            if seq != self.last + 1 && self.last > 0 {
                self.last = seq - 1;
                return Err(StoreError::Unavailable(
                    "the revocation feed table was trimmed past this subscriber".into(),
                ));
            }
            self.last = seq;
            let sid: String = row.try_get("sid").map_err(db)?;
            let until: i64 = row.try_get("until").map_err(db)?;
            self.pending.push_back((sid, Timestamp::from_unix_millis(until)));
        }
        Ok(())
    }
}

#[async_trait]
impl FeedSubscription for SqliteSubscription {
    async fn next(&mut self) -> Result<(String, Timestamp), StoreError> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Ok(message);
            }
            tokio::time::sleep(POLL_EVERY).await;
            self.poll().await?;
        }
    }
}
