//! [`MemoryThrottle`]: throttling counters in this process's memory, the default when one
//! server instance does all the counting. Exact sliding logs; every map is bounded by what
//! the limits let in and swept by [`ThrottleStore::sweep`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::{AttemptOutcome, StoreError, ThrottleStore};
use crate::clock::Timestamp;

/// Failed and in-flight logins of one account.
#[derive(Debug, Default)]
struct Account {
    failures: VecDeque<Timestamp>,
    in_flight: u32,
}

/// Throttling counters in memory.
#[derive(Default)]
pub struct MemoryThrottle {
    accounts: Mutex<HashMap<String, Account>>,
    /// Sliding logs of recent events, by key, with their window.
    logs: Mutex<HashMap<String, (Duration, VecDeque<Timestamp>)>>,
}

impl std::fmt::Debug for MemoryThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Usernames and IPs are personal data: print nothing of them.
        f.debug_struct("MemoryThrottle").finish_non_exhaustive()
    }
}

#[async_trait]
impl ThrottleStore for MemoryThrottle {
    async fn take(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let mut logs = lock(&self.logs);
        let (log_window, log) = logs.entry(key.to_owned()).or_default();
        *log_window = window;
        while log.front().is_some_and(|t| t.plus(window) <= now) {
            log.pop_front();
        }
        if log.len() >= limit.max(1) as usize {
            return Ok(Some(log.front().map_or(window, |oldest| oldest.plus(window).since(now))));
        }
        log.push_back(now);
        Ok(None)
    }

    async fn begin_attempt(
        &self,
        account: &str,
        _attempt: &str,
        max_failures: u32,
        window: Duration,
        now: Timestamp,
    ) -> Result<Option<Duration>, StoreError> {
        let mut accounts = lock(&self.accounts);
        let entry = accounts.entry(account.to_owned()).or_default();
        while entry.failures.front().is_some_and(|t| t.plus(window) <= now) {
            entry.failures.pop_front();
        }
        let max = max_failures as usize;
        if entry.failures.len() >= max {
            let unlock = entry.failures.front().map_or(now.plus(window), |t| t.plus(window));
            return Ok(Some(unlock.since(now)));
        }
        // Attempts still being checked may all turn out to be failures.
        if entry.failures.len() + entry.in_flight as usize >= max {
            return Ok(Some(Duration::from_secs(1)));
        }
        entry.in_flight += 1;
        Ok(None)
    }

    async fn end_attempt(
        &self,
        account: &str,
        _attempt: &str,
        outcome: AttemptOutcome,
        max_failures: u32,
        _window: Duration,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut accounts = lock(&self.accounts);
        let Some(entry) = accounts.get_mut(account) else { return Ok(()) };
        entry.in_flight = entry.in_flight.saturating_sub(1);
        match outcome {
            AttemptOutcome::Failed => {
                entry.failures.push_back(now);
                while entry.failures.len() > max_failures as usize {
                    entry.failures.pop_front();
                }
            }
            AttemptOutcome::Succeeded => entry.failures.clear(),
            AttemptOutcome::Abandoned => {}
        }
        if entry.in_flight == 0 && entry.failures.is_empty() {
            accounts.remove(account);
        }
        Ok(())
    }

    async fn sweep(&self, window: Duration, now: Timestamp) -> Result<(), StoreError> {
        lock(&self.accounts).retain(|_, a| {
            a.in_flight > 0 || a.failures.back().is_some_and(|last| last.plus(window) > now)
        });
        lock(&self.logs)
            .retain(|_, (window, log)| log.back().is_some_and(|last| last.plus(*window) > now));
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sweep_forgets_stale_state_only() {
        let throttle = MemoryThrottle::default();
        let window = Duration::from_secs(15 * 60);
        let t = Timestamp::from_unix_seconds(1_800_000_000);
        let fail = async |account: &str, now| {
            assert_eq!(throttle.begin_attempt(account, "a", 5, window, now).await.unwrap(), None);
            let failed = AttemptOutcome::Failed;
            throttle.end_attempt(account, "a", failed, 5, window, now).await.unwrap();
        };
        fail("old", t).await;
        assert_eq!(throttle.take("login:x", 30, Duration::from_secs(60), t).await.unwrap(), None);
        let later = t.plus(window);
        fail("new", later).await;
        throttle.sweep(window, later).await.unwrap();
        assert!(!lock(&throttle.accounts).contains_key("old"));
        assert!(lock(&throttle.accounts).contains_key("new"));
        assert!(lock(&throttle.logs).is_empty());
    }
}
