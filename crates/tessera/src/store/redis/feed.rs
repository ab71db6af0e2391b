//! The revocation feed over Redis pub/sub: one channel, `PREFIX:revocations`, each message
//! `UNTIL_MS SID`. A subscription pings Redis on its own connection every second, so a
//! connection that died without a word is noticed within about two seconds. In a Redis
//! Cluster the classic `PUBLISH` used here reaches every node, so a subscription listens on
//! any one node; under Sentinel it listens on the master, and loses its connection (so the
//! subscriber subscribes again, to the new master) when Sentinel reconfigures that node.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt as _;
use redis::aio::{PubSubSink, PubSubStream};

use super::{RedisStore, within};
use crate::clock::Timestamp;
use crate::store::{FeedSubscription, RevocationFeed, StoreError, feed_message};

/// How often a subscription checks its connection.
const PING_EVERY: Duration = Duration::from_secs(1);

impl RedisStore {
    fn channel(&self) -> String {
        self.key(format_args!("revocations"))
    }
}

#[async_trait]
impl RevocationFeed for RedisStore {
    async fn publish(&self, sid: &str, until: Timestamp) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let message = feed_message::encode(sid, until);
        let _receivers: i64 = self
            .run(redis::cmd("PUBLISH").arg(self.channel()).arg(message).query_async(&mut conn))
            .await?;
        Ok(())
    }

    async fn subscribe(&self) -> Result<Box<dyn FeedSubscription>, StoreError> {
        let timeout = self.options.timeout;
        let pubsub = self.subscriber.pubsub(timeout).await?;
        let (mut sink, stream) = pubsub.split();
        within(timeout, sink.subscribe(self.channel())).await?;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Box::new(RedisSubscription { sink, stream, ping, timeout }))
    }
}

/// A live subscription to the revocation channel.
pub struct RedisSubscription {
    sink: PubSubSink,
    stream: PubSubStream,
    ping: tokio::time::Interval,
    timeout: Duration,
}

impl std::fmt::Debug for RedisSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSubscription").finish_non_exhaustive()
    }
}

#[async_trait]
impl FeedSubscription for RedisSubscription {
    async fn next(&mut self) -> Result<(String, Timestamp), StoreError> {
        loop {
            tokio::select! {
                message = self.stream.next() => {
                    let Some(message) = message else {
                        return Err(StoreError::Unavailable("Redis closed the subscription".into()));
                    };
                    let payload: String = message.get_payload().map_err(|e| super::redis_error(&e))?;
                    match feed_message::decode(&payload) {
                        Some(revocation) => return Ok(revocation),
                        None => tracing::warn!("revocation feed: ignoring a malformed message"),
                    }
                }
                _ = self.ping.tick() => {
                    let _: redis::Value = within(self.timeout, self.sink.ping()).await?;
                }
            }
        }
    }
}
