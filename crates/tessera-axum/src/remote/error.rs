//! [`RemoteError`]: what can go wrong setting up remote mode or fetching keys outside a
//! request. Failures while serving a request are [`ApiError`](crate::ApiError)s instead.

/// Why a [`RemoteVerifier`](super::RemoteVerifier) could not be built or refresh its keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The server's base URL is not an `http(s)://host[:port][/path]` URL.
    #[error("the Tessera server URL {url:?} is not usable: {why}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A setting is out of range.
    #[error("remote setting {field} {rule}")]
    InvalidSetting {
        /// The field of [`RemoteSettings`](super::RemoteSettings).
        field: &'static str,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The HTTP client could not be set up (TLS roots, say).
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
    /// The server's JWKS could not be fetched or was refused.
    #[error("fetching the Tessera server's JWKS failed: {0}")]
    Jwks(String),
}
