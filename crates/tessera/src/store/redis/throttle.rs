//! Throttling counters in Redis, shared by every instance: each rule is one Lua script, so a
//! check and its count are one atomic step however many instances ask at once. Keys are the
//! SHA-256 of the throttling key or account name (no username or IP is written to Redis) and
//! expire with their window.

use std::time::Duration;

use async_trait::async_trait;
use std::sync::LazyLock;

use redis::Script;

use super::{RedisStore, hex};
use crate::clock::Timestamp;
use crate::crypto::{random_bytes, sha256};
use crate::store::{AttemptOutcome, StoreError, ThrottleStore};

/// How long an attempt counts as in flight if its instance never reports the outcome (it
/// crashed, or lost Redis meanwhile).
const IN_FLIGHT_FOR: Duration = Duration::from_secs(60);

/// KEYS: log. ARGV: now, window, limit, member. -1 if admitted, else ms to wait.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return -1
",
    )
});

/// KEYS: failures, in flight. ARGV: now, window, max failures, attempt, in-flight lifetime.
/// -1 if admitted, else ms to wait.
static BEGIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[5]))
local failures = redis.call('ZCARD', KEYS[1])
if failures >= max then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + window - now
end
if failures + redis.call('ZCARD', KEYS[2]) >= max then return 1000 end
redis.call('ZADD', KEYS[2], now, ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return -1
",
    )
});

/// KEYS: failures, in flight. ARGV: outcome, now, window, max failures, attempt.
static END: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREM', KEYS[2], ARGV[5])
if ARGV[1] == 'failed' then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1))
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
elseif ARGV[1] == 'succeeded' then
  redis.call('DEL', KEYS[1])
end
return 1
",
    )
});

impl RedisStore {
    /// `P:{kind:HEX}`: a hash tag per throttled name, so an account's two keys share a slot.
    fn throttle_tag(&self, kind: &str, name: &str) -> String {
        self.key(format_args!("{{{kind}:{}}}", hex(&sha256(name.as_bytes())[..16])))
    }

    fn account_keys(&self, account: &str) -> (String, String) {
        let tag = self.throttle_tag("account", account);
        (format!("{tag}:failures"), format!("{tag}:in-flight"))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A script's answer: -1 admitted, else how long to wait.
fn verdict(answer: i64) -> Option<Duration> {
    (answer >= 0).then(|| Duration::from_millis(answer.unsigned_abs()))
}

#[async_trait]
impl ThrottleStore for RedisStore {
    async fn take(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let member =
            hex(&random_bytes::<12>().map_err(|e| StoreError::Unavailable(e.to_string()))?);
        let mut conn = self.conn.clone();
        let answer: i64 = self
            .run(
                TAKE.key(format!("{}:log", self.throttle_tag("throttle", key)))
                    .arg(now.unix_millis())
                    .arg(millis(window))
                    .arg(limit)
                    .arg(member)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(verdict(answer))
    }

    async fn begin_attempt(
        &self,
        account: &str,
        attempt: &str,
        max_failures: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let (failures, in_flight) = self.account_keys(account);
        let mut conn = self.conn.clone();
        let answer: i64 = self
            .run(
                BEGIN
                    .key(failures)
                    .key(in_flight)
                    .arg(now.unix_millis())
                    .arg(millis(window))
                    .arg(max_failures)
                    .arg(attempt)
                    .arg(millis(IN_FLIGHT_FOR))
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(verdict(answer))
    }

    async fn end_attempt(
        &self,
        account: &str,
        attempt: &str,
        outcome: AttemptOutcome,
        max_failures: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (failures, in_flight) = self.account_keys(account);
        let outcome = match outcome {
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Abandoned => "abandoned",
        };
        let mut conn = self.conn.clone();
        let _: i64 = self
            .run(
                END.key(failures)
                    .key(in_flight)
                    .arg(outcome)
                    .arg(now.unix_millis())
                    .arg(millis(window))
                    .arg(max_failures)
                    .arg(attempt)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(())
    }

    async fn sweep(&self, _failure_window: Duration, _now: Timestamp) -> Result<(), StoreError> {
        // Every key expires with its window.
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        RedisStore::ping(self).await
    }
}
