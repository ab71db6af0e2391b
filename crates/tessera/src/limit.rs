//! Throttling of the expensive or guessable operations (API.md "Running"):
//!
//! - **logins per username**: after `max_failures` failed logins within `failure_window`,
//!   further attempts for that username are refused until the oldest of those failures leaves
//!   the window. Attempts still being checked count too, so a burst of concurrent guesses gets
//!   no more tries than a sequence would. A successful login clears the count.
//! - **logins per source IP**: at most `ip_per_minute` attempts in any 60 seconds, successful
//!   or not. IPv6 clients are counted by their /64.
//! - **registrations per source IP**: at most `registrations_per_minute` (each one costs an
//!   argon2 hash).
//! - **refreshes per token login**: at most [`REFRESHES_PER_MINUTE`] per refresh family, far
//!   above what an honest client needs (one per access-token lifetime).
//!
//! All windows are exact sliding logs. The counts live in a [`ThrottleStore`]: this process's
//! memory by default, or Redis shared by every instance, so a client gains nothing by spreading
//! its guesses over several servers.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::settings::LimitSettings;
use crate::store::{AttemptOutcome, StoreError, ThrottleStore};

/// Refreshes one refresh family may make in any 60 seconds.
pub const REFRESHES_PER_MINUTE: u32 = 30;

const MINUTE: Duration = Duration::from_secs(60);

/// Throttling policy over a [`ThrottleStore`] that keeps the counts (in this process, or in
/// Redis shared by every instance).
pub struct LoginLimiter {
    settings: LimitSettings,
    clock: Arc<dyn Clock>,
    store: Arc<dyn ThrottleStore>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("settings", &self.settings)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A login attempt admitted by [`LoginLimiter::begin_login`]. Report its outcome with
/// [`failed`](Self::failed) or [`succeeded`](Self::succeeded); dropped without either (a store
/// error), it counts as neither.
#[must_use = "report whether the password was right"]
pub struct LoginAttempt {
    /// The account and the attempt's id, while the outcome is unreported.
    open: Option<(String, String)>,
    store: Arc<dyn ThrottleStore>,
    clock: Arc<dyn Clock>,
    settings: LimitSettings,
}

impl std::fmt::Debug for LoginAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginAttempt")
    }
}

impl LoginAttempt {
    /// The password was wrong (or the user unknown): a failure for the username.
    pub async fn failed(mut self) -> Result<(), Error> {
        self.end(AttemptOutcome::Failed).await
    }

    /// The password was right: the username's failures are forgiven.
    pub async fn succeeded(mut self) -> Result<(), Error> {
        self.end(AttemptOutcome::Succeeded).await
    }

    async fn end(&mut self, outcome: AttemptOutcome) -> Result<(), Error> {
        let Some((account, attempt)) = self.open.take() else { return Ok(()) };
        let s = &self.settings;
        let now = self.clock.now();
        self.store
            .end_attempt(&account, &attempt, outcome, s.max_failures, s.failure_window, now)
            .await?;
        Ok(())
    }
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        let Some((account, attempt)) = self.open.take() else { return };
        // An attempt whose check failed: release its in-flight slot in the background (a
        // backend that cannot be reached lets the slot expire by itself).
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let store = Arc::clone(&self.store);
        let (max, window, now) =
            (self.settings.max_failures, self.settings.failure_window, self.clock.now());
        runtime.spawn(async move {
            let outcome = AttemptOutcome::Abandoned;
            if let Err(e) = store.end_attempt(&account, &attempt, outcome, max, window, now).await {
                tracing::debug!("releasing an abandoned login attempt failed: {e}");
            }
        });
    }
}

impl LoginLimiter {
    /// A limiter with `settings`, counting in `store`.
    pub fn new(
        settings: LimitSettings,
        clock: Arc<dyn Clock>,
        store: Arc<dyn ThrottleStore>,
    ) -> Self {
        LoginLimiter { settings, clock, store }
    }

