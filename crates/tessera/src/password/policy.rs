//! What a username and a password must look like (API.md "Users"): usernames of 3–64 characters
//! from `A–Z a–z 0–9 . _ -`, compared case-insensitively; passwords of 8–128 characters with no
//! composition rules (NIST SP 800-63B), not the username, not in the bundled list of common
//! passwords.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::error::Error;

/// Fewest characters in a username.
pub const USERNAME_MIN: usize = 3;
/// Most characters in a username.
pub const USERNAME_MAX: usize = 64;
/// Fewest characters in a password.
pub const PASSWORD_MIN: usize = 8;
/// Most characters in a password.
pub const PASSWORD_MAX: usize = 128;

/// 11,611 common passwords of 8+ characters, lower-cased (see `data/NOTICE.md`).
static COMMON_PASSWORDS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| include_str!("../../data/common-passwords.txt").lines().collect());

/// Checks a username and returns its canonical (lower-cased) form.
pub fn normalize_username(username: &str) -> Result<String, Error> {
    let count = username.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&count) {
        return Err(Error::validation(
            "username",
            format!("must be {USERNAME_MIN} to {USERNAME_MAX} characters long"),
        ));
    }
    if let Some(bad) =
        username.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::validation(
            "username",
            format!("may contain only letters A-Z, digits, '.', '_' and '-' (found {bad:?})"),
        ));
    }
    Ok(username.to_ascii_lowercase())
}

/// Checks a new password for `username`; `field` names it in the error (`password` at
/// registration, `new_password` on a change).
pub fn check_password(field: &'static str, password: &str, username: &str) -> Result<(), Error> {
    let count = password.chars().count();
    if count < PASSWORD_MIN {
        return Err(Error::validation(
            field,
            format!("must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if count > PASSWORD_MAX {
        return Err(Error::validation(field, format!("must be at most {PASSWORD_MAX} characters")));
    }
    let lowered = password.to_lowercase();
    if lowered == username.to_lowercase() {
        return Err(Error::validation(field, "must not be the username"));
    }
    if COMMON_PASSWORDS.contains(lowered.as_str()) {
        return Err(Error::validation(
            field,
            "is one of the most common passwords; choose another",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<impl std::fmt::Debug, Error>) -> &'static str {
        match result {
            Err(Error::Validation { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(normalize_username("Alice.B_c-9").unwrap(), "alice.b_c-9");
        assert_eq!(normalize_username("abc").unwrap(), "abc");
        assert_eq!(normalize_username(&"a".repeat(64)).unwrap().len(), 64);
        for bad in ["ab", "", &"a".repeat(65), "al ice", "alice@x", "ålice", "a/b", "a\0b"] {
            assert_eq!(field_of(normalize_username(bad)), "username", "{bad:?}");
        }
    }

    #[test]
    fn passwords_follow_length_username_and_common_list_rules() {
        assert!(check_password("password", "correct horse battery", "alice").is_ok());
        assert!(
            check_password("password", &"é".repeat(8), "alice").is_ok(),
            "characters, not bytes"
        );
        assert!(check_password("password", &"x1".repeat(64), "alice").is_ok());
        assert_eq!(field_of(check_password("password", "short7!", "alice")), "password");
        assert_eq!(field_of(check_password("password", &"x".repeat(129), "alice")), "password");
        assert_eq!(
            field_of(check_password("new_password", "Alice.Long", "alice.long")),
            "new_password"
        );
        assert_eq!(field_of(check_password("password", "password", "alice")), "password");
        assert_eq!(field_of(check_password("password", "Baseball", "alice")), "password");
        assert_eq!(field_of(check_password("password", "1qaz2wsx", "alice")), "password");
    }

    #[test]
    fn the_common_list_is_loaded() {
        assert!(COMMON_PASSWORDS.len() > 10_000);
        assert!(COMMON_PASSWORDS.iter().all(|p| p.chars().count() >= PASSWORD_MIN));
    }
}
