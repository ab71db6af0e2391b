//! The audit log's vocabulary: one [`AuditEvent`] per security-relevant thing that happened
//! (logins and their failures, logouts, refreshes, reuse detections, revocations, password
//! changes, administrators' changes to users), and the [`AuditFilter`] to read them back.
//!
//! An event names who (user id and username), when, from where (IP and user agent), what and
//! with which outcome. It never holds a secret: no password, cookie value, token or digest.
//! The public session handle (`sid`) is not a secret: it is what the session list shows.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use crate::clock::Timestamp;
use crate::principal::{AuthMethod, Principal};
use crate::store::{ClientInfo, UserRecord};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// Self-service registration.
    Register,
    /// An administrator created a user.
    UserCreate,
    /// A login by password (with `method` saying session or token).
    Login,
    /// A session ended by its own logout.
    Logout,
    /// A refresh token was exchanged.
    Refresh,
    /// A spent refresh token came back: its whole family was revoked.
    RefreshReuse,
    /// A token was revoked (RFC 7009).
    TokenRevoke,
    /// One session or token family ended from the session list.
    LoginEnd,
    /// Every session and token family of a user ended.
    LogoutEverywhere,
    /// A password change.
    PasswordChange,
    /// An administrator set a user's password (`tessera user set-password`).
    PasswordReset,
    /// An administrator disabled a user (and ended all their logins).
    UserDisable,
    /// An administrator enabled a disabled user again.
    UserEnable,
    /// An administrator deleted a user (and ended all their logins).
    UserDelete,
}

impl AuditKind {
    /// Every kind, in a stable order.
    pub const ALL: [AuditKind; 14] = [
        AuditKind::Register,
        AuditKind::UserCreate,
        AuditKind::Login,
        AuditKind::Logout,
        AuditKind::Refresh,
        AuditKind::RefreshReuse,
        AuditKind::TokenRevoke,
        AuditKind::LoginEnd,
        AuditKind::LogoutEverywhere,
        AuditKind::PasswordChange,
        AuditKind::PasswordReset,
        AuditKind::UserDisable,
        AuditKind::UserEnable,
        AuditKind::UserDelete,
    ];

    /// The stored and displayed name, in snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Register => "register",
            AuditKind::UserCreate => "user_create",
            AuditKind::Login => "login",
            AuditKind::Logout => "logout",
            AuditKind::Refresh => "refresh",
            AuditKind::RefreshReuse => "refresh_reuse",
            AuditKind::TokenRevoke => "token_revoke",
            AuditKind::LoginEnd => "login_end",
            AuditKind::LogoutEverywhere => "logout_everywhere",
            AuditKind::PasswordChange => "password_change",
            AuditKind::PasswordReset => "password_reset",
            AuditKind::UserDisable => "user_disable",
            AuditKind::UserEnable => "user_enable",
            AuditKind::UserDelete => "user_delete",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown event {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// Whether the attempt worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    /// It did.
    Success,
    /// It was refused; the event's `reason` says why.
    Failure,
}

impl AuditOutcome {
    /// `"success"` or `"failure"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
        }
    }
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "success" => Ok(AuditOutcome::Success),
            "failure" => Ok(AuditOutcome::Failure),
            _ => Err(format!("unknown outcome {s:?}; expected success or failure")),
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: AuditKind,
    /// Whether it worked.
    pub outcome: AuditOutcome,
    /// Why it failed: the API's problem code (`invalid_credentials`, `rate_limited`, ...).
    pub reason: Option<String>,
    /// The user's id, when known.
    pub user_id: Option<String>,
    /// The username, when known (for a failed login, the name that was tried, if it is a
    /// well-formed username: anything else might be a password typed in the wrong field).
    pub username: Option<String>,
    /// Session or token, where it applies.
    pub method: Option<AuthMethod>,
    /// The public handle of the session or token family concerned.
    pub sid: Option<String>,
    /// Where the request came from.
    pub client: ClientInfo,
}

impl AuditEvent {
    /// A successful `kind` at `at` from `client`, about nobody yet.
    pub fn success(kind: AuditKind, at: Timestamp, client: &ClientInfo) -> Self {
        AuditEvent {
            at,
            kind,
            outcome: AuditOutcome::Success,
            reason: None,
            user_id: None,
            username: None,
            method: None,
            sid: None,
            client: client.clone(),
        }
    }

    /// A failed `kind` for `reason` (a problem code).
    pub fn failure(kind: AuditKind, at: Timestamp, client: &ClientInfo, reason: &str) -> Self {
        AuditEvent {
            outcome: AuditOutcome::Failure,
            reason: Some(reason.to_owned()),
            ..AuditEvent::success(kind, at, client)
        }
    }

    /// About this user.
    pub fn user(mut self, user: &UserRecord) -> Self {
        self.user_id = Some(user.id.clone());
        self.username = Some(user.username.clone());
        self
    }

    /// About the user, method and session or family of this principal.
    pub fn principal(mut self, principal: &Principal) -> Self {
        self.user_id = Some(principal.user_id.clone());
        self.username = Some(principal.username.clone());
        self.method = Some(principal.method);
        self.sid = Some(principal.sid.clone());
        self
    }

    /// About a username only (the user may not exist).
    pub fn username(mut self, username: Option<String>) -> Self {
        self.username = username;
        self
    }

