//! CSRF tokens for everything a browser sends credentials with by itself (session cookies and
//! cookie-delivered access tokens).
//!
//! The token is `HMAC(server key, sid)`: bound to one session or refresh family, stable for its
//! lifetime, derivable again at any time (so `GET /v1/session` can return it) and never stored.

use base64::Engine as _;

use crate::crypto::{B64URL, HmacKey, ct_eq};

/// Derives and checks CSRF tokens.
#[derive(Debug, Clone)]
pub struct CsrfTokens {
    key: HmacKey,
}

impl CsrfTokens {
    pub(crate) fn new(key: HmacKey) -> Self {
        CsrfTokens { key }
    }

    /// The CSRF token of session or refresh family `sid`.
    pub fn token_for(&self, sid: &str) -> String {
        B64URL.encode(self.key.sign(sid.as_bytes()))
    }

    /// Whether `presented` is the CSRF token of `sid` (constant-time).
    pub fn verify(&self, sid: &str, presented: &str) -> bool {
        ct_eq(self.token_for(sid).as_bytes(), presented.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_sid_and_key() {
        let csrf = CsrfTokens::new(HmacKey::new(b"k1"));
        let token = csrf.token_for("sid-1");
        assert_eq!(token.len(), 43);
        assert!(csrf.verify("sid-1", &token));
        assert!(!csrf.verify("sid-2", &token));
        assert!(!csrf.verify("sid-1", ""));
        assert!(!csrf.verify("sid-1", &token[..42]));
        assert!(!CsrfTokens::new(HmacKey::new(b"k2")).verify("sid-1", &token));
    }
}
