//! The wire format of a revocation feed message, shared by every feed backend (Redis pub/sub,
//! PostgreSQL `NOTIFY`): `UNTIL_MS SID`, the revocation's end in Unix milliseconds, one space,
//! the revoked `sid`.

use crate::clock::Timestamp;

/// The longest `sid` a message may carry.
const MAX_SID_LEN: usize = 128;

/// `UNTIL_MS SID`.
pub(crate) fn encode(sid: &str, until: Timestamp) -> String {
    format!("{} {sid}", until.unix_millis())
}

/// `UNTIL_MS SID` as (sid, until); `None` for anything else.
pub(crate) fn decode(payload: &str) -> Option<(String, Timestamp)> {
    let (until, sid) = payload.split_once(' ')?;
    let until = until.parse::<i64>().ok()?;
    (!sid.is_empty() && sid.len() <= MAX_SID_LEN)
        .then(|| (sid.to_owned(), Timestamp::from_unix_millis(until)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_parsed_strictly() {
        let until = Timestamp::from_unix_millis(1_800_000_000_123);
        assert_eq!(decode("1800000000123 abc"), Some(("abc".to_owned(), until)));
        assert_eq!(decode("1800000000123"), None);
        assert_eq!(decode("x abc"), None);
        assert_eq!(decode("1 "), None);
        assert_eq!(decode(&format!("1 {}", "s".repeat(129))), None);
    }

    #[test]
    fn what_is_encoded_decodes() {
        let until = Timestamp::from_unix_millis(1_800_000_000_123);
        assert_eq!(decode(&encode("sid-1", until)), Some(("sid-1".to_owned(), until)));
    }
}
