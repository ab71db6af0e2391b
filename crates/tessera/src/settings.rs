//! The engine's validated settings, with the defaults API.md documents. The server's config
//! file maps onto these; an embedding application can build them directly.

use std::time::Duration;

use crate::password::Argon2Params;

/// Everything the engine can be tuned with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Session lifetimes.
    pub session: SessionSettings,
    /// Token lifetimes, issuer and audience.
    pub token: TokenSettings,
    /// Login throttling.
    pub limits: LimitSettings,
    /// Password hashing cost and concurrency.
    pub password: PasswordSettings,
    /// Self-service registration (`POST /v1/users`) is allowed.
    pub registration_open: bool,
    /// Audit events older than this are deleted by upkeep (`None`: kept forever).
    pub audit_retention: Option<Duration>,
}

/// Session lifetimes.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// A session unused for this long ends (default 30 min).
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not (default 12 h).
    pub absolute_lifetime: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// Token settings.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `iss` of issued tokens and the only issuer accepted (default the public URL).
    pub issuer: String,
    /// `aud` of issued tokens and the audience required (default `tessera`).
    pub audience: String,
    /// Access-token lifetime (default 5 min).
    pub access_ttl: Duration,
    /// Refresh-token idle lifetime (default 14 days).
    pub refresh_ttl: Duration,
    /// Absolute lifetime of a refresh family (default 30 days).
    pub refresh_family_lifetime: Duration,
    /// How long a spent refresh token may be retried (default 10 s; zero turns it off).
    pub refresh_reuse_grace: Duration,
    /// Clock-skew allowance for `exp`/`nbf`/`iat` (default 30 s, at most 60 s).
    pub leeway: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            issuer: "http://127.0.0.1:8080".into(),
            audience: "tessera".into(),
            access_ttl: Duration::from_secs(5 * 60),
            refresh_ttl: Duration::from_secs(14 * 86_400),
            refresh_family_lifetime: Duration::from_secs(30 * 86_400),
            refresh_reuse_grace: Duration::from_secs(10),
            leeway: Duration::from_secs(30),
        }
    }
}

/// Login throttling.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Failed logins for one username within `failure_window` before it is locked (default 5).
    pub max_failures: u32,
    /// The window failures are counted in, and the lock-out length (default 15 min).
    pub failure_window: Duration,
    /// Login attempts one source IP may make per minute (default 30).
    pub ip_per_minute: u32,
    /// Registrations one source IP may make per minute (default 60).
    pub registrations_per_minute: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            max_failures: 5,
            failure_window: Duration::from_secs(15 * 60),
            ip_per_minute: 30,
            registrations_per_minute: 60,
        }
    }
}

/// Password hashing.
#[derive(Debug, Clone)]
pub struct PasswordSettings {
    /// argon2id cost of new hashes (default m=19456 KiB, t=2, p=1).
    pub params: Argon2Params,
    /// Hashing threads, each holding one argon2 memory buffer (default: one per CPU).
    pub workers: usize,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        PasswordSettings {
            params: Argon2Params::default(),
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        }
    }
}

impl Settings {
    /// Defaults with registration open.
    pub fn new() -> Self {
        Settings { registration_open: true, ..Settings::default() }
    }

    /// Checks rules between values; the error names the setting as `section.key`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("session.idle_timeout", self.session.idle_timeout),
            ("session.absolute_lifetime", self.session.absolute_lifetime),
            ("token.access_ttl", self.token.access_ttl),
            ("token.refresh_ttl", self.token.refresh_ttl),
            ("token.refresh_family_lifetime", self.token.refresh_family_lifetime),
            ("limits.failure_window", self.limits.failure_window),
        ];
        let retention = self.audit_retention.map(|r| ("audit.retention", r));
        for (key, value) in positive.into_iter().chain(retention) {
            if value < Duration::from_secs(1) {
                return Err((key, "must be at least 1s".into()));
            }
            // Ten of humantime's years (365.25 days), so `10y` itself is accepted.
            if value > Duration::from_secs(315_576_000) {
                return Err((key, "must be at most 10 years".into()));
            }
        }
        if self.token.leeway > Duration::from_secs(60) {
            return Err(("token.leeway", "must be at most 60s".into()));
        }
        if self.token.refresh_reuse_grace > Duration::from_secs(300) {
            return Err(("token.refresh_reuse_grace", "must be at most 5m".into()));
        }
        if self.token.issuer.is_empty() {
            return Err(("token.issuer", "must not be empty".into()));
        }
        if self.token.audience.is_empty() {
            return Err(("token.audience", "must not be empty".into()));
        }
        if self.limits.max_failures == 0 {
            return Err(("limits.max_failures", "must be at least 1".into()));
        }
        if self.limits.ip_per_minute == 0 {
            return Err(("limits.ip_per_minute", "must be at least 1".into()));
        }
        if self.limits.registrations_per_minute == 0 {
            return Err(("limits.registrations_per_minute", "must be at least 1".into()));
        }
        if self.password.workers == 0 || self.password.workers > 256 {
            return Err(("password.workers", "must be between 1 and 256".into()));
        }
        let p = self.password.params;
        let bounds = [
            (
                "password.memory_kib",
                p.memory_kib,
                8 * p.parallelism.max(1),
                Argon2Params::MAX_MEMORY_KIB,
            ),
            ("password.iterations", p.iterations, 1, Argon2Params::MAX_ITERATIONS),
            ("password.parallelism", p.parallelism, 1, Argon2Params::MAX_PARALLELISM),
        ];
        for (key, value, min, max) in bounds {
            if !(min..=max).contains(&value) {
                return Err((key, format!("must be between {min} and {max}")));
            }
        }
        p.validate().map_err(|e| ("password", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let s = Settings::new();
        assert!(s.registration_open);
        assert_eq!(s.session.idle_timeout, Duration::from_secs(1800));
        assert_eq!(s.session.absolute_lifetime, Duration::from_secs(43_200));
        assert_eq!(s.token.access_ttl, Duration::from_secs(300));
        assert_eq!(s.token.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(s.token.leeway, Duration::from_secs(30));
        assert_eq!(s.limits.max_failures, 5);
        assert_eq!(s.limits.ip_per_minute, 30);
        assert_eq!(
            s.password.params,
            Argon2Params { memory_kib: 19_456, iterations: 2, parallelism: 1 }
        );
        assert!(s.validate().is_ok());
    }

    #[test]
    fn validation_names_the_setting() {
        let mut s = Settings::new();
        s.token.leeway = Duration::from_secs(61);
        assert_eq!(s.validate().unwrap_err().0, "token.leeway");
        let mut s = Settings::new();
        s.session.idle_timeout = Duration::ZERO;
        assert_eq!(s.validate().unwrap_err().0, "session.idle_timeout");
    }
}
