//! The cookies Tessera sets and reads, with the attributes API.md fixes: `HttpOnly` always,
//! `Secure` and the `__Host-`/`__Secure-` name prefixes unless cookie security is switched off
//! for plain-HTTP development.

use http::{HeaderMap, HeaderValue, header};

use crate::state::HttpSettings;

/// One of Tessera's cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    /// The session id (`Path=/`, `SameSite=Lax`).
    Session,
    /// A cookie-delivered access token (`Path=/`, `SameSite=Strict`).
    Access,
    /// A cookie-delivered refresh token (`Path=/v1/token` below the API prefix,
    /// `SameSite=Strict`).
    Refresh,
}

impl CookieKind {
    /// The cookie's name under `settings`.
    pub fn name(self, settings: &HttpSettings) -> &'static str {
        match (self, settings.cookie_secure) {
            (CookieKind::Session, true) => "__Host-tessera_session",
            (CookieKind::Session, false) => "tessera_session",
            (CookieKind::Access, true) => "__Host-tessera_access",
            (CookieKind::Access, false) => "tessera_access",
            // `__Host-` requires `Path=/`; the refresh cookie is confined to the token paths.
            (CookieKind::Refresh, true) => "__Secure-tessera_refresh",
            (CookieKind::Refresh, false) => "tessera_refresh",
        }
    }

    fn path(self, settings: &HttpSettings) -> String {
        match self {
            CookieKind::Refresh => format!("{}/v1/token", settings.api_prefix()),
            _ => "/".to_owned(),
        }
    }

    fn same_site(self) -> &'static str {
        match self {
            CookieKind::Session => "Lax",
            _ => "Strict",
        }
    }

    /// A `Set-Cookie` value carrying `value` for `max_age_secs`.
    pub fn set(self, settings: &HttpSettings, value: &str, max_age_secs: u64) -> HeaderValue {
        self.header(settings, value, max_age_secs)
    }

    /// A `Set-Cookie` value that deletes the cookie.
    pub fn clear(self, settings: &HttpSettings) -> HeaderValue {
        self.header(settings, "", 0)
    }

    fn header(self, settings: &HttpSettings, value: &str, max_age_secs: u64) -> HeaderValue {
        let secure = if settings.cookie_secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={value}; Path={}; HttpOnly{secure}; SameSite={}; Max-Age={max_age_secs}",
            self.name(settings),
            self.path(settings),
            self.same_site(),
        );
        // Values are base64url or JWTs; anything else is a bug, and an empty cookie is safe.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| self.clear(settings))
    }

    /// This cookie's value in the request's `Cookie` headers, if present and non-empty.
    pub fn get<'h>(self, settings: &HttpSettings, headers: &'h HeaderMap) -> Option<&'h str> {
        find_cookie(headers, self.name(settings))
    }
}

/// The first non-empty value of cookie `name` in `headers`, without its quotes (so `name=""`
/// counts as empty).
pub fn find_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    // On every authenticated request: plain loops, no iterator adaptors (a third of the cost).
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let Some(rest) = pair.trim_ascii().strip_prefix(name) else { continue };
            let Some(value) = rest.strip_prefix('=') else { continue };
            let value = value.trim_matches('"');
            if !value.is_empty() {
                return Some(value);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookies_have_the_documented_attributes() {
        let s = HttpSettings::new("https://auth.example.com");
        assert_eq!(
            CookieKind::Session.set(&s, "abc", 43200),
            "__Host-tessera_session=abc; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=43200"
        );
        assert_eq!(
            CookieKind::Access.set(&s, "j.w.t", 300),
            "__Host-tessera_access=j.w.t; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=300"
        );
        assert_eq!(
            CookieKind::Refresh.clear(&s),
            "__Secure-tessera_refresh=; Path=/v1/token; HttpOnly; Secure; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn insecure_mode_drops_secure_and_the_prefixes() {
        let s = HttpSettings { cookie_secure: false, ..HttpSettings::new("http://127.0.0.1:8080") };
        assert_eq!(
            CookieKind::Session.set(&s, "abc", 10),
            "tessera_session=abc; Path=/; HttpOnly; SameSite=Lax; Max-Age=10"
        );
    }

    #[test]
    fn reads_cookies_from_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; __Host-tessera_session="));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2;__Host-tessera_session=xyz"));
        let s = HttpSettings::new("https://x");
        assert_eq!(CookieKind::Session.get(&s, &headers), Some("xyz"));
        assert_eq!(find_cookie(&headers, "b"), Some("2"));
        assert_eq!(find_cookie(&headers, "c"), None);
    }

    #[test]
    fn a_quoted_empty_value_is_empty() {
        // Found by the `cookie_header` fuzz target: `=""` used to come back as `Some("")`,
        // shadowing a later real value (and the access cookie after it).
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static(
                r#"__Host-tessera_session=""; a="; __Host-tessera_session=xyz"#,
            ),
        );
        let s = HttpSettings::new("https://x");
        assert_eq!(CookieKind::Session.get(&s, &headers), Some("xyz"));
        assert_eq!(find_cookie(&headers, "a"), None);
        assert_eq!(find_cookie(&headers, ""), None);
    }
}
