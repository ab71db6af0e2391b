//! Time as the engine sees it: a [`Timestamp`] (Unix milliseconds) and a [`Clock`] trait, so
//! every rule that depends on time (lifetimes, renewal, grace windows, throttling) can be tested
//! with a [`ManualClock`] instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A point in time: milliseconds since the Unix epoch, UTC.
///
/// Serialises as an RFC 3339 string with second precision (`"2026-11-27T10:00:00Z"`), the form
/// the HTTP API uses in bodies.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From milliseconds since the Unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// From whole seconds since the Unix epoch.
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant plus `duration` (saturating).
    #[must_use]
    pub fn plus(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_millis(duration)))
    }

    /// This instant minus `duration` (saturating).
    #[must_use]
    pub fn minus(self, duration: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_millis(duration)))
    }

    /// How long after `earlier` this instant is; zero if it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        let millis = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_millis(u64::try_from(millis).unwrap_or(0))
    }

    /// RFC 3339, UTC, second precision (instants past the year 9999 print as its last second).
    pub fn to_rfc3339(self) -> String {
        use std::fmt::Write as _;
        const LAST: &str = "9999-12-31T23:59:59Z";
        let seconds = u64::try_from(self.unix_seconds()).unwrap_or(0);
        let Some(time) = UNIX_EPOCH.checked_add(Duration::from_secs(seconds)) else {
            return LAST.into();
        };
        let mut out = String::with_capacity(20);
        match write!(out, "{}", humantime::format_rfc3339_seconds(time)) {
            Ok(()) => out,
            Err(_) => LAST.into(),
        }
    }
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(duration_millis(since_epoch))
    }
}

/// A clock that moves only when told to: for tests of time-dependent rules.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(AtomicI64::new(start.0))
    }

    /// Moves the clock forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        self.0.fetch_add(duration_millis(duration), Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        self.0.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc_with_seconds() {
        let t = Timestamp::from_unix_millis(1_795_773_600_999);
        assert_eq!(t.to_rfc3339(), "2026-11-27T10:00:00Z");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-11-27T10:00:00Z\"");
    }

    #[test]
    fn far_future_instants_print_without_panicking() {
        assert_eq!(Timestamp::from_unix_millis(i64::MAX).to_rfc3339(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp::from_unix_seconds(-5).to_rfc3339(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn arithmetic_saturates_and_since_is_never_negative() {
        let t = Timestamp::from_unix_seconds(100);
        assert_eq!(t.plus(Duration::from_secs(5)).unix_seconds(), 105);
        assert_eq!(t.minus(Duration::from_secs(5)).unix_seconds(), 95);
        assert_eq!(t.since(t.plus(Duration::from_secs(1))), Duration::ZERO);
        assert_eq!(t.plus(Duration::from_secs(2)).since(t), Duration::from_secs(2));
        assert_eq!(
            Timestamp::from_unix_millis(i64::MAX).plus(Duration::MAX).unix_millis(),
            i64::MAX
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(Timestamp::from_unix_seconds(10));
        assert_eq!(clock.now().unix_seconds(), 10);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now().unix_millis(), 11_500);
        clock.set(Timestamp::EPOCH);
        assert_eq!(clock.now(), Timestamp::EPOCH);
    }
}
