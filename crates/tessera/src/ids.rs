//! Opaque identifiers: UUID version 7 (RFC 9562), time-ordered, with 74 random bits from the
//! OS CSPRNG. Used for user ids and the public handles of sessions and refresh families.

use crate::clock::Timestamp;
use crate::crypto::random_bytes;
use crate::error::Error;

/// A new UUID v7 for the instant `now`, in the canonical hyphenated lower-case form.
pub fn uuid_v7(now: Timestamp) -> Result<String, Error> {
    let mut bytes: [u8; 16] = random_bytes()?;
    let millis = u64::try_from(now.unix_millis()).unwrap_or(0).to_be_bytes();
    bytes[..6].copy_from_slice(&millis[2..]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_v7_layout_and_orders_by_time() {
        let t = Timestamp::from_unix_millis(0x0123_4567_89ab);
        let id = uuid_v7(t).unwrap();
        assert_eq!(id.len(), 36);
        assert!(id.starts_with("01234567-89ab-7"), "{id}");
        assert!(matches!(id.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "variant bits: {id}");
        let later = uuid_v7(t.plus(std::time::Duration::from_millis(1))).unwrap();
        assert!(later > id);
        assert_ne!(uuid_v7(t).unwrap(), uuid_v7(t).unwrap());
    }
}
