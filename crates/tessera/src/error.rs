//! The engine's error: every way an authentication operation can fail, one arm each, so the
//! HTTP edge can map them to status codes and problem codes in one exhaustive `match`.

use std::time::Duration;

use crate::store::StoreError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong username or password (deliberately one error for both).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Too many login attempts; try again after `retry_after`.
    #[error("too many attempts, retry in {}s", retry_after.as_secs())]
    RateLimited {
        /// How long the caller has to wait.
        retry_after: Duration,
    },
    /// No credentials, or credentials that do not name a live session or token.
    #[error("authentication required")]
    Unauthorized,
    /// The session existed but passed its idle or absolute deadline.
    #[error("the session has expired")]
    SessionExpired,
    /// A token that is malformed, badly signed, revoked or unknown; the reason is for logs
    /// and the problem's `detail`.
    #[error("the token is invalid: {0}")]
    TokenInvalid(&'static str),
    /// A token past its expiry.
    #[error("the token has expired")]
    TokenExpired,
    /// A spent refresh token presented again outside the retry grace: the family is revoked.
    #[error("the refresh token was already used; its whole family has been revoked")]
    TokenReused,
    /// The username is already registered.
    #[error("the username is already taken")]
    UsernameTaken,
    /// An input field broke a rule.
    #[error("{field}: {message}")]
    Validation {
        /// The offending field's name in the request body.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The password was right, but an administrator has disabled the user.
    #[error("this account is disabled")]
    UserDisabled,
    /// Self-service registration is switched off.
    #[error("registration is closed")]
    RegistrationClosed,
    /// The thing asked for does not exist (or is not the caller's).
    #[error("not found")]
    NotFound,
    /// A store could not be reached or answered with an error: fail closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bug or an environment failure (random number generator, key files).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The API's problem code for this error (API.md "Error codes"); also the `reason` of a
    /// failed audit event.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidCredentials => "invalid_credentials",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unauthorized => "unauthorized",
            Error::SessionExpired => "session_expired",
            Error::TokenInvalid(_) => "token_invalid",
            Error::TokenExpired => "token_expired",
            Error::TokenReused => "token_reused",
            Error::UsernameTaken => "username_taken",
            Error::Validation { .. } => "validation_failed",
            Error::UserDisabled => "forbidden",
            Error::RegistrationClosed => "registration_closed",
            Error::NotFound => "not_found",
            Error::Store(_) => "store_unavailable",
            Error::Internal(_) => "internal_error",
        }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::Internal(message.into())
    }

    pub(crate) fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Error::Validation { field, message: message.into() }
    }
}