    /// With the method used.
    pub fn method(mut self, method: AuthMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// About this session or token family.
    pub fn sid(mut self, sid: &str) -> Self {
        self.sid = Some(sid.to_owned());
        self
    }
}

/// How many failures of unauthenticated requests (logins, registrations, refreshes with
/// unknown tokens) are written per second at most. Anyone can cause those, each one costs a
/// store write, and a flood of them must not monopolise the store; what goes over is counted
/// (`tessera_audit_events_dropped_total`) instead of written.
pub const UNAUTHENTICATED_FAILURES_PER_SECOND: u32 = 100;

/// The budget for writing failure events of unauthenticated requests: a fixed one-second
/// window of [`UNAUTHENTICATED_FAILURES_PER_SECOND`] events.
#[derive(Debug, Default)]
pub struct FailureBudget {
    window: Mutex<(i64, u32)>,
}

impl FailureBudget {
    /// Whether `event` may be written at `now`. Successes, and failures of requests that
    /// carried valid credentials (reuse detection, password changes), always may.
    pub fn admit(&self, event: &AuditEvent, now: Timestamp) -> bool {
        let unauthenticated = matches!(
            event.kind,
            AuditKind::Login | AuditKind::Register | AuditKind::Refresh | AuditKind::UserCreate
        );
        if event.outcome == AuditOutcome::Success || !unauthenticated {
            return true;
        }
        let Ok(mut window) = self.window.lock() else { return false };
        let second = now.unix_seconds();
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 >= UNAUTHENTICATED_FAILURES_PER_SECOND {
            return false;
        }
        window.1 += 1;
        true
    }
}

/// Which events to read back, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Events about this user: matches the username or the user id.
    pub user: Option<String>,
    /// Events of this kind.
    pub kind: Option<AuditKind>,
    /// Events with this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Events from this IP address.
    pub ip: Option<String>,
    /// Events at or after this time.
    pub since: Option<Timestamp>,
    /// Events before this time.
    pub until: Option<Timestamp>,
    /// At most this many (the newest).
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            user: None,
            kind: None,
            outcome: None,
            ip: None,
            since: None,
            until: None,
            limit: 100,
        }
    }
}

impl AuditFilter {
    /// Whether `event` passes the filter (the limit aside).
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let user_matches = self.user.as_deref().is_none_or(|u| {
            event.username.as_deref() == Some(u) || event.user_id.as_deref() == Some(u)
        });
        user_matches
            && self.kind.is_none_or(|k| event.kind == k)
            && self.outcome.is_none_or(|o| event.outcome == o)
            && self.ip.as_deref().is_none_or(|ip| event.client.ip.as_deref() == Some(ip))
            && self.since.is_none_or(|t| event.at >= t)
            && self.until.is_none_or(|t| event.at < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditKind>(), Ok(kind));
        }
        assert!("nope".parse::<AuditKind>().is_err());
        assert_eq!("failure".parse::<AuditOutcome>(), Ok(AuditOutcome::Failure));
    }

    #[test]
    fn failures_of_unauthenticated_requests_are_written_at_a_bounded_rate() {
        let budget = FailureBudget::default();
        let client = ClientInfo::default();
        let at = |ms| Timestamp::from_unix_millis(ms);
        let failed_login = AuditEvent::failure(AuditKind::Login, at(0), &client, "x");
        let admitted = (0..250).filter(|_| budget.admit(&failed_login, at(500))).count();
        assert_eq!(admitted, UNAUTHENTICATED_FAILURES_PER_SECOND as usize);
        // Successes and failures behind valid credentials are never dropped.
        assert!(budget.admit(&AuditEvent::success(AuditKind::Login, at(0), &client), at(500)));
        let reuse = AuditEvent::failure(AuditKind::RefreshReuse, at(0), &client, "token_reused");
        assert!(budget.admit(&reuse, at(500)));
        // The next second has a fresh budget.
        assert!(budget.admit(&failed_login, at(1_000)));
    }

    #[test]
    fn the_filter_matches_username_or_id_and_a_half_open_time_range() {
        let client = ClientInfo { ip: Some("192.0.2.1".into()), user_agent: None };
        let mut event = AuditEvent::failure(
            AuditKind::Login,
            Timestamp::from_unix_millis(1_000),
            &client,
            "invalid_credentials",
        );
        event.user_id = Some("u1".into());
        event.username = Some("alice".into());
        let filter = |f: AuditFilter| f.matches(&event);
        assert!(filter(AuditFilter { user: Some("alice".into()), ..Default::default() }));
        assert!(filter(AuditFilter { user: Some("u1".into()), ..Default::default() }));
        assert!(!filter(AuditFilter { user: Some("bob".into()), ..Default::default() }));
        assert!(filter(AuditFilter { ip: Some("192.0.2.1".into()), ..Default::default() }));
        assert!(!filter(AuditFilter {
            outcome: Some(AuditOutcome::Success),
            ..Default::default()
        }));
        let at = |ms| Some(Timestamp::from_unix_millis(ms));
        assert!(filter(AuditFilter { since: at(1_000), until: at(1_001), ..Default::default() }));
        assert!(!filter(AuditFilter { until: at(1_000), ..Default::default() }));
    }
}