    /// Admits a login attempt for `username` from `ip`, or refuses it with
    /// [`Error::RateLimited`]. The attempt counts against the username until its outcome is
    /// reported, and against the IP for a minute.
    pub async fn begin_login(
        &self,
        username: &str,
        ip: Option<&str>,
    ) -> Result<LoginAttempt, Error> {
        let now = self.clock.now();
        let s = &self.settings;
        // No account can have a longer name; tracking it would only let a client grow the map.
        let tracked = username.len() <= crate::password::policy::USERNAME_MAX;
        let mut attempt = LoginAttempt {
            open: None,
            store: Arc::clone(&self.store),
            clock: Arc::clone(&self.clock),
            settings: s.clone(),
        };
        if tracked {
            let id = crate::ids::uuid_v7(now)?;
            let refused = self
                .store
                .begin_attempt(username, &id, s.max_failures, s.failure_window, now)
                .await?;
            if let Some(wait) = refused {
                return Err(rate_limited(wait));
            }
            attempt.open = Some((username.to_owned(), id));
        }
        if let Some(ip) = ip {
            // Refused here, the attempt is dropped and its slot released.
            self.take(&format!("login:{}", ip_key(ip)), s.ip_per_minute, now).await?;
        }
        Ok(attempt)
    }

    /// Counts a registration from `ip` against its per-minute budget.
    pub async fn registration(&self, ip: Option<&str>) -> Result<(), Error> {
        match ip {
            Some(ip) => {
                let key = format!("register:{}", ip_key(ip));
                self.take(&key, self.settings.registrations_per_minute, self.clock.now()).await
            }
            None => Ok(()),
        }
    }

    /// Counts a refresh of family `sid` against its per-minute budget.
    pub async fn refresh(&self, sid: &str) -> Result<(), Error> {
        self.take(&format!("refresh:{sid}"), REFRESHES_PER_MINUTE, self.clock.now()).await
    }

    /// Forgets state that no longer affects any decision.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        self.store.sweep(self.settings.failure_window, self.clock.now()).await
    }

    /// One more event for `key` if fewer than `limit` happened in the last minute.
    async fn take(&self, key: &str, limit: u32, now: Timestamp) -> Result<(), Error> {
        match self.store.take(key, limit.max(1), MINUTE, now).await? {
            None => Ok(()),
            Some(wait) => Err(rate_limited(wait)),
        }
    }
}

fn rate_limited(wait: Duration) -> Error {
    Error::RateLimited { retry_after: wait.max(Duration::from_secs(1)) }
}

