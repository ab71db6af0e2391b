//! [`CompactSession`]: a session record as the in-process session cache keeps it, in about a
//! third of the memory of a [`SessionRecord`], so a million cached sessions fit in about
//! 200 MB rather than 600 MB.
//!
//! Ids in Tessera's own form (canonical lower-case UUIDs) are kept as 16 bytes, the client's
//! IP as an [`IpAddr`], and user agents are shared between sessions through a small interner
//! (a few browsers account for most sessions). A record with any other form of id (written by
//! another tool, say) is kept whole, boxed: [`CachedSession`] is either.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::{ClientInfo, SessionRecord};
use crate::clock::Timestamp;
use crate::crypto::Digest;

/// User agents interned at most; past it the interner starts over (entries already made keep
/// their shared copy).
const INTERNED_MAX: usize = 4096;

/// A cached session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactSession {
    sid: [u8; 16],
    user_id: [u8; 16],
    created_at: Timestamp,
    last_seen_at: Timestamp,
    expires_at: Timestamp,
    username: Box<str>,
    user_agent: Option<Arc<str>>,
    ip: Option<IpAddr>,
}

/// Shares equal user-agent strings between cached sessions.
#[derive(Debug, Default)]
pub struct UserAgents(Mutex<HashSet<Arc<str>>>);

impl UserAgents {
    fn intern(&self, agent: &str) -> Arc<str> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(shared) = set.get(agent) {
            return Arc::clone(shared);
        }
        if set.len() >= INTERNED_MAX {
            set.clear();
        }
        let shared: Arc<str> = Arc::from(agent);
        set.insert(Arc::clone(&shared));
        shared
    }
}

/// A cached session: compact when its fields allow, else the whole record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CachedSession {
    /// Ids and address in Tessera's own forms.
    Compact(CompactSession),
    /// Anything else, unchanged.
    Full(Box<SessionRecord>),
}

impl CachedSession {
    /// The cached form of `record`.
    pub fn new(record: &SessionRecord, agents: &UserAgents) -> Self {
        match CompactSession::new(record, agents) {
            Some(compact) => CachedSession::Compact(compact),
            None => CachedSession::Full(Box::new(record.clone())),
        }
    }

    /// The full record again (`token_hash` is the cache's key).
    pub fn record(&self, token_hash: Digest) -> SessionRecord {
        match self {
            CachedSession::Compact(compact) => compact.record(token_hash),
            CachedSession::Full(record) => SessionRecord::clone(record),
        }
    }

    /// The session's public handle.
    pub fn sid(&self) -> String {
        match self {
            CachedSession::Compact(compact) => format_uuid(&compact.sid),
            CachedSession::Full(record) => record.sid.clone(),
        }
    }

    /// The id of the session's user.
    pub fn user_id(&self) -> String {
        match self {
            CachedSession::Compact(compact) => format_uuid(&compact.user_id),
            CachedSession::Full(record) => record.user_id.clone(),
        }
    }

    /// The username of the session's user.
    pub fn username(&self) -> &str {
        match self {
            CachedSession::Compact(compact) => &compact.username,
            CachedSession::Full(record) => &record.username,
        }
    }

    /// Whether this is a session of user `user_id` (with public handle `sid` if given).
    pub fn is(&self, user_id: &str, sid: Option<&str>) -> bool {
        match self {
            CachedSession::Compact(compact) => compact.is(user_id, sid),
            CachedSession::Full(record) => {
                record.user_id == user_id && sid.is_none_or(|sid| record.sid == sid)
            }
        }
    }

    /// Whether `id` is this session's public handle or its user's id (`parsed`: `id` as UUID
    /// bytes, if it is one, parsed once by the caller for a scan of many entries).
    pub fn is_named_by(&self, id: &str, parsed: Option<[u8; 16]>) -> bool {
        match self {
            CachedSession::Compact(compact) => {
                parsed.is_some_and(|id| id == compact.sid || id == compact.user_id)
            }
            CachedSession::Full(record) => record.sid == id || record.user_id == id,
        }
    }

    /// Last use as persisted.
    pub fn last_seen_at(&self) -> Timestamp {
        match self {
            CachedSession::Compact(compact) => compact.last_seen_at,
            CachedSession::Full(record) => record.last_seen_at,
        }
    }

    /// Moves the last use forward to `seen` (never back).
    pub fn renew(&mut self, seen: Timestamp) {
        let last_seen_at = match self {
            CachedSession::Compact(compact) => &mut compact.last_seen_at,
            CachedSession::Full(record) => &mut record.last_seen_at,
        };
        *last_seen_at = (*last_seen_at).max(seen);
    }

    /// The absolute deadline.
    pub fn expires_at(&self) -> Timestamp {
        match self {
            CachedSession::Compact(compact) => compact.expires_at,
            CachedSession::Full(record) => record.expires_at,
        }
    }
}

impl CompactSession {
    /// The compact form of `record`, if it round-trips exactly.
    pub fn new(record: &SessionRecord, agents: &UserAgents) -> Option<Self> {
        let ip = match &record.client.ip {
            None => None,
            Some(text) => {
                let ip: IpAddr = text.parse().ok()?;
                (ip.to_string() == *text).then_some(ip)?;
                Some(ip)
            }
        };
        Some(CompactSession {
            sid: parse_uuid(&record.sid)?,
            user_id: parse_uuid(&record.user_id)?,
            created_at: record.created_at,
            last_seen_at: record.last_seen_at,
            expires_at: record.expires_at,
            username: record.username.as_str().into(),
            user_agent: record.client.user_agent.as_deref().map(|a| agents.intern(a)),
            ip,
        })
    }

