//! Login throttling, two rules (API.md "Running"):
//!
//! - **per username**: after `max_failures` failed logins within `failure_window`, further
//!   attempts for that username are refused until the oldest of those failures leaves the
//!   window. A successful login clears the count. This stops online guessing of one account.
//! - **per source IP**: at most `ip_per_minute` login attempts a minute, successful or not,
//!   as a GCRA (token bucket) that allows a burst of the full minute's budget. This stops one
//!   client spraying many accounts. IPv6 clients are counted by their /64.
//!
//! State is in memory, swept periodically; every map is bounded by what the IP rule lets in.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::error::Error;
use crate::settings::LimitSettings;

/// Login throttling state.
pub struct LoginLimiter {
    settings: LimitSettings,
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<String, VecDeque<Timestamp>>>,
    /// GCRA: per IP, the "theoretical arrival time" of the next attempt.
    ip_tat: Mutex<HashMap<String, Timestamp>>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Usernames and IPs are personal data: print the settings only.
        f.debug_struct("LoginLimiter").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl LoginLimiter {
    /// A limiter with `settings`.
    pub fn new(settings: LimitSettings, clock: Arc<dyn Clock>) -> Self {
        LoginLimiter { settings, clock, failures: Mutex::default(), ip_tat: Mutex::default() }
    }

    /// Counts a login attempt from `ip` for `username` and says whether it may go ahead.
    pub fn check(&self, username: &str, ip: Option<&str>) -> Result<(), Error> {
        let now = self.clock.now();
        if let Some(retry_after) = self.username_locked(username, now) {
            return Err(Error::RateLimited { retry_after });
        }
        if let Some(ip) = ip {
            self.take_ip_budget(&ip_key(ip), now)?;
        }
        Ok(())
    }

    /// Records a failed login for `username`.
    pub fn record_failure(&self, username: &str) {
        if username.len() > crate::password::policy::USERNAME_MAX {
            // No account can have this name; keeping it would only let a client grow the map.
            return;
        }
        let now = self.clock.now();
        let max = self.settings.max_failures as usize;
        let mut failures = lock(&self.failures);
        let log = failures.entry(username.to_owned()).or_default();
        log.push_back(now);
        while log.len() > max {
            log.pop_front();
        }
    }

    /// Clears the failure count of `username` after a successful login.
    pub fn record_success(&self, username: &str) {
        lock(&self.failures).remove(username);
    }

    /// Forgets state that no longer affects any decision.
    pub fn sweep(&self) {
        let now = self.clock.now();
        let window = self.settings.failure_window;
        lock(&self.failures)
            .retain(|_, log| log.back().is_some_and(|last| last.plus(window) > now));
        lock(&self.ip_tat).retain(|_, tat| *tat > now);
    }

    fn username_locked(&self, username: &str, now: Timestamp) -> Option<Duration> {
        let failures = lock(&self.failures);
        let log = failures.get(username)?;
        if log.len() < self.settings.max_failures as usize {
            return None;
        }
        let oldest = *log.front()?;
        let unlock = oldest.plus(self.settings.failure_window);
        (unlock > now).then(|| unlock.since(now))
    }

    fn take_ip_budget(&self, ip: &str, now: Timestamp) -> Result<(), Error> {
        let per_minute = self.settings.ip_per_minute.max(1);
        let interval = Duration::from_secs(60) / per_minute;
        let burst = interval * (per_minute - 1);
        let mut tats = lock(&self.ip_tat);
        let tat = tats.get(ip).copied().unwrap_or(now).max(now);
        let allowed_at = tat.minus(burst);
        if allowed_at > now {
            return Err(Error::RateLimited { retry_after: allowed_at.since(now) });
        }
        tats.insert(ip.to_owned(), tat.plus(interval));
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

    fn retry_after(result: Result<(), Error>) -> Duration {
        match result {
            Err(Error::RateLimited { retry_after }) => retry_after,
            other => panic!("expected rate limiting, got {other:?}"),
        }
    }

    #[test]
    fn five_failures_lock_the_username_for_the_window() {
        let (limiter, clock) = setup();
        for _ in 0..5 {
            limiter.check("alice", None).unwrap();
            limiter.record_failure("alice");
            clock.advance(Duration::from_secs(60));
        }
        // The first failure was 5 minutes ago: 10 minutes of the window are left.
        assert_eq!(retry_after(limiter.check("alice", None)), Duration::from_secs(600));
        assert!(limiter.check("bob", None).is_ok(), "other usernames are unaffected");
        clock.advance(Duration::from_secs(599));
        assert!(limiter.check("alice", None).is_err());
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check("alice", None).is_ok(), "unlocked once the window has passed");
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let (limiter, clock) = setup();
        for _ in 0..4 {
            limiter.record_failure("alice");
        }
        clock.advance(Duration::from_secs(15 * 60));
        limiter.record_failure("alice");
        assert!(limiter.check("alice", None).is_ok());
    }

    #[test]
    fn success_clears_the_count() {
        let (limiter, _) = setup();
        for _ in 0..4 {
            limiter.record_failure("alice");
        }
        limiter.record_success("alice");
        limiter.record_failure("alice");
        assert!(limiter.check("alice", None).is_ok());
    }

    #[test]
    fn thirty_attempts_a_minute_per_ip() {
        let (limiter, clock) = setup();
        for i in 0..30 {
            limiter.check(&format!("user{i}"), Some("192.0.2.1")).unwrap();
        }
        let wait = retry_after(limiter.check("user30", Some("192.0.2.1")));
        assert_eq!(wait, Duration::from_secs(2), "one attempt's worth of budget returns every 2 s");
        assert!(limiter.check("user30", Some("192.0.2.2")).is_ok(), "other IPs are unaffected");
        clock.advance(Duration::from_secs(2));
        assert!(limiter.check("user30", Some("192.0.2.1")).is_ok());
        assert!(limiter.check("user31", Some("192.0.2.1")).is_err());
        clock.advance(Duration::from_secs(60));
        for i in 0..30 {
            limiter.check(&format!("again{i}"), Some("192.0.2.1")).unwrap();
        }
    }

    #[test]
    fn ipv6_clients_share_the_budget_of_their_64() {
        let (limiter, _) = setup();
        for i in 0..30 {
            limiter.check("x", Some(&format!("2001:db8:1:2::{i:x}"))).unwrap();
        }
        assert!(limiter.check("x", Some("2001:db8:1:2:ffff::1")).is_err(), "same /64");
        assert!(limiter.check("x", Some("2001:db8:1:3::1")).is_ok(), "another /64");
        assert_eq!(ip_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    }

    #[test]
    fn sweep_forgets_stale_state_only() {
        let (limiter, clock) = setup();
        limiter.record_failure("old");
        limiter.check("x", Some("192.0.2.1")).unwrap();
        clock.advance(Duration::from_secs(15 * 60));
        limiter.record_failure("new");
        limiter.sweep();
        assert!(!lock(&limiter.failures).contains_key("old"));
        assert!(lock(&limiter.failures).contains_key("new"));
        assert!(lock(&limiter.ip_tat).is_empty());
    }
}