/// The throttling key of a client address: IPv4 addresses as they are, IPv6 by their /64
/// (one subscriber usually holds a whole /64, so per-address limits would not limit anyone).
fn ip_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory_throttle::MemoryThrottle;

    fn setup() -> (LoginLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000)));
        let store = Arc::new(MemoryThrottle::default());
        (LoginLimiter::new(LimitSettings::default(), clock.clone(), store), clock)
    }

    fn retry_after<T: std::fmt::Debug>(result: Result<T, Error>) -> Duration {
        match result {
            Err(Error::RateLimited { retry_after }) => retry_after,
            other => panic!("expected rate limiting, got {other:?}"),
        }
    }

    async fn fail(limiter: &LoginLimiter, username: &str) {
        limiter.begin_login(username, None).await.unwrap().failed().await.unwrap();
    }

    async fn succeed(
        limiter: &LoginLimiter,
        username: &str,
        ip: Option<&str>,
    ) -> Result<(), Error> {
        limiter.begin_login(username, ip).await?.succeeded().await
    }

    #[tokio::test]
    async fn five_failures_lock_the_username_for_the_window() {
        let (limiter, clock) = setup();
        for _ in 0..5 {
            fail(&limiter, "alice").await;
            clock.advance(Duration::from_secs(60));
        }
        // The first failure was 5 minutes ago: 10 minutes of the window are left.
        assert_eq!(retry_after(limiter.begin_login("alice", None).await), Duration::from_secs(600));
        assert!(limiter.begin_login("bob", None).await.is_ok(), "other usernames are unaffected");
        clock.advance(Duration::from_secs(599));
        assert!(limiter.begin_login("alice", None).await.is_err());
        clock.advance(Duration::from_secs(1));
        assert!(
            limiter.begin_login("alice", None).await.is_ok(),
            "unlocked once the window has passed"
        );
    }

    #[tokio::test]
    async fn concurrent_attempts_count_while_they_are_checked() {
        let (limiter, _) = setup();
        let mut in_flight = Vec::new();
        for _ in 0..5 {
            in_flight.push(limiter.begin_login("alice", None).await.unwrap());
        }
        assert_eq!(retry_after(limiter.begin_login("alice", None).await), Duration::from_secs(1));
        for attempt in in_flight {
            attempt.failed().await.unwrap();
        }
        assert_eq!(retry_after(limiter.begin_login("alice", None).await), Duration::from_secs(900));
    }

    #[tokio::test]
    async fn an_attempt_that_ends_in_an_error_counts_as_nothing() {
        let (limiter, _) = setup();
        for _ in 0..10 {
            drop(limiter.begin_login("alice", None).await.unwrap());
            // The slot is released by a spawned task.
            tokio::task::yield_now().await;
        }
        assert!(limiter.begin_login("alice", None).await.is_ok());
    }

    #[tokio::test]
    async fn failures_outside_the_window_do_not_count() {
        let (limiter, clock) = setup();
        for _ in 0..4 {
            fail(&limiter, "alice").await;
        }
        clock.advance(Duration::from_secs(15 * 60));
        fail(&limiter, "alice").await;
        assert!(limiter.begin_login("alice", None).await.is_ok());
    }

    #[tokio::test]
    async fn success_clears_the_count() {
        let (limiter, _) = setup();
        for _ in 0..4 {
            fail(&limiter, "alice").await;
        }
        succeed(&limiter, "alice", None).await.unwrap();
        fail(&limiter, "alice").await;
        assert!(limiter.begin_login("alice", None).await.is_ok());
    }

    #[tokio::test]
    async fn at_most_thirty_attempts_in_any_minute_per_ip() {
        let (limiter, clock) = setup();
        for i in 0..30 {
            succeed(&limiter, &format!("user{i}"), Some("192.0.2.1")).await.unwrap();
            clock.advance(Duration::from_secs(1));
        }
        // The oldest attempt is 30 s old: 30 s to wait.
        assert_eq!(
            retry_after(limiter.begin_login("x", Some("192.0.2.1")).await),
            Duration::from_secs(30)
        );
        assert!(
            limiter.begin_login("x", Some("192.0.2.2")).await.is_ok(),
            "other IPs are unaffected"
        );
        clock.advance(Duration::from_secs(30));
        assert!(limiter.begin_login("x", Some("192.0.2.1")).await.is_ok(), "one slot freed");
        assert!(limiter.begin_login("y", Some("192.0.2.1")).await.is_err(), "only one");
        // Over any 60-second span, never more than 30.
        let (limiter, clock) = setup();
        let mut admitted = 0;
        for _ in 0..600 {
            if succeed(&limiter, "z", Some("192.0.2.9")).await.is_ok() {
                admitted += 1;
            }
            clock.advance(Duration::from_millis(100));
        }
        assert_eq!(admitted, 30, "60 s of attempts every 100 ms");
    }

    #[tokio::test]
    async fn ipv6_clients_share_the_budget_of_their_64() {
        let (limiter, _) = setup();
        for i in 0..30 {
            succeed(&limiter, "x", Some(&format!("2001:db8:1:2::{i:x}"))).await.unwrap();
        }
        assert!(limiter.begin_login("x", Some("2001:db8:1:2:ffff::1")).await.is_err(), "same /64");
        assert!(limiter.begin_login("x", Some("2001:db8:1:3::1")).await.is_ok(), "another /64");
        assert_eq!(ip_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    }

    #[tokio::test]
    async fn registrations_and_refreshes_have_budgets_of_their_own() {
        let (limiter, _) = setup();
        for _ in 0..60 {
            limiter.registration(Some("192.0.2.1")).await.unwrap();
        }
        assert!(limiter.registration(Some("192.0.2.1")).await.is_err());
        assert!(
            limiter.begin_login("x", Some("192.0.2.1")).await.is_ok(),
            "logins are counted apart"
        );
        for _ in 0..REFRESHES_PER_MINUTE {
            limiter.refresh("family-1").await.unwrap();
        }
        assert!(limiter.refresh("family-1").await.is_err());
        assert!(limiter.refresh("family-2").await.is_ok());
    }

    #[tokio::test]
    async fn an_attempt_refused_by_its_ip_leaves_no_slot_taken() {
        let (limiter, _) = setup();
        for i in 0..30 {
            succeed(&limiter, &format!("user{i}"), Some("192.0.2.1")).await.unwrap();
        }
        for _ in 0..10 {
            assert!(limiter.begin_login("alice", Some("192.0.2.1")).await.is_err());
            tokio::task::yield_now().await;
        }
        assert!(limiter.begin_login("alice", Some("192.0.2.2")).await.is_ok());
    }

    #[tokio::test]
    async fn impossible_usernames_are_not_tracked() {
        let (limiter, _) = setup();
        let long = "x".repeat(65);
        for _ in 0..10 {
            fail(&limiter, &long).await;
        }
        assert!(limiter.begin_login(&long, None).await.is_ok(), "no such account can exist");
    }
}