    /// The full record again (`token_hash` is the cache's key).
    pub fn record(&self, token_hash: Digest) -> SessionRecord {
        SessionRecord {
            token_hash,
            sid: format_uuid(&self.sid),
            user_id: format_uuid(&self.user_id),
            username: self.username.to_string(),
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            client: ClientInfo {
                ip: self.ip.map(format_ip),
                user_agent: self.user_agent.as_deref().map(str::to_owned),
            },
        }
    }

    /// Whether this is the session with public handle `sid` of user `user_id`.
    pub fn is(&self, user_id: &str, sid: Option<&str>) -> bool {
        parse_uuid(user_id) == Some(self.user_id)
            && sid.is_none_or(|s| parse_uuid(s) == Some(self.sid))
    }
}

/// The 16 bytes of a canonical lower-case hyphenated UUID, or `None` for any other text.
pub(crate) fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    let mut digits = bytes.iter().filter(|&&b| b != b'-');
    for byte in &mut out {
        let high = hex_value(*digits.next()?)?;
        let low = hex_value(*digits.next()?)?;
        *byte = high << 4 | low;
    }
    Some(out)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None, // upper case would not round-trip
    }
}

// `record` runs on every session-authenticated request: these two build their text in place
// (pushing chars one at a time, or `Display`, cost several times as much).
fn format_uuid(bytes: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Where each byte's two digits go; the hyphens are already in place.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [b'-'; 36];
    for (&byte, &at) in bytes.iter().zip(&AT) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0x0f)];
    }
    std::str::from_utf8(&out).map(str::to_owned).unwrap_or_default()
}

/// `ip.to_string()`, with IPv4 addresses written directly.
fn format_ip(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { return ip.to_string() };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sid: &str, ip: Option<&str>) -> SessionRecord {
        SessionRecord {
            token_hash: [7; 32],
            sid: sid.into(),
            user_id: "0190c1d2-0000-7000-8000-00000000abcd".into(),
            username: "alice".into(),
            created_at: Timestamp::from_unix_millis(1_800_000_000_123),
            last_seen_at: Timestamp::from_unix_millis(1_800_000_100_000),
            expires_at: Timestamp::from_unix_millis(1_800_043_200_123),
            client: ClientInfo {
                ip: ip.map(str::to_owned),
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
            },
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for text in ["0.0.0.0", "1.2.3.4", "9.10.99.100", "127.0.0.1", "255.255.255.255", "::1"] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(format_ip(ip), ip.to_string());
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 3, 7]);
            assert_eq!(format_ip(ip), ip.to_string());
        }
    }

    #[test]
    fn round_trips_exactly() {
        let agents = UserAgents::default();
        for ip in [None, Some("203.0.113.9"), Some("2001:db8::1")] {
            let original = record("0190c1d2-ffff-7abc-9def-0123456789ab", ip);
            let compact = CompactSession::new(&original, &agents).unwrap();
            assert_eq!(compact.record([7; 32]), original);
            let cached = CachedSession::Compact(compact.clone());
            assert_eq!(cached.sid(), original.sid);
            assert_eq!(cached.user_id(), original.user_id);
            assert_eq!(cached.username(), original.username);
            assert!(compact.is(&original.user_id, Some(&original.sid)));
            assert!(compact.is(&original.user_id, None));
            assert!(!compact.is(&original.user_id, Some("0190c1d2-ffff-7abc-9def-0123456789ac")));
            assert!(!compact.is("someone-else", None));
        }
    }

    #[test]
    fn other_forms_are_not_compacted() {
        let agents = UserAgents::default();
        for sid in
            ["0190C1D2-FFFF-7ABC-9DEF-0123456789AB", "s1", "0190c1d2ffff7abc9def0123456789ab"]
        {
            assert!(CompactSession::new(&record(sid, None), &agents).is_none(), "{sid}");
        }
        let odd_ip = record("0190c1d2-ffff-7abc-9def-0123456789ab", Some("2001:DB8::1"));
        assert!(CompactSession::new(&odd_ip, &agents).is_none(), "a non-canonical address");
    }

    #[test]
    fn equal_user_agents_are_shared_and_the_interner_stays_bounded() {
        let agents = UserAgents::default();
        let a = CompactSession::new(&record("0190c1d2-ffff-7abc-9def-0123456789ab", None), &agents);
        let b = CompactSession::new(&record("0190c1d2-ffff-7abc-9def-0123456789ac", None), &agents);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(Arc::ptr_eq(a.user_agent.as_ref().unwrap(), b.user_agent.as_ref().unwrap()));
        for n in 0..INTERNED_MAX * 2 {
            agents.intern(&format!("agent {n}"));
        }
        assert!(agents.0.lock().unwrap().len() <= INTERNED_MAX);
    }

    #[test]
    fn other_forms_are_cached_whole() {
        let agents = UserAgents::default();
        let mut odd = record("s1", Some("192.0.2.1"));
        odd.user_id = "u1".into();
        let mut cached = CachedSession::new(&odd, &agents);
        assert!(matches!(cached, CachedSession::Full(_)));
        assert_eq!(cached.record([7; 32]), odd);
        assert_eq!(
            (cached.sid(), cached.user_id(), cached.username()),
            ("s1".into(), "u1".into(), "alice")
        );
        assert!(cached.is("u1", Some("s1")) && cached.is("u1", None));
        assert!(!cached.is("u1", Some("s2")) && !cached.is("u2", None));
        let later = odd.last_seen_at.plus(std::time::Duration::from_secs(5));
        cached.renew(later);
        cached.renew(odd.last_seen_at);
        assert_eq!(cached.last_seen_at(), later, "renewals never move back");
    }

    #[test]
    fn is_a_third_of_a_record() {
        // The cached value behind an `Arc`: its size decides the memory per cached session.
        let size = std::mem::size_of::<CachedSession>();
        assert!(size <= 120, "{size}");
    }
}
