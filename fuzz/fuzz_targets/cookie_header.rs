//! `cookie_header`: arbitrary `Cookie` header values through the cookie lookup every request
//! makes (`tessera_axum::cookies::find_cookie` and `CookieKind::get`).
//!
//! The input is split at `\n` into up to eight `Cookie` header lines (lines that are not valid
//! header values are dropped, as `http` would refuse them). Every Tessera cookie name, secure
//! and not, and the first names the input itself uses are looked up. The result must equal an
//! independent model of the documented rule ("the first non-empty value, quotes removed, in
//! any `Cookie` header"), and any value found must be non-empty, contain no `;` or surrounding
//! quotes, and be a slice of one of the header values (never copied or rebuilt).
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use tessera_axum::HttpSettings;
use tessera_axum::cookies::{CookieKind, find_cookie};

const TESSERA_NAMES: [&str; 6] = [
    "__Host-tessera_session",
    "tessera_session",
    "__Host-tessera_access",
    "tessera_access",
    "__Secure-tessera_refresh",
    "tessera_refresh",
];

/// The documented rule, written independently.
fn model<'h>(lines: &[&'h str], name: &str) -> Option<&'h str> {
    for line in lines {
        for pair in line.split(';') {
            let pair = pair.trim_matches([' ', '\t']);
            let Some(eq) = pair.find('=') else { continue };
            let (n, v) = (&pair[..eq], pair[eq + 1..].trim_matches('"'));
            if n == name && !v.is_empty() {
                return Some(v);
            }
        }
    }
    None
}

fn is_slice_of(part: &str, whole: &str) -> bool {
    let (start, end) = (whole.as_ptr() as usize, whole.as_ptr() as usize + whole.len());
    let p = part.as_ptr() as usize;
    p >= start && p + part.len() <= end
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n').take(8) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, value);
        }
    }
    // What a server reads: the lines that are text (the others are skipped).
    let lines: Vec<&str> =
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    let own_names: Vec<&str> = lines
        .iter()
        .flat_map(|l| l.split(';'))
        .filter_map(|p| p.trim().split_once('=').map(|(n, _)| n))
        .take(4)
        .collect();
    for name in TESSERA_NAMES.iter().copied().chain(own_names) {
        let found = find_cookie(&headers, name);
        assert_eq!(found, model(&lines, name), "cookie {name:?} in {lines:?}");
        if let Some(value) = found {
            assert!(!value.is_empty(), "an empty value for {name:?}");
            assert!(!value.contains(';'), "a value spanning pairs: {value:?}");
            assert!(!value.starts_with('"') && !value.ends_with('"'), "quotes kept: {value:?}");
            assert!(lines.iter().any(|l| is_slice_of(value, l)), "not a slice of a header");
        }
    }
    for secure in [true, false] {
        let settings =
            HttpSettings { cookie_secure: secure, ..HttpSettings::new("https://auth.example") };
        for kind in [CookieKind::Session, CookieKind::Access, CookieKind::Refresh] {
            assert_eq!(kind.get(&settings, &headers), find_cookie(&headers, kind.name(&settings)));
        }
    }
});
