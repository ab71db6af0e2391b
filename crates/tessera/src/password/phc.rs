//! The PHC string format for argon2id hashes
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`): parsing is strict and bounded, so a
//! tampered row cannot make the server allocate gigabytes.

use std::fmt;

use base64::Engine as _;

use crate::crypto::B64_STD_NOPAD;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's first recommendation: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Argon2Params { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

impl Argon2Params {
    /// Largest memory cost accepted, from config or from a stored hash (1 GiB).
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// Largest iteration count accepted.
    pub const MAX_ITERATIONS: u32 = 64;
    /// Largest lane count accepted.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Checks the parameters are ones argon2 accepts and within our bounds.
    pub fn validate(&self) -> Result<argon2::Params, String> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.parallelism > Self::MAX_PARALLELISM
        {
            return Err(format!(
                "argon2 parameters out of bounds (m <= {} KiB, t <= {}, p <= {})",
                Self::MAX_MEMORY_KIB,
                Self::MAX_ITERATIONS,
                Self::MAX_PARALLELISM
            ));
        }
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(HASH_LEN))
            .map_err(|e| format!("invalid argon2 parameters: {e}"))
    }
}

/// Bytes of salt in new hashes.
pub const SALT_LEN: usize = 16;
/// Bytes of hash output.
pub const HASH_LEN: usize = 32;

/// A parsed argon2id PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct PhcHash {
    /// Cost parameters the hash was made with.
    pub params: Argon2Params,
    /// The salt.
    pub salt: Vec<u8>,
    /// The hash output.
    pub hash: Vec<u8>,
}

impl fmt::Debug for PhcHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhcHash").field("params", &self.params).finish_non_exhaustive()
    }
}

impl PhcHash {
    /// Parses `$argon2id$v=19$m=..,t=..,p=..$salt$hash` and nothing else.
    pub fn parse(phc: &str) -> Result<Self, String> {
        let mut parts = phc.split('$');
        let (Some(""), Some("argon2id"), Some("v=19"), Some(params), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err("not an argon2id v=19 PHC string".into());
        };
        let params = parse_params(params)?;
        params.validate()?;
        let salt = B64_STD_NOPAD.decode(salt).map_err(|_| "bad salt encoding")?;
        let hash = B64_STD_NOPAD.decode(hash).map_err(|_| "bad hash encoding")?;
        if !(8..=64).contains(&salt.len()) || !(16..=64).contains(&hash.len()) {
            return Err("salt or hash length out of range".into());
        }
        Ok(PhcHash { params, salt, hash })
    }

    /// The PHC string.
    pub fn encode(&self) -> String {
        format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            self.params.memory_kib,
            self.params.iterations,
            self.params.parallelism,
            B64_STD_NOPAD.encode(&self.salt),
            B64_STD_NOPAD.encode(&self.hash)
        )
    }
}

fn parse_params(text: &str) -> Result<Argon2Params, String> {
    let mut values = [None; 3];
    for (slot, (name, part)) in values.iter_mut().zip(["m", "t", "p"].iter().zip(text.split(','))) {
        let value = part
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok())
            .ok_or_else(|| format!("bad parameter {part:?}"))?;
        *slot = Some(value);
    }
    match (values, text.split(',').count()) {
        ([Some(m), Some(t), Some(p)], 3) => {
            Ok(Argon2Params { memory_kib: m, iterations: t, parallelism: p })
        }
        _ => Err("expected exactly m=..,t=..,p=..".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                          Mzl6HtYXh1gXoNsyCdjqXbAR6/NjMX4HHXnHZf1GmAs";

    #[test]
    fn round_trips() {
        let parsed = PhcHash::parse(SAMPLE).unwrap();
        assert_eq!(parsed.params, Argon2Params::default());
        assert_eq!(parsed.salt, b"somesaltsomesalt");
        assert_eq!(parsed.hash.len(), 32);
        assert_eq!(parsed.encode(), SAMPLE);
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=16$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=2$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$t=2,m=19456,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=2,p=1,x=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=+19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA$extra",
            "$argon2id$v=19$m=19456,t=2,p=1$c2$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(PhcHash::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn params_are_bounded() {
        assert!(Argon2Params::default().validate().is_ok());
        assert!(Argon2Params { memory_kib: 4, ..Default::default() }.validate().is_err());
        assert!(Argon2Params { iterations: 0, ..Default::default() }.validate().is_err());
        assert!(Argon2Params { parallelism: 17, ..Default::default() }.validate().is_err());
    }
}
