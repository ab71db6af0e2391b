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
//! All windows are exact sliding logs. State is in memory and swept periodically; every map is
//! bounded by what the per-IP rules let in.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::settings::LimitSettings;

/// Refreshes one refresh family may make in any 60 seconds.
pub const REFRESHES_PER_MINUTE: u32 = 30;

const MINUTE: Duration = Duration::from_secs(60);

/// Failed and in-flight logins of one username.
#[derive(Default)]
struct Account {
    failures: VecDeque<Timestamp>,
    in_flight: u32,
}

/// Throttling state.
pub struct LoginLimiter {
    settings: LimitSettings,
    clock: Arc<dyn Clock>,
    accounts: Mutex<HashMap<String, Account>>,
    /// Sliding logs of recent events, by `kind:key` (login or registration per IP, refresh per
    /// family).
    budgets: Mutex<HashMap<String, VecDeque<Timestamp>>>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Usernames and IPs are personal data: print the settings only.
        f.debug_struct("LoginLimiter").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// A login attempt admitted by [`LoginLimiter::begin_login`]. Report its outcome with
/// [`failed`](Self::failed) or [`succeeded`](Self::succeeded); dropped without either (a store
/// error), it counts as neither.
#[must_use = "report whether the password was right"]
pub struct LoginAttempt<'a> {
    limiter: &'a LoginLimiter,
    username: Option<String>,
}

impl std::fmt::Debug for LoginAttempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginAttempt")
    }
}

impl LoginAttempt<'_> {
    /// The password was wrong (or the user unknown): a failure for the username.
    pub fn failed(mut self) {
        if let Some(username) = self.username.take() {
            let now = self.limiter.clock.now();
            let max = self.limiter.settings.max_failures as usize;
            let mut accounts = lock(&self.limiter.accounts);
            let account = accounts.entry(username).or_default();
            account.in_flight = account.in_flight.saturating_sub(1);
            account.failures.push_back(now);
            while account.failures.len() > max {
                account.failures.pop_front();
            }
        }
    }

    /// The password was right: the username's failures are forgiven.
    pub fn succeeded(mut self) {
        if let Some(username) = self.username.take() {
            let mut accounts = lock(&self.limiter.accounts);
            if let Some(account) = accounts.get_mut(&username) {
                account.in_flight = account.in_flight.saturating_sub(1);
                account.failures.clear();
                if account.in_flight == 0 {
                    accounts.remove(&username);
                }
            }
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if let Some(username) = self.username.take() {
            let mut accounts = lock(&self.limiter.accounts);
            if let Some(account) = accounts.get_mut(&username) {
                account.in_flight = account.in_flight.saturating_sub(1);
            }
        }
    }
}

impl LoginLimiter {
    /// A limiter with `settings`.
    pub fn new(settings: LimitSettings, clock: Arc<dyn Clock>) -> Self {
        LoginLimiter { settings, clock, accounts: Mutex::default(), budgets: Mutex::default() }
    }

