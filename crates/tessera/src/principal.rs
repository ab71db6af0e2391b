//! Who a request is from, once its credentials checked out: the [`Principal`].

use crate::clock::Timestamp;

/// Which of the two methods authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A server-side session (cookie).
    Session,
    /// A JWT access token (bearer header or cookie).
    Token,
}

impl AuthMethod {
    /// `"session"` or `"token"`, as the API reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Session => "session",
            AuthMethod::Token => "token",
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: String,
    /// The user's username.
    pub username: String,
    /// How the request authenticated.
    pub method: AuthMethod,
    /// The session's public handle, or the token's `sid` (its refresh family).
    pub sid: String,
    /// When the credential stops working if nothing renews it.
    pub expires_at: Timestamp,
}
