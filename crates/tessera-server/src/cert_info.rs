//! What `tessera doctor` reads from an X.509 certificate: its validity period (`notBefore`,
//! `notAfter`) and the names it is for (subject alternative names), from its DER by a minimal
//! walk of the structure (RFC 5280 §4.1), without a full X.509 parser in the binary. Anything
//! unexpected is `None`, never a panic.

use std::net::IpAddr;

/// A certificate's validity, in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before.
    pub not_before: i64,
    /// Not valid after.
    pub not_after: i64,
}

/// The validity period of the DER certificate `der`.
pub fn validity(der: &[u8]) -> Option<Validity> {
    let (0x30, certificate, _) = tlv(der)? else { return None };
    let (0x30, mut tbs, _) = tlv(certificate)? else { return None };
    // [0] EXPLICIT version, optional.
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        tbs = tlv(tbs)?.2;
    }
    let (0x30, validity, _) = tlv(tbs)? else { return None };
    let (tag, not_before, rest) = tlv(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    Some(Validity { not_before, not_after: time(tag, not_after)? })
}

/// The DNS names and IP addresses of the certificate's subject alternative names (RFC 5280
/// §4.2.1.6), lowercased; `None` when the certificate cannot be read or has no such extension.
pub fn names(der: &[u8]) -> Option<Vec<String>> {
    let (0x30, certificate, _) = tlv(der)? else { return None };
    let (0x30, mut tbs, _) = tlv(certificate)? else { return None };
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo.
    for _ in 0..6 {
        tbs = tlv(tbs)?.2;
    }
    // Optional [1] and [2] unique ids, then [3] EXPLICIT extensions.
    while let Some((tag, content, rest)) = tlv(tbs) {
        tbs = rest;
        if tag != 0xa3 {
            continue;
        }
        let (0x30, mut extensions, _) = tlv(content)? else { return None };
        while let Some((0x30, extension, rest)) = tlv(extensions) {
            extensions = rest;
            let (0x06, oid, mut fields) = tlv(extension)? else { return None };
            // 2.5.29.17, subjectAltName.
            if oid != [0x55, 0x1d, 0x11] {
                continue;
            }
            if fields.first() == Some(&0x01) {
                fields = tlv(fields)?.2;
            }
            let (0x04, value, _) = tlv(fields)? else { return None };
            let (0x30, mut general_names, _) = tlv(value)? else { return None };
            let mut names = Vec::new();
            while let Some((tag, name, rest)) = tlv(general_names) {
                general_names = rest;
                match (tag, name.len()) {
                    (0x82, _) => names.push(String::from_utf8_lossy(name).to_ascii_lowercase()),
                    (0x87, 4) => {
                        let octets: [u8; 4] = name.try_into().ok()?;
                        names.push(IpAddr::from(octets).to_string());
                    }
                    (0x87, 16) => {
                        let octets: [u8; 16] = name.try_into().ok()?;
                        names.push(IpAddr::from(octets).to_string());
                    }
                    _ => {}
                }
            }
            return Some(names);
        }
        return None;
    }
    None
}

/// Whether `host` (a DNS name or an IP address, without brackets) is one of `names`, where
/// `*.example.com` stands for exactly one label.
pub fn covers(names: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|name| match name.strip_prefix("*.") {
        Some(parent) => {
            host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent)
        }
        None => *name == host || host.parse::<IpAddr>().is_ok_and(|ip| ip.to_string() == *name),
    })
}

/// One DER element: its tag, its content and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = match (tag, text.split_last()) {
        (0x17 | 0x18, Some((b'Z', digits))) => digits,
        _ => return None,
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(digits.get(range)?).ok()?.parse().ok()
    };
    let (year, rest) = match (tag, digits.len()) {
        // RFC 5280: UTCTime years 50-99 are 19xx, 00-49 are 20xx.
        (0x17, 12) => {
            let yy = number(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (0x18, 14) => (number(0..4)?, 4),
        _ => return None,
    };
    let [month, day, hour, minute, second] =
        [0, 2, 4, 6, 8].map(|i| number(rest + i..rest + i + 2));
    let (month, day, hour, minute, second) = (month?, day?, hour?, minute?, second?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_like_the_calendar() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(0x18, b"20380119031408Z"), Some(2_147_483_648));
        assert_eq!(time(0x17, b"700101000000Z"), Some(0));
    }

    #[test]
    fn a_generated_certificate_has_the_validity_it_was_made_with() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 6, 15);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let validity = validity(cert.der()).expect("a validity");
        assert_eq!(validity.not_before, days_from_civil(2024, 2, 29) * 86_400);
        assert_eq!(validity.not_after, days_from_civil(2051, 6, 15) * 86_400);
    }

    #[test]
    fn subject_alternative_names_are_read_and_matched() {
        let params = rcgen::CertificateParams::new(vec![
            "Auth.Example.com".to_owned(),
            "*.apps.example.com".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ])
        .unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let names = names(cert.der()).expect("names");
        assert_eq!(names, ["auth.example.com", "*.apps.example.com", "127.0.0.1", "::1"]);
        assert!(covers(&names, "AUTH.example.com"));
        assert!(covers(&names, "one.apps.example.com"));
        assert!(!covers(&names, "two.one.apps.example.com"));
        assert!(!covers(&names, "apps.example.com"));
        assert!(covers(&names, "::1"));
        assert!(!covers(&names, "evil.example.com"));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(names(b"\x30\x00"), None);
        assert_eq!(validity(b""), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(validity(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
        assert_eq!(time(0x17, b"99123123595"), None);
        assert_eq!(time(0x18, b"2024133112000Z"), None);
    }
}