    /// Admits a login attempt for `username` from `ip`, or refuses it with
    /// [`Error::RateLimited`]. The attempt counts against the username until its outcome is
    /// reported, and against the IP for a minute.
    pub fn begin_login(&self, username: &str, ip: Option<&str>) -> Result<LoginAttempt<'_>, Error> {
        let now = self.clock.now();
        // No account can have a longer name; tracking it would only let a client grow the map.
        let tracked = username.len() <= crate::password::policy::USERNAME_MAX;
        let mut accounts = lock(&self.accounts);
        if tracked && let Some(retry_after) = self.account_locked(accounts.get_mut(username), now) {
            return Err(Error::RateLimited { retry_after });
        }
        if let Some(ip) = ip {
            self.take(format!("login:{}", ip_key(ip)), self.settings.ip_per_minute, now)?;
        }
        if !tracked {
            return Ok(LoginAttempt { limiter: self, username: None });
        }
        accounts.entry(username.to_owned()).or_default().in_flight += 1;
        Ok(LoginAttempt { limiter: self, username: Some(username.to_owned()) })
    }

    /// Counts a registration from `ip` against its per-minute budget.
    pub fn registration(&self, ip: Option<&str>) -> Result<(), Error> {
        match ip {
            Some(ip) => self.take(
                format!("register:{}", ip_key(ip)),
                self.settings.registrations_per_minute,
                self.clock.now(),
            ),
            None => Ok(()),
        }
    }

    /// Counts a refresh of family `sid` against its per-minute budget.
    pub fn refresh(&self, sid: &str) -> Result<(), Error> {
        self.take(format!("refresh:{sid}"), REFRESHES_PER_MINUTE, self.clock.now())
    }

    /// Forgets state that no longer affects any decision.
    pub fn sweep(&self) {
        let now = self.clock.now();
        let window = self.settings.failure_window;
        lock(&self.accounts).retain(|_, a| {
            a.in_flight > 0 || a.failures.back().is_some_and(|last| last.plus(window) > now)
        });
        lock(&self.budgets).retain(|_, log| log.back().is_some_and(|last| last.plus(MINUTE) > now));
    }

    /// `Some(wait)` if the account may not try now.
    fn account_locked(&self, account: Option<&mut Account>, now: Timestamp) -> Option<Duration> {
        let account = account?;
        let window = self.settings.failure_window;
        while account.failures.front().is_some_and(|t| t.plus(window) <= now) {
            account.failures.pop_front();
        }
        let max = self.settings.max_failures as usize;
        if account.failures.len() >= max {
            let unlock = account.failures.front()?.plus(window);
            return Some(unlock.since(now).max(Duration::from_secs(1)));
        }
        // Attempts still being checked may all turn out to be failures.
        (account.failures.len() + account.in_flight as usize >= max)
            .then_some(Duration::from_secs(1))
    }

    /// One more event for `key` if fewer than `limit` happened in the last minute.
    fn take(&self, key: String, limit: u32, now: Timestamp) -> Result<(), Error> {
        let mut budgets = lock(&self.budgets);
        let log = budgets.entry(key).or_default();
        while log.front().is_some_and(|t| t.plus(MINUTE) <= now) {
            log.pop_front();
        }
        if log.len() >= limit.max(1) as usize {
            let retry_after = log.front().map_or(MINUTE, |oldest| oldest.plus(MINUTE).since(now));
            return Err(Error::RateLimited {
                retry_after: retry_after.max(Duration::from_secs(1)),
            });
        }
        log.push_back(now);
        Ok(())
    }
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn setup() -> (LoginLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000)));
        (LoginLimiter::new(LimitSettings::default(), clock.clone()), clock)
    }

    fn retry_after<T: std::fmt::Debug>(result: Result<T, Error>) -> Duration {
        match result {
            Err(Error::RateLimited { retry_after }) => retry_after,
            other => panic!("expected rate limiting, got {other:?}"),
        }
    }

    fn fail(limiter: &LoginLimiter, username: &str) {
        limiter.begin_login(username, None).unwrap().failed();
    }

    #[test]
    fn five_failures_lock_the_username_for_the_window() {
        let (limiter, clock) = setup();
        for _ in 0..5 {
            fail(&limiter, "alice");
            clock.advance(Duration::from_secs(60));
        }
        // The first failure was 5 minutes ago: 10 minutes of the window are left.
        assert_eq!(retry_after(limiter.begin_login("alice", None)), Duration::from_secs(600));
        assert!(limiter.begin_login("bob", None).is_ok(), "other usernames are unaffected");
        clock.advance(Duration::from_secs(599));
        assert!(limiter.begin_login("alice", None).is_err());
        clock.advance(Duration::from_secs(1));
        assert!(limiter.begin_login("alice", None).is_ok(), "unlocked once the window has passed");
    }

    #[test]
    fn concurrent_attempts_count_while_they_are_checked() {
        let (limiter, _) = setup();
        let in_flight: Vec<_> =
            (0..5).map(|_| limiter.begin_login("alice", None).unwrap()).collect();
        assert_eq!(retry_after(limiter.begin_login("alice", None)), Duration::from_secs(1));
        for attempt in in_flight {
            attempt.failed();
        }
        assert_eq!(retry_after(limiter.begin_login("alice", None)), Duration::from_secs(900));
    }

    #[test]
    fn an_attempt_that_ends_in_an_error_counts_as_nothing() {
        let (limiter, _) = setup();
        for _ in 0..10 {
            drop(limiter.begin_login("alice", None).unwrap());
        }
        assert!(limiter.begin_login("alice", None).is_ok());
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let (limiter, clock) = setup();
        for _ in 0..4 {
            fail(&limiter, "alice");
        }
        clock.advance(Duration::from_secs(15 * 60));
        fail(&limiter, "alice");
        assert!(limiter.begin_login("alice", None).is_ok());
    }

    #[test]
    fn success_clears_the_count() {
        let (limiter, _) = setup();
        for _ in 0..4 {
            fail(&limiter, "alice");
        }
        limiter.begin_login("alice", None).unwrap().succeeded();
        fail(&limiter, "alice");
        assert!(limiter.begin_login("alice", None).is_ok());
    }

    #[test]
    fn at_most_thirty_attempts_in_any_minute_per_ip() {
        let (limiter, clock) = setup();
        for i in 0..30 {
            limiter.begin_login(&format!("user{i}"), Some("192.0.2.1")).unwrap().succeeded();
            clock.advance(Duration::from_secs(1));
        }
        // The oldest attempt is 30 s old: 30 s to wait.
        assert_eq!(
            retry_after(limiter.begin_login("x", Some("192.0.2.1"))),
            Duration::from_secs(30)
        );
        assert!(limiter.begin_login("x", Some("192.0.2.2")).is_ok(), "other IPs are unaffected");
        clock.advance(Duration::from_secs(30));
        assert!(limiter.begin_login("x", Some("192.0.2.1")).is_ok(), "one slot freed");
        assert!(limiter.begin_login("y", Some("192.0.2.1")).is_err(), "only one");
        // Over any 60-second span, never more than 30.
        let (limiter, clock) = setup();
        let mut admitted = 0;
        for _ in 0..600 {
            if limiter.begin_login("z", Some("192.0.2.9")).map(LoginAttempt::succeeded).is_ok() {
                admitted += 1;
            }
            clock.advance(Duration::from_millis(100));
        }
        assert_eq!(admitted, 30, "60 s of attempts every 100 ms");
    }

    #[test]
    fn ipv6_clients_share_the_budget_of_their_64() {
        let (limiter, _) = setup();
        for i in 0..30 {
            limiter.begin_login("x", Some(&format!("2001:db8:1:2::{i:x}"))).unwrap().succeeded();
        }
        assert!(limiter.begin_login("x", Some("2001:db8:1:2:ffff::1")).is_err(), "same /64");
        assert!(limiter.begin_login("x", Some("2001:db8:1:3::1")).is_ok(), "another /64");
        assert_eq!(ip_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    }

    #[test]
    fn registrations_and_refreshes_have_budgets_of_their_own() {
        let (limiter, _) = setup();
        for _ in 0..60 {
            limiter.registration(Some("192.0.2.1")).unwrap();
        }
        assert!(limiter.registration(Some("192.0.2.1")).is_err());
        assert!(limiter.begin_login("x", Some("192.0.2.1")).is_ok(), "logins are counted apart");
        for _ in 0..REFRESHES_PER_MINUTE {
            limiter.refresh("family-1").unwrap();
        }
        assert!(limiter.refresh("family-1").is_err());
        assert!(limiter.refresh("family-2").is_ok());
    }

    #[test]
    fn sweep_forgets_stale_state_only() {
        let (limiter, clock) = setup();
        fail(&limiter, "old");
        limiter.begin_login("x", Some("192.0.2.1")).unwrap().succeeded();
        clock.advance(Duration::from_secs(15 * 60));
        fail(&limiter, "new");
        limiter.sweep();
        assert!(!lock(&limiter.accounts).contains_key("old"));
        assert!(lock(&limiter.accounts).contains_key("new"));
        assert!(lock(&limiter.budgets).is_empty());
    }

    #[test]
    fn impossible_usernames_are_not_tracked() {
        let (limiter, _) = setup();
        let long = "x".repeat(65);
        for _ in 0..10 {
            fail(&limiter, &long);
        }
        assert!(lock(&limiter.accounts).is_empty());
    }
}
